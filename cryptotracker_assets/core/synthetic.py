"""Deterministic synthetic 1m candles, independent per (symbol, UTC day).

The embedded default market source: no keys, no network, reproducible across processes (seeds come from
SHA-256 of ``symbol|day|stream``, never from Python's salted ``hash``). Realistic enough to exercise every
strategy and protection rule:

- day-boundary prices come from a multi-scale value-noise "anchor" in log price (trending stretches where
  adjacent knots differ, ranging where they agree); each day is a bridge from anchor(D) to anchor(D+1), so
  consecutive days join without generating the days between;
- alts load on the market symbol's 1m increments (beta by tier) plus idiosyncratic noise, so BTC–alt
  correlation is real; memecoins have higher volatility and beta than large caps;
- heavy-tailed shocks (Student-t) with volatility clustering (smoothed log-volatility, and a day-level
  volatility multiplier from value noise so calm and wild days cluster);
- events: dips (DCA), breakouts with volume surges (SWING), ranging days (CHANNEL), occasional market crashes
  (≈ −10 % in an hour, PANIC), and memecoin spikes;
- volume responds to moves and to events; illiquid coins occasionally have minutes without trades (no bar).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, timezone
from functools import lru_cache

import numpy as np
import pandas as pd

from .config import Tier

MINUTES = 1440
_EPOCH = date(1970, 1, 1)


@dataclass(frozen=True)
class TierProfile:
    sigma: float  # per-minute volatility of log price (idiosyncratic part for alts)
    beta: tuple[float, float]  # range of loading on the market's increments
    anchor_amp: tuple[float, ...]  # value-noise amplitudes (log units) per scale
    dip_depth: tuple[float, float]
    dips_per_day: float
    breakouts_per_day: float
    breakout_size: tuple[float, float]
    spike_prob: float
    missing_prob: float
    usd_volume_per_min: float
    price_range: tuple[float, float]


# Generator shape parameters: they define the synthetic market, not trading rules.
PROFILES: dict[Tier, TierProfile] = {
    Tier.LARGE_CAP: TierProfile(0.00045, (0.85, 1.05), (0.015, 0.03, 0.06, 0.20), (0.018, 0.026), 0.6, 2.0,
                                (0.012, 0.025), 0.0, 0.0, 2.0e5, (0.3, 4000.0)),
    Tier.MID_CAP: TierProfile(0.0006, (1.0, 1.3), (0.02, 0.05, 0.10, 0.30), (0.025, 0.040), 1.2, 2.5,
                              (0.012, 0.030), 0.0, 0.0, 2.0e4, (0.2, 60.0)),
    Tier.SMALL_CAP: TierProfile(0.0007, (0.9, 1.2), (0.02, 0.05, 0.10, 0.30), (0.030, 0.050), 1.2, 2.5,
                                (0.015, 0.035), 0.0, 0.0005, 3.0e4, (0.05, 30.0)),
    Tier.MEMECOIN: TierProfile(0.0011, (1.4, 1.9), (0.04, 0.08, 0.16, 0.40), (0.040, 0.080), 1.5, 3.0,
                               (0.02, 0.05), 0.25, 0.002, 8.0e3, (1.0e-6, 2.0)),
}
KNOWN_PRICES = {"BTC": 60000.0, "ETH": 3000.0, "BNB": 550.0, "SOL": 150.0, "XRP": 0.55, "ADA": 0.45,
                "DOGE": 0.12, "SHIB": 2.0e-5, "LINK": 15.0, "AVAX": 30.0, "DOT": 6.5, "PEPE": 1.0e-5}
ANCHOR_SCALES_D = (3, 10, 30, 120)
CRASH_PROB = 0.04  # per day, market symbol
CRASH_DROP = (0.10, 0.13)  # over one hour


def _seed(*parts: object) -> int:
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def _rng(*parts: object) -> np.random.Generator:
    return np.random.default_rng(_seed(*parts))


def _day_number(day: date) -> int:
    return (day - _EPOCH).days


def _unit_normal(*parts: object) -> float:
    return float(_rng(*parts).standard_normal())


def _value_noise(symbol: str, stream: str, d: float, scale: int) -> float:
    k = int(np.floor(d / scale))
    frac = d / scale - k
    s = frac * frac * (3 - 2 * frac)
    a = _unit_normal(symbol, stream, scale, k)
    b = _unit_normal(symbol, stream, scale, k + 1)
    return a + (b - a) * s


def base_price(symbol: str, tier: Tier) -> float:
    if symbol in KNOWN_PRICES:
        return KNOWN_PRICES[symbol]
    lo, hi = PROFILES[tier].price_range
    u = _rng(symbol, "price").random()
    return float(np.exp(np.log(lo) + u * (np.log(hi) - np.log(lo))))


def _own_anchor(symbol: str, tier: Tier, d: int) -> float:
    amp = PROFILES[tier].anchor_amp
    return float(sum(a * _value_noise(symbol, "anchor", d, s) for a, s in zip(amp, ANCHOR_SCALES_D)))


def _beta(symbol: str, tier: Tier) -> float:
    lo, hi = PROFILES[tier].beta
    return float(lo + (hi - lo) * _rng(symbol, "beta").random())


def anchor_log_price(symbol: str, tier: Tier, d: int, market_symbol: str, market_tier: Tier) -> float:
    """Log price at 00:00 UTC of day number ``d`` (days since 1970-01-01)."""
    own = _own_anchor(symbol, tier, d)
    if symbol == market_symbol:
        return float(np.log(base_price(symbol, tier)) + own)
    market = _own_anchor(market_symbol, market_tier, d)
    return float(np.log(base_price(symbol, tier)) + _beta(symbol, tier) * market + 0.6 * own)


def _vol_multiplier(symbol: str, d: int) -> float:
    return float(np.exp(0.35 * _value_noise(symbol, "dayvol", d, 4)))


def _shocks(rng: np.random.Generator, n: int) -> np.ndarray:
    df = 4.0
    return rng.standard_t(df, n) / np.sqrt(df / (df - 2.0))


def _clustered_sigma(rng: np.random.Generator, n: int, sigma: float) -> np.ndarray:
    kernel = 0.985 ** np.arange(240)
    kernel /= np.sqrt((kernel**2).sum())
    z = np.convolve(rng.standard_normal(n + len(kernel)), kernel, mode="valid")[:n]
    return sigma * np.exp(0.45 * z - 0.5 * 0.45**2)


@dataclass(frozen=True)
class DayPath:
    """Minute log-price path (n + 1 points), per-minute sigma, events' volume multipliers."""

    x: np.ndarray
    sigma: np.ndarray
    volume_mult: np.ndarray
    increments: np.ndarray  # raw increments (used by alts to load on the market)


