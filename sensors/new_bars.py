"""New base bars → the paper-engine chain: one run per materialization, never twice, never skipping a day."""

from __future__ import annotations

import dagster as dg
import pandas as pd

CURSOR_METADATA = "cursor"  # metadata of engine_state materializations: the engine's last processed cycle point


def engine_partition_range(instance: dg.DagsterInstance, state_key: dg.AssetKey, partition: str,
                           cycle_min: int) -> tuple[str, str]:
    """The partition range a run for new bars of ``partition`` must cover: from the day of the engine's next
    unprocessed cycle point (from the latest ``engine_state`` materialization) to ``partition``, so a tick that
    starts after midnight still processes the previous day's last cycle points in that day's partition."""
    event = instance.get_latest_materialization_event(state_key)
    meta = event.asset_materialization.metadata if event and event.asset_materialization else {}
    raw = meta.get(CURSOR_METADATA)
    cursor = getattr(raw, "value", raw)
    if not cursor or cursor == "None":
        return partition, partition
    nxt = (pd.Timestamp(cursor).tz_convert("UTC") + pd.Timedelta(minutes=cycle_min)).strftime("%Y-%m-%d")
    return (nxt, partition) if nxt < partition else (partition, partition)


def make_new_bars_sensor(job: dg.UnresolvedAssetJobDefinition | dg.JobDefinition, bars_asset: dg.AssetKey,
                         name: str, state_asset: dg.AssetKey, cycle_min: int,
                         minimum_interval_seconds: int = 30) -> dg.SensorDefinition:
    """A sensor that launches ``job`` for every new materialization of ``bars_asset``.

    The run covers the materialized partition and, when the engine's cursor is behind it, the days since (a
    partition range). The run key is the partition plus the materialization's run and time, so a materialization
    is processed once and a later re-materialization of the same day runs again (its bars changed)."""

    @dg.asset_sensor(asset_key=bars_asset, job=job, name=name, minimum_interval_seconds=minimum_interval_seconds,
                     default_status=dg.DefaultSensorStatus.STOPPED,
                     description=f"Runs {job.name} for each new {bars_asset.to_user_string()} partition.")
    def _sensor(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
        partition = asset_event.dagster_event.partition if asset_event.dagster_event else None
        if partition is None:
            return dg.SkipReason(f"{bars_asset.to_user_string()} materialization without a partition")
        first, last = engine_partition_range(context.instance, state_asset, partition, cycle_min)
        source = f"{asset_event.run_id}:{asset_event.timestamp:.6f}"
        tags = {"cryptotracker/trigger": f"{bars_asset.to_user_string()}:{asset_event.run_id}"}
        if first == last:
            return dg.RunRequest(run_key=f"{partition}:{source}", partition_key=partition, tags=tags)
        return dg.RunRequest(run_key=f"{first}..{last}:{source}", tags={
            **tags, "dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last})

    return _sensor
