"""Model inputs and training labels (SPEC §2, §11.1–§11.2, I-18, I-21) on hand-built bars, trades and shadows.

Every expected number is worked out here from the SPEC formulas with plain arithmetic: the feature joins (the ML row
available at T, never one available after T; NaN kept), targets on a 10-bar path with the cap and floor, the engine's
fills for simulated setups (and a comparison with :func:`run_engine` itself), each shadow-weight bonus and the cap,
the per-real cap and its order, and the truncation invariants (bars after the outcome or before the entry change no
label; bars after T change no feature).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from cryptotracker_assets.core.config import Strategy
from cryptotracker_assets.core.features import compute_daily_context, compute_ml_features, compute_scan_features
from cryptotracker_assets.core.features.registry import (DAILY_FEATURES, ML_MODEL_INPUTS, ML_USD_FEATURES,
                                                          SCAN_FEATURES)
from cryptotracker_assets.core.features.registry import feature_set_version as registry_version
from cryptotracker_assets.core.ledger import LEDGER_COLUMNS, empty_ledger, ledger_frame, scan_id, trade_group_id
from cryptotracker_assets.core.ml.features import (MARKET_FEATURES, MODEL_FEATURES, feature_set_version,
                                                   model_feature_frame)
from cryptotracker_assets.core.ml.labels import LABEL_ROW_COLUMNS, build_labels
from cryptotracker_assets.core.regime import compute_regime
from cryptotracker_assets.core.setups import SCAN_ROW_COLUMNS
from cryptotracker_assets.core.shadows.outcomes import OUTCOME_COLUMNS
from cryptotracker_assets.core.universe import Universe
from cryptotracker_tests.core.test_engine import MIN, T0, H, Scenario, base_raw, make_cfg  # noqa: F401

D = pd.Timedelta(days=1)
FEE = 0.003


@pytest.fixture(scope="module")
def lcfg(base_raw):
    return make_cfg(base_raw)


def approx(x):
    return pytest.approx(x, rel=1e-12, abs=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# Hand-built inputs
# ---------------------------------------------------------------------------------------------------------------


class Bars:
    """1m bars (o, h, l, c) per symbol and open time."""

    def __init__(self):
        self.b: dict[tuple[str, pd.Timestamp], tuple[float, float, float, float]] = {}

    def flat(self, sym, price, start, end):
        t = start
        while t < end:
            self.b[(sym, t)] = (price, price, price, price)
            t += MIN
        return self

    def bar(self, sym, t, o, h, lo, c):
        self.b[(sym, t)] = (o, h, lo, c)
        return self

    def frame(self):
        keys = sorted(self.b)
        ts = pd.DatetimeIndex([k[1] for k in keys], dtype="datetime64[ns, UTC]")
        v = np.array([self.b[k] for k in keys], dtype="float64").reshape(-1, 4)
        return pd.DataFrame({"symbol": [k[0] for k in keys], "timestamp": ts, "open": v[:, 0], "high": v[:, 1],
                             "low": v[:, 2], "close": v[:, 3], "volume": 1.0, "ingested_at": ts + MIN})


def regime_rows(points, regime="NORMAL", vol=0.03, at=None):
    """market_regime rows: NORMAL with BTC vol24h 0.03 unless ``at`` = {T: (regime, vol)}."""
    rows = []
    for t in points:
        r, v = (at or {}).get(t, (regime, vol))
        rows.append({"timestamp": t, "regime": r, "btc_vol_24h": v, "btc_ret_1h": 0.001, "btc_ret_4h": 0.002,
                     "btc_ret_24h": 0.003, "regime_panic": int(r == "PANIC"), "regime_caution": int(r == "CAUTION"),
                     "regime_euphoria": int(r == "EUPHORIA")})
    cols = ["timestamp", "regime", "btc_vol_24h", *MARKET_FEATURES]
    df = pd.DataFrame(rows, columns=list(dict.fromkeys(cols)))
    df["timestamp"] = pd.DatetimeIndex(df["timestamp"], dtype="datetime64[ns, UTC]")
    return df


def points(start, end):
    return list(pd.date_range(start, end, freq="5min", inclusive="left"))


def scan_rows(cfg, specs):
    """Scan rows (SCAN_ROW_COLUMNS) from (T, strategy, symbol, setup, reason, regime) tuples; decision bar T − 1m,
    feature ``drop`` = 0.5, the others NaN."""
    uni = Universe.from_config(cfg)
    rows = []
    for t, s, sym, setup, reason, regime in specs:
        r = {c: math.nan for c in SCAN_ROW_COLUMNS}
        r.update(scan_id=scan_id(s, sym, t), timestamp=t, bar_timestamp=t - MIN, symbol=sym, tier=uni.tier(sym).value,
                 strategy=s, decision="TAKE" if reason == "entered" else "SKIP", reason=reason, candidate=False,
                 setup=setup, regime=regime, best_strategy="SWING", config_version=0, drop=0.5)
        rows.append(r)
    df = pd.DataFrame(rows, columns=list(SCAN_ROW_COLUMNS))
    for c in ("timestamp", "bar_timestamp"):
        df[c] = pd.DatetimeIndex(df[c], dtype="datetime64[ns, UTC]")
    df["setup"] = df["setup"].astype(bool)
    return df


def _empty(time_column, features):
    return pd.DataFrame({"symbol": pd.Series([], dtype=object), time_column: pd.Series([], dtype="datetime64[ns, UTC]"),
                         **{c: pd.Series([], dtype="float64") for c in features}})


def no_ml():
    return _empty("available_at", ML_MODEL_INPUTS)


def no_daily():
    return _empty("timestamp", DAILY_FEATURES)


def trade(strategy, symbol, tier, e, exit_t, reason, pnl_usd, pnl_pct, *, avg=100.0, sl=0.04, hold_min=72 * 60.0,
          size=50.0, levels=1, spacing=0.0, tp=0.05, trail=0.025, act=0.025, closed=True):
    """A trade group's BUY (level 0) and SELL rows with the values the labels read (the others are filler)."""
    tg = trade_group_id(strategy, symbol, e)
    common = {c: math.nan for c in LEDGER_COLUMNS}
    common.update(trade_group_id=tg, symbol=symbol, tier=tier, strategy=strategy, scan_id=scan_id(strategy, symbol, e),
                  config_version=0, cycle_point=e, entry_time=e, group_size_usd=size, grid_levels=levels,
                  grid_spacing=spacing, take_profit=tp, stop_loss=sl, trailing=trail, trail_activation=act,
                  max_hold_min=hold_min, taker_fee=FEE, slippage=0.0015, no_data=False, avg_entry=avg)
    buy = {**common, "side": "BUY", "fill_kind": "MARKET", "level": 0, "bar_time": e, "raw_price": avg,
           "fill_price": avg, "qty": size / levels / avg, "size_usd": size / levels, "fee_usd": 0.0,
           "slippage_usd": 0.0, "exit_reason": None, "outcome": None}
    sell = {**common, "side": "SELL", "fill_kind": "MARKET", "level": -1, "bar_time": exit_t, "raw_price": avg,
            "fill_price": avg, "qty": size / levels / avg, "fee_usd": 0.0, "slippage_usd": 0.0,
            "exit_reason": reason, "pnl_usd": pnl_usd, "pnl_pct": pnl_pct,
            "outcome": "WIN" if pnl_usd > 0 else "LOSS", "high_water": avg}
    return [buy, sell] if closed else [buy]


