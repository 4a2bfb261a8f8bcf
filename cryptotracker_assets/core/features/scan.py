"""Scan features (SPEC §2.1) on base bars at the decision bar of every cycle point."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..common import NS_PER_DAY, NS_PER_MIN, ceil_ns, cycle_points, day_ns, floor_ns, to_ns
from ..config import Config, Timeframe
from .grid import (
    KEY_DTYPES,
    BarGrid,
    Windows,
    bar_grid,
    check_columns,
    empty_frame,
    op_add,
    rolling,
    safe_div,
    shift,
    timestamps_ns,
    to_long,
)
from .kernels import history_short, kind_x_start, rsi_into, run_lanes
from .registry import SCAN_FEATURES, window_bars


@dataclass(frozen=True)
class ScanParams:
    """§2.1 windows in base bars, the cycle and staleness rules, from the config."""

    base: Timeframe
    dca: int
    swing: int
    channel: int
    rsi: int
    volume_ratio: int
    support: int
    btc_corr: int
    vol_24h: int
    min_btc_corr_pairs: int
    market_symbol: str
    cycle_min: int
    max_bar_lag_min: int
    min_history_min: int
    coverage: float

    @classmethod
    def from_config(cls, cfg: Config, base: Timeframe | None = None) -> "ScanParams":
        tf = base or cfg.engine.base_timeframe

        def bars(key: str) -> int:
            return window_bars(cfg, key, tf)

        return cls(
            base=tf, dca=bars("strategies.dca.lookback_min"), swing=bars("strategies.swing.lookback_min"),
            channel=bars("strategies.channel.lookback_min"), rsi=bars("scan.windows_min.rsi"),
            volume_ratio=bars("scan.windows_min.volume_ratio"), support=bars("scan.windows_min.support"),
            btc_corr=bars("scan.windows_min.btc_corr"), vol_24h=bars("scan.windows_min.vol_24h"),
            min_btc_corr_pairs=cfg.scan.min_btc_corr_pairs, market_symbol=cfg.universe.market_symbol,
            cycle_min=cfg.engine.cycle_min, max_bar_lag_min=cfg.engine.max_bar_lag_min,
            min_history_min=cfg.features.ml.min_history_min, coverage=cfg.engine.min_window_coverage,
        )

    @property
    def lookback(self) -> int:
        """Bars before the decision bar that a Kind-R scan feature reads."""
        return max(self.dca - 1, self.swing, self.channel - 1, self.volume_ratio, self.support - 1, self.btc_corr,
                   self.vol_24h - 1)

    @property
    def history_bars(self) -> int:
        return max(self.lookback, self.rsi)


def scan_warmup(cfg: Config, bar_timeframe: Timeframe | str | None = None) -> pd.Timedelta:
    """Warm-up span for a UTC day D of scan features: base bars with open time in [D − span, D + 1 day) give
    the rows of D's cycle points exactly as the continuous series does.

    span = max(whole days back to 00:00 of the day containing D − min_history_min, max_bar_lag + the longest
    window lookback) — 5 days with the defaults.
    """
    p = ScanParams.from_config(cfg, Timeframe(bar_timeframe) if bar_timeframe else None)
    x_days = -(floor_ns(-p.min_history_min * NS_PER_MIN, NS_PER_DAY) // NS_PER_DAY)
    b = p.base.minutes * NS_PER_MIN
    span_ns = max(x_days * NS_PER_DAY, p.max_bar_lag_min * NS_PER_MIN + p.history_bars * b)
    return pd.Timedelta(span_ns, unit="ns")


SCAN_COLUMNS: tuple[str, ...] = ("symbol", "timestamp", "bar_timestamp", "stale", "warmup") + SCAN_FEATURES


def decision_slots(present: np.ndarray, t0: int, step: int, points: np.ndarray, lag_min: int) -> tuple[np.ndarray,
                                                                                                       np.ndarray]:
    """Per symbol and cycle point T (ns): the slot of the decision bar (latest bar with open < T) and whether the
    symbol is stale (no bar, or decision bar open < T − lag). Slots are −1 where there is no decision bar."""
    n_sym, n_slots = present.shape
    last = np.where(present, np.arange(n_slots)[None, :], -1)
    np.maximum.accumulate(last, axis=1, out=last)
    k = (points - t0) // step  # slot of T; the decision bar is at most k − 1
    idx = np.clip(k - 1, -1, n_slots - 1)
    c = np.where(idx[None, :] >= 0, last[:, np.maximum(idx, 0)], -1)
    lag_slots = (lag_min * NS_PER_MIN) // step
    stale = (c < 0) | (c < (k - lag_slots)[None, :])
    return np.where(stale, -1, c), stale


def compute_scan_features(bars: pd.DataFrame, cfg: Config, *, start: Any, end: Any,
                          bar_timeframe: Timeframe | str | None = None,
                          symbols: Iterable[str] | None = None) -> pd.DataFrame:
    """The §2.1 scan features of ``symbols`` (default: those with bars in the span read) at every cycle point T in
    [start, end); pass the symbol list (e.g. the active universe) for a row set that does not depend on the input.

    At T only bars with open time < T are visible; the decision bar c is the latest one; the symbol is stale
    when there is none or c.open < T − ``engine.max_bar_lag_min`` (then every feature is null). Pass bars from
    ``start − scan_warmup(cfg)`` to get rows equal to the continuous series.

    Returns one row per (symbol, T), sorted by symbol then T: ``symbol``, ``timestamp`` (= T), ``bar_timestamp``
    (c.open, NaT when stale), ``stale``, ``warmup`` (less history than the windows need since the Kind-X start),
    then :data:`SCAN_FEATURES`. Null = NaN.
    """
    base = Timeframe(bar_timeframe) if bar_timeframe is not None else cfg.engine.base_timeframe
    p = ScanParams.from_config(cfg, base)
    start_ns, end_ns = to_ns(start, "start"), to_ns(end, "end")
    points = cycle_points(start, end, p.cycle_min).asi8
    check_columns(bars)
    ts = timestamps_ns(bars["timestamp"])
    sub = bars.loc[(ts >= start_ns - int(scan_warmup(cfg, base).value)) & (ts < end_ns)]
    present_syms = set(sub["symbol"].astype(str).unique().tolist())
    wanted = sorted(present_syms) if symbols is None else sorted(set(symbols))
    if not wanted or points.size == 0:
        return empty_frame(SCAN_COLUMNS, KEY_DTYPES)
    # The market symbol's bars enter btc_corr even when its own rows are not asked for.
    symbols = sorted(set(wanted) | ({p.market_symbol} & present_syms))
    step = base.minutes * NS_PER_MIN
    t0 = floor_ns(int(timestamps_ns(sub["timestamp"]).min()) if not sub.empty else start_ns, NS_PER_DAY)
    grid = bar_grid(sub, base.minutes, t0, ceil_ns(end_ns, step), symbols)
    dec, stale = decision_slots(grid.present, t0, step, points, p.max_bar_lag_min)
    feats = _scan_kind_r(grid, p)
    rows = np.arange(len(symbols))[:, None]
    safe = np.maximum(dec, 0)
    columns: dict[str, np.ndarray] = {}
    for name in SCAN_FEATURES:
        if name == "rsi_14m":
            continue
        vals = feats[name][rows, safe]
        vals[stale] = np.nan
        columns[name] = vals
    columns["rsi_14m"] = _scan_rsi(grid, p, points, dec)
    columns = {name: columns[name] for name in SCAN_FEATURES}
    warm = history_short(grid.present, t0, step, points, p.min_history_min, p.history_bars, dec) & ~stale
    mask = np.broadcast_to(np.isin(symbols, wanted)[:, None], (len(symbols), points.size))
    bar_ts = np.where(stale, np.iinfo("int64").min, t0 + dec * step)
    return to_long(symbols, points, mask, columns, leading={
        "bar_timestamp": lambda si, gi: pd.DatetimeIndex(bar_ts[si, gi].view("datetime64[ns]")).tz_localize("UTC"),
        "stale": lambda si, gi: stale[si, gi],
        "warmup": lambda si, gi: warm[si, gi],
    })


def compute_scan_features_day(bars: pd.DataFrame, day: Any, cfg: Config, *,
                              bar_timeframe: Timeframe | str | None = None,
                              symbols: Iterable[str] | None = None) -> pd.DataFrame:
    """Scan rows of the cycle points of UTC ``day`` from base bars with open time in [day − scan_warmup(cfg),
    day + 1 d); equal, bit for bit, to the same rows of the continuous series."""
    d = day_ns(day)
    return compute_scan_features(bars, cfg, start=pd.Timestamp(d, tz="UTC"),
                                 end=pd.Timestamp(d + NS_PER_DAY, tz="UTC"), bar_timeframe=bar_timeframe,
                                 symbols=symbols)


def _scan_kind_r(g: BarGrid, p: ScanParams) -> dict[str, np.ndarray]:
    c, h, lo, v, o = g.close, g.high, g.low, g.volume, g.open
    present = g.present
    w = Windows(p.coverage)
    w.source("n", present.astype("float64"))
    w.source("v0", np.where(present, v, 0.0))
    w.source("c", c)
    w.source("h", h)
    w.source("l", lo)
    w.source("o", o)
    f: dict[str, np.ndarray] = {}

    n = p.dca
    f["drop"] = np.where(w.valid("n", n), c / w.max("h", n) - 1.0, np.nan)

    n = p.swing  # reference window excluding c: the n bars before it
    ok = shift(w.valid("n", n).astype("float64"), 1, 0.0) > 0
    f["breakout"] = np.where(ok, c / shift(w.max("h", n), 1) - 1.0, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        ref_mean = shift(w.sum("v0", n), 1) / shift(w.sum("n", n), 1, 1.0)
        surge = np.where(ref_mean == 0, 0.0, v / ref_mean)  # SPEC: 0 if that mean is 0
    f["volume_surge"] = np.where(ok, surge, np.nan)

    n = p.channel
    ok = w.valid("n", n)
    hi_c, lo_c = w.max("c", n), w.min("c", n)
    f["channel_position"] = np.where(ok, safe_div(c - lo_c, hi_c - lo_c), np.nan)
    f["channel_width"] = np.where(ok, (hi_c - lo_c) / lo_c, np.nan)

    n = p.volume_ratio
    ok = shift(w.valid("n", n).astype("float64"), 1, 0.0) > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        ref_mean = shift(w.sum("v0", n), 1) / shift(w.sum("n", n), 1, 1.0)
    f["volume_ratio"] = np.where(ok, safe_div(v, ref_mean), np.nan)

    n = p.support
    f["dist_support"] = np.where(w.valid("n", n), c / w.min("l", n) - 1.0, np.nan)

    f["btc_corr"] = _btc_corr(g, p)

    n = p.vol_24h
    f["vol_24h"] = np.where(w.valid("n", n), (w.max("h", n) - w.min("l", n)) / w.first("o", n), np.nan)
    return f


def _btc_corr(g: BarGrid, p: ScanParams) -> np.ndarray:
    n_sym, n_slots = g.close.shape
    out = np.full((n_sym, n_slots), np.nan)
    m = g.row(p.market_symbol)
    if m is None:
        return out  # the market symbol's bars are not in the input: no correlation can be computed
    with np.errstate(invalid="ignore", divide="ignore"):
        r = g.close / shift(g.close, 1) - 1.0
    rb = r[m][None, :]
    pair = ~np.isnan(r) & ~np.isnan(rb)
    x = np.where(pair, r, 0.0)
    y = np.where(pair, rb, 0.0)
    n = p.btc_corr
    k = rolling(pair.astype("float64"), n, op_add)
    sx, sy = rolling(x, n, op_add), rolling(y, n, op_add)
    sxx, syy, sxy = rolling(x * x, n, op_add), rolling(y * y, n, op_add), rolling(x * y, n, op_add)
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = k * sxy - sx * sy
        den = np.sqrt((k * sxx - sx * sx) * (k * syy - sy * sy))
        corr = cov / den
    corr[~(den > 0) | (k < p.min_btc_corr_pairs)] = np.nan
    np.clip(corr, -1.0, 1.0, out=corr)
    corr[m] = np.where(g.present[m], 1.0, np.nan)  # SPEC §2.1: the market symbol's own correlation is 1
    return corr


def _scan_rsi(g: BarGrid, p: ScanParams, points: np.ndarray, dec: np.ndarray) -> np.ndarray:
    out = np.full(dec.shape, np.nan)
    starts = np.maximum((kind_x_start(points, p.min_history_min) - g.t0) // g.step, 0)
    groups, cols = [], []
    for s in np.unique(starts):
        ks = np.flatnonzero(starts == s)
        groups.append((int(s), dec[:, ks]))
        cols.append(ks)
    res = run_lanes(g.close, g.present, groups, lambda c, o: rsi_into(c, p.rsi, o), ("rsi",))
    for ks, r in zip(cols, res):
        if r:
            out[:, ks] = r["rsi"]
    return out
