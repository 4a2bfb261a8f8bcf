"""OHLC candles: validation into clean rows + rejects, suspect flags, aggregation, gaps and completeness.

Bars are long frames with columns ``symbol, timestamp, open, high, low, close, volume``; ``timestamp`` is the
bar open time, tz-aware UTC. A bar covers [t, t + length). Arrays are chronological per symbol.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .config import Timeframe

OHLC_COLUMNS = ["symbol", "timestamp", "open", "high", "low", "close", "volume"]
PRICE_COLUMNS = ["open", "high", "low", "close"]
NUMERIC_COLUMNS = PRICE_COLUMNS + ["volume"]
STORED_COLUMNS = OHLC_COLUMNS + ["suspect", "ingested_at"]
REJECT_COLUMNS = ["timeframe", "partition", "symbol", "timestamp", "field", "reason", "raw", "rejected_at"]


class OhlcInputError(ValueError):
    """Input that cannot be read as candles at all (e.g. a missing column); names the source and field."""


@dataclass(frozen=True)
class Validated:
    """Result of :func:`validate_ohlc`: the clean rows and one reject row per broken input row."""

    clean: pd.DataFrame
    rejects: pd.DataFrame


def empty_bars(with_flags: bool = False) -> pd.DataFrame:
    """An empty bar frame with the canonical dtypes."""
    df = pd.DataFrame(
        {
            "symbol": pd.Series([], dtype="object"),
            "timestamp": pd.Series([], dtype="datetime64[ns, UTC]"),
            **{c: pd.Series([], dtype="float64") for c in NUMERIC_COLUMNS},
        }
    )
    if with_flags:
        df["suspect"] = pd.Series([], dtype="bool")
        df["ingested_at"] = pd.Series([], dtype="datetime64[ns, UTC]")
    return df


def empty_rejects() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "timeframe": pd.Series([], dtype="object"),
            "partition": pd.Series([], dtype="object"),
            "symbol": pd.Series([], dtype="object"),
            "timestamp": pd.Series([], dtype="object"),
            "field": pd.Series([], dtype="object"),
            "reason": pd.Series([], dtype="object"),
            "raw": pd.Series([], dtype="object"),
            "rejected_at": pd.Series([], dtype="datetime64[ns, UTC]"),
        }
    )


def _parse_timestamps(col: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Return (UTC timestamps with NaT where invalid, reason per row or None)."""
    reasons = pd.Series([None] * len(col), index=col.index, dtype="object")
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        ts = col.dt.tz_convert("UTC")
        reasons[ts.isna()] = "missing timestamp"
        return ts.astype("datetime64[ns, UTC]"), reasons
    if pd.api.types.is_datetime64_any_dtype(col):
        reasons[:] = "naive timestamp (no timezone; timestamps must be tz-aware UTC)"
        return pd.Series(pd.NaT, index=col.index, dtype="datetime64[ns, UTC]"), reasons
    out = []
    for i, value in enumerate(col.tolist()):
        try:
            t = pd.Timestamp(value)
        except (ValueError, TypeError):
            out.append(pd.NaT)
            reasons.iat[i] = f"unparsable timestamp {value!r}"
            continue
        if t is pd.NaT:
            out.append(pd.NaT)
            reasons.iat[i] = "missing timestamp"
        elif t.tzinfo is None:
            out.append(pd.NaT)
            reasons.iat[i] = "naive timestamp (no timezone; timestamps must be tz-aware UTC)"
        else:
            out.append(t.tz_convert("UTC"))
    return pd.Series(pd.to_datetime(out, utc=True), index=col.index).astype("datetime64[ns, UTC]"), reasons


def _raw_json(row: pd.Series) -> str:
    def conv(v):
        if isinstance(v, (pd.Timestamp,)):
            return v.isoformat()
        if isinstance(v, float) and not np.isfinite(v):
            return str(v)
        if isinstance(v, (np.generic,)):
            return v.item()
        return v if isinstance(v, (str, int, float, bool)) or v is None else str(v)

    return json.dumps({k: conv(v) for k, v in row.items()}, default=str)


