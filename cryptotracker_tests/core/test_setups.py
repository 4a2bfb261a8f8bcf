"""Setups and scan decisions (SPEC §3.2–§3.5): hand-built bar series that fire at an exact bar and not one cycle point
earlier, tier thresholds at their boundaries, user-config changes, the data step (stale / insufficient / suspect),
confidence sources, CHANNEL top of range, SWING's reference window, ids, setups, board, schemas and no look-ahead.

Every expectation is computed by hand from the bar series written in the test (prices chosen so that the boundary
cases are exact in floating point)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.errors
import pytest
import yaml

from cryptotracker_assets.core import regime as R
from cryptotracker_assets.core import setup_schemas as SS
from cryptotracker_assets.core import setups as S
from cryptotracker_assets.core.config import DEFAULT_CONFIG_PATH, Strategy, build_config, load_config, merge
from cryptotracker_assets.core.features import compute_scan_features, cycle_points
from cryptotracker_assets.core.ledger import ExecutionReason
from cryptotracker_assets.core.protection import GateReason
from cryptotracker_tests.conftest import write_user_config

T0 = pd.Timestamp("2024-03-01", tz="UTC")
MIN = pd.Timedelta(minutes=1)
DAY = pd.Timedelta(days=1)


@pytest.fixture(scope="module")
def cfg():
    return load_config()


def config_with(override: dict):
    return build_config(merge(yaml.safe_load(DEFAULT_CONFIG_PATH.read_text()), override))


def series(symbol: str, closes, *, highs=None, volumes=None, suspect_at=(), missing=(), start=T0) -> pd.DataFrame:
    """1m bars from a close path: open = previous close, high / low = max / min(open, close) unless given."""
    c = np.asarray(closes, dtype="float64")
    o = np.r_[c[0], c[:-1]]
    h = np.maximum(o, c) if highs is None else np.maximum(np.maximum(o, c), highs)
    v = np.full(len(c), 100.0) if volumes is None else np.asarray(volumes, dtype="float64")
    df = pd.DataFrame({"symbol": symbol, "timestamp": pd.date_range(start, periods=len(c), freq="1min", tz="UTC"),
                       "open": o, "high": h, "low": np.minimum(o, c), "close": c, "volume": v})
    df["suspect"] = np.isin(np.arange(len(c)), list(suspect_at))
    return df.drop(index=list(missing)).reset_index(drop=True)


def regime_frame(cfg, start, end, unknown=()) -> pd.DataFrame:
    """A hand-made market_regime: NORMAL everywhere (UNKNOWN at the given cycle points)."""
    pts = cycle_points(start, end, cfg.engine.cycle_min)
    reg = np.where(pts.isin(pd.DatetimeIndex(list(unknown))), "UNKNOWN", "NORMAL").astype(object) if len(unknown) \
        else np.full(len(pts), "NORMAL", dtype=object)
    return pd.DataFrame({"timestamp": pts, "regime": reg, "best_strategy": "NONE", "btc_close": 1.0})


def scan(cfg, bars, symbols, start=T0 + 30 * MIN, end=None, regime=None, **kw) -> S.ScanResult:
    end = end if end is not None else bars["timestamp"].max() + MIN
    reg = regime if regime is not None else regime_frame(cfg, start, end)
    res = S.scan_cycle_points(bars, reg, cfg, start=start, end=end, symbols=symbols, **kw)
    SS.ScanPreviewSchema.validate(res.scan_rows)
    SS.StrategySetupSchema.validate(res.setups)
    SS.ReadinessBoardSchema.validate(res.board)
    return res


def row(res: S.ScanResult, strategy: str, symbol: str, t: pd.Timestamp) -> pd.Series:
    r = res.scan_rows
    sel = r[(r.strategy == strategy) & (r.symbol == symbol) & (r.timestamp == t)]
    assert len(sel) == 1
    return sel.iloc[0]


def rows_of(res: S.ScanResult, strategy: str, symbol: str) -> pd.DataFrame:
    r = res.scan_rows
    return r[(r.strategy == strategy) & (r.symbol == symbol)].set_index("timestamp")


def assert_candidate(r: pd.Series) -> None:
    assert bool(r.setup) and bool(r.candidate) and r.decision is None and r.reason is None


def assert_skip(r: pd.Series, reason: str) -> None:
    assert r.decision == "SKIP" and r.reason == reason and not r.candidate


# ---------------------------------------------------------------------------------------------------------------
# Enums
# ---------------------------------------------------------------------------------------------------------------


def test_the_one_reason_enum_holds_every_code_of_spec_3_4_in_order():
    assert [r.value for r in S.DecisionReason] == [
        "stale_data", "insufficient_history", "data_suspect", "no_setup", "top_of_range", "ml_below_threshold",
        "paused", "regime_panic", "daily_loss_gate", "loss_streak_pause", "strategy_disabled", "banned", "cooldown",
        "not_prioritised", "symbol_open", "portfolio_full", "strategy_full", "allocation_exhausted",
        "insufficient_cash", "entered"]
    assert [r.step for r in S.DecisionReason] == [1, 1, 1, 2, 2, 3] + [4] * 7 + [5] + [6] * 5 + [7]
    for g in GateReason:
        assert S.DecisionReason.of(g) is S.DecisionReason(g.value) and S.DecisionReason.of(g).step == 4
    for e in ExecutionReason:
        assert S.DecisionReason.of(e).value == e.value and S.DecisionReason.of(e).step == 6
    for bad in ("Stale_data", "no setup", "", None, "TAKE"):
        with pytest.raises(ValueError, match="unknown decision reason"):
            S.DecisionReason.parse(bad)
    with pytest.raises(ValueError, match="unknown decision"):
        S.Decision.parse("BUY")
    assert S.Decision.of(S.DecisionReason.ENTERED) is S.Decision.TAKE
    assert S.Decision.of("cooldown") is S.Decision.SKIP
    assert S.Decision.of("ml_below_threshold", near_miss=True) is S.Decision.NEAR_MISS
    with pytest.raises(ValueError):
        S.Decision.of("no_setup", near_miss=True)


# ---------------------------------------------------------------------------------------------------------------
# Exact bar, not one cycle point earlier (cycle 1 min: every bar is a cycle point; cycle 5 min: the default)
# ---------------------------------------------------------------------------------------------------------------

FIRE = T0 + 45 * MIN  # the firing bar is bar 44 (opens at 00:44), the decision bar of T = 00:45


@pytest.fixture(scope="module", params=[1, 5], ids=["cycle1", "cycle5"])
def cycle_cfg(request):
    return config_with({"engine": {"cycle_min": request.param}})


def test_dca_fires_at_the_exact_bar_and_not_one_cycle_point_earlier(cycle_cfg):
    # AVAX is mid_cap: drop_threshold −0.025. Bars 30–43 close at 97.51 (drop −0.0249), bar 44 at 97.49 (−0.0251).
    closes = [100.0] * 30 + [97.51] * 14 + [97.49] * 6
    res = scan(cycle_cfg, series("AVAX", closes), ["AVAX"])
    hit = row(res, "DCA", "AVAX", FIRE)
    assert_candidate(hit)
    assert hit["drop"] == pytest.approx(97.49 / 100 - 1, abs=1e-12) and hit.price == 97.49
    assert hit.bar_timestamp == FIRE - MIN and hit.setup_threshold == -0.025
    before = row(res, "DCA", "AVAX", FIRE - cycle_cfg.engine.cycle_min * MIN)
    assert_skip(before, "no_setup")
    assert before["drop"] == pytest.approx(97.51 / 100 - 1, abs=1e-12)
    earlier = rows_of(res, "DCA", "AVAX").loc[:FIRE - MIN]
    assert not earlier["setup"].any()


def test_swing_fires_at_the_exact_bar_and_not_one_cycle_point_earlier(cycle_cfg):
    # Reference window = the 9 bars before c. Bar 43: close 100.9 on volume 140 (breakout 0.009 < 0.010).
    # Bar 44: close 102 on volume 200 against max high 100.9 → breakout 0.0109, surge 200 / (940/9) = 1.915.
    closes = [100.0] * 43 + [100.9, 102.0] + [102.0] * 3
    vols = [100.0] * 43 + [140.0, 200.0] + [100.0] * 3
    res = scan(cycle_cfg, series("AVAX", closes, volumes=vols), ["AVAX"])
    hit = row(res, "SWING", "AVAX", FIRE)
    assert_candidate(hit)
    assert hit.breakout == pytest.approx(102 / 100.9 - 1, abs=1e-12)
    assert hit.volume_surge == pytest.approx(200 / ((8 * 100 + 140) / 9), abs=1e-12)
    before = row(res, "SWING", "AVAX", FIRE - cycle_cfg.engine.cycle_min * MIN)
    assert_skip(before, "no_setup")
    assert before.breakout == pytest.approx(0.009 if cycle_cfg.engine.cycle_min == 1 else 0.0, abs=1e-12)
    assert not rows_of(res, "SWING", "AVAX").loc[:FIRE - MIN, "setup"].any()


def test_channel_fires_at_the_exact_bar_and_not_one_cycle_point_earlier(cycle_cfg):
    # Closes 20 (bar 30) and 10 (bar 31) set the 20-min channel; bar 43 at 12 (position 0.2), bar 44 at 11:
    # (11 − 10) / (20 − 10) = 0.1 = buy_zone exactly, and equal fires.
    closes = [15.0] * 30 + [20.0, 10.0] + [15.0] * 11 + [12.0, 11.0] + [15.0] * 3
    res = scan(cycle_cfg, series("AVAX", closes), ["AVAX"])
    hit = row(res, "CHANNEL", "AVAX", FIRE)
    assert hit.channel_position == 0.1 and hit.channel_width == pytest.approx(1.0)
    assert_candidate(hit)
    assert hit.status == "BUY_ZONE" and hit.setup_value == 0.1 and hit.setup_threshold == 0.1
    before = row(res, "CHANNEL", "AVAX", FIRE - cycle_cfg.engine.cycle_min * MIN)
    assert_skip(before, "no_setup")
    assert before.channel_position == pytest.approx(0.2 if cycle_cfg.engine.cycle_min == 1 else 0.5)


# ---------------------------------------------------------------------------------------------------------------
# Tier thresholds and boundaries
# ---------------------------------------------------------------------------------------------------------------

TIER_SYMBOLS = {"BTC": "large_cap", "AVAX": "mid_cap", "DOGE": "small_cap", "PEPE": "memecoin"}


def drop_bars(drops: dict[str, float], n_flat: int = 44, tail: int = 3, base: float = 100.0) -> pd.DataFrame:
    """Per symbol: ``n_flat`` bars at ``base``, then bar ``n_flat`` (and ``tail`` more) at base × (1 + drop)."""
    return pd.concat([series(s, [base] * n_flat + [base * (1 + d)] * (1 + tail)) for s, d in drops.items()],
                     ignore_index=True)


def fired(res: S.ScanResult, strategy: str, t: pd.Timestamp) -> dict[str, bool]:
    r = res.scan_rows
    r = r[(r.strategy == strategy) & (r.timestamp == t)]
    return dict(zip(r.symbol, r.setup.astype(bool)))


def test_each_tier_uses_its_own_drop_threshold(cfg):
    t = {"BTC": -0.0175, "AVAX": -0.025, "DOGE": -0.03, "PEPE": -0.04}  # SPEC §3.2 defaults
    syms = list(TIER_SYMBOLS)
    just_below = scan(cfg, drop_bars({s: t[s] - 0.001 for s in syms}), syms)
    assert fired(just_below, "DCA", FIRE) == {s: True for s in syms}
    just_above = scan(cfg, drop_bars({s: t[s] + 0.001 for s in syms}), syms)
    assert fired(just_above, "DCA", FIRE) == {s: False for s in syms}
    for drop, expected in ((-0.02, {"BTC"}), (-0.028, {"BTC", "AVAX"}), (-0.035, {"BTC", "AVAX", "DOGE"}),
                           (-0.045, set(syms))):
        res = scan(cfg, drop_bars({s: drop for s in syms}), syms)
        assert {s for s, f in fired(res, "DCA", FIRE).items() if f} == expected, drop
        r = res.scan_rows[(res.scan_rows.strategy == "DCA") & (res.scan_rows.timestamp == FIRE)].set_index("symbol")
        assert r["setup_threshold"].to_dict() == t and r["tier"].to_dict() == TIER_SYMBOLS


def test_drop_equal_to_the_threshold_fires():
    # Thresholds that are exact in binary: 100 × (1 + t) / 100 − 1 == t bit for bit.
    t = {"large_cap": -0.015625, "mid_cap": -0.03125, "small_cap": -0.046875, "memecoin": -0.0625}
    cfg = config_with({"strategies": {"dca": {"drop_threshold": t}}})
    syms = list(TIER_SYMBOLS)
    equal = scan(cfg, drop_bars({s: t[TIER_SYMBOLS[s]] for s in syms}), syms)
    r = equal.scan_rows[(equal.scan_rows.strategy == "DCA") & (equal.scan_rows.timestamp == FIRE)].set_index("symbol")
    assert all(r.loc[s, "drop"] == t[TIER_SYMBOLS[s]] for s in syms)
    assert fired(equal, "DCA", FIRE) == {s: True for s in syms}
    # One hundredth of a basis point less deep: no setup.
    above = scan(cfg, drop_bars({s: t[TIER_SYMBOLS[s]] + 1e-6 for s in syms}), syms)
    assert fired(above, "DCA", FIRE) == {s: False for s in syms}


def volume_filter_bars(symbols, ratio_v2: float, n: int = 65) -> pd.DataFrame:
    """Bar 64 (decision bar of 01:05) drops 5 %; bars 45–64 (the 20-min DCA window) trade 100, the 40 bars before
    them (the rest of the 60-min baseline) ``ratio_v2``: ratio = 100 / ((2000 + 40·v2) / 60)."""
    closes = [100.0] * (n - 1) + [95.0, 95.0]
    vols = [ratio_v2] * 45 + [100.0] * (len(closes) - 45)
    return pd.concat([series(s, closes, volumes=vols) for s in symbols], ignore_index=True)


def test_dca_volume_filter_per_tier_and_at_its_boundary():
    vf = {"enabled": True, "baseline_min": 60}
    cfg = config_with({"strategies": {"dca": {"volume_filter": vf}}})  # min_ratio 0.75 / 0.85 / 0.90 / 1.10
    syms = list(TIER_SYMBOLS)
    t = T0 + 65 * MIN
    for v2, ratio, expected in ((137.5, 0.8, {"BTC"}), (100.0, 1.0, {"BTC", "AVAX", "DOGE"}),
                                (75.0, 1.2, set(syms))):
        res = scan(cfg, volume_filter_bars(syms, v2), syms)
        r = res.scan_rows[(res.scan_rows.strategy == "DCA") & (res.scan_rows.timestamp == t)]
        assert np.allclose(r["volume_filter_ratio"], ratio, rtol=1e-12, atol=0)
        assert {s for s, f in fired(res, "DCA", t).items() if f} == expected, ratio
    # Equal to the tier's min ratio fires: 100 / ((2000 + 40 · 250) / 60) = 0.5 exactly.
    half = config_with({"strategies": {"dca": {"volume_filter": {**vf, "min_ratio": {
        "large_cap": 0.5, "mid_cap": 0.5, "small_cap": 0.5, "memecoin": 0.5}}}}})
    res = scan(half, volume_filter_bars(["AVAX"], 250.0), ["AVAX"])
    hit = row(res, "DCA", "AVAX", t)
    assert hit.volume_filter_ratio == 0.5
    assert_candidate(hit)
    res = scan(half, volume_filter_bars(["AVAX"], 250.5), ["AVAX"])
    assert_skip(row(res, "DCA", "AVAX", t), "no_setup")
    # Disabled (the default), the same bars fire whatever the ratio; the ratio is still reported.
    res = scan(config_with({"strategies": {"dca": {"volume_filter": {"baseline_min": 60}}}}),
               volume_filter_bars(["AVAX"], 250.5), ["AVAX"])
    off = row(res, "DCA", "AVAX", t)
    assert_candidate(off)
    assert off.volume_filter_ratio == pytest.approx(100 / ((2000 + 40 * 250.5) / 60), rel=1e-12)


def test_volume_filter_baseline_needs_its_coverage_only_when_enabled():
    # 30 bars of history: the 20-min window is valid, the 60-min baseline (30 of 60 < 0.8) is not.
    bars = series("AVAX", [100.0] * 29 + [95.0, 95.0])
    t = T0 + 30 * MIN
    on = config_with({"strategies": {"dca": {"volume_filter": {"enabled": True, "baseline_min": 60}}}})
    r = row(scan(on, bars, ["AVAX"], start=t, end=t + MIN), "DCA", "AVAX", t)
    assert_skip(r, "insufficient_history")
    assert np.isnan(r.volume_filter_ratio) and r["drop"] == pytest.approx(-0.05)
    off = config_with({"strategies": {"dca": {"volume_filter": {"baseline_min": 60}}}})
    assert_candidate(row(scan(off, bars, ["AVAX"], start=t, end=t + MIN), "DCA", "AVAX", t))


def swing_bars(close: float, volume: float, symbol: str = "AVAX") -> pd.DataFrame:
    return series(symbol, [100.0] * 44 + [close] * 2, volumes=[100.0] * 44 + [volume] * 2)


def test_swing_breakout_equal_fires_and_volume_surge_is_strict():
    cfg = config_with({"strategies": {"swing": {"breakout_threshold": 0.015625}}})  # exact in binary
    # 101.5625 / 100 − 1 = 0.015625 exactly; surge 131 / 100 = 1.31 > 1.3.
    hit = row(scan(cfg, swing_bars(101.5625, 131.0), ["AVAX"]), "SWING", "AVAX", FIRE)
    assert hit.breakout == 0.015625 and hit.volume_surge == 1.31
    assert_candidate(hit)
    assert_skip(row(scan(cfg, swing_bars(101.5624, 131.0), ["AVAX"]), "SWING", "AVAX", FIRE), "no_setup")
    # 130 / 100 == 1.3 (the min_volume_surge) is not a surge: strict >.
    eq = row(scan(cfg, swing_bars(101.5625, 130.0), ["AVAX"]), "SWING", "AVAX", FIRE)
    assert eq.volume_surge == 1.3
    assert_skip(eq, "no_setup")


def test_swing_reference_window_excludes_the_current_bar_and_readiness_reaches_100(cfg):
    # c closes at 103 with high 103: a window including c could never show a breakout. Against the 9 bars
    # before it (max high 100): breakout 0.03 = 3 × threshold, surge 2 → b = 100, v = 100 → readiness 100.
    res = scan(cfg, swing_bars(103.0, 200.0), ["AVAX"])
    hit = row(res, "SWING", "AVAX", FIRE)
    assert hit.breakout == pytest.approx(0.03, abs=1e-12) and hit.volume_surge == 2.0
    assert_candidate(hit)
    assert hit.readiness == pytest.approx(100.0, abs=1e-9) and hit.status == "READY"


# ---------------------------------------------------------------------------------------------------------------
# CHANNEL top of range
# ---------------------------------------------------------------------------------------------------------------


def channel_bars(last: float) -> pd.DataFrame:
    return series("AVAX", [15.0] * 30 + [20.0, 10.0] + [15.0] * 12 + [last] * 2)


def test_channel_top_of_range_is_never_a_long(cfg):
    for last, pos in ((19.0, 0.9), (20.0, 1.0)):  # (19 − 10) / 10 = 0.9 = top_zone: equal counts as top
        r = row(scan(cfg, channel_bars(last), ["AVAX"]), "CHANNEL", "AVAX", FIRE)
        assert r.channel_position == pos
        assert_skip(r, "top_of_range")
        assert not r.setup and np.isnan(r.confidence) and r.status == "SELL_ZONE"
    r = row(scan(cfg, channel_bars(18.9), ["AVAX"]), "CHANNEL", "AVAX", FIRE)
    assert_skip(r, "no_setup")
    # Even a config whose buy zone reaches past the top zone never longs the top of the range.
    odd = config_with({"strategies": {"channel": {"buy_zone": 0.95}}})
    r = row(scan(odd, channel_bars(19.0), ["AVAX"]), "CHANNEL", "AVAX", FIRE)
    assert_skip(r, "top_of_range")
    assert_candidate(row(scan(odd, channel_bars(18.0), ["AVAX"]), "CHANNEL", "AVAX", FIRE))  # 0.8 ≤ 0.95


def test_channel_top_of_range_never_yields_a_candidate_on_random_bars(cfg):
    bars = random_bars(["AVAX", "DOGE", "PEPE", "BTC"], 2 * 1440, seed=11)
    res = scan(cfg, bars, ["AVAX", "DOGE", "PEPE", "BTC"], start=T0 + DAY, end=T0 + 2 * DAY)
    ch = res.scan_rows[res.scan_rows.strategy == "CHANNEL"]
    top = ch[ch.channel_position >= cfg.strategies.channel.top_zone]
    assert len(top) > 50
    assert not top.setup.any() and not top.candidate.any() and (top.decision != "TAKE").all()
    assert set(top.reason) <= {"top_of_range", "stale_data", "insufficient_history", "data_suspect"}
    assert (ch.reason == "top_of_range").sum() == (top.reason == "top_of_range").sum()


def test_flat_channel_is_no_setup_with_readiness_56(cfg):
    r = row(scan(cfg, series("AVAX", [10.0] * 50), ["AVAX"]), "CHANNEL", "AVAX", FIRE)
    assert np.isnan(r.channel_position) and r.channel_width == 0.0
    assert_skip(r, "no_setup")
    assert r.readiness == pytest.approx(56.0) and r.status == "NEUTRAL"  # p = 50: 80 − 1.6 × 15


# ---------------------------------------------------------------------------------------------------------------
# User config changes the outcome (no code change)
# ---------------------------------------------------------------------------------------------------------------


def test_a_threshold_in_a_user_config_file_changes_the_outcome(tmp_path, cfg):
    bars = pd.concat([drop_bars({"AVAX": -0.022}), swing_bars(101.2, 125.0, "DOGE"),
                      channel_bars(12.0).assign(symbol="PEPE")], ignore_index=True)
    syms = ["AVAX", "DOGE", "PEPE"]
    default = scan(cfg, bars, syms)
    assert_skip(row(default, "DCA", "AVAX", FIRE), "no_setup")  # −0.022 > −0.025
    assert_skip(row(default, "SWING", "DOGE", FIRE), "no_setup")  # surge 1.25 ≤ 1.3
    assert_skip(row(default, "CHANNEL", "PEPE", FIRE), "no_setup")  # position 0.2 > 0.1
    user = write_user_config(tmp_path, "strategies:\n  dca: {drop_threshold: {mid_cap: -0.02}}\n"
                                       "  swing: {min_volume_surge: 1.2}\n  channel: {buy_zone: 0.2}\n")
    changed = scan(load_config(user), bars, syms)
    for strategy, symbol in (("DCA", "AVAX"), ("SWING", "DOGE"), ("CHANNEL", "PEPE")):
        assert_candidate(row(changed, strategy, symbol, FIRE))
    assert row(changed, "DCA", "AVAX", FIRE).setup_threshold == -0.02
    # The default's other tiers are untouched by the partial override.
    assert load_config(user).strategies.dca.drop_threshold.large_cap == cfg.strategies.dca.drop_threshold.large_cap


def test_windows_come_from_the_config():
    # A 5-min DCA window no longer sees the 100 high: the drop is measured from 98.
    bars = series("AVAX", [100.0] * 30 + [98.0] * 10 + [97.0] * 6)
    t = T0 + 45 * MIN  # c = bar 44 at 97; bar 30 (open 100) is 14 bars back, bar 40 (open 98) 4 bars back
    default = row(scan(load_config(), bars, ["AVAX"], start=t, end=t + MIN), "DCA", "AVAX", t)
    assert default["drop"] == pytest.approx(-0.03) and default.setup
    short = config_with({"strategies": {"dca": {"lookback_min": 5}}})
    r = row(scan(short, bars, ["AVAX"], start=t, end=t + MIN), "DCA", "AVAX", t)
    assert r["drop"] == pytest.approx(97 / 98 - 1) and not r.setup


# ---------------------------------------------------------------------------------------------------------------
# Step 1: data
# ---------------------------------------------------------------------------------------------------------------


def test_stale_symbol_and_unknown_regime_give_stale_data(cfg):
    closes = [100.0] * 44 + [95.0] * 10
    bars = pd.concat([series("AVAX", closes), series("DOGE", closes[:38])], ignore_index=True)
    reg = regime_frame(cfg, T0 + 30 * MIN, T0 + 60 * MIN, unknown=[T0 + 50 * MIN])
    res = scan(cfg, bars, ["AVAX", "DOGE"], end=T0 + 60 * MIN, regime=reg)
    # DOGE's last bar opens at 00:37: at 00:45 it is 8 min old (> max_bar_lag_min 5), at 00:40 3 min.
    for s in ("DCA", "SWING", "CHANNEL"):
        assert row(res, s, "DOGE", T0 + 40 * MIN).reason != "stale_data"
        st = row(res, s, "DOGE", T0 + 45 * MIN)
        assert_skip(st, "stale_data")
        assert pd.isna(st.bar_timestamp) and np.isnan(st.readiness) and st.status is None and not st.setup
    # AVAX is fresh, but the regime is UNKNOWN at 00:50: stale_data, and steps 2–3 still run.
    unk = row(res, "DCA", "AVAX", T0 + 50 * MIN)
    assert_skip(unk, "stale_data")
    assert unk.setup and unk.confidence == 0.5 and unk.status == "READY" and unk.bar_timestamp == T0 + 49 * MIN
    assert unk.regime == "UNKNOWN"
    assert_candidate(row(res, "DCA", "AVAX", T0 + 45 * MIN))
    s = res.setups.set_index("setup_id")
    assert s.loc["DCA_AVAX_2403010050", "reason"] == "stale_data"
    assert s.loc["DCA_AVAX_2403010045", "reason"] is None and s.loc["DCA_AVAX_2403010045", "candidate"]


def test_window_coverage_boundary_gives_insufficient_history(cfg):
    # History before T = 00:45: bars 29–44 (16 bars: 16/20 = 0.8 → valid) or bars 30–44 (15 → invalid).
    t = T0 + 45 * MIN
    closes = [100.0] * 44 + [95.0] * 2
    ok = row(scan(cfg, series("AVAX", closes, missing=range(29)), ["AVAX"], start=t, end=t + MIN), "DCA", "AVAX", t)
    assert_candidate(ok)
    res = scan(cfg, series("AVAX", closes, missing=range(30)), ["AVAX"], start=t, end=t + MIN)
    for s in ("DCA", "CHANNEL"):
        r = row(res, s, "AVAX", t)
        assert_skip(r, "insufficient_history")
        assert not r.setup and np.isnan(r.readiness) and r.bar_timestamp == t - MIN
    # SWING's 9-bar reference window is complete: its own step 1 passes.
    assert row(res, "SWING", "AVAX", t).reason == "no_setup"


def test_suspect_bar_as_c_or_in_a_setup_window_gives_data_suspect(cfg):
    t = T0 + 45 * MIN
    closes = [100.0] * 44 + [95.0] * 2
    # Bar 34 is 10 bars before c (bar 44): inside the 20-min DCA and CHANNEL windows, outside SWING's 9 bars.
    res = scan(cfg, series("AVAX", closes, suspect_at=[34]), ["AVAX"], start=t, end=t + MIN)
    for s in ("DCA", "CHANNEL"):
        assert_skip(row(res, s, "AVAX", t), "data_suspect")
    assert row(res, "SWING", "AVAX", t).reason == "no_setup"
    dca = row(res, "DCA", "AVAX", t)
    assert dca.setup and dca.confidence == 0.5  # the setup still fires: steps 1–3 always run
    assert res.setups.set_index("setup_id").loc["DCA_AVAX_2403010045", "reason"] == "data_suspect"
    # Bar 35 is the oldest bar of SWING's reference window; bar 44 is c itself.
    res = scan(cfg, series("AVAX", closes, suspect_at=[35]), ["AVAX"], start=t, end=t + MIN)
    assert row(res, "SWING", "AVAX", t).reason == "data_suspect"
    res = scan(cfg, series("AVAX", closes, suspect_at=[44]), ["AVAX"], start=t, end=t + MIN)
    assert {row(res, s, "AVAX", t).reason for s in ("DCA", "SWING", "CHANNEL")} == {"data_suspect"}
    # A suspect bar that has left every window: no effect (bar 24 is 20 bars before c).
    res = scan(cfg, series("AVAX", closes, suspect_at=[24]), ["AVAX"], start=t, end=t + MIN)
    assert_candidate(row(res, "DCA", "AVAX", t))


def test_data_reasons_follow_the_order_stale_insufficient_suspect():
    stale = np.array([True, True, False, False, False])
    ok = np.array([False, True, False, True, True])
    sus = np.array([True, True, True, True, False])
    assert list(S.data_reasons(stale, ok, sus)) == ["stale_data", "stale_data", "insufficient_history",
                                                     "data_suspect", None]


# ---------------------------------------------------------------------------------------------------------------
# Step 3: confidence
# ---------------------------------------------------------------------------------------------------------------


def _dca_hit(cfg, **kw) -> pd.Series:
    return row(scan(cfg, drop_bars({"AVAX": -0.05}), ["AVAX"], **kw), "DCA", "AVAX", FIRE)


def test_rule_confidence_and_its_threshold(cfg):
    hit = _dca_hit(cfg)
    assert hit.confidence == 0.5 and hit.confidence_source == "rule" and hit.threshold == 0.45
    assert_candidate(hit)
    # Confidence equal to the threshold passes (the step fails only below it).
    assert_candidate(_dca_hit(config_with({"ml": {"rule": {"threshold": 0.5}}})))
    # 0.5 < 0.55 and 0.5 ≥ 0.8 × 0.55 = 0.44: NEAR_MISS.
    near = _dca_hit(config_with({"ml": {"rule": {"threshold": 0.55}}}))
    assert near.decision == "NEAR_MISS" and near.reason == "ml_below_threshold" and not near.candidate
    # 0.4 < 0.44: SKIP with the same reason.
    skip = _dca_hit(config_with({"ml": {"rule": {"confidence": 0.4, "threshold": 0.55}}}))
    assert skip.decision == "SKIP" and skip.reason == "ml_below_threshold"
    # Exactly at the band's edge (0.8 × 0.5 = 0.4): NEAR_MISS.
    edge = _dca_hit(config_with({"ml": {"rule": {"confidence": 0.4, "threshold": 0.5}}}))
    assert edge.decision == "NEAR_MISS"
    # Rows without a setup carry the threshold but no confidence.
    r = scan(cfg, drop_bars({"AVAX": -0.05}), ["AVAX"]).scan_rows
    assert r.loc[~r.setup, "confidence"].isna().all() and r.loc[~r.setup, "confidence_source"].isna().all()
    assert (r.threshold == 0.45).all()


def test_a_champion_plugs_in_with_its_own_threshold(cfg):
    seen = {}

    def predict(value):
        def f(rows):
            seen["columns"] = set(rows.columns)
            seen["n"] = len(rows)
            return np.full(len(rows), value)
        return f

    champ = S.ModelConfidence("dca_202402280900", predict(0.62))
    hit = _dca_hit(cfg, confidence={Strategy.DCA: champ})
    assert hit.confidence == 0.62 and hit.confidence_source == "model:dca_202402280900" and hit.threshold == 0.60
    assert_candidate(hit)
    assert {"symbol", "timestamp", "tier", "drop", "price"} <= seen["columns"] and seen["n"] >= 1
    near = _dca_hit(cfg, confidence={"DCA": S.ModelConfidence("dca_202402280900", predict(0.55))})
    assert near.decision == "NEAR_MISS" and near.threshold == 0.60  # 0.48 ≤ 0.55 < 0.60
    # Other strategies without a champion stay on the rule.
    res = scan(cfg, drop_bars({"AVAX": -0.05}), ["AVAX"], confidence={Strategy.DCA: champ})
    assert (res.scan_rows.loc[res.scan_rows.strategy != "DCA", "threshold"] == 0.45).all()
    # ml.use_champion_for_entries false: the rule decides.
    off = _dca_hit(config_with({"ml": {"use_champion_for_entries": False}}), confidence={Strategy.DCA: champ})
    assert off.confidence_source == "rule" and off.confidence == 0.5 and off.threshold == 0.45
    with pytest.raises(ValueError, match="not a DCA model"):
        _dca_hit(cfg, confidence=S.ModelConfidence("swing_202402280900", predict(0.7)))
    with pytest.raises(ValueError, match="probabilities"):
        _dca_hit(cfg, confidence={Strategy.DCA: S.ModelConfidence("dca_202402280900", predict(1.5))})
    with pytest.raises(ValueError):
        S.ModelConfidence("dca_latest", predict(0.5))


# ---------------------------------------------------------------------------------------------------------------
# Rows, ids, setups, board
# ---------------------------------------------------------------------------------------------------------------


def test_one_row_per_symbol_strategy_cycle_point_with_ids_and_setups(cfg):
    syms = ["AVAX", "BTC", "DOGE"]
    bars = pd.concat([drop_bars({"AVAX": -0.05, "BTC": 0.0}), swing_bars(103.0, 200.0, "DOGE")], ignore_index=True)
    start, end = T0 + 30 * MIN, T0 + 50 * MIN
    res = scan(cfg, bars, syms, start=start, end=end)
    r = res.scan_rows
    assert len(r) == 3 * 3 * 4 and not r.duplicated(["symbol", "strategy", "timestamp"]).any()
    assert list(r.columns) == list(S.SCAN_ROW_COLUMNS)
    assert list(r.timestamp.unique()) == list(pd.date_range(start, periods=4, freq="5min", tz="UTC"))
    first = r[r.timestamp == start]
    assert list(first.strategy) == ["DCA"] * 3 + ["SWING"] * 3 + ["CHANNEL"] * 3
    assert list(first.symbol) == syms * 3
    assert row(res, "DCA", "AVAX", FIRE).scan_id == "DCA_AVAX_2403010045"
    assert (r.config_version == 0).all() and r.list_type.isna().all()
    s = res.setups
    assert list(s.columns) == list(S.SETUP_COLUMNS)
    # AVAX's 5 % drop is also the bottom of its 20-min channel (position 0).
    assert set(s.setup_id) == {"DCA_AVAX_2403010045", "CHANNEL_AVAX_2403010045", "SWING_DOGE_2403010045"}
    d = s.set_index("setup_id").loc["DCA_AVAX_2403010045"]
    assert d.detected_at == FIRE and d.bar_timestamp == FIRE - MIN and d.tier == "mid_cap"
    assert d.price == pytest.approx(95.0, rel=1e-15)
    assert d.setup_value == pytest.approx(-0.05) and d.setup_threshold == -0.025 and d.regime == "NORMAL"
    assert d.best_strategy == "NONE" and d.btc_close == 1.0 and d.status == "READY"


def test_board_is_the_latest_cycle_point_with_a_top5_markdown(cfg):
    syms = ["AAVE", "ARB", "AVAX", "BTC", "DOGE", "ETH", "PEPE"]
    drops = {"AAVE": -0.01, "ARB": -0.02, "AVAX": -0.05, "BTC": -0.005, "DOGE": -0.028, "ETH": 0.0, "PEPE": -0.03}
    res = scan(cfg, drop_bars(drops), syms, end=FIRE + MIN)
    b = res.board
    assert len(b) == 3 * len(syms) and (b.timestamp == FIRE).all()
    dca = b[b.strategy == "DCA"].set_index("symbol")
    # Hand-computed DCA readiness: d = 100·|drop − t|; drop ≤ t → min(100, 80 + 4d) else max(0, 80 − 20d).
    expected = {"AVAX": 90.0, "ARB": 70.0, "DOGE": 76.0, "AAVE": 50.0, "PEPE": 60.0, "BTC": 55.0, "ETH": 45.0}
    for s, v in expected.items():
        assert dca.loc[s, "readiness"] == pytest.approx(v, abs=1e-9), s
    assert list(dca.sort_values("rank").index) == ["AVAX", "DOGE", "ARB", "PEPE", "BTC", "AAVE", "ETH"]
    md = res.board_markdown
    assert md == S.readiness_markdown(b)
    assert "#### DCA" in md and "#### SWING" in md and "#### CHANNEL" in md
    dca_table = md.split("#### DCA")[1].split("####")[0]
    lines = [ln for ln in dca_table.splitlines() if ln.startswith("| ") and not ln.startswith("| #")]
    assert len(lines) == 5 and lines[0].startswith("| 1 | AVAX | mid_cap | 90.0 | READY | -5.00 % | -2.50 % | yes |")
    assert "ETH" not in dca_table and "AAVE" not in dca_table


def test_resolve_candidates_for_the_engine(cfg):
    res = scan(cfg, drop_bars({"AVAX": -0.05, "DOGE": -0.05}), ["AVAX", "DOGE"])
    r = res.scan_rows
    cand = r.index[r.candidate]
    assert len(cand) > 0
    with pytest.raises(pandera.errors.SchemaError):
        SS.ScanHistorySchema.validate(r)
    reasons = {i: ("entered" if k % 2 == 0 else GateReason.COOLDOWN) for k, i in enumerate(cand)}
    done = S.resolve_candidates(r, reasons)
    SS.ScanHistorySchema.validate(done)
    assert set(done.loc[cand, "decision"]) == {"TAKE", "SKIP"}
    assert (done.loc[done.reason == "entered", "decision"] == "TAKE").all()
    with pytest.raises(ValueError, match="steps 1–3"):
        S.resolve_candidates(r, {cand[0]: "no_setup"})
    with pytest.raises(ValueError, match="candidate rows"):
        S.resolve_candidates(r, {r.index[~r.candidate][0]: "entered"})
    with pytest.raises(ValueError, match="undecided"):
        S.resolve_candidates(r, {cand[0]: "entered"} if len(cand) > 1 else {})


def test_schemas_reject_broken_invariants(cfg):
    res = scan(cfg, pd.concat([drop_bars({"AVAX": -0.05}), channel_bars(19.0).assign(symbol="DOGE")]),
               ["AVAX", "DOGE"])
    r = res.scan_rows
    top = r.index[(r.reason == "top_of_range")][0]
    cand = r.index[r.candidate][0]
    skip = r.index[r.reason == "no_setup"][0]
    broken = {
        "readiness > 100": lambda d: d.assign(readiness=d.readiness.where(d.index != skip, 100.5)),
        "duplicate scan_id": lambda d: pd.concat([d, d.iloc[[0]]], ignore_index=True),
        "TAKE without entered": lambda d: d.assign(decision=d.decision.where(d.index != skip, "TAKE")),
        "status of another strategy": lambda d: d.assign(status=d.status.where(d.index != top, "READY")),
        "firing setup not READY": lambda d: d.assign(status=d.status.where(d.index != cand, "WAITING")),
        "top_of_range with a setup": lambda d: d.assign(setup=d.setup.where(d.index != top, True)),
        "unknown reason": lambda d: d.assign(reason=d.reason.where(d.index != skip, "no_signal")),
        "scan_id of another T": lambda d: d.assign(scan_id=d.scan_id.where(d.index != skip, "DCA_AVAX_2001010000")),
        "NEAR_MISS without ml_below_threshold": lambda d: d.assign(decision=d.decision.where(d.index != skip,
                                                                                             "NEAR_MISS")),
    }
    for name, mutate in broken.items():
        with pytest.raises(pandera.errors.SchemaError):
            SS.ScanPreviewSchema.validate(mutate(r.copy()))
        assert name
    for model in (SS.ScanRowSchema, SS.StrategySetupSchema, SS.ReadinessBoardSchema):
        cols = model.to_schema().columns
        assert all(c.description for c in cols.values()), model.__name__
    assert set(SS.ScanRowSchema.to_schema().columns) == set(S.SCAN_ROW_COLUMNS)
    assert set(SS.StrategySetupSchema.to_schema().columns) == set(S.SETUP_COLUMNS)
    assert set(SS.ReadinessBoardSchema.to_schema().columns) == set(S.BOARD_COLUMNS)


def test_input_checks(cfg):
    bars = drop_bars({"AVAX": -0.05})
    reg = regime_frame(cfg, T0 + 30 * MIN, T0 + 50 * MIN)
    kw = dict(start=T0 + 30 * MIN, end=T0 + 50 * MIN)
    with pytest.raises(ValueError, match="suspect"):
        S.scan_cycle_points(bars.drop(columns="suspect"), reg, cfg, symbols=["AVAX"], **kw)
    with pytest.raises(ValueError, match="inactive"):
        S.scan_cycle_points(bars, reg, cfg, symbols=["AVAX", "ACT"], **kw)
    with pytest.raises(KeyError, match="unknown symbol"):
        S.scan_cycle_points(bars, reg, cfg, symbols=["NOPE"], **kw)
    with pytest.raises(ValueError, match="no row for cycle point"):
        S.scan_cycle_points(bars, reg.iloc[1:], cfg, symbols=["AVAX"], **kw)
    with pytest.raises(ValueError):
        S.scan_cycle_points(bars, reg.assign(regime="CALM"), cfg, symbols=["AVAX"], **kw)
    other = compute_scan_features(drop_bars({"AVAX": -0.05}, n_flat=20), cfg, symbols=["AVAX"], **kw)
    with pytest.raises(ValueError, match="features do not match"):
        S.scan_cycle_points(bars, reg, cfg, symbols=["AVAX"], features=other, **kw)
    empty = S.scan_cycle_points(bars, reg, cfg, symbols=["AVAX"], start=T0, end=T0)
    assert empty.scan_rows.empty and list(empty.scan_rows.columns) == list(S.SCAN_ROW_COLUMNS)
    SS.ScanPreviewSchema.validate(empty.scan_rows)


def test_default_symbols_are_the_active_universe(cfg):
    bars = drop_bars({"AVAX": -0.05})
    start = T0 + 45 * MIN
    res = S.scan_cycle_points(bars, regime_frame(cfg, start, start + MIN), cfg, start=start, end=start + MIN)
    r = res.scan_rows
    assert len(r) == 3 * 97 and "ACT" not in set(r.symbol) and "BRETT" not in set(r.symbol)
    assert (r[r.symbol != "AVAX"].reason == "stale_data").all()
    assert_candidate(row(res, "DCA", "AVAX", start))


# ---------------------------------------------------------------------------------------------------------------
# No look-ahead (SPEC I-21) and replay (I-19)
# ---------------------------------------------------------------------------------------------------------------


def random_bars(symbols, n, seed, start=T0) -> pd.DataFrame:
    """Seeded random walks with jumps (so that every strategy fires), gaps and a few suspect bars."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range(start, periods=n, freq="1min", tz="UTC")
    out = []
    for k, s in enumerate(symbols):
        r = rng.normal(0, 0.002, n) + np.where(rng.random(n) < 0.03, rng.normal(0, 0.02, n), 0.0)
        c = 10.0 * (k + 1) * np.exp(np.cumsum(r))
        o = np.r_[c[0], c[:-1]]
        v = rng.lognormal(3, 0.6, n) * np.where(rng.random(n) < 0.05, 3.0, 1.0)
        df = pd.DataFrame({"symbol": s, "timestamp": ts, "open": o, "high": np.maximum(o, c) * 1.0005,
                           "low": np.minimum(o, c) * 0.9995, "close": c, "volume": v,
                           "suspect": rng.random(n) < 0.002})
        out.append(df[rng.random(n) > 0.03])
    return pd.concat(out, ignore_index=True)


