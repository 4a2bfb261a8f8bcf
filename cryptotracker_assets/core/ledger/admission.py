"""Execution checks (SPEC §7.2): the first failing check of a candidate entry, and the state once it is admitted."""

from __future__ import annotations

import math
from dataclasses import replace

from ..config import Config, Strategy
from .enums import ExecutionReason
from .portfolio import OpenCounts, PendingOrder, PortfolioState


def check_execution(
    state: PortfolioState,
    counts: OpenCounts,
    strategy: Strategy | str,
    symbol: str,
    size_usd: float,
    cfg: Config,
) -> ExecutionReason | None:
    """The first failing §7.2 check for a candidate entry of size G = ``size_usd`` (USD), or None if it may open.

    In order: ``symbol_open`` (open + pending on the symbol ≥ ``limits.max_open_per_symbol``), ``portfolio_full``
    (≥ ``limits.max_open_total``), ``strategy_full`` (≥ ``limits.max_open_per_strategy``), ``allocation_exhausted``
    (committed(s) + G > ``portfolio.allocation.<s>`` × deployable), ``insufficient_cash`` (G × (1 + fee) > available,
    or G > ``limits.max_position_cash_fraction`` × available).
    """
    s = Strategy.parse(strategy)
    g = float(size_usd)
    if not (math.isfinite(g) and g > 0):
        raise ValueError(f"size_usd must be > 0, got {size_usd!r}")
    lim = cfg.limits
    if counts.symbol(symbol) >= lim.max_open_per_symbol:
        return ExecutionReason.SYMBOL_OPEN
    if counts.total >= lim.max_open_total:
        return ExecutionReason.PORTFOLIO_FULL
    if counts.strategy(s) >= lim.max_open_per_strategy:
        return ExecutionReason.STRATEGY_FULL
    if state.committed_of(s) + g > cfg.portfolio.allocation.of(s) * state.deployable:
        return ExecutionReason.ALLOCATION_EXHAUSTED
    if g * (1.0 + cfg.costs.taker_fee) > state.available or g > lim.max_position_cash_fraction * state.available:
        return ExecutionReason.INSUFFICIENT_CASH
    return None


def apply_order(
    state: PortfolioState, counts: OpenCounts, order: PendingOrder, cfg: Config
) -> tuple[PortfolioState, OpenCounts]:
    """State and counts after ``order`` became pending: reserved += G × (1 + fee), available −= the same,
    committed(s) += G, counts + 1 (cash, equities and deployable are unchanged until it fills)."""
    s = Strategy.parse(order.strategy)
    r = order.size_usd * (1.0 + cfg.costs.taker_fee)
    committed = dict(state.committed)
    committed[s] = committed.get(s, 0.0) + order.size_usd
    reserved = state.reserved + r
    new = replace(
        state,
        reserved=reserved,
        available=state.cash - reserved,
        committed=committed,
        pending_orders=state.pending_orders + 1,
    )
    return new, counts.plus(s, order.symbol)


def admit(
    state: PortfolioState, counts: OpenCounts, order: PendingOrder, cfg: Config
) -> tuple[ExecutionReason | None, PortfolioState, OpenCounts]:
    """Run :func:`check_execution` for ``order``; when it passes, apply it. Returns (reason, state, counts)."""
    reason = check_execution(state, counts, order.strategy, order.symbol, order.size_usd, cfg)
    if reason is not None:
        return reason, state, counts
    new_state, new_counts = apply_order(state, counts, order, cfg)
    return None, new_state, new_counts


def limit_violations(counts: OpenCounts, cfg: Config) -> list[str]:
    """Counts above ``limits.max_open_*`` (the post-commit assertion of §7.2 / I-3); empty when within limits."""
    lim = cfg.limits
    out = []
    if counts.total > lim.max_open_total:
        out.append(f"open + pending {counts.total} > limits.max_open_total {lim.max_open_total}")
    for s, n in counts.by_strategy.items():
        if n > lim.max_open_per_strategy:
            out.append(f"{s.value}: open + pending {n} > limits.max_open_per_strategy {lim.max_open_per_strategy}")
    for sym, n in counts.by_symbol.items():
        if n > lim.max_open_per_symbol:
            out.append(f"{sym}: open + pending {n} > limits.max_open_per_symbol {lim.max_open_per_symbol}")
    return out
