"""The operators' view in Dagster (SPEC §12; issue 13): ``daily_performance`` (per UTC day × strategy),
``trading_report`` (the scheduled MORNING / MIDDAY / EVENING / WEEKLY message to #reports, through the outbox) and
``html_report`` (one self-contained HTML file: equity, drawdown, P&L by strategy and exit reason, a price chart with
entries and exits, open positions, the readiness board, the protection timeline, the shadow leaderboard, the model
cards). ``reports_job`` writes the report and the HTML file; the four report schedules run it at their local times
in ``notifications.timezone`` (DST-aware), and the UI's Materialize or ``cryptotracker report`` make one on
demand."""

from pathlib import Path

import dagster as dg
import pandas as pd

from resources.config import ProjectConfigResource
from resources.warehouse import WarehouseResource

from ..core import report_schedule as RS
from ..core.notices import notice_rows
from ..core.report_schemas import DailyPerformanceSchema
from ..partitions import daily_partitions
from ..services.html_report import write_html_report
from ..services.trading_report import daily_performance as daily_rows
from ..services.trading_report import trading_report as report_payload
from .common import OWNERS, WAREHOUSE_POOL, dagster_type, markdown_table, partition_window
from .models import ModelStoreResource

GROUP = "reports"
DAILY_PERFORMANCE = "daily_performance"
TRADING_REPORT = "trading_report"
HTML_REPORT = "html_report"
DATA_EXPORT = "data_export"
REPORTS_JOB = "reports_job"
REPORT_FILE = "report.html"


class ReportStoreResource(dg.ConfigurableResource):
    """Where the HTML report is written (``$DAGSTER_HOME/reports`` by default)."""

    folder: str

    def path(self) -> Path:
        return Path(self.folder) / REPORT_FILE


@dg.asset(name=DAILY_PERFORMANCE, group_name=GROUP, partitions_def=daily_partitions,
          io_manager_key="table_io_manager", dagster_type=dagster_type(DailyPerformanceSchema),
          metadata={"table": DAILY_PERFORMANCE, "time_column": "day"},
          deps=[dg.AssetKey("paper_trades"), dg.AssetKey("scan_history")],
          backfill_policy=dg.BackfillPolicy.single_run(), pool=WAREHOUSE_POOL, kinds={"pandas", "duckdb"},
          owners=OWNERS,
          description="Per UTC day × strategy: setups detected and taken, trades closed, wins, losses, net P&L "
                      "USD and size-weighted %, fees, the champion's composite. Today's row grows with every "
                      "engine tick.")
def daily_performance(context: dg.AssetExecutionContext, project_config: ProjectConfigResource,
                      warehouse: WarehouseResource, model_store: ModelStoreResource) -> pd.DataFrame:
    cfg = project_config.load()
    start, end = partition_window(context)
    wh = warehouse.get()
    days = pd.date_range(start, end - pd.Timedelta(days=1), freq="1D", tz="UTC")
    frames = [daily_rows(wh, cfg, d, models_root=model_store.root) for d in days]
    out = pd.concat(frames, ignore_index=True) if frames else daily_rows(wh, cfg, start, models_root=model_store.root)
    context.add_output_metadata({
        "dagster/row_count": len(out), "trades": int(out["trades"].sum()),
        "net_pnl_usd": float(out["net_pnl_usd"].sum()),
        "preview": dg.MetadataValue.md(markdown_table(out.tail(12).round(6)))})
    return out


class TradingReportConfig(dg.Config):
    """``reports``: the scheduled kinds of the tick (MORNING, MIDDAY, EVENING, WEEKLY); empty: ON-DEMAND over the
    last 24 h. ``scheduled_for``: the tick (ISO); empty: now. ``catchup``: one CATCH-UP report since the last one."""

    reports: list[str] = []
    scheduled_for: str = ""
    catchup: bool = False


