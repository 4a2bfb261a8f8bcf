"""Recommendations from the analyzer (SPEC §10.4), the threshold manager's step (§10.5) and its safety gates; never
imports dagster.

- :func:`recommend`: in the window ``shadow.recommendation_window_h``, per strategy (never ALL), the variations with
  outperformance > 0 and at least their minimum tier; one per parameter key (the best), then the top
  ``shadow.max_recommendations``, both by (tier desc, outperformance desc, variation name). Current values come from
  the live config.

  - CONFIDENCE_TEST_c (min MEDIUM; strategies with a champion only): ``confidence_threshold``,
    ``ml.confidence_threshold.<s>`` → c.
  - DCA_DROPS_x (min LOW; DCA only): ``dca_drop_threshold``, ``strategies.dca.drop_threshold.<tier>`` → −|x| for
    all four tiers in one recommendation (the name carries |x|, SPEC §0.4).
  - QUICK_EXITS (min MEDIUM): ``tp_multiplier``, ``exits.tp_multiplier.<s>`` →
    ``shadow.variations.quick_exits.tp_multiplier``.

  Report-only variations (:data:`REPORT_ONLY`) never yield a recommendation (SPEC I-16).
- :func:`step_value` / :func:`propose`: new = clamp(cur + clamp((rec − cur)·m, −|cur|·max_rel, +|cur|·max_rel),
  min, max) with m = ``threshold_manager.tier_multiplier.<tier>`` and bounds ``threshold_manager.params.<parameter>``;
  a change with |Δ| < ``min_abs_change`` or |Δ|/|cur| < ``min_rel_change`` is dropped (equal is kept).
  ``dca_drop_threshold`` steps on magnitudes (its bounds are magnitudes) and keeps the negative sign.
- Gates :func:`regime_stable`, :func:`quota_ok`, :func:`fresh`: None when the gate passes, else the reason for a
  person. Run at proposal and again at approval.

Thresholds and returns are fractions; times are tz-aware UTC.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..common import cycle_points, hours, is_utc, utc
from ..config import Config, Strategy, Tier
from .analyzer import STRATEGIES, EvidenceTier
from .stats import below
from .variations import CHAMPION, REPORT_ONLY

CONFIDENCE_THRESHOLD = "confidence_threshold"
DCA_DROP_THRESHOLD = "dca_drop_threshold"
TP_MULTIPLIER = "tp_multiplier"
PARAMETERS: tuple[str, ...] = (CONFIDENCE_THRESHOLD, DCA_DROP_THRESHOLD, TP_MULTIPLIER)

CONFIDENCE_TEST_PREFIX = "CONFIDENCE_TEST_"
DCA_DROPS_PREFIX = "DCA_DROPS_"
QUICK_EXITS = "QUICK_EXITS"
MIN_TIER: dict[str, EvidenceTier] = {
    CONFIDENCE_THRESHOLD: EvidenceTier.MEDIUM, DCA_DROP_THRESHOLD: EvidenceTier.LOW, TP_MULTIPLIER: EvidenceTier.MEDIUM,
}
# A regime that is not a market state: the inputs were missing (SPEC §0.4), so it counts as missing history.
UNKNOWN_REGIME = "UNKNOWN"

Change = tuple[str, float, float]  # (dotted key, current value, recommended value)
ProposedChange = tuple[str, float, float, float]  # (dotted key, old value, new value, recommended value)


@dataclass(frozen=True)
class Recommendation:
    """One recommended parameter change backed by a variation's evidence (a ``threshold_recommendations`` row)."""

    strategy: str
    variation: str
    tier: EvidenceTier
    outperformance: float
    p_value: float  # Holm-adjusted two-proportion z p
    trades: int
    parameter: str  # one of PARAMETERS
    changes: tuple[Change, ...]
    evidence: dict[str, Any] = field(compare=False)


@dataclass(frozen=True)
class Proposal:
    """A bounded step towards a recommendation (SPEC §10.5); ``changes`` keeps only the keys that move."""

    strategy: str
    variation: str
    tier: EvidenceTier
    parameter: str
    changes: tuple[ProposedChange, ...]
    evidence: dict[str, Any] = field(compare=False)


# ---------------------------------------------------------------------------------------------------------------
# Recommendations (SPEC §10.4)
# ---------------------------------------------------------------------------------------------------------------


