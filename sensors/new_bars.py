"""New base bars → downstream jobs: one run per (partition, materialization), never twice."""

from __future__ import annotations

import dagster as dg


def make_new_bars_sensor(job: dg.UnresolvedAssetJobDefinition | dg.JobDefinition, bars_asset: dg.AssetKey,
                         name: str, minimum_interval_seconds: int = 30) -> dg.SensorDefinition:
    """A sensor that launches ``job`` for the partition of every new materialization of ``bars_asset``.

    The run key is the partition plus the materialization's run and time, so a materialization is processed
    once and a later re-materialization of the same day runs again (its bars changed)."""

    @dg.asset_sensor(asset_key=bars_asset, job=job, name=name, minimum_interval_seconds=minimum_interval_seconds,
                     default_status=dg.DefaultSensorStatus.STOPPED,
                     description=f"Runs {job.name} for each new {bars_asset.to_user_string()} partition.")
    def _sensor(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
        partition = asset_event.dagster_event.partition if asset_event.dagster_event else None
        if partition is None:
            return dg.SkipReason(f"{bars_asset.to_user_string()} materialization without a partition")
        source = f"{asset_event.run_id}:{asset_event.timestamp:.6f}"
        return dg.RunRequest(run_key=f"{partition}:{source}", partition_key=partition,
                             tags={"cryptotracker/trigger": f"{bars_asset.to_user_string()}:{asset_event.run_id}"})

    return _sensor
