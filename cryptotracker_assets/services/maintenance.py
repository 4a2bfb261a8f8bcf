"""Gap healing and retention (SPEC §13.1–13.2), without Dagster."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..core.config import BASE_ONLY_TIMEFRAME, Config, Timeframe
from ..core.ohlc import detect_gaps, flag_suspect, validate_ohlc
from .ingest import Fetch
from ..storage.warehouse import Warehouse, ohlc_table

GAP_STATUSES = ("healed", "confirmed_empty", "open")

# Decision tables and their time column, pruned after data.retention_d.decisions (SPEC §13.1); the ledger,
# orders, revisions, labels and models are kept forever.
DECISION_TABLES: dict[str, str] = {
    "scan_history": "timestamp",
    "features_scan": "timestamp",
    "scan_preview": "timestamp",
    "strategy_setups": "detected_at",
    "market_regime": "timestamp",
    "portfolio_snapshots": "cycle_point",
    "engine_state": "day",  # the newest row (the engine's current state) is never pruned
}


def heal_gaps(
    fetch: Fetch,
    warehouse: Warehouse,
    cfg: Config,
    timeframes: Sequence[Timeframe],
    symbols: Sequence[str],
    now: pd.Timestamp,
) -> pd.DataFrame:
    """Find gaps in the last ``data.health.gaps.lookback_d`` of each timeframe, re-fetch each missing range and
    upsert what the source returns. Status per gap: ``healed`` (bars came back), ``confirmed_empty`` (the
    source has no trades there) or ``open`` (the re-fetch failed). Rows are appended to ``data_gaps``."""
    rows = []
    g = cfg.data.health.gaps
    for tf in timeframes:
        start = now - pd.Timedelta(days=g.lookback_d.of(tf))
        bars = warehouse.read_bars(tf, start, now, list(symbols))
        gaps = detect_gaps(bars, tf, g.interval_multiple.of(tf))
        for gap in gaps.itertuples(index=False):
            status, healed, error = "confirmed_empty", 0, None
            try:
                raw = fetch(gap.symbol, tf, gap.gap_start, gap.gap_end)
            except Exception as exc:  # a failed re-fetch leaves the gap open; others still heal
                status, error = "open", str(exc)
                raw = None
            if raw is not None and not raw.empty:
                v = validate_ohlc(raw, tf, partition=f"gap {gap.gap_start.isoformat()}", now=now)
                clean = v.clean[(v.clean["timestamp"] >= gap.gap_start) & (v.clean["timestamp"] < gap.gap_end)]
                if len(clean):
                    prev = warehouse.last_close_before(tf, gap.gap_start, [gap.symbol])
                    clean = clean.assign(suspect=flag_suspect(clean, cfg.data.health.extreme_move, prev).to_numpy(),
                                         ingested_at=now)
                    healed = warehouse.upsert_bars(tf, clean)
                    status = "healed" if healed else "confirmed_empty"
            rows.append(
                {
                    "timeframe": tf.value,
                    "symbol": gap.symbol,
                    "gap_start": gap.gap_start,
                    "gap_end": gap.gap_end,
                    "missing": int(gap.missing),
                    "status": status,
                    "healed_bars": int(healed),
                    "detected_at": now,
                    "checked_at": now,
                    "error": error,
                }
            )
    out = pd.DataFrame(
        rows,
        columns=["timeframe", "symbol", "gap_start", "gap_end", "missing", "status", "healed_bars", "detected_at",
                 "checked_at", "error"],
    )
    warehouse.append_gaps(out.drop(columns=["error"]))
    return out


def unhealed_alerts(gaps: pd.DataFrame, cfg: Config, now: pd.Timestamp) -> pd.DataFrame:
    """Open gaps in the last 24 h longer than ``data.health.gaps.alert_min`` of their timeframe."""
    if gaps.empty:
        return gaps
    length_min = (gaps["gap_end"] - gaps["gap_start"]) / pd.Timedelta(minutes=1)
    limit = gaps["timeframe"].map(lambda tf: cfg.data.health.gaps.alert_min.of(tf))
    recent = gaps["gap_end"] >= now - pd.Timedelta(hours=24)
    return gaps[(gaps["status"] == "open") & recent & (length_min > limit)]


def apply_retention(warehouse: Warehouse, cfg: Config, now: pd.Timestamp) -> dict[str, int]:
    """Delete bars older than ``data.retention_d.<tf>`` (null = keep forever) and decision rows older than
    ``data.retention_d.decisions``. Returns rows deleted per table."""
    deleted: dict[str, int] = {}
    for tf in Timeframe:
        if tf is BASE_ONLY_TIMEFRAME and cfg.engine.base_timeframe is not tf:
            continue  # 5m exists (and has its retention key) only as the base timeframe
        days = cfg.data.retention_d.of(tf)
        if days is None:
            continue
        deleted[ohlc_table(tf)] = warehouse.delete_before(ohlc_table(tf), "timestamp", now - pd.Timedelta(days=days))
    days = cfg.data.retention_d.decisions
    if days is not None:
        for table, column in DECISION_TABLES.items():
            cutoff = now - pd.Timedelta(days=days)
            if table == "engine_state":
                _, newest = warehouse.time_bounds(table, column)
                cutoff = cutoff if newest is None else min(cutoff, newest)
            deleted[table] = warehouse.delete_before(table, column, cutoff)
        # shadow_outcomes / shadow_exits: PENDING takes are kept (SPEC §13.1)
        deleted["shadow_outcomes"] = warehouse.delete_shadows_before(now - pd.Timedelta(days=days))
    return deleted
