"""The statistics of the shadow analyzer (SPEC §10.3); never imports dagster.

- :func:`two_proportion_z` (:func:`two_proportion_z_many` on arrays): pooled two-proportion z-test on win counts,
  two-sided p.
- :func:`welch_t` (:func:`welch_t_from_stats` on arrays of means, standard deviations and counts): Welch's
  unequal-variance t-test on per-trade returns, two-sided p.
- :func:`holm`: Holm's step-down adjustment of a family of p-values (not Holm–Šidák).
- :func:`deflated_sharpe_ratio`: Bailey & López de Prado (2014), a reported figure, never a gate.
- :func:`at_least` / :func:`below`: threshold comparisons where "equal passes" survives float rounding.

Returns are fractions (0.01 = 1 %); p-values and probabilities are in [0, 1]. A test that is undefined (empty side,
zero pooled variance, zero variance on both sides) gives p = 1: no evidence, never an error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as sps

# A fraction such as k/n − j/m or cur + step − cur can land one rounding step below the decimal threshold it equals
# (0.6 − 0.5 = 0.0999…98): comparisons allow this much, far below any meaningful difference (1/n for n trades).
FLOAT_SLACK = 1e-12


def at_least(value: float, threshold: float) -> bool:
    """``value ≥ threshold`` where equal (up to float rounding, :data:`FLOAT_SLACK`) passes; NaN never passes."""
    return bool(value >= threshold - FLOAT_SLACK)


def below(value: float, threshold: float) -> bool:
    """``value < threshold`` where equal (up to float rounding) is not below; NaN is not below."""
    return bool(value < threshold - FLOAT_SLACK)


# ---------------------------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------------------------


def two_proportion_z(w1: int, n1: int, w2: int, n2: int) -> float:
    """Two-sided p of the pooled two-proportion z-test of w1/n1 against w2/n2.

    z = (w1/n1 − w2/n2) / sqrt(p̂(1 − p̂)(1/n1 + 1/n2)) with p̂ = (w1 + w2)/(n1 + n2); p = 2·(1 − Φ(|z|)).
    p = 1 when undefined: an empty side, or p̂ ∈ {0, 1} (both sides all wins or all losses).
    """
    return float(two_proportion_z_many([w1], [n1], [w2], [n2])[0])


def two_proportion_z_many(w1: np.ndarray, n1: np.ndarray, w2: np.ndarray, n2: np.ndarray) -> np.ndarray:
    """:func:`two_proportion_z` elementwise over arrays of win counts and trade counts."""
    a1, k1, a2, k2 = (np.asarray(v, dtype="float64") for v in (w1, n1, w2, n2))
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = (a1 + a2) / (k1 + k2)
        var = pooled * (1.0 - pooled) * (1.0 / k1 + 1.0 / k2)
        z = (a1 / k1 - a2 / k2) / np.sqrt(var)
        p = 2.0 * sps.norm.sf(np.abs(z))
    defined = (k1 > 0) & (k2 > 0) & (var > 0) & np.isfinite(p)
    return np.where(defined, np.minimum(p, 1.0), 1.0)


def welch_t(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Two-sided p of Welch's t-test (``scipy.stats.ttest_ind(equal_var=False)``) of the means of x and y.

    p = 1 when undefined: fewer than two values on a side, or zero variance on both sides.
    """
    a = np.asarray(x, dtype="float64")
    b = np.asarray(y, dtype="float64")
    if a.size < 2 or b.size < 2:
        return 1.0
    if np.var(a) == 0.0 and np.var(b) == 0.0:
        return 1.0
    p = float(sps.ttest_ind(a, b, equal_var=False).pvalue)
    return p if math.isfinite(p) else 1.0