def labels(cfg, bars, *, ledger=None, scans=None, regime=None, shadows=None, bars_end, as_of=None,
           current="NORMAL", ml=None, daily=None):
    return build_labels(cfg, scan_rows=scans if scans is not None else scan_rows(cfg, []),
                        ledger=ledger if ledger is not None else empty_ledger(), bars=bars.frame(),
                        ml_rows=ml if ml is not None else no_ml(),
                        daily_rows=daily if daily is not None else no_daily(),
                        regime_rows=regime if regime is not None else regime_rows([]), shadow_outcomes=shadows,
                        as_of=as_of or bars_end, current_regime=current, bars_end=bars_end)


def by_id(df):
    return df.set_index("label_id")


# ---------------------------------------------------------------------------------------------------------------
# The model inputs
# ---------------------------------------------------------------------------------------------------------------


def test_model_features_come_from_the_registry_in_a_fixed_order_without_usd(lcfg):
    n_scan, n_ml = len(SCAN_FEATURES), len(ML_MODEL_INPUTS)
    assert MODEL_FEATURES[:n_scan] == SCAN_FEATURES
    assert MODEL_FEATURES[n_scan:n_scan + n_ml] == ML_MODEL_INPUTS
    assert MARKET_FEATURES == ("btc_ret_1h", "btc_ret_4h", "btc_ret_24h", "btc_vol_24h", "regime_panic",
                               "regime_caution", "regime_euphoria")
    assert MODEL_FEATURES[-6:] == ("tier_large_cap", "tier_mid_cap", "tier_small_cap", "tier_memecoin", "hour_utc",
                                   "dow_utc")
    assert not set(ML_USD_FEATURES) & set(MODEL_FEATURES)  # I-18: only the *_rel versions
    assert {"macd_rel", "bb_high_rel", "sma_50_rel", "ema_26_rel"} <= set(MODEL_FEATURES)
    assert set(DAILY_FEATURES) <= set(MODEL_FEATURES) and len(set(MODEL_FEATURES)) == len(MODEL_FEATURES) == 63
    assert feature_set_version(lcfg) == registry_version(lcfg, MODEL_FEATURES) != registry_version(lcfg)


def _ml_rows(specs):
    """ML rows from (symbol, available_at, value of every model input)."""
    df = pd.DataFrame({"symbol": [s for s, _, _ in specs],
                       "timestamp": pd.DatetimeIndex([a - 15 * MIN for _, a, _ in specs], dtype="datetime64[ns, UTC]"),
                       "available_at": pd.DatetimeIndex([a for _, a, _ in specs], dtype="datetime64[ns, UTC]")})
    for c in ML_MODEL_INPUTS:
        df[c] = [v for _, _, v in specs]
    return df


