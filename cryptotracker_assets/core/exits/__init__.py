"""Exit reasons and rules, costs, the batch exit simulator and the per-bar position stepper (SPEC §4, §5, §6).

Pure numpy/pandas; never imports dagster. Rates (take profit, stop loss, trail, activation, fee, slippage) are
**fractions** (0.025 = 2.5 %); 0 disables an exit (``trail_activation`` 0 = trail armed from the entry bar). Times
are tz-aware UTC; a bar is named by its open time. Money in USD, prices in USD per coin.

- :mod:`.rules`: :class:`ExitReason`, :class:`ExitRule` and :func:`opening_rule`, the one function deciding the
  frozen rule (effective tp, widened stop, trail, activation, max hold) a new position opens with.
- :mod:`.costs`: the SPEC §6 cost functions every fill and P&L goes through.
- :mod:`.batch` (with :mod:`.kernel`): :func:`simulate_exits`, the fast batch simulator (single-level positions,
  offline research, shadows, labels).
- :mod:`.stepper`: :class:`PositionState` / :func:`step`, the incremental stepper with DCA grid fills for the paper
  engine. Both simulators use the same cost functions and agree exactly on single-level positions.
"""

from __future__ import annotations

from collections.abc import Sequence

from .batch import (
    BAR_COLUMNS,
    DEFAULT_BLOCK,
    ENTRY_COLUMNS,
    TRADE_COLUMNS,
    BarArrays,
    SimulationInputError,
    resolve_bar_ns,
    simulate_exits,
)
from .costs import entry_fee, entry_fill, entry_quantity, exit_fee, exit_fill, net_pnl, pnl_ratio, slippage_cost
from .rules import ENTRY_RANGES, MAX_HOLD_LIMIT_MIN, ExitReason, ExitRule, opening_rule, widen_stop
from .stepper import Bar, ExitEvent, GridFill, PositionState, close_position, pass_quietly, quiet_through, step

__all__: Sequence[str] = (
    "BAR_COLUMNS",
    "Bar",
    "BarArrays",
    "DEFAULT_BLOCK",
    "ENTRY_COLUMNS",
    "ENTRY_RANGES",
    "ExitEvent",
    "ExitReason",
    "ExitRule",
    "GridFill",
    "MAX_HOLD_LIMIT_MIN",
    "PositionState",
    "SimulationInputError",
    "TRADE_COLUMNS",
    "close_position",
    "entry_fee",
    "entry_fill",
    "entry_quantity",
    "exit_fee",
    "exit_fill",
    "net_pnl",
    "opening_rule",
    "pass_quietly",
    "pnl_ratio",
    "quiet_through",
    "resolve_bar_ns",
    "simulate_exits",
    "slippage_cost",
    "step",
    "widen_stop",
)