def validate_ohlc(
    raw: pd.DataFrame,
    timeframe: Timeframe | str,
    *,
    partition: str,
    source: str = "market source",
    now: pd.Timestamp | None = None,
) -> Validated:
    """Split ``raw`` candles into clean rows and rejects (SPEC §13.2 integrity).

    A row is rejected when: a timestamp is missing, unparsable, naive or not aligned to the timeframe; a price or
    the volume is NaN/not numeric; a price ≤ 0; volume < 0; high < max(open, close); low > min(open, close); or
    its (symbol, timestamp) repeats with other values (identical repeats keep one row). The reject row names
    timeframe, partition, symbol, timestamp, the failing field and the reason. A missing column raises
    :class:`OhlcInputError`.
    """
    tf = Timeframe(timeframe)
    missing = [c for c in OHLC_COLUMNS if c not in raw.columns]
    if missing:
        raise OhlcInputError(f"{source}: partition {partition} ({tf.value}): missing column(s) {missing}")
    now = now if now is not None else pd.Timestamp.now(tz="UTC")
    df = raw[OHLC_COLUMNS].reset_index(drop=True).copy()
    field = pd.Series([None] * len(df), dtype="object")
    reason = pd.Series([None] * len(df), dtype="object")

    def mark(mask: pd.Series, fld: str, why) -> None:
        mask = mask.fillna(False).astype(bool) & field.isna()
        if not mask.any():
            return
        field[mask] = fld
        if isinstance(why, pd.Series):
            reason[mask] = why[mask]
        else:
            reason[mask] = why

    sym = df["symbol"]
    bad_sym = ~sym.map(lambda s: isinstance(s, str) and len(s) > 0)
    mark(bad_sym, "symbol", "missing or non-string symbol")

    ts, ts_reason = _parse_timestamps(df["timestamp"])
    mark(ts_reason.notna(), "timestamp", ts_reason)
    df["timestamp"] = ts
    step_ns = tf.minutes * 60 * 1_000_000_000
    ts_ns = ts.astype("int64", copy=False) if len(ts) else pd.Series([], dtype="int64")
    misaligned = ts.notna() & ((ts_ns % step_ns) != 0)
    mark(misaligned, "timestamp", f"timestamp not aligned to the {tf.value} grid")

    for col in NUMERIC_COLUMNS:
        num = pd.to_numeric(df[col], errors="coerce").astype("float64")
        mark(~np.isfinite(num), col, f"{col} is NaN or not a finite number")
        df[col] = num
    for col in PRICE_COLUMNS:
        mark(df[col] <= 0, col, f"{col} must be > 0")
    mark(df["volume"] < 0, "volume", "volume must be >= 0")
    mark(df["high"] < np.maximum(df["open"], df["close"]), "high", "high below max(open, close)")
    mark(df["low"] > np.minimum(df["open"], df["close"]), "low", "low above min(open, close)")

    ok = field.isna()
    # Duplicates among otherwise valid rows.
    valid = df[ok]
    key_dup = valid.duplicated(["symbol", "timestamp"], keep=False)
    if key_dup.any():
        dups = valid[key_dup]
        conflicting = dups.groupby(["symbol", "timestamp"])[NUMERIC_COLUMNS].transform("nunique").max(axis=1) > 1
        conflict_idx = dups.index[conflicting.to_numpy()]
        mark(pd.Series(df.index.isin(conflict_idx), index=df.index), "timestamp",
             "duplicate (symbol, timestamp) with conflicting values")
        same = dups[~conflicting.to_numpy()]
        extra_idx = same.index[same.duplicated(["symbol", "timestamp"], keep="first").to_numpy()]
        mark(pd.Series(df.index.isin(extra_idx), index=df.index), "timestamp",
             "duplicate (symbol, timestamp): identical copy dropped")
        ok = field.isna()

    clean = df[ok].sort_values(["symbol", "timestamp"], kind="stable").reset_index(drop=True)
    clean["symbol"] = clean["symbol"].astype("object")
    bad = ~ok
    if bad.any():
        raw_rows = raw.reset_index(drop=True)[bad.to_numpy()]
        rejects = pd.DataFrame(
            {
                "timeframe": tf.value,
                "partition": partition,
                "symbol": raw_rows["symbol"].map(lambda s: s if isinstance(s, str) else str(s)).to_numpy(),
                "timestamp": raw_rows["timestamp"].map(str).to_numpy(),
                "field": field[bad].to_numpy(),
                "reason": reason[bad].to_numpy(),
                "raw": [_raw_json(r) for _, r in raw_rows[OHLC_COLUMNS].iterrows()],
                "rejected_at": now,
            }
        )
        rejects["rejected_at"] = pd.to_datetime(rejects["rejected_at"], utc=True)
    else:
        rejects = empty_rejects()
    return Validated(clean=clean, rejects=rejects)