def _add_event(path: np.ndarray, vol: np.ndarray, start: int, move: float, length: int, recover: float,
               recover_len: int, vol_mult: float) -> None:
    """Add a move of ``move`` (log) over ``length`` minutes then a recovery of ``recover`` × move."""
    n = len(path) - 1
    end = min(start + length, n)
    ramp = np.zeros(n + 1)
    idx = np.arange(start, end + 1)
    ramp[start:end + 1] = move * (idx - start) / max(length, 1)
    ramp[end + 1:] = move * (end - start) / max(length, 1)
    if recover and end < n:
        r_end = min(end + recover_len, n)
        ridx = np.arange(end, r_end + 1)
        back = -move * recover * (ridx - end) / max(recover_len, 1)
        ramp[end:r_end + 1] += back
        ramp[r_end + 1:] += -move * recover * (r_end - end) / max(recover_len, 1)
    path += ramp
    vol[start:min(end + 3, n)] *= vol_mult


@lru_cache(maxsize=256)
def _day_path(symbol: str, tier: Tier, day: date, market_symbol: str, market_tier: Tier) -> DayPath:
    d = _day_number(day)
    prof = PROFILES[tier]
    rng = _rng(symbol, day.isoformat(), "path")
    vm = _vol_multiplier(symbol, d)
    sigma = _clustered_sigma(rng, MINUTES, prof.sigma * vm)
    eps = _shocks(rng, MINUTES) * sigma
    ranging = rng.random() < 0.4
    own = np.empty(MINUTES)
    if ranging:
        # Mean-reverting intraday deviation: a channel for CHANNEL setups.
        phi = 0.992
        level = 0.0
        for i in range(MINUTES):
            level = phi * level + eps[i]
            own[i] = level
        own = np.diff(np.concatenate([[0.0], own]))
    else:
        own = eps
    if symbol == market_symbol:
        inc = own
    else:
        market = _day_path(market_symbol, market_tier, day, market_symbol, market_tier)
        inc = _beta(symbol, tier) * market.increments + own
    walk = np.concatenate([[0.0], np.cumsum(inc)])
    events = np.zeros(MINUTES + 1)
    volume_mult = np.ones(MINUTES)
    erng = _rng(symbol, day.isoformat(), "events")
    for _ in range(erng.poisson(prof.dips_per_day)):
        depth = erng.uniform(*prof.dip_depth)
        _add_event(events, volume_mult, int(erng.integers(0, MINUTES - 30)), np.log1p(-depth),
                   int(erng.integers(6, 18)), erng.uniform(0.4, 0.9), int(erng.integers(30, 120)), 2.5)
    for _ in range(erng.poisson(prof.breakouts_per_day)):
        size = erng.uniform(*prof.breakout_size)
        _add_event(events, volume_mult, int(erng.integers(0, MINUTES - 10)), np.log1p(size),
                   int(erng.integers(1, 3)), erng.uniform(0.0, 0.6), int(erng.integers(30, 180)),
                   erng.uniform(3.0, 6.0))
    if prof.spike_prob and erng.random() < prof.spike_prob:
        _add_event(events, volume_mult, int(erng.integers(0, MINUTES - 60)), np.log1p(erng.uniform(0.15, 0.3)),
                   int(erng.integers(3, 8)), erng.uniform(0.5, 0.9), int(erng.integers(60, 240)), 8.0)
    if symbol == market_symbol and erng.random() < CRASH_PROB:
        _add_event(events, volume_mult, int(erng.integers(0, MINUTES - 120)), np.log1p(-erng.uniform(*CRASH_DROP)),
                   60, erng.uniform(0.2, 0.5), int(erng.integers(180, 600)), 8.0)
    total = walk + events
    x0 = anchor_log_price(symbol, tier, d, market_symbol, market_tier)
    x1 = anchor_log_price(symbol, tier, d + 1, market_symbol, market_tier)
    t = np.arange(MINUTES + 1) / MINUTES
    x = x0 + total - t * (total[-1] - (x1 - x0))
    return DayPath(x=x, sigma=sigma, volume_mult=volume_mult, increments=np.diff(total))


