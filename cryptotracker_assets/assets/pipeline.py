"""The SPEC §13.2 pipeline checks in Dagster, run by ``data_health_job``: a thin layer that reads the run records of
the Dagster instance and the warehouse, applies the rules of :mod:`..core.pipeline_health` and queues each failing
check's ONE alert in the notification outbox (``notifications.channels.alerts``), which the outbox delivery sensor
sends; a re-run of a check that finds the same problem queues nothing new.

- ``ingest_run_failures`` on each ``ohlc_<tf>``: a run of ``ohlc_<tf>_job`` failed in the last 24 h (WARN);
- ``long_runs`` on ``engine_state``: a run of this project in progress for longer than ``data.health.max_run_min``
  (WARN; every warehouse step shares one pool, so a hung run holds the engine's ticks back too);
- ``engine_lag`` on ``engine_state``: the engine behind the newest cycle point the stored bars allow by more than
  ``data.health.max_engine_lag_cycles`` (ERROR), naming how far and why when the market symbol's bars stopped.
"""


from datetime import timezone

import dagster as dg
import pandas as pd

from resources.config import ProjectConfigResource
from resources.warehouse import WarehouseResource

from .. import checks as C
from ..core.config import Timeframe
from ..core.pipeline_health import FAILED_RUN_WINDOW, Finding, RunInfo, failed_ingest_runs, long_runs
from ..jobs import INGEST_KIND, KIND_TAG, PIPELINE_ASSET, ohlc_job_name
from ..services.ingest import utc_now
from ..services.pipeline_health import engine_lag_finding, queue_alert
from ..storage.warehouse import Warehouse
from .common import WAREHOUSE_POOL, ohlc_asset_name

IN_PROGRESS = (dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING)
PARTITION_TAG = "dagster/partition"


def _utc(value) -> pd.Timestamp | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return pd.Timestamp(value, unit="s", tz="UTC")
    return pd.Timestamp(value).tz_convert("UTC") if pd.Timestamp(value).tzinfo else pd.Timestamp(value, tz="UTC")


def run_info(record: dg.RunRecord) -> RunInfo:
    """A Dagster run record as the pipeline rules take it."""
    run = record.dagster_run
    return RunInfo(run_id=run.run_id, job_name=run.job_name, status=run.status.value,
                   partition=run.tags.get(PARTITION_TAG), created=_utc(record.create_timestamp),
                   started=_utc(record.start_time), ended=_utc(record.end_time))


def _metadata(values: dict) -> dict:
    out = {}
    for k, v in values.items():
        if v is None:
            continue
        out[k] = dg.MetadataValue.json(v) if isinstance(v, (list, dict)) else v
    return out


def check_result(finding: Finding, check_name: str, wh: Warehouse, now: pd.Timestamp) -> dg.AssetCheckResult:
    """The check's result; a failing finding first queues its alert (once per problem)."""
    alert = queue_alert(wh, finding, now)
    return dg.AssetCheckResult(
        passed=finding.passed, severity=C.SEVERITY[check_name], description=finding.description[:2000],
        metadata={**_metadata(finding.metadata), "alert_message_id": alert.message_id or "",
                  "alert_queued": alert.queued})


def build_pipeline_checks(timeframes: list[Timeframe]) -> list[dg.AssetChecksDefinition]:
    """The pipeline checks for these OHLC timeframes (their keys: :func:`..jobs.pipeline_check_keys`)."""
    checks: list[dg.AssetChecksDefinition] = []
    for tf in timeframes:
        checks.append(_ingest_check(tf))

    @dg.asset_check(asset=dg.AssetKey(PIPELINE_ASSET), name=C.LONG_RUNS, blocking=False, pool=WAREHOUSE_POOL,
                    description="No run of this project has been in progress for longer than "
                                "data.health.max_run_min (SPEC §13.2); a failure alerts through the outbox.")
    def _long_runs(context: dg.AssetCheckExecutionContext, project_config: ProjectConfigResource,
                   warehouse: WarehouseResource):
        cfg = project_config.load()
        now = utc_now()
        records = context.instance.get_run_records(dg.RunsFilter(statuses=list(IN_PROGRESS)))
        ours = [run_info(r) for r in records if KIND_TAG in r.dagster_run.tags]
        finding = long_runs(ours, now, cfg, exclude=[context.op_execution_context.run_id])
        return check_result(finding, C.LONG_RUNS, warehouse.get(), now)

    @dg.asset_check(asset=dg.AssetKey(PIPELINE_ASSET), name=C.ENGINE_LAG, blocking=False, pool=WAREHOUSE_POOL,
                    description="The paper engine's last processed cycle point is within "
                                "data.health.max_engine_lag_cycles cycle points of the newest one the stored base "
                                "bars allow (SPEC §13.2); a failure names how far and why, and alerts.")
    def _engine_lag(project_config: ProjectConfigResource, warehouse: WarehouseResource):
        cfg = project_config.load()
        now = utc_now()
        wh = warehouse.get()
        return check_result(engine_lag_finding(wh, cfg, now), C.ENGINE_LAG, wh, now)

    return [*checks, _long_runs, _engine_lag]


def _ingest_check(tf: Timeframe) -> dg.AssetChecksDefinition:
    job = ohlc_job_name(tf)

    @dg.asset_check(asset=dg.AssetKey(ohlc_asset_name(tf)), name=C.INGEST_RUN_FAILURES, blocking=False,
                    pool=WAREHOUSE_POOL,
                    description=f"No run of {job} failed in the last 24 h (SPEC §13.2); a failure alerts through "
                                f"the outbox, naming the runs with their links.")
    def _ingest(context: dg.AssetCheckExecutionContext, project_config: ProjectConfigResource,
                warehouse: WarehouseResource):
        cfg = project_config.load()
        now = utc_now()
        since = (now - FAILED_RUN_WINDOW).to_pydatetime().astimezone(timezone.utc)
        records = context.instance.get_run_records(dg.RunsFilter(
            job_name=job, statuses=[dg.DagsterRunStatus.FAILURE], tags={KIND_TAG: INGEST_KIND},
            updated_after=since))
        finding = failed_ingest_runs([run_info(r) for r in records], job, now, cfg)
        return check_result(finding, C.INGEST_RUN_FAILURES, warehouse.get(), now)

    return _ingest


__all__ = ["build_pipeline_checks", "check_result", "run_info"]
