"""Jobs. Each asset is materialized by one job per reason:

- ``ohlc_<tf>_job`` — candles of one timeframe (the ingest schedules);
- ``paper_engine_job`` — the chain for the partition of each new base-bar materialization (``paper_engine_sensor``):
  ``market_regime`` and ``features_scan`` → ``scan_preview`` → the paper engine's outputs (with the blocking
  ``ledger_invariants``) → ``strategy_setups``, ``readiness_board`` and ``daily_performance``;
- ``features_job`` — the end-product features ``features_15m`` and ``features_daily`` (``features_schedule``);
- ``main_job`` — the whole pipeline for a window of days (``make run``, backfills);
- the day audit ``replay_matches_ledger`` runs when a person materializes a past ``paper_trades`` day with its checks
  (the UI's Materialize selects them by default), never in the tick nor in ``main_job``;
- ``data_health_job``, ``gap_healing_job``, ``config_job``, ``retention_job`` — maintenance;
- ``reports_job`` — the trading report and the HTML report (the four report schedules, on demand).
"""

from __future__ import annotations

import dagster as dg

from . import checks as C
from .assets.common import ohlc_asset_name
from .assets.paper import ENGINE_OUTPUTS, ENGINE_TAG, REPLAY_MATCHES_LEDGER, SHADOW_OUTCOMES_VALID
from .core.config import Timeframe
from .partitions import daily_partitions

MAIN_JOB = "main_job"
PAPER_ENGINE_JOB = "paper_engine_job"
FEATURES_JOB = "features_job"
DATA_HEALTH_JOB = "data_health_job"
GAP_HEALING_JOB = "gap_healing_job"
CONFIG_JOB = "config_job"
CHAIN_ASSETS = ("market_regime", "features_scan", "scan_preview", *ENGINE_OUTPUTS, "strategy_setups",
                "readiness_board", "daily_performance")
END_PRODUCT_FEATURES = ("features_15m", "features_daily")
KIND_TAG = "cryptotracker/kind"  # every job's run carries it (ingest, engine, main, health, …)
INGEST_KIND = "ingest"
PIPELINE_ASSET = "engine_state"  # the asset the run and engine-lag checks are attached to


def ohlc_job_name(tf: Timeframe) -> str:
    return f"ohlc_{tf.value}_job"


def partition_check_keys(timeframes: list[Timeframe]) -> list[dg.AssetCheckKey]:
    names = [C.OHLC_INTEGRITY, C.OHLC_SUSPECT_MOVES, C.OHLC_GAPS, C.OHLC_PARTITION_COMPLETENESS]
    return [dg.AssetCheckKey(dg.AssetKey(ohlc_asset_name(tf)), n) for tf in timeframes for n in names]


def _replay_check() -> dg.AssetSelection:
    return dg.AssetSelection.checks(dg.AssetCheckKey(dg.AssetKey("paper_trades"), REPLAY_MATCHES_LEDGER))


def _not_in_chain() -> dg.AssetSelection:
    """Checks of chain assets that the chain jobs never run: the day audit (it replays whole days) and the pipeline
    checks on ``engine_state`` (data_health_job runs them on its schedule)."""
    return _replay_check() | dg.AssetSelection.checks(
        *[dg.AssetCheckKey(dg.AssetKey(PIPELINE_ASSET), n) for n in (C.LONG_RUNS, C.ENGINE_LAG)])


def build_ohlc_job(tf: Timeframe) -> dg.UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        ohlc_job_name(tf),
        selection=dg.AssetSelection.assets(ohlc_asset_name(tf)).without_checks()
        | dg.AssetSelection.checks(*partition_check_keys([tf])),
        partitions_def=daily_partitions,
        description=f"Ingest {tf.value} candles for one UTC day (schedules run it incrementally).",
        tags={KIND_TAG: INGEST_KIND},
    )


