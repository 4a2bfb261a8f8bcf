"""Daily retraining (SPEC §10, §11.2): after the daily shadow job succeeds, the labels of the UTC days since the
last label run are built; after they are, one training run per strategy partition whose retrain trigger holds
(``ml.retrain.min_new_outcomes`` new real + simulated labels, ``ml.retrain.min_samples`` rows) — a job has one
partitions definition, so the chain is three jobs linked by these two run-status sensors. A strategy that is not
due is named with its reason in the sensor's tick."""

from __future__ import annotations

import dagster as dg
import pandas as pd

from cryptotracker_assets.core.config import Strategy
from cryptotracker_assets.services.models import retrain_reason
from resources.config import ProjectConfigResource
from resources.warehouse import WarehouseResource

DAILY_TAG = "cryptotracker/daily"


def make_retraining_sensors(shadow_daily_job, labels_job, training_job) -> list[dg.SensorDefinition]:
    @dg.run_status_sensor(name="daily_labels_sensor", run_status=dg.DagsterRunStatus.SUCCESS,
                          monitored_jobs=[shadow_daily_job], request_job=labels_job,
                          default_status=dg.DefaultSensorStatus.STOPPED,
                          description="After the daily shadow job: the training labels of yesterday and today (UTC).")
    def daily_labels_sensor(context: dg.RunStatusSensorContext):
        now = pd.Timestamp.now(tz="UTC")
        run_id = context.dagster_run.run_id
        return [dg.RunRequest(run_key=f"labels:{run_id}:{d:%Y-%m-%d}", partition_key=f"{d:%Y-%m-%d}",
                              tags={DAILY_TAG: run_id})
                for d in (now.floor("1D") - pd.Timedelta(days=1), now.floor("1D"))]

    @dg.run_status_sensor(name="retraining_sensor", run_status=dg.DagsterRunStatus.SUCCESS,
                          monitored_jobs=[labels_job], request_job=training_job,
                          default_status=dg.DefaultSensorStatus.STOPPED,
                          description="After the daily labels: one training run per strategy whose retrain trigger "
                                      "holds (SPEC §11.2); the others are named with the reason.")
    def retraining_sensor(context: dg.RunStatusSensorContext, project_config: ProjectConfigResource,
                          warehouse: WarehouseResource):
        daily = context.dagster_run.tags.get(DAILY_TAG)
        if daily is None:
            return dg.SkipReason("a label run outside the daily chain: no retraining")
        if context.dagster_run.tags.get("dagster/partition") != f"{pd.Timestamp.now(tz='UTC'):%Y-%m-%d}":
            return dg.SkipReason("waiting for today's label run")
        cfg = project_config.load()
        wh = warehouse.get()
        requests, skipped = [], []
        for s in Strategy:
            why = retrain_reason(wh, cfg, s)
            if why is None:
                requests.append(dg.RunRequest(run_key=f"train:{daily}:{s.value}", partition_key=s.value,
                                              tags={DAILY_TAG: daily}))
            else:
                skipped.append(f"{s.value}: {why}")
        for line in skipped:
            context.log.info(f"not retrained: {line}")
        return requests or dg.SkipReason("; ".join(skipped))

    return [daily_labels_sensor, retraining_sensor]
