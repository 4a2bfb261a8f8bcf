"""Entry protection derived from the ledger and operator events: the trade limiter (SPEC §8.3), the daily loss gate,
the loss-streak pause and the operator pause (§7.3). Pure python/pandas; never imports dagster.

Every rule is a fold over cycle points T (SPEC §0.5): ``advance_*(state, T, inputs, cfg)`` takes an explicit frozen
state and returns a new one, and the gate functions read a state at T. Folding tick by tick (one T per call) or once
over the whole period gives identical states:

- Closed trades are taken from their ``cycle_point`` (the tick that processed the close): an advance to T applies
  the closes with previous T < cycle_point ≤ T, grouped by cycle point in time order, each group in exit order
  (exit time, then trade_group_id; SPEC §5.2). Passing all closes every time or only the new ones is the same.
- Time-based ends (cooldown, ban, loss-streak pause) are evaluated at cycle points: a ban or pause that ended by a
  cycle point is cleared (its counter reset) at that cycle point, before its closes are applied. Nothing changes at
  a cycle point without inputs except these expiries, which the next advance applies identically, so an advance may
  skip cycle points without closes.
- Operator events stamped e act from the first cycle point T > e (§0.2).
- The daily loss gate needs the step-4 mark_equity of every cycle point (it latches on any breach).

Times are tz-aware UTC; durations come from the config in hours; returns are fractions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from .common import StrictEnum, hours, utc
from .config import Config, Tier
from .exits import ExitReason
from .ledger import ClosedTrade, TradeOutcome, closed_trade_records


class GateReason(StrictEnum):
    """Step-4 gate reason codes of SPEC §3.4, in the order they are checked."""

    PAUSED = "paused"
    REGIME_PANIC = "regime_panic"
    DAILY_LOSS_GATE = "daily_loss_gate"
    LOSS_STREAK_PAUSE = "loss_streak_pause"
    STRATEGY_DISABLED = "strategy_disabled"
    BANNED = "banned"
    COOLDOWN = "cooldown"

def _next_cycle_point(last: pd.Timestamp | None, value: Any) -> pd.Timestamp:
    t = utc(value, "cycle point")
    if last is not None and t <= last:
        raise ValueError(f"cycle point {t} does not come after the state's last cycle point {last}")
    return t


def _closes_by_cycle_point(
    closes: Iterable[ClosedTrade], after: pd.Timestamp | None, upto: pd.Timestamp
) -> list[tuple[pd.Timestamp, list[ClosedTrade]]]:
    """Closes with after < cycle_point ≤ upto, grouped by cycle point (ascending), each in exit order."""
    groups: dict[pd.Timestamp, list[ClosedTrade]] = {}
    for c in closes:
        cp = utc(c.cycle_point, "close cycle point")
        if cp <= upto and (after is None or cp > after):
            groups.setdefault(cp, []).append(c)
    return [
        (cp, sorted(groups[cp], key=lambda c: (utc(c.exit_time, "exit time"), c.trade_group_id)))
        for cp in sorted(groups)
    ]


# ---------------------------------------------------------------------------------------------------------------
# Trade limiter (SPEC §8.3): per symbol, all strategies
# ---------------------------------------------------------------------------------------------------------------

_RESET_ON_PROFIT = frozenset({ExitReason.TAKE_PROFIT, ExitReason.TRAILING_STOP, ExitReason.TIME_EXIT})


@dataclass(frozen=True)
class SymbolLimit:
    """One symbol's limiter state: stop count and the end times of its cooldown and ban (None = none)."""

    stops: int = 0
    cooldown_until: pd.Timestamp | None = None
    banned_until: pd.Timestamp | None = None


@dataclass(frozen=True)
class LimiterState:
    """The ``limiter_state`` of every symbol that had a close, as of ``cycle_point``."""

    cycle_point: pd.Timestamp | None = None
    symbols: Mapping[str, SymbolLimit] = field(default_factory=dict)

    def of(self, symbol: str) -> SymbolLimit:
        return self.symbols.get(symbol, SymbolLimit())


def _expire_bans(symbols: dict[str, SymbolLimit], t: pd.Timestamp) -> None:
    for sym, st in symbols.items():
        if st.banned_until is not None and t >= st.banned_until:
            symbols[sym] = replace(st, stops=0, banned_until=None)  # stops = 0 when the ban ends