def test_model_feature_frame_joins_by_time_without_look_ahead(lcfg):
    t = pd.Timestamp("2024-01-03T12:15:00Z")  # a Wednesday
    scans = scan_rows(lcfg, [(t, "SWING", "ETH", True, None, "NORMAL"), (t, "DCA", "ETH", False, "no_setup", "NORMAL"),
                             (t, "SWING", "LINK", False, "stale_data", "NORMAL")])
    scans.loc[scans.symbol == "ETH", "breakout"] = 0.02
    scans.loc[scans.symbol == "LINK", "bar_timestamp"] = pd.NaT  # stale: no decision bar
    ml = _ml_rows([("ETH", t - 15 * MIN, 1.0), ("ETH", t, 2.0), ("ETH", t + MIN, 3.0), ("ETH", t + 15 * MIN, 4.0),
                   ("LINK", t + MIN, 9.0)])
    ml.loc[1, "rsi_14"] = np.nan  # a missing value in the row used stays missing
    daily = no_daily()
    daily = pd.concat([daily, pd.DataFrame({"symbol": ["ETH", "ETH"],
                                            "timestamp": pd.DatetimeIndex([t.floor("D"), t.floor("D") + D]),
                                            **{c: [5.0, 6.0] for c in DAILY_FEATURES}})], ignore_index=True)
    regime = regime_rows([t - 5 * MIN, t], at={t: ("CAUTION", 0.07)})
    keys = pd.DataFrame({"symbol": ["LINK", "ETH", "ETH"],
                         "setup_time": pd.DatetimeIndex([t, t, t - 5 * MIN], dtype="datetime64[ns, UTC]")})
    f = model_feature_frame(keys, scans, ml, daily, regime, Universe.from_config(lcfg).tier, cfg=lcfg)
    assert list(f.columns) == ["symbol", "setup_time", *MODEL_FEATURES, "max_feature_time"]
    assert f["symbol"].tolist() == ["LINK", "ETH", "ETH"]  # the keys' order
    eth, eth_before, link = f.iloc[1], f.iloc[2], f.iloc[0]
    # the ML row available at T (2.0), not the one available at T + 1 min (3.0)
    assert eth["ret_75m"] == 2.0 and eth["macd_rel"] == 2.0 and math.isnan(eth["rsi_14"])
    assert eth_before["ret_75m"] == 1.0
    assert all(math.isnan(link[c]) for c in ML_MODEL_INPUTS)  # LINK's only row is available after T
    assert eth["breakout"] == 0.02 and eth["drop"] == 0.5 and math.isnan(eth["volume_surge"])
    assert math.isnan(eth_before["drop"])  # no scan row at T − 5 min
    assert (eth["btc_vol_24h"], eth["regime_caution"], eth["regime_panic"]) == (0.07, 1.0, 0.0)
    assert eth_before["btc_vol_24h"] == 0.03 and eth_before["regime_caution"] == 0.0
    assert eth["btc_dist_sma50"] == 5.0 and all(math.isnan(link[c]) for c in DAILY_FEATURES)
    assert (eth["tier_large_cap"], eth["tier_mid_cap"], link["tier_mid_cap"]) == (1.0, 0.0, 1.0)
    assert (eth["hour_utc"], eth["dow_utc"]) == (12.0, 2.0)
    # open time of the latest base bar any value may read: for ETH at T the decision bar, the ML row's last 1m bar
    # and the market row's all end at T (T − 1 min); at T − 5 min (no scan row, the ML row of T − 30 min) the
    # market row's last bar T − 6 min
    assert eth["max_feature_time"] == t - MIN
    assert eth_before["max_feature_time"] == t - 6 * MIN
    assert link["max_feature_time"] == t - MIN  # only the market row (bars before T) and the static context
    assert (f["max_feature_time"] < f["setup_time"]).all()


def _walk(sym, start, n, seed, p0):
    rng = np.random.default_rng(seed)
    c = p0 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    o = np.concatenate([[p0], c[:-1]])
    hi = np.maximum(o, c) * (1 + rng.uniform(0, 0.001, n))
    lo = np.minimum(o, c) * (1 - rng.uniform(0, 0.001, n))
    ts = pd.date_range(start, periods=n, freq="1min")
    return pd.DataFrame({"symbol": sym, "timestamp": ts, "open": o, "high": hi, "low": lo, "close": c,
                         "volume": rng.uniform(1, 10, n)})


def _features_at(cfg, bars, keys, start, end):
    ml = compute_ml_features(bars, cfg)
    daily = compute_daily_context(bars, cfg, bar_timeframe="1m")
    scans = compute_scan_features(bars, cfg, start=start, end=end, symbols=["BTC", "ETH"])
    regime = compute_regime(bars, cfg, start=start, end=end)
    return model_feature_frame(keys, scans, ml, daily, regime, Universe.from_config(cfg).tier, cfg=cfg)


def test_changing_bars_after_t_changes_no_feature(lcfg):
    """I-21 on features computed from bars: the scan, ML, daily and market frames recomputed after every bar with
    open time ≥ T changed give the same model inputs at T; a change just before T does change them."""
    start = pd.Timestamp("2024-01-01T00:00:00Z")
    bars = pd.concat([_walk("BTC", start, 6 * 1440, 1, 40000.0), _walk("ETH", start, 6 * 1440, 2, 2000.0)],
                     ignore_index=True)
    t = start + 5 * D + 12 * H + 5 * MIN
    keys = pd.DataFrame({"symbol": ["ETH", "BTC"], "setup_time": pd.DatetimeIndex([t, t])})
    lo, hi = t - 30 * MIN, t + 30 * MIN
    before = _features_at(lcfg, bars, keys, lo, hi)
    later = bars["timestamp"] >= t
    changed = bars.copy()
    changed.loc[later, ["open", "high", "low", "close"]] *= 1.3
    changed.loc[later, "volume"] *= 5.0
    after = _features_at(lcfg, changed, keys, lo, hi)
    pd.testing.assert_frame_equal(before, after)
    assert before[list(MODEL_FEATURES)].notna().sum(axis=1).min() > 40  # the frames really produced values
    assert (before["max_feature_time"] == t - MIN).all()
    last = changed["timestamp"] == t - MIN
    changed.loc[last, ["high", "close"]] *= 1.05
    moved = _features_at(lcfg, changed, keys, lo, hi)
    assert not np.allclose(before[list(MODEL_FEATURES)].to_numpy(dtype=float),
                           moved[list(MODEL_FEATURES)].to_numpy(dtype=float), equal_nan=True)


# ---------------------------------------------------------------------------------------------------------------
# Real rows and the targets
# ---------------------------------------------------------------------------------------------------------------

E1, E2, E3 = T0, T0 + 5 * MIN, T0 + 10 * MIN
HIGHS = [101.0, 103.0, 102.0, 105.0, 104.0, 105.0, 103.0, 102.0, 101.0, 100.0]
LOWS = [99.5, 98.0, 100.0, 97.0, 99.0, 96.0, 95.0, 94.0, 93.0, 92.0]


