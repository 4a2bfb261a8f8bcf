"""The enums of the scan (SPEC §0.4, §3.4, §3.6): reasons in decision order with their steps, decisions,
readiness statuses and list types; parsed strictly, an unknown value raises."""

from __future__ import annotations

from ..common import StrictEnum
from ..config import Strategy
from ..ledger import ExecutionReason
from ..protection import GateReason


class DecisionReason(StrictEnum):
    """The one reason-code enum of SPEC §3.4, in decision order. The step-4 gate codes are
    :class:`~.protection.GateReason`'s and the step-6 execution codes :class:`~.ledger.ExecutionReason`'s
    (same string values, taken from those enums); :meth:`of` maps a member of either onto this enum."""

    # step 1: data
    STALE_DATA = "stale_data"
    INSUFFICIENT_HISTORY = "insufficient_history"
    DATA_SUSPECT = "data_suspect"
    # step 2: setup
    NO_SETUP = "no_setup"
    TOP_OF_RANGE = "top_of_range"
    # step 3: confidence
    ML_BELOW_THRESHOLD = "ml_below_threshold"
    # step 4: gates (core.protection)
    PAUSED = GateReason.PAUSED.value
    REGIME_PANIC = GateReason.REGIME_PANIC.value
    DAILY_LOSS_GATE = GateReason.DAILY_LOSS_GATE.value
    LOSS_STREAK_PAUSE = GateReason.LOSS_STREAK_PAUSE.value
    STRATEGY_DISABLED = GateReason.STRATEGY_DISABLED.value
    BANNED = GateReason.BANNED.value
    COOLDOWN = GateReason.COOLDOWN.value
    # step 5: priority
    NOT_PRIORITISED = "not_prioritised"
    # step 6: execution (core.ledger), in priority order
    SYMBOL_OPEN = ExecutionReason.SYMBOL_OPEN.value
    PORTFOLIO_FULL = ExecutionReason.PORTFOLIO_FULL.value
    STRATEGY_FULL = ExecutionReason.STRATEGY_FULL.value
    ALLOCATION_EXHAUSTED = ExecutionReason.ALLOCATION_EXHAUSTED.value
    INSUFFICIENT_CASH = ExecutionReason.INSUFFICIENT_CASH.value
    # an entry order was created
    ENTERED = "entered"

    @classmethod
    def of(cls, value: "DecisionReason | GateReason | ExecutionReason | str") -> "DecisionReason":
        """Strict mapping of a reason of this enum, of GateReason / ExecutionReason, or an exact string value."""
        if isinstance(value, (GateReason, ExecutionReason)):
            return cls(value.value)
        return cls.parse(value)

    @property
    def step(self) -> int:
        """The §3.4 step that gives this reason (1–6); ``entered`` is 7 (after execution)."""
        return _STEP[self]


_STEP: dict[DecisionReason, int] = {
    **{r: 1 for r in (DecisionReason.STALE_DATA, DecisionReason.INSUFFICIENT_HISTORY, DecisionReason.DATA_SUSPECT)},
    DecisionReason.NO_SETUP: 2, DecisionReason.TOP_OF_RANGE: 2, DecisionReason.ML_BELOW_THRESHOLD: 3,
    **{DecisionReason(g.value): 4 for g in GateReason}, DecisionReason.NOT_PRIORITISED: 5,
    **{DecisionReason(e.value): 6 for e in ExecutionReason}, DecisionReason.ENTERED: 7,
}
SCAN_STEP_REASONS: tuple[DecisionReason, ...] = tuple(r for r in DecisionReason if r.step <= 3)
ENGINE_STEP_REASONS: tuple[DecisionReason, ...] = tuple(r for r in DecisionReason if r.step >= 4)


class Decision(StrictEnum):
    TAKE = "TAKE"
    SKIP = "SKIP"
    NEAR_MISS = "NEAR_MISS"

    @classmethod
    def of(cls, reason: DecisionReason, near_miss: bool = False) -> "Decision":
        """TAKE for ``entered``; NEAR_MISS for ``ml_below_threshold`` inside the near-miss band; SKIP otherwise."""
        reason = DecisionReason.of(reason)
        if reason is DecisionReason.ENTERED:
            return cls.TAKE
        if near_miss and reason is not DecisionReason.ML_BELOW_THRESHOLD:
            raise ValueError(f"only ml_below_threshold can be a near miss, not {reason.value}")
        return cls.NEAR_MISS if near_miss else cls.SKIP


class ReadinessStatus(StrictEnum):
    READY = "READY"
    CLOSE = "CLOSE"
    WAITING = "WAITING"
    BUY_ZONE = "BUY_ZONE"
    NEUTRAL = "NEUTRAL"
    SELL_ZONE = "SELL_ZONE"


# Status labels per strategy, best first (SPEC §3.6); the first one is what a firing setup shows.
STATUSES: dict[Strategy, tuple[ReadinessStatus, ReadinessStatus, ReadinessStatus]] = {
    Strategy.DCA: (ReadinessStatus.READY, ReadinessStatus.CLOSE, ReadinessStatus.WAITING),
    Strategy.SWING: (ReadinessStatus.READY, ReadinessStatus.CLOSE, ReadinessStatus.WAITING),
    Strategy.CHANNEL: (ReadinessStatus.BUY_ZONE, ReadinessStatus.NEUTRAL, ReadinessStatus.SELL_ZONE),
}


class ListType(StrictEnum):
    """Which §9.2 list a scan row's candidate was ordered in (filled by the engine; null in the preview)."""

    RECOMMENDED = "recommended"
    FALLBACK = "fallback"
