"""The analyzer's statistics (SPEC §10.3): z-test, Welch, Holm, Deflated Sharpe Ratio.

Every expectation is independent of the code under test: numbers worked by hand (the arithmetic is in the comments),
the published example of Bailey & López de Prado (2014), the formulas re-typed here with the standard library, or a
second library (statsmodels) computing the same test.
"""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportions_ztest

from cryptotracker_assets.core.shadows.stats import (
    at_least,
    below,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    holm,
    two_proportion_z,
    two_proportion_z_many,
    welch_t,
    welch_t_from_stats,
)

EULER_GAMMA = 0.5772156649015329  # written out: the test does not borrow numpy's constant


def phi(x: float) -> float:
    """Standard normal CDF from the error function (standard library only)."""
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


# --- two-proportion z ---------------------------------------------------------------------------------------------


def test_two_proportion_z_by_hand():
    # 60/100 vs 45/100: pooled p = 105/200 = 0.525; se = sqrt(0.525·0.475·(1/100 + 1/100)) = sqrt(0.0049875)
    # = 0.0706222; z = 0.15 / 0.0706222 = 2.123977; p = erfc(|z|/√2) = 0.033672.
    z = 0.15 / math.sqrt(0.525 * 0.475 * 0.02)
    assert z == pytest.approx(2.123977, abs=1e-6)
    assert two_proportion_z(60, 100, 45, 100) == pytest.approx(math.erfc(z / math.sqrt(2)), rel=1e-12)
    assert two_proportion_z(60, 100, 45, 100) == pytest.approx(0.033672, abs=1e-6)
    # Two-sided: the order of the sides does not matter.
    assert two_proportion_z(45, 100, 60, 100) == pytest.approx(two_proportion_z(60, 100, 45, 100), rel=1e-12)


@pytest.mark.parametrize("w1,n1,w2,n2", [(240, 400, 180, 400), (31, 50, 12, 40), (5, 30, 9, 300)])
def test_two_proportion_z_matches_statsmodels_pooled(w1, n1, w2, n2):
    _, p = proportions_ztest([w1, w2], [n1, n2])  # pooled variance by default
    assert two_proportion_z(w1, n1, w2, n2) == pytest.approx(float(p), rel=1e-10)


@pytest.mark.parametrize("w1,n1,w2,n2", [(0, 0, 5, 10), (5, 10, 0, 0), (10, 10, 30, 30), (0, 40, 0, 35)])
def test_two_proportion_z_undefined_is_one(w1, n1, w2, n2):
    # An empty side, or pooled p̂ ∈ {0, 1}: zero standard error, no evidence.
    assert two_proportion_z(w1, n1, w2, n2) == 1.0


def test_two_proportion_z_many_is_elementwise():
    cases = [(240, 400, 180, 400), (31, 50, 12, 40), (0, 0, 5, 10), (10, 10, 30, 30), (5, 30, 9, 300)]
    want = [1.0 if n1 == 0 or (w1 + w2) in (0, n1 + n2) else float(proportions_ztest([w1, w2], [n1, n2])[1])
            for w1, n1, w2, n2 in cases]
    np.testing.assert_allclose(two_proportion_z_many(*map(list, zip(*cases))), want, rtol=1e-10)


# --- Welch ----------------------------------------------------------------------------------------------------------


def test_welch_t_by_hand():
    x = [0.01, 0.03, -0.02, 0.05, 0.00]
    y = [-0.01, 0.02, -0.03, 0.00, -0.02, 0.01]
    mx, my = statistics.fmean(x), statistics.fmean(y)
    vx, vy = statistics.variance(x), statistics.variance(y)  # ddof 1
    se2 = vx / len(x) + vy / len(y)
    t = (mx - my) / math.sqrt(se2)
    df = se2**2 / ((vx / len(x)) ** 2 / (len(x) - 1) + (vy / len(y)) ** 2 / (len(y) - 1))  # Welch–Satterthwaite
    expected = 2.0 * sps.t.sf(abs(t), df)
    assert welch_t(x, y) == pytest.approx(expected, rel=1e-10)


def test_welch_t_undefined_is_one():
    assert welch_t([0.01] * 40, [0.01] * 40) == 1.0  # zero variance on both sides
    assert welch_t([0.02] * 40, [-0.01] * 40) == 1.0  # zero variance on both sides, even with different means
    assert welch_t([0.01], [0.01, 0.02, 0.03]) == 1.0  # fewer than two values
    assert welch_t([], [0.01, 0.02]) == 1.0
    # One side constant, the other not: defined (the variance is the other side's).
    a, b = [0.01] * 10, [0.0, 0.03] * 5
    assert welch_t(a, b) == pytest.approx(float(sps.ttest_ind(a, b, equal_var=False).pvalue), rel=1e-12)
    assert welch_t(a, b) < 1.0


def test_welch_from_stats_equals_welch_on_the_samples():
    rng = np.random.default_rng(7)
    pairs = [(rng.normal(0.001, 0.02, n1), rng.normal(-0.002, 0.03, n2)) for n1, n2 in [(30, 40), (100, 35), (5, 7)]]
    pairs.append((np.full(30, 0.01), np.full(30, 0.01)))  # undefined: 1
    pairs.append((np.full(30, 0.01), rng.normal(0.0, 0.01, 30)))  # one constant side: defined
    m1 = [a.mean() for a, _ in pairs]
    s1 = [a.std(ddof=1) for a, _ in pairs]
    n1 = [len(a) for a, _ in pairs]
    m2 = [b.mean() for _, b in pairs]
    s2 = [b.std(ddof=1) for _, b in pairs]
    n2 = [len(b) for _, b in pairs]
    got = welch_t_from_stats(m1, s1, n1, m2, s2, n2)
    want = [welch_t(a, b) for a, b in pairs]
    np.testing.assert_allclose(got, want, rtol=1e-9)
    assert got[3] == 1.0
    assert welch_t_from_stats([], [], [], [], [], []).size == 0