def real_world():
    b = Bars()
    for i in range(1, 6):  # bars before E are never read by a label
        b.bar("ETH", E1 - i * MIN, 100.0, 500.0, 1.0, 100.0)
    for i, (h, lo) in enumerate(zip(HIGHS, LOWS)):
        b.bar("ETH", E1 + i * MIN, 100.0, h, lo, 100.0)
    for i in range(10, 15):  # after the window E + 10 min
        b.bar("ETH", E1 + i * MIN, 100.0, 500.0, 1.0, 100.0)
    for i, (h, lo) in enumerate([(10.05, 9.99), (14.0, 9.995), (10.2, 9.9), (10.1, 9.0), (10.0, 9.0)]):
        b.bar("LINK", E2 + i * MIN, 10.0, h, lo, 10.0)
    b.flat("DOGE", 1.0, E3, E3 + 5 * MIN).flat("PEPE", 1.0, E3, E3 + 5 * MIN).flat("BTC", 100.0, E3, E3 + 5 * MIN)
    b.flat("UNI", 10.0, E1, E1 + 10 * MIN)
    rows = (trade("SWING", "ETH", "large_cap", E1, E1 + 3 * MIN, "take_profit", 2.0, 0.04, hold_min=10.0)
            + trade("SWING", "LINK", "mid_cap", E2, E2 + 4 * MIN, "stop_loss", 0.0, 0.0, avg=10.0, hold_min=5.0)
            + trade("DCA", "DOGE", "small_cap", E3, E3 + MIN, "take_profit", 1.1, 0.055, avg=1.0, sl=0.11,
                    hold_min=5.0, levels=5, spacing=0.03)
            + trade("DCA", "PEPE", "memecoin", E3, E3 + MIN, "stop_loss", -7.5, -0.15, avg=1.0, sl=0.15, hold_min=5.0,
                    levels=5, spacing=0.04)
            + trade("DCA", "BTC", "large_cap", E3, E3 + 2 * MIN, "trailing_stop", 1.0, 0.02, sl=0.08, hold_min=5.0,
                    levels=3, spacing=0.02)
            # never labels: a manual close, a strategy-shift close, an open trade, one not final by bars_end
            + trade("CHANNEL", "ETH", "large_cap", E2, E2 + 2 * MIN, "manual", 1.0, 0.02, hold_min=5.0)
            + trade("CHANNEL", "LINK", "mid_cap", E1, E1 + 2 * MIN, "strategy_shift_flat", -1.0, -0.02, hold_min=5.0)
            + trade("SWING", "UNI", "mid_cap", E1, E1 + 2 * MIN, "take_profit", 1.0, 0.02, closed=False)
            + trade("SWING", "UNI", "mid_cap", E2, E2 + 2 * MIN, "take_profit", 1.0, 0.02, hold_min=60.0))
    return b, ledger_frame(rows)


def test_real_rows_targets_by_hand_and_excluded_exits(lcfg):
    b, ledger = real_world()
    # every traded scan also has a production setup row: none of them may become a simulated row
    scans = scan_rows(lcfg, [(E1, "SWING", "ETH", True, "entered", "NORMAL"), (E1, "SWING", "UNI", True, "entered",
                                                                                 "NORMAL"),
                             (E2, "CHANNEL", "ETH", True, "entered", "NORMAL"),
                             (E1, "CHANNEL", "LINK", True, "entered", "NORMAL")])
    out = labels(lcfg, b, ledger=ledger, scans=scans, regime=regime_rows(points(E1, E3 + 5 * MIN)),
                 bars_end=E3 + 15 * MIN)
    assert list(out.columns) == list(LABEL_ROW_COLUMNS)
    assert set(out["source"]) == {"real"}
    assert out["scan_id"].tolist() == ["SWING_ETH_2401020000", "SWING_LINK_2401020005", "DCA_BTC_2401020010",
                                       "DCA_DOGE_2401020010", "DCA_PEPE_2401020010"]  # setup_time, scan_id order
    assert out["label"].dtype == np.int64 and out["label"].tolist() == [1, 0, 1, 1, 0]  # pnl 0 is a loss
    r = by_id(out)
    eth = r.loc["SWING_ETH_2401020000|real|-"]
    # max high 105 first on bar 3 (tied with bar 5); min low of bars 0..3 is 97
    assert (eth["tp_target"], eth["sl_target"], eth["hold_target_h"]) == (approx(0.05), approx(0.03), approx(0.05))
    assert math.isnan(eth["size_mult_target"]) and eth["weight"] == 1.0 and eth["pnl_pct"] == 0.04
    assert (eth["setup_time"], eth["entry_time"], eth["first_label_bar"]) == (E1, E1, E1)
    assert (eth["exit_time"], eth["exit_reason"], eth["outcome_end"]) == (E1 + 3 * MIN, "take_profit", E1 + 10 * MIN)
    assert eth["final_day"] == pd.Timestamp("2024-01-02T00:00:00Z") and pd.isna(eth["variation"])
    assert eth["feature_set_version"] == feature_set_version(lcfg) and eth["regime"] == "NORMAL"
    assert eth["tier"] == "large_cap" and eth["drop"] == 0.5 and eth["tier_large_cap"] == 1.0
    link = r.loc["SWING_LINK_2401020005|real|-"]
    assert link["tp_target"] == 0.30 and link["sl_target"] == 0.01  # 14/10 − 1 = 0.4 capped; 1 − 9.99/10 floored
    assert link["hold_target_h"] == approx(1 / 60)
    # DOGE: every high ties at 1.0 → the first bar; size multiplier at the top of its range: 1 + 0.055 / 0.11
    doge = r.loc["DCA_DOGE_2401020010|real|-"]
    assert (doge["tp_target"], doge["sl_target"], doge["hold_target_h"]) == (0.0, 0.01, 0.0)
    assert doge["size_mult_target"] == approx(1.5)
    assert r.loc["DCA_PEPE_2401020010|real|-", "size_mult_target"] == 0.5  # 1 − 0.15 / 0.15 = 0 → 0.5
    assert r.loc["DCA_BTC_2401020010|real|-", "size_mult_target"] == approx(1.25)  # 1 + 0.02 / 0.08
    assert (out["max_feature_time"] < out["first_label_bar"]).all()


def test_a_real_row_appears_once_its_target_window_is_complete(lcfg):
    b, ledger = real_world()
    kw = dict(ledger=ledger, regime=regime_rows(points(E1, E3 + 5 * MIN)))
    early = labels(lcfg, b, bars_end=E1 + 10 * MIN - pd.Timedelta(1, "ns"), **kw)
    assert "SWING_ETH_2401020000|real|-" not in set(early["label_id"])  # closed, but its window is not complete
    assert "SWING_ETH_2401020000|real|-" in set(labels(lcfg, b, bars_end=E1 + 10 * MIN, **kw)["label_id"])
    late = labels(lcfg, b, bars_end=E2 + H, **kw)
    assert "SWING_UNI_2401020005|real|-" in set(late["label_id"])


