"""Market protection state per cycle point (SPEC §8) and market structure (SPEC §9.1); never imports dagster.

One row per cycle point T (UTC multiples of ``engine.cycle_min``) for table ``market_regime``: the BTC regime
(§8.1) from the base bars of ``universe.market_symbol`` ("BTC"), the per-strategy volatility-disable state machine
(§8.2), and the market structure with its best-strategy decision (§9.1). At T only bars with open time < T are
visible. Returns, volatilities and declines are fractions. Horizons are the ones named by the config keys
(``ret_1h`` = 1 h, ``decline_48h`` = 48 h, ``vol_24h`` = 24 h).

The regime and the market structure are pure functions of the bars at T. The volatility-disable machine is a fold
over cycle points that starts from the previous cycle point's :class:`MarketState`, so a UTC day re-run from the
stored state of the day before reproduces the states of a continuous run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .common import NS_PER_DAY, NS_PER_MIN, StrictEnum, ceil_ns, cycle_points, day_ns, floor_ns, to_ns, utc_index
from .config import Config, Strategy, Tier, Timeframe
from .features import bar_grid, decision_slots, rolling, window_bars
from .features.grid import aggregate, check_columns, cover, op_add, op_first, op_max, op_min, timestamps_ns


class Regime(StrictEnum):
    PANIC = "PANIC"
    CAUTION = "CAUTION"
    EUPHORIA = "EUPHORIA"
    NORMAL = "NORMAL"
    UNKNOWN = "UNKNOWN"  # inputs missing or BTC stale: no entries (stale_data)


class BestStrategy(StrictEnum):
    DCA = "DCA"
    SWING = "SWING"
    CHANNEL = "CHANNEL"
    WAIT = "WAIT"
    NONE = "NONE"  # analysis unavailable


class StructureReason(StrictEnum):
    DIP_OPPORTUNITY = "DIP_OPPORTUNITY"
    BREAKOUT_MOMENTUM = "BREAKOUT_MOMENTUM"
    GRADUAL_DECLINE = "GRADUAL_DECLINE"
    DOWNTREND = "DOWNTREND"
    RANGE_BOUND = "RANGE_BOUND"
    SELECTIVE_MOMENTUM = "SELECTIVE_MOMENTUM"
    NEUTRAL = "NEUTRAL"
    INSUFFICIENT_SYMBOLS = "INSUFFICIENT_SYMBOLS"


# ---------------------------------------------------------------------------------------------------------------
# Regime measures and rules (SPEC §8.1)
# ---------------------------------------------------------------------------------------------------------------

_MEASURE = re.compile(r"^(ret|vol|decline)_(\d+)(min|h|d)$")
_UNIT_MIN = {"min": 1, "h": 60, "d": 1440}
_RULES = ("panic", "caution", "euphoria")


def _measure_of(name: str) -> tuple[str, int]:
    """('ret' | 'vol' | 'decline', horizon in minutes) of a config key such as ``ret_4h``."""
    m = _MEASURE.match(name)
    if m is None:
        raise ValueError(f"`protection.regime.*.{name}`: not a ret_/vol_/decline_<horizon> key")
    return m.group(1), int(m.group(2)) * _UNIT_MIN[m.group(3)]


def regime_measure_names(cfg: Config) -> tuple[str, ...]:
    """The measures the regime rules use, named by their config keys: ret_* by horizon, vol_*, decline_*."""
    names = {n for rule in _RULES for n in getattr(cfg.protection.regime, rule).model_dump()}
    order = ("ret", "vol", "decline")
    return tuple(sorted(names, key=lambda n: (order.index(_measure_of(n)[0]), _measure_of(n)[1])))


REGIME_STATE_COLUMNS = ("regime", "size_multiplier", "regime_panic", "regime_caution", "regime_euphoria",
                        "entered_panic")


def regime_columns(cfg: Config) -> tuple[str, ...]:
    """Columns of :func:`compute_regime` (the measures are ``btc_<config key>``)."""
    return ("timestamp", "market_symbol", "bar_timestamp", "stale", "btc_close") + tuple(
        f"btc_{n}" for n in regime_measure_names(cfg)) + REGIME_STATE_COLUMNS[:-1]


def _market_measures(bars: pd.DataFrame, cfg: Config, points: np.ndarray, end_ns: int, base: Timeframe,
                     lo_ns: int) -> dict[str, np.ndarray]:
    """close_T, stale flag, decision-bar open and every regime measure at each cycle point (ns)."""
    sym = cfg.universe.market_symbol
    b = base.minutes * NS_PER_MIN
    ts = timestamps_ns(bars["timestamp"])
    sub = bars.loc[(bars["symbol"].astype(str) == sym).to_numpy() & (ts >= lo_ns) & (ts < end_ns)]
    n = points.size
    out: dict[str, np.ndarray] = {"bar": np.full(n, np.iinfo("int64").min), "stale": np.ones(n, dtype=bool),
                                  "close": np.full(n, np.nan)}
    names = regime_measure_names(cfg)
    for name in names:
        out[name] = np.full(n, np.nan)
    if sub.empty or n == 0:
        return out
    t0 = floor_ns(int(timestamps_ns(sub["timestamp"]).min()), NS_PER_DAY)
    g = bar_grid(sub, base.minutes, t0, ceil_ns(end_ns, b), [sym])
    present = g.present
    dec, stale = decision_slots(present, t0, b, points, cfg.engine.max_bar_lag_min)
    dec, stale = dec[0], stale[0]
    close = g.close[0]
    n_slots = g.n_slots
    out["stale"] = stale
    out["bar"] = np.where(stale, np.iinfo("int64").min, t0 + dec * b)
    close_t = np.where(stale, np.nan, close[np.maximum(dec, 0)])
    out["close"] = close_t
    k = (points - t0) // b  # slot of T: the window [T − h, T) ends at slot k − 1
    last = np.where(present[0], np.arange(n_slots), -1)
    np.maximum.accumulate(last, out=last)
    cov = cfg.engine.min_window_coverage
    gap_ns = cfg.protection.regime.max_reference_gap_min * NS_PER_MIN
    count_cache: dict[int, np.ndarray] = {}

    def window(src: np.ndarray, h_bars: int, op) -> tuple[np.ndarray, np.ndarray]:
        if h_bars not in count_cache:
            count_cache[h_bars] = rolling(present.astype("float64"), h_bars, op_add)[0]
        end_slot = k - 1
        ok = (end_slot >= 0) & (end_slot < n_slots)
        idx = np.clip(end_slot, 0, n_slots - 1)
        vals = rolling(src, h_bars, op)[0][idx]
        valid = ok & cover(count_cache[h_bars][idx], h_bars, cov)
        return np.where(valid, vals, np.nan), valid

    for name in names:
        kind, horizon = _measure_of(name)
        h_ns = horizon * NS_PER_MIN
        if horizon % base.minutes:
            raise ValueError(f"`protection.regime.*.{name}`: {horizon} min is not whole {base.value} bars")
        h_bars = horizon // base.minutes
        if kind == "ret":
            # ref = close of the latest bar ending ≤ T − h, which must end within max_reference_gap of T − h.
            slot = (points - h_ns - b - t0) // b
            ok = (slot >= 0) & (slot < n_slots)
            ref_slot = np.where(ok, last[np.clip(slot, 0, n_slots - 1)], -1)
            ref_end = t0 + (ref_slot + 1) * b
            ok &= (ref_slot >= 0) & (ref_end >= points - h_ns - gap_ns)
            ref = np.where(ok, close[np.maximum(ref_slot, 0)], np.nan)
            out[name] = close_t / ref - 1.0
        elif kind == "vol":
            hi, _ = window(g.high, h_bars, op_max)
            lo, _ = window(g.low, h_bars, op_min)
            first_open, _ = window(g.open, h_bars, op_first)
            out[name] = (hi - lo) / first_open
        else:  # decline from the window's peak close
            peak, _ = window(g.close, h_bars, op_max)
            out[name] = close_t / peak - 1.0
    return out


def vol24h_measure(cfg: Config) -> str:
    """The volatility measure of the regime rules (``vol_24h``): it also drives §8.2 and §8.4."""
    vols = [n for n in regime_measure_names(cfg) if _measure_of(n)[0] == "vol"]
    if len(vols) != 1:
        raise ValueError("`protection.regime`: exactly one vol_<horizon> measure is expected")
    return vols[0]


def classify_regime(measures: Mapping[str, float], cfg: Config, stale: bool = False) -> Regime:
    """The §8.1 regime (first true wins) from measures keyed by config name (``ret_1h`` …; NaN = unavailable).

    UNKNOWN when BTC is stale or any ret/vol measure is unavailable; an unavailable decline only makes its
    condition false.
    """
    rc = cfg.protection.regime
    if stale:
        return Regime.UNKNOWN
    for name in regime_measure_names(cfg):
        kind, _ = _measure_of(name)
        if kind != "decline" and not np.isfinite(measures[name]):
            return Regime.UNKNOWN

    def hit(rule: str) -> bool:
        thresholds = getattr(rc, rule).model_dump()
        rets = [n for n in thresholds if _measure_of(n)[0] == "ret"]
        shortest = min(rets, key=lambda n: _measure_of(n)[1]) if rets else None
        for name, thr in thresholds.items():
            kind, _ = _measure_of(name)
            v = measures[name]
            if not np.isfinite(v):
                continue
            if kind == "vol":
                if v >= thr and (rule != "euphoria" or (shortest is not None and measures[shortest] > 0)):
                    return True
            elif rule == "euphoria":
                if v >= thr:
                    return True
            elif v <= thr:
                return True
        return False

    if hit("panic"):
        return Regime.PANIC
    if hit("caution"):
        return Regime.CAUTION
    if hit("euphoria"):
        return Regime.EUPHORIA
    return Regime.NORMAL


def panic_triggers(measures: Mapping[str, float], cfg: Config) -> list[str]:
    """The §8.1 PANIC conditions that hold, for people (``ret_1h -3.50% ≤ -3.00%``); measures keyed by config name
    (a ``btc_`` prefix is accepted)."""
    plain = {k.removeprefix("btc_"): v for k, v in measures.items()}
    out = []
    for name, thr in cfg.protection.regime.panic.model_dump().items():
        v = plain.get(name, float("nan"))
        if v is None or not np.isfinite(v):
            continue
        if _measure_of(name)[0] == "vol":
            if v >= thr:
                out.append(f"{name} {v * 100:.2f}% ≥ {thr * 100:.2f}%")
        elif v <= thr:
            out.append(f"{name} {v * 100:+.2f}% ≤ {thr * 100:+.2f}%")
    return out


def size_multiplier(regime: Regime, cfg: Config) -> float:
    """``protection.regime.size_multiplier.<regime>``; UNKNOWN allows no entries (0)."""
    if regime is Regime.UNKNOWN:
        return 0.0
    return float(getattr(cfg.protection.regime.size_multiplier, regime.value.lower()))


def compute_regime(bars: pd.DataFrame, cfg: Config, *, start: Any, end: Any,
                   bar_timeframe: Timeframe | str | None = None) -> pd.DataFrame:
    """The §8.1 regime at every cycle point T in [start, end) from the bars of ``universe.market_symbol``
    (other symbols in ``bars`` are ignored). Pass bars from ``start − regime_warmup(cfg)``.

    Columns: ``timestamp`` (T), ``market_symbol``, ``bar_timestamp`` (decision bar open, NaT when stale),
    ``stale``, ``btc_close``, ``btc_<measure>`` for each configured measure (ret_1h, ret_4h, ret_24h, vol_24h,
    decline_24h, decline_48h; fractions), ``regime``, ``size_multiplier``, ``regime_panic``, ``regime_caution``,
    ``regime_euphoria`` (int8 one-hot; NORMAL = all 0).
    """
    base = Timeframe(bar_timeframe) if bar_timeframe is not None else cfg.engine.base_timeframe
    check_columns(bars)
    start_ns, end_ns = to_ns(start, "start"), to_ns(end, "end")
    points = cycle_points(start, end, cfg.engine.cycle_min).asi8
    m = _market_measures(bars, cfg, points, end_ns, base, start_ns - int(regime_warmup(cfg, base).value))
    names = regime_measure_names(cfg)
    regimes = [
        classify_regime({n: m[n][i] for n in names}, cfg, bool(m["stale"][i])).value for i in range(points.size)
    ]
    reg = np.asarray(regimes, dtype=object)
    out = pd.DataFrame({
        "timestamp": utc_index(points),
        "market_symbol": cfg.universe.market_symbol,
        "bar_timestamp": pd.DatetimeIndex(m["bar"].view("datetime64[ns]")).tz_localize("UTC"),
        "stale": m["stale"],
        "btc_close": m["close"],
        **{f"btc_{n}": m[n] for n in names},
        "regime": reg,
        "size_multiplier": np.array([size_multiplier(Regime(r), cfg) for r in regimes], dtype="float64"),
        "regime_panic": (reg == Regime.PANIC.value).astype("int8"),
        "regime_caution": (reg == Regime.CAUTION.value).astype("int8"),
        "regime_euphoria": (reg == Regime.EUPHORIA.value).astype("int8"),
    })
    return out


# ---------------------------------------------------------------------------------------------------------------
# Volatility disable (SPEC §8.2): a fold over cycle points
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VolDisableState:
    """One strategy's state: enabled, or disabled since ``disabled_at`` (UTC)."""

    enabled: bool = True
    disabled_at: pd.Timestamp | None = None