def _apply_limiter_close(st: SymbolLimit, c: ClosedTrade, cfg: Config) -> SymbolLimit:
    lim = cfg.protection.limiter
    x = utc(c.exit_time, "exit time")
    reason = ExitReason.parse(c.exit_reason)
    if reason is ExitReason.STOP_LOSS:
        stops = st.stops + 1
        banned = x + hours(lim.ban_h) if stops >= lim.ban_after_stops else st.banned_until
        return SymbolLimit(stops, x + hours(lim.cooldown_h.of(Tier(c.tier))), banned)
    # A stop_loss exit sits below A, so it never reaches the profit reset: the two rules never meet on one exit.
    if (reason in _RESET_ON_PROFIT and c.pnl_usd > 0) or c.pnl_pct >= lim.reset_profit_fraction_of_tp * c.take_profit:
        return replace(st, stops=0)
    return st


def advance_limiter(state: LimiterState, cycle_point: Any, closes: Iterable[ClosedTrade], cfg: Config) -> LimiterState:
    """Fold the closes processed up to cycle point T into the limiter (SPEC §8.3).

    On a ``stop_loss`` exit: stops + 1, cooldown until exit time + ``protection.limiter.cooldown_h.<tier>``; at
    stops ≥ ``ban_after_stops`` banned until exit time + ``ban_h``; stops = 0 once the ban has ended (cleared at
    the first cycle point ≥ its end). stops = 0 on a ``take_profit``/``trailing_stop``/``time_exit`` exit with net
    P&L > 0, or on any exit with net pnl_pct ≥ ``reset_profit_fraction_of_tp`` × the position's tp. Other exits
    change nothing.
    """
    t = _next_cycle_point(state.cycle_point, cycle_point)
    symbols = dict(state.symbols)
    for cp, group in _closes_by_cycle_point(closes, state.cycle_point, t):
        _expire_bans(symbols, cp)
        for c in group:
            symbols[c.symbol] = _apply_limiter_close(symbols.get(c.symbol, SymbolLimit()), c, cfg)
    _expire_bans(symbols, t)
    return LimiterState(cycle_point=t, symbols=symbols)


def limiter_gate(state: LimiterState, symbol: str, cycle_point: Any) -> GateReason | None:
    """``banned`` (checked first) or ``cooldown`` while T < its end time, else None."""
    t = utc(cycle_point, "cycle point")
    st = state.of(symbol)
    if st.banned_until is not None and t < st.banned_until:
        return GateReason.BANNED
    if st.cooldown_until is not None and t < st.cooldown_until:
        return GateReason.COOLDOWN
    return None


LIMITER_COLUMNS = ("symbol", "stops", "cooldown_until", "banned_until", "cycle_point")


def limiter_frame(state: LimiterState) -> pd.DataFrame:
    """The ``limiter_state`` table: one row per symbol (sorted), end times UTC or NaT."""
    rows = [
        (sym, st.stops, st.cooldown_until, st.banned_until, state.cycle_point)
        for sym, st in sorted(state.symbols.items())
    ]
    df = pd.DataFrame(rows, columns=list(LIMITER_COLUMNS))
    for c in ("cooldown_until", "banned_until", "cycle_point"):
        df[c] = pd.to_datetime(df[c], utc=True)
    return df.astype({"stops": "int64"})


# ---------------------------------------------------------------------------------------------------------------
# Loss streak (SPEC §7.3)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LossStreakState:
    """Consecutive LOSS closes (``manual`` excluded) and the pause they started, as of ``cycle_point``."""

    cycle_point: pd.Timestamp | None = None
    count: int = 0
    paused_at: pd.Timestamp | None = None  # the cycle point where the streak completed
    paused_until: pd.Timestamp | None = None


def _expire_pause(state: LossStreakState, t: pd.Timestamp) -> LossStreakState:
    if state.paused_until is not None and t >= state.paused_until:
        return replace(state, count=0, paused_at=None, paused_until=None)  # the count resets when the pause ends
    return state