def build_main_job(timeframes: list[Timeframe]) -> dg.UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        MAIN_JOB,
        # The candles with the checks computed in their own step (the table-wide health checks run in
        # data_health_job: they judge every active symbol, not the window a run just stored), then everything
        # downstream with its checks (the day audit excepted: it replays every day again).
        selection=dg.AssetSelection.assets(*[ohlc_asset_name(tf) for tf in timeframes]).without_checks()
        | dg.AssetSelection.checks(*partition_check_keys(timeframes))
        | (dg.AssetSelection.assets(*CHAIN_ASSETS, *END_PRODUCT_FEATURES) - _not_in_chain()),
        partitions_def=daily_partitions,
        description="The whole pipeline for a window of UTC days (`make run` runs it on the demo window): candles, "
                    "features, regime, scan, the paper engine with its blocking ledger check, setups and the board "
                    "(the day audit replays every day again: materialize a past paper_trades day with its checks).",
        tags={"cryptotracker/kind": "main"},
    )


def _shadow_outcomes_check() -> dg.AssetSelection:
    """The derived-outcome check of a day's shadows: in main_job and when a person checks a day, not in every tick
    (it derives the whole day)."""
    return dg.AssetSelection.checks(dg.AssetCheckKey(dg.AssetKey("shadow_outcomes"), SHADOW_OUTCOMES_VALID))


paper_engine_job = dg.define_asset_job(
    PAPER_ENGINE_JOB,
    selection=dg.AssetSelection.assets(*CHAIN_ASSETS) - _not_in_chain() - _shadow_outcomes_check(),
    partitions_def=daily_partitions,
    description="The chain from new base bars to committed fills for a UTC day (or the days since the engine's "
                "cursor): market regime and scan features, scan preview, one paper-engine tick with its blocking "
                "ledger check, strategy setups and the readiness board (launched by paper_engine_sensor).",
    tags={ENGINE_TAG: "tick", "cryptotracker/kind": "engine"},
)

features_job = dg.define_asset_job(
    FEATURES_JOB,
    selection=dg.AssetSelection.assets(*END_PRODUCT_FEATURES),
    partitions_def=daily_partitions,
    description="The 15m ML features and the daily BTC context for a UTC day (features_schedule); their consumers "
                "arrive with the models.",
    tags={"cryptotracker/kind": "features"},
)


def health_check_keys(timeframes: list[Timeframe], freshness: list[dg.AssetChecksDefinition]
                      ) -> list[dg.AssetCheckKey]:
    keys = []
    for tf in timeframes:
        names = [C.OHLC_FRESHNESS, C.OHLC_COMPLETENESS, C.OHLC_UNIQUE_KEYS]
        if tf in (Timeframe.M15, Timeframe.H1):
            names.append(C.OHLC_AGGREGATES)
        keys += [dg.AssetCheckKey(dg.AssetKey(ohlc_asset_name(tf)), n) for n in names]
    return keys + [k for checks in freshness for k in checks.check_keys] + pipeline_check_keys(timeframes)


def pipeline_check_keys(timeframes: list[Timeframe]) -> list[dg.AssetCheckKey]:
    """The SPEC §13.2 pipeline checks: failed ingest runs per timeframe, long runs and the engine's lag."""
    return ([dg.AssetCheckKey(dg.AssetKey(ohlc_asset_name(tf)), C.INGEST_RUN_FAILURES) for tf in timeframes]
            + [dg.AssetCheckKey(dg.AssetKey(PIPELINE_ASSET), n) for n in (C.LONG_RUNS, C.ENGINE_LAG)])


def build_data_health_job(timeframes: list[Timeframe], freshness: list[dg.AssetChecksDefinition]
                          ) -> dg.UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        DATA_HEALTH_JOB,
        selection=dg.AssetSelection.checks(*health_check_keys(timeframes, freshness)),
        description="Freshness (per symbol and per partition), completeness, aggregate and uniqueness checks on "
                    "the stored candles; the pipeline checks (a failed ingest run in 24 h, a run over "
                    "data.health.max_run_min, the engine behind the stored bars), each alerting through the outbox.",
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
