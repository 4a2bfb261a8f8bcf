"""Which stored rows are still what their bars say: bar watermarks per cycle point (SPEC §0.5, §13.1).

A derived row at cycle point T (scan features, market regime, scan preview) is computed from base bars with open
time in [T − span, T). Its **watermark** W(T) is the greatest ``ingested_at`` of the stored bars in that range, over
all symbols (``ingested_at`` is renewed only when a re-fetch changes a bar, so W(T) moves only when a bar T could
have read arrived late or was revised). A stored row is *stale* when the bars stored now give a greater W(T) than
the one it carries: it must be recomputed before anything uses it. Times are int64 ns UTC; never imports dagster.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .common import ns_column
from .config import Config
from .regime import regime_warmup
from .setups import setups_warmup

NO_WATERMARK = np.iinfo("int64").min  # W(T) of a cycle point with no bar in its range


def watermarks_at(points_ns: np.ndarray, bar_times_ns: np.ndarray, ingested_ns: np.ndarray,
                  span_ns: int) -> np.ndarray:
    """W(T) for every T of ``points_ns``: max ``ingested_ns`` over the bars with open time in [T − span, T).

    ``bar_times_ns`` must be chronological (one entry per bar, or per bar time with the max over symbols);
    :data:`NO_WATERMARK` where the range holds no bar."""
    t = np.asarray(bar_times_ns, dtype="int64")
    ing = np.asarray(ingested_ns, dtype="int64")
    pts = np.asarray(points_ns, dtype="int64")
    if t.size > 1 and (np.diff(t) < 0).any():
        raise ValueError("bar times must be chronological")
    lo = np.searchsorted(t, pts - span_ns, side="left")
    hi = np.searchsorted(t, pts, side="left")
    out = np.full(pts.size, NO_WATERMARK, dtype="int64")
    for i in np.flatnonzero(hi > lo):
        out[i] = ing[lo[i]:hi[i]].max()
    return out


def watermarks_from_frame(points: pd.DatetimeIndex, per_bar_time: pd.DataFrame, span: pd.Timedelta) -> np.ndarray:
    """:func:`watermarks_at` from a frame of ``timestamp`` (bar open time) and ``ingested_at`` columns."""
    if per_bar_time.empty:
        return np.full(len(points), NO_WATERMARK, dtype="int64")
    frame = per_bar_time.sort_values("timestamp", kind="stable")
    return watermarks_at(points.asi8, ns_column(frame["timestamp"], "timestamp"),
                         ns_column(frame["ingested_at"], "ingested_at"), int(span.value))


def watermark_column(values: np.ndarray) -> pd.Series:
    """W(T) values as a UTC timestamp column (NaT where there was no bar)."""
    v = np.asarray(values, dtype="int64")
    idx = pd.DatetimeIndex(np.where(v == NO_WATERMARK, np.datetime64("NaT"), v.view("datetime64[ns]")))
    return pd.Series(idx.tz_localize("UTC"), dtype="datetime64[ns, UTC]")


def as_watermarks(column: pd.Series) -> np.ndarray:
    """A stored watermark column (UTC timestamps, NaT = none) as int64 ns with :data:`NO_WATERMARK`."""
    idx = pd.DatetimeIndex(column).as_unit("ns")
    return np.where(idx.isna(), NO_WATERMARK, idx.asi8)


@dataclass(frozen=True)
class Refresh:
    """What an incremental materialization must compute: the cycle points from ``start`` (None: nothing) up to
    the horizon; ``stale`` counts stored rows whose watermark or config version is out of date, ``missing`` the
    cycle points without a stored row."""

    start: pd.Timestamp | None
    stale: int
    missing: int


def plan_refresh(points: pd.DatetimeIndex, current: np.ndarray, stored_times: pd.Series, stored_marks: pd.Series,
                 stored_versions: pd.Series, config_version: int) -> Refresh:
    """The first cycle point of ``points`` (the ones that should exist now) whose stored row is missing, carries
    an older watermark than ``current`` (W(T) from the bars stored now) or another config version; rows from there
    on are recomputed, rows before it are kept (they are exactly what a recomputation would give)."""
    if len(points) == 0:
        return Refresh(None, 0, 0)
    stored = pd.DataFrame({"t": pd.DatetimeIndex(stored_times).as_unit("ns").asi8 if len(stored_times) else
                           np.array([], dtype="int64"),
                           "w": as_watermarks(stored_marks) if len(stored_marks) else np.array([], dtype="int64"),
                           "v": np.asarray(stored_versions, dtype="int64")})
    stored = stored.groupby("t").agg(w=("w", "min"), v=("v", "min"))
    pos = stored.index.get_indexer(points.asi8)
    have = pos >= 0
    if stored.empty:
        marks = np.full(len(points), NO_WATERMARK, dtype="int64")
        versions = np.full(len(points), -1, dtype="int64")
    else:
        marks = np.where(have, stored["w"].to_numpy()[np.maximum(pos, 0)], NO_WATERMARK)
        versions = np.where(have, stored["v"].to_numpy()[np.maximum(pos, 0)], -1)
    bad_mark = have & (marks != np.asarray(current, dtype="int64"))
    bad_version = have & (versions != config_version)
    todo = ~have | bad_mark | bad_version
    if not todo.any():
        return Refresh(None, 0, 0)
    first = int(np.flatnonzero(todo)[0])
    return Refresh(points[first], int((bad_mark | bad_version).sum()), int((~have).sum()))


def stale_points(points: pd.DatetimeIndex, current: np.ndarray, carried: np.ndarray) -> pd.DatetimeIndex:
    """The cycle points whose row carries another watermark than the bars stored now give (``carried`` ≠
    ``current``): rows that must not be used."""
    bad = np.asarray(carried, dtype="int64") != np.asarray(current, dtype="int64")
    return points[bad]


def derived_span(cfg: Config) -> pd.Timedelta:
    """The bar range [T − span, T) a derived row at T may read: the longest warm-up of the scan (features and
    setup windows) and of the market regime."""
    return max(setups_warmup(cfg), regime_warmup(cfg))
