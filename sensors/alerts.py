"""The alert sensors (SPEC §12.1 #system-alerts; issue 13, item 2):

- ``run_failure_alert_sensor`` (on ``run_failure_sensor``): every failed run of this code location → job,
  partition, failed steps, the error chain (class and message of each error and its causes — dagster-slack's
  stock factory omits the exception) and a link to the run (``notifications.webserver_url``);
- ``check_alert_sensor``: asset-check evaluations recorded by the instance → one message per failure episode of
  an ERROR check or of a data-health / pipeline check, and one "resolved" when it passes again.

Both queue their messages in the outbox (durable, at least once; the outbox delivery sensor retries) and deliver
them in the same evaluation; both run from the daemon by default. The slack client is the notifier's (the one
``SlackResource``), never one built here."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import dagster as dg
import pandas as pd

from cryptotracker_assets.core.check_alerts import CheckEvaluation
from cryptotracker_assets.core.config import Config
from cryptotracker_assets.services.alerts import alert_checks, alert_run_failure, error_chain, run_failure_note
from resources.notifier import Notifier
from resources.warehouse import WarehouseResource

RUN_FAILURE_SENSOR = "run_failure_alert_sensor"
CHECK_ALERT_SENSOR = "check_alert_sensor"
PARTITION_TAG = "dagster/partition"
RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


def run_partition(tags) -> str | None:
    if tags.get(PARTITION_TAG):
        return tags[PARTITION_TAG]
    start, end = (tags.get(t) for t in RANGE_TAGS)
    return f"{start}…{end}" if start and end else None


def make_run_failure_sensor(cfg: Config, minimum_interval_seconds: int = 30) -> dg.SensorDefinition:
    @dg.run_failure_sensor(name=RUN_FAILURE_SENSOR, minimum_interval_seconds=minimum_interval_seconds,
                           default_status=dg.DefaultSensorStatus.RUNNING,
                           description="A failed run → #system-alerts: job, partition, failed steps, the error "
                                       "chain and a link to the run (through the outbox, at least once).")
    def run_failure_alert_sensor(context: dg.RunFailureSensorContext, warehouse: WarehouseResource,
                                 notifier: Notifier):
        run = context.dagster_run
        failures = context.get_step_failure_events()
        errors = [e.step_failure_data.error for e in failures if e.step_failure_data.error is not None]
        run_error = getattr(context.failure_event.job_failure_data, "error", None)
        if not errors and run_error is not None:
            errors = [run_error]
        error = error_chain(errors) or (context.failure_event.message or "run failed (no error recorded)")
        record = context.instance.get_run_record_by_id(run.run_id)
        ended = getattr(record, "end_time", None) if record is not None else None
        note = run_failure_note(job=run.job_name, run_id=run.run_id, partition=run_partition(run.tags),
                                steps=[e.step_key for e in failures if e.step_key],
                                error=error, webserver_url=cfg.notifications.webserver_url,
                                failed_at=pd.Timestamp(ended, unit="s", tz="UTC") if ended else
                                pd.Timestamp.now(tz="UTC"))
        said = alert_run_failure(warehouse.get(), cfg, notifier.send, note)
        context.log.info(f"run {run.run_id} failure alert: queued {len(said.queued)}, "
                         f"{said.delivery.summary() if said.delivery else f'{said.direct} sent directly'}")

    return run_failure_alert_sensor


def evaluation_of(record) -> CheckEvaluation | None:
    entry = record.event_log_entry
    ev = entry.dagster_event.event_specific_data if entry.dagster_event else None
    if ev is None or not hasattr(ev, "check_name"):
        return None
    meta = {k: getattr(v, "value", v) for k, v in (ev.metadata or {}).items()}
    meta = {k: v if isinstance(v, (int, float, str, bool)) or v is None else str(v) for k, v in meta.items()}
    return CheckEvaluation(asset=ev.asset_key.to_user_string(), check=ev.check_name, partition=ev.partition,
                           passed=bool(ev.passed), severity=ev.severity.value, run_id=entry.run_id,
                           at=pd.Timestamp(entry.timestamp, unit="s", tz="UTC"), description=ev.description,
                           metadata=meta)


FINISHED = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)


def make_check_alert_sensor(cfg: Config, always: set[str], minimum_interval_seconds: int = 60,
                            batch: int = 50) -> dg.SensorDefinition:
    """``always``: the ``asset:check`` keys that alert whatever their severity (data health, pipeline).

    The sensor walks the runs that finished since its cursor (their update time; run ids at the same instant are
    remembered), oldest first, and reads each run's check evaluations — event storage ids are per run on the
    embedded SQLite instance, so runs are the cursor that works on every instance."""

    @dg.sensor(name=CHECK_ALERT_SENSOR, minimum_interval_seconds=minimum_interval_seconds,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Failing ERROR checks and the data-health / pipeline checks → #system-alerts once per "
                           "(check, partition) until it passes again, then one 'resolved' message.")
    def check_alert_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource, notifier: Notifier):
        cur = json.loads(context.cursor) if context.cursor else None
        if cur is None:  # first evaluation: start from now, not from the instance's whole history
            context.update_cursor(json.dumps({"t": pd.Timestamp.now(tz="UTC").timestamp(), "ids": []}))
            return dg.SkipReason("check alerts start with the runs finishing from now on")
        since = datetime.fromtimestamp(cur["t"], tz=timezone.utc)
        records = context.instance.get_run_records(
            dg.RunsFilter(statuses=list(FINISHED), updated_after=since - timedelta(microseconds=1)),
            order_by="update_timestamp", ascending=True, limit=batch)
        runs = [r for r in records if r.dagster_run.run_id not in set(cur["ids"])]
        if not runs:
            return dg.SkipReason("no run finished since the last evaluation")
        evaluations = []
        for r in runs:
            events = context.instance.get_records_for_run(
                r.dagster_run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
            evaluations += [e for e in (evaluation_of(x) for x in events) if e is not None]
        said = alert_checks(warehouse.get(), cfg, notifier.send, evaluations, always)
        last = runs[-1].update_timestamp.timestamp()
        same = [r.dagster_run.run_id for r in records if r.update_timestamp.timestamp() == last]
        context.update_cursor(json.dumps({"t": last, "ids": same}))
        return dg.SkipReason(f"{len(runs)} run(s), {len(evaluations)} check evaluation(s), {len(said.queued)} "
                             f"alert(s) queued" + (f"; {said.delivery.summary()}" if said.delivery else ""))

    return check_alert_sensor
