"""Daily BTC context (SPEC §2.3, §8.1 trend) from completed UTC days, and the static context (tier, hour,
weekday)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..common import MINUTES_PER_DAY, NS_PER_DAY, NS_PER_MIN, ceil_ns, day_ns, floor_ns, to_ns
from ..config import Config, Tier, Timeframe
from .grid import (
    KEY_DTYPES,
    BarGrid,
    aggregate,
    bar_grid,
    check_columns,
    cover,
    empty_frame,
    op_add,
    op_max,
    op_min,
    rolling,
    shift,
    timestamps_ns,
    to_long,
)
from .registry import DAILY_FEATURES, DAILY_WINDOWS_PREFIX, BtcTrend, config_value, window_bars

_DAYS_PER_YEAR = 365  # the √365 annualisation of the daily-return std is part of the definition (SPEC §2.3)


@dataclass(frozen=True)
class DailyParams:
    sma: tuple[int, int]
    trend: int
    vol: tuple[int, int]
    range: int
    rel: tuple[int, int]
    corr: int
    corr_min_pairs: int
    market_symbol: str
    coverage: float

    @classmethod
    def from_config(cls, cfg: Config) -> "DailyParams":
        d = cfg.features.daily

        def pair(key: str) -> tuple[int, int]:
            values = config_value(cfg, DAILY_WINDOWS_PREFIX + key)
            if len(values) != 2:
                raise ValueError(f"`{DAILY_WINDOWS_PREFIX}{key}`: expected 2 spans, got {len(values)}")
            return tuple(window_bars(cfg, f"{DAILY_WINDOWS_PREFIX}{key}[{i}]", Timeframe.D1)  # type: ignore
                         for i in range(2))

        def days(key: str) -> int:
            return window_bars(cfg, DAILY_WINDOWS_PREFIX + key, Timeframe.D1)

        return cls(sma=pair("sma_d"), trend=days("trend_d"), vol=pair("vol_d"), range=days("range_d"),
                   rel=pair("rel_d"), corr=days("corr_d"), corr_min_pairs=d.corr_min_pairs,
                   market_symbol=cfg.universe.market_symbol, coverage=cfg.engine.min_window_coverage)

    @property
    def btc_days(self) -> int:
        """Days before D the BTC features of D read (returns also read the day before their window)."""
        return max(*self.sma, self.trend + 1, self.vol[0] + 1, self.vol[1] + 1, self.range, self.rel[0] + 1,
                   self.rel[1] + 1, self.corr + 1)

    @property
    def symbol_days(self) -> int:
        return max(self.rel[0] + 1, self.rel[1] + 1, self.corr + 1)


def daily_warmup(cfg: Config) -> pd.Timedelta:
    """Days before D whose bars the daily context of D reads: bars of [D − span, D) (200 days by default)."""
    return pd.Timedelta(days=DailyParams.from_config(cfg).btc_days)


DAILY_COLUMNS: tuple[str, ...] = ("symbol", "timestamp", "warmup") + DAILY_FEATURES[:-2] + (
    "btc_trend", "trend_bull", "trend_bear")


def compute_daily_context(bars: pd.DataFrame, cfg: Config, *, start: Any = None, end: Any = None,
                          bar_timeframe: Timeframe | str | None = None,
                          symbols: Iterable[str] | None = None) -> pd.DataFrame:
    """The §2.3 daily context of ``symbols`` (default: those with bars in the span read) for each UTC day D in
    [start, end), from completed UTC days before D (the market symbol is ``universe.market_symbol``).

    ``bars`` are ``bar_timeframe`` bars (default ``engine.base_timeframe``; pass ``"1d"`` for stored daily bars);
    finer bars are aggregated per UTC day (only days closed by ``end``). Returns one row per (symbol, D) sorted by
    symbol then D: ``symbol``, ``timestamp`` (D 00:00 UTC), ``warmup`` (the symbol or BTC has no bar as far back
    as the windows reach), the features of :data:`DAILY_FEATURES` except the one-hots, ``btc_trend``
    (BULL/BEAR/NEUTRAL/UNKNOWN; UNKNOWN unless BTC has a bar sma_d[1] days back and both SMAs are valid),
    ``trend_bull``, ``trend_bear`` (int8 one-hot).
    """
    p = DailyParams.from_config(cfg)
    tf = Timeframe(bar_timeframe) if bar_timeframe is not None else cfg.engine.base_timeframe
    check_columns(bars)
    if bars.empty:
        return empty_frame(DAILY_COLUMNS, KEY_DTYPES)
    ts = timestamps_ns(bars["timestamp"])
    end_ns = to_ns(end, "end") if end is not None else int(ts.max()) + tf.minutes * NS_PER_MIN
    start_ns = ceil_ns(to_ns(start, "start"), NS_PER_DAY) if start is not None else floor_ns(int(ts.min()),
                                                                                             NS_PER_DAY) + NS_PER_DAY
    sub = bars.loc[(ts >= start_ns - p.btc_days * NS_PER_DAY) & (ts < end_ns)]
    if sub.empty and symbols is None:
        return empty_frame(DAILY_COLUMNS, KEY_DTYPES)
    if symbols is None:
        symbols = sorted(sub["symbol"].astype(str).unique().tolist())
    symbols = sorted(set(symbols))
    if tf is not Timeframe.D1:
        sub = aggregate(sub, Timeframe.D1, end_ns)
    t0 = start_ns
    if not sub.empty:
        t0 = min(t0, floor_ns(int(timestamps_ns(sub["timestamp"]).min()), NS_PER_DAY))
    grid = bar_grid(sub, MINUTES_PER_DAY, t0, ceil_ns(end_ns, NS_PER_DAY), symbols)
    feats, trend = _daily_features(grid, p)
    warm = feats.pop("_warmup")
    days = grid.slot_times()
    mask = np.broadcast_to(((days >= start_ns) & (days < end_ns))[None, :], grid.close.shape)
    columns = {name: feats[name] for name in DAILY_FEATURES if name in feats}
    columns["btc_trend"] = np.broadcast_to(trend[None, :], grid.close.shape)
    columns["trend_bull"] = np.broadcast_to((trend == BtcTrend.BULL.value).astype("int8")[None, :], grid.close.shape)
    columns["trend_bear"] = np.broadcast_to((trend == BtcTrend.BEAR.value).astype("int8")[None, :], grid.close.shape)
    return to_long(symbols, days, mask, columns, leading={"warmup": lambda si, gi: warm[si, gi]})


def compute_daily_context_day(bars: pd.DataFrame, day: Any, cfg: Config, *,
                              bar_timeframe: Timeframe | str | None = None,
                              symbols: Iterable[str] | None = None) -> pd.DataFrame:
    """The daily-context rows of UTC ``day`` from bars with open time in [day − daily_warmup(cfg), day)."""
    d = day_ns(day)
    return compute_daily_context(bars, cfg, start=pd.Timestamp(d, tz="UTC"),
                                 end=pd.Timestamp(d + NS_PER_DAY, tz="UTC"), bar_timeframe=bar_timeframe,
                                 symbols=symbols)


def _daily_features(g: BarGrid, p: DailyParams) -> tuple[dict[str, np.ndarray], np.ndarray]:
    n_sym, n_days = g.close.shape
    present = g.present
    m = g.row(p.market_symbol)
    c = g.close
    nan_row = np.full((1, n_days), np.nan)
    cb = c[m][None, :] if m is not None else nan_row
    hb = g.high[m][None, :] if m is not None else nan_row
    lb = g.low[m][None, :] if m is not None else nan_row
    pb = ~np.isnan(cb)
    cov = p.coverage

    def sma(x: np.ndarray, ok: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        cnt = rolling(ok.astype("float64"), n, op_add)
        s = rolling(np.where(ok, x, 0.0), n, op_add)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = s / cnt
        out[~cover(cnt, n, cov)] = np.nan
        return out, cnt

    def ret(x: np.ndarray, ok: np.ndarray, n: int) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            out = x / shift(x, n) - 1.0
        out[~cover(rolling(ok.astype("float64"), n, op_add), n, cov)] = np.nan
        return out

    def std_returns(x: np.ndarray, n: int) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            r = x / shift(x, 1) - 1.0
        ok = ~np.isnan(r)
        r0 = np.where(ok, r, 0.0)
        k = rolling(ok.astype("float64"), n, op_add)
        s1 = rolling(r0, n, op_add)
        with np.errstate(invalid="ignore", divide="ignore"):
            var = (rolling(r0 * r0, n, op_add) - s1 * s1 / k) / (k - 1.0)
        np.maximum(var, 0.0, out=var)
        out = np.sqrt(var) * math.sqrt(_DAYS_PER_YEAR)
        out[~(cover(k, n, cov) & (k >= 2))] = np.nan
        return out

    # Every value below is as of the end of day d; the row of day D takes day D − 1 (completed days before D).
    f: dict[str, np.ndarray] = {}
    sma_fast, _ = sma(cb, pb, p.sma[0])
    sma_slow, _ = sma(cb, pb, p.sma[1])
    f["btc_dist_sma50"] = cb / sma_fast - 1.0
    f["btc_dist_sma200"] = cb / sma_slow - 1.0
    f["btc_trend_30d"] = ret(cb, pb, p.trend)
    f["btc_vol_7d"] = std_returns(cb, p.vol[0])
    f["btc_vol_30d"] = std_returns(cb, p.vol[1])
    n = p.range
    min_low = rolling(lb, n, op_min)
    rng = (rolling(hb, n, op_max) - min_low) / min_low
    rng[~cover(rolling(pb.astype("float64"), n, op_add), n, cov)] = np.nan
    f["btc_range_7d"] = rng
    for name, n in zip(("sym_vs_btc_7d", "sym_vs_btc_30d"), p.rel):
        f[name] = ret(c, present, n) - ret(cb, pb, n)
    f["sym_btc_corr_30d"] = _daily_corr(c, cb, p.corr, p.corr_min_pairs)

    # "UNKNOWN under sma_d[1] days": the slow window's oldest day must be present (history reaches that far).
    reach = shift(pb.astype("float64"), p.sma[1] - 1, 0.0)[0] > 0
    known = ~np.isnan(sma_fast[0]) & ~np.isnan(sma_slow[0]) & pb[0] & reach
    bull = known & (sma_fast[0] > sma_slow[0]) & (cb[0] > sma_fast[0])
    bear = known & (sma_fast[0] < sma_slow[0]) & (cb[0] < sma_fast[0])
    trend = np.where(bull, BtcTrend.BULL.value, np.where(bear, BtcTrend.BEAR.value, BtcTrend.NEUTRAL.value))
    trend = np.where(known, trend, BtcTrend.UNKNOWN.value).astype(object)

    out = {name: np.broadcast_to(shift(arr, 1), (n_sym, n_days)).copy() for name, arr in f.items()}
    trend_d = np.empty(n_days, dtype=object)
    trend_d[0] = BtcTrend.UNKNOWN.value
    trend_d[1:] = trend[:-1]
    sym_back = shift(present.astype("float64"), p.symbol_days, 0.0) > 0
    btc_back = shift(pb.astype("float64"), p.btc_days, 0.0) > 0
    out["_warmup"] = ~(sym_back & btc_back)
    return out, trend_d


def _daily_corr(c: np.ndarray, cb: np.ndarray, n: int, min_pairs: int) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        r = c / shift(c, 1) - 1.0
        rb = cb / shift(cb, 1) - 1.0
    pair = ~np.isnan(r) & ~np.isnan(rb)
    x = np.where(pair, r, 0.0)
    y = np.where(pair, rb, 0.0)
    k = rolling(pair.astype("float64"), n, op_add)
    sx, sy = rolling(x, n, op_add), rolling(y, n, op_add)
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = k * rolling(x * y, n, op_add) - sx * sy
        den = np.sqrt((k * rolling(x * x, n, op_add) - sx * sx) * (k * rolling(y * y, n, op_add) - sy * sy))
        corr = cov / den
    corr[~(den > 0) | (k < min_pairs)] = np.nan
    return np.clip(corr, -1.0, 1.0)


# ---------------------------------------------------------------------------------------------------------------
# Static context (SPEC §2.3): tier one-hot, hour and weekday of T in UTC
# ---------------------------------------------------------------------------------------------------------------


def static_context(symbols: pd.Series, timestamps: pd.Series, tier_of: Callable[[str], Tier]) -> pd.DataFrame:
    """``tier_*`` one-hot (int8) from ``tier_of`` (``Universe.tier``; an unknown symbol raises), ``hour_utc`` and
    ``dow_utc`` (0 = Monday) of each timestamp (UTC), aligned with the inputs' index."""
    tiers = symbols.astype(str).map(lambda s: tier_of(s).value)
    out = pd.DataFrame(index=symbols.index)
    for t in Tier:
        out[f"tier_{t.value}"] = (tiers == t.value).astype("int8")
    ts = pd.DatetimeIndex(timestamps)
    if ts.tz is None:
        raise ValueError("timestamps must be timezone-aware UTC")
    ts = ts.tz_convert("UTC")
    out["hour_utc"] = np.asarray(ts.hour, dtype="int8")
    out["dow_utc"] = np.asarray(ts.dayofweek, dtype="int8")
    return out