def _initial_vol() -> dict[Strategy, VolDisableState]:
    return {s: VolDisableState() for s in Strategy}


@dataclass(frozen=True)
class MarketState:
    """What one cycle point hands to the next: the regime (for "entering PANIC") and the volatility-disable states.

    ``MarketState()`` is the state before the first cycle point (every strategy ENABLED, no previous regime).
    """

    regime: Regime | None = None
    vol: Mapping[Strategy, VolDisableState] = field(default_factory=_initial_vol)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "MarketState":
        """The state after a stored ``market_regime`` row (e.g. the last row of the previous UTC day)."""
        vol = {}
        for s in Strategy:
            at = row[f"{s.key}_disabled_at"]
            vol[s] = VolDisableState(bool(row[f"{s.key}_enabled"]), None if pd.isna(at) else pd.Timestamp(at))
        return cls(Regime(row["regime"]), vol)


VOL_STATE_COLUMNS: tuple[str, ...] = tuple(
    c for s in Strategy for c in (f"{s.key}_enabled", f"{s.key}_disabled_at", f"{s.key}_changed"))


def fold_volatility_disable(points: pd.DatetimeIndex, vol24h: np.ndarray, cfg: Config,
                            state: Mapping[Strategy, VolDisableState] | None = None
                            ) -> tuple[pd.DataFrame, dict[Strategy, VolDisableState]]:
    """Apply §8.2 at each cycle point in order, starting from ``state`` (default: all ENABLED).

    ENABLED → DISABLED when vol24h ≥ disable_at (disabled_at = T). DISABLED → ENABLED when T ≥ disabled_at +
    min_disabled_h and vol24h ≤ reenable_at (or vol24h < disable_at where reenable_at is null). Unchanged while
    vol24h is unavailable (NaN). Returns (``<s>_enabled``, ``<s>_disabled_at``, ``<s>_changed`` per strategy,
    one row per point) and the state after the last point.
    """
    vd = cfg.protection.volatility_disable
    min_ns = int(round(vd.min_disabled_h * 60)) * NS_PER_MIN
    cur = dict(_initial_vol() if state is None else state)
    pts = np.asarray(points.asi8, dtype="int64")
    vols = np.asarray(vol24h, dtype="float64")
    cols: dict[str, Any] = {}
    for s in Strategy:
        rule = getattr(vd, s.key)
        enabled = np.empty(pts.size, dtype=bool)
        since = np.full(pts.size, np.iinfo("int64").min)
        changed = np.zeros(pts.size, dtype=bool)
        st = cur[s]
        on = st.enabled
        at = st.disabled_at.value if st.disabled_at is not None else None
        for i in range(pts.size):
            v = vols[i]
            if np.isfinite(v):
                if on:
                    if v >= rule.disable_at:
                        on, at, changed[i] = False, int(pts[i]), True
                else:
                    calm = v <= rule.reenable_at if rule.reenable_at is not None else v < rule.disable_at
                    if at is not None and pts[i] >= at + min_ns and calm:
                        on, at, changed[i] = True, None, True
            enabled[i] = on
            if at is not None:
                since[i] = at
        cur[s] = VolDisableState(on, pd.Timestamp(at, tz="UTC") if at is not None else None)
        cols[f"{s.key}_enabled"] = enabled
        cols[f"{s.key}_disabled_at"] = pd.DatetimeIndex(since.view("datetime64[ns]")).tz_localize("UTC")
        cols[f"{s.key}_changed"] = changed
    return pd.DataFrame(cols), cur