LOOKAHEAD_SYMBOLS = ["BTC", "ETH", "AVAX", "DOGE", "PEPE"]


@pytest.fixture(scope="module")
def lookahead_bars():
    return random_bars(LOOKAHEAD_SYMBOLS, 3 * 1440, seed=5)


def _full_scan(bars, cfg, start, end):
    reg, _ = R.build_market_regime(bars, cfg, start=start, end=end)
    return S.scan_cycle_points(bars, reg, cfg, start=start, end=end, symbols=LOOKAHEAD_SYMBOLS)


def test_truncating_the_future_never_changes_a_past_scan_row_or_setup(cfg, lookahead_bars):
    start, end = T0 + 2 * DAY, T0 + 3 * DAY
    full = _full_scan(lookahead_bars, cfg, start, end)
    assert set(full.setups.strategy) == {"DCA", "SWING", "CHANNEL"}
    assert full.scan_rows.reason.isin(["data_suspect", "insufficient_history"]).any()
    rng = np.random.default_rng(21)
    cuts = start + pd.to_timedelta(np.sort(rng.integers(1, 1440, 4)), unit="min")
    for cut in cuts:
        short = _full_scan(lookahead_bars[lookahead_bars.timestamp < cut], cfg, start, end)
        a = full.scan_rows[full.scan_rows.timestamp <= cut].reset_index(drop=True)
        b = short.scan_rows[short.scan_rows.timestamp <= cut].reset_index(drop=True)
        assert len(a) > 0
        pd.testing.assert_frame_equal(a, b, check_exact=True)
        sa = full.setups[full.setups.detected_at <= cut].reset_index(drop=True)
        sb = short.setups[short.setups.detected_at <= cut].reset_index(drop=True)
        pd.testing.assert_frame_equal(sa, sb, check_exact=True)


def test_day_by_day_equals_one_run(cfg, lookahead_bars):
    start = T0 + DAY
    whole = _full_scan(lookahead_bars, cfg, start, start + 2 * DAY)
    days = []
    for d in (start, start + DAY):
        reg, _ = R.build_market_regime(lookahead_bars, cfg, start=d, end=d + DAY)
        warm = lookahead_bars[(lookahead_bars.timestamp >= d - S.setups_warmup(cfg))
                              & (lookahead_bars.timestamp < d + DAY)]
        days.append(S.scan_day(warm, reg, d, cfg, symbols=LOOKAHEAD_SYMBOLS).scan_rows)
    pd.testing.assert_frame_equal(pd.concat(days, ignore_index=True), whole.scan_rows, check_exact=True)


def test_warmup_span(cfg):
    assert S.setups_warmup(cfg) == pd.Timedelta(days=5)  # the Kind-X RSI start dominates with the defaults
    long_base = config_with({"strategies": {"dca": {"volume_filter": {"baseline_min": 10080}}}})
    assert S.setups_warmup(long_base) == pd.Timedelta(minutes=10080 + 5)