def recommendable(variation: str, strategy: str, champion_strategies: set[str], cfg: Config
                  ) -> tuple[str, tuple[Change, ...]] | None:
    """(parameter, changes) that ``variation`` recommends for ``strategy``, or None (report-only, or not for this
    strategy). An unknown variation name raises."""
    s = Strategy.parse(strategy)
    if variation in REPORT_ONLY:
        return None
    if variation == QUICK_EXITS:
        key = f"exits.tp_multiplier.{s.key}"
        return TP_MULTIPLIER, ((key, cfg.exits.tp_multiplier.of(s), cfg.shadow.variations.quick_exits.tp_multiplier),)
    if variation.startswith(CONFIDENCE_TEST_PREFIX):
        if s.value not in champion_strategies:
            return None
        c = _number(variation, CONFIDENCE_TEST_PREFIX)
        return CONFIDENCE_THRESHOLD, ((f"ml.confidence_threshold.{s.key}", cfg.ml.confidence_threshold.of(s), c),)
    if variation.startswith(DCA_DROPS_PREFIX):
        if s is not Strategy.DCA:
            return None
        x = -abs(_number(variation, DCA_DROPS_PREFIX))  # named by |x| (SPEC §0.4); drops are negative
        return DCA_DROP_THRESHOLD, tuple((f"strategies.dca.drop_threshold.{t.value}",
                                          cfg.strategies.dca.drop_threshold.of(t), x) for t in Tier)
    raise ValueError(f"unknown variation {variation!r}")


