"""The ledger's enumerations (SPEC §0.4), parsed strictly: an unknown value raises naming the allowed values."""

from __future__ import annotations

from ..common import StrictEnum


class Side(StrictEnum):
    BUY = "BUY"
    SELL = "SELL"


class FillKind(StrictEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"


class TradeOutcome(StrictEnum):
    """WIN when net P&L > 0, else LOSS (SPEC §5.2), whatever the exit label."""

    WIN = "WIN"
    LOSS = "LOSS"

    @classmethod
    def of(cls, pnl_usd: float) -> "TradeOutcome":
        return cls.WIN if pnl_usd > 0 else cls.LOSS


class ExecutionReason(StrictEnum):
    """Reason codes of the §7.2 execution checks (step 6 of §3.4), in priority order."""

    SYMBOL_OPEN = "symbol_open"
    PORTFOLIO_FULL = "portfolio_full"
    STRATEGY_FULL = "strategy_full"
    ALLOCATION_EXHAUSTED = "allocation_exhausted"
    INSUFFICIENT_CASH = "insufficient_cash"
