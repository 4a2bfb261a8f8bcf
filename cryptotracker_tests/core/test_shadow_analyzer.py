"""The shadow analyzer (SPEC §10.3, I-16) and its leaderboard.

The config values the tests depend on are pinned (``PINNED``). Expectations are hand-computed small tables (the
arithmetic is in the comments), the standard library (``statistics.stdev`` is ddof 1), statsmodels for the tests and
Holm, or a plain pandas re-implementation — never the analyzer against itself. :func:`synthetic_outcomes` generates
realistic shadow tables for this module and the threshold-manager tests.
"""

from __future__ import annotations

import math
import statistics
import time

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportions_ztest

from cryptotracker_assets.core.config import build_config, merge, raw_dict
from cryptotracker_assets.core.shadows.analyzer import (
    LEADERBOARD_COLUMNS,
    OUTCOME_COLUMNS,
    PERFORMANCE_COLUMNS,
    EvidenceTier,
    analyze,
    leaderboard,
    tier_of,
)

PINNED = {
    "exits": {"max_hold_h": 72.0},
    "shadow": {"windows_h": [24.0, 72.0, 168.0, 720.0], "min_outcomes": 10, "min_trades_for_test": 30,
               "recommendation_window_h": 72.0, "max_recommendations": 3,
               "tiers": {"high": {"min_trades": 100, "min_outperformance": 0.10, "max_p": 0.01, "min_window_d": 3.0},
                         "medium": {"min_trades": 50, "min_outperformance": 0.05, "max_p": 0.05, "min_window_d": 2.0},
                         "low": {"min_trades": 30, "min_outperformance": 0.03, "max_p": 0.10, "min_window_d": 1.0}}},
}
T = pd.Timestamp("2025-03-10T12:00:00Z")
H = pd.Timedelta(hours=1)
END = T - 72 * H  # t − max_hold_h: the end (excluded) of every window

VARIATIONS = {
    "DCA": ["CHAMPION", "BEAR_MARKET", "BULL_MARKET", "ML_TRUST", "QUICK_EXITS", "DCA_DROPS_0.03", "DCA_DROPS_0.04",
            "DCA_DROPS_0.05", "CONFIDENCE_TEST_0.55", "CONFIDENCE_TEST_0.58", "CONFIDENCE_TEST_0.6",
            "CONFIDENCE_TEST_0.62", "VOLATILITY_SIZED"],
    "SWING": ["CHAMPION", "BEAR_MARKET", "BULL_MARKET", "ML_TRUST", "QUICK_EXITS", "CONFIDENCE_TEST_0.55",
              "CONFIDENCE_TEST_0.58", "CONFIDENCE_TEST_0.6", "CONFIDENCE_TEST_0.62", "VOLATILITY_SIZED"],
}
VARIATIONS["CHANNEL"] = list(VARIATIONS["SWING"])


@pytest.fixture(scope="module")
def acfg(cfg):
    return build_config(merge(raw_dict(cfg), PINNED), source="test")


# --- tables -----------------------------------------------------------------------------------------------------------


def take(shadow_id, strategy="DCA", variation="CHAMPION", entry=None, exit_=None, pnl_pct=0.01, size=50.0,
         outcome=None, hold_h=None):
    """One shadow take; entry defaults to 12 h before the window end, exit 1 h after entry."""
    entry = END - 12 * H if entry is None else entry
    exit_ = (entry + H) if exit_ is None else exit_
    if outcome is None:
        outcome = "WIN" if pnl_pct > 0 else "LOSS"
    pending = outcome == "PENDING"
    return {"shadow_id": shadow_id, "scan_id": shadow_id.rsplit("_", 1)[0], "strategy": strategy,
            "symbol": "BTC", "variation": variation, "entry_time": entry, "exit_time": pd.NaT if pending else exit_,
            "outcome": outcome, "pnl_usd": np.nan if pending else pnl_pct * size,
            "pnl_pct": np.nan if pending else pnl_pct, "size_usd": size,
            "hold_h": np.nan if pending else (exit_ - entry) / H if hold_h is None else hold_h}


