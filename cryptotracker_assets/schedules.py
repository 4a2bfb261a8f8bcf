"""Schedules (SPEC §13): incremental OHLC updates, data health, gap healing, retention. All UTC crons, all
STOPPED by default (enable them in the UI: Automation → schedule → toggle)."""


import dagster as dg
import pandas as pd

from .assets.common import ohlc_asset_name
from .core.config import Config, Timeframe
from .jobs import FEATURES_JOB, ohlc_job_name

DATA_TZ = "UTC"


def ohlc_run_requests(
    tf: Timeframe, cfg: Config, tick: pd.Timestamp, materialized: set[str]
) -> list[dg.RunRequest]:
    """Run requests of the ``tf`` ingest schedule at ``tick`` (UTC).

    - Days overlapping [tick − overlap, tick) get an incremental run (re-fetch from the newest stored bar minus
      the overlap, up to the bars closed at ``tick``).
    - Days in [tick − max_catchup_d, tick) never materialized get a full run (the start depth when nothing is
      stored, and catch-up after downtime).
    Run keys are derived from the timeframe, day and tick, so a tick never runs twice.
    """
    ing = cfg.data.ingest.of(tf)
    tick = tick.tz_convert("UTC")
    asset = ohlc_asset_name(tf)
    overlap_start = tick - pd.Timedelta(minutes=ing.overlap_min)
    incremental_days = pd.date_range(overlap_start.floor("1D"), (tick - pd.Timedelta(microseconds=1)).floor("1D"),
                                     freq="1D", tz="UTC")
    catchup_days = pd.date_range((tick - pd.Timedelta(days=ing.max_catchup_d)).floor("1D"),
                                 (tick - pd.Timedelta(microseconds=1)).floor("1D"), freq="1D", tz="UTC")
    requests: dict[str, bool] = {}
    for d in catchup_days:
        key = d.strftime("%Y-%m-%d")
        if key not in materialized:
            requests[key] = False
    for d in incremental_days:
        key = d.strftime("%Y-%m-%d")
        requests.setdefault(key, key in materialized)
    out = []
    for key in sorted(requests):
        incremental = requests[key]
        out.append(
            dg.RunRequest(
                run_key=f"{asset}:{key}:{tick.strftime('%Y%m%dT%H%M')}",
                partition_key=key,
                run_config={"ops": {asset: {"config": {"incremental": incremental, "as_of": tick.isoformat()}}}},
                tags={"cryptotracker/tick": tick.isoformat(), "cryptotracker/mode": "incremental" if incremental
                      else "full"},
            )
        )
    return out


def build_ohlc_schedule(tf: Timeframe, cfg: Config) -> dg.ScheduleDefinition:
    asset_key = dg.AssetKey(ohlc_asset_name(tf))

    @dg.schedule(
        name=f"ohlc_{tf.value}_schedule",
        cron_schedule=cfg.data.ingest.of(tf).cron_utc,
        job_name=ohlc_job_name(tf),
        execution_timezone=DATA_TZ,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=f"Incremental {tf.value} candles ({cfg.data.ingest.of(tf).cron_utc} UTC, "
                    f"{cfg.data.ingest.of(tf).overlap_min} min overlap).",
    )
    def _schedule(context: dg.ScheduleEvaluationContext):
        tick = pd.Timestamp(context.scheduled_execution_time).tz_convert("UTC")
        materialized = set(context.instance.get_materialized_partitions(asset_key))
        return ohlc_run_requests(tf, cfg, tick, materialized)

    return _schedule


def build_maintenance_schedules(cfg: Config) -> list[dg.ScheduleDefinition]:
    health = cfg.data.health
    specs = [
        ("data_health_schedule", f"*/{health.every_min} * * * *", "data_health_job",
         "Freshness, completeness, aggregate and uniqueness checks (data.health.every_min)."),
        ("gap_healing_schedule", health.gaps.cron_utc, "gap_healing_job",
         "Re-fetch gaps in the stored candles (data.health.gaps.cron_utc)."),
        ("retention_schedule", cfg.data.retention_cron_utc, "retention_job",
         "Apply data.retention_d (data.retention_cron_utc)."),
        # The 15m feature bars close on the 15m candle grid: the same cadence as the 15m ingest.
        ("features_schedule", cfg.data.ingest.of(Timeframe.M15).cron_utc, FEATURES_JOB,
         "The 15m ML features and the daily BTC context of today (data.ingest.15m.cron_utc)."),
    ]
    out = []
    for name, cron, job, description in specs:
        if job == FEATURES_JOB:
            out.append(_today_schedule(name, cron, job, description))
        else:
            out.append(dg.ScheduleDefinition(name=name, cron_schedule=cron, job_name=job, execution_timezone=DATA_TZ,
                                             default_status=dg.DefaultScheduleStatus.STOPPED,
                                             description=description))
    return out


def _today_schedule(name: str, cron: str, job: str, description: str) -> dg.ScheduleDefinition:
    """A schedule of a daily-partitioned job that runs today's (UTC) partition at every tick."""

    @dg.schedule(name=name, cron_schedule=cron, job_name=job, execution_timezone=DATA_TZ,
                 default_status=dg.DefaultScheduleStatus.STOPPED, description=description)
    def _schedule(context: dg.ScheduleEvaluationContext):
        tick = pd.Timestamp(context.scheduled_execution_time).tz_convert("UTC")
        day = (tick - pd.Timedelta(microseconds=1)).floor("1D").strftime("%Y-%m-%d")
        return dg.RunRequest(run_key=f"{name}:{tick:%Y%m%dT%H%M}", partition_key=day)

    return _schedule
