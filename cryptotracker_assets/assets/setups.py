"""The scan preview, strategy setups and the readiness board (SPEC §3): thin wrappers over core.setups.

``scan_preview`` runs steps 1–3 of the scan decision from the STORED ``features_scan`` and ``market_regime`` rows
(never recomputing a feature); the paper engine consumes it. ``strategy_setups`` and ``readiness_board`` are read
from the engine's ``scan_history`` (decided rows).
"""

from pathlib import Path

import dagster as dg
import pandas as pd

from resources.config import ProjectConfigResource
from resources.warehouse import REPLACE_FROM, WarehouseResource

from ..core.config import Config, Strategy
from ..core.setup_schemas import ReadinessBoardSchema, ScanPreviewSchema, StrategySetupSchema
from ..core.setups import readiness_board as build_board
from ..core.setups import readiness_markdown, scan_from_features, strategy_setups
from ..partitions import daily_partitions
from ..services.config_versions import segments, versions_at
from ..services.inference import Champions, alert_problems, champions, feature_rows
from ..services.incremental import StaleInputError, plan, require_fresh
from ..storage.warehouse import SCAN_HISTORY_TABLE
from .common import OWNERS, WAREHOUSE_POOL, dagster_type, json_counts, partition_window
from .models import ModelStoreResource

GROUP = "setups"
SCAN_ROWS_COMPLETE = "scan_rows_complete"  # ERROR: not exactly one row per active symbol × strategy × cycle point
SETUP_IDS_UNIQUE = "setup_ids_unique"  # ERROR: a setup_id repeats