def generate_day(symbol: str, tier: Tier, day: date, market_symbol: str, market_tier: Tier) -> pd.DataFrame:
    """The 1m candles of ``symbol`` for UTC ``day`` (columns symbol, timestamp, open, high, low, close, volume).

    Deterministic in (symbol, tier, day, market symbol); independent of any other day.
    """
    prof = PROFILES[tier]
    path = _day_path(symbol, tier, day, market_symbol, market_tier)
    rng = _rng(symbol, day.isoformat(), "bars")
    o = np.exp(path.x[:-1])
    c = np.exp(path.x[1:])
    wick = np.abs(rng.standard_normal((2, MINUTES))) * path.sigma * 0.6
    high = np.maximum(o, c) * np.exp(wick[0])
    low = np.minimum(o, c) * np.exp(-wick[1])
    ret = np.abs(np.diff(path.x)) / np.maximum(path.sigma, 1e-12)
    usd = prof.usd_volume_per_min * _vol_multiplier(symbol, _day_number(day)) * np.exp(
        0.5 * rng.standard_normal(MINUTES) - 0.125
    ) * (0.5 + 0.5 * ret) * path.volume_mult
    volume = usd / c
    start = pd.Timestamp(datetime(day.year, day.month, day.day, tzinfo=timezone.utc))
    ts = pd.date_range(start, periods=MINUTES, freq="1min", tz="UTC")
    keep = rng.random(MINUTES) >= prof.missing_prob
    return pd.DataFrame(
        {
            "symbol": symbol,
            "timestamp": ts[keep],
            "open": o[keep],
            "high": high[keep],
            "low": low[keep],
            "close": c[keep],
            "volume": volume[keep],
        }
    )


def generate_range(
    symbol: str,
    tier: Tier,
    timeframe: "Timeframe | str",
    start: pd.Timestamp,
    end: pd.Timestamp,
    market_symbol: str,
    market_tier: Tier,
) -> pd.DataFrame:
    """Synthetic bars of ``timeframe`` with open time in [start, end): 1m bars per UTC day, aggregated to the
    timeframe, so every higher timeframe is exactly the aggregate of its 1m bars."""
    from .config import Timeframe
    from .ohlc import aggregate_bars, empty_bars

    tf = Timeframe(timeframe)
    # Timeframes divide the day, so the 1m bars of whole UTC days aggregate into whole bars.
    days = pd.date_range(start.floor("1D"), end - pd.Timedelta(microseconds=1), freq="1D", tz="UTC")
    frames = [generate_day(symbol, tier, d.date(), market_symbol, market_tier) for d in days]
    if not frames:
        return empty_bars()
    bars = pd.concat(frames, ignore_index=True)
    if tf is not Timeframe.M1:
        bars = aggregate_bars(bars, tf)
    bars = bars[(bars["timestamp"] >= start) & (bars["timestamp"] < end)]
    return bars.reset_index(drop=True)