def flag_suspect(bars: pd.DataFrame, extreme_move: float, prev_close: dict[str, float] | None = None) -> pd.Series:
    """``suspect`` flags (SPEC §13.2): |close / previous close − 1| > ``extreme_move`` for consecutive bars of a
    symbol in time order. ``prev_close`` gives each symbol's close just before the first bar (e.g. the stored
    bar before the partition). Returns a bool Series aligned with ``bars``."""
    if bars.empty:
        return pd.Series([], dtype="bool", index=bars.index)
    order = bars.sort_values(["symbol", "timestamp"], kind="stable")
    prev = order.groupby("symbol", sort=False)["close"].shift(1)
    if prev_close:
        first = prev.isna() & ~order["symbol"].duplicated(keep="first")
        prev = prev.where(~first, order["symbol"].map(prev_close))
    move = (order["close"] / prev - 1.0).abs()
    flags = (move > extreme_move).fillna(False)
    return flags.reindex(bars.index).astype(bool)


def aggregate_bars(bars: pd.DataFrame, to: Timeframe | str, *, closed_by: pd.Timestamp | None = None) -> pd.DataFrame:
    """Aggregate finer bars into ``to`` bars: first open, max high, min low, last close, Σ volume (SPEC §13.1).

    A ``to`` bar at t aggregates the input bars with open time in [t, t + length). With ``closed_by`` only bars
    whose end t + length ≤ ``closed_by`` are returned (closed bars). ``suspect`` (if present) is any-of.
    """
    tf = Timeframe(to)
    if bars.empty:
        return empty_bars(with_flags="suspect" in bars.columns)[
            [c for c in OHLC_COLUMNS + (["suspect"] if "suspect" in bars.columns else [])]
        ]
    b = bars.sort_values(["symbol", "timestamp"], kind="stable")
    bucket = b["timestamp"].dt.floor(f"{tf.minutes}min")
    agg = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    if "suspect" in b.columns:
        agg["suspect"] = "max"
    out = b.assign(timestamp=bucket).groupby(["symbol", "timestamp"], sort=True).agg(agg).reset_index()
    if closed_by is not None:
        out = out[out["timestamp"] + pd.Timedelta(minutes=tf.minutes) <= closed_by]
    if "suspect" in out.columns:
        out["suspect"] = out["suspect"].astype(bool)
    return out.reset_index(drop=True)


def detect_gaps(bars: pd.DataFrame, timeframe: Timeframe | str, interval_multiple: float) -> pd.DataFrame:
    """Gaps per symbol (SPEC §13.2): consecutive bars more than ``interval_multiple`` intervals apart.

    Returns symbol, gap_start (first missing bar open), gap_end (open of the bar after the gap), missing
    (= Δ / interval − 1).
    """
    tf = Timeframe(timeframe)
    cols = {"symbol": "object", "gap_start": "datetime64[ns, UTC]", "gap_end": "datetime64[ns, UTC]", "missing": "int64"}
    if bars.empty:
        return pd.DataFrame({k: pd.Series([], dtype=v) for k, v in cols.items()})
    b = bars[["symbol", "timestamp"]].sort_values(["symbol", "timestamp"], kind="stable")
    step = pd.Timedelta(minutes=tf.minutes)
    prev = b.groupby("symbol", sort=False)["timestamp"].shift(1)
    delta = b["timestamp"] - prev
    is_gap = delta > step * interval_multiple
    g = b[is_gap.fillna(False)]
    p = prev[is_gap.fillna(False)]
    out = pd.DataFrame(
        {
            "symbol": g["symbol"].to_numpy(),
            "gap_start": (p + step).to_numpy(),
            "gap_end": g["timestamp"].to_numpy(),
            "missing": ((g["timestamp"] - p) / step - 1).round().astype("int64").to_numpy(),
        }
    )
    out["gap_start"] = pd.to_datetime(out["gap_start"], utc=True)
    out["gap_end"] = pd.to_datetime(out["gap_end"], utc=True)
    return out.reset_index(drop=True)


def completeness(
    bars: pd.DataFrame, timeframe: Timeframe | str, start: pd.Timestamp, end: pd.Timestamp, symbols: list[str]
) -> pd.DataFrame:
    """Stored / expected bars per symbol over [start, end) (SPEC §13.2 completeness)."""
    tf = Timeframe(timeframe)
    expected = int((end - start) / pd.Timedelta(minutes=tf.minutes))
    in_window = bars[(bars["timestamp"] >= start) & (bars["timestamp"] < end)]
    counts = in_window.groupby("symbol").size().reindex(symbols, fill_value=0)
    return pd.DataFrame(
        {
            "symbol": symbols,
            "stored": counts.to_numpy(),
            "expected": expected,
            "completeness": counts.to_numpy() / expected if expected else np.nan,
        }
    )


def last_closed_bar_open(now: pd.Timestamp, timeframe: Timeframe | str) -> pd.Timestamp:
    """Open time of the newest bar that is closed at ``now`` (its end ≤ now)."""
    tf = Timeframe(timeframe)
    return now.floor(f"{tf.minutes}min") - pd.Timedelta(minutes=tf.minutes)
