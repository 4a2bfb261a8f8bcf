"""The reads of the reports that cut the stored history at a time ``at`` (a report for a past time sees what was
known then): closes of bars opening before a time, the newest row of a table at or before a time, the engine state
whose cursor is at or before a time. Plain functions on a connection, to be called inside one
:meth:`~.base.WarehouseBase.snapshot` so that every figure of a report comes from one committed state. Never
imports dagster."""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pandas as pd

from ..core.config import Timeframe
from .base import IN_SYMBOLS, check_ident, ohlc_table, query_df, scalar, table_exists
from .engine import ENGINE_STATE_TABLE


def closes_before(con: duckdb.DuckDBPyConnection, timeframe: Timeframe | str, before: pd.Timestamp,
                  symbols: Sequence[str]) -> dict[str, float]:
    """Each symbol's close of its newest stored bar opening before ``before`` (its decision-bar close at a cycle
    point ``before``, SPEC §0.2); a symbol without such a bar is absent."""
    table = ohlc_table(timeframe)
    if not symbols or not table_exists(con, table):
        return {}
    rows = con.execute(f"SELECT DISTINCT ON (symbol) symbol, close FROM {table} "
                       f"WHERE timestamp < ? AND {IN_SYMBOLS} ORDER BY symbol, timestamp DESC",
                       [pd.Timestamp(before).to_pydatetime(), list(symbols)]).fetchall()
    return {s: float(c) for s, c in rows}


def latest_time_at(con: duckdb.DuckDBPyConnection, table: str, column: str, at: pd.Timestamp) -> pd.Timestamp | None:
    """The greatest ``column`` ≤ ``at`` in ``table`` (None when the table is missing or has no such row)."""
    if not table_exists(con, check_ident(table)):
        return None
    v = scalar(con, f"SELECT max({check_ident(column)}) FROM {table} WHERE {column} <= ?",
               [pd.Timestamp(at).to_pydatetime()])
    return None if v is None else pd.Timestamp(v).tz_convert("UTC")


def engine_state_at(con: duckdb.DuckDBPyConnection, at: pd.Timestamp) -> dict | None:
    """The stored engine state (one row per UTC day) with the newest cursor ≤ ``at``, or None."""
    if not table_exists(con, ENGINE_STATE_TABLE):
        return None
    rows = query_df(con, f"SELECT * FROM {ENGINE_STATE_TABLE} WHERE cursor <= ? ORDER BY cursor DESC LIMIT 1",
                    [pd.Timestamp(at).to_pydatetime()])
    return None if rows.empty else rows.iloc[0].to_dict()
