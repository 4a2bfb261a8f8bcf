"""Portfolio state (SPEC §7.1): THE one function for engine, reports, CLI and HTML report, and the performance
summary built on it. Derived from the ledger, the pending entry orders and the marks; money in USD."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..common import utc
from ..config import Config, Strategy
from .enums import TradeOutcome
from .rows import group_slices
from .views import (buy_sell, closed_trades, liquidation_value, mark_price, open_buys, open_positions,
                    size_weighted_return)


@dataclass(frozen=True)
class PendingOrder:
    """An entry order decided at a cycle point and not yet filled (its full G counts from the decision)."""

    strategy: Strategy
    symbol: str
    size_usd: float  # G
    decided_at: pd.Timestamp
    scan_id: str


@dataclass(frozen=True)
class OpenCounts:
    """Open groups + pending orders: in total, per strategy and per symbol (the §7.2 / I-3 counts)."""

    total: int
    by_strategy: Mapping[Strategy, int] = field(default_factory=dict)
    by_symbol: Mapping[str, int] = field(default_factory=dict)

    def strategy(self, s: Strategy | str) -> int:
        return self.by_strategy.get(Strategy.parse(s), 0)

    def symbol(self, symbol: str) -> int:
        return self.by_symbol.get(symbol, 0)

    def plus(self, strategy: Strategy | str, symbol: str) -> "OpenCounts":
        s = Strategy.parse(strategy)
        by_s = dict(self.by_strategy)
        by_s[s] = by_s.get(s, 0) + 1
        by_y = dict(self.by_symbol)
        by_y[symbol] = by_y.get(symbol, 0) + 1
        return OpenCounts(self.total + 1, by_s, by_y)


@dataclass(frozen=True)
class PortfolioState:
    """SPEC §7.1 quantities (USD). ``committed`` is Σ G of open groups and pending orders per strategy."""

    initial: float
    realised: float
    open_cost: float
    reserved: float
    cash: float
    available: float
    book_equity: float
    positions_value: float
    unrealised: float
    mark_equity: float
    deployable: float
    committed: Mapping[Strategy, float]
    open_positions: int
    pending_orders: int

    def committed_of(self, strategy: Strategy | str) -> float:
        return self.committed.get(Strategy.parse(strategy), 0.0)


def open_counts(ledger: pd.DataFrame, pending_orders: Iterable[PendingOrder] = ()) -> OpenCounts:
    """Counts of open groups (no SELL row) plus pending orders."""
    buys, sells = buy_sell(ledger)
    level0 = buys[(buys["level"] == 0) & ~buys["trade_group_id"].isin(set(sells["trade_group_id"]))]
    counts = OpenCounts(0)
    for strategy, symbol in zip(level0["strategy"], level0["symbol"]):
        counts = counts.plus(strategy, symbol)
    for o in pending_orders:
        counts = counts.plus(o.strategy, o.symbol)
    return counts


@dataclass(frozen=True, slots=True)
class OpenGroup:
    """An open trade group as the portfolio state needs it: each fill's size, fee and quantity (USD, USD, coins),
    the grid (n levels of ``level_size_usd``), the total size G and the costs frozen at entry (fractions).

    Built from the ledger's BUY rows (:func:`open_groups`) or from the engine's open positions; both carry the
    same numbers, so :func:`book_state` gives the same state bit for bit whichever source it is fed."""

    strategy: Strategy
    symbol: str
    group_size_usd: float
    level_size_usd: float
    grid_levels: int
    sizes: tuple[float, ...]
    fees: tuple[float, ...]
    quantities: tuple[float, ...]
    taker_fee: float
    slippage: float


def open_groups(ledger: pd.DataFrame) -> list[OpenGroup]:
    """The open groups (no SELL row) of ``ledger`` (in trade_group_id order)."""
    cols, bounds = group_slices(open_buys(ledger), ("strategy", "symbol", "group_size_usd", "size_usd", "fee_usd",
                                                    "qty", "grid_levels", "taker_fee", "slippage"))
    return [OpenGroup(strategy=Strategy.parse(cols["strategy"][b - 1]), symbol=cols["symbol"][b - 1],
                      group_size_usd=cols["group_size_usd"][b - 1], level_size_usd=cols["size_usd"][b - 1],
                      grid_levels=int(cols["grid_levels"][b - 1]), sizes=tuple(cols["size_usd"][a:b]),
                      fees=tuple(cols["fee_usd"][a:b]), quantities=tuple(cols["qty"][a:b]),
                      taker_fee=cols["taker_fee"][b - 1], slippage=cols["slippage"][b - 1])
            for a, b in bounds]


def realised_pnl(ledger: pd.DataFrame) -> float:
    """Σ net P&L of the closed groups (the SELL rows), exactly rounded (USD)."""
    _, sells = buy_sell(ledger)
    return math.fsum(sells["pnl_usd"].tolist())


def portfolio_state(
    ledger: pd.DataFrame,
    pending_orders: Iterable[PendingOrder],
    marks: Mapping[str, float],
    cfg: Config,
) -> PortfolioState:
    """The portfolio state of SPEC §7.1 from the ledger, the pending entry orders and the marks: :func:`book_state`
    of the ledger's open groups and realised P&L."""
    return book_state(open_groups(ledger), realised_pnl(ledger), pending_orders, marks, cfg)