def report_specs(cfg, config: TradingReportConfig, wh, now: pd.Timestamp) -> list[tuple[str, pd.Timestamp,
                                                                                           pd.Timestamp, list[str]]]:
    """(report, period start, scheduled time = period end, missed reports) of each report this run writes."""
    tick = pd.Timestamp(config.scheduled_for).tz_convert("UTC") if config.scheduled_for else now
    if config.catchup:
        last = wh.last_report((*RS.KINDS, RS.CATCH_UP), before=tick)  # on-demand reports are not in the schedule
        start, missed = RS.catchup_period(cfg, tick, last["period_end"] if last else None,
                                          last["scheduled_for"] if last else None)
        return [(RS.CATCH_UP, start, tick, missed)]
    if not config.reports:
        return [(RS.ON_DEMAND, tick - pd.Timedelta(hours=24), tick, [])]
    lookback = {s.kind: s.lookback for s in RS.slots(cfg)}
    return [(k, tick - lookback[k], tick, []) for k in config.reports]


@dg.asset(name=TRADING_REPORT, group_name=GROUP, pool=WAREHOUSE_POOL, kinds={"duckdb", "slack"}, owners=OWNERS,
          deps=[dg.AssetKey("paper_trades"), dg.AssetKey("portfolio_snapshots"), dg.AssetKey("market_regime")],
          metadata={"table": "report_log"},
          description="The trading report (SPEC §12.2) to #reports through the outbox: realised and unrealised P&L "
                      "(size-weighted %), trades, win rate per strategy, fees, slippage, best / worst, equity, "
                      "cash, open x/max, top open with distance to TP, near-level positions, BTC, regime, vol24h, "
                      "ready counts, gates, champions. Logged in report_log; a re-run of a tick says nothing twice.")
def trading_report(context: dg.AssetExecutionContext, config: TradingReportConfig,
                   project_config: ProjectConfigResource, warehouse: WarehouseResource,
                   model_store: ModelStoreResource) -> dg.MaterializeResult:
    cfg = project_config.load()
    wh = warehouse.get()
    now = pd.Timestamp.now(tz="UTC")
    unknown = [k for k in config.reports if k not in RS.KINDS]
    if unknown:
        raise dg.Failure(f"trading_report: unknown report kind(s) {unknown}; expected {list(RS.KINDS)}",
                         allow_retries=False)
    meta: dict = {}
    for kind, start, tick, missed in report_specs(cfg, config, wh, now):
        payload = report_payload(wh, cfg, kind=kind, period_start=start, period_end=tick, as_of=min(tick, now),
                                 catchup_of=missed, models_root=model_store.root)
        note = {"kind": "trading_report", "cycle_point": tick,
                "identity": {"report": kind, "scheduled_for": tick.isoformat()}, **payload}
        rows = notice_rows([note], cfg, "reports")
        queued = wh.log_report(kind, tick, start, tick, rows, now)
        context.log.info(f"{kind} report {start:%Y-%m-%d %H:%M} → {tick:%Y-%m-%d %H:%M} UTC: "
                         f"{'queued' if queued else 'already queued'} ({rows['message_id'].iloc[0]})")
        meta.update({f"{kind}/message_id": str(rows["message_id"].iloc[0]), f"{kind}/queued": int(queued),
                     f"{kind}/realised_usd": float(payload.get("realised_usd") or 0.0),
                     f"{kind}/unrealised_usd": float(payload.get("unrealised_usd") or 0.0),
                     f"{kind}/text": dg.MetadataValue.md(f"```\n{rows['text'].iloc[0]}\n```")})
        if missed:
            meta[f"{kind}/replaces"] = dg.MetadataValue.json(missed)
    return dg.MaterializeResult(metadata=meta)


class HtmlReportConfig(dg.Config):
    symbol: str = ""  # the symbol of the price chart (default: the one with most closed trades, else BTC)


@dg.asset(name=HTML_REPORT, group_name=GROUP, pool=WAREHOUSE_POOL, kinds={"html"}, owners=OWNERS,
          deps=[dg.AssetKey("paper_trades"), dg.AssetKey("portfolio_snapshots"), dg.AssetKey("market_regime"),
                dg.AssetKey("readiness_board"), dg.AssetKey("shadow_performance"), dg.AssetKey("champion_model"),
                dg.AssetKey(TRADING_REPORT)],
          description="One self-contained HTML file (opens with no network; static SVG charts): equity book and "
                      "mark with drawdown, P&L by strategy and by exit reason, a price chart with entries and "
                      "exits, open positions, the readiness board, the market-protection timeline, the shadow "
                      "leaderboard and the model cards. Path and summary in the metadata.")
