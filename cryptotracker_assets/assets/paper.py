"""The paper engine in Dagster: one multi-asset whose outputs — ``paper_trades``, ``scan_history``,
``portfolio_snapshots``, ``engine_state``, ``limiter_state``, ``engine_ticks`` and ``notification_outbox`` — one
engine tick commits in ONE warehouse transaction, daily partitioned by the UTC day of the cycle point that wrote
each row. The tick sends nothing itself: its messages wait in the outbox for the outbox delivery sensor.

Partition semantics: materializing today appends the new cycle points to today's partition; history is
append-only (SPEC §0.5), so materializing a past, fully processed day writes nothing — its ``replay_matches_ledger``
check replays the day from the state stored at the end of the day before and compares (the standing proof that
paper equals replay, and where a late or revised bar shows its effect). ``ledger_invariants`` is a blocking
ERROR check, and the engine refuses to tick while its latest result is a failure.
"""

from pathlib import Path

import dagster as dg
import pandas as pd

from resources.config import ProjectConfigResource
from resources.warehouse import WarehouseResource

from ..core.common import utc_days
from ..core.engine import EngineInputError, EngineState
from ..core.engine_audit import AuditReport
from ..core.engine_records import note_text
from ..core.engine_schemas import EngineStateSchema, LedgerSchema, SnapshotSchema, validate_engine_outputs
from ..core.ledger import check_ledger, limit_violations
from ..core.record_schemas import LimiterSchema, OutboxSchema, TickSchema
from ..core.setup_schemas import ScanHistorySchema
from ..core.shadow_schemas import ShadowDecisionSchema, ShadowExitSchema, ShadowOutcomeSchema
from ..core.shadows.outcomes import derive_outcomes
from ..core.watermarks import derived_span
from ..partitions import daily_partitions
from ..services.config_versions import config_of_day
from ..services.engine_runner import EngineRunError, audit_day, engine_points_per_day, run_tick
from ..services.inference import scorer
from ..services.operator import read_ledger
from ..storage.warehouse import (ENGINE_STATE_TABLE, LEDGER_TABLE, LIMITER_TABLE, OUTBOX_TABLE, SCAN_HISTORY_TABLE,
                                 SHADOW_EXITS_TABLE, SHADOW_OUTCOMES_TABLE, SNAPSHOTS_TABLE, TICKS_TABLE)
from .models import ModelStoreResource
from .common import (OWNERS, WAREHOUSE_POOL, json_counts, lookback_dep, markdown_table, ohlc_asset_name,
                     partition_window, previous_day_dep, table_schema)
from .retries import TRANSIENT_RETRY, data_errors_are_final

GROUP = "paper"
LEDGER_INVARIANTS = "ledger_invariants"  # ERROR, blocking: a ledger row or a limit breaks SPEC §4–§7
REPLAY_MATCHES_LEDGER = "replay_matches_ledger"  # ERROR: a replay of the day differs from the stored rows
ENGINE_TAG = "cryptotracker/engine"
ENGINE_OUTPUTS = (LEDGER_TABLE, SCAN_HISTORY_TABLE, SNAPSHOTS_TABLE, ENGINE_STATE_TABLE, LIMITER_TABLE, TICKS_TABLE,
                  OUTBOX_TABLE, SHADOW_OUTCOMES_TABLE, SHADOW_EXITS_TABLE)
SHADOW_OUTCOMES_VALID = "shadow_outcomes_valid"  # ERROR: the derived outcome rows of a day break their schema

