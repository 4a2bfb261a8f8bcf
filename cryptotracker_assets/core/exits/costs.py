"""Costs (SPEC §6): the one set of cost functions for engine, shadows, labels and offline simulation.

Each works on floats and on numpy arrays alike. Rates (fee, slippage) are fractions; money in USD, prices in USD
per coin.
"""

from __future__ import annotations


def entry_fill(price, slippage):
    """Market buy fill: ``price × (1 + slippage)``; slippage a fraction."""
    return price * (1.0 + slippage)


def exit_fill(price, slippage):
    """Market sell fill: ``price × (1 − slippage)``; slippage a fraction."""
    return price * (1.0 - slippage)


def entry_quantity(size_usd, fill_price):
    """Coins bought for ``size_usd`` at ``fill_price``."""
    return size_usd / fill_price


def entry_fee(size_usd, fee):
    """Fee of a buy: ``size_usd × fee`` (USD; fee a fraction)."""
    return size_usd * fee


def exit_fee(quantity, fill_price, fee):
    """Fee of a sell: ``quantity × fill_price × fee`` (USD; fee a fraction)."""
    return quantity * fill_price * fee


def net_pnl(quantity, exit_fill_price, size_usd, entry_fee_usd, exit_fee_usd):
    """Net P&L in USD: ``quantity × exit fill − size_usd − entry fee − exit fee``."""
    return quantity * exit_fill_price - size_usd - entry_fee_usd - exit_fee_usd


def pnl_ratio(pnl_usd, size_usd):
    """Net P&L as a fraction of the invested size (``pnl_pct`` of the ledger)."""
    return pnl_usd / size_usd


def slippage_cost(fill_price, price, quantity):
    """Slippage of one fill in USD: ``|fill − price| × quantity``."""
    return abs(fill_price - price) * quantity
