"""Shadow analysis in Dagster (SPEC §10.3–§10.5): ``shadow_performance`` (the analyzer, every
``shadow.analyzer_every_h``) and ``threshold_recommendations`` (the threshold manager's proposals, in the daily job
at ``ml.daily_job_at`` America/Los_Angeles after the analyzer). Both unpartitioned, both append-only tables with
their history; the latest analysis is shown as the leaderboard (Markdown) and one numeric metadata entry per
variation, which the UI plots across materializations. ``shadow_outcomes`` / ``shadow_exits`` are written by the
paper engine's tick (:mod:`.paper`)."""


import dagster as dg
import pandas as pd

from resources.config import ProjectConfigResource
from resources.warehouse import WarehouseResource

from ..core.config import ConfigError
from ..core.revision_schemas import ProposalSchema
from ..core.shadow_schemas import ShadowPerformanceSchema
from ..core.shadows.analyzer import ALL, STRATEGIES, leaderboard
from ..services.shadow_analysis import (ShadowAnalysisError, analysis_time, daily_summary, empty_performance,
                                        make_proposals, queue_daily_summary, run_analysis)
from ..storage.engine import SHADOW_EXITS_TABLE, SHADOW_OUTCOMES_TABLE
from .common import OWNERS, WAREHOUSE_POOL, markdown_table, table_schema

GROUP = "shadows"
SHADOW_PERFORMANCE = "shadow_performance"
THRESHOLD_RECOMMENDATIONS = "threshold_recommendations"
SHADOW_ANALYSIS_JOB = "shadow_analysis_job"
SHADOW_DAILY_JOB = "shadow_daily_job"
PERFORMANCE_VALID = "performance_valid"


def _leaderboard_md(perf: pd.DataFrame, window_h: float) -> str:
    parts = []
    for strategy in (ALL, *STRATEGIES):
        board = leaderboard(perf, window_h, (strategy,))
        if board.empty:
            continue
        shown = board.assign(**{c: (100 * board[c]).round(2) for c in ("win_rate", "outperformance",
                                                                          "size_weighted_return")})
        shown = shown.rename(columns={"win_rate": "win_rate_%", "outperformance": "vs_champion_pp",
                                      "size_weighted_return": "size_weighted_return_%"})
        parts.append(f"**{strategy}**\n\n" + markdown_table(shown.drop(columns=["strategy"]).round(4)))
    return "\n\n".join(parts) or "(no shadow takes in the window yet)"


@dg.asset(name=SHADOW_PERFORMANCE, group_name=GROUP, pool=WAREHOUSE_POOL, kinds={"duckdb"}, owners=OWNERS,
          deps=[dg.AssetKey(SHADOW_OUTCOMES_TABLE), dg.AssetKey(SHADOW_EXITS_TABLE)],
          metadata={"table": SHADOW_PERFORMANCE, "dagster/column_schema": table_schema(ShadowPerformanceSchema)},
          description="The shadow analyzer (SPEC §10.3) at time t = the engine's cursor: per window "
                      "(shadow.windows_h) × variation × strategy (and ALL) win rate, mean net %, total USD, "
                      "size-weighted return, best, worst, Sharpe, max drawdown, hold, outperformance vs CHAMPION, "
                      "two-proportion z and Welch p-values (Holm within each window's family), tier and the "
                      "Deflated Sharpe Ratio of the best variation. Appended per analysis; history kept.")
def shadow_performance(context: dg.AssetExecutionContext, project_config: ProjectConfigResource,
                       warehouse: WarehouseResource) -> dg.MaterializeResult:
    cfg = project_config.load()
    wh = warehouse.get()
    try:
        perf = run_analysis(wh, cfg)
    except ShadowAnalysisError as exc:
        raise dg.Failure(str(exc), allow_retries=False) from None
    w = cfg.shadow.recommendation_window_h
    board = perf[(perf["window_h"] == w) & (perf["strategy"] == ALL)]
    plots = {f"outperformance_{w:g}h/{r.variation}": float(r.outperformance)
             for r in board.itertuples() if pd.notna(r.outperformance)}
    plots.update({f"size_weighted_return_{w:g}h/{r.variation}": float(r.size_weighted_return)
                  for r in board.itertuples() if pd.notna(r.size_weighted_return)})
    context.log.info(f"shadow analysis at {perf['analyzed_at'].iloc[0] if len(perf) else 'n/a'}: {len(perf)} rows")
    return dg.MaterializeResult(metadata={
        "analyzed_at": str(analysis_time(wh)), "rows": len(perf),
        "tiers": dg.MetadataValue.json({str(k): int(v) for k, v in perf["tier"].value_counts().items()}),
        f"leaderboard_{w:g}h": dg.MetadataValue.md(_leaderboard_md(perf, w)),
        **plots,
    })


@dg.asset_check(asset=SHADOW_PERFORMANCE, name=PERFORMANCE_VALID, blocking=False, pool=WAREHOUSE_POOL,
                description="The latest analysis passes the Pandera schema (tiers, p-values in [0, 1], CHAMPION "
                            "the baseline, one row per window × strategy × variation).")