def html_report(context: dg.AssetExecutionContext, config: HtmlReportConfig, project_config: ProjectConfigResource,
                warehouse: WarehouseResource, model_store: ModelStoreResource,
                report_store: ReportStoreResource) -> dg.MaterializeResult:
    result = write_html_report(warehouse.get(), project_config.load(), report_store.path(),
                               models_root=model_store.root, symbol=config.symbol or None)
    context.log.info(f"HTML report: {result.path} ({result.bytes:,} bytes)")
    return dg.MaterializeResult(metadata=report_metadata(result))


def report_metadata(result) -> dict:
    """The asset metadata of a written HTML report (the CLI reports the same for its materializations)."""
    summary = {k: v for k, v in result.summary.items() if isinstance(v, (int, float, str)) and v == v}
    return {"path": dg.MetadataValue.path(str(result.path)), "bytes": int(result.bytes), **summary}


reports_job = dg.define_asset_job(
    REPORTS_JOB, selection=dg.AssetSelection.assets(TRADING_REPORT, HTML_REPORT),
    description="The trading report to #reports and the HTML report (the report schedules; on demand).",
    tags={"cryptotracker/kind": "reports"})

data_export = dg.AssetSpec(DATA_EXPORT, group_name=GROUP, kinds={"csv"}, owners=OWNERS,
                           deps=[dg.AssetKey("paper_trades"), dg.AssetKey("scan_history")],
                           description="CSV + Markdown exports written by `cryptotracker export --window 48h --out "
                                       "DIR` (OHLC, trades, scans, a summary); each export is recorded here.")


def build_report_schedules(cfg, clock=lambda: pd.Timestamp.now(tz="UTC")) -> list[dg.ScheduleDefinition]:
    """One schedule per report slot at its local time in ``notifications.timezone``; late ticks (evaluated more
    than ``notifications.catchup_quiet_min`` after their time by ``clock``) collapse into one catch-up report
    (:func:`..core.report_schedule.decide`)."""
    return [report_schedule(cfg, s, clock) for s in RS.slots(cfg)]


def report_schedule(cfg, slot: RS.Slot, clock) -> dg.ScheduleDefinition:
    tz = cfg.notifications.timezone

    @dg.schedule(name=f"{slot.kind.lower()}_report_schedule", cron_schedule=slot.cron, job=reports_job,
                 execution_timezone=tz, default_status=dg.DefaultScheduleStatus.STOPPED,
                 description=f"The {slot.kind} trading report at {slot.hour:02d}:{slot.minute:02d} "
                             f"{slot.weekday + ' ' if slot.weekday else ''}{tz} (last {slot.lookback}); late ticks "
                             f"collapse into one catch-up report.")
    def _schedule(context: dg.ScheduleEvaluationContext):
        tick = pd.Timestamp(context.scheduled_execution_time).tz_convert("UTC")
        d = RS.decide(cfg, tick, clock())
        if d.skip_reason is not None:
            return dg.SkipReason(d.skip_reason)
        if d.catchup and d.reports[0] != slot.kind:  # Sunday 19:00: the EVENING schedule sends the one catch-up
            return dg.SkipReason(f"the catch-up of {tick.isoformat()} is sent by the {d.reports[0]} schedule")
        kinds = [slot.kind] if not d.catchup else []
        key = f"report:{'catchup' if d.catchup else slot.kind}:{tick:%Y%m%dT%H%M}"
        return dg.RunRequest(run_key=key, tags={"cryptotracker/report": "CATCH-UP" if d.catchup else slot.kind,
                                                "cryptotracker/scheduled_for": tick.isoformat()},
                             run_config={"ops": {TRADING_REPORT: {"config": {
                                 "reports": kinds, "scheduled_for": tick.isoformat(), "catchup": d.catchup}}}})

    return _schedule