_DESCRIPTIONS = {
    LEDGER_TABLE: "Paper-trading fills and closes (the ledger, SPEC §5.3): one BUY row per fill and one SELL row per "
                  "closed group, keyed by (trade_group_id, side, level); append-only.",
    SCAN_HISTORY_TABLE: "Every scan decision (SPEC §3.5): one row per active symbol × strategy × cycle point with "
                        "decision, reason, confidence, readiness and the features; append-only.",
    SNAPSHOTS_TABLE: "The portfolio state (SPEC §7.1) at step 4 of every cycle point: cash, positions value, mark "
                     "equity, realised and unrealised P&L, open count; append-only.",
    ENGINE_STATE_TABLE: "The engine's state (positions, pending orders, protection, shift state, cursor) at the end "
                        "of the last processed cycle point of each UTC day; the newest row is the live state.",
    LIMITER_TABLE: "The per-symbol loss limiter (SPEC §8.3): stop count, cooldown and ban of every symbol that had a "
                   "close, at the end of the last processed cycle point of each UTC day.",
    TICKS_TABLE: "One row per committed tick: tick id, cycle points processed, watermark of the bars read, config "
                 "version, commit time and row counts — which ticks a late or revised bar could have affected.",
    OUTBOX_TABLE: "Every message the engine wants to send (PANIC, gates, no-data closes, trades), queued in the "
                  "tick's own commit and delivered at least once by the outbox_delivery sensor, each with its id.",
    SHADOW_OUTCOMES_TABLE: "Shadow testing (SPEC §10.2): per eligible scan row one row per applicable variation (13 per "
                           "DCA scan, 10 per SWING/CHANNEL scan with a champion; 8 / 5 without) with would_take and "
                           "the frozen parameters of a take, written in the tick's commit with the scan rows; daily "
                           "partitioned by the scan's UTC day. The outcome (WIN / LOSS / TIMEOUT, PENDING until "
                           "shadow_exits has the take's row) and matched_real_trade are derived.",
    SHADOW_EXITS_TABLE: "The end of every shadow take: exit reason and time, net P&L USD and %, hold hours, grid "
                        "fills, average entry — stepped by the engine on the same bars as real positions; no-data "
                        "closes on the shadow.evaluate_every_min grid; a final outcome never changes.",
}
_SCHEMAS = {LEDGER_TABLE: LedgerSchema, SCAN_HISTORY_TABLE: ScanHistorySchema, SNAPSHOTS_TABLE: SnapshotSchema,
            ENGINE_STATE_TABLE: EngineStateSchema, LIMITER_TABLE: LimiterSchema, TICKS_TABLE: TickSchema,
            OUTBOX_TABLE: OutboxSchema, SHADOW_OUTCOMES_TABLE: ShadowDecisionSchema,
            SHADOW_EXITS_TABLE: ShadowExitSchema}


def _refuse_after_failed_invariants(context: dg.AssetExecutionContext) -> None:
    """Blocking checks stop only steps of their own run: a later tick asks the instance for the latest result
    (the newest completed execution; a planned one of a running or crashed run is skipped)."""
    key = dg.AssetCheckKey(dg.AssetKey(LEDGER_TABLE), LEDGER_INVARIANTS)
    history = context.instance.event_log_storage.get_asset_check_execution_history(key, limit=20)
    last = [r for r in history if r.status.value in ("SUCCEEDED", "FAILED")][:1]
    if last and last[0].status.value == "FAILED":
        raise dg.Failure(
            f"paper engine: the latest {LEDGER_INVARIANTS} result (run {last[0].run_id}, partition "
            f"{last[0].partition}) is a failure; the engine does not tick on a broken ledger. Repair the ledger, then "
            f"execute the {LEDGER_INVARIANTS} check (Assets → paper_trades → Checks) until it passes.",
            allow_retries=False)


def _audit(wh, cfg, day: pd.Timestamp, project_config: ProjectConfigResource, models_root: str) -> AuditReport:
    """The day's audit; scan rows the engine refuses (e.g. recomputed under another config version since) fail
    the day naming why, instead of failing the check's step. A day with an approved revision or a rollback is
    replayed under the configs in force at each cycle point."""
    timeline = project_config.timeline(day, day + pd.Timedelta(days=1))
    try:
        return audit_day(wh, cfg, day, configs=project_config.timeline if len(timeline) > 1 else None,
                         scores=scorer(wh, cfg, Path(models_root)))
    except EngineInputError as exc:
        return AuditReport(day=day, cycle_points=0, passed=False, compared={},
                           first_difference=f"the day cannot be replayed on the rows stored now: {exc}")
    except EngineRunError as exc:
        return AuditReport(day=day, cycle_points=0, passed=False, compared={}, first_difference=str(exc))