# --- Holm -----------------------------------------------------------------------------------------------------------


def test_holm_step_down_by_hand():
    # p = [0.01, 0.04, 0.03, 0.005], m = 4. Sorted: 0.005·4 = 0.02; 0.01·3 = 0.03; 0.03·2 = 0.06; 0.04·1 = 0.04 →
    # running max 0.06. Back in input order: [0.03, 0.06, 0.06, 0.02].
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02], rtol=1e-12)
    # Capped at 1: [0.5, 0.6] → 0.5·2 = 1.0, 0.6·1 = 0.6 → running max 1.0.
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])
    # Ties keep their input positions; a single test is unadjusted.
    np.testing.assert_allclose(holm([0.02, 0.02, 0.5]), [0.06, 0.06, 0.5], rtol=1e-12)
    np.testing.assert_allclose(holm([0.037]), [0.037])
    assert holm([]).size == 0


def test_holm_is_statsmodels_holm_not_its_default_holm_sidak():
    rng = np.random.default_rng(3)
    for m in (2, 5, 13, 40):
        p = rng.uniform(0, 0.2, m)
        np.testing.assert_allclose(holm(p), multipletests(p, method="holm")[1], rtol=1e-12)
    p = np.array([0.01, 0.02, 0.03])
    assert not np.allclose(holm(p), multipletests(p)[1])  # statsmodels' default is Holm–Šidák


def test_holm_rejects_nan():
    with pytest.raises(ValueError):
        holm([0.01, float("nan")])


# --- Deflated Sharpe Ratio ------------------------------------------------------------------------------------------


def test_dsr_reproduces_the_papers_numerical_example():
    # Bailey & López de Prado (2014), "The Deflated Sharpe Ratio", numerical example: annualised SR 2.5 over five
    # years of daily returns (T = 1250, 250 days a year), skewness −3, kurtosis 10, N = 100 trials whose annualised
    # Sharpe variance is 1/2. The paper: SR0 ≈ 0.1132 (daily), DSR ≈ 0.9004.
    sr = 2.5 / math.sqrt(250)
    v = 0.5 / 250
    assert expected_max_sharpe(100, v) == pytest.approx(0.1132, abs=5e-5)
    assert deflated_sharpe_ratio(sr, 1250, -3.0, 10.0, 100, v) == pytest.approx(0.9004, abs=5e-5)


def test_dsr_against_the_formula_typed_out():
    sr, t, skew, kurt, n, v = 0.3, 50, 0.5, 4.0, 5, 0.02
    z = (1 - EULER_GAMMA) * sps.norm.ppf(1 - 1 / n) + EULER_GAMMA * sps.norm.ppf(1 - 1 / (n * math.e))
    sr0 = math.sqrt(v) * z
    expected = phi((sr - sr0) * math.sqrt(t - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2))
    assert deflated_sharpe_ratio(sr, t, skew, kurt, n, v) == pytest.approx(expected, rel=1e-9)
    # More trials raise the bar: a lower DSR for the same Sharpe.
    assert deflated_sharpe_ratio(sr, t, skew, kurt, 20, v) < expected


def test_dsr_one_trial_is_the_probabilistic_sharpe_against_zero():
    # One trial: no selection, SR0 = 0 (the formula's Φ⁻¹(0) would be −∞); normal returns: skew 0, kurtosis 3.
    sr, t = 0.2, 101
    expected = phi(sr * math.sqrt(t - 1) / math.sqrt(1 + 2 / 4 * sr**2))
    assert expected_max_sharpe(1, 0.0) == 0.0
    assert deflated_sharpe_ratio(sr, t, 0.0, 3.0, 1, 0.0) == pytest.approx(expected, rel=1e-12)


def test_dsr_undefined_is_nan_and_bad_inputs_raise():
    assert math.isnan(deflated_sharpe_ratio(float("nan"), 100, 0.0, 3.0, 3, 0.01))
    assert math.isnan(deflated_sharpe_ratio(0.2, 1, 0.0, 3.0, 3, 0.01))
    assert math.isnan(deflated_sharpe_ratio(2.0, 100, 5.0, 1.0, 3, 0.01))  # 1 − 5·2 + 0 < 0
    with pytest.raises(ValueError):
        expected_max_sharpe(0, 0.01)
    with pytest.raises(ValueError):
        expected_max_sharpe(3, -0.01)


# --- threshold comparisons -------------------------------------------------------------------------------------------


def test_equal_passes_through_float_rounding():
    assert 0.6 - 0.5 < 0.1  # the rounding the helpers absorb
    assert at_least(0.6 - 0.5, 0.1)
    assert not at_least(0.0999, 0.1)
    assert at_least(0.1001, 0.1)
    assert not at_least(float("nan"), 0.1)
    assert not below(0.6 - 0.5, 0.1)
    assert below(0.0999, 0.1)
    assert not below(float("nan"), 0.1)
