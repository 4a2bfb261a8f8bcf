"""Incremental materialization of the per-cycle-point tables (``features_scan``, ``market_regime``,
``scan_preview``), without Dagster.

A partition (or range) [start, end) holds one row set per cycle point T up to the data horizon (T ≤ the close of
the newest stored base bar). A materialization computes only what is missing or stale (its bar watermark, SPEC
§0.5, no longer what the bars stored now give, or another config version) — the new cycle points of today, so a
tick at 23:55 UTC costs what a tick at 00:05 costs — and replaces the slice from the first such T on.
"""

from __future__ import annotations

from collections.abc import Callable

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core.common import cycle_points
from ..core.config import Config
from ..core.watermarks import (Refresh, as_watermarks, derived_span, plan_refresh, stale_points, watermark_column,
                               watermarks_from_frame)
from ..storage.warehouse import Warehouse


class StaleInputError(RuntimeError):
    """An input table's rows are missing or older than the bars they were computed from; names what to refresh."""


@dataclass(frozen=True)
class Plan:
    """What to compute for [start, end): the cycle points that should exist now (``points``, up to the horizon),
    W(T) of each from the bars stored now (``marks``), and the refresh (from which T on)."""

    start: pd.Timestamp
    end: pd.Timestamp
    points: pd.DatetimeIndex
    marks: np.ndarray
    refresh: Refresh

    @property
    def todo(self) -> pd.DatetimeIndex:
        """The cycle points to (re)compute."""
        if self.refresh.start is None:
            return self.points[:0]
        return self.points[self.points >= self.refresh.start]

    @property
    def replace_from(self) -> pd.Timestamp:
        """The slice [replace_from, end) the new rows replace (``end``: nothing to replace)."""
        return self.refresh.start if self.refresh.start is not None else self.end

    def marks_of(self, times: pd.Series) -> pd.Series:
        """The watermark column for rows at ``times`` (cycle points of this plan)."""
        pos = self.points.get_indexer(pd.DatetimeIndex(times))
        if (pos < 0).any():
            raise ValueError("rows outside the plan's cycle points")
        return watermark_column(self.marks[pos]).set_axis(times.index)


def data_horizon(wh: Warehouse, cfg: Config, start: pd.Timestamp, end: pd.Timestamp, con) -> pd.Timestamp:
    """The newest moment the stored base bars describe within [start, end]: the close of the newest bar opening
    before ``end`` (a partition still filling only gets rows for what has happened)."""
    base = cfg.engine.base_timeframe
    newest = wh.newest_bar_before(base, end, con=con)
    if newest is None:
        return start
    return max(start, min(end, newest + pd.Timedelta(minutes=base.minutes)))


def horizon_end(wh: Warehouse, cfg: Config, start: pd.Timestamp, end: pd.Timestamp, con) -> pd.Timestamp:
    """Exclusive end of the cycle points T in [start, end) with T ≤ the data horizon (at T only bars opening
    before T are used)."""
    step = pd.Timedelta(minutes=cfg.engine.cycle_min)
    return min(end, data_horizon(wh, cfg, start, end, con).floor(step) + step)


def plan(wh: Warehouse, cfg: Config, table: str, start: pd.Timestamp, end: pd.Timestamp, con,
         stop: pd.Timestamp | None = None,
         versions: Callable[[pd.DatetimeIndex], np.ndarray] | None = None) -> Plan:
    """The plan for ``table`` over [start, end): cycle points up to the horizon (or ``stop``, whichever is first),
    their current watermarks, and the first one whose stored row is missing or stale (another watermark, or another
    config version than ``cfg``'s — or than ``versions(points)``, the version in force at each point)."""
    limit = horizon_end(wh, cfg, start, end, con)
    if stop is not None:
        limit = min(limit, stop)
    points = cycle_points(start, limit, cfg.engine.cycle_min)
    span = derived_span(cfg)
    marks = watermarks_from_frame(
        points, wh.bar_watermarks(cfg.engine.base_timeframe, start - span, limit, con=con), span)
    stored = wh.read_slice(table, "timestamp", start, end, columns=("timestamp", "bars_watermark", "config_version"),
                           con=con)
    if stored is None or "bars_watermark" not in stored.columns:
        stored = pd.DataFrame({"timestamp": pd.Series([], dtype="datetime64[ns, UTC]"),
                               "bars_watermark": pd.Series([], dtype="datetime64[ns, UTC]"),
                               "config_version": pd.Series([], dtype="int64")})
    refresh = plan_refresh(points, marks, stored["timestamp"], stored["bars_watermark"],
                           stored["config_version"].fillna(-1),
                           cfg.config_version if versions is None else versions(points))
    return Plan(start, end, points, marks, refresh)


def require_fresh(name: str, frame: pd.DataFrame | None, points: pd.DatetimeIndex, marks: np.ndarray) -> None:
    """``frame`` (an input table's rows) has rows at every cycle point of ``points`` and none of them is stale."""
    if len(points) == 0:
        return
    have = pd.DatetimeIndex([]) if frame is None or frame.empty else pd.DatetimeIndex(frame["timestamp"].unique())
    missing = points.difference(have)
    if len(missing):
        raise StaleInputError(f"{name} has no rows for {missing[0]} ({len(missing)} cycle point(s)): materialize "
                              f"{name} for {missing[0]:%Y-%m-%d} first")
    per_t = frame.groupby("timestamp")["bars_watermark"].min().reindex(points)
    stale = stale_points(points, marks, as_watermarks(per_t))
    if len(stale):
        raise StaleInputError(f"{name} rows for {stale[0]} ({len(stale)} cycle point(s)) were computed from older "
                              f"bars than the ones stored now: materialize {name} for {stale[0]:%Y-%m-%d} first")