def _label_values(df, label_id):
    cols = ["label", "pnl_pct", "tp_target", "sl_target", "hold_target_h", "size_mult_target", "exit_time",
            "exit_reason", "outcome_end", "entry_time", "weight"]
    return ["NaN" if isinstance(v, float) and math.isnan(v) else v for v in by_id(df).loc[label_id, cols].tolist()]


def test_bars_after_the_outcome_or_before_the_entry_change_no_label(lcfg):
    """I-21 for labels: real rows and a simulated row keep label, P&L and targets when the bars after their
    outcome_end or before their entry bar change."""
    b, ledger = real_world()
    t_sim = T0 + 30 * MIN  # a simulated SWING setup on ETH: entry at T, take profit on the next bar
    b.flat("ETH", 100.0, t_sim - 5 * MIN, t_sim + 10 * MIN).bar("ETH", t_sim + MIN, 100.0, 106.0, 99.0, 105.0)
    scans = scan_rows(lcfg, [(t_sim, "SWING", "ETH", True, "ml_below_threshold", "NORMAL")])
    kw = dict(ledger=ledger, scans=scans, regime=regime_rows(points(E1, t_sim + 5 * MIN)),
              bars_end=t_sim + 73 * H)
    base = labels(lcfg, b, **kw)
    assert "SWING_ETH_2401020030|simulated|-" in set(base["label_id"])
    for row in base.to_dict("records"):
        for side in ("after", "before"):
            changed = Bars()
            for (sym, t), (o, h, lo, c) in b.b.items():
                hit = sym == row["symbol"] and (t > row["outcome_end"] if side == "after" else t < row["entry_time"])
                changed.b[(sym, t)] = (o * 1.7, h * 1.9, lo * 0.2, c * 1.3) if hit else (o, h, lo, c)
            if side == "after":  # and new bars after the outcome
                changed.bar(row["symbol"], row["outcome_end"] + MIN, 1.0, 900.0, 0.5, 1.0)
            again = labels(lcfg, changed, **kw)
            assert _label_values(again, row["label_id"]) == _label_values(base, row["label_id"]), (row, side)


# ---------------------------------------------------------------------------------------------------------------
# Simulated rows
# ---------------------------------------------------------------------------------------------------------------


def buy_fill(open_price, slip):
    return open_price * (1 + slip)


def net_pct(qty, raw, slip, size, entry_fees):
    xf = raw * (1 - slip)
    return (qty * xf - size - entry_fees - qty * xf * FEE) / size


def test_simulated_rows_by_hand(lcfg):
    t = T0
    b = Bars()
    # ETH SWING, NORMAL: entry at T's bar open 100, take profit on the next bar (high 106 ≥ TP)
    b.flat("ETH", 100.0, t - 10 * MIN, t + 10 * MIN).bar("ETH", t + MIN, 100.0, 106.0, 99.0, 105.0)
    # LINK DCA under PANIC (sl widened to 0.08 × 1.5 = 0.12): take profit on the next bar before any grid fill
    b.flat("LINK", 10.0, t - 10 * MIN, t + 10 * MIN).bar("LINK", t + MIN, 10.0, 11.0, 9.9, 10.5)
    # PEPE CHANNEL: its bars stop after 30 min → the engine's no-data close at ceil5(E + 72 h + 60 min)
    b.flat("PEPE", 1.0, t - 10 * MIN, t + 30 * MIN)
    # DOGE SWING: no bar in [T, T + 5 min) → no entry, no row
    b.flat("DOGE", 1.0, t - 10 * MIN, t).flat("DOGE", 1.0, t + 5 * MIN, t + 10 * MIN)
    # UNI SWING at T + 5 min: still open when the bars end
    # UNI SWING at T + 5 min: flat bars that stop → open until its own no-data close at T + 5 min + 73 h
    b.flat("UNI", 10.0, t, t + 20 * MIN)
    scans = scan_rows(lcfg, [(t, "SWING", "ETH", True, "ml_below_threshold", "PANIC"),
                             (t, "DCA", "LINK", True, "regime_panic", "PANIC"),
                             (t, "CHANNEL", "PEPE", True, "not_prioritised", "PANIC"),
                             (t, "SWING", "DOGE", True, "entered", "PANIC"),
                             (t + 5 * MIN, "SWING", "UNI", True, "cooldown", "NORMAL"),
                             (t, "SWING", "LINK", False, "no_setup", "PANIC"),  # no setup
                             (t, "CHANNEL", "ETH", True, "stale_data", "PANIC")])  # data step failed
    regime = regime_rows(points(t - H, t + H))
    regime_panic = regime_rows(points(t - H, t + H), at={t: ("PANIC", 0.03)})
    out = labels(lcfg, b, scans=scans, regime=regime_panic, bars_end=t + 80 * H)
    r = by_id(out)
    assert sorted(r.index) == ["CHANNEL_PEPE_2401020000|simulated|-", "DCA_LINK_2401020000|simulated|-",
                               "SWING_ETH_2401020000|simulated|-", "SWING_UNI_2401020005|simulated|-"]
    assert r.loc["SWING_UNI_2401020005|simulated|-", "exit_time"] == t + 5 * MIN + 73 * H
    eth = r.loc["SWING_ETH_2401020000|simulated|-"]
    f = buy_fill(100.0, 0.0015)
    tp = f * 1.05
    pct = net_pct(50.0 / f, tp, 0.0015, 50.0, 50.0 * FEE)
    assert (eth["exit_reason"], eth["exit_time"], eth["entry_time"]) == ("take_profit", t + MIN, t)
    assert eth["pnl_pct"] == approx(pct) and eth["label"] == 1 and eth["weight"] == 1.0
    assert eth["outcome_end"] == t + 72 * H and eth["regime"] == "PANIC"
    assert eth["tp_target"] == approx(106.0 / f - 1) and eth["sl_target"] == approx(1 - 99.0 / f)
    assert eth["hold_target_h"] == approx(1 / 60) and eth["regime_panic"] == 1.0
    link = r.loc["DCA_LINK_2401020000|simulated|-"]
    f = buy_fill(10.0, 0.0025)
    g = 50.0 / 4  # under PANIC the plain position size; one of 4 levels filled
    pct = net_pct(g / f, f * 1.07, 0.0025, g, g * FEE)
    assert link["exit_reason"] == "take_profit" and link["pnl_pct"] == approx(pct)
    assert link["size_mult_target"] == approx(min(1 + pct / (0.08 * 1.5), 1.5))
    pepe = r.loc["CHANNEL_PEPE_2401020000|simulated|-"]
    f = buy_fill(1.0, 0.0075)
    assert (pepe["exit_reason"], pepe["exit_time"]) == ("time_exit", t + 73 * H)
    assert pepe["outcome_end"] == t + 73 * H and pepe["final_day"] == pd.Timestamp("2024-01-05T00:00:00Z")
    assert pepe["pnl_pct"] == approx(net_pct(50.0 / f, 1.0, 0.0075, 50.0, 50.0 * FEE)) and pepe["label"] == 0
    assert (pepe["tp_target"], pepe["hold_target_h"]) == (approx(1.0 / f - 1), 0.0)
    # before their no-data close time PEPE and UNI are still open when the bars end: no row
    early = labels(lcfg, b, scans=scans, regime=regime_panic, bars_end=t + 73 * H - MIN)
    assert sorted(early["label_id"]) == ["DCA_LINK_2401020000|simulated|-", "SWING_ETH_2401020000|simulated|-"]
    assert (out["max_feature_time"] < out["first_label_bar"]).all()
    # a NORMAL regime at T: the same ETH label (size and widening do not move a SWING large-cap trade here)
    normal = by_id(labels(lcfg, b, scans=scans, regime=regime, bars_end=t + 80 * H))
    assert normal.loc["SWING_ETH_2401020000|simulated|-", "pnl_pct"] == eth["pnl_pct"]