def build_paper_assets(cfg) -> tuple[dg.AssetsDefinition, list[dg.AssetChecksDefinition]]:
    base_key = dg.AssetKey(ohlc_asset_name(cfg.engine.base_timeframe))
    trades_key = dg.AssetKey(LEDGER_TABLE)

    @dg.multi_asset(
        name="paper_engine", group_name=GROUP, partitions_def=daily_partitions,
        outs={name: dg.AssetOut(description=_DESCRIPTIONS[name], kinds={"duckdb"}, owners=OWNERS,
                                tags={"stage": "paper"},
                                metadata={"table": name, "dagster/column_schema": table_schema(_SCHEMAS[name])})
              for name in ENGINE_OUTPUTS},
        deps=[dg.AssetKey("scan_preview"), dg.AssetKey("market_regime"), lookback_dep(base_key, derived_span(cfg)),
              previous_day_dep(dg.AssetKey(ENGINE_STATE_TABLE))],
        backfill_policy=dg.BackfillPolicy.single_run(), pool=WAREHOUSE_POOL, retry_policy=TRANSIENT_RETRY,
        description="One paper-engine tick (SPEC §3.1) over the unprocessed cycle points of the partition window, "
                    "on the stored scan_preview and market_regime rows; ledger rows, scan history, snapshots, "
                    "the state, the limiter state, the tick record and the outbox messages committed in one "
                    "transaction.",
    )
    @data_errors_are_final
    def paper_engine(context: dg.AssetExecutionContext, project_config: ProjectConfigResource,
                     warehouse: WarehouseResource, model_store: ModelStoreResource):
        _refuse_after_failed_invariants(context)
        cfg_ = project_config.load()
        start, end = partition_window(context)
        try:
            result = run_tick(warehouse.get(), cfg_, start=start, until=end, validate=validate_engine_outputs,
                              configs=project_config.timeline,
                              scores=scorer(warehouse.get(), cfg_, Path(model_store.root)))
        except EngineRunError as exc:
            raise dg.Failure(str(exc), allow_retries=False) from None
        out = result.outputs
        for note in result.log_only:  # no channel, or trade events without notifications.trade_events
            context.log.info(note_text(note))
        per_day = dg.MetadataValue.json(engine_points_per_day(result))
        sells = out.ledger_rows[out.ledger_rows["side"] == "SELL"] if len(out.ledger_rows) else out.ledger_rows
        common = {"cycle_points": result.processed, "cycle_points_per_day": per_day,
                  "cursor": str(result.state.cursor), "config_version": out.config_version}
        # engine_state first: the other outputs depend on it (the state the tick started from, previous day).
        yield dg.MaterializeResult(asset_key=dg.AssetKey(ENGINE_STATE_TABLE), metadata={
            **common, "open_positions": len(result.state.positions),
            "pending_orders": len(result.state.pending_orders), "watermark": str(out.watermark),
            "days_written": dg.MetadataValue.json([f"{d.day:%Y-%m-%d}" for d in result.days])})
        yield dg.MaterializeResult(asset_key=trades_key, metadata={
            **common, "new_rows": len(out.ledger_rows),
            "new_fills": int((out.ledger_rows["side"] == "BUY").sum()) if len(out.ledger_rows) else 0,
            "closed": len(sells),
            "closed_trades": dg.MetadataValue.md(markdown_table(sells[[
                "trade_group_id", "exit_reason", "pnl_usd", "pnl_pct"]].round(6)) if len(sells) else "(none)")})
        yield dg.MaterializeResult(asset_key=dg.AssetKey(SCAN_HISTORY_TABLE), metadata={
            **common, "new_rows": len(out.scan_rows), "decisions": json_counts(out.scan_rows["decision"])
            if len(out.scan_rows) else dg.MetadataValue.json({})})
        yield dg.MaterializeResult(asset_key=dg.AssetKey(SNAPSHOTS_TABLE), metadata={
            **common, "new_rows": len(out.snapshots),
            "mark_equity": float(out.snapshots["equity"].iloc[-1]) if len(out.snapshots) else None})
        yield dg.MaterializeResult(asset_key=dg.AssetKey(LIMITER_TABLE), metadata={
            **common, "symbols": sum(len(d.limiter) for d in result.days[-1:] if d.limiter is not None),
            "days_written": len(result.days)})
        yield dg.MaterializeResult(asset_key=dg.AssetKey(TICKS_TABLE), metadata={
            **common, "tick_id": result.tick_id, "watermark": str(out.watermark)})
        yield dg.MaterializeResult(asset_key=dg.AssetKey(OUTBOX_TABLE), metadata={
            **common, "queued": result.messages, "log_only": len(result.log_only)})
        dec, ex = out.shadow_decisions, out.shadow_exits
        yield dg.MaterializeResult(asset_key=dg.AssetKey(SHADOW_OUTCOMES_TABLE), metadata={
            **common, "new_rows": len(dec), "takes_opened": int(dec["opened"].sum()) if len(dec) else 0,
            "by_variation": json_counts(dec.loc[dec["opened"], "variation"]) if len(dec) else dg.MetadataValue.json({}),
            "open_shadows": len(result.state.shadows.positions)})
        closed = ex.loc[~ex["expired"]] if len(ex) else ex
        yield dg.MaterializeResult(asset_key=dg.AssetKey(SHADOW_EXITS_TABLE), metadata={
            **common, "new_rows": len(ex), "outcomes": json_counts(closed["outcome"]) if len(closed)
            else dg.MetadataValue.json({}), "net_pnl_usd": float(closed["pnl_usd"].sum()) if len(closed) else 0.0})

    @dg.asset_check(asset=trades_key, name=LEDGER_INVARIANTS, blocking=True, partitions_def=daily_partitions,
                    pool=WAREHOUSE_POOL,
                    description="Every ledger row is well formed and consistent with its group (SPEC §4–§5.3); "
                                "open + pending within limits.max_open_* (I-3). Blocking: nothing downstream of "
                                "the ledger runs on a broken one, and the next tick refuses to run.")
    def ledger_invariants(project_config: ProjectConfigResource, warehouse: WarehouseResource):
        cfg_ = project_config.load()
        wh = warehouse.get()
        problems: list[str] = []
        try:
            ledger = read_ledger(wh)
            check_ledger(ledger)
        except Exception as exc:  # the check reports what is broken
            problems.append(str(exc))
            ledger = None
        row = wh.engine_state()
        if row is not None:
            problems += limit_violations(EngineState.from_json(row["state_json"]).open_counts(), cfg_)
        return dg.AssetCheckResult(passed=not problems, severity=dg.AssetCheckSeverity.ERROR,
                                   metadata={"problems": dg.MetadataValue.json(problems[:20]),
                                             "ledger_rows": 0 if ledger is None else len(ledger)})

    @dg.asset_check(asset=trades_key, name=REPLAY_MATCHES_LEDGER, blocking=False, partitions_def=daily_partitions,
                    pool=WAREHOUSE_POOL, additional_deps=[dg.AssetKey(n) for n in ENGINE_OUTPUTS[1:]],
                    description="Replays each day of the partition from the engine state stored at the end of the "
                                "day before, on the bars, scan rows and events stored now, and compares ledger, scan "
                                "history, snapshots and end state with the stored rows; names the first difference.")
    def replay_matches_ledger(context: dg.AssetCheckExecutionContext, project_config: ProjectConfigResource,
                              warehouse: WarehouseResource, model_store: ModelStoreResource):
        cfg_ = project_config.load()
        wh = warehouse.get()
        tw = context.op_execution_context.partition_time_window
        start, end = pd.Timestamp(tw.start).tz_convert("UTC"), pd.Timestamp(tw.end).tz_convert("UTC")
        # each day is replayed under the config version it ran with (SPEC §0.3), not the one loaded now
        reports = [_audit(wh, config_of_day(wh, cfg_, d), d, project_config, model_store.root)
                   for d in utc_days(start, end)]
        failed = [r for r in reports if not r.passed]
        table = pd.DataFrame([{"day": f"{r.day:%Y-%m-%d}", "cycle_points": r.cycle_points, "passed": r.passed,
                               "first_difference": r.first_difference or ""} for r in reports])
        return dg.AssetCheckResult(
            passed=not failed, severity=dg.AssetCheckSeverity.ERROR,
            metadata={"days": len(reports), "cycle_points": int(sum(r.cycle_points for r in reports)),
                      "first_difference": failed[0].first_difference if failed else "",
                      "days_audited": dg.MetadataValue.md(markdown_table(table))})

    @dg.asset_check(asset=dg.AssetKey(SHADOW_OUTCOMES_TABLE), name=SHADOW_OUTCOMES_VALID, blocking=False,
                    partitions_def=daily_partitions, pool=WAREHOUSE_POOL,
                    additional_deps=[dg.AssetKey(SHADOW_EXITS_TABLE), trades_key],
                    description="The partition's shadows with their derived outcomes (decision ⋈ exit ⋈ real trade) "
                                "pass the Pandera schema: every opened take has an outcome (PENDING while open), "
                                "outcomes in WIN / LOSS / TIMEOUT / PENDING, ids unique.")
    def shadow_outcomes_valid(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource):
        tw = context.op_execution_context.partition_time_window
        start, end = pd.Timestamp(tw.start).tz_convert("UTC"), pd.Timestamp(tw.end).tz_convert("UTC")
        rows = warehouse.get().shadow_rows(start, end)
        if rows.decisions is None or rows.decisions.empty:
            return dg.AssetCheckResult(passed=True, metadata={"rows": 0})
        outcomes = derive_outcomes(rows.decisions, rows.exits, rows.real_sells)
        try:
            ShadowOutcomeSchema.validate(outcomes, lazy=True)
            problems = ""
        except Exception as exc:  # pandera's SchemaErrors: reported, not raised
            problems = str(exc)[:2000]
        takes = outcomes.loc[outcomes["opened"]]
        return dg.AssetCheckResult(
            passed=not problems, severity=dg.AssetCheckSeverity.ERROR,
            metadata={"rows": len(outcomes), "takes": len(takes), "problems": problems,
                      "outcomes": json_counts(takes["outcome"].fillna("EXPIRED")),
                      "matched_real_trade": json_counts(takes["matched_real_trade"].dropna().astype(str))})

    return paper_engine, [ledger_invariants, replay_matches_ledger, shadow_outcomes_valid]