def frame(rows):
    df = pd.DataFrame(rows, columns=list(OUTCOME_COLUMNS))
    for col in ("entry_time", "exit_time"):
        df[col] = pd.to_datetime(df[col], utc=True)
    return df


def block(prefix, n, wins, strategy="DCA", variation="CHAMPION", entry=None, win_pct=0.02, loss_pct=-0.01):
    """n completed takes of which the first ``wins`` win (+win_pct) and the rest lose (loss_pct)."""
    return [take(f"{prefix}_{i:04d}", strategy, variation, entry=entry, pnl_pct=win_pct if i < wins else loss_pct)
            for i in range(n)]


def row(perf, window_h, strategy, variation):
    sel = perf[(perf["window_h"] == window_h) & (perf["strategy"] == strategy) & (perf["variation"] == variation)]
    assert len(sel) == 1, (window_h, strategy, variation, len(sel))
    return sel.iloc[0]


def synthetic_outcomes(rng, t, cfg, plan, older_share=0.5, pending_share=0.01, expired_share=0.02):
    """A realistic shadow table. ``plan``: (strategy, variation, n, wins) with n takes entering inside the
    recommendation window at ``t`` (uniform in [t − h − W, t − h)), ``wins`` an exact win count (int) or a win
    probability (float); plus ``older_share``·n older takes spread over the rest of the longest window, a few PENDING
    and a few expired (NaT entry). Win pnl_pct ~ U(0.002, 0.05), loss ~ −U(0, 0.05); ~10 % TIMEOUT (by sign)."""
    h = cfg.exits.max_hold_h
    end = t - pd.Timedelta(hours=h)
    w_rec = cfg.shadow.recommendation_window_h
    w_max = max(cfg.shadow.windows_h)
    cols = {c: [] for c in ("strategy", "variation", "entry_ns", "win", "kind")}
    for strategy, variation, n, wins in plan:
        n_old = int(round(older_share * n))
        if isinstance(wins, (int, np.integer)):
            win = np.zeros(n, dtype=bool)
            win[rng.choice(n, size=int(wins), replace=False)] = True
        else:
            win = rng.random(n) < wins
        p_old = wins / n if isinstance(wins, (int, np.integer)) else wins
        off = np.concatenate([rng.uniform(0, w_rec, n), rng.uniform(w_rec, w_max, n_old)])  # hours before the end
        cols["entry_ns"].append(end.value - (off * 3.6e12).astype("int64") - 1)  # strictly before the end
        cols["win"].append(np.concatenate([win, rng.random(n_old) < p_old]))
        kind = rng.random(n + n_old)
        cols["kind"].append(np.where(kind < pending_share, 1, np.where(kind < pending_share + expired_share, 2, 0)))
        cols["strategy"].append(np.full(n + n_old, strategy, dtype=object))
        cols["variation"].append(np.full(n + n_old, variation, dtype=object))
    strategy = np.concatenate(cols["strategy"])
    variation = np.concatenate(cols["variation"])
    entry_ns = np.concatenate(cols["entry_ns"])
    win = np.concatenate(cols["win"])
    kind = np.concatenate(cols["kind"])
    m = len(win)
    pct = np.where(win, rng.uniform(0.002, 0.05, m), -rng.uniform(0.0, 0.05, m))
    size = np.where(variation == "VOLATILITY_SIZED", rng.choice([25.0, 50.0, 75.0], m), 50.0)
    hold = rng.uniform(0.1, h, m)
    timeout = rng.random(m) < 0.10
    outcome = np.where(timeout, "TIMEOUT", np.where(pct > 0, "WIN", "LOSS")).astype(object)
    outcome[kind == 1] = "PENDING"
    entry = pd.to_datetime(entry_ns, utc=True)
    exit_ = entry + pd.to_timedelta(hold, unit="h")
    df = pd.DataFrame({"shadow_id": np.char.add("s", np.arange(m).astype(str)).astype(object),
                       "scan_id": np.char.add("c", np.arange(m).astype(str)).astype(object), "strategy": strategy,
                       "symbol": "BTC", "variation": variation, "entry_time": entry, "exit_time": exit_,
                       "outcome": outcome, "pnl_usd": pct * size, "pnl_pct": pct, "size_usd": size, "hold_h": hold})
    pend = kind == 1
    df.loc[pend, ["pnl_usd", "pnl_pct", "hold_h"]] = np.nan
    df.loc[pend, "exit_time"] = pd.NaT
    df.loc[kind == 2, ["entry_time", "exit_time"]] = pd.NaT
    df.loc[kind == 2, ["pnl_usd", "pnl_pct", "hold_h"]] = np.nan
    df.loc[kind == 2, "outcome"] = "PENDING"
    return df


