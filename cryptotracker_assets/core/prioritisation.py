"""Market-aware prioritisation of candidates (SPEC §9.2) and strategy-shift closes (SPEC §9.3); never imports dagster.

Pure functions and one explicit fold:

- :func:`prioritise` orders the candidates of one cycle point T (scan rows that passed steps 1–4 of §3.4) into the
  list the execution checks (§7.2) walk, and names those left out (``not_prioritised``). With best ∈ {DCA, SWING,
  CHANNEL} the list is the best strategy's candidates (``recommended``); when it has fewer than
  ``prioritisation.min_best_signals`` the sentiment over the cycle's setups decides whether the other strategies'
  candidates are appended (``fallback``, order DCA, SWING, CHANNEL) or left out (BEARISH). With best WAIT or NONE
  the strategies are interleaved round-robin (DCA, SWING, CHANNEL), then stably sorted by confidence: WAIT only
  reorders, it blocks nothing (these lists are ``fallback``: nothing is recommended).
- :class:`ShiftState` / :func:`advance_shift` is the §9.3 fold over cycle points: ``shifted_at(S)`` is set when the
  best strategy changes away from S and cleared when it becomes S again; the first observed best only initialises
  and NONE is ignored (the last other value stands). :func:`shift_exit_reason` is the rule table, on the net
  pnl_pct r of a close at the decision-bar close (both fees and slippage), D = hours since shifted_at(S) and the
  position's age in hours.

Confidences are probabilities in [0, 1]; setup values and returns are fractions; times are tz-aware UTC.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import pandas as pd

from .common import utc
from .config import Config, Strategy
from .exits import ExitReason
from .regime import BestStrategy
from .setups import ListType

STRATEGY_ORDER: tuple[Strategy, ...] = (Strategy.DCA, Strategy.SWING, Strategy.CHANNEL)
_SECONDS_PER_HOUR = 3600.0


class Sentiment(str, Enum):
    """The §9.2 market sentiment over one cycle point's setups."""

    BULLISH = "BULLISH"
    BEARISH = "BEARISH"
    NEUTRAL = "NEUTRAL"