def performance_valid(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    perf = warehouse.get().performance()
    if perf is None or perf.empty:
        return dg.AssetCheckResult(passed=True, metadata={"rows": 0})
    try:
        ShadowPerformanceSchema.validate(perf.astype({"trades": "int64", "pending": "int64"}), lazy=True)
        problems = ""
    except Exception as exc:  # pandera's SchemaErrors, reported
        problems = str(exc)[:2000]
    return dg.AssetCheckResult(passed=not problems, severity=dg.AssetCheckSeverity.ERROR,
                               metadata={"rows": len(perf), "problems": problems})


@dg.asset(name=THRESHOLD_RECOMMENDATIONS, group_name=GROUP, pool=WAREHOUSE_POOL, kinds={"duckdb"}, owners=OWNERS,
          deps=[dg.AssetKey(SHADOW_PERFORMANCE), dg.AssetKey("market_regime")],
          metadata={"table": THRESHOLD_RECOMMENDATIONS, "dagster/column_schema": table_schema(ProposalSchema)},
          description="The threshold manager (SPEC §10.4–§10.5): recommendations of the latest analysis "
                      "(recommendable variations with enough evidence), each stepped (graduated by tier, bounded, "
                      "minimum change) into a proposal, with the safety gates at proposal time (regime stable "
                      "12 h, ≤ 3 applied per UTC day); a refused one is kept with its blocked reason. Proposals "
                      "expire after threshold_manager.proposal_ttl_h; only an operator's approval "
                      "(`cryptotracker approve` or approve_proposal_job) changes the config. Also queues the shadow "
                      "daily summary.")
def threshold_recommendations(context: dg.AssetExecutionContext, project_config: ProjectConfigResource,
                              warehouse: WarehouseResource) -> dg.MaterializeResult:
    cfg = project_config.load()
    wh = warehouse.get()
    perf = wh.performance()
    if perf is None or perf.empty:  # no window holds completed shadows yet: nothing to recommend, still a summary
        try:
            t = analysis_time(wh)
        except ShadowAnalysisError as exc:
            raise dg.Failure(str(exc), allow_retries=False) from None
        perf = empty_performance(cfg)
    else:
        t = pd.Timestamp(perf["analyzed_at"].iloc[0]).tz_convert("UTC")
    run = make_proposals(wh, cfg, perf, t)
    text = daily_summary(wh, cfg, perf, run, t)
    queued = queue_daily_summary(wh, cfg, text, t)
    context.log.info(text)
    shown = run.rows[["proposal_id", "strategy", "parameter", "variation", "tier", "changes_json",
                      "blocked_reason"]] if len(run.rows) else None
    return dg.MaterializeResult(metadata={
        "analyzed_at": str(t), "recommendations": run.recommendations, "new_proposals": len(run.rows),
        "blocked": int(run.rows["blocked_reason"].notna().sum()) if len(run.rows) else 0,
        "skipped_open": dg.MetadataValue.json(list(run.skipped_open)),
        "proposals": dg.MetadataValue.md(markdown_table(shown) if shown is not None else "(none)"),
        "summary_queued": queued})


shadow_analysis_job = dg.define_asset_job(
    SHADOW_ANALYSIS_JOB, selection=dg.AssetSelection.assets(SHADOW_PERFORMANCE).without_checks()
    | dg.AssetSelection.checks_for_assets(SHADOW_PERFORMANCE),
    tags={"cryptotracker/kind": "shadows"},
    description="The shadow analyzer (shadow_performance) every shadow.analyzer_every_h.")
shadow_daily_job = dg.define_asset_job(
    SHADOW_DAILY_JOB, selection=dg.AssetSelection.assets(SHADOW_PERFORMANCE, THRESHOLD_RECOMMENDATIONS),
    tags={"cryptotracker/kind": "shadows"},
    description="The daily shadow job (ml.daily_job_at, America/Los_Angeles): analyzer → proposals → the shadow "
                "daily summary (retraining joins it with the models capability).")


def _every_h(every_h: float) -> str:
    """The UTC cron of ``shadow.analyzer_every_h``: whole hours dividing a day."""
    if float(every_h).is_integer() and every_h >= 1 and 24 % int(every_h) == 0:
        return "0 * * * *" if int(every_h) == 1 else f"0 */{int(every_h)} * * *"
    raise ConfigError(f"`shadow.analyzer_every_h`: {every_h} h is not a schedule (whole hours dividing a day)")


def build_shadow_schedules(cfg) -> list[dg.ScheduleDefinition]:
    """The analyzer every ``shadow.analyzer_every_h`` (UTC) and the daily job at ``ml.daily_job_at`` in
    ``notifications.timezone`` (DST-aware)."""
    hh, mm = (int(x) for x in cfg.ml.daily_job_at.split(":"))
    return [
        dg.ScheduleDefinition(name="shadow_analysis_schedule", cron_schedule=_every_h(cfg.shadow.analyzer_every_h),
                              job=shadow_analysis_job, execution_timezone="UTC",
                              default_status=dg.DefaultScheduleStatus.STOPPED,
                              description="shadow_performance every shadow.analyzer_every_h (UTC)."),
        dg.ScheduleDefinition(name="shadow_daily_schedule", cron_schedule=f"{mm} {hh} * * *", job=shadow_daily_job,
                              execution_timezone=cfg.notifications.timezone,
                              default_status=dg.DefaultScheduleStatus.STOPPED,
                              description=f"The daily shadow job at {cfg.ml.daily_job_at} "
                                          f"{cfg.notifications.timezone}: analyzer → proposals → summary."),
    ]