def full_plan(rng, lo=100, hi=400, p=0.45):
    return [(s, v, int(rng.integers(lo, hi + 1)), p) for s, vs in VARIATIONS.items() for v in vs]


# --- windows ----------------------------------------------------------------------------------------------------------


def test_window_membership_boundaries(acfg):
    rows = block("DCA_BTC_0001", 10, 5, entry=END - 12 * H)
    rows += [take("at_start_24", entry=END - 24 * H),  # exactly t − h − 24 h: in the 24 h window
             take("before_start_24", entry=END - 24 * H - pd.Timedelta(seconds=1)),  # only from 72 h on
             take("at_end", entry=END),  # exactly t − h: max hold not elapsed, in no window
             take("just_before_end", entry=END - pd.Timedelta(seconds=1)),
             take("expired", entry=pd.NaT, exit_=pd.NaT, outcome="PENDING")]  # entry order expired: ignored
    perf = analyze(frame(rows), T, acfg)
    assert row(perf, 24.0, "DCA", "CHAMPION")["trades"] == 12  # 10 + at_start_24 + just_before_end
    assert row(perf, 72.0, "DCA", "CHAMPION")["trades"] == 13  # + before_start_24
    assert row(perf, 720.0, "DCA", "CHAMPION")["trades"] == 13  # at_end never
    assert (perf["pending"] == 0).all()  # the expired take is not a pending one


def test_window_is_anchored_at_t_minus_max_hold(acfg):
    # An entry 1 h before t is recent: its max hold has not elapsed, so it is in no window even if it has exited.
    rows = block("b", 10, 5, entry=T - 80 * H) + [take("recent_fast_exit", entry=T - H, exit_=T - 0.5 * H)]
    perf = analyze(frame(rows), T, acfg)
    assert row(perf, 24.0, "DCA", "CHAMPION")["trades"] == 10


# --- per strategy, ALL, INSUFFICIENT --------------------------------------------------------------------------------


def test_strategy_rows_use_only_their_shadows_and_all_pools(acfg):
    rows = block("d", 12, 12, "DCA", "QUICK_EXITS") + block("s", 20, 0, "SWING", "QUICK_EXITS")
    rows += block("dc", 12, 6, "DCA") + block("sc", 20, 10, "SWING")
    perf = analyze(frame(rows), T, acfg)
    assert row(perf, 24.0, "DCA", "QUICK_EXITS")[["trades", "win_rate"]].tolist() == [12, 1.0]
    assert row(perf, 24.0, "SWING", "QUICK_EXITS")[["trades", "win_rate"]].tolist() == [20, 0.0]
    pooled = row(perf, 24.0, "ALL", "QUICK_EXITS")
    assert pooled["trades"] == 32 and pooled["win_rate"] == pytest.approx(12 / 32)
    assert row(perf, 24.0, "ALL", "CHAMPION")["win_rate"] == pytest.approx(16 / 32)
    assert pooled["outperformance"] == pytest.approx(12 / 32 - 16 / 32)
    assert set(perf["strategy"]) == {"DCA", "SWING", "ALL"}  # no CHANNEL shadows: no CHANNEL rows
    assert list(perf.columns) == list(PERFORMANCE_COLUMNS)
    assert (perf["analyzed_at"] == T).all()


