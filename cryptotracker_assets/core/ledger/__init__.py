"""The paper-trading ledger: identifiers, row layout, rows from the stepper, and everything derived from it.

SPEC §0.3 (identifiers), §4 (DCA grid rows), §5.3 (ledger rows), §6 (costs), §7.1 (portfolio state), §7.2
(execution checks). Pure python/pandas; never imports dagster.

- :mod:`.ids` (identifiers) and :mod:`.enums` (strict enums); :mod:`.rows` (layout, appends, rows of a stepped
  position) and :mod:`.checks` (validation); :mod:`.views` (open positions, closed trades); :mod:`.portfolio`
  (portfolio state, snapshots, performance); :mod:`.admission` (execution checks).
- Positions, cash and the portfolio state are derived from the ledger alone (never from process memory).
- Money in USD (float64, never rounded here); rates and returns are fractions; timestamps tz-aware UTC.
"""

from __future__ import annotations

from collections.abc import Sequence

from .admission import admit, apply_order, check_execution, limit_violations
from .checks import check_ledger
from .enums import ExecutionReason, FillKind, Side, TradeOutcome
from .ids import MAX_TRADE_GROUP_ID_LEN, SCAN_ID_RE, TRADE_GROUP_ID_RE, scan_id, trade_group_id
from .portfolio import (
    SNAPSHOT_COLUMNS,
    OpenCounts,
    OpenGroup,
    PendingOrder,
    Performance,
    PortfolioState,
    book_state,
    open_counts,
    open_groups,
    performance,
    portfolio_state,
    realised_pnl,
    snapshot_row,
)
from .rows import (
    GROUP_COLUMNS,
    LEDGER_COLUMNS,
    LEDGER_DTYPES,
    LEDGER_KEY,
    LEDGER_SCHEMA,
    SELL_LEVEL,
    LedgerError,
    TradeMeta,
    append_rows,
    empty_ledger,
    grid_shape,
    ledger_frame,
    step_rows,
)
from .views import (
    CLOSED_TRADE_COLUMNS,
    MARK_COLUMNS,
    OPEN_POSITION_COLUMNS,
    ClosedTrade,
    closed_trade_records,
    closed_trades,
    liquidation_value,
    open_positions,
    size_weighted_return,
)

__all__: Sequence[str] = (
    "CLOSED_TRADE_COLUMNS",
    "ClosedTrade",
    "ExecutionReason",
    "FillKind",
    "GROUP_COLUMNS",
    "LEDGER_COLUMNS",
    "LEDGER_DTYPES",
    "LEDGER_KEY",
    "LEDGER_SCHEMA",
    "LedgerError",
    "MARK_COLUMNS",
    "MAX_TRADE_GROUP_ID_LEN",
    "OPEN_POSITION_COLUMNS",
    "OpenCounts",
    "OpenGroup",
    "PendingOrder",
    "Performance",
    "PortfolioState",
    "SCAN_ID_RE",
    "SELL_LEVEL",
    "SNAPSHOT_COLUMNS",
    "Side",
    "TRADE_GROUP_ID_RE",
    "TradeMeta",
    "TradeOutcome",
    "admit",
    "append_rows",
    "apply_order",
    "book_state",
    "check_execution",
    "check_ledger",
    "closed_trade_records",
    "closed_trades",
    "empty_ledger",
    "grid_shape",
    "ledger_frame",
    "limit_violations",
    "liquidation_value",
    "open_counts",
    "open_groups",
    "open_positions",
    "performance",
    "portfolio_state",
    "realised_pnl",
    "scan_id",
    "size_weighted_return",
    "snapshot_row",
    "step_rows",
    "trade_group_id",
)
