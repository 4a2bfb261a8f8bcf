"""Asset-check names (constants, so UIs, tests and alerts agree) and their severities."""

from __future__ import annotations

import dagster as dg

# Run with every OHLC materialization (computed on the partition being stored).
OHLC_INTEGRITY = "ohlc_integrity"  # ERROR: input rows broke an OHLC invariant and went to ohlc_rejects
OHLC_SUSPECT_MOVES = "ohlc_suspect_moves"  # WARN: > data.health.extreme_move between consecutive bars
OHLC_GAPS = "ohlc_gaps"  # WARN: missing bars inside the partition (SPEC §13.2 gap rule)
# WARN: a day partition's stored / expected bars below data.health.min_completeness (SPEC §13.2, backfills too)
OHLC_PARTITION_COMPLETENESS = "ohlc_partition_completeness"
# Run by data_health_job on the stored table.
OHLC_FRESHNESS = "ohlc_freshness"  # WARN + alert: newest bar older than data.health.freshness_min
OHLC_COMPLETENESS = "ohlc_completeness"  # WARN: stored / expected bars below data.health.min_completeness
OHLC_AGGREGATES = "ohlc_aggregates"  # WARN: ingested 15m/1h bar differs from the aggregate of its 1m bars
OHLC_UNIQUE_KEYS = "ohlc_unique_keys"  # ERROR: a (symbol, timestamp) stored twice
# The pipeline checks of SPEC §13.2, run by data_health_job; each failing one queues ONE alert in the outbox.
INGEST_RUN_FAILURES = "ingest_run_failures"  # WARN + alert (on ohlc_<tf>): an ohlc_<tf>_job run failed in 24 h
LONG_RUNS = "long_runs"  # WARN + alert (on engine_state): a run in progress > data.health.max_run_min
# ERROR + alert (on engine_state): the engine behind the stored bars by > data.health.max_engine_lag_cycles
ENGINE_LAG = "engine_lag"

SEVERITY = {
    OHLC_INTEGRITY: dg.AssetCheckSeverity.ERROR,
    OHLC_SUSPECT_MOVES: dg.AssetCheckSeverity.WARN,
    OHLC_GAPS: dg.AssetCheckSeverity.WARN,
    OHLC_PARTITION_COMPLETENESS: dg.AssetCheckSeverity.WARN,
    OHLC_FRESHNESS: dg.AssetCheckSeverity.WARN,
    OHLC_COMPLETENESS: dg.AssetCheckSeverity.WARN,
    OHLC_AGGREGATES: dg.AssetCheckSeverity.WARN,
    OHLC_UNIQUE_KEYS: dg.AssetCheckSeverity.ERROR,
    INGEST_RUN_FAILURES: dg.AssetCheckSeverity.WARN,
    LONG_RUNS: dg.AssetCheckSeverity.WARN,
    ENGINE_LAG: dg.AssetCheckSeverity.ERROR,
}
