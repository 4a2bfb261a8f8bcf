"""Shadow decisions and outcomes inside the engine fold (SPEC §10.1–§10.2), on hand-built scenarios: which rows are
eligible and how many variation rows each gets, setups re-evaluated from stored features (DCA_DROPS changes DCA
decisions), would_take and its gates, one open shadow per variation × symbol × strategy with CHAMPION's exception,
the variations' frozen parameters and sizes, the CHAMPION shadow equal to the real trade, expiry, no-data closes on
the evaluation grid only, and one run = many runs with the state round-tripped."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from cryptotracker_assets.core.config import Strategy
from cryptotracker_assets.core.engine import EngineInputs, EngineState, next_cycle_points, run_engine
from cryptotracker_assets.core.shadow_schemas import ShadowDecisionSchema, ShadowExitSchema
from cryptotracker_assets.core.shadows.outcomes import derive_outcomes
from cryptotracker_assets.core.setups import ModelConfidence
from cryptotracker_tests.core.test_engine import (MIN, T0, H, Scenario, approx, base_raw, buy, make_cfg,  # noqa: F401
                                                 net)

NO_CHAMPION_DCA = ["CHAMPION", "BEAR_MARKET", "BULL_MARKET", "QUICK_EXITS", "DCA_DROPS_0.03", "DCA_DROPS_0.04",
                   "DCA_DROPS_0.05", "VOLATILITY_SIZED"]


@pytest.fixture(scope="module")
def scfg(base_raw):
    return make_cfg(base_raw)


def decisions(sc: Scenario) -> pd.DataFrame:
    return pd.concat([o.shadow_decisions for o in sc.outs], ignore_index=True)


def exits(sc: Scenario) -> pd.DataFrame:
    return pd.concat([o.shadow_exits for o in sc.outs], ignore_index=True)


def world(cfg, symbols=("ETH", "PEPE", "LINK", "BTC"), until=T0 + 3 * H) -> Scenario:
    sc = Scenario(cfg)
    for s in symbols:
        sc.flat(s, 100.0, T0 - 30 * MIN, until)
    return sc


def test_eligible_rows_get_one_row_per_variation_and_variation_only_setups_count(scfg):
    sc = world(scfg)
    sc.signal(T0, Strategy.DCA, "ETH", value=-0.032)  # large cap: production (−0.0175) fires
    sc.signal(T0, Strategy.DCA, "PEPE", value=-0.035, kind="feature")  # memecoin −0.04: only −0.03 variations fire
    sc.signal(T0, Strategy.SWING, "LINK", value=0.02)
    sc.run(T0, T0 + 5 * MIN)
    d = decisions(sc)
    ShadowDecisionSchema.validate(d, lazy=True)
    # only the three eligible scan rows; 8 variations per DCA scan and 5 per SWING scan without a champion
    assert d.groupby("scan_id").size().to_dict() == {"DCA_ETH_2401020000": 8, "DCA_PEPE_2401020000": 8,
                                                      "SWING_LINK_2401020000": 5}
    eth = d[d.symbol == "ETH"].set_index("variation")
    assert list(eth.index) == NO_CHAMPION_DCA
    takes = {"CHAMPION", "BEAR_MARKET", "BULL_MARKET", "QUICK_EXITS", "DCA_DROPS_0.03", "VOLATILITY_SIZED"}
    assert set(eth.index[eth.would_take]) == takes  # −0.032 > −0.04, −0.05: the deeper drops do not fire
    assert eth.loc["DCA_DROPS_0.04", "skip_reason"] == "no_setup"
    assert eth.loc["DCA_DROPS_0.04", "setup_threshold"] == -0.04 and eth.loc["CHAMPION", "setup_threshold"] == -0.0175
    assert bool(eth.loc["CHAMPION", "production_take"]) and eth.loc["CHAMPION", "production_decision"] == "TAKE"
    pepe = d[d.symbol == "PEPE"].set_index("variation")
    assert set(pepe.index[pepe.would_take]) == {"BEAR_MARKET", "DCA_DROPS_0.03"}  # production never set up
    assert pepe.loc["CHAMPION", "skip_reason"] == "no_setup" and pepe.loc["CHAMPION", "production_decision"] == "SKIP"
    # the rule confidence and threshold for every variation without a champion (SPEC §10.2)
    assert (pepe["confidence"] == 0.5).all() and (d["threshold"] == 0.45).all()


def test_variations_freeze_their_own_parameters_and_sizes(scfg):
    sc = world(scfg)
    sc.signal(T0, Strategy.DCA, "ETH", value=-0.032, vol_24h=0.01)
    sc.run(T0, T0 + 5 * MIN)
    d = decisions(sc).set_index("variation")
    g = scfg.portfolio.position_size_usd
    assert d.loc["CHAMPION", ["size_usd", "take_profit", "stop_loss", "trail_activation", "max_hold_h"]].tolist() == [
        g, 0.04, 0.06, 0.02, 72.0]  # the large-cap DCA cell; vol24h 0.03 < the 0.05 floor: no widening
    assert d.loc["BEAR_MARKET", ["size_usd", "take_profit", "stop_loss"]].tolist() == [g * 1.5, approx(0.04 * 1.2),
                                                                                     0.06]
    assert d.loc["BULL_MARKET", ["size_usd", "take_profit", "stop_loss"]].tolist() == [g * 0.5, approx(0.04 * 0.8),
                                                                                     0.04]
    assert d.loc["QUICK_EXITS", ["take_profit", "trail_activation", "max_hold_h"]].tolist() == [
        approx(0.04 * 0.8), 0.01, 24.0]
    assert d.loc["VOLATILITY_SIZED", "size_usd"] == g * 1.5  # the symbol's vol_24h 0.01 < 0.02
    assert (d["grid_levels"] == scfg.strategies.dca.grid.levels.of("large_cap")).all()


def test_widening_applies_to_a_variation_base_stop(base_raw):
    sc = world(make_cfg(base_raw))
    sc.set_market(T0, btc_vol_24h=0.10)  # sl1 = base × (1 + 0.05 × 3) = base × 1.15
    sc.signal(T0, Strategy.SWING, "ETH", value=0.02)
    sc.run(T0, T0 + 5 * MIN)
    d = decisions(sc).set_index("variation")
    assert d.loc["CHAMPION", "stop_loss"] == approx(0.04 * 1.15)
    assert d.loc["BEAR_MARKET", "stop_loss"] == approx(0.06 * 1.15)


def test_gates_panic_and_volatility_disable_stop_takes_not_rows(scfg):
    sc = world(scfg)
    sc.set_market(T0, regime="PANIC")
    sc.set_market(T0 + 5 * MIN, swing_enabled=False)
    sc.signal(T0, Strategy.SWING, "ETH", value=0.02, kind="candidate")
    sc.signal(T0 + 5 * MIN, Strategy.SWING, "LINK", value=0.02)
    sc.run(T0, T0 + 10 * MIN)
    d = decisions(sc)
    # BULL_MARKET's breakout threshold (0.05) does not fire on 0.02: no_setup comes first
    eth, link = d[d.symbol == "ETH"].set_index("variation"), d[d.symbol == "LINK"].set_index("variation")
    assert not d["would_take"].any() and eth.loc["BULL_MARKET", "skip_reason"] == "no_setup"
    assert set(eth.drop(index="BULL_MARKET")["skip_reason"]) == {"regime_panic"}
    assert set(link.drop(index="BULL_MARKET")["skip_reason"]) == {"strategy_disabled"}


def test_one_open_shadow_per_key_except_champion_on_a_production_take(scfg):
    sc = world(scfg)
    # PEPE: only the −0.03 variations set up, twice while the first takes are still open
    sc.signal(T0, Strategy.DCA, "PEPE", value=-0.035, kind="feature")
    sc.signal(T0 + 5 * MIN, Strategy.DCA, "PEPE", value=-0.035, kind="feature")
    # ETH SWING: a CHAMPION shadow from a production setup the portfolio refused (below = no TAKE) ...
    sc.signal(T0, Strategy.SWING, "ETH", value=0.02, kind="below", confidence=0.5)
    # ... then a production TAKE while it is open: CHAMPION opens again, the other variations do not
    sc.signal(T0 + 5 * MIN, Strategy.SWING, "ETH", value=0.02)
    sc.run(T0, T0 + 15 * MIN)
    d = decisions(sc)
    p2 = d[(d.symbol == "PEPE") & (d.timestamp == T0 + 5 * MIN)].set_index("variation")
    assert p2.loc["BEAR_MARKET", "skip_reason"] == "shadow_open" and bool(p2.loc["BEAR_MARKET", "would_take"])
    assert not p2["opened"].any()
    e1 = d[(d.symbol == "ETH") & (d.timestamp == T0)].set_index("variation")
    e2 = d[(d.symbol == "ETH") & (d.timestamp == T0 + 5 * MIN)].set_index("variation")
    assert bool(e1.loc["CHAMPION", "opened"]) and not bool(e1.loc["CHAMPION", "production_take"])
    assert bool(e2.loc["CHAMPION", "opened"]) and bool(e2.loc["CHAMPION", "production_take"])
    assert set(e2.index[e2.skip_reason == "shadow_open"]) == {"BEAR_MARKET", "QUICK_EXITS", "VOLATILITY_SIZED"}
    assert e2.loc["BULL_MARKET", "skip_reason"] == "no_setup"  # breakout 0.02 < 0.05
    # open positions in the state: two CHAMPION shadows of ETH SWING side by side
    held = [m.shadow_id for m, _ in sc.state.shadows.positions if m.symbol == "ETH" and m.variation == "CHAMPION"]
    assert held == ["SWING_ETH_2401020000_CHAMPION", "SWING_ETH_2401020005_CHAMPION"]


def test_champion_shadow_is_the_real_trade(scfg):
    sc = world(scfg)
    sc.bar("ETH", T0 + 7 * MIN, 104.0, 106.0, 103.9, 105.0)
    sc.signal(T0, Strategy.SWING, "ETH")
    sc.run(T0, T0 + 15 * MIN)
    (real,) = sc.rows("SELL").to_dict("records")
    ex = exits(sc).set_index("shadow_id")
    ShadowExitSchema.validate(exits(sc), lazy=True)
    champ = ex.loc["SWING_ETH_2401020000_CHAMPION"]
    assert (champ["exit_time"], champ["exit_reason"], champ["closed_at"]) == (real["bar_time"], real["exit_reason"],
                                                                              real["cycle_point"])
    assert champ["pnl_usd"] == real["pnl_usd"] and champ["pnl_pct"] == real["pnl_pct"]  # bit for bit
    assert champ["outcome"] == "WIN" and champ["hold_h"] == 7 / 60
    # by hand: a SWING large-cap take at 100 (+ slippage), TP +5 % on the T0+7 bar
    fill, qty, fee = buy(100.0, 50.0, 0.0015)
    assert champ["pnl_usd"] == approx(net(qty, fill * 1.05, 0.0015, 50.0, fee)[0])
    # QUICK_EXITS: tp × 0.8 = +4 % on the same bar; BEAR_MARKET: 1.5 × the size, tp × 1.2 = +6 % not reached, so its
    # trail (armed by the 106 high) fires at the next bar's open, 100 < 106 × (1 − 0.025)
    q = ex.loc["SWING_ETH_2401020000_QUICK_EXITS"]
    assert q["pnl_usd"] == approx(net(qty, fill * (1 + 0.05 * 0.8), 0.0015, 50.0, fee)[0])
    bear = ex.loc["SWING_ETH_2401020000_BEAR_MARKET"]
    bfill, bqty, bfee = buy(100.0, 75.0, 0.0015)
    assert (bear["exit_reason"], bear["exit_time"], bear["size_usd"]) == ("trailing_stop", T0 + 8 * MIN, 75.0)
    assert bear["pnl_usd"] == approx(net(bqty, 100.0, 0.0015, 75.0, bfee)[0]) and bear["outcome"] == "LOSS"
    assert "SWING_ETH_2401020000_BULL_MARKET" not in ex.index  # breakout 0.02 < 0.05: no take
    out = derive_outcomes(decisions(sc), exits(sc), sc.rows("SELL"))
    assert out.loc[out.variation == "CHAMPION", "matched_real_trade"].tolist() == [True]


def test_entry_order_expires_without_an_entry_bar(scfg):
    sc = world(scfg).drop("ETH", T0, T0 + 6 * MIN)
    sc.signal(T0, Strategy.SWING, "ETH")
    sc.run(T0, T0 + 10 * MIN)
    ex = exits(sc)
    assert len(ex) == 4 and ex["expired"].all() and (ex["closed_at"] == T0 + 5 * MIN).all()
    assert ex["outcome"].isna().all() and sc.state.shadows.orders == () and sc.state.shadows.positions == ()
    out = derive_outcomes(decisions(sc), ex, None)
    assert out["outcome"].isna().all()  # no outcome for an expired take


def test_no_data_close_only_on_the_evaluation_grid(base_raw):
    cfg = make_cfg(base_raw, {"exits": {"max_hold_h": 1, "no_data_grace_min": 60},
                              "shadow": {"variations": {"quick_exits": {"max_hold_h": 1},
                                                        "ml_trust": {"hold_h_range": [1, 1]}}}})
    sc = Scenario(cfg).flat("LINK", 10.0, T0 - 30 * MIN, T0 + 30 * MIN)
    sc.bar("LINK", T0 + 30 * MIN, 10.0, 10.1, 9.9, 10.07)
    sc.signal(T0 + 5 * MIN, Strategy.SWING, "LINK")  # E = T0 + 5: the no-data close is due at T0 + 125
    sc.run(T0, T0 + 150 * MIN)
    real = sc.rows("SELL").iloc[0]
    assert (real["cycle_point"], bool(real["no_data"])) == (T0 + 125 * MIN, True)
    ex = exits(sc).set_index("variation")
    champ = ex.loc["CHAMPION"]
    assert champ["closed_at"] == T0 + 135 * MIN  # the next multiple of shadow.evaluate_every_min (15)
    assert champ["exit_time"] == T0 + 135 * MIN and bool(champ["no_data"]) and champ["exit_reason"] == "time_exit"
    assert champ["outcome"] == "TIMEOUT"
    fill, qty, fee = buy(10.0, 50.0, 0.0025)
    assert champ["pnl_usd"] == approx(net(qty, 10.07, 0.0025, 50.0, fee)[0])  # the last known close


def test_with_a_champion_thirteen_and_ten_rows(scfg):
    sc = world(scfg)
    sc.signal(T0, Strategy.DCA, "ETH", value=-0.032, confidence=0.61)
    sc.signal(T0, Strategy.CHANNEL, "LINK", value=0.05, confidence=0.61)
    model = {s: ModelConfidence(f"{s.key}_202401010000", lambda rows: np.full(len(rows), 0.61)) for s in Strategy}
    points = list(next_cycle_points(sc.state, scfg, start=T0, end=T0 + 5 * MIN))
    inputs = EngineInputs(scfg, sc.bars_frame(), sc.regime_frame(points, scfg), scan_rows=sc.preview(points, scfg),
                          confidence=model)
    _, out = run_engine(EngineState(), inputs, points)
    d = out.shadow_decisions
    assert d.groupby("strategy").size().to_dict() == {"CHANNEL": 10, "DCA": 13}
    dca = d[d.strategy == "DCA"].set_index("variation")
    # thresholds with a champion: production 0.60, CONFIDENCE_TEST_c → c; 0.61 passes 0.55–0.60, not 0.62
    assert dca.loc["CHAMPION", "threshold"] == 0.60 and dca.loc["CONFIDENCE_TEST_0.62", "skip_reason"] == \
        "ml_below_threshold"
    assert bool(dca.loc["CONFIDENCE_TEST_0.6", "would_take"]) and dca.loc["BULL_MARKET", "threshold"] == 0.65
    assert dca.loc["ML_TRUST", "skip_reason"] == "no_model_targets"  # regressors come with the models capability


def test_one_run_equals_many_runs_with_the_state_round_tripped(scfg):
    def scenario() -> Scenario:
        sc = world(scfg, until=T0 + 6 * H)
        rng = np.random.default_rng(7)
        t = T0
        while t < T0 + 6 * H:  # a random walk on ETH and PEPE, setups every 20 minutes
            for s, p0 in (("ETH", 100.0), ("PEPE", 1.0)):
                o = p0 * (1 + rng.normal(0, 0.01))
                c = o * (1 + rng.normal(0, 0.01))
                sc.bar(s, t, o, max(o, c) * 1.004, min(o, c) * 0.996, c)
            t += MIN
        for k in range(0, 6 * 12, 4):
            sc.signal(T0 + k * 5 * MIN, Strategy.DCA, "PEPE", value=-0.035 - 0.002 * (k % 3), kind="feature")
            sc.signal(T0 + k * 5 * MIN, Strategy.SWING, "ETH", value=0.02)
        return sc

    one = scenario()
    one.run(T0, T0 + 6 * H)
    many = scenario()
    t = T0
    while t < T0 + 6 * H:
        many.run(t, min(t + 35 * MIN, T0 + 6 * H))
        many.state = EngineState.from_json(many.state.to_json())
        t += 35 * MIN
    pd.testing.assert_frame_equal(decisions(one), decisions(many), check_exact=True)
    pd.testing.assert_frame_equal(exits(one), exits(many), check_exact=True)
    assert one.state.to_json() == many.state.to_json()
    assert len(exits(one)) > 10 and math.isfinite(exits(one)["pnl_usd"].dropna().sum())


def assert_champions_reproduce(decisions: pd.DataFrame, exits_: pd.DataFrame, ledger: pd.DataFrame) -> int:
    """SPEC I-15: every real trade's CHAMPION shadow (of its TAKE) has the real exit time, reason, P&L and pnl_pct,
    bit for bit, unless a strategy shift, a manual or a no-data close ended the real trade. Returns the trades
    compared."""
    sells = ledger[ledger["side"] == "SELL"]
    champ = decisions[(decisions["variation"] == "CHAMPION") & decisions["production_take"]]
    m = champ[["shadow_id", "scan_id"]].merge(exits_, on=["shadow_id", "scan_id"], how="left").merge(
        sells[["scan_id", "bar_time", "exit_reason", "pnl_usd", "pnl_pct", "no_data"]], on="scan_id",
        suffixes=("", "_real"))
    own = ~m["exit_reason_real"].str.startswith("strategy_shift") & (m["exit_reason_real"] != "manual") & \
        ~m["no_data_real"].fillna(False).astype(bool)
    same = m[own]
    assert same["exit_time"].notna().all(), "a real trade closed by its own exit whose CHAMPION shadow is open"
    for col, real in (("exit_time", "bar_time"), ("exit_reason", "exit_reason_real"), ("pnl_usd", "pnl_usd_real"),
                      ("pnl_pct", "pnl_pct_real")):
        bad = same[same[col] != same[real]]
        assert bad.empty, f"CHAMPION differs from the real trade in {col}: {bad[['shadow_id', col, real]].head(3)}"
    return len(same)


@pytest.mark.parametrize("minutes", [7, 0, 25])
def test_evaluation_grid_must_be_whole_cycle_points_dividing_a_day(base_raw, minutes):
    from cryptotracker_assets.core.config import ConfigError

    with pytest.raises(ConfigError, match="shadow.evaluate_every_min"):
        make_cfg(base_raw, {"shadow": {"evaluate_every_min": minutes}})
