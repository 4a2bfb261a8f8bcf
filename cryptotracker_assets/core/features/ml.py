"""ML indicators (SPEC §2.2): the 29 features and their ``*_rel`` model inputs per closed
``features.ml.timeframe`` bar."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..common import NS_PER_DAY, NS_PER_MIN, day_ns, floor_ns, to_ns, utc_index
from ..config import Config, Timeframe
from .grid import (
    KEY_DTYPES,
    BarGrid,
    Windows,
    aggregate,
    bar_grid,
    check_columns,
    cover,
    empty_frame,
    safe_div,
    shift,
    timestamps_ns,
    to_long,
)
from .kernels import ema_into, history_short, kind_x_start, rsi_into, run_lanes
from .parallel import scratch
from .registry import ML_FEATURES, ML_REL_FEATURES, ML_USD_FEATURES, ML_WINDOWS_PREFIX, config_value, window_bars


@dataclass(frozen=True)
class MlParams:
    """Windows of §2.2 in bars of ``features.ml.timeframe`` and the other parameters, from the config."""

    timeframe: Timeframe
    ret: tuple[int, int, int, int]
    volume_ratio: int
    rsi: tuple[int, int]
    macd: tuple[int, int, int]
    bb: int
    bb_std: float
    sma: tuple[int, int]
    ema: tuple[int, int]
    support_resistance: int
    volatility: tuple[int, int]
    obv: int
    volume_sma: int
    roc: int
    stoch: int
    min_history_min: int
    coverage: float

    @classmethod
    def from_config(cls, cfg: Config) -> "MlParams":
        tf = cfg.features.ml.timeframe

        def bars(key: str, count: int | None = None) -> Any:
            if count is None:
                return window_bars(cfg, ML_WINDOWS_PREFIX + key, tf)
            values = config_value(cfg, ML_WINDOWS_PREFIX + key)
            if len(values) != count:
                raise ValueError(f"`{ML_WINDOWS_PREFIX}{key}`: expected {count} spans, got {len(values)}")
            return tuple(window_bars(cfg, f"{ML_WINDOWS_PREFIX}{key}[{i}]", tf) for i in range(count))

        return cls(
            timeframe=tf, ret=bars("ret", 4), volume_ratio=bars("volume_ratio"), rsi=bars("rsi", 2),
            macd=bars("macd", 3), bb=bars("bb"), bb_std=float(cfg.features.ml.bb_std), sma=bars("sma", 2),
            ema=bars("ema", 2), support_resistance=bars("support_resistance"), volatility=bars("volatility", 2),
            obv=bars("obv"), volume_sma=bars("volume_sma"), roc=bars("roc"), stoch=bars("stoch"),
            min_history_min=cfg.features.ml.min_history_min, coverage=cfg.engine.min_window_coverage,
        )

    @property
    def r_lookback(self) -> int:
        """Bars before t that a Kind-R feature of bar t reads (Δ-based windows also read the bar before)."""
        return max(*self.ret, self.volume_ratio - 1, self.bb - 1, self.sma[0] - 1, self.sma[1] - 1,
                   self.support_resistance - 1, *self.volatility, self.obv, self.volume_sma - 1, self.roc,
                   self.stoch - 1)

    @property
    def x_lookback(self) -> int:
        """Bars after the start a Kind-X feature needs before its first value."""
        fast, slow, signal = self.macd
        return max(*self.rsi, self.ema[0] - 1, self.ema[1] - 1, max(fast, slow) - 1 + signal - 1)

    @property
    def history_bars(self) -> int:
        """Bars of history a row needs to be out of the documented warm-up."""
        return max(self.r_lookback, self.x_lookback)


def ml_warmup(cfg: Config) -> pd.Timedelta:
    """Warm-up span for a UTC day D of ML features: the base bars with open time in [D − span, D + 1 day) give
    the rows of D exactly as the continuous series does.

    span = max(whole days back to 00:00 of the day containing D + 15 min − min_history_min, the longest Kind-R
    lookback, the documented history) — 5 days with the defaults.
    """
    p = MlParams.from_config(cfg)
    tf_ns = p.timeframe.minutes * NS_PER_MIN
    x_days = -(floor_ns(tf_ns - p.min_history_min * NS_PER_MIN, NS_PER_DAY) // NS_PER_DAY)
    span_ns = max(x_days * NS_PER_DAY, p.history_bars * tf_ns)
    return pd.Timedelta(span_ns, unit="ns")


ML_COLUMNS: tuple[str, ...] = ("symbol", "timestamp", "available_at", "warmup") + ML_FEATURES + ML_REL_FEATURES


def compute_ml_features(bars: pd.DataFrame, cfg: Config, *, start: Any = None, end: Any = None,
                        bar_timeframe: Timeframe | str | None = None) -> pd.DataFrame:
    """The §2.2 indicators for every ``features.ml.timeframe`` bar with open time ≥ ``start`` that is closed by
    ``end`` (open + length ≤ end), from ``bars`` (long format, several symbols, of ``bar_timeframe``; default
    ``engine.base_timeframe``; bars are aggregated per §13.1 unless they already have the ML timeframe).

    Only bars with open time < ``end`` are read (default: the newest bar's end). ``start`` defaults to the first
    bar; pass bars from ``start − ml_warmup(cfg)`` to get rows equal to the continuous series.

    Returns one row per (symbol, bar), sorted by symbol then time: ``symbol``, ``timestamp`` (bar open, UTC),
    ``available_at`` (= the cycle point T at which the row may be used: the bar's close), ``warmup`` (the symbol
    has less history than the windows need since the Kind-X start: nulls expected), the 29 features of
    :data:`ML_FEATURES` and the ``*_rel`` model inputs of :data:`ML_REL_FEATURES`. Null = NaN.
    """
    p = MlParams.from_config(cfg)
    base = Timeframe(bar_timeframe) if bar_timeframe is not None else cfg.engine.base_timeframe
    tf = p.timeframe
    if tf.minutes % base.minutes:
        raise ValueError(f"bars of {base.value} cannot be aggregated to {tf.value}")
    step = tf.minutes * NS_PER_MIN
    check_columns(bars)
    if bars.empty:
        return empty_frame(ML_COLUMNS, KEY_DTYPES)
    ts = timestamps_ns(bars["timestamp"])
    end_ns = to_ns(end, "end") if end is not None else int(ts.max()) + base.minutes * NS_PER_MIN
    start_ns = to_ns(start, "start") if start is not None else floor_ns(int(ts.min()), step)
    lo = start_ns - int(ml_warmup(cfg).value)
    sub = bars.loc[(ts >= lo) & (ts < end_ns)]
    if sub.empty:
        return empty_frame(ML_COLUMNS, KEY_DTYPES)
    if base is not tf:
        sub = aggregate(sub, tf, end_ns)
    t_sub = timestamps_ns(sub["timestamp"])
    t0 = floor_ns(int(t_sub.min()), NS_PER_DAY)
    grid = bar_grid(sub, tf.minutes, t0, floor_ns(end_ns, step))
    times = grid.slot_times()
    out_mask = grid.present & (times >= start_ns)[None, :] & (times + step <= end_ns)[None, :]
    feats = _ml_kind_r(grid, p)
    feats.update(_ml_kind_x(grid, p, out_mask))
    feats["macd_diff"] = feats["macd"] - feats["macd_signal"]
    close = grid.close
    for name in ML_USD_FEATURES:
        feats[f"{name}_rel"] = feats[name] / close
    warm = history_short(grid.present, grid.t0, step, times + step, p.min_history_min, p.history_bars) & out_mask
    columns = {name: feats[name] for name in ML_FEATURES + ML_REL_FEATURES}
    return to_long(grid.symbols, times, out_mask, columns, leading={
        "available_at": lambda si, gi: utc_index(times[gi] + step),
        "warmup": lambda si, gi: warm[si, gi],
    })


def compute_ml_features_day(bars: pd.DataFrame, day: Any, cfg: Config, *,
                            bar_timeframe: Timeframe | str | None = None) -> pd.DataFrame:
    """The ML rows of UTC ``day`` (bars opening in [day, day + 1 d)) from base bars with open time in
    [day − ml_warmup(cfg), day + 1 d); equal, bit for bit, to the same rows of the continuous series."""
    d = day_ns(day)
    return compute_ml_features(bars, cfg, start=pd.Timestamp(d, tz="UTC"), end=pd.Timestamp(d + NS_PER_DAY, tz="UTC"),
                               bar_timeframe=bar_timeframe)


def _ml_kind_r(g: BarGrid, p: MlParams) -> dict[str, np.ndarray]:
    c, h, lo, v = g.close, g.high, g.low, g.volume
    present = g.present
    w = Windows(p.coverage)
    w.source("n", present.astype("float64"))
    w.source("c0", np.where(present, c, 0.0))
    w.source("c0sq", np.where(present, c * c, 0.0))
    w.source("v0", np.where(present, v, 0.0))
    w.source("c", c)
    w.source("h", h)
    w.source("l", lo)
    prev = shift(c, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r1 = c / prev - 1.0
    has_r = ~np.isnan(r1)
    w.source("nr", has_r.astype("float64"))
    r0 = np.where(has_r, r1, 0.0)
    w.source("r0", r0)
    w.source("r0sq", r0 * r0)
    sign = np.sign(np.where(has_r, c - prev, 0.0))
    w.source("obv_num", np.where(has_r, sign * np.where(present, v, 0.0), 0.0))
    w.source("obv_den", np.where(has_r, v, 0.0))
    f: dict[str, np.ndarray] = {}

    def ret(n: int) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            out = c / shift(c, n) - 1.0
        out[~w.valid("n", n)] = np.nan
        return out

    for name, n in zip(("ret_75m", "ret_225m", "ret_15h", "ret_60h"), p.ret):
        f[name] = ret(n)
    f["roc_12"] = ret(p.roc)

    def mean(src: str, n: int) -> np.ndarray:
        out = safe_div(w.sum(src, n), w.sum("n", n))
        out[~w.valid("n", n)] = np.nan
        return out

    f["volume_ratio_15h"] = safe_div(v, mean("v0", p.volume_ratio))
    f["volume_sma_ratio"] = safe_div(v, mean("v0", p.volume_sma))

    n = p.bb
    mid = mean("c0", n)
    with np.errstate(invalid="ignore"):
        var = w.sum("c0sq", n) / w.sum("n", n) - mid * mid
    np.maximum(var, 0.0, out=var)
    var[w.max("c", n) == w.min("c", n)] = 0.0  # a flat window has exactly zero width
    band = p.bb_std * np.sqrt(var)
    f["bb_mid"] = mid
    f["bb_high"] = mid + band
    f["bb_low"] = mid - band
    width = f["bb_high"] - f["bb_low"]
    f["bb_width"] = width / mid
    f["bb_position"] = safe_div(c - f["bb_low"], width)

    for name, dist, n in (("sma_20", "dist_sma20", p.sma[0]), ("sma_50", "dist_sma50", p.sma[1])):
        f[name] = mean("c0", n)
        f[dist] = c / f[name] - 1.0

    n = p.support_resistance
    ok = w.valid("n", n)
    f["dist_support_5h"] = np.where(ok, c / w.min("c", n) - 1.0, np.nan)
    f["dist_resistance_5h"] = np.where(ok, c / w.max("c", n) - 1.0, np.nan)

    for name, n in zip(("volatility_15h", "volatility_60h"), p.volatility):
        k = w.sum("nr", n)
        s1 = w.sum("r0", n)
        with np.errstate(invalid="ignore", divide="ignore"):
            var = (w.sum("r0sq", n) - s1 * s1 / k) / (k - 1.0)
        np.maximum(var, 0.0, out=var)
        out = np.sqrt(var)
        out[~(cover(k, n, p.coverage) & (k >= 2))] = np.nan
        f[name] = out

    n = p.obv
    k = w.sum("nr", n)
    out = safe_div(w.sum("obv_num", n), w.sum("obv_den", n))
    out[~cover(k, n, p.coverage)] = np.nan
    f["obv_15h"] = out

    n = p.stoch
    low_n = w.min("l", n)
    rng = w.max("h", n) - low_n
    out = safe_div(c - low_n, rng) * 100.0
    out[~w.valid("n", n)] = np.nan
    f["stoch_k_14"] = out

    for name in f:
        f[name][~present] = np.nan
    return f


def _ml_kind_x(g: BarGrid, p: MlParams, out_mask: np.ndarray) -> dict[str, np.ndarray]:
    names = ("rsi_14", "rsi_30", "ema_12", "ema_26", "macd", "macd_signal")
    n_sym, n_slots = out_mask.shape
    out = {name: np.full((n_sym, n_slots), np.nan) for name in names}
    slots = np.flatnonzero(out_mask.any(axis=0))
    if slots.size == 0:
        return out
    use_t = g.t0 + (slots + 1) * g.step  # T of the row of bar t = its close
    start_slot = np.maximum((kind_x_start(use_t, p.min_history_min) - g.t0) // g.step, 0)
    groups: list[tuple[int, np.ndarray]] = []
    cols: list[np.ndarray] = []
    for s in np.unique(start_slot):
        js = slots[start_slot == s]
        groups.append((int(s), np.where(out_mask[:, js], js[None, :], -1)))
        cols.append(js)
    fast, slow, signal = p.macd

    def lane_fn(c: np.ndarray, rsi_a: np.ndarray, rsi_b: np.ndarray, ema_a: np.ndarray, ema_b: np.ndarray,
                line: np.ndarray, sig: np.ndarray) -> None:
        rsi_into(c, p.rsi[0], rsi_a)
        rsi_into(c, p.rsi[1], rsi_b)
        emas = {p.ema[0]: ema_into(c, p.ema[0], 2.0 / (p.ema[0] + 1), ema_a),
                p.ema[1]: ema_into(c, p.ema[1], 2.0 / (p.ema[1] + 1), ema_b)}
        for n in (fast, slow):
            if n not in emas:
                emas[n] = ema_into(c, n, 2.0 / (n + 1), scratch(f"lane_ema_{n}", c.shape))
        np.subtract(emas[fast], emas[slow], out=line)
        ema_into(line, signal, 2.0 / (signal + 1), sig, first=max(fast, slow) - 1)

    for js, res in zip(cols, run_lanes(g.close, g.present, groups, lane_fn, names)):
        for name, vals in res.items():
            out[name][:, js] = vals
    return out