def build_setup_assets(cfg: Config) -> list[dg.AssetsDefinition]:
    preview_key, setups_key = dg.AssetKey("scan_preview"), dg.AssetKey("strategy_setups")

    @dg.asset(
        name="scan_preview", group_name=GROUP, partitions_def=daily_partitions, io_manager_key="table_io_manager",
        dagster_type=dagster_type(ScanPreviewSchema), metadata={"table": "scan_preview", "time_column": "timestamp"},
        deps=[dg.AssetKey("features_scan"), dg.AssetKey("market_regime")],
        check_specs=[dg.AssetCheckSpec(SCAN_ROWS_COMPLETE, asset=preview_key, blocking=True,
                                       description="Exactly one scan row per active symbol × strategy × cycle "
                                                   "point among the rows this run computed.")],
        backfill_policy=dg.BackfillPolicy.single_run(), pool=WAREHOUSE_POOL, kinds={"pandas", "duckdb"},
        owners=OWNERS, tags={"stage": "setups"},
        description="Steps 1–3 of the scan decision (SPEC §3.4) per active symbol × strategy × cycle point, from the "
                    "stored features_scan and market_regime rows, in the scan_history schema; rows passing them are "
                    "undecided candidates for the paper engine. Incremental, each row with its bar watermark.",
    )
    def scan_preview(context: dg.AssetExecutionContext, project_config: ProjectConfigResource,
                     warehouse: WarehouseResource, model_store: ModelStoreResource):
        cfg_ = project_config.load()
        u = project_config.universe()
        start, end = partition_window(context)
        step = pd.Timedelta(minutes=cfg_.engine.cycle_min)
        wh = warehouse.get()
        with wh.snapshot() as con:
            _, last_feat = wh.time_bounds("features_scan", "timestamp", con=con)
            _, last_regime = wh.time_bounds("market_regime", "timestamp", con=con)
            stop = None if last_feat is None or last_regime is None else min(last_feat, last_regime) + step
            # the config in force at each cycle point (an approved revision acts from the first one after it)
            timeline = project_config.timeline(start, end)
            p = plan(wh, cfg_, "scan_preview", start, end, con, stop=stop if stop is not None else start,
                     versions=lambda pts: versions_at(timeline, pts))
            todo = p.todo
            first, last = (todo[0], todo[-1] + pd.Timedelta(microseconds=1)) if len(todo) else (end, end)
            features = wh.read_slice("features_scan", "timestamp", first, last, con=con)
            regime = wh.read_slice("market_regime", "timestamp", first, last, con=con)
            frames = feature_rows(wh, first, last, con=con) if len(todo) else (None, None, None)
        marks = p.marks[len(p.points) - len(todo):]
        try:
            require_fresh("features_scan", features, todo, marks)
            require_fresh("market_regime", regime, todo, marks)
        except StaleInputError as exc:
            raise dg.Failure(f"scan_preview {context.partition_key}: {exc}", allow_retries=False) from None
        # the champion in force (a corrupt / mismatched one counts as none: rule confidence and an alert)
        found = champions(wh, cfg_, Path(model_store.root), first, frames) if len(todo) else Champions()
        alert_problems(wh, cfg_, found)
        parts = [scan_from_features(features, regime, c, start=pts[0], end=pts[-1] + step, symbols=u.active_symbols,
                                    confidence=found.sources)
                 for c, pts in segments(timeline, todo)]
        rows = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0] if parts else scan_from_features(
            features, regime, cfg_, start=first, end=end, symbols=u.active_symbols)
        rows = rows.assign(bars_watermark=p.marks_of(rows["timestamp"]))
        points = rows["timestamp"].nunique()
        expected = points * len(u.active_symbols) * len(Strategy)
        keys = rows[["symbol", "strategy", "timestamp"]].drop_duplicates()
        yield dg.Output(rows, metadata={
            REPLACE_FROM: p.replace_from.isoformat(), "rows": len(rows), "cycle_points": points,
            "confidence_sources": dg.MetadataValue.json({s.value: (found.sources[s].name if s in found.sources else
                                                                    f"rule ({found.problems[s]})" if s in found.problems
                                                                    else "rule") for s in Strategy}),
            "stale_rows_recomputed": p.refresh.stale,
            "candidates": int(rows["candidate"].sum()) if len(rows) else 0, "reasons": json_counts(rows["reason"])})
        yield dg.AssetCheckResult(
            asset_key=preview_key, check_name=SCAN_ROWS_COMPLETE,
            passed=len(rows) == expected and len(keys) == len(rows),
            metadata={"rows": len(rows), "expected": expected, "duplicate_keys": len(rows) - len(keys)})

    @dg.asset(
        name="strategy_setups", group_name=GROUP, partitions_def=daily_partitions, io_manager_key="table_io_manager",
        dagster_type=dagster_type(StrategySetupSchema),
        metadata={"table": "strategy_setups", "time_column": "detected_at"}, deps=[dg.AssetKey(SCAN_HISTORY_TABLE)],
        check_specs=[dg.AssetCheckSpec(SETUP_IDS_UNIQUE, asset=setups_key, blocking=True,
                                       description="setup_id is unique.")],
        backfill_policy=dg.BackfillPolicy.single_run(), pool=WAREHOUSE_POOL, kinds={"pandas", "duckdb"},
        owners=OWNERS, tags={"stage": "setups"},
        description="One row per detected setup (SPEC §3.2, §3.5) of the engine's scan_history, keyed by setup_id = "
                    "scan_id, with its decision, the feature snapshot and the regime/best strategy at detection.",
    )
    def strategy_setups_asset(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        start, end = partition_window(context)
        rows = warehouse.get().read_slice(SCAN_HISTORY_TABLE, "timestamp", start, end, where_true="setup")
        setups = strategy_setups(rows if rows is not None else pd.DataFrame())
        yield dg.Output(setups, metadata={"setups": len(setups), "by_strategy": json_counts(setups["strategy"]),
                                          "decisions": json_counts(setups["decision"])})
        yield dg.AssetCheckResult(
            asset_key=setups_key, check_name=SETUP_IDS_UNIQUE, passed=bool(setups["setup_id"].is_unique),
            metadata={"duplicates": int(setups["setup_id"].duplicated().sum())})

    @dg.asset(
        name="readiness_board", group_name=GROUP, deps=[dg.AssetKey(SCAN_HISTORY_TABLE)], pool=WAREHOUSE_POOL,
        dagster_type=dagster_type(ReadinessBoardSchema), io_manager_key="table_io_manager",
        metadata={"table": "readiness_board"}, kinds={"pandas", "duckdb"}, owners=OWNERS, tags={"stage": "setups"},
        description="The latest cycle point's readiness 0–100 per active symbol × strategy with status and decision "
                    "(SPEC §3.6); the top 5 per strategy in this asset's metadata.",
    )
    def readiness_board(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        wh = warehouse.get()
        with wh.snapshot() as con:
            _, latest = wh.time_bounds(SCAN_HISTORY_TABLE, "timestamp", con=con)
            rows = None if latest is None else wh.read_slice(
                SCAN_HISTORY_TABLE, "timestamp", latest, latest + pd.Timedelta(microseconds=1), con=con)
        board = build_board(rows if rows is not None else pd.DataFrame())
        md = readiness_markdown(board) if latest is not None else "No scan rows yet: the paper engine has not run."
        context.add_output_metadata({"cycle_point": str(latest), "rows": len(board),
                                     "top_5": dg.MetadataValue.md(md)})
        return board

    return [scan_preview, strategy_setups_asset, readiness_board]