# ---------------------------------------------------------------------------------------------------------------
# Market structure and the best strategy (SPEC §9.1)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MarketSummary:
    """Counts and averages over the analysed symbols at one cycle point (averages divide by ``analysed``)."""

    analysed: int
    up: int
    down: int
    ranging: int
    surges: int
    dips: int  # symbols with drop < dip.symbol_drop
    avg_drop: float
    avg_range: float


def best_strategy(s: MarketSummary, cfg: Config) -> tuple[BestStrategy, StructureReason]:
    """The §9.1 decision tree, first match wins; NONE when fewer than ``min_symbols`` symbols are analysed."""
    pr = cfg.prioritisation
    if s.analysed < pr.min_symbols:
        return BestStrategy.NONE, StructureReason.INSUFFICIENT_SYMBOLS
    if s.avg_drop < pr.dip.avg_drop or s.dips >= pr.dip.min_symbols:
        return BestStrategy.DCA, StructureReason.DIP_OPPORTUNITY
    if s.up >= pr.breakout.min_up and s.surges >= pr.breakout.min_surges:
        return BestStrategy.SWING, StructureReason.BREAKOUT_MOMENTUM
    if s.down >= pr.downtrend.min_down:
        if s.avg_drop < pr.downtrend.avg_drop:
            return BestStrategy.DCA, StructureReason.GRADUAL_DECLINE
        return BestStrategy.WAIT, StructureReason.DOWNTREND
    if s.ranging >= pr.range.min_ranging and s.avg_range < pr.range.max_avg_range:
        return BestStrategy.CHANNEL, StructureReason.RANGE_BOUND
    if s.up > s.down:
        return BestStrategy.SWING, StructureReason.SELECTIVE_MOMENTUM
    return BestStrategy.CHANNEL, StructureReason.NEUTRAL


