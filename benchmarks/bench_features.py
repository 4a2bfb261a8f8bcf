"""Feature benchmarks (SPEC §2): wall time and peak memory of the ML features (99 symbols × 30 days of 15m bars) and
the scan features (99 symbols × 7 days of 1m bars), and our RSI14 + MACD + Bollinger(20) against TA-Lib on the same
4.32M bars in the same run (goal: ≤ 2×)."""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from cryptotracker_assets.core import features as F
from cryptotracker_assets.core.config import load_config
from cryptotracker_assets.core.universe import Universe

START = pd.Timestamp("2024-01-01", tz="UTC")


def _bars(symbols: list[str], n: int, step_min: int, seed: int = 0) -> pd.DataFrame:
    """Seeded random-walk bars (vectorised), long format."""
    rng = np.random.default_rng(seed)
    s = len(symbols)
    close = 10.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-3 * np.sqrt(step_min), (s, n)), axis=1))
    open_ = np.concatenate([close[:, :1], close[:, :-1]], axis=1)
    wick = np.abs(rng.normal(0.0, 3e-4, (2, s, n)))
    ts = pd.date_range(START, periods=n, freq=f"{step_min}min", tz="UTC")
    return pd.DataFrame({
        "symbol": np.repeat(np.asarray(symbols, dtype=object), n),
        "timestamp": np.tile(ts, s),
        "open": open_.ravel(), "high": (np.maximum(open_, close) * (1 + wick[0])).ravel(),
        "low": (np.minimum(open_, close) * (1 - wick[1])).ravel(), "close": close.ravel(),
        "volume": rng.lognormal(3.0, 1.0, s * n),
    })


def _measure(fn: Callable[[], Any], repeat: int = 3) -> tuple[Any, float, float]:
    """(result, best wall seconds of ``repeat`` runs, peak traced MB of one more run)."""
    best = float("inf")
    result = None
    for _ in range(repeat):
        gc.collect()
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    gc.collect()
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, best, peak / 2**20


def main() -> None:
    cfg = load_config()
    symbols = Universe.from_config(cfg).symbols
    n_sym = len(symbols)

    bars15 = _bars(symbols, 30 * 96, 15, seed=1)
    ml, sec, mb = _measure(lambda: F.compute_ml_features(bars15, cfg, bar_timeframe="15m"))
    print(f"ML features (29 + rel), {n_sym} symbols x 30 d of 15m bars ({len(bars15):,} bars, {len(ml):,} rows): "
          f"{sec:.3f} s, peak {mb:.0f} MB")

    day = START + pd.Timedelta(days=29)
    warm = bars15[bars15.timestamp >= day - F.ml_warmup(cfg)]
    part, sec, mb = _measure(lambda: F.compute_ml_features_day(warm, day, cfg, bar_timeframe="15m"))
    print(f"ML features, one UTC day with its {F.ml_warmup(cfg).days}-day warm-up ({len(part):,} rows): "
          f"{sec:.3f} s, peak {mb:.0f} MB")

    bars1 = _bars(symbols, 7 * 1440, 1, seed=2)
    end = START + pd.Timedelta(days=7)
    scan, sec, mb = _measure(lambda: F.compute_scan_features(bars1, cfg, start=START, end=end), repeat=2)
    print(f"scan features, {n_sym} symbols x 7 d of 1m bars ({len(bars1):,} bars, {len(scan):,} rows): "
          f"{sec:.3f} s, peak {mb:.0f} MB")
    day = START + pd.Timedelta(days=6)
    warm1 = bars1[bars1.timestamp >= day - F.scan_warmup(cfg)]
    part, sec, mb = _measure(lambda: F.compute_scan_features_day(warm1, day, cfg), repeat=2)
    print(f"scan features, one UTC day with its warm-up ({len(warm1):,} bars, {len(part):,} rows): "
          f"{sec:.3f} s, peak {mb:.0f} MB")
    part, sec, mb = _measure(lambda: F.compute_ml_features_day(warm1, day, cfg), repeat=2)
    print(f"ML features, one UTC day from its 1m bars with warm-up ({len(warm1):,} bars, {len(part):,} rows): "
          f"{sec:.3f} s, peak {mb:.0f} MB")
    ml1, sec, mb = _measure(lambda: F.compute_ml_features(bars1, cfg), repeat=2)
    print(f"ML features from 1m bars incl. 15m aggregation, {n_sym} symbols x 7 d ({len(ml1):,} rows): "
          f"{sec:.3f} s, peak {mb:.0f} MB")
    del bars1, scan, ml1

    try:
        import talib
    except ImportError:  # pragma: no cover - ta-lib is a dev dependency
        print("TA-Lib not installed: no ratio")
        return
    rng = np.random.default_rng(3)
    closes = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-3, (100, 43_200)), axis=1))

    # Both sides keep their outputs (7 arrays of 4.32M values), as a feature computation must.
    def ours() -> list:
        return [F.wilder_rsi(closes, 14), F.macd(closes, 12, 26, 9), F.bollinger(closes, 20, 2.0)]

    def theirs() -> list:
        return [(talib.RSI(row, 14), talib.MACD(row, 12, 26, 9), talib.BBANDS(row, 20, 2.0, 2.0)) for row in closes]

    _, t_ours, mb_ours = _measure(ours, repeat=7)
    _, t_talib, mb_talib = _measure(theirs, repeat=7)
    threads = F._MAX_THREADS  # the row-parallel pool; measure one thread too, TA-Lib has one
    F._MAX_THREADS = 1
    try:
        _, t_one, _ = _measure(ours, repeat=5)
    finally:
        F._MAX_THREADS = threads
    print(f"RSI14 + MACD + Bollinger(20) on {closes.size / 1e6:.2f}M bars: ours {t_ours:.3f} s (peak {mb_ours:.0f} MB), "
          f"TA-Lib {t_talib:.3f} s (peak {mb_talib:.0f} MB): ratio {t_ours / t_talib:.2f}x (goal <= 2x); "
          f"ours on one thread {t_one:.3f} s = {t_one / t_talib:.2f}x")


if __name__ == "__main__":
    main()