def book_state(
    groups: Iterable[OpenGroup],
    realised: float,
    pending_orders: Iterable[PendingOrder],
    marks: Mapping[str, float],
    cfg: Config,
) -> PortfolioState:
    """THE portfolio state of SPEC §7.1 (the one formula for engine, reports, CLI and HTML report).

    ``groups``: the open groups; ``realised``: Σ net P&L of the closed ones; ``marks``: symbol → decision-bar close
    (USD per coin) for every symbol with an open group (a missing one raises). Open groups value at liquidation with
    the fee and slippage frozen at their entry; unfilled grid levels and pending orders reserve their size ×
    (1 + fee). cash = initial + realised − open_cost; available = cash − reserved; book_equity = cash + open_cost;
    mark_equity = cash + positions_value; unrealised = positions_value − open_cost; deployable =
    (1 − ``portfolio.reserve``) × book_equity. Every sum is exactly rounded (:func:`math.fsum`), so the result does
    not depend on the order of groups, fills or orders.
    """
    pending = list(pending_orders)
    groups = list(groups)
    open_cost = math.fsum([x for g in groups for x in g.sizes] + [x for g in groups for x in g.fees])
    fee = cfg.costs.taker_fee
    reserved = math.fsum([*((g.grid_levels - len(g.sizes)) * g.level_size_usd * (1.0 + g.taker_fee) for g in groups),
                          *(o.size_usd * (1.0 + fee) for o in pending)])
    positions_value = math.fsum([liquidation_value(math.fsum(g.quantities), mark_price(marks, g.symbol), g.slippage,
                                                   g.taker_fee) for g in groups])
    initial = float(cfg.portfolio.initial_balance_usd)
    cash = initial + realised - open_cost
    book_equity = cash + open_cost
    committed: dict[Strategy, list[float]] = {s: [] for s in Strategy}
    for g in groups:
        committed[g.strategy].append(float(g.group_size_usd))
    for o in pending:
        committed[Strategy.parse(o.strategy)].append(float(o.size_usd))
    return PortfolioState(
        initial=initial,
        realised=realised,
        open_cost=open_cost,
        reserved=reserved,
        cash=cash,
        available=cash - reserved,
        book_equity=book_equity,
        positions_value=positions_value,
        unrealised=positions_value - open_cost,
        mark_equity=cash + positions_value,
        deployable=(1.0 - cfg.portfolio.reserve) * book_equity,
        committed={s: math.fsum(v) for s, v in committed.items()},
        open_positions=len(groups),
        pending_orders=len(pending),
    )


SNAPSHOT_COLUMNS = ("cycle_point", "cash", "positions_value", "equity", "realised", "unrealised", "open_count")


def snapshot_row(state: PortfolioState, cycle_point: Any) -> dict[str, Any]:
    """The ``portfolio_snapshots`` row of a step-4 state (equity = mark_equity; open_count = open groups)."""
    return {
        "cycle_point": utc(cycle_point, "cycle point"),
        "cash": state.cash,
        "positions_value": state.positions_value,
        "equity": state.mark_equity,
        "realised": state.realised,
        "unrealised": state.unrealised,
        "open_count": state.open_positions,
    }


@dataclass(frozen=True)
class Performance:
    """Realised and unrealised P&L, each size-weighted (I-2): pct = Σ USD / Σ filled size, fractions."""

    closed_trades: int
    wins: int
    losses: int
    realised_usd: float
    realised_size_usd: float
    realised_pct: float
    open_positions: int
    unrealised_usd: float
    open_size_usd: float
    unrealised_pct: float

    @property
    def win_rate(self) -> float:
        return self.wins / self.closed_trades if self.closed_trades else math.nan


def performance(ledger: pd.DataFrame, marks: Mapping[str, float], cfg: Config) -> Performance:
    """Performance summary; unrealised comes from :func:`portfolio_state` (liquidation value − open cost)."""
    closed = closed_trades(ledger)
    pos = open_positions(ledger, marks)
    state = portfolio_state(ledger, (), marks, cfg)
    wins = int((closed["outcome"] == TradeOutcome.WIN.value).sum())
    open_size = math.fsum(pos["filled_usd"])
    return Performance(
        closed_trades=len(closed),
        wins=wins,
        losses=len(closed) - wins,
        realised_usd=state.realised,
        realised_size_usd=math.fsum(closed["size_usd"]),
        realised_pct=size_weighted_return(closed["pnl_usd"], closed["size_usd"]),
        open_positions=len(pos),
        unrealised_usd=state.unrealised,
        open_size_usd=open_size,
        unrealised_pct=state.unrealised / open_size if open_size else math.nan,
    )