STRUCTURE_COLUMNS: tuple[str, ...] = ("ms_analysed", "ms_up", "ms_down", "ms_ranging", "ms_surges", "ms_dips",
                                      "ms_avg_drop", "ms_avg_range", "best_strategy", "best_reason")


@dataclass(frozen=True)
class _StructureParams:
    tf: Timeframe
    window: int
    fast: int
    slow: int

    @classmethod
    def from_config(cls, cfg: Config) -> "_StructureParams":
        tf = cfg.prioritisation.timeframe
        return cls(tf, window_bars(cfg, "prioritisation.window_min", tf),
                   window_bars(cfg, "prioritisation.sma_fast_min", tf), window_bars(cfg, "prioritisation.sma_slow_min", tf))

    @property
    def lookback(self) -> int:
        """Bars before the last closed bar that the analysis reads (the surge reference ends just before it)."""
        return max(self.slow - 1, self.fast - 1, self.window)


def _has_history(present: np.ndarray, t0: int, step: int, points: np.ndarray, slow: int, search_ns: int) -> np.ndarray:
    """SPEC §9.1 "≥ ``sma_slow_min`` of history" (symbols × points): the symbol has a bar opening in
    [T − ``search_ns``, c.close − sma_slow_min], c = its last bar closed by T — from its first bar there to the close
    of c spans at least ``slow`` bars. Bounding the search by T keeps a day's rows a function of that day's input."""
    n_sym, n_slots = present.shape
    csum = np.concatenate([np.zeros((n_sym, 1), dtype="int64"), np.cumsum(present, axis=1)], axis=1)
    c_close = floor_ns(points, step)  # c covers [c.close − step, c.close)
    hi = (c_close - t0) // step - slow  # the newest slot a first bar may take: c.close − slow bars
    lo = -((t0 - (points - search_ns)) // step)  # ceil: the oldest slot opening at or after T − search_ns
    hi_c = np.clip(hi + 1, 0, n_slots)
    lo_c = np.minimum(np.clip(lo, 0, n_slots), hi_c)
    return (csum[:, hi_c] - csum[:, lo_c]) > 0


def symbol_structure(bars: pd.DataFrame, cfg: Config, points: np.ndarray, end_ns: int, base: Timeframe,
                     lo_ns: int) -> dict[str, np.ndarray]:
    """Per prioritisation symbol and cycle point: analysed, drop, range, trend (+1 up, −1 down, 0 ranging) and
    surge, on the last ``prioritisation.timeframe`` bar closed by T (arrays symbols × points)."""
    pr = cfg.prioritisation
    sp = _StructureParams.from_config(cfg)
    syms = list(pr.symbols)
    shape = (len(syms), points.size)
    out = {"analysed": np.zeros(shape, dtype=bool), "drop": np.full(shape, np.nan), "range": np.full(shape, np.nan),
           "trend": np.zeros(shape, dtype="int8"), "surge": np.zeros(shape, dtype=bool)}
    ts = timestamps_ns(bars["timestamp"])
    sub = bars.loc[bars["symbol"].astype(str).isin(syms).to_numpy() & (ts >= lo_ns) & (ts < end_ns)]
    if sub.empty or points.size == 0:
        return out
    step = sp.tf.minutes * NS_PER_MIN
    if sp.tf.minutes % base.minutes:
        raise ValueError(f"`prioritisation.timeframe`: {sp.tf.value} is not a multiple of {base.value}")
    if sp.tf is not base:
        sub = aggregate(sub, sp.tf, end_ns)
        if sub.empty:
            return out
    t0 = floor_ns(int(timestamps_ns(sub["timestamp"]).min()), NS_PER_DAY)
    g = bar_grid(sub, sp.tf.minutes, t0, floor_ns(end_ns, step), syms)
    present = g.present
    cov = cfg.engine.min_window_coverage
    cnt = present.astype("float64")
    c0 = np.where(present, g.close, 0.0)
    v0 = np.where(present, g.volume, 0.0)

    def count(n: int) -> np.ndarray:
        return rolling(cnt, n, op_add)

    max_h = rolling(g.high, sp.window, op_max)
    min_l = rolling(g.low, sp.window, op_min)
    with np.errstate(invalid="ignore", divide="ignore"):
        drop = g.close / max_h - 1.0
        rng = (max_h - min_l) / min_l
        fast = rolling(c0, sp.fast, op_add) / count(sp.fast)
        slow = rolling(c0, sp.slow, op_add) / count(sp.slow)
        ref_cnt = count(sp.window)
        ref_mean = rolling(v0, sp.window, op_add) / ref_cnt
    ref_cnt_prev = np.full_like(ref_cnt, 0.0)
    ref_cnt_prev[:, 1:] = ref_cnt[:, :-1]
    ref_mean_prev = np.full_like(ref_mean, np.nan)
    ref_mean_prev[:, 1:] = ref_mean[:, :-1]
    analysed = (present & cover(count(sp.window), sp.window, cov) & cover(count(sp.fast), sp.fast, cov)
                & cover(count(sp.slow), sp.slow, cov) & cover(ref_cnt_prev, sp.window, cov))
    band = pr.trend_band
    trend = np.where(fast > (1.0 + band) * slow, 1, np.where(fast < (1.0 - band) * slow, -1, 0)).astype("int8")
    surge = g.volume > pr.volume_surge * ref_mean_prev
    # The last bar closed by T opens at floor(T, tf) − tf.
    j = (floor_ns(points, step) - step - t0) // step
    ok = (j >= 0) & (j < g.n_slots)
    jj = np.clip(j, 0, g.n_slots - 1)
    history = _has_history(present, t0, step, points, sp.slow, int(regime_warmup(cfg, base).value))
    a = analysed[:, jj] & ok[None, :] & history
    out["analysed"] = a
    out["drop"] = np.where(a, drop[:, jj], np.nan)
    out["range"] = np.where(a, rng[:, jj], np.nan)
    out["trend"] = np.where(a, trend[:, jj], 0).astype("int8")
    out["surge"] = a & surge[:, jj]
    return out


def compute_market_structure(bars: pd.DataFrame, cfg: Config, *, start: Any, end: Any,
                             bar_timeframe: Timeframe | str | None = None) -> pd.DataFrame:
    """§9.1 at every cycle point T in [start, end): ``timestamp`` and :data:`STRUCTURE_COLUMNS` (counts over the
    analysed ``prioritisation.symbols``, average drop and range as fractions, ``best_strategy``, ``best_reason``).
    A symbol is analysed when its last bar closed by T exists, it has ``sma_slow_min`` of history (a bar of it opens
    at least that long before the close of that last bar, searched back to T − :func:`regime_warmup`) and every
    window is valid under ``engine.min_window_coverage``."""
    base = Timeframe(bar_timeframe) if bar_timeframe is not None else cfg.engine.base_timeframe
    check_columns(bars)
    start_ns, end_ns = to_ns(start, "start"), to_ns(end, "end")
    points = cycle_points(start, end, cfg.engine.cycle_min).asi8
    st = symbol_structure(bars, cfg, points, end_ns, base, start_ns - int(regime_warmup(cfg, base).value))
    a = st["analysed"]
    n = a.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        avg_drop = np.where(n > 0, np.nansum(np.where(a, st["drop"], 0.0), axis=0) / n, np.nan)
        avg_range = np.where(n > 0, np.nansum(np.where(a, st["range"], 0.0), axis=0) / n, np.nan)
    rows = {
        "timestamp": utc_index(points),
        "ms_analysed": n.astype("int64"),
        "ms_up": (a & (st["trend"] > 0)).sum(axis=0).astype("int64"),
        "ms_down": (a & (st["trend"] < 0)).sum(axis=0).astype("int64"),
        "ms_ranging": (a & (st["trend"] == 0)).sum(axis=0).astype("int64"),
        "ms_surges": st["surge"].sum(axis=0).astype("int64"),
        "ms_dips": (a & (st["drop"] < cfg.prioritisation.dip.symbol_drop)).sum(axis=0).astype("int64"),
        "ms_avg_drop": avg_drop,
        "ms_avg_range": avg_range,
    }
    best, reason = [], []
    for i in range(points.size):
        summary = MarketSummary(int(rows["ms_analysed"][i]), int(rows["ms_up"][i]), int(rows["ms_down"][i]),
                                int(rows["ms_ranging"][i]), int(rows["ms_surges"][i]), int(rows["ms_dips"][i]),
                                float(avg_drop[i]), float(avg_range[i]))
        b, r = best_strategy(summary, cfg)
        best.append(b.value)
        reason.append(r.value)
    rows["best_strategy"] = np.asarray(best, dtype=object)
    rows["best_reason"] = np.asarray(reason, dtype=object)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------------------
# The market_regime table
# ---------------------------------------------------------------------------------------------------------------


def regime_warmup(cfg: Config, bar_timeframe: Timeframe | str | None = None) -> pd.Timedelta:
    """Warm-up span for a UTC day D of ``market_regime``: bars with open time in [D − span, D + 1 day) give the
    rows of D exactly (48 h with the defaults: the longest of the return horizons plus the reference gap and a
    bar, the decline and volatility windows, and the market-structure lookback)."""
    base = Timeframe(bar_timeframe) if bar_timeframe is not None else cfg.engine.base_timeframe
    b = base.minutes * NS_PER_MIN
    gap = cfg.protection.regime.max_reference_gap_min * NS_PER_MIN
    spans = [cfg.engine.max_bar_lag_min * NS_PER_MIN]
    for name in regime_measure_names(cfg):
        kind, horizon = _measure_of(name)
        h = horizon * NS_PER_MIN
        spans.append(h + gap + b if kind == "ret" else h)
    sp = _StructureParams.from_config(cfg)
    tf = sp.tf.minutes * NS_PER_MIN
    # the windows' lookback, and the history search: T − c.close < tf, plus sma_slow_min before c.close
    spans.append(tf + max(sp.lookback, sp.slow) * tf)
    return pd.Timedelta(max(spans), unit="ns")


def build_market_regime(bars: pd.DataFrame, cfg: Config, *, start: Any, end: Any,
                        previous: MarketState | None = None, bar_timeframe: Timeframe | str | None = None
                        ) -> tuple[pd.DataFrame, MarketState]:
    """The ``market_regime`` rows of every cycle point T in [start, end) and the state after the last one.

    ``bars``: base bars of the market symbol and the prioritisation symbols (others are ignored) from
    ``start − regime_warmup(cfg)``; ``previous``: the state after the cycle point before ``start`` (default: the
    initial state). Columns: those of :func:`compute_regime`, ``entered_panic``, :data:`VOL_STATE_COLUMNS` and
    :data:`STRUCTURE_COLUMNS`.
    """
    prev = previous or MarketState()
    reg = compute_regime(bars, cfg, start=start, end=end, bar_timeframe=bar_timeframe)
    regimes = reg["regime"].to_numpy()
    before = np.empty(len(regimes), dtype=object)
    if len(regimes):
        before[0] = prev.regime.value if prev.regime is not None else None
        before[1:] = regimes[:-1]
    reg["entered_panic"] = (regimes == Regime.PANIC.value) & (before != Regime.PANIC.value)
    vol_key = f"btc_{vol24h_measure(cfg)}"
    states, vol_state = fold_volatility_disable(pd.DatetimeIndex(reg["timestamp"]), reg[vol_key].to_numpy(), cfg,
                                                prev.vol)
    structure = compute_market_structure(bars, cfg, start=start, end=end, bar_timeframe=bar_timeframe)
    out = pd.concat([reg, states, structure.drop(columns="timestamp")], axis=1)
    last_regime = Regime(regimes[-1]) if len(regimes) else prev.regime
    return out, MarketState(last_regime, vol_state)


def build_market_regime_day(bars: pd.DataFrame, day: Any, cfg: Config, previous: MarketState | None = None, *,
                            bar_timeframe: Timeframe | str | None = None) -> tuple[pd.DataFrame, MarketState]:
    """``market_regime`` rows of the cycle points of UTC ``day`` from bars with open time in
    [day − regime_warmup(cfg), day + 1 d) and the state stored after the previous day
    (``MarketState.from_row(last row of day − 1)``); equal to the same rows of a continuous run."""
    d = day_ns(day)
    return build_market_regime(bars, cfg, start=pd.Timestamp(d, tz="UTC"), end=pd.Timestamp(d + NS_PER_DAY, tz="UTC"),
                               previous=previous, bar_timeframe=bar_timeframe)
