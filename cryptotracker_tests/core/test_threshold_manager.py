"""Recommendations (SPEC §10.4, I-16), the threshold manager's step (§10.5) and its safety gates.

The config values the tests depend on are pinned (``PINNED``); every expected value is worked out by hand from the
rules (arithmetic in the comments). The planted-edge and no-edge tests run the analyzer on generated shadow tables
(:func:`~cryptotracker_tests.core.test_shadow_analyzer.synthetic_outcomes`).
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from cryptotracker_assets.core.config import build_config, merge, raw_dict
from cryptotracker_assets.core.regime import Regime
from cryptotracker_assets.core.shadows.analyzer import EvidenceTier, analyze
from cryptotracker_assets.core.shadows.recommend import (
    Proposal,
    Recommendation,
    fresh,
    propose,
    quota_ok,
    recommend,
    recommendable,
    regime_stable,
    step_value,
)

from .test_shadow_analyzer import PINNED as ANALYZER_PINNED
from .test_shadow_analyzer import VARIATIONS, full_plan, synthetic_outcomes

PINNED = {
    "engine": {"cycle_min": 5},
    "exits": {"tp_multiplier": {"dca": 1.0, "swing": 1.0, "channel": 1.0}},
    "strategies": {"dca": {"drop_threshold": {"large_cap": -0.0175, "mid_cap": -0.025, "small_cap": -0.03,
                                              "memecoin": -0.04}}},
    "ml": {"confidence_threshold": {"dca": 0.60, "swing": 0.65, "channel": 0.60}},
    "shadow": {"variations": {"quick_exits": {"tp_multiplier": 0.8}}},
    "threshold_manager": {"tier_multiplier": {"high": 1.0, "medium": 0.5, "low": 0.25}, "min_abs_change": 0.001,
                          "min_rel_change": 0.01, "max_applied_per_utc_day": 3, "regime_stable_h": 12.0,
                          "proposal_ttl_h": 24.0,
                          "params": {"confidence_threshold": {"max_rel": 0.05, "min": 0.50, "max": 0.70},
                                     "dca_drop_threshold": {"max_rel": 0.20, "min": 0.015, "max": 0.10},
                                     "tp_multiplier": {"max_rel": 0.15, "min": 0.5, "max": 1.5}}},
}
T = pd.Timestamp("2025-03-10T12:00:00Z")
ALL_CHAMPIONS = {"DCA", "SWING", "CHANNEL"}
DROP_KEYS = [f"strategies.dca.drop_threshold.{t}" for t in ("large_cap", "mid_cap", "small_cap", "memecoin")]


@pytest.fixture(scope="module")
def tcfg(cfg):
    return build_config(merge(merge(raw_dict(cfg), ANALYZER_PINNED), PINNED), source="test")


def perf_rows(rows, window_h=72.0):
    """A hand-made shadow_performance table: rows (strategy, variation, tier, outperformance), CHAMPION added."""
    out = []
    for s in {r[0] for r in rows}:
        out.append({"window_h": window_h, "strategy": s, "variation": "CHAMPION", "trades": 200, "win_rate": 0.45,
                    "size_weighted_return": 0.001, "outperformance": 0.0, "p_z": 1.0, "p_z_holm": 1.0,
                    "p_welch": 1.0, "tier": "INSUFFICIENT"})
    for s, v, tier, outp in rows:
        out.append({"window_h": window_h, "strategy": s, "variation": v, "trades": 150, "win_rate": 0.45 + outp,
                    "size_weighted_return": 0.004, "outperformance": outp, "p_z": 0.001, "p_z_holm": 0.004,
                    "p_welch": 0.01, "tier": tier})
    return pd.DataFrame(out)


# --- recommendations from generated shadow tables ---------------------------------------------------------------------


def _planted(rng, tcfg, strategy, variation):
    """Every variation of the three strategies at the champion's 45 % (random), except CHAMPION of ``strategy`` at
    exactly 180 of 400 and ``variation`` at exactly 240 of 400 inside the recommendation window."""
    plan = [(s, v, 400 if (s, v) in ((strategy, "CHAMPION"), (strategy, variation)) else int(rng.integers(100, 401)),
             (240 if v == variation else 180) if s == strategy and v in ("CHAMPION", variation) else 0.45)
            for s, vs in VARIATIONS.items() for v in vs]
    return synthetic_outcomes(rng, T, tcfg, plan, pending_share=0.0, expired_share=0.0)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_planted_quick_exits_edge_is_recommended_medium_or_better(tcfg, seed):
    df = _planted(np.random.default_rng(seed), tcfg, "SWING", "QUICK_EXITS")
    recs = recommend(analyze(df, T, tcfg), tcfg, ALL_CHAMPIONS)
    mine = [r for r in recs if (r.strategy, r.variation) == ("SWING", "QUICK_EXITS")]
    assert len(mine) == 1, recs
    rec = mine[0]
    assert rec.tier.rank >= EvidenceTier.MEDIUM.rank
    assert rec.outperformance == pytest.approx(0.15)
    assert rec.parameter == "tp_multiplier"
    assert rec.changes == (("exits.tp_multiplier.swing", 1.0, 0.8),)
    assert rec.evidence["trades"] == 400 and rec.evidence["champion_trades"] == 400
    assert rec.evidence["win_rate"] == pytest.approx(0.6) and rec.evidence["champion_win_rate"] == pytest.approx(0.45)
    assert rec.evidence["window_h"] == 72.0 and rec.p_value == rec.evidence["p_z_holm"] <= 0.05
    assert {"p_z", "p_welch", "size_weighted_return", "champion_size_weighted_return"} <= set(rec.evidence)


@pytest.mark.parametrize("seed", [4, 5])
def test_planted_dca_drops_edge_is_recommended_for_all_four_tiers(tcfg, seed):
    df = _planted(np.random.default_rng(seed), tcfg, "DCA", "DCA_DROPS_0.04")
    recs = recommend(analyze(df, T, tcfg), tcfg, ALL_CHAMPIONS)
    mine = [r for r in recs if r.variation == "DCA_DROPS_0.04"]
    assert len(mine) == 1, recs
    rec = mine[0]
    assert rec.strategy == "DCA" and rec.tier.rank >= EvidenceTier.LOW.rank
    assert rec.parameter == "dca_drop_threshold"
    assert rec.changes == tuple(zip(DROP_KEYS, (-0.0175, -0.025, -0.03, -0.04), (-0.04,) * 4))


def _wilson(k, n, z):
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def test_no_edge_rarely_recommends(tcfg):
    # 200 seeds; every variation of every strategy draws from the champion's distribution (45 % wins, the same
    # returns), 100–400 takes each inside the recommendation window plus older ones; every strategy has a champion,
    # so every recommendable variation can be recommended.
    start, cpu = time.perf_counter(), time.process_time()
    seeds = 200
    any_rec = any_medium = 0
    for seed in range(seeds):
        rng = np.random.default_rng(10_000 + seed)
        recs = recommend(analyze(synthetic_outcomes(rng, T, tcfg, full_plan(rng)), T, tcfg), tcfg, ALL_CHAMPIONS)
        any_rec += bool(recs)
        any_medium += any(r.tier.rank >= EvidenceTier.MEDIUM.rank for r in recs)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    z = float(sps.norm.ppf(0.975))
    lo1, hi1 = _wilson(any_rec, seeds, z)
    lo2, hi2 = _wilson(any_medium, seeds, z)
    print(f"\nno edge, {seeds} seeds in {elapsed:.1f} s ({cpu:.1f} s CPU): any recommendation {any_rec / seeds:.3f} "
          f"(95 % Wilson {lo1:.3f}–{hi1:.3f}); any MEDIUM or better {any_medium / seeds:.3f} "
          f"(95 % Wilson {lo2:.3f}–{hi2:.3f})")
    assert any_rec / seeds <= 0.10
    assert any_medium / seeds <= 0.05
    assert cpu <= 30.0  # CPU time: the bound holds when other tests share the cores


# --- recommendation rules on hand-made performance tables ------------------------------------------------------------


def test_report_only_variations_never_recommend(tcfg):
    rows = [(s, v, "HIGH", 0.3) for s in ("DCA", "SWING", "CHANNEL")
            for v in ("BEAR_MARKET", "BULL_MARKET", "ML_TRUST", "VOLATILITY_SIZED")]
    assert recommend(perf_rows(rows), tcfg, ALL_CHAMPIONS) == []
    for v in ("CHAMPION", "BEAR_MARKET", "BULL_MARKET", "ML_TRUST", "VOLATILITY_SIZED"):
        assert recommendable(v, "DCA", ALL_CHAMPIONS, tcfg) is None
    with pytest.raises(ValueError, match="unknown variation"):
        recommendable("MOON_SHOT", "DCA", ALL_CHAMPIONS, tcfg)


def test_report_only_edge_through_the_analyzer_is_not_recommended(tcfg):
    rng = np.random.default_rng(99)
    plan = [("DCA", "CHAMPION", 400, 180), ("DCA", "BEAR_MARKET", 400, 260), ("DCA", "VOLATILITY_SIZED", 400, 260),
            ("DCA", "ML_TRUST", 400, 260), ("DCA", "BULL_MARKET", 400, 260)]
    perf = analyze(synthetic_outcomes(rng, T, tcfg, plan, pending_share=0.0, expired_share=0.0), T, tcfg)
    assert (perf[(perf["window_h"] == 72.0) & (perf["strategy"] == "DCA")
                 & (perf["variation"] != "CHAMPION")]["tier"] == "HIGH").all()
    assert recommend(perf, tcfg, ALL_CHAMPIONS) == []


def test_minimum_tiers_and_champion_strategies(tcfg):
    rows = [("DCA", "CONFIDENCE_TEST_0.62", "LOW", 0.2), ("SWING", "CONFIDENCE_TEST_0.55", "MEDIUM", 0.06),
            ("CHANNEL", "CONFIDENCE_TEST_0.58", "HIGH", 0.2), ("DCA", "QUICK_EXITS", "LOW", 0.2),
            ("SWING", "QUICK_EXITS", "MEDIUM", 0.05), ("DCA", "DCA_DROPS_0.05", "LOW", 0.03)]
    recs = recommend(perf_rows(rows), tcfg, {"SWING"})  # only SWING has a champion
    got = {(r.strategy, r.variation): r for r in recs}
    # LOW is below MEDIUM for CONFIDENCE_TEST and QUICK_EXITS; CHANNEL has no champion; DCA_DROPS needs only LOW.
    assert set(got) == {("SWING", "CONFIDENCE_TEST_0.55"), ("SWING", "QUICK_EXITS"), ("DCA", "DCA_DROPS_0.05")}
    assert got[("SWING", "CONFIDENCE_TEST_0.55")].changes == (("ml.confidence_threshold.swing", 0.65, 0.55),)
    assert got[("DCA", "DCA_DROPS_0.05")].changes == tuple(zip(DROP_KEYS, (-0.0175, -0.025, -0.03, -0.04),
                                                               (-0.05,) * 4))
    # Ordered by tier, then outperformance: MEDIUM 0.06, MEDIUM 0.05, LOW.
    assert [r.variation for r in recs] == ["CONFIDENCE_TEST_0.55", "QUICK_EXITS", "DCA_DROPS_0.05"]


def test_outperformance_must_be_positive_and_only_strategy_rows_of_the_window_count(tcfg):
    rows = perf_rows([("DCA", "QUICK_EXITS", "HIGH", 0.0), ("SWING", "QUICK_EXITS", "HIGH", -0.1)])
    other = perf_rows([("DCA", "QUICK_EXITS", "HIGH", 0.2)], window_h=168.0)
    pooled = perf_rows([("DCA", "QUICK_EXITS", "HIGH", 0.2)]).assign(strategy="ALL")
    assert recommend(pd.concat([rows, other, pooled]), tcfg, ALL_CHAMPIONS) == []


def test_one_per_parameter_key_then_top_n(tcfg):
    rows = [("DCA", "CONFIDENCE_TEST_0.55", "MEDIUM", 0.09), ("DCA", "CONFIDENCE_TEST_0.58", "HIGH", 0.06),
            ("DCA", "CONFIDENCE_TEST_0.62", "HIGH", 0.06), ("DCA", "DCA_DROPS_0.03", "LOW", 0.05),
            ("DCA", "DCA_DROPS_0.05", "MEDIUM", 0.04), ("SWING", "CONFIDENCE_TEST_0.6", "MEDIUM", 0.12),
            ("CHANNEL", "QUICK_EXITS", "HIGH", 0.11), ("DCA", "QUICK_EXITS", "MEDIUM", 0.2)]
    recs = recommend(perf_rows(rows), tcfg, ALL_CHAMPIONS)
    # Per key: ml.confidence_threshold.dca → the HIGH ones beat the MEDIUM one, tie at 0.06 broken by name (0.58);
    # the DCA drop keys → DCA_DROPS_0.05 (MEDIUM beats LOW). Then the top 3 of: CHANNEL QE HIGH 0.11, DCA CT_0.58 HIGH
    # 0.06, DCA QE MEDIUM 0.2, SWING CT_0.6 MEDIUM 0.12, DCA_DROPS_0.05 MEDIUM 0.04.
    assert [(r.strategy, r.variation) for r in recs] == [("CHANNEL", "QUICK_EXITS"), ("DCA", "CONFIDENCE_TEST_0.58"),
                                                         ("DCA", "QUICK_EXITS")]
    assert all(isinstance(r, Recommendation) for r in recs)


# --- step_value -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cur,rec,tier,want", [
    (0.60, 0.62, "HIGH", 0.62),  # (0.62 − 0.60)·1 = 0.02 ≤ cap 0.60·0.05 = 0.03
    (0.60, 0.62, "MEDIUM", 0.61),  # ·0.5
    (0.60, 0.62, "LOW", None),  # ·0.25 = 0.005: 0.005/0.60 = 0.0083 < min_rel 0.01 → dropped
    (0.60, 0.70, "HIGH", 0.63),  # 0.10 clamped to the max_rel cap 0.03
    (0.60, 0.50, "HIGH", 0.57),  # −0.10 clamped to −0.03
    (0.69, 0.75, "HIGH", 0.70),  # 0.69 + 0.0345 = 0.7245 → max 0.70
    (0.51, 0.40, "HIGH", 0.50),  # 0.51 − 0.0255 = 0.4845 → min 0.50
    (0.70, 0.75, "HIGH", None),  # already at the max: Δ 0 → dropped
])
def test_step_confidence_threshold(tcfg, cur, rec, tier, want):
    got = step_value("confidence_threshold", cur, rec, tier, tcfg)
    assert got == (None if want is None else pytest.approx(want, abs=1e-12))


@pytest.mark.parametrize("cur,rec,tier,want", [
    (0.5, 0.505, "HIGH", 0.505),  # Δ/|cur| = 0.005/0.5 = 0.01 = min_rel: equal is kept
    (0.5, 0.5049, "HIGH", None),  # 0.0098 < 0.01 → dropped
    (1.0, 0.8, "MEDIUM", 0.9),  # −0.1 ≤ cap 0.15
    (1.0, 0.8, "HIGH", 0.85),  # −0.2 clamped to −0.15
    (1.0, 0.8, "LOW", 0.95),
    (0.55, 0.3, "HIGH", 0.5),  # 0.55 − 0.0825 = 0.4675 → min 0.5
])
def test_step_tp_multiplier(tcfg, cur, rec, tier, want):
    got = step_value("tp_multiplier", cur, rec, tier, tcfg)
    assert got == (None if want is None else pytest.approx(want, abs=1e-12))


@pytest.mark.parametrize("cur,rec,tier,want", [
    (-0.025, -0.04, "MEDIUM", -0.030),  # magnitudes: (0.04 − 0.025)·0.5 = 0.0075 → cap 0.025·0.2 = 0.005 → 0.030
    (-0.025, -0.03, "LOW", -0.02625),  # 0.005·0.25 = 0.00125 ≥ min_abs 0.001; rel 0.05
    (-0.02, -0.022, "LOW", None),  # 0.0005 < min_abs 0.001 (rel 0.025 would pass) → dropped
    (-0.095, -0.20, "HIGH", -0.10),  # 0.095 + cap 0.019 = 0.114 → magnitude max 0.10
    (-0.0175, -0.005, "HIGH", -0.015),  # 0.0175 − cap 0.0035 = 0.014 → magnitude min 0.015
    (-0.04, -0.03, "HIGH", -0.032),  # smaller magnitude: 0.04 − cap 0.008
])
def test_step_dca_drop_threshold_on_magnitudes_keeps_the_sign(tcfg, cur, rec, tier, want):
    got = step_value("dca_drop_threshold", cur, rec, tier, tcfg)
    assert got == (None if want is None else pytest.approx(want, abs=1e-12))
    assert got is None or got < 0


def test_step_min_abs_equality_is_kept(tcfg):
    pinned = build_config(merge(raw_dict(tcfg), {"threshold_manager": {"min_abs_change": 0.01}}), source="test")
    assert step_value("confidence_threshold", 0.60, 0.62, "MEDIUM", pinned) == pytest.approx(0.61)  # Δ = 0.01
    assert step_value("confidence_threshold", 0.60, 0.619, "MEDIUM", pinned) is None  # Δ = 0.0095


def test_step_rejects_bad_inputs(tcfg):
    with pytest.raises(ValueError, match="INSUFFICIENT"):
        step_value("tp_multiplier", 1.0, 0.8, "INSUFFICIENT", tcfg)
    with pytest.raises(ValueError, match="unknown parameter"):
        step_value("stop_loss", 0.05, 0.06, "HIGH", tcfg)
    with pytest.raises(ValueError, match="drops"):
        step_value("dca_drop_threshold", 0.03, -0.04, "HIGH", tcfg)
    with pytest.raises(ValueError):
        step_value("tp_multiplier", 1.0, 0.8, "BEST", tcfg)


def _rec(parameter, changes, tier):
    return Recommendation(strategy="DCA", variation="V", tier=EvidenceTier(tier), outperformance=0.1, p_value=0.01,
                          trades=100, parameter=parameter, changes=changes, evidence={"window_h": 72.0})


def test_propose_moves_all_keys_together_and_leaves_out_dropped_ones(tcfg):
    rec = _rec("dca_drop_threshold", tuple(zip(DROP_KEYS, (-0.0175, -0.025, -0.03, -0.04), (-0.03,) * 4)), "LOW")
    prop = propose(rec, tcfg)
    assert isinstance(prop, Proposal)
    # large 0.0175 + (0.03 − 0.0175)·0.25 = 0.020625 (cap 0.0035); mid 0.025 + 0.00125; small: Δ 0 → left out;
    # memecoin 0.04 − 0.0025 = 0.0375.
    want = [(DROP_KEYS[0], -0.0175, -0.020625, -0.03), (DROP_KEYS[1], -0.025, -0.02625, -0.03),
            (DROP_KEYS[3], -0.04, -0.0375, -0.03)]
    assert [k for k, *_ in prop.changes] == [k for k, *_ in want]
    for (k, old, new, target), (_, o2, n2, t2) in zip(prop.changes, want):
        assert (old, target) == (o2, t2) and new == pytest.approx(n2, abs=1e-12)
    assert (prop.strategy, prop.variation, prop.tier, prop.parameter) == ("DCA", "V", EvidenceTier.LOW,
                                                                          "dca_drop_threshold")
    assert prop.evidence == {"window_h": 72.0}


def test_propose_is_dropped_when_every_change_is_dropped(tcfg):
    assert propose(_rec("tp_multiplier", (("exits.tp_multiplier.dca", 1.0, 1.004),), "HIGH"), tcfg) is None
    assert propose(_rec("dca_drop_threshold", tuple(zip(DROP_KEYS, (-0.03,) * 4, (-0.03,) * 4)), "HIGH"),
                   tcfg) is None


def test_recommendation_to_proposal_end_to_end(tcfg):
    recs = recommend(perf_rows([("SWING", "QUICK_EXITS", "MEDIUM", 0.08)]), tcfg, ALL_CHAMPIONS)
    prop = propose(recs[0], tcfg)
    assert prop.changes == (("exits.tp_multiplier.swing", 1.0, pytest.approx(0.9), 0.8),)  # (0.8 − 1)·0.5


# --- safety gates -----------------------------------------------------------------------------------------------------


def _regimes(at, values, start_h=12.0):
    idx = pd.date_range(at - pd.Timedelta(hours=start_h) + pd.Timedelta(minutes=5), at, freq="5min")
    vals = values if isinstance(values, list) else [values] * len(idx)
    return pd.Series(vals, index=idx)


def test_regime_stable(tcfg):
    at = pd.Timestamp("2025-03-10T12:00:00Z")
    s = _regimes(at, "NORMAL")
    assert len(s) == 144  # (at − 12 h, at] every 5 min
    assert regime_stable(s, at, tcfg) is None
    assert regime_stable(_regimes(at, Regime.CAUTION), at, tcfg) is None  # enum values are regimes too
    assert regime_stable(_regimes(at, "NORMAL", start_h=48.0), at, tcfg) is None  # older history is ignored
    changed = s.copy()
    changed.iloc[100] = "CAUTION"
    reason = regime_stable(changed, at, tcfg)
    assert reason and "not stable" in reason and changed.index[100].isoformat() in reason
    # A change just before the span does not count: at − 12 h itself is outside (at − 12 h, at].
    older = pd.concat([pd.Series(["PANIC"], index=[at - pd.Timedelta(hours=12)]), s])
    assert regime_stable(older, at, tcfg) is None


def test_regime_stable_refuses_missing_history(tcfg):
    at = pd.Timestamp("2025-03-10T12:00:00Z")
    s = _regimes(at, "NORMAL")
    reason = regime_stable(s.iloc[1:], at, tcfg)  # the first cycle point of the span is missing
    assert reason and "incomplete" in reason and "1 of 144" in reason
    assert "incomplete" in regime_stable(s.drop(s.index[50]), at, tcfg)
    unknown = s.copy()
    unknown.iloc[-1] = "UNKNOWN"
    assert "incomplete" in regime_stable(unknown, at, tcfg)
    assert "144 of 144" in regime_stable(pd.Series([], dtype=object, index=pd.DatetimeIndex([], tz="UTC")), at, tcfg)
    with pytest.raises(ValueError, match="UTC"):
        regime_stable(s.tz_localize(None), at, tcfg)


def test_quota(tcfg):
    at = pd.Timestamp("2025-03-10T15:00:00Z")
    day = pd.Timestamp("2025-03-10T00:00:00Z")
    two = [day, day + pd.Timedelta(hours=9)]
    assert quota_ok(two, at, tcfg) is None
    reason = quota_ok(two + [at - pd.Timedelta(minutes=1)], at, tcfg)
    assert reason and "3" in reason and "2025-03-10" in reason
    yesterday = [day - pd.Timedelta(minutes=1)] * 5  # 23:59 the day before: another UTC day
    assert quota_ok(yesterday + two, at, tcfg) is None
    assert quota_ok([], at, tcfg) is None


def test_fresh(tcfg):
    created = pd.Timestamp("2025-03-10T02:00:00Z")
    assert fresh(created, created + pd.Timedelta(hours=23, minutes=59), tcfg) is None
    reason = fresh(created, created + pd.Timedelta(hours=24), tcfg)  # at the TTL: no longer younger
    assert reason and reason.startswith("EXPIRED: ")
    assert fresh(created, created + pd.Timedelta(days=3), tcfg).startswith("EXPIRED: ")
    with pytest.raises(ValueError):
        fresh(created, created - pd.Timedelta(hours=1), tcfg)
