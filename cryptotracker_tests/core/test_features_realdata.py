"""Features and market regime on real Binance candles (../shared/data): BTC-quoted 5m pairs with the January 2018
crash, run through a user config built with ``merge()`` over the default file (base timeframe 5m, the pairs as
universe, market symbol and prioritisation symbols, windows in multiples of 5 minutes).

In CI (CI=true) the data must be there: the tests fail instead of skipping.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cryptotracker_assets.core import feature_schemas as fs
from cryptotracker_assets.core import features as F
from cryptotracker_assets.core import regime as R
from cryptotracker_assets.core.config import DEFAULT_CONFIG_PATH, build_config, merge
from cryptotracker_tests.conftest import five_minute_base

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
PAIRS_DIR = DATA / "binance_altbtc_2018-01_5m"
MARKET = "ETH-BTC"
START = pd.Timestamp("2018-01-11", tz="UTC")
END = pd.Timestamp("2018-01-30", tz="UTC")
DAY = pd.Timedelta(days=1)


def _require(path: Path) -> Path:
    if path.exists():
        return path
    msg = f"real candles not found at {path}"
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"{msg} (required in CI)")
    pytest.skip(msg)


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    files = sorted(_require(PAIRS_DIR).glob("*.parquet"))
    assert len(files) >= 10
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


@pytest.fixture(scope="module")
def cfg(bars):
    pairs = sorted(bars["symbol"].unique())
    user = {
        "universe": {"market_symbol": MARKET, "inactive": [],
                     "large_cap": [p for p in pairs if p in ("ETH-BTC", "LTC-BTC", "XMR-BTC")],
                     "mid_cap": [p for p in pairs if p in ("DASH-BTC", "ETC-BTC", "ZEC-BTC", "XLM-BTC", "ADA-BTC")],
                     "small_cap": [p for p in pairs if p == "TRX-BTC"],
                     "memecoin": [p for p in pairs if p == "NXT-BTC"]},
        **five_minute_base(),
        "strategies": {"swing": {"lookback_min": 10}},
        "scan": {"windows_min": {"rsi": 15, "btc_corr": 300}},
        "prioritisation": {"symbols": pairs},
    }
    return build_config(merge(yaml.safe_load(DEFAULT_CONFIG_PATH.read_text()), user))


def _missing_slots(bars: pd.DataFrame, symbol: str, step: str) -> pd.DatetimeIndex:
    ts = bars.loc[bars.symbol == symbol, "timestamp"]
    if step != "5min":
        ts = ts.dt.floor(step).drop_duplicates()
    full = pd.date_range(ts.min(), ts.max(), freq=step, tz="UTC")
    return full.difference(pd.DatetimeIndex(ts))


def test_ml_features_on_real_candles(bars, cfg):
    ml = F.compute_ml_features(bars, cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nulls from the real gaps are the WARN check's business
        fs.MlFeatureSchema.validate(ml)
    after = ml[~ml["warmup"]]
    assert len(after) > 0.8 * len(ml) and set(after["symbol"]) == set(bars["symbol"])
    reach = pd.Timedelta(minutes=max(cfg.features.ml.windows_min.ret)) + pd.Timedelta(minutes=15)
    explained = 0
    for sym, rows in after.groupby("symbol"):
        missing = _missing_slots(bars, sym, "15min")
        nan_rows = rows[rows[list(F.ML_FEATURES)].isna().any(axis=1)]
        for t in nan_rows["timestamp"]:
            # Every null after the warm-up comes from a real gap inside the longest window.
            assert ((missing > t - reach) & (missing <= t)).any(), (sym, t)
            explained += 1
    assert explained < 0.01 * len(after)
    assert (after["rsi_14"].between(0, 100)).all()


def test_scan_features_on_real_candles(bars, cfg):
    scan = F.compute_scan_features(bars, cfg, start=START, end=END)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fs.ScanFeatureSchema.validate(scan)
    live = scan[~scan["stale"] & ~scan["warmup"]]
    assert len(live) > 0.95 * len(scan)
    reach = pd.Timedelta(minutes=cfg.scan.windows_min.vol_24h)
    lookback = pd.Timedelta(minutes=cfg.strategies.channel.lookback_min)
    for sym, rows in live.groupby("symbol"):
        missing = _missing_slots(bars, sym, "5min")
        closes = bars[bars.symbol == sym].set_index("timestamp")["close"].sort_index()
        for _, r in rows[rows[list(F.SCAN_FEATURES)].isna().any(axis=1)].iterrows():
            c = r["bar_timestamp"]
            gap = ((missing > c - reach) & (missing <= c)).any()
            nulls = set(r[list(F.SCAN_FEATURES)].index[r[list(F.SCAN_FEATURES)].isna()])
            if gap:
                continue
            window = closes[(closes.index > c - lookback) & (closes.index <= c)]
            flat = window.max() == window.min()
            # Without a gap the only nulls are the documented ones: a flat channel window (and its zero-variance
            # correlation).
            assert flat and nulls <= {"channel_position", "btc_corr"}, (sym, c, nulls)


def test_regime_leaves_normal_during_the_crash(bars, cfg):
    out, state = R.build_market_regime(bars, cfg, start=START, end=END)
    fs.MarketRegimeSchema.validate(out)
    assert len(out) == 19 * 288 and (out["market_symbol"] == MARKET).all()
    crash = out[(out.timestamp >= "2018-01-16") & (out.timestamp < "2018-01-18")]
    assert (crash["regime"] == "PANIC").any()
    assert (crash["regime"] != "NORMAL").mean() > 0.5
    assert (out.loc[out.timestamp >= "2018-01-19", "regime"] == "NORMAL").mean() > 0.8
    warm = out[out.timestamp >= START + R.regime_warmup(cfg)]
    measures = [f"btc_{n}" for n in R.regime_measure_names(cfg)]
    assert not warm.loc[~warm["stale"], measures].isna().any().any()
    assert (warm["regime"] != "UNKNOWN").all()
    assert (~out["channel_enabled"]).any()  # the crash's volatility disables CHANNEL
    assert set(out["best_strategy"]) <= {"DCA", "SWING", "CHANNEL", "WAIT", "NONE"}
    assert (warm["ms_analysed"] >= cfg.prioritisation.min_symbols).all()
    assert state.regime is not None


def test_real_candles_partition_by_partition_equal_continuous(bars, cfg):
    ml = F.compute_ml_features(bars, cfg)
    scan = F.compute_scan_features(bars, cfg, start=START, end=END)
    reg, _ = R.build_market_regime(bars, cfg, start=START, end=END)
    state = R.MarketState.from_row(reg[reg.timestamp < "2018-01-16"].iloc[-1])
    for day in pd.date_range("2018-01-16", "2018-01-18", freq="D", tz="UTC"):
        w = bars[(bars.timestamp >= day - F.ml_warmup(cfg)) & (bars.timestamp < day + DAY)]
        part = F.compute_ml_features_day(w, day, cfg).reset_index(drop=True)
        pd.testing.assert_frame_equal(part, ml[(ml.timestamp >= day) & (ml.timestamp < day + DAY)]
                                      .reset_index(drop=True), check_exact=True)
        w = bars[(bars.timestamp >= day - F.scan_warmup(cfg)) & (bars.timestamp < day + DAY)]
        part = F.compute_scan_features_day(w, day, cfg).reset_index(drop=True)
        pd.testing.assert_frame_equal(part, scan[(scan.timestamp >= day) & (scan.timestamp < day + DAY)]
                                      .reset_index(drop=True), check_exact=True)
        w = bars[(bars.timestamp >= day - R.regime_warmup(cfg)) & (bars.timestamp < day + DAY)]
        part, _ = R.build_market_regime_day(w, day, cfg, state)
        pd.testing.assert_frame_equal(part.reset_index(drop=True),
                                      reg[(reg.timestamp >= day) & (reg.timestamp < day + DAY)].reset_index(drop=True),
                                      check_exact=True)
        state = R.MarketState.from_row(part.iloc[-1])


def test_daily_context_on_real_candles(bars, cfg):
    daily = F.compute_daily_context(bars, cfg)
    fs.DailyContextSchema.validate(daily)
    late = daily[daily.timestamp >= "2018-01-19"]  # 8 completed days: the 7-day features exist
    assert late[["btc_vol_7d", "btc_range_7d", "sym_vs_btc_7d"]].notna().all().all()
    assert (daily["btc_trend"] == "UNKNOWN").all()  # 20 days are far from the 200-day history
    btc = late[late.symbol == MARKET]
    assert (btc["sym_vs_btc_7d"] == 0).all()
    assert np.isfinite(late.loc[late.symbol != MARKET, "sym_btc_corr_30d"]).sum() > 0


def test_real_1m_pair_with_gaps(bars):
    """The 1m pair (real gaps: 13,681 bars over 14,400 minutes) as market symbol with the 1m base timeframe."""
    one = pd.read_parquet(_require(DATA / "binance_unittest_2017-11_1m" / "UNITTEST-BTC.parquet"))
    sym = one["symbol"].iloc[0]
    user = {"universe": {"market_symbol": sym, "inactive": [], "large_cap": [sym], "mid_cap": [], "small_cap": [],
                         "memecoin": []},
            "prioritisation": {"symbols": [sym]},
            # UNITTEST-BTC (12 characters) fits a SWING/DCA trade_group_id but not a CHANNEL one (36 max, §0.3).
            "strategies": {"channel": {"enabled": False}}}
    cfg = build_config(merge(yaml.safe_load(DEFAULT_CONFIG_PATH.read_text()), user))
    start, end = pd.Timestamp("2017-11-07", tz="UTC"), pd.Timestamp("2017-11-14", tz="UTC")
    reg, _ = R.build_market_regime(one, cfg, start=start, end=end)
    fs.MarketRegimeSchema.validate(reg)
    # UNKNOWN exactly where the pair is stale or a return reference is missing (real gaps), never otherwise.
    unknown = reg["regime"] == "UNKNOWN"
    measures = reg[[f"btc_{n}" for n in R.regime_measure_names(cfg) if not n.startswith("decline")]]
    assert (unknown == (reg["stale"] | measures.isna().any(axis=1))).all()
    assert unknown.mean() < 0.2 and (reg["best_strategy"] == "NONE").all()  # one symbol < min_symbols
    scan = F.compute_scan_features(one, cfg, start=start, end=end)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fs.ScanFeatureSchema.validate(scan)
    assert (scan.loc[~scan.stale, "btc_corr"] == 1.0).all()  # the market symbol's own correlation
    assert scan.loc[~scan.stale & ~scan.warmup, "vol_24h"].notna().all()