def test_insufficient_below_min_outcomes(acfg):
    rows = block("c", 40, 20) + block("v9", 9, 9, variation="QUICK_EXITS")
    rows += [take(f"p_{i}", variation="QUICK_EXITS", outcome="PENDING") for i in range(5)]
    rows += block("v10", 10, 10, variation="ML_TRUST")
    perf = analyze(frame(rows), T, acfg)
    nine = row(perf, 24.0, "DCA", "QUICK_EXITS")
    assert nine["trades"] == 9 and nine["pending"] == 5
    assert nine[["win_rate", "mean_pnl_pct", "total_pnl_usd", "size_weighted_return", "best_pnl_pct",
                 "worst_pnl_pct", "sharpe", "max_drawdown", "mean_hold_h", "outperformance"]].isna().all()
    assert nine["tier"] == "INSUFFICIENT" and nine["p_z"] == 1.0 and nine["p_z_holm"] == 1.0
    ten = row(perf, 24.0, "DCA", "ML_TRUST")
    assert ten["trades"] == 10 and ten["win_rate"] == 1.0 and ten["outperformance"] == pytest.approx(0.5)
    assert ten["p_z"] == 1.0  # 10 < min_trades_for_test: no test
    assert ten["tier"] == "INSUFFICIENT"


def test_champion_row_shown_even_without_takes_in_the_window(acfg):
    rows = block("old_c", 20, 10, entry=END - 100 * H) + block("v", 15, 8, variation="QUICK_EXITS")
    perf = analyze(frame(rows), T, acfg)
    champ = row(perf, 24.0, "DCA", "CHAMPION")
    assert champ["trades"] == 0 and pd.isna(champ["win_rate"])
    assert pd.isna(row(perf, 24.0, "DCA", "QUICK_EXITS")["outperformance"])  # no baseline in this window
    assert row(perf, 168.0, "DCA", "QUICK_EXITS")["outperformance"] == pytest.approx(8 / 15 - 0.5)


def test_timeout_counts_by_sign_and_zero_is_a_loss(acfg):
    rows = block("c", 10, 5)
    rows += [take(f"t{i}", variation="QUICK_EXITS", pnl_pct=p, outcome="TIMEOUT")
             for i, p in enumerate([0.01, -0.01, 0.0, 0.02, 0.0, 0.0, -0.03, 0.005, 0.0, 0.0])]
    assert row(analyze(frame(rows), T, acfg), 24.0, "DCA", "QUICK_EXITS")["win_rate"] == pytest.approx(0.3)


# --- metrics against hand-computed tables -----------------------------------------------------------------------------


def test_metrics_hand_computed(acfg):
    e = END - 20 * H
    # Exit order: x0 (−0.5, size 100) at e+1h, then a tie at e+2h broken by shadow_id: "a" (+1.5, size 50) before
    # "b" (−0.5, size 200); then seven flat takes (size 10) at e+3h…. Rows are listed out of order on purpose.
    rows = [take("v_b", variation="ML_TRUST", entry=e, exit_=e + 2 * H, pnl_pct=-0.5, size=200.0),
            take("v_a", variation="ML_TRUST", entry=e + 0.5 * H, exit_=e + 2 * H, pnl_pct=1.5, size=50.0),
            take("v_x0", variation="ML_TRUST", entry=e, exit_=e + H, pnl_pct=-0.5, size=100.0)]
    rows += [take(f"v_z{i}", variation="ML_TRUST", entry=e, exit_=e + (3 + i) * H, pnl_pct=0.0, size=10.0)
             for i in range(7)]
    rows += block("c", 10, 5)
    r = row(analyze(frame(rows), T, acfg), 24.0, "DCA", "ML_TRUST")
    # Equity 1 → 0.5 → 1.25 (a) → 0.625 (b) → flat: drawdowns 0.5, 0, 0.5 → max 0.5. (b before a would give 0.25
    # after two trades: 0.75.)
    assert r["max_drawdown"] == pytest.approx(0.5, abs=1e-12)
    # Σ pnl_usd = −50 + 75 − 100 + 0 = −75; Σ size = 100 + 50 + 200 + 70 = 420.
    assert r["size_weighted_return"] == pytest.approx(-75 / 420, rel=1e-12)
    assert r["total_pnl_usd"] == pytest.approx(-75.0)
    assert r["mean_pnl_pct"] == pytest.approx(0.05)  # (−0.5 + 1.5 − 0.5)/10: not the size-weighted return
    assert r["best_pnl_pct"] == 1.5 and r["worst_pnl_pct"] == -0.5
    assert r["win_rate"] == pytest.approx(0.1)
    pcts = [-0.5, 1.5, -0.5] + [0.0] * 7
    assert r["sharpe"] == pytest.approx(statistics.fmean(pcts) / statistics.stdev(pcts), rel=1e-12)  # ddof 1
    assert r["sharpe"] != pytest.approx(statistics.fmean(pcts) / statistics.pstdev(pcts), rel=1e-6)
    holds = [2.0, 1.5, 1.0] + [3.0 + i for i in range(7)]
    assert r["mean_hold_h"] == pytest.approx(statistics.fmean(holds))