# ---------------------------------------------------------------------------------------------------------------
# Ordering candidates (SPEC §9.2)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """A scan row that passed steps 1–4: ``key`` identifies the row (e.g. its index label).

    ``setup_value`` is the setup's own number: DCA ``drop`` and SWING ``breakout`` (fractions), CHANNEL
    ``channel_position`` (0–1).
    """

    key: Hashable
    strategy: Strategy
    symbol: str
    confidence: float
    setup_value: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "strategy", Strategy.parse(self.strategy))
        if not (math.isfinite(self.confidence) and 0.0 <= self.confidence <= 1.0):
            raise ValueError(f"{self.strategy.value} {self.symbol}: confidence {self.confidence!r} is not in [0, 1]")


def _strength(c: Candidate) -> float:
    """Smaller is stronger: DCA lowest drop, SWING highest breakout, CHANNEL lowest channel_position."""
    v = float(c.setup_value)
    if math.isnan(v):
        return math.inf  # a candidate always has its value; a missing one would rank last, never first
    return -v if c.strategy is Strategy.SWING else v


def order_within_strategy(candidates: Iterable[Candidate]) -> list[Candidate]:
    """Confidence descending, then setup strength (DCA lowest drop, SWING highest breakout, CHANNEL lowest
    channel_position), then symbol."""
    return sorted(candidates, key=lambda c: (-c.confidence, _strength(c), c.symbol))


def sentiment(setups: Mapping[Strategy | str, int], top_of_range: int, cfg: Config) -> Sentiment:
    """Sentiment over the cycle's scan rows: bullish = Σ ``prioritisation.sentiment_weights.<s>`` per row with
    setup = true (``setups``: count per strategy), bearish = 1 per CHANNEL ``top_of_range`` row; BULLISH if
    bullish > ``sentiment_ratio`` × bearish, BEARISH if bearish > ratio × bullish, else NEUTRAL."""
    pr = cfg.prioritisation
    bullish = math.fsum(pr.sentiment_weights.of(Strategy.parse(s)) * int(n) for s, n in setups.items())
    bearish = float(top_of_range)
    if bullish > pr.sentiment_ratio * bearish:
        return Sentiment.BULLISH
    if bearish > pr.sentiment_ratio * bullish:
        return Sentiment.BEARISH
    return Sentiment.NEUTRAL


@dataclass(frozen=True)
class Prioritised:
    """The ordered list (candidate, list type) that goes through §7.2, the candidates left out
    (``not_prioritised``), and the sentiment when it was consulted (None otherwise)."""

    ordered: tuple[tuple[Candidate, ListType], ...]
    not_prioritised: tuple[Candidate, ...]
    sentiment: Sentiment | None = None


def _round_robin(groups: Sequence[list[Candidate]]) -> list[Candidate]:
    out: list[Candidate] = []
    depth = max((len(g) for g in groups), default=0)
    for i in range(depth):
        for g in groups:
            if i < len(g):
                out.append(g[i])
    return out


def prioritise(
    candidates: Iterable[Candidate],
    best: BestStrategy | str,
    *,
    setups: Mapping[Strategy | str, int],
    top_of_range: int,
    cfg: Config,
) -> Prioritised:
    """Order one cycle point's candidates per SPEC §9.2 (see the module doc).

    ``setups``: rows with setup = true per strategy and ``top_of_range``: CHANNEL top-of-range rows, both over all
    the cycle's scan rows (for the sentiment). Every candidate is either in ``ordered`` or in ``not_prioritised``.
    """
    cands = list(candidates)
    keys = [c.key for c in cands]
    if len(set(keys)) != len(keys):
        raise ValueError("candidate keys must be unique")
    b = BestStrategy.parse(best)
    by = {s: order_within_strategy(c for c in cands if c.strategy is s) for s in STRATEGY_ORDER}
    if b in (BestStrategy.WAIT, BestStrategy.NONE):
        robin = _round_robin([by[s] for s in STRATEGY_ORDER])
        ordered = sorted(robin, key=lambda c: -c.confidence)  # stable: ties keep the round-robin order
        return Prioritised(tuple((c, ListType.FALLBACK) for c in ordered), ())
    s_best = Strategy(b.value)
    recommended = [(c, ListType.RECOMMENDED) for c in by[s_best]]
    others = [c for s in STRATEGY_ORDER if s is not s_best for c in by[s]]
    if len(by[s_best]) >= cfg.prioritisation.min_best_signals:
        return Prioritised(tuple(recommended), tuple(others))
    mood = sentiment(setups, top_of_range, cfg)
    if mood is Sentiment.BEARISH:
        return Prioritised(tuple(recommended), tuple(others), mood)
    return Prioritised(tuple(recommended + [(c, ListType.FALLBACK) for c in others]), (), mood)


# ---------------------------------------------------------------------------------------------------------------
# Strategy-shift closes (SPEC §9.3)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShiftState:
    """The §9.3 state after ``cycle_point``: the last observed best strategy other than NONE and, per strategy S
    the best has moved away from, the cycle point it did (``shifted_at``)."""

    cycle_point: pd.Timestamp | None = None
    last_best: BestStrategy | None = None
    shifted_at: Mapping[Strategy, pd.Timestamp] = field(default_factory=dict)

    def shifted(self, strategy: Strategy | str) -> pd.Timestamp | None:
        return self.shifted_at.get(Strategy.parse(strategy))


def advance_shift(state: ShiftState, cycle_point: Any, best: BestStrategy | str) -> ShiftState:
    """Fold the best strategy of cycle point T (§9.1) into the shift state.

    NONE is ignored (the last other value stands); the first observed best only initialises. When best changes
    away from S ∈ {DCA, SWING, CHANNEL}, shifted_at(S) = T; when best becomes S, shifted_at(S) is cleared. A
    strategy shifted away keeps its shifted_at while best moves between other values.
    """
    t = utc(cycle_point, "cycle point")
    if state.cycle_point is not None and t <= state.cycle_point:
        raise ValueError(f"cycle point {t} does not come after the shift state's {state.cycle_point}")
    b = BestStrategy.parse(best)
    if b is BestStrategy.NONE or state.last_best is None or b is state.last_best:
        last = state.last_best if b is BestStrategy.NONE else b
        return ShiftState(t, last, dict(state.shifted_at))
    shifted = dict(state.shifted_at)
    prev = state.last_best
    if prev in (BestStrategy.DCA, BestStrategy.SWING, BestStrategy.CHANNEL):
        shifted[Strategy(prev.value)] = t
    if b in (BestStrategy.DCA, BestStrategy.SWING, BestStrategy.CHANNEL):
        shifted.pop(Strategy(b.value), None)
    return ShiftState(t, b, shifted)


def shift_applies(state: ShiftState, strategy: Strategy | str, entry_time: Any) -> bool:
    """True when an open ``strategy`` position entered at E is under §9.3 evaluation: shifted_at(S) is set (best ≠
    S) and E < shifted_at(S)."""
    at = state.shifted(strategy)
    return at is not None and utc(entry_time, "entry time") < at


def hours_between(earlier: Any, later: Any) -> float:
    """(later − earlier) in hours (float)."""
    return (utc(later, "time") - utc(earlier, "time")).total_seconds() / _SECONDS_PER_HOUR


def shift_exit_reason(r: float, shifted_h: float, age_h: float, cfg: Config) -> ExitReason | None:
    """The first matching §9.3 rule (``prioritisation.shift.*``) or None.

    ``r``: net pnl_pct of a close at the decision-bar close (slippage and both fees; fraction); ``shifted_h``: D,
    hours since shifted_at(S); ``age_h``: hours since E. Rules in order: r ≤ big_loss → big loss; r ≤
    moderate_loss and D ≥ moderate_after_h → moderate loss; |r| < flat_band and D ≥ flat_after_h → flat; r > 0
    and age ≥ stale_win_age_h → stale win.
    """
    sh = cfg.prioritisation.shift
    if not math.isfinite(r):
        raise ValueError(f"net return r must be finite, got {r!r}")
    if r <= sh.big_loss:
        return ExitReason.STRATEGY_SHIFT_BIG_LOSS
    if r <= sh.moderate_loss and shifted_h >= sh.moderate_after_h:
        return ExitReason.STRATEGY_SHIFT_MODERATE_LOSS
    if abs(r) < sh.flat_band and shifted_h >= sh.flat_after_h:
        return ExitReason.STRATEGY_SHIFT_FLAT
    if r > 0 and age_h >= sh.stale_win_age_h:
        return ExitReason.STRATEGY_SHIFT_STALE_WIN
    return None


__all__: Sequence[str] = (
    "Candidate",
    "Prioritised",
    "STRATEGY_ORDER",
    "Sentiment",
    "ShiftState",
    "advance_shift",
    "hours_between",
    "order_within_strategy",
    "prioritise",
    "sentiment",
    "shift_applies",
    "shift_exit_reason",
)