def test_simulated_row_equals_the_engine_trade(lcfg):
    """A setup simulated for labels gives the engine's own trade: a DCA grid with two limit fills, then TP."""
    sc = Scenario(lcfg, best="DCA").flat("LINK", 10.0, T0 - 30 * MIN, T0 + 6 * MIN)
    sc.bar("LINK", T0 + 6 * MIN, 9.8, 9.8, 9.5, 9.6).flat("LINK", 9.6, T0 + 7 * MIN, T0 + 13 * MIN)
    sc.bar("LINK", T0 + 13 * MIN, 10.0, 11.0, 9.9, 10.5).flat("LINK", 10.5, T0 + 14 * MIN, T0 + 20 * MIN)
    sc.signal(T0, Strategy.DCA, "LINK")
    out = sc.run(T0, T0 + 20 * MIN)
    sell = sc.rows("SELL").iloc[0]
    assert sc.rows("BUY")["level"].tolist() == [0, 1, 2] and sell["exit_reason"] == "take_profit"
    pts = points(T0, T0 + 20 * MIN)
    regime = sc.regime_frame(pts, lcfg).assign(btc_ret_4h=0.0, btc_ret_24h=0.0, regime_panic=0, regime_caution=0,
                                               regime_euphoria=0)
    b = Bars()
    b.b = dict(sc.bars)
    kw = dict(scans=out.scan_rows, regime=regime, bars_end=T0 + 73 * H)
    sim = by_id(labels(lcfg, b, **kw)).loc["DCA_LINK_2401020000|simulated|-"]
    assert sim["pnl_pct"] == sell["pnl_pct"]  # exactly: the engine's own code
    assert (sim["exit_time"], sim["exit_reason"], sim["entry_time"]) == (sell["bar_time"], "take_profit", T0)
    assert sim["size_mult_target"] == approx(min(max(1 + sell["pnl_pct"] / sell["stop_loss"], 0.5), 1.5))
    real = labels(lcfg, b, ledger=sc.ledger, **kw)
    assert real["label_id"].tolist() == ["DCA_LINK_2401020000|real|-"]  # the real trade, never also simulated
    assert real["pnl_pct"].iloc[0] == sell["pnl_pct"]
    # the same targets: A is the final average entry for both
    assert real["tp_target"].iloc[0] == sim["tp_target"] and real["sl_target"].iloc[0] == sim["sl_target"]
    assert real["tp_target"].iloc[0] == approx(11.0 / sell["avg_entry"] - 1)


# ---------------------------------------------------------------------------------------------------------------
# Shadow rows
# ---------------------------------------------------------------------------------------------------------------

AS_OF = pd.Timestamp("2024-02-01T00:00:00Z")


def shadow(t, variation, *, strategy="SWING", symbol="ETH", outcome="WIN", matched=pd.NA, regime="NORMAL",
           size=50.0, closed_at=None, exit_after=10 * MIN, opened=True, expired=False, pnl=None, **params):
    """One derived shadow outcome (OUTCOME_COLUMNS) decided at T, entered at T."""
    tier = {"ETH": "large_cap", "LINK": "mid_cap", "DOGE": "small_cap", "PEPE": "memecoin"}[symbol]
    p = {"take_profit": 0.05, "stop_loss": 0.04, "trail": 0.025, "trail_activation": 0.025, "max_hold_h": 72.0,
         "grid_levels": 1, "grid_spacing": 0.0, **params}
    pnl = pnl if pnl is not None else (1.0 if outcome == "WIN" else -1.0)
    r = {c: None for c in OUTCOME_COLUMNS}
    r.update(shadow_id=f"{scan_id(strategy, symbol, t)}_{variation}", scan_id=scan_id(strategy, symbol, t),
             timestamp=t, symbol=symbol, tier=tier, strategy=strategy, variation=variation, would_take=opened,
             opened=opened, regime=regime, order_size_usd=size, config_version=0, expired=expired, entry_time=t,
             exit_time=t + exit_after, closed_at=closed_at if closed_at is not None else t + exit_after + 5 * MIN,
             exit_reason="take_profit" if outcome == "WIN" else "stop_loss", outcome=outcome, avg_entry=100.0,
             size_usd=size, pnl_usd=pnl, pnl_pct=pnl / size, matched_real_trade=matched, **p)
    return r