def test_drawdown_from_the_starting_equity_and_zero_std_sharpe(acfg):
    rows = [take(f"v{i}", variation="ML_TRUST", exit_=END - 10 * H + i * H, pnl_pct=p)
            for i, p in enumerate([-0.1, 0.05, -0.1] + [0.01] * 7)]
    rows += [take(f"k{i}", variation="QUICK_EXITS", pnl_pct=0.02) for i in range(10)] + block("c", 10, 5)
    perf = analyze(frame(rows), T, acfg)
    # 1 → 0.9 (dd 0.1) → 0.945 → 0.8505 (dd 0.1495): the first loss draws down from the start at 1.
    assert row(perf, 24.0, "DCA", "ML_TRUST")["max_drawdown"] == pytest.approx(1 - 0.9 * 1.05 * 0.9, rel=1e-12)
    const = row(perf, 24.0, "DCA", "QUICK_EXITS")
    assert const["max_drawdown"] == 0.0 and pd.isna(const["sharpe"])  # std 0: Sharpe undefined


# --- tests and Holm families ------------------------------------------------------------------------------------------


def _holm_table():
    rows = block("dc", 100, 45) + block("da", 100, 60, variation="CONFIDENCE_TEST_0.55")
    rows += block("db", 100, 50, variation="QUICK_EXITS") + block("ds", 20, 15, variation="ML_TRUST")
    rows += block("sc", 100, 45, "SWING") + block("sa", 100, 62, "SWING", "QUICK_EXITS")
    return frame(rows)


def test_p_values_and_holm_families(acfg):
    perf = analyze(_holm_table(), T, acfg)

    def p(w1, n1, w2, n2):
        return float(proportions_ztest([w1, w2], [n1, n2])[1])

    # Strategy family of the window: DCA CONFIDENCE_TEST_0.55, DCA QUICK_EXITS, SWING QUICK_EXITS. ML_TRUST (20 < 30
    # completed) and CHAMPION do not test and are not members.
    fam = {("DCA", "CONFIDENCE_TEST_0.55"): p(60, 100, 45, 100), ("DCA", "QUICK_EXITS"): p(50, 100, 45, 100),
           ("SWING", "QUICK_EXITS"): p(62, 100, 45, 100)}
    adj = dict(zip(fam, multipletests(list(fam.values()), method="holm")[1]))
    # ALL family: each variation pooled over strategies against the pooled CHAMPION (90 of 200).
    fam_all = {"CONFIDENCE_TEST_0.55": p(60, 100, 90, 200), "QUICK_EXITS": p(112, 200, 90, 200)}
    adj_all = dict(zip(fam_all, multipletests(list(fam_all.values()), method="holm")[1]))
    for w in (24.0, 72.0):
        for (s, v), pz in fam.items():
            r = row(perf, w, s, v)
            assert r["p_z"] == pytest.approx(pz, rel=1e-9)
            assert r["p_z_holm"] == pytest.approx(adj[(s, v)], rel=1e-9)
        for v, pz in fam_all.items():
            r = row(perf, w, "ALL", v)
            assert r["p_z"] == pytest.approx(pz, rel=1e-9)
            assert r["p_z_holm"] == pytest.approx(adj_all[v], rel=1e-9)
        for s, v in (("DCA", "ML_TRUST"), ("ALL", "ML_TRUST"), ("DCA", "CHAMPION"), ("ALL", "CHAMPION")):
            assert row(perf, w, s, v)[["p_z", "p_welch", "p_z_holm"]].tolist() == [1.0, 1.0, 1.0]
    # Counting the non-testing rows as members (p = 1) would have changed the adjustment: the decision is visible.
    with_placeholders = multipletests(list(fam.values()) + [1.0, 1.0, 1.0], method="holm")[1][:3]
    assert not np.allclose(with_placeholders, list(adj.values()))


