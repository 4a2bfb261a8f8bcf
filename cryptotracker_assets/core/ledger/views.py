"""Views derived from the ledger alone: open positions, closed trades and their typed records (SPEC §5.2, §7.1).

Sums use :func:`math.fsum` (exactly rounded), so a result never depends on row order and group sums equal the
stepper's own (``PositionState.quantity`` / ``entry_fees_usd`` are fsums too). Money in USD, rates fractions.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..common import UTC_NS
from ..config import Strategy, Tier
from ..exits import ExitReason, exit_fee, exit_fill
from .enums import Side, TradeOutcome
from .rows import group_slices

OPEN_POSITION_COLUMNS = (
    "trade_group_id",
    "strategy",
    "symbol",
    "tier",
    "scan_id",
    "entry_time",
    "filled_levels",
    "grid_levels",
    "unfilled_levels",
    "level_size_usd",
    "group_size_usd",
    "filled_usd",
    "qty",
    "avg_entry",
    "take_profit_price",
    "stop_price",
    "entry_fees_usd",
    "open_cost_usd",
    "reserved_usd",
    "taker_fee",
    "slippage",
    "take_profit",
    "stop_loss",
    "trailing",
    "trail_activation",
    "max_hold_min",
)
MARK_COLUMNS = ("mark", "value_usd", "unrealised_usd", "unrealised_pct")
CLOSED_TRADE_COLUMNS = (
    "trade_group_id",
    "strategy",
    "symbol",
    "tier",
    "scan_id",
    "entry_time",
    "exit_time",
    "cycle_point",
    "exit_reason",
    "filled_levels",
    "size_usd",
    "qty",
    "avg_entry",
    "exit_price",
    "entry_fees_usd",
    "exit_fee_usd",
    "pnl_usd",
    "pnl_pct",
    "outcome",
    "take_profit",
    "no_data",
)


def buy_sell(ledger: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ledger's BUY rows and its SELL rows, each in ledger order."""
    side = ledger["side"].to_numpy()
    return ledger[side == Side.BUY.value], ledger[side == Side.SELL.value]


_OPEN_SOURCE = (
    "strategy",
    "symbol",
    "tier",
    "scan_id",
    "entry_time",
    "grid_levels",
    "group_size_usd",
    "size_usd",
    "fee_usd",
    "qty",
    "avg_entry",
    "take_profit_price",
    "stop_price",
    "taker_fee",
    "slippage",
    "take_profit",
    "stop_loss",
    "trailing",
    "trail_activation",
    "max_hold_min",
)


def open_buys(ledger: pd.DataFrame) -> pd.DataFrame:
    """The BUY rows of the open groups (no SELL row)."""
    buys, sells = buy_sell(ledger)
    return buys[~buys["trade_group_id"].isin(set(sells["trade_group_id"].tolist()))]


def open_positions(ledger: pd.DataFrame, marks: Mapping[str, float] | None = None) -> pd.DataFrame:
    """One row per open group (no SELL row), ordered by entry time then trade_group_id.

    ``filled_usd``/``qty``/``entry_fees_usd`` are exact sums over the BUY rows; ``avg_entry`` and the levels are those
    the stepper put in force after the latest fill; ``open_cost_usd`` = filled + entry fees; ``reserved_usd`` =
    unfilled levels × g × (1 + fee). With ``marks`` (symbol → decision-bar close, USD) also the liquidation value
    qty × close × (1 − s) × (1 − fee) (through the §6 cost functions), unrealised USD and unrealised / filled size.
    """
    cols, bounds = group_slices(open_buys(ledger), _OPEN_SOURCE)
    records = []
    for a, b in bounds:
        i = b - 1  # the highest level: the latest fill
        size, fees = cols["size_usd"][a:b], cols["fee_usd"][a:b]
        filled = math.fsum(size)
        n = int(cols["grid_levels"][i])
        g_size, fee = cols["size_usd"][i], cols["taker_fee"][i]
        unfilled = n - (b - a)
        rec = {
            "trade_group_id": cols["trade_group_id"][i],
            **{c: cols[c][i] for c in ("strategy", "symbol", "tier", "scan_id", "entry_time")},
            "filled_levels": b - a,
            "grid_levels": n,
            "unfilled_levels": unfilled,
            "level_size_usd": g_size,
            "group_size_usd": cols["group_size_usd"][i],
            "filled_usd": filled,
            "qty": math.fsum(cols["qty"][a:b]),
            "avg_entry": cols["avg_entry"][i],
            "take_profit_price": cols["take_profit_price"][i],
            "stop_price": cols["stop_price"][i],
            "entry_fees_usd": math.fsum(fees),
            "open_cost_usd": math.fsum(size + fees),
            "reserved_usd": unfilled * g_size * (1.0 + fee),
            "taker_fee": fee,
            **{
                c: cols[c][i]
                for c in ("slippage", "take_profit", "stop_loss", "trailing", "trail_activation", "max_hold_min")
            },
        }
        if marks is not None:
            mark = mark_price(marks, rec["symbol"])
            value = liquidation_value(rec["qty"], mark, rec["slippage"], fee)
            unrealised = value - rec["open_cost_usd"]
            rec.update(mark=mark, value_usd=value, unrealised_usd=unrealised, unrealised_pct=unrealised / filled)
        records.append(rec)
    columns = list(OPEN_POSITION_COLUMNS) + (list(MARK_COLUMNS) if marks is not None else [])
    out = pd.DataFrame.from_records(records, columns=columns)
    if out.empty:
        out = out.astype({"entry_time": UTC_NS})
    return out.sort_values(["entry_time", "trade_group_id"], kind="stable").reset_index(drop=True)