def shadow_frame(rows):
    df = pd.DataFrame(rows, columns=list(OUTCOME_COLUMNS))
    for c in ("timestamp", "entry_time", "exit_time", "closed_at"):
        df[c] = pd.to_datetime(df[c], utc=True)
    df["matched_real_trade"] = df["matched_real_trade"].astype("boolean")
    return df


def shadow_world(n_real=5, strategy="SWING"):
    """``n_real`` closed real trades (DOGE, hours apart) and flat ETH / LINK / DOGE bars from 10 days before
    AS_OF."""
    b = Bars()
    for sym in ("ETH", "LINK", "DOGE"):
        b.flat(sym, 100.0, AS_OF - 10 * D, AS_OF - 10 * D + 30 * MIN)
    rows = []
    for i in range(n_real):
        e = AS_OF - 10 * D + i * 5 * MIN
        rows += trade(strategy, "DOGE", "small_cap", e, e + 5 * MIN, "take_profit", 1.0, 0.02)
    return b, ledger_frame(rows)


def test_shadow_weights_each_bonus_and_the_cap(lcfg):
    b, ledger = shadow_world()
    tw = AS_OF - 2 * D  # the BEAR_MARKET row whose variation won 2 of 3 in [T − 168 h, T)
    hist = [shadow(tw - 168 * H - 20 * MIN, "BEAR_MARKET", closed_at=tw - 168 * H),  # win, at the window start
            shadow(tw - 121 * H, "BEAR_MARKET", closed_at=tw - 100 * H),  # win
            shadow(tw - 60 * H, "BEAR_MARKET", outcome="LOSS", closed_at=tw - 50 * H),
            shadow(tw - 200 * H, "BEAR_MARKET", outcome="LOSS", closed_at=tw - 169 * H),  # before the window
            shadow(tw - 30 * MIN, "BEAR_MARKET", symbol="LINK", outcome="LOSS", closed_at=tw),  # at T: not before
            shadow(tw - 70 * H, "BEAR_MARKET", strategy="DCA", symbol="LINK", outcome="LOSS", closed_at=tw - 60 * H),
            shadow(tw - 71 * H, "BEAR_MARKET", strategy="DCA", symbol="DOGE", outcome="LOSS", closed_at=tw - 60 * H)]
    # VOLATILITY_SIZED won exactly 3 of 5 (0.60, not > 0.60)
    vs = [shadow(tw - (10 + i) * H, "VOLATILITY_SIZED", symbol="LINK", outcome="WIN" if i < 3 else "LOSS",
                 closed_at=tw - (9 + i) * H) for i in range(5)]
    rows = hist + vs + [
        shadow(tw, "BEAR_MARKET"),  # 0.1 + win rate 0.1
        shadow(tw + 5 * MIN, "VOLATILITY_SIZED"),  # 0.1
        # QUICK_EXITS and BULL_MARKET only lose: their win rate never adds
        shadow(AS_OF - D, "QUICK_EXITS", outcome="LOSS"),  # base only: 0.1
        shadow(AS_OF - D + 5 * MIN, "BULL_MARKET", matched=True, outcome="LOSS"),  # 0.3
        shadow(AS_OF - D + 10 * MIN, "BULL_MARKET", matched=False, outcome="LOSS"),  # 0.1
        shadow(AS_OF - 7 * D, "QUICK_EXITS", outcome="LOSS"),  # exactly 7 d old: not older → 0.1
        shadow(AS_OF - 7 * D - 5 * MIN, "QUICK_EXITS", outcome="LOSS"),  # older than 7 d → 0.2
        shadow(AS_OF - D + 15 * MIN, "QUICK_EXITS", regime="CAUTION", outcome="LOSS"),  # the current regime → 0.2
        # at T + 10 min the window [T + 10 min − 168 h, T + 10 min) drops the win at T − 168 h and takes the LINK
        # loss closed at T: 1 of 3 → no bonus; matched + regime: 0.4
        shadow(tw + 10 * MIN, "BEAR_MARKET", matched=True, regime="CAUTION", symbol="LINK"),
        # every bonus: 0.1 + 0.2 + 0.1 (ML_TRUST won its one earlier shadow) + 0.1 + 0.1 = 0.6 → the cap 0.5
        shadow(AS_OF - 8 * D - 3 * H, "ML_TRUST", symbol="LINK", closed_at=AS_OF - 8 * D - H),
        shadow(AS_OF - 8 * D, "ML_TRUST", matched=True, regime="CAUTION"),
    ]
    out = labels(lcfg, b, ledger=ledger, shadows=shadow_frame(rows), bars_end=AS_OF + 80 * H, as_of=AS_OF,
                 current="CAUTION")
    w = by_id(out[out.source == "shadow"])["weight"]

    def wt(t, variation, symbol="ETH", strategy="SWING"):
        return w[f"{scan_id(strategy, symbol, t)}|shadow|{variation}"]

    assert wt(tw, "BEAR_MARKET") == approx(0.2)
    assert wt(tw + 5 * MIN, "VOLATILITY_SIZED") == approx(0.1)
    assert wt(AS_OF - D, "QUICK_EXITS") == approx(0.1)
    assert wt(AS_OF - D + 5 * MIN, "BULL_MARKET") == approx(0.3)
    assert wt(AS_OF - D + 10 * MIN, "BULL_MARKET") == approx(0.1)
    assert wt(AS_OF - 7 * D, "QUICK_EXITS") == approx(0.1)
    assert wt(AS_OF - 7 * D - 5 * MIN, "QUICK_EXITS") == approx(0.2)
    assert wt(AS_OF - D + 15 * MIN, "QUICK_EXITS") == approx(0.2)
    assert wt(tw + 10 * MIN, "BEAR_MARKET", "LINK") == approx(0.4)
    assert wt(AS_OF - 8 * D, "ML_TRUST") == 0.5
    assert wt(AS_OF - 8 * D - 3 * H, "ML_TRUST", "LINK") == approx(0.2)  # old; no earlier ML_TRUST shadow
    assert not (out["source"] == "shadow").any() or out.loc[out.source == "shadow", "strategy"].eq("SWING").all()
    assert (out["max_feature_time"].isna() | (out["max_feature_time"] < out["first_label_bar"])).all()