def test_welch_p_against_scipy_on_the_raw_returns(acfg):
    rng = np.random.default_rng(11)
    rows = [take(f"c{i}", pnl_pct=float(x)) for i, x in enumerate(rng.normal(0.0, 0.02, 60))]
    rows += [take(f"v{i}", variation="QUICK_EXITS", pnl_pct=float(x)) for i, x in enumerate(rng.normal(0.01, 0.03, 45))]
    df = frame(rows)
    r = row(analyze(df, T, acfg), 24.0, "DCA", "QUICK_EXITS")
    x = df.loc[df["variation"] == "QUICK_EXITS", "pnl_pct"]
    y = df.loc[df["variation"] == "CHAMPION", "pnl_pct"]
    assert r["p_welch"] == pytest.approx(float(sps.ttest_ind(x, y, equal_var=False).pvalue), rel=1e-9)
    wins_x, wins_y = int((x > 0).sum()), int((y > 0).sum())
    assert r["p_z"] == pytest.approx(float(proportions_ztest([wins_x, wins_y], [45, 60])[1]), rel=1e-9)


# --- tiers ------------------------------------------------------------------------------------------------------------


def test_tier_boundaries_equal_passes(acfg):
    H_, M, L, I = EvidenceTier.HIGH, EvidenceTier.MEDIUM, EvidenceTier.LOW, EvidenceTier.INSUFFICIENT
    assert tier_of(100, 0.10, 0.01, 72.0, acfg) is H_  # every HIGH bound met with equality
    assert tier_of(100, 0.6 - 0.5, 0.01, 72.0, acfg) is H_  # 0.0999…98 from win-rate arithmetic still equals 0.10
    assert tier_of(99, 0.10, 0.01, 72.0, acfg) is M
    assert tier_of(100, 0.0999, 0.01, 72.0, acfg) is M
    assert tier_of(100, 0.10, 0.0101, 72.0, acfg) is M
    assert tier_of(100, 0.10, 0.01, 71.9, acfg) is M  # < 3 d
    assert tier_of(50, 0.05, 0.05, 48.0, acfg) is M
    assert tier_of(49, 0.05, 0.05, 48.0, acfg) is L
    assert tier_of(50, 0.0499, 0.05, 48.0, acfg) is L
    assert tier_of(50, 0.05, 0.0501, 48.0, acfg) is L
    assert tier_of(50, 0.05, 0.05, 47.9, acfg) is L
    assert tier_of(30, 0.03, 0.10, 24.0, acfg) is L
    assert tier_of(29, 0.03, 0.10, 24.0, acfg) is I
    assert tier_of(30, 0.0299, 0.10, 24.0, acfg) is I
    assert tier_of(30, 0.03, 0.1001, 24.0, acfg) is I
    assert tier_of(30, 0.03, 0.10, 23.9, acfg) is I
    assert tier_of(500, 0.5, 0.0, 720.0, acfg) is H_
    assert tier_of(500, -0.2, 0.0, 720.0, acfg) is I  # a worse variation has no evidence tier
    assert [t.rank for t in EvidenceTier] == [3, 2, 1, 0]