def _number(variation: str, prefix: str) -> float:
    try:
        value = float(variation[len(prefix):])
    except ValueError:
        raise ValueError(f"variation {variation!r}: no number after {prefix!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"variation {variation!r}: no finite number after {prefix!r}")
    return value


def _order(rec: Recommendation) -> tuple:
    return -rec.tier.rank, -rec.outperformance, rec.variation


def recommend(perf: pd.DataFrame, cfg: Config, champion_strategies: set[str]) -> list[Recommendation]:
    """The recommendations from ``shadow_performance`` rows (:func:`~.analyzer.analyze`), best first.

    ``champion_strategies``: the strategies with a champion model in use (``DCA``, ``SWING``, ``CHANNEL``); only they
    get confidence-threshold recommendations.
    """
    window = float(cfg.shadow.recommendation_window_h)
    rows = perf[(perf["window_h"] == window) & perf["strategy"].isin(STRATEGIES)]
    champ = rows[rows["variation"] == CHAMPION].set_index("strategy")
    champions = {str(s) for s in champion_strategies}
    best: dict[tuple[str, ...], Recommendation] = {}
    for r in rows.itertuples(index=False):
        if r.variation == CHAMPION or not (r.outperformance > 0):
            continue
        spec = recommendable(r.variation, r.strategy, champions, cfg)
        if spec is None:
            continue
        parameter, changes = spec
        tier = EvidenceTier.parse(r.tier)
        if tier.rank < MIN_TIER[parameter].rank:
            continue
        c = champ.loc[r.strategy]
        evidence = {
            "window_h": window, "win_rate": float(r.win_rate), "champion_win_rate": float(c["win_rate"]),
            "trades": int(r.trades), "champion_trades": int(c["trades"]), "p_z": float(r.p_z),
            "p_z_holm": float(r.p_z_holm), "p_welch": float(r.p_welch),
            "size_weighted_return": float(r.size_weighted_return),
            "champion_size_weighted_return": float(c["size_weighted_return"]),
        }
        rec = Recommendation(strategy=r.strategy, variation=r.variation, tier=tier,
                             outperformance=float(r.outperformance), p_value=float(r.p_z_holm), trades=int(r.trades),
                             parameter=parameter, changes=changes, evidence=evidence)
        key = tuple(k for k, _, _ in changes)
        if key not in best or _order(rec) < _order(best[key]):
            best[key] = rec
    return sorted(best.values(), key=_order)[:cfg.shadow.max_recommendations]


# ---------------------------------------------------------------------------------------------------------------
# Threshold manager (SPEC §10.5)
# ---------------------------------------------------------------------------------------------------------------


def step_value(parameter: str, current: float, recommended: float, tier: EvidenceTier | str, cfg: Config
               ) -> float | None:
    """The bounded step from ``current`` towards ``recommended``, or None when the change is too small (dropped).

    ``dca_drop_threshold`` steps on magnitudes with magnitude bounds and returns a value with the current sign.
    """
    if parameter not in PARAMETERS:
        raise ValueError(f"unknown parameter {parameter!r}; expected one of {list(PARAMETERS)}")
    t = EvidenceTier.parse(tier)
    if t is EvidenceTier.INSUFFICIENT:
        raise ValueError("an INSUFFICIENT tier never steps")
    tm = cfg.threshold_manager
    bounds = getattr(tm.params, parameter)
    m = getattr(tm.tier_multiplier, t.value.lower())
    sign = 1.0
    cur, rec = float(current), float(recommended)
    if parameter == DCA_DROP_THRESHOLD:
        if cur > 0 or rec > 0:
            raise ValueError(f"dca_drop_threshold values are drops (≤ 0), got {current} → {recommended}")
        sign, cur, rec = -1.0, abs(cur), abs(rec)
    cap = abs(cur) * bounds.max_rel
    step = min(max((rec - cur) * m, -cap), cap)
    new = min(max(cur + step, bounds.min), bounds.max)
    delta = abs(new - cur)
    if below(delta, tm.min_abs_change) or (cur != 0 and below(delta / abs(cur), tm.min_rel_change)):
        return None
    return sign * new


def propose(rec: Recommendation, cfg: Config) -> Proposal | None:
    """The proposal for a recommendation: every key steps (:func:`step_value`) with the recommendation's tier; keys
    whose change is dropped are left out, and the proposal is dropped (None) when no key moves."""
    changes = []
    for key, cur, target in rec.changes:
        new = step_value(rec.parameter, cur, target, rec.tier, cfg)
        if new is not None:
            changes.append((key, float(cur), new, float(target)))
    if not changes:
        return None
    return Proposal(strategy=rec.strategy, variation=rec.variation, tier=rec.tier, parameter=rec.parameter,
                    changes=tuple(changes), evidence=dict(rec.evidence))


# ---------------------------------------------------------------------------------------------------------------
# Safety gates (at proposal and again at approval): None = pass, else the reason
# ---------------------------------------------------------------------------------------------------------------


def regime_stable(regimes: pd.Series, at: pd.Timestamp, cfg: Config) -> str | None:
    """The same regime at every cycle point T in (at − ``regime_stable_h``, at].

    ``regimes`` is indexed by cycle point (UTC). A missing cycle point, a null or an UNKNOWN regime is missing
    history, and missing history refuses.
    """
    at = utc(at, "at")
    span_h = cfg.threshold_manager.regime_stable_h
    tick = pd.Timedelta(1, unit="ns")  # (at − H, at]: the open start and the closed end of the span
    expected = cycle_points(at - hours(span_h) + tick, at + tick, cfg.engine.cycle_min)
    index = pd.DatetimeIndex(regimes.index)
    if len(index) and not is_utc(index.tz):
        raise ValueError("regimes must be indexed by tz-aware UTC cycle points")
    values = pd.Series([getattr(v, "value", v) for v in regimes.to_numpy()], index=index, dtype="object")
    values = values[~index.duplicated(keep="last")].reindex(expected)
    known = values.notna() & (values != UNKNOWN_REGIME)
    if not known.all():
        first = expected[~known.to_numpy()][0]
        return (f"regime history incomplete: {int((~known).sum())} of {len(expected)} cycle points of the last "
                f"{span_h:g} h (threshold_manager.regime_stable_h) missing or UNKNOWN, first at {first.isoformat()}")
    if values.nunique() > 1:
        change = expected[(values != values.shift()).to_numpy()][1]
        return (f"regime not stable over the last {span_h:g} h (threshold_manager.regime_stable_h): "
                f"{values.iloc[0]} changed at {change.isoformat()}, now {values.iloc[-1]}")
    return None


def quota_ok(applied_times: list[pd.Timestamp], at: pd.Timestamp, cfg: Config) -> str | None:
    """At most ``max_applied_per_utc_day`` revisions applied in the UTC day of ``at``: refuses when it is reached."""
    at = utc(at, "at")
    day = at.floor("1D")
    times = [utc(x, "applied time") for x in applied_times]
    n = sum(1 for x in times if day <= x < day + pd.Timedelta(days=1))
    limit = cfg.threshold_manager.max_applied_per_utc_day
    if n >= limit:
        return (f"daily quota reached: {n} revisions already applied on {day.date().isoformat()} (UTC), at most "
                f"{limit} (threshold_manager.max_applied_per_utc_day)")
    return None


def fresh(created_at: pd.Timestamp, at: pd.Timestamp, cfg: Config) -> str | None:
    """A proposal acts only while younger than ``proposal_ttl_h``; at or past it: ``EXPIRED: …``."""
    created, at = utc(created_at, "created_at"), utc(at, "at")
    if created > at:
        raise ValueError(f"proposal created at {created.isoformat()}, after the check time {at.isoformat()}")
    ttl_h = cfg.threshold_manager.proposal_ttl_h
    age = at - created
    if age >= hours(ttl_h):
        return (f"EXPIRED: proposal created at {created.isoformat()} is {age / pd.Timedelta(hours=1):g} h old, "
                f"the limit is {ttl_h:g} h (threshold_manager.proposal_ttl_h)")
    return None