def advance_loss_streak(
    state: LossStreakState, cycle_point: Any, closes: Iterable[ClosedTrade], cfg: Config
) -> LossStreakState:
    """Fold the closes processed up to cycle point T into the loss streak (SPEC §7.3).

    In exit order, every non-``manual`` close: WIN → count 0; LOSS → count + 1, and when the count reaches
    ``limits.loss_streak`` entries pause for ``limits.loss_streak_pause_h`` from the cycle point that processed the
    completing close. The count also resets when the pause ends (at the first cycle point ≥ its end).
    """
    t = _next_cycle_point(state.cycle_point, cycle_point)
    lim = cfg.limits
    st = replace(state, cycle_point=t)
    for cp, group in _closes_by_cycle_point(closes, state.cycle_point, t):
        st = _expire_pause(st, cp)
        for c in group:
            if ExitReason.parse(c.exit_reason) is ExitReason.MANUAL:
                continue
            if TradeOutcome.parse(c.outcome) is TradeOutcome.WIN:
                st = replace(st, count=0)
                continue
            st = replace(st, count=st.count + 1)
            if st.count == lim.loss_streak:
                st = replace(st, paused_at=cp, paused_until=cp + hours(lim.loss_streak_pause_h))
    return _expire_pause(st, t)


def loss_streak_gate(state: LossStreakState, cycle_point: Any) -> bool:
    """True while T < the end of the loss-streak pause."""
    t = utc(cycle_point, "cycle point")
    return state.paused_until is not None and t < state.paused_until


# ---------------------------------------------------------------------------------------------------------------
# Daily loss gate (SPEC §7.3)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DailyLossState:
    """E₀ of the current UTC trading day and whether the gate has latched, as of ``cycle_point``."""

    cycle_point: pd.Timestamp | None = None
    day: pd.Timestamp | None = None  # 00:00 UTC of the trading day
    e0: float | None = None
    e0_at: pd.Timestamp | None = None  # the cycle point E₀ was taken at
    latched_at: pd.Timestamp | None = None


def advance_daily_loss(state: DailyLossState, cycle_point: Any, mark_equity: float, cfg: Config) -> DailyLossState:
    """Fold the step-4 ``mark_equity`` (USD) of cycle point T into the daily loss gate.

    E₀ = mark_equity at the 00:00 UTC cycle point (a fold that starts later in a day takes it at its first cycle
    point of that day). The gate latches, until the next 00:00 UTC, once mark_equity − E₀ ≤
    −``limits.daily_loss_limit`` × E₀.
    """
    t = _next_cycle_point(state.cycle_point, cycle_point)
    equity = float(mark_equity)
    day = t.floor("D")
    st = replace(state, cycle_point=t)
    if st.day != day:
        st = replace(st, day=day, e0=equity, e0_at=t, latched_at=None)
    if st.latched_at is None and equity - st.e0 <= -(cfg.limits.daily_loss_limit * st.e0):
        st = replace(st, latched_at=t)
    return st


def daily_loss_gate(state: DailyLossState, cycle_point: Any) -> bool:
    """True when the gate latched on T's UTC day (it never carries over a 00:00 UTC)."""
    t = utc(cycle_point, "cycle point")
    return state.latched_at is not None and state.day == t.floor("D")


def daily_loss_from_snapshots(snapshots: pd.DataFrame, cfg: Config) -> DailyLossState:
    """Fold ``portfolio_snapshots`` (``cycle_point``, ``equity`` = mark_equity) in cycle-point order."""
    st = DailyLossState()
    ordered = snapshots.sort_values("cycle_point", kind="stable")
    for t, equity in zip(ordered["cycle_point"], ordered["equity"]):
        st = advance_daily_loss(st, t, equity, cfg)
    return st


# ---------------------------------------------------------------------------------------------------------------
# Operator pause / resume (SPEC §7.3)
# ---------------------------------------------------------------------------------------------------------------


class OperatorAction(StrictEnum):
    PAUSE = "pause"
    RESUME = "resume"

@dataclass(frozen=True)
class OperatorEvent:
    """``cryptotracker pause`` / ``resume`` stamped at ``time`` (UTC), with who and why."""

    time: pd.Timestamp
    action: OperatorAction
    who: str
    why: str


@dataclass(frozen=True)
class OperatorState:
    """Whether entries are paused by an operator, and by whom, why and since when (the event time)."""

    cycle_point: pd.Timestamp | None = None
    paused: bool = False
    who: str | None = None
    why: str | None = None
    since: pd.Timestamp | None = None