def test_tiers_in_the_table_and_champion_is_the_baseline(acfg):
    rows = block("c", 400, 180) + block("q", 400, 240, variation="QUICK_EXITS")
    perf = analyze(frame(rows), T, acfg)
    # 240/400 vs 180/400: z = 0.15 / sqrt(0.525·0.475·0.005) = 4.2480 → p = 2.16e-5, one test in the family.
    z = 0.15 / math.sqrt(0.525 * 0.475 * 2 / 400)
    assert row(perf, 72.0, "DCA", "QUICK_EXITS")["p_z_holm"] == pytest.approx(math.erfc(z / math.sqrt(2)), rel=1e-9)
    assert row(perf, 72.0, "DCA", "QUICK_EXITS")["tier"] == "HIGH"  # 3 d window
    assert row(perf, 24.0, "DCA", "QUICK_EXITS")["tier"] == "LOW"  # same evidence, a 1-day window
    assert (perf.loc[perf["variation"] == "CHAMPION", "tier"] == "INSUFFICIENT").all()
    assert (perf.loc[perf["variation"] == "CHAMPION", "outperformance"] == 0.0).all()


# --- DSR --------------------------------------------------------------------------------------------------------------


def test_dsr_only_on_the_best_variation(acfg):
    rng = np.random.default_rng(5)
    plan = {"CHAMPION": 0.45, "QUICK_EXITS": 0.55, "ML_TRUST": 0.50, "BEAR_MARKET": 0.40}
    rows = []
    for v, pw in plan.items():
        win = rng.random(80) < pw
        pct = np.where(win, rng.uniform(0.005, 0.03, 80), -rng.uniform(0.001, 0.03, 80))
        rows += [take(f"{v}_{i}", variation=v, pnl_pct=float(x)) for i, x in enumerate(pct)]
    df = frame(rows)
    perf = analyze(df, T, acfg)
    mine = perf[(perf["window_h"] == 24.0) & (perf["strategy"] == "DCA")].set_index("variation")
    # Plain pandas: win rates, Sharpes (ddof 1), the best by outperformance (CHAMPION excluded).
    g = df.groupby("variation")["pnl_pct"]
    wr = df.assign(w=df["pnl_usd"] > 0).groupby("variation")["w"].mean()
    sharpe = g.mean() / g.std(ddof=1)
    outp = (wr - wr["CHAMPION"]).drop("CHAMPION")
    best = outp.sort_values(ascending=False).index[0]
    x = df.loc[df["variation"] == best, "pnl_pct"].to_numpy()
    sr, n, v = sharpe[best], len(plan), sharpe.var(ddof=1)
    sk = float(np.mean((x - x.mean()) ** 3) / np.mean((x - x.mean()) ** 2) ** 1.5)
    ku = float(np.mean((x - x.mean()) ** 4) / np.mean((x - x.mean()) ** 2) ** 2)
    gamma = 0.5772156649015329
    sr0 = math.sqrt(v) * ((1 - gamma) * sps.norm.ppf(1 - 1 / n) + gamma * sps.norm.ppf(1 - 1 / (n * math.e)))
    want = sps.norm.cdf((sr - sr0) * math.sqrt(len(x) - 1) / math.sqrt(1 - sk * sr + (ku - 1) / 4 * sr**2))
    assert mine.loc[best, "dsr"] == pytest.approx(want, rel=1e-9)
    assert mine.drop(best)["dsr"].isna().all()
    assert perf["dsr"].notna().sum() == 2 * 4  # one per window × strategy (DCA and ALL) in the four windows


# --- leaderboard, validation, speed -----------------------------------------------------------------------------------


