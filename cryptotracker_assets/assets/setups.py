"""Strategy setups, the scan preview and the readiness board (SPEC §3): thin wrappers over core.setups."""

import dagster as dg
import pandas as pd

from resources.config import ProjectConfigResource
from resources.warehouse import WarehouseResource

from ..core.config import Config, Strategy
from ..core.setup_schemas import ReadinessBoardSchema, ScanPreviewSchema, StrategySetupSchema
from ..core.setups import BOARD_COLUMNS, readiness_markdown, scan_cycle_points, setups_warmup
from ..core.setups import readiness_board as build_board
from ..partitions import daily_partitions
from .features import _dagster_type, _lookback_days, cycle_end, data_horizon
from .market_data import WAREHOUSE_POOL, ohlc_asset_name

GROUP = "setups"
SCAN_ROWS_COMPLETE = "scan_rows_complete"  # ERROR: not exactly one row per active symbol × strategy × cycle point
SETUP_IDS_UNIQUE = "setup_ids_unique"  # ERROR: a setup_id repeats


def build_setup_assets(cfg: Config) -> list[dg.AssetsDefinition]:
    base = cfg.engine.base_timeframe
    base_dep = dg.AssetDep(dg.AssetKey(ohlc_asset_name(base)), partition_mapping=dg.TimeWindowPartitionMapping(
        start_offset=-_lookback_days(setups_warmup(cfg)), end_offset=0, allow_nonexistent_upstream_partitions=True))
    preview_key, setups_key = dg.AssetKey("scan_preview"), dg.AssetKey("strategy_setups")

    @dg.multi_asset(
        name="scan_and_setups",
        group_name=GROUP,
        partitions_def=daily_partitions,
        outs={
            "scan_preview": dg.AssetOut(
                io_manager_key="table_io_manager", dagster_type=_dagster_type(ScanPreviewSchema),
                metadata={"table": "scan_preview", "time_column": "timestamp"}, kinds={"pandas", "duckdb"},
                description="Steps 1–3 of the scan decision (SPEC §3.4) per active symbol × strategy × cycle "
                            "point, in the scan_history schema; rows passing them are undecided candidates."),
            "strategy_setups": dg.AssetOut(
                io_manager_key="table_io_manager", dagster_type=_dagster_type(StrategySetupSchema),
                metadata={"table": "strategy_setups", "time_column": "detected_at"}, kinds={"pandas", "duckdb"},
                description="One row per detected setup (SPEC §3.2, §3.5), keyed by setup_id = scan_id, with the "
                            "feature snapshot and the regime/best strategy at detection."),
        },
        deps=[base_dep, dg.AssetKey("market_regime")],
        check_specs=[
            dg.AssetCheckSpec(SCAN_ROWS_COMPLETE, asset=preview_key, blocking=True,
                              description="Exactly one scan row per active symbol × strategy × cycle point."),
            dg.AssetCheckSpec(SETUP_IDS_UNIQUE, asset=setups_key, blocking=True, description="setup_id is unique."),
        ],
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=WAREHOUSE_POOL,
    )
    def scan_and_setups(context: dg.AssetExecutionContext, project_config: ProjectConfigResource,
                        warehouse: WarehouseResource):
        cfg_ = project_config.load()
        u = project_config.universe()
        tw = context.partition_time_window
        start, end = pd.Timestamp(tw.start).tz_convert("UTC"), pd.Timestamp(tw.end).tz_convert("UTC")
        wh = warehouse.get()
        symbols = u.active_symbols
        read = symbols if u.market_symbol in symbols else [*symbols, u.market_symbol]
        bars = wh.read_bars(base, start - setups_warmup(cfg_), end, read)
        regime = wh.read_slice("market_regime", "timestamp", start, end)
        if regime is None:
            raise dg.Failure(f"scan_and_setups {context.partition_key}: market_regime is not materialized for "
                             f"this day (materialize market_regime first)")
        stop = min(cycle_end(data_horizon(bars, base, start, end), end, cfg_),
                   (regime["timestamp"].max() + pd.Timedelta(minutes=cfg_.engine.cycle_min)) if len(regime) else start)
        regime = regime[regime["timestamp"] < stop]
        result = scan_cycle_points(bars, regime, cfg_, start=start, end=stop, symbols=symbols)
        rows, setups = result.scan_rows, result.setups
        points = rows["timestamp"].nunique()
        expected = points * len(symbols) * len(Strategy)
        per_strategy = setups["strategy"].value_counts().to_dict() if len(setups) else {}
        yield dg.Output(rows, output_name="scan_preview", metadata={
            "rows": len(rows), "cycle_points": points,
            "candidates": int(rows["candidate"].sum()) if len(rows) else 0,
            "reasons": dg.MetadataValue.json({str(k): int(v) for k, v in rows["reason"].value_counts().items()})})
        yield dg.Output(setups, output_name="strategy_setups", metadata={
            "setups": len(setups), "by_strategy": dg.MetadataValue.json({k: int(v) for k, v in per_strategy.items()})})
        keys = rows[["symbol", "strategy", "timestamp"]].drop_duplicates()
        yield dg.AssetCheckResult(
            asset_key=preview_key, check_name=SCAN_ROWS_COMPLETE,
            passed=len(rows) == expected and len(keys) == len(rows),
            metadata={"rows": len(rows), "expected": expected, "duplicate_keys": len(rows) - len(keys)})
        yield dg.AssetCheckResult(
            asset_key=setups_key, check_name=SETUP_IDS_UNIQUE, passed=bool(setups["setup_id"].is_unique),
            metadata={"duplicates": int(setups["setup_id"].duplicated().sum())})

    @dg.asset(
        name="readiness_board", group_name=GROUP, deps=[preview_key], pool=WAREHOUSE_POOL,
        dagster_type=_dagster_type(ReadinessBoardSchema), io_manager_key="io_manager", kinds={"pandas", "duckdb"},
        description="The latest readiness 0–100 per active symbol × strategy with status (SPEC §3.6); the top 5 "
                    "per strategy in this asset's metadata.",
    )
    def readiness_board(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        wh = warehouse.get()
        with wh.connect(read_only=True) as con:
            latest = None
            if wh.table_exists(con, "scan_preview"):
                latest = con.execute("SELECT max(timestamp) FROM scan_preview").fetchall()[0][0]
        if latest is None:
            board = pd.DataFrame({c: pd.Series(dtype="object") for c in BOARD_COLUMNS})
            md = "No scan rows yet: materialize scan_preview."
        else:
            t = pd.Timestamp(latest).tz_convert("UTC")
            rows = wh.read_slice("scan_preview", "timestamp", t, t + pd.Timedelta(microseconds=1))
            board = build_board(rows)
            md = readiness_markdown(board)
        wh.replace_table("readiness_board", board)
        context.add_output_metadata({"cycle_point": str(latest), "rows": len(board),
                                     "top_5": dg.MetadataValue.md(md)})
        return board

    return [scan_and_setups, readiness_board]
