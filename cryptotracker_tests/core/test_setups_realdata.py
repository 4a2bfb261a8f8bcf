"""Setups, scan rows and the readiness board on real Binance candles (../shared/data): ten BTC-quoted 5m pairs
through the January 2018 crash, with a user config built with ``merge()`` over the default file (the pairs as the
universe split over the tiers, ETH-BTC as market symbol, the pairs as prioritisation symbols, base timeframe 5m,
windows in whole multiples of 5 minutes). Partitioned day by day as the assets run, equal to one continuous run.

In CI (CI=true) the data must be there: the tests fail instead of skipping.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from cryptotracker_assets.core import regime as R
from cryptotracker_assets.core import setup_schemas as SS
from cryptotracker_assets.core import setups as S
from cryptotracker_assets.core.config import DEFAULT_CONFIG_PATH, build_config, merge
from cryptotracker_assets.core.ohlc import flag_suspect
from cryptotracker_tests.conftest import SHARED_DATA, five_minute_base, require_path

PAIRS_DIR = SHARED_DATA / "binance_altbtc_2018-01_5m"
MARKET = "ETH-BTC"
FIRST_DAY = pd.Timestamp("2018-01-10", tz="UTC")
N_DAYS = 20
DAY = pd.Timedelta(days=1)


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    files = sorted(require_path(PAIRS_DIR, "real candles (../shared/data)").glob("*.parquet"))
    assert len(files) >= 10
    b = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    return b


def user_config(bars: pd.DataFrame, **strategies) -> dict:
    pairs = sorted(bars["symbol"].unique())
    return {
        "universe": {"market_symbol": MARKET, "inactive": [],
                     "large_cap": [p for p in pairs if p in ("ETH-BTC", "LTC-BTC", "XMR-BTC")],
                     "mid_cap": [p for p in pairs if p in ("DASH-BTC", "ETC-BTC", "ZEC-BTC", "XLM-BTC", "ADA-BTC")],
                     "small_cap": [p for p in pairs if p == "TRX-BTC"],
                     "memecoin": [p for p in pairs if p == "NXT-BTC"]},
        **five_minute_base(),
        "strategies": {"swing": {"lookback_min": 10}, **strategies},
        "scan": {"windows_min": {"rsi": 15, "btc_corr": 300}},
        "prioritisation": {"symbols": pairs},
    }


@pytest.fixture(scope="module")
def cfg(bars):
    return build_config(merge(yaml.safe_load(DEFAULT_CONFIG_PATH.read_text()), user_config(bars)))


@pytest.fixture(scope="module")
def flagged(bars, cfg) -> pd.DataFrame:
    """The bars as stored: with the SPEC §13.2 extreme-move flag."""
    return bars.assign(suspect=flag_suspect(bars, cfg.data.health.extreme_move))


@pytest.fixture(scope="module")
def regime(flagged, cfg) -> pd.DataFrame:
    out, _ = R.build_market_regime(flagged, cfg, start=FIRST_DAY, end=FIRST_DAY + N_DAYS * DAY)
    return out


@pytest.fixture(scope="module")
def daily(flagged, regime, cfg) -> list[S.ScanResult]:
    """One scan per UTC day, each from its own warm-up slice of bars, as the daily-partitioned assets run."""
    out = []
    for k in range(N_DAYS):
        d = FIRST_DAY + k * DAY
        warm = flagged[(flagged.timestamp >= d - S.setups_warmup(cfg)) & (flagged.timestamp < d + DAY)]
        reg = regime[(regime.timestamp >= d) & (regime.timestamp < d + DAY)]
        out.append(S.scan_day(warm, reg, d, cfg))
    return out


def test_scan_over_the_20_days_produces_setups_for_several_strategies(daily, cfg, bars):
    rows = pd.concat([r.scan_rows for r in daily], ignore_index=True)
    setups = pd.concat([r.setups for r in daily], ignore_index=True)
    SS.ScanPreviewSchema.validate(rows)
    SS.StrategySetupSchema.validate(setups)
    for r in daily:
        SS.ReadinessBoardSchema.validate(r.board)
    n_pairs = bars["symbol"].nunique()
    assert len(rows) == N_DAYS * 288 * 3 * n_pairs  # one row per symbol × strategy × cycle point
    assert rows.scan_id.is_unique and setups.setup_id.is_unique
    per = setups.groupby("strategy").size()
    assert (per > 0).sum() >= 2, per.to_dict()
    assert set(setups.setup_id) == set(rows.loc[rows.setup, "scan_id"])
    # The first day starts before the data (04:55) and the regime needs a day of history: stale_data.
    first = rows[rows.timestamp < FIRST_DAY + pd.Timedelta(hours=4)]
    assert (first.reason == "stale_data").all()
    later = rows[rows.timestamp >= FIRST_DAY + 2 * DAY]
    assert later.candidate.mean() > 0.01 and (later.reason == "stale_data").mean() < 0.2
    # Prices are quoted in BTC: nothing assumes a USD range.
    assert setups.price.max() < 1.0 and (setups.price > 0).all()
    # The crash of 2018-01-16/17 gives DCA dips.
    at = setups.detected_at
    crash = setups[(setups.strategy == "DCA") & (at >= "2018-01-16") & (at < "2018-01-18")]
    assert len(crash) > 0
    md = daily[-1].board_markdown
    assert "#### DCA" in md and "ETH-BTC" in md


def test_day_by_day_equals_one_continuous_run(daily, flagged, regime, cfg):
    whole = S.scan_cycle_points(flagged, regime, cfg, start=FIRST_DAY, end=FIRST_DAY + N_DAYS * DAY)
    parts = pd.concat([r.scan_rows for r in daily], ignore_index=True)
    pd.testing.assert_frame_equal(parts, whole.scan_rows, check_exact=True)
    pd.testing.assert_frame_equal(daily[-1].board, whole.board, check_exact=True)


def test_volume_filter_only_removes_dca_setups(flagged, regime, cfg, bars, daily):
    on = build_config(merge(yaml.safe_load(DEFAULT_CONFIG_PATH.read_text()),
                            user_config(bars, dca={"volume_filter": {"enabled": True}})))
    start, end = FIRST_DAY + 5 * DAY, FIRST_DAY + 8 * DAY
    base = S.scan_cycle_points(flagged, regime, cfg, start=start, end=end).scan_rows
    filt = S.scan_cycle_points(flagged, regime, on, start=start, end=end).scan_rows
    SS.ScanPreviewSchema.validate(filt)
    assert np.array_equal(base.volume_filter_ratio.to_numpy(), filt.volume_filter_ratio.to_numpy(), equal_nan=True)
    dca_b, dca_f = base.strategy == "DCA", filt.strategy == "DCA"
    assert set(filt.loc[dca_f & filt.setup, "scan_id"]) < set(base.loc[dca_b & base.setup, "scan_id"])
    pd.testing.assert_frame_equal(base[~dca_b], filt[~dca_f])
    # Removed setups are exactly those whose ratio is below the tier's min_ratio (or null).
    removed = base[dca_b & base.setup & ~filt.setup.to_numpy()]
    need = removed.tier.map(lambda t: on.strategies.dca.volume_filter.min_ratio.of(t))
    assert (removed.volume_filter_ratio.isna() | (removed.volume_filter_ratio < need)).all()
