"""The paper engine in Dagster: `paper_trades` (daily partitions) runs one engine tick over the unprocessed cycle
points of its day; `paper_engine_job` (market_regime + paper_trades) is launched by a sensor on new base bars."""

import dagster as dg
import pandas as pd

from resources.config import ProjectConfigResource
from resources.notifier import Notifier
from resources.warehouse import WarehouseResource

from ..core.ledger import check_ledger, limit_violations
from ..engine_runner import run_tick
from ..operator import read_ledger
from ..partitions import daily_partitions
from .market_data import WAREHOUSE_POOL, _markdown_table, ohlc_asset_name

GROUP = "paper"
LEDGER_INVARIANTS = "ledger_invariants"  # ERROR: a ledger row or a limit breaks SPEC §4–§7
ENGINE_TAG = "cryptotracker/engine"


def build_paper_assets(cfg) -> list[dg.AssetsDefinition]:
    base_key = dg.AssetKey(ohlc_asset_name(cfg.engine.base_timeframe))
    key = dg.AssetKey("paper_trades")

    @dg.asset(
        name="paper_trades", group_name=GROUP, partitions_def=daily_partitions,
        deps=[dg.AssetKey("market_regime"), base_key,
              dg.AssetDep(key, partition_mapping=dg.TimeWindowPartitionMapping(
                  start_offset=-1, end_offset=-1, allow_nonexistent_upstream_partitions=True))],
        check_specs=[dg.AssetCheckSpec(LEDGER_INVARIANTS, asset=key, description=(
            "Every ledger row is well formed and consistent with its group; open + pending within the limits."))],
        pool=WAREHOUSE_POOL, kinds={"duckdb"}, backfill_policy=dg.BackfillPolicy.single_run(),
        description="Paper-trading fills and closed trades (the ledger, SPEC §5.3), written by the engine tick "
                    "that processes the day's cycle points, with scan_history and portfolio_snapshots.",
    )
    def paper_trades(context: dg.AssetExecutionContext, project_config: ProjectConfigResource,
                     warehouse: WarehouseResource, notifier: Notifier):
        cfg_ = project_config.load()
        tw = context.partition_time_window
        start, end = pd.Timestamp(tw.start).tz_convert("UTC"), pd.Timestamp(tw.end).tz_convert("UTC")
        wh = warehouse.get()
        result = run_tick(wh, cfg_, until=end, start=start)
        out = result.outputs
        for note in out.notifications:
            if note.get("kind") in ("opened", "closed") and not cfg_.notifications.trade_events:
                context.log.info(_note_text(note))  # #trades gets them only with notifications.trade_events
                continue
            notifier.send(_channel_key(note), _note_text(note))
        ledger = read_ledger(wh)
        problems = []
        try:
            check_ledger(ledger)
        except Exception as exc:  # reported by the ERROR check, and the run fails below
            problems.append(str(exc))
        problems += limit_violations(result.state.open_counts(), cfg_)
        sells = out.ledger_rows[out.ledger_rows["side"] == "SELL"] if len(out.ledger_rows) else out.ledger_rows
        yield dg.MaterializeResult(
            asset_key=key,
            metadata={
                "cycle_points": result.processed,
                "cursor": str(result.state.cursor),
                "new_fills": int((out.ledger_rows["side"] == "BUY").sum()) if len(out.ledger_rows) else 0,
                "closed": len(sells),
                "open_positions": len(result.state.positions),
                "pending_orders": len(result.state.pending_orders),
                "watermark": str(out.watermark),
                "config_version": out.config_version,
                "decisions": dg.MetadataValue.json(
                    {k: int(v) for k, v in out.scan_rows["decision"].value_counts().items()} if len(out.scan_rows)
                    else {}),
                "closed_trades": dg.MetadataValue.md(_markdown_table(sells[[
                    "trade_group_id", "exit_reason", "pnl_usd", "pnl_pct"]].round(6)) if len(sells) else "(none)"),
            },
        )
        yield dg.AssetCheckResult(asset_key=key, check_name=LEDGER_INVARIANTS, passed=not problems,
                                  severity=dg.AssetCheckSeverity.ERROR,
                                  metadata={"problems": dg.MetadataValue.json(problems[:20]),
                                            "ledger_rows": len(ledger)})

    return [paper_trades]


def _channel_key(note: dict) -> str:
    ch = str(note.get("channel", "trades")).lstrip("#")
    return {"system-alerts": "alerts", "ml-signals": "signals"}.get(ch, ch if ch in ("trades", "reports", "alerts",
                                                                                       "signals") else "trades")


def _note_text(note: dict) -> str:
    fields = ", ".join(f"{k}={v}" for k, v in note.items() if k not in ("channel",))
    return f"{note.get('kind', 'event')}: {fields}"


paper_engine_job = dg.define_asset_job(
    "paper_engine_job",
    selection=dg.AssetSelection.assets("market_regime", "paper_trades"),
    partitions_def=daily_partitions,
    description="Market regime then one paper-engine tick for a UTC day (launched by paper_engine_sensor).",
    tags={ENGINE_TAG: "tick", "cryptotracker/kind": "engine"},
)