def welch_t_from_stats(mean1: np.ndarray, std1: np.ndarray, n1: np.ndarray, mean2: np.ndarray, std2: np.ndarray,
                       n2: np.ndarray) -> np.ndarray:
    """:func:`welch_t` for many pairs from sample means, standard deviations (ddof 1) and counts, elementwise
    (``scipy.stats.ttest_ind_from_stats(equal_var=False)``); p = 1 where undefined (n < 2 on a side, zero variance on
    both sides)."""
    arrays = [np.asarray(a, dtype="float64") for a in (mean1, std1, n1, mean2, std2, n2)]
    if arrays[0].size == 0:
        return np.empty(0, dtype="float64")
    m1, s1, k1, m2, s2, k2 = arrays
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.asarray(sps.ttest_ind_from_stats(m1, s1, k1, m2, s2, k2, equal_var=False).pvalue, dtype="float64")
    defined = (k1 >= 2) & (k2 >= 2) & ((s1 > 0) | (s2 > 0)) & np.isfinite(p)
    return np.where(defined, p, 1.0)


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values of one family, in the input order.

    Step-down: with p sorted ascending p(1) ≤ … ≤ p(m), adj(i) = min(1, max over j ≤ i of (m − j + 1)·p(j)) — the
    values of ``statsmodels.stats.multitest.multipletests(method='holm')`` (whose default is Holm–Šidák), computed
    here because that function runs a full ``gc.collect()`` on every call (tens of ms in a large process, once per
    family). An empty family gives an empty array; a NaN p-value raises (a test that did not run has p = 1).
    """
    p = np.asarray(pvalues, dtype="float64")
    if p.size == 0:
        return np.empty(0, dtype="float64")
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        raise ValueError(f"p-values must be finite and in [0, 1], got {p.tolist()}")
    order = np.argsort(p, kind="stable")
    m = p.size
    adjusted = np.minimum(np.maximum.accumulate((m - np.arange(m)) * p[order]), 1.0)
    out = np.empty(m, dtype="float64")
    out[order] = adjusted
    return out


# ---------------------------------------------------------------------------------------------------------------
# Deflated Sharpe Ratio
# ---------------------------------------------------------------------------------------------------------------


def expected_max_sharpe(n_trials: int, sharpe_variance_across_trials: float) -> float:
    """SR0, the expected maximum of ``n_trials`` Sharpe estimates whose true value is 0 (Bailey & López de Prado).

    SR0 = sqrt(V)·((1 − γ)·Φ⁻¹(1 − 1/N) + γ·Φ⁻¹(1 − 1/(N·e))), γ the Euler–Mascheroni constant. With one trial
    there is no selection (Φ⁻¹(0) is −∞ in the formula): SR0 = 0. V is on the scale of the Sharpe ratios (here
    per trade, not annualised).
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be ≥ 1, got {n_trials}")
    if not (math.isfinite(sharpe_variance_across_trials) and sharpe_variance_across_trials >= 0.0):
        raise ValueError(f"the Sharpe variance across trials must be finite and ≥ 0, got "
                         f"{sharpe_variance_across_trials}")
    if n_trials == 1:
        return 0.0
    gamma = np.euler_gamma
    z = (1.0 - gamma) * sps.norm.ppf(1.0 - 1.0 / n_trials) + gamma * sps.norm.ppf(1.0 - 1.0 / (n_trials * math.e))
    return float(math.sqrt(sharpe_variance_across_trials) * z)


def deflated_sharpe_ratio(sharpe: float, n_obs: int, skew: float, kurtosis: float, n_trials: int,
                          sharpe_variance_across_trials: float) -> float:
    """The Deflated Sharpe Ratio: the probability that the true Sharpe exceeds SR0 (:func:`expected_max_sharpe`).

    DSR = Φ((SR − SR0)·sqrt(T − 1) / sqrt(1 − γ3·SR + (γ4 − 1)/4·SR²)) with SR the observed (non-annualised)
    Sharpe of the selected trial over T = ``n_obs`` observations, γ3 its skewness and γ4 its Pearson (non-excess,
    normal = 3) kurtosis; SR and V must be on the same scale. NaN when undefined: non-finite SR, T < 2 or a
    non-positive variance term.
    """
    if not (math.isfinite(sharpe) and math.isfinite(skew) and math.isfinite(kurtosis)) or n_obs < 2:
        return math.nan
    sr0 = expected_max_sharpe(n_trials, sharpe_variance_across_trials)
    denom = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    if not denom > 0.0:
        return math.nan
    return float(sps.norm.cdf((sharpe - sr0) * math.sqrt(n_obs - 1) / math.sqrt(denom)))