def advance_operator(state: OperatorState, cycle_point: Any, events: Iterable[OperatorEvent]) -> OperatorState:
    """Apply the events stamped in [previous T, T) — each acts from the first cycle point after it — in time order
    (equal times keep their given order). A pause blocks entries until a resume; exits always continue."""
    t = _next_cycle_point(state.cycle_point, cycle_point)
    due = []
    for i, ev in enumerate(events):
        e = utc(ev.time, "operator event time")
        if e < t and (state.cycle_point is None or e >= state.cycle_point):
            due.append((e, i, ev))
    st = replace(state, cycle_point=t)
    for e, _, ev in sorted(due, key=lambda x: (x[0], x[1])):
        if OperatorAction.parse(ev.action) is OperatorAction.PAUSE:
            st = replace(st, paused=True, who=ev.who, why=ev.why, since=e)
        else:
            st = replace(st, paused=False, who=ev.who, why=ev.why, since=e)
    return st


# ---------------------------------------------------------------------------------------------------------------
# All protection state of one cycle point, and the step-4 gate order
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProtectionState:
    """The ledger- and event-derived protection state of one cycle point."""

    limiter: LimiterState = field(default_factory=LimiterState)
    loss_streak: LossStreakState = field(default_factory=LossStreakState)
    daily_loss: DailyLossState = field(default_factory=DailyLossState)
    operator: OperatorState = field(default_factory=OperatorState)


def advance_protection(
    state: ProtectionState,
    cycle_point: Any,
    *,
    closes: Iterable[ClosedTrade],
    mark_equity: float,
    events: Iterable[OperatorEvent],
    cfg: Config,
) -> ProtectionState:
    """Advance every rule to cycle point T: ``closes`` processed so far (steps 2–3), the step-4 ``mark_equity``
    (USD) and the operator events."""
    closes = list(closes)
    return ProtectionState(
        limiter=advance_limiter(state.limiter, cycle_point, closes, cfg),
        loss_streak=advance_loss_streak(state.loss_streak, cycle_point, closes, cfg),
        daily_loss=advance_daily_loss(state.daily_loss, cycle_point, mark_equity, cfg),
        operator=advance_operator(state.operator, cycle_point, events),
    )


def entry_gate(
    state: ProtectionState,
    cycle_point: Any,
    symbol: str,
    *,
    regime_panic: bool,
    strategy_disabled: bool,
) -> GateReason | None:
    """The first failing step-4 gate of SPEC §3.4 for a symbol × strategy at T, or None.

    Order: ``paused``, ``regime_panic``, ``daily_loss_gate``, ``loss_streak_pause``, ``strategy_disabled``,
    ``banned``, ``cooldown``. ``regime_panic`` (§8.1) and ``strategy_disabled`` (``strategies.<s>.enabled`` or §8.2)
    come from the market state.
    """
    t = utc(cycle_point, "cycle point")
    if state.operator.paused:
        return GateReason.PAUSED
    if regime_panic:
        return GateReason.REGIME_PANIC
    if daily_loss_gate(state.daily_loss, t):
        return GateReason.DAILY_LOSS_GATE
    if loss_streak_gate(state.loss_streak, t):
        return GateReason.LOSS_STREAK_PAUSE
    if strategy_disabled:
        return GateReason.STRATEGY_DISABLED
    return limiter_gate(state.limiter, symbol, t)


def limiter_from_ledger(ledger: pd.DataFrame, cycle_point: Any, cfg: Config) -> LimiterState:
    """The limiter at T derived in one fold from the ledger's closed trades (equal to folding tick by tick)."""
    return advance_limiter(LimiterState(), cycle_point, closed_trade_records(ledger), cfg)


def loss_streak_from_ledger(ledger: pd.DataFrame, cycle_point: Any, cfg: Config) -> LossStreakState:
    """The loss streak at T derived in one fold from the ledger's closed trades (equal to folding tick by tick)."""
    return advance_loss_streak(LossStreakState(), cycle_point, closed_trade_records(ledger), cfg)


__all__: Sequence[str] = (
    "DailyLossState",
    "GateReason",
    "LIMITER_COLUMNS",
    "LimiterState",
    "LossStreakState",
    "OperatorAction",
    "OperatorEvent",
    "OperatorState",
    "ProtectionState",
    "SymbolLimit",
    "advance_daily_loss",
    "advance_limiter",
    "advance_loss_streak",
    "advance_operator",
    "advance_protection",
    "daily_loss_from_snapshots",
    "daily_loss_gate",
    "entry_gate",
    "limiter_frame",
    "limiter_from_ledger",
    "limiter_gate",
    "loss_streak_from_ledger",
    "loss_streak_gate",
)
