"""The per-bar position stepper for the paper engine (SPEC §5.2 with the DCA grid of §4).

Per-bar order, levels using data up to the previous bar only: stop (open ≤ stop → open, low ≤ stop → stop), then take
profit (open ≥ TP → open, high ≥ TP → TP), then time exit (close of the first bar whose open + bar length ≥ E + max
hold), then DCA grid fills and the high-water mark update. Missing bars are never synthesised: the next real bar's
open decides. Levels are float64 computed exactly as written (``A × (1 + take_profit)``, ``A × (1 − stop_loss)``,
``A × (1 + trail_activation)``, ``H × (1 − trailing)``) and compared with ``≤``/``≥`` exactly as SPEC §5.2 states.
Times are tz-aware UTC; a bar is named by its open time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..common import NS_PER_MIN, utc
from .costs import entry_fee, entry_fill, entry_quantity, exit_fee, exit_fill, net_pnl, pnl_ratio, slippage_cost
from .rules import ExitReason, ExitRule


@dataclass(frozen=True)
class Bar:
    """One base bar: open time (tz-aware UTC) and OHLC prices."""

    time: pd.Timestamp
    open: float
    high: float
    low: float
    close: float


@dataclass(frozen=True)
class GridFill:
    """One buy of a position: level 0 is the market entry, levels ≥ 1 are DCA limit fills (no slippage)."""

    level: int
    time: pd.Timestamp
    raw_price: float
    fill_price: float
    quantity: float
    size_usd: float
    fee_usd: float
    slippage_usd: float
    fill_kind: str  # MARKET | LIMIT


@dataclass(frozen=True)
class ExitEvent:
    """The closing sell of a position with its costs (USD) and the levels in force on the exit bar."""

    reason: ExitReason
    time: pd.Timestamp
    raw_price: float
    fill_price: float
    quantity: float
    size_usd: float  # Σ g over filled levels
    entry_fees_usd: float
    exit_fee_usd: float
    fees_usd: float  # entry fees + exit fee
    slippage_usd: float  # of the sell
    pnl_usd: float
    pnl_ratio: float
    high_water: float
    avg_entry: float
    take_profit_price: float | None
    stop_price: float | None
    trail_price: float | None  # the armed trailing level L, else None
    no_data: bool = False


@dataclass
class PositionState:
    """An open position evolving bar by bar; create it with :meth:`open` and advance it with :func:`step`."""

    rule: ExitRule
    fee: float
    slippage: float
    entry_time: pd.Timestamp
    bar_length: pd.Timedelta
    level_size: float
    grid_prices: tuple[float, ...]  # P_1 … P_{n-1}
    fills: list[GridFill]
    avg_entry: float
    take_profit_price: float  # +inf when disabled
    stop_price: float  # -inf when disabled
    activation_price: float  # +inf when the trail is disabled
    high_water: float
    last_time: pd.Timestamp | None = None
    exit: ExitEvent | None = None

    @classmethod
    def open(
        cls,
        time: Any,
        open_price: float,
        size_usd: float,
        rule: ExitRule,
        fee: float,
        slippage: float,
        bar_minutes: float,
        levels: int = 1,
        spacing: float = 0.0,
    ) -> "PositionState":
        """Open at the entry bar's open: level 0 market buy of ``size_usd / levels`` at open × (1 + slippage).

        ``levels``/``spacing`` describe the DCA grid (§4; 1 level = a plain position): P_i = F₀ × (1 − spacing·i).
        ``size_usd`` is the whole grid G; fee and slippage are fractions. Then call :func:`step` on the entry bar.
        """
        if not (isinstance(levels, int) and levels >= 1):
            raise ValueError(f"levels must be an integer >= 1, got {levels!r}")
        if not (math.isfinite(spacing) and spacing >= 0 and spacing * (levels - 1) < 1):
            raise ValueError(f"spacing must be >= 0 with spacing × (levels − 1) < 1, got {spacing!r}")
        if not (math.isfinite(size_usd) and size_usd > 0):
            raise ValueError(f"size_usd must be > 0, got {size_usd!r}")
        for name, v in (("fee", fee), ("slippage", slippage)):
            if not (math.isfinite(v) and 0 <= v < 1):
                raise ValueError(f"{name} must be a fraction in [0, 1), got {v!r}")
        if not (math.isfinite(bar_minutes) and bar_minutes > 0):
            raise ValueError(f"bar_minutes must be > 0, got {bar_minutes!r}")
        t = utc(time, "entry time")
        g = size_usd / levels
        f0 = entry_fill(float(open_price), slippage)
        q0 = entry_quantity(g, f0)
        first = GridFill(
            0, t, float(open_price), f0, q0, g, entry_fee(g, fee), slippage_cost(f0, float(open_price), q0), "MARKET"
        )
        state = cls(
            rule=rule,
            fee=fee,
            slippage=slippage,
            entry_time=t,
            bar_length=pd.Timedelta(int(round(bar_minutes * NS_PER_MIN)), unit="ns"),
            level_size=g,
            grid_prices=tuple(f0 * (1.0 - spacing * i) for i in range(1, levels)),
            fills=[first],
            avg_entry=f0,
            take_profit_price=math.inf,
            stop_price=-math.inf,
            activation_price=math.inf,
            high_water=f0,
        )
        state._set_levels(f0)
        return state

    def _set_levels(self, avg: float) -> None:
        r = self.rule
        self.avg_entry = avg
        self.take_profit_price = avg * (1.0 + r.take_profit) if r.take_profit > 0 else math.inf
        self.stop_price = avg * (1.0 - r.stop_loss) if r.stop_loss > 0 else -math.inf
        self.activation_price = avg * (1.0 + r.trail_activation) if r.trailing > 0 else math.inf
        self.high_water = avg

    # --- aggregates over fills (exact-rounded sums, so any summation order gives the same value) ---------------
    @property
    def quantity(self) -> float:
        return math.fsum(f.quantity for f in self.fills)

    @property
    def filled_usd(self) -> float:
        return self.level_size * len(self.fills)

    @property
    def entry_fees_usd(self) -> float:
        return math.fsum(f.fee_usd for f in self.fills)

    @property
    def is_open(self) -> bool:
        return self.exit is None

    @property
    def max_hold(self) -> pd.Timedelta | None:
        ns = self.max_hold_ns
        return None if ns is None else pd.Timedelta(ns, unit="ns")

    @property
    def max_hold_ns(self) -> int | None:
        """The max hold in nanoseconds (None: no time exit)."""
        m = self.rule.max_hold_minutes
        return int(round(m * NS_PER_MIN)) if m > 0 else None

    def levels_in_force(self) -> tuple[float, float, float | None]:
        """(effective stop, static stop, armed trailing level L or None) for the next bar; ±inf = disabled."""
        armed = self.high_water >= self.activation_price
        trail = self.high_water * (1.0 - self.rule.trailing) if armed else None
        eff = self.stop_price if trail is None else max(self.stop_price, trail)
        return eff, self.stop_price, trail


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def close_position(
    state: PositionState, time: Any, raw_price: float, reason: ExitReason, *, no_data: bool = False
) -> ExitEvent:
    """Close ``state`` at ``raw_price`` (a MARKET sell at raw × (1 − slippage) plus the fee, SPEC §5.2/§6).

    Used by :func:`step` and directly for strategy-shift, manual, no-data and end-of-data closes.
    """
    if state.exit is not None:
        raise ValueError("position already closed")
    reason = ExitReason(reason)
    t = utc(time, "exit time")
    raw = float(raw_price)
    xf = exit_fill(raw, state.slippage)
    q = state.quantity
    size = state.filled_usd
    fee_in = state.entry_fees_usd
    fee_out = exit_fee(q, xf, state.fee)
    pnl = net_pnl(q, xf, size, fee_in, fee_out)
    _, _, trail = state.levels_in_force()
    ev = ExitEvent(
        reason=reason,
        time=t,
        raw_price=raw,
        fill_price=xf,
        quantity=q,
        size_usd=size,
        entry_fees_usd=fee_in,
        exit_fee_usd=fee_out,
        fees_usd=fee_in + fee_out,
        slippage_usd=slippage_cost(xf, raw, q),
        pnl_usd=pnl,
        pnl_ratio=pnl_ratio(pnl, size),
        high_water=state.high_water,
        avg_entry=state.avg_entry,
        take_profit_price=_finite_or_none(state.take_profit_price),
        stop_price=_finite_or_none(state.stop_price),
        trail_price=trail,
        no_data=no_data,
    )
    state.exit = ev
    return ev


def step(state: PositionState, bar: Bar) -> ExitEvent | None:
    """Advance ``state`` by one base bar (SPEC §5.2 steps 1–5); returns the exit if the position closed on it.

    Bars must come in time order, from the entry bar on; a missing bar is simply not stepped (never synthesised).
    """
    if state.exit is not None:
        raise ValueError("position already closed")
    t = utc(bar.time, "bar time")
    if t < state.entry_time or (state.last_time is not None and t <= state.last_time):
        raise ValueError(f"bar at {t} is out of order (entry {state.entry_time}, last bar {state.last_time})")
    state.last_time = t
    o, h, lo, c = float(bar.open), float(bar.high), float(bar.low), float(bar.close)
    # 1. levels from data up to the previous bar
    hw = state.high_water
    armed = hw >= state.activation_price
    trail = hw * (1.0 - state.rule.trailing)
    trail_wins = armed and trail > state.stop_price
    eff = trail if trail_wins else state.stop_price
    reason = ExitReason.TRAILING_STOP if trail_wins else ExitReason.STOP_LOSS
    # 2. stop
    if o <= eff:
        return close_position(state, t, o, reason)
    if lo <= eff:
        return close_position(state, t, eff, reason)
    # 3. take profit
    tp = state.take_profit_price
    if o >= tp:
        return close_position(state, t, o, ExitReason.TAKE_PROFIT)
    if h >= tp:
        return close_position(state, t, tp, ExitReason.TAKE_PROFIT)
    # 4. time exit
    hold = state.max_hold_ns  # in ns: the same comparison as with timestamps, without building them
    if hold is not None and t.value + state.bar_length.value >= state.entry_time.value + hold:
        return close_position(state, t, c, ExitReason.TIME_EXIT)
    # 5. DCA grid fills, then the high-water mark
    filled_levels = {f.level for f in state.fills}
    new = False
    for i, p in enumerate(state.grid_prices, start=1):
        if i not in filled_levels and lo <= p:
            fill = min(p, o)
            q = entry_quantity(state.level_size, fill)
            state.fills.append(
                GridFill(i, t, fill, fill, q, state.level_size, entry_fee(state.level_size, state.fee), 0.0, "LIMIT")
            )
            new = True
    if new:
        state._set_levels(state.filled_usd / state.quantity)
    else:
        state.high_water = max(hw, h)
    return None


def quiet_through(state: PositionState, open_min: float, low_min: float, high_max: float, open_max: float,
                  last_ns: int) -> bool:
    """True when :func:`step` on every bar of a block (bars after the last stepped one, up to the bar opening at
    ``last_ns``; their lowest open and low, highest high and open) provably changes nothing but the high-water
    mark and the last bar time: no stop (every low and open above the highest effective stop the block could
    reach — the static stop or the trail of the block's highest high), no take profit, no time exit, no grid fill.
    Bounds only: ``False`` means "step bar by bar", never that something fires."""
    if state.exit is not None:
        return False
    hw = max(state.high_water, high_max)
    stop = state.stop_price
    if state.activation_price != math.inf and hw >= state.activation_price:
        stop = max(stop, hw * (1.0 - state.rule.trailing))  # the trail only rises with H: this is its top
    if not (low_min > stop and open_min > stop):
        return False
    if not (high_max < state.take_profit_price and open_max < state.take_profit_price):
        return False
    hold = state.max_hold_ns
    if hold is not None and last_ns + state.bar_length.value >= state.entry_time.value + hold:
        return False
    filled = {f.level for f in state.fills}
    return not any(low_min <= p for i, p in enumerate(state.grid_prices, start=1) if i not in filled)


def pass_quietly(state: PositionState, high_max: float, last_time: pd.Timestamp) -> None:
    """What :func:`step` does on a block :func:`quiet_through` cleared: H = max(H, highs), the last bar time."""
    state.high_water = max(state.high_water, high_max)
    state.last_time = last_time
