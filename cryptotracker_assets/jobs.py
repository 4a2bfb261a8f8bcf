"""Jobs: one ingest job per timeframe, the main job, data health and gap healing."""

from __future__ import annotations

import dagster as dg

from . import checks as C
from .assets.market_data import ohlc_asset_name
from .core.config import Timeframe
from .partitions import daily_partitions

MAIN_JOB = "main_job"
FEATURES_JOB = "features_job"
FEATURES_GROUP = "features"
SETUPS_GROUP = "setups"
PAPER_GROUP = "paper"
DATA_HEALTH_JOB = "data_health_job"
GAP_HEALING_JOB = "gap_healing_job"
CONFIG_JOB = "config_job"


def ohlc_job_name(tf: Timeframe) -> str:
    return f"ohlc_{tf.value}_job"


def build_ohlc_job(tf: Timeframe) -> dg.UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        ohlc_job_name(tf),
        selection=dg.AssetSelection.assets(ohlc_asset_name(tf)).without_checks()
        | dg.AssetSelection.checks(*partition_check_keys([tf])),
        partitions_def=daily_partitions,
        description=f"Ingest {tf.value} candles for one UTC day (schedules run it incrementally).",
        tags={"cryptotracker/kind": "ingest"},
    )


def build_main_job(timeframes: list[Timeframe]) -> dg.UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        MAIN_JOB,
        # The assets with the checks computed in their own step; the table-wide health checks run in
        # data_health_job (they judge every active symbol, not the window a run just stored).
        selection=dg.AssetSelection.assets(*[ohlc_asset_name(tf) for tf in timeframes]).without_checks()
        | dg.AssetSelection.checks(*partition_check_keys(timeframes))
        | dg.AssetSelection.groups(FEATURES_GROUP, SETUPS_GROUP, PAPER_GROUP),
        partitions_def=daily_partitions,
        description="The whole pipeline for a window of UTC days (`make run` runs it on the demo window).",
        tags={"cryptotracker/kind": "main"},
    )


def partition_check_keys(timeframes: list[Timeframe]) -> list[dg.AssetCheckKey]:
    names = [C.OHLC_INTEGRITY, C.OHLC_SUSPECT_MOVES, C.OHLC_GAPS]
    return [dg.AssetCheckKey(dg.AssetKey(ohlc_asset_name(tf)), n) for tf in timeframes for n in names]


features_job = dg.define_asset_job(
    FEATURES_JOB,
    selection=dg.AssetSelection.groups(FEATURES_GROUP, SETUPS_GROUP) - dg.AssetSelection.assets("market_regime"),
    partitions_def=daily_partitions,
    description="Features, setups, scan preview and readiness board for one UTC day (triggered by new "
                "market_regime materializations, which paper_engine_job makes from new base bars).",
    tags={"cryptotracker/kind": "features"},
)


analysis_job = dg.define_asset_job(
    "analysis_job",
    selection=dg.AssetSelection.groups(FEATURES_GROUP, SETUPS_GROUP),
    partitions_def=daily_partitions,
    description="Market regime, features, setups, scan preview and readiness board for UTC days (manual runs and "
                "backfills; the sensors run the same assets as paper_engine_job + features_job).",
    tags={"cryptotracker/kind": "features"},
)


def health_check_keys(timeframes: list[Timeframe]) -> list[dg.AssetCheckKey]:
    keys = []
    for tf in timeframes:
        names = [C.OHLC_FRESHNESS, C.OHLC_COMPLETENESS, C.OHLC_UNIQUE_KEYS]
        if tf in (Timeframe.M15, Timeframe.H1):
            names.append(C.OHLC_AGGREGATES)
        keys += [dg.AssetCheckKey(dg.AssetKey(ohlc_asset_name(tf)), n) for n in names]
    return keys


def build_data_health_job(timeframes: list[Timeframe]) -> dg.UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        DATA_HEALTH_JOB,
        selection=dg.AssetSelection.checks(*health_check_keys(timeframes)),
        description="Freshness, completeness, aggregate and uniqueness checks on the stored candles.",
        tags={"cryptotracker/kind": "health"},
    )


config_job = dg.define_asset_job(
    CONFIG_JOB,
    selection=dg.AssetSelection.assets("universe", "effective_config"),
    description="Materialize the effective config (and its version) and the universe table.",
    tags={"cryptotracker/kind": "config"},
)

gap_healing_job = dg.define_asset_job(
    GAP_HEALING_JOB,
    selection=dg.AssetSelection.assets("data_gaps"),
    description="Re-fetch the missing ranges of the stored candles (SPEC §13.2 gaps).",
    tags={"cryptotracker/kind": "maintenance"},
)