def test_shadow_rows_differ_from_production_and_one_per_scan_and_parameters(lcfg):
    b, ledger = shadow_world()
    tx = AS_OF - 3 * D
    real = ledger_frame(trade("SWING", "ETH", "large_cap", tx, tx + 10 * MIN, "take_profit", 1.0, 0.02))
    ledger = pd.concat([ledger, real], ignore_index=True)
    ty = AS_OF - 2 * D
    rows = [shadow(tx, "CONFIDENCE_TEST_0.55"),  # = the real trade: same parameters, same exit → dropped
            shadow(tx, "CONFIDENCE_TEST_0.58", exit_after=20 * MIN),  # same parameters, another exit → kept
            shadow(tx, "BEAR_MARKET", size=75.0),  # another size → kept
            shadow(tx, "CHAMPION", size=75.0),  # never a shadow label
            shadow(tx, "BULL_MARKET", outcome="PENDING"), shadow(tx, "QUICK_EXITS", expired=True, opened=True),
            shadow(ty, "CONFIDENCE_TEST_0.6"), shadow(ty, "CONFIDENCE_TEST_0.62", matched=True),  # one kept: 0.62
            shadow(ty, "QUICK_EXITS", max_hold_h=24.0)]  # other parameters: its own row
    out = labels(lcfg, b, ledger=ledger, shadows=shadow_frame(rows), bars_end=AS_OF + 80 * H, as_of=AS_OF)
    sh = out[out.source == "shadow"]
    assert sorted(sh["label_id"]) == sorted([
        "SWING_ETH_2401290000|shadow|CONFIDENCE_TEST_0.58", "SWING_ETH_2401290000|shadow|BEAR_MARKET",
        "SWING_ETH_2401300000|shadow|CONFIDENCE_TEST_0.62", "SWING_ETH_2401300000|shadow|QUICK_EXITS"])
    assert by_id(sh).loc["SWING_ETH_2401300000|shadow|QUICK_EXITS", "outcome_end"] == ty + 24 * H
    assert "SWING_ETH_2401290000|real|-" in set(out["label_id"])
    assert (sh["label"] == 1).all() and sh["label"].dtype == np.int64


def test_shadow_rows_need_min_real_rows_and_are_capped_per_real_row(lcfg, base_raw):
    rows = [shadow(AS_OF - D - i * 5 * MIN, "QUICK_EXITS", matched=m, regime=r, outcome="LOSS")
            for i, (m, r) in enumerate([(True, "CAUTION"), (pd.NA, "NORMAL"), (True, "NORMAL"), (pd.NA, "CAUTION"),
                                        (pd.NA, "NORMAL"), (True, "CAUTION"), (pd.NA, "NORMAL")])]
    # weights (current CAUTION): 0.4, 0.1, 0.3, 0.2, 0.1, 0.4, 0.1; ordered by weight, then older setup first
    ids = [f"{scan_id('SWING', 'ETH', AS_OF - D - i * 5 * MIN)}|shadow|QUICK_EXITS" for i in range(7)]
    cfg1 = make_cfg(base_raw, {"ml": {"shadow_weights": {"max_per_real": 1}}})
    b, ledger = shadow_world(n_real=5)
    out = labels(cfg1, b, ledger=ledger, shadows=shadow_frame(rows), bars_end=AS_OF + 80 * H, as_of=AS_OF,
                 current="CAUTION")
    kept = out.loc[out.source == "shadow", "label_id"].tolist()
    assert sorted(kept) == sorted([ids[5], ids[0], ids[2], ids[3], ids[6]])  # 0.4 ×2, 0.3, 0.2, oldest 0.1
    assert len(out[out.source == "real"]) == 5
    full = labels(lcfg, b, ledger=ledger, shadows=shadow_frame(rows), bars_end=AS_OF + 80 * H, as_of=AS_OF,
                  current="CAUTION")
    assert len(full[full.source == "shadow"]) == 7  # 20 per real row: no cap
    b4, ledger4 = shadow_world(n_real=4)
    few = labels(lcfg, b4, ledger=ledger4, shadows=shadow_frame(rows), bars_end=AS_OF + 80 * H, as_of=AS_OF)
    assert not (few["source"] == "shadow").any() and len(few) == 4
    # real rows of another strategy do not count
    bd, ledger_d = shadow_world(n_real=5, strategy="DCA")
    other = labels(lcfg, bd, ledger=ledger_d, shadows=shadow_frame(rows), bars_end=AS_OF + 80 * H, as_of=AS_OF)
    assert not (other["source"] == "shadow").any()


def test_empty_inputs_give_an_empty_typed_frame(lcfg):
    out = labels(lcfg, Bars().flat("ETH", 1.0, T0, T0 + MIN), bars_end=T0 + H)
    assert out.empty and list(out.columns) == list(LABEL_ROW_COLUMNS)
    assert out["label"].dtype == np.int64 and str(out["setup_time"].dtype) == "datetime64[ns, UTC]"
    none = labels(lcfg, Bars().flat("ETH", 1.0, T0, T0 + MIN), shadows=shadow_frame([]), bars_end=T0 + H)
    assert none.empty and list(none.columns) == list(LABEL_ROW_COLUMNS)