def test_leaderboard_orders_by_outperformance(acfg):
    rows = block("c", 40, 20) + block("a", 40, 30, variation="QUICK_EXITS") + block("b", 40, 10, variation="ML_TRUST")
    rows += block("z", 40, 30, variation="BEAR_MARKET") + block("sc", 40, 20, "SWING")
    rows += block("sv", 40, 25, "SWING", "VOLATILITY_SIZED")
    lb = leaderboard(analyze(frame(rows), T, acfg), 72.0)
    assert list(lb.columns) == list(LEADERBOARD_COLUMNS)
    assert lb["strategy"].tolist() == ["ALL"] * 5 + ["DCA"] * 4 + ["SWING"] * 2
    dca = lb[lb["strategy"] == "DCA"]
    # 0.75, 0.75 (tie by name: BEAR_MARKET first), 0.5 (CHAMPION), 0.25.
    assert dca["variation"].tolist() == ["BEAR_MARKET", "QUICK_EXITS", "CHAMPION", "ML_TRUST"]
    assert dca["rank"].tolist() == [1, 2, 3, 4]
    assert lb[lb["strategy"] == "ALL"]["variation"].tolist()[0] == "BEAR_MARKET"
    assert leaderboard(analyze(frame(rows), T, acfg), 5.0).empty


def test_input_validation(acfg):
    df = frame(block("c", 10, 5))
    with pytest.raises(ValueError, match="unknown strategy"):
        analyze(df.assign(strategy="GRID"), T, acfg)
    with pytest.raises(ValueError, match="unknown outcome"):
        analyze(df.assign(outcome="DRAW"), T, acfg)
    with pytest.raises(ValueError, match="tz-aware UTC"):
        analyze(df.assign(entry_time=df["entry_time"].dt.tz_localize(None)), T, acfg)
    with pytest.raises(ValueError, match="UTC"):
        analyze(df, pd.Timestamp("2025-03-10T12:00:00"), acfg)
    with pytest.raises(ValueError, match="lack columns"):
        analyze(df.drop(columns=["size_usd"]), T, acfg)
    empty = analyze(df.iloc[:0], T, acfg)
    assert empty.empty and list(empty.columns) == list(PERFORMANCE_COLUMNS)


def test_synthetic_table_matches_a_plain_pandas_analysis(acfg):
    rng = np.random.default_rng(21)
    df = synthetic_outcomes(rng, T, acfg, full_plan(rng, 40, 120))
    perf = analyze(df, T, acfg)
    inside = df[(df["entry_time"] >= END - 72 * H) & (df["entry_time"] < END)]
    done = inside[inside["outcome"] != "PENDING"]
    for strategy in ("DCA", "CHANNEL", "ALL"):
        mine = done if strategy == "ALL" else done[done["strategy"] == strategy]
        g = mine.groupby("variation")
        got = perf[(perf["window_h"] == 72.0) & (perf["strategy"] == strategy)].set_index("variation")
        want_trades = g.size()
        enough = want_trades >= 10
        pd.testing.assert_series_equal(got["trades"].sort_index(), want_trades.sort_index(), check_names=False)
        swr = (g["pnl_usd"].sum() / g["size_usd"].sum())[enough]
        np.testing.assert_allclose(got.loc[swr.index, "size_weighted_return"], swr, rtol=1e-12)
        wr = g["pnl_usd"].apply(lambda s: (s > 0).mean())[enough]
        np.testing.assert_allclose(got.loc[wr.index, "win_rate"], wr, rtol=1e-12)
        np.testing.assert_allclose(got.loc[wr.index, "outperformance"], wr - wr["CHAMPION"], atol=1e-12)
        pend = inside[inside["outcome"] == "PENDING"]
        pend = pend if strategy == "ALL" else pend[pend["strategy"] == strategy]
        want_pending = pend.groupby("variation").size().reindex(got.index, fill_value=0)
        np.testing.assert_array_equal(got["pending"], want_pending)


def test_fifty_thousand_rows_well_under_two_seconds(acfg):
    rng = np.random.default_rng(8)
    df = synthetic_outcomes(rng, T, acfg, full_plan(rng, 1000, 1300), older_share=0.4)
    assert len(df) >= 50_000
    analyze(df.iloc[:1000], T, acfg)  # warm-up: imports and first-call costs
    start = time.perf_counter()
    perf = analyze(df, T, acfg)
    elapsed = time.perf_counter() - start
    print(f"analyze: {len(df)} shadow rows in {elapsed:.3f} s")
    assert elapsed < 2.0
    assert len(perf) == 4 * (13 + 10 + 10 + 13)  # every window × variation × strategy (ALL has all 13)
