"""Validation of a whole ledger against the row rules of SPEC §0.3/§0.4/§4/§5.3 (I-13, I-14)."""

from __future__ import annotations

import math
from enum import Enum
from typing import Any

import pandas as pd

from ..config import Strategy, Tier
from ..exits import ExitReason, net_pnl, pnl_ratio
from .enums import FillKind, Side, TradeOutcome
from .ids import TRADE_GROUP_ID_RE, trade_group_id
from .rows import (
    GROUP_COLUMNS,
    LEDGER_COLUMNS,
    LEDGER_DTYPES,
    LEDGER_KEY,
    SELL_LEVEL,
    LedgerError,
    group_slices,
    row_key,
)


def _check_enum(ledger: pd.DataFrame, column: str, enum: type[Enum], rows: Any = None) -> None:
    values = ledger[column] if rows is None else ledger.loc[rows, column]
    bad = ~values.isin([m.value for m in enum])
    if bad.any():
        i = values.index[bad.to_numpy()][0]
        raise LedgerError(
            f"{ledger.at[i, 'trade_group_id']}: unknown {column} {values[i]!r}; expected one of "
            f"{[m.value for m in enum]}"
        )


def check_ledger(ledger: pd.DataFrame) -> None:
    """Raise :class:`LedgerError` unless ``ledger`` follows SPEC §0.3/§0.4/§4/§5.3 (I-13, I-14).

    Checks columns and dtypes; unique (trade_group_id, side, level); strict enums; BUY levels 0..k−1 below the
    grid size, at most one SELL with level −1; the id format and its hash; group constants equal on every row;
    SELL qty/P&L/pnl_pct/outcome equal to the §4/§6 formulas over the group's BUY rows (exactly: same cost
    functions, exact sums); bar times ≤ the writing cycle point and the SELL after the last BUY.
    """
    if list(ledger.columns) != list(LEDGER_COLUMNS):
        raise LedgerError(f"ledger columns {list(ledger.columns)} != {list(LEDGER_COLUMNS)}")
    for c, d in LEDGER_DTYPES.items():
        if str(ledger[c].dtype) != d:
            raise LedgerError(f"column {c!r} has dtype {ledger[c].dtype}, expected {d}")
    ledger = ledger.reset_index(drop=True)
    if ledger.duplicated(list(LEDGER_KEY)).any():
        dup = ledger[ledger.duplicated(list(LEDGER_KEY), keep=False)].iloc[0]
        raise LedgerError(f"duplicate ledger key {row_key(dup)}")
    _check_enum(ledger, "side", Side)
    _check_enum(ledger, "fill_kind", FillKind)
    _check_enum(ledger, "strategy", Strategy)
    _check_enum(ledger, "tier", Tier)
    is_sell = (ledger["side"] == Side.SELL.value).to_numpy()
    _check_enum(ledger, "exit_reason", ExitReason, is_sell)
    _check_enum(ledger, "outcome", TradeOutcome, is_sell)
    buys = ledger[~is_sell]
    exit_fields = buys["exit_reason"].notna() | buys["outcome"].notna() | buys["pnl_usd"].notna()
    if exit_fields.any():
        raise LedgerError(f"{buys['trade_group_id'][exit_fields].iloc[0]}: BUY rows carry no exit fields")
    late = ledger["bar_time"] > ledger["cycle_point"]
    if late.any():
        first = ledger["trade_group_id"][late].iloc[0]
        raise LedgerError(f"{first}: a bar time is after the cycle point that wrote it")
    varying = ledger.groupby("trade_group_id", sort=False)[list(GROUP_COLUMNS)].nunique(dropna=False) != 1
    if varying.to_numpy().any():
        tgid = varying.index[varying.any(axis=1).to_numpy()][0]
        column = varying.columns[varying.loc[tgid].to_numpy()][0]
        raise LedgerError(f"{tgid}: column {column!r} differs between rows of the group")
    cols, bounds = group_slices(
        ledger,
        ("side", "fill_kind", "strategy", "symbol", "entry_time", "grid_levels", "bar_time", "qty", "size_usd",
         "fee_usd", "fill_price", "pnl_usd", "pnl_pct", "outcome"),
    )
    for a, b in bounds:
        _check_group(cols, a, b)


def _check_group(cols: dict[str, list], a: int, b: int) -> None:
    tgid = cols["trade_group_id"][a]

    def fail(msg: str) -> None:
        raise LedgerError(f"{tgid}: {msg}")

    if not TRADE_GROUP_ID_RE.match(tgid):
        fail("not a SPEC §0.3 trade_group_id")
    if trade_group_id(cols["strategy"][a], cols["symbol"][a], cols["entry_time"][a]) != tgid:
        fail("id does not match strategy, symbol and entry time (or its hash)")
    rows = range(a, b)
    sells = [i for i in rows if cols["side"][i] == Side.SELL.value]
    buys = [i for i in rows if cols["side"][i] == Side.BUY.value]
    levels = [cols["level"][i] for i in buys]  # ascending: the slice is sorted by level
    if not levels or levels != list(range(len(levels))):
        fail(f"BUY levels {levels} are not 0..k−1")
    if levels[-1] >= cols["grid_levels"][a]:
        fail(f"BUY level {levels[-1]} ≥ grid levels {cols['grid_levels'][a]}")
    first = buys[0]
    if cols["bar_time"][first] != cols["entry_time"][a] or cols["fill_kind"][first] != FillKind.MARKET.value:
        fail("level 0 must be the MARKET fill at the entry time")
    if any(cols["fill_kind"][i] != FillKind.LIMIT.value for i in buys[1:]):
        fail("DCA levels ≥ 1 must be LIMIT fills")
    if len(sells) > 1:
        fail("more than one SELL row")
    if not sells:
        return
    j = sells[0]
    if cols["level"][j] != SELL_LEVEL or cols["fill_kind"][j] != FillKind.MARKET.value:
        fail("the SELL row must be a MARKET fill with level −1")
    if not math.isnan(cols["size_usd"][j]):
        fail("SELL size_usd must be null")
    if cols["bar_time"][j] < max(cols["bar_time"][i] for i in buys):
        fail("SELL before the last BUY")
    qty = math.fsum(cols["qty"][i] for i in buys)
    size = math.fsum(cols["size_usd"][i] for i in buys)
    fees_in = math.fsum(cols["fee_usd"][i] for i in buys)
    if cols["qty"][j] != qty:
        fail(f"SELL qty {cols['qty'][j]!r} != Σ BUY qty {qty!r}")
    pnl = net_pnl(qty, cols["fill_price"][j], size, fees_in, cols["fee_usd"][j])
    if cols["pnl_usd"][j] != pnl or cols["pnl_pct"][j] != pnl_ratio(pnl, size):
        fail(f"SELL pnl {cols['pnl_usd'][j]!r}/{cols['pnl_pct'][j]!r} != net P&L {pnl!r} / Σ size {size!r}")
    if cols["outcome"][j] != TradeOutcome.of(pnl).value:
        fail(f"outcome {cols['outcome'][j]} does not match net P&L {pnl!r}")
