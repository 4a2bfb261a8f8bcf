"""The synthetic source: deterministic per (symbol, day), independent days, realistic statistics."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from cryptotracker_assets.core.config import Tier
from cryptotracker_assets.core.ohlc import aggregate_bars, validate_ohlc
from cryptotracker_assets.core.synthetic import generate_day, generate_range
from cryptotracker_assets.core.universe import Universe

DAY = date(2026, 5, 4)


def digest(df: pd.DataFrame) -> str:
    return hashlib.sha256(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes()).hexdigest()


def gen(symbol, tier, day=DAY):
    return generate_day(symbol, tier, day, "BTC", Tier.LARGE_CAP)


def test_same_symbol_day_identical_across_processes():
    here = digest(gen("PEPE", Tier.MEMECOIN))
    code = (
        "import hashlib, pandas as pd; from datetime import date;"
        "from cryptotracker_assets.core.synthetic import generate_day;"
        "from cryptotracker_assets.core.config import Tier;"
        "df = generate_day('PEPE', Tier.MEMECOIN, date(2026, 5, 4), 'BTC', Tier.LARGE_CAP);"
        "print(hashlib.sha256(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes()).hexdigest())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "12345", "PATH": ""}).stdout.strip()
    assert out == here


def test_days_are_independent_and_join_continuously():
    # Generating D alone or after D-1 gives the same frame; D's first open is D-1's last close.
    alone = gen("ETH", Tier.LARGE_CAP)
    gen("ETH", Tier.LARGE_CAP, DAY - timedelta(days=1))
    assert digest(gen("ETH", Tier.LARGE_CAP)) == digest(alone)
    prev = gen("ETH", Tier.LARGE_CAP, DAY - timedelta(days=1))
    assert alone["open"].iloc[0] == pytest.approx(prev["close"].iloc[-1], rel=1e-12)
    other = gen("ETH", Tier.LARGE_CAP, DAY + timedelta(days=1))
    r1 = np.diff(np.log(alone["close"].to_numpy()))
    r2 = np.diff(np.log(other["close"].to_numpy()))
    assert abs(np.corrcoef(r1[:1000], r2[:1000])[0, 1]) < 0.15


def test_bars_are_valid_and_utc():
    df = gen("WIF", Tier.MEMECOIN)
    v = validate_ohlc(df, "1m", partition=str(DAY))
    assert v.rejects.empty
    assert str(df["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert df["timestamp"].iloc[0] >= pd.Timestamp(DAY, tz="UTC")


def test_statistics_heavy_tails_correlation_and_tier_volatility(cfg):
    u = Universe.from_config(cfg)
    symbols = ["BTC", "ETH", "SOL", "LINK", "AVAX", "ARB", "DOGE", "TRX", "PEPE", "WIF", "BONK", "FLOKI"]
    rets, corrs = {s: [] for s in symbols}, []
    for k in range(6):
        day = DAY + timedelta(days=k)
        closes = pd.DataFrame({s: generate_day(s, u.tier(s), day, "BTC", Tier.LARGE_CAP).set_index("timestamp")["close"]
                               for s in symbols})
        r = np.log(closes).diff().dropna()
        for s in symbols:
            rets[s].append(r[s])
        corrs.append(r.corr()["BTC"].drop("BTC"))
    corr = pd.concat(corrs, axis=1).mean(axis=1)
    assert corr.median() > 0.3, corr
    assert (corr > 0.15).all(), corr
    btc = pd.concat(rets["BTC"])
    assert btc.kurt() > 3  # excess kurtosis: heavy tails (normal = 0)
    vol = {s: pd.concat(rets[s]).std() for s in symbols}
    assert np.mean([vol[s] for s in ("PEPE", "WIF", "BONK", "FLOKI")]) > 1.5 * np.mean([vol[s] for s in ("BTC", "ETH", "SOL")])


def test_crashes_and_dips_occur():
    crash_hours = dip_20m = 0
    for k in range(60):
        c = gen("BTC", Tier.LARGE_CAP, date(2026, 1, 1) + timedelta(days=k))["close"].to_numpy()
        crash_hours += (c[60:] / c[:-60] - 1).min() <= -0.08
        dip_20m += (c[20:] / c[:-20] - 1).min() <= -0.0175
    assert crash_hours >= 1  # a ~−10 % BTC hour happens (PANIC)
    assert dip_20m >= 10  # DCA-sized dips on large caps are common


def test_higher_timeframes_are_aggregates_of_1m():
    start = pd.Timestamp(DAY, tz="UTC")
    end = start + pd.Timedelta(days=1)
    m1 = generate_range("SOL", Tier.LARGE_CAP, "1m", start, end, "BTC", Tier.LARGE_CAP)
    h1 = generate_range("SOL", Tier.LARGE_CAP, "1h", start, end, "BTC", Tier.LARGE_CAP)
    pd.testing.assert_frame_equal(h1, aggregate_bars(m1, "1h"))
    d1 = generate_range("SOL", Tier.LARGE_CAP, "1d", start, end, "BTC", Tier.LARGE_CAP)
    assert d1["high"].iloc[0] == m1["high"].max() and d1["volume"].iloc[0] == pytest.approx(m1["volume"].sum())