def mark_price(marks: Mapping[str, float], symbol: str) -> float:
    if symbol not in marks:
        raise ValueError(f"no mark (decision-bar close) for open position symbol {symbol!r}")
    m = float(marks[symbol])
    if not (math.isfinite(m) and m > 0):
        raise ValueError(f"mark for {symbol!r} must be a positive price, got {marks[symbol]!r}")
    return m


def liquidation_value(qty: float, close: float, slippage: float, fee: float) -> float:
    """USD from selling ``qty`` at ``close`` now: qty × close × (1 − slippage) − exit fee (SPEC §6, §7.1)."""
    xf = exit_fill(close, slippage)
    return qty * xf - exit_fee(qty, xf, fee)


def closed_trades(ledger: pd.DataFrame) -> pd.DataFrame:
    """One row per closed group in exit order (exit time, then trade_group_id; SPEC §5.2).

    ``pnl_usd``/``pnl_pct``/``outcome``/``exit_fee_usd`` are those recorded on the SELL row (the stepper's);
    ``size_usd`` = Σ filled size (pnl_pct = pnl_usd / size_usd); ``cycle_point`` is the tick that closed it.
    """
    buys, sells = buy_sell(ledger)
    buys = buys[buys["trade_group_id"].isin(set(sells["trade_group_id"].tolist()))]
    cols, bounds = group_slices(buys, ("size_usd", "fee_usd"))
    per = {
        cols["trade_group_id"][a]: (b - a, math.fsum(cols["size_usd"][a:b]), math.fsum(cols["fee_usd"][a:b]))
        for a, b in bounds
    }
    n = [per[t] for t in sells["trade_group_id"].tolist()]
    sells = sells.reset_index(drop=True)
    out = pd.DataFrame(
        {
            "trade_group_id": sells["trade_group_id"],
            "strategy": sells["strategy"],
            "symbol": sells["symbol"],
            "tier": sells["tier"],
            "scan_id": sells["scan_id"],
            "entry_time": sells["entry_time"],
            "exit_time": sells["bar_time"],
            "cycle_point": sells["cycle_point"],
            "exit_reason": sells["exit_reason"],
            "filled_levels": np.array([x[0] for x in n], dtype="int64"),
            "size_usd": np.array([x[1] for x in n], dtype="float64"),
            "qty": sells["qty"],
            "avg_entry": sells["avg_entry"],
            "exit_price": sells["fill_price"],
            "entry_fees_usd": np.array([x[2] for x in n], dtype="float64"),
            "exit_fee_usd": sells["fee_usd"],
            "pnl_usd": sells["pnl_usd"],
            "pnl_pct": sells["pnl_pct"],
            "outcome": sells["outcome"],
            "take_profit": sells["take_profit"],
            "no_data": sells["no_data"],
        },
        columns=list(CLOSED_TRADE_COLUMNS),
    )
    return out.sort_values(["exit_time", "trade_group_id"], kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class ClosedTrade:
    """A closed group as the protection folds see it (fractions for pnl_pct and take_profit)."""

    trade_group_id: str
    strategy: Strategy
    symbol: str
    tier: Tier
    exit_time: pd.Timestamp
    cycle_point: pd.Timestamp  # the tick that processed the close
    exit_reason: ExitReason
    pnl_usd: float
    pnl_pct: float
    take_profit: float  # the position's effective tp frozen at entry
    outcome: TradeOutcome


def closed_trade_records(ledger: pd.DataFrame) -> list[ClosedTrade]:
    """:func:`closed_trades` as typed records (strict enum parsing), in exit order."""
    df = closed_trades(ledger)
    return [
        ClosedTrade(
            trade_group_id=r["trade_group_id"],
            strategy=Strategy.parse(r["strategy"]),
            symbol=r["symbol"],
            tier=Tier.parse(r["tier"]),
            exit_time=r["exit_time"],
            cycle_point=r["cycle_point"],
            exit_reason=ExitReason.parse(r["exit_reason"]),
            pnl_usd=float(r["pnl_usd"]),
            pnl_pct=float(r["pnl_pct"]),
            take_profit=float(r["take_profit"]),
            outcome=TradeOutcome.parse(r["outcome"]),
        )
        for r in df.to_dict("records")
    ]


def size_weighted_return(pnl_usd: Iterable[float], size_usd: Iterable[float]) -> float:
    """Σ P&L USD / Σ size USD (I-2: never a sum or mean of percentages); NaN without size."""
    size = math.fsum(size_usd)
    return math.fsum(pnl_usd) / size if size else math.nan
