"""The DuckDB warehouse: the one data-access layer for bars and tables (SPEC §13.1, I-6). Never imports dagster.

All SQL of the project lives in this package: :mod:`.base` (connections, transactions, snapshots),
:mod:`.bars` (candles, rejects, gaps), :mod:`.tables` (derived tables, retention, config versions, the summary)
and :mod:`.engine` (the engine's state, its one-transaction tick commit, the ledger and operator events).
"""

from __future__ import annotations

from .bars import OHLC_DDL, BarsMixin, create_bar_tables
from .base import (SliceWrite, WarehouseBase, WarehouseError, WarehouseLockedError, check_ident, ohlc_table,
                   slice_where)
from .engine import (ENGINE_STATE_TABLE, LEDGER_TABLE, SCAN_HISTORY_TABLE, SNAPSHOTS_TABLE, DayState,
                     EngineTablesMixin, create_engine_tables)
from .tables import CONFIG_VERSIONS_DDL, TablesMixin


class Warehouse(BarsMixin, TablesMixin, EngineTablesMixin, WarehouseBase):
    """A DuckDB file (or ``:memory:`` for tests that need one process only): see the package modules."""

    def _ensure_schema(self, con) -> None:
        create_bar_tables(con)
        create_engine_tables(con)
        con.execute(CONFIG_VERSIONS_DDL)


__all__ = [
    "DayState",
    "ENGINE_STATE_TABLE",
    "LEDGER_TABLE",
    "OHLC_DDL",
    "SCAN_HISTORY_TABLE",
    "SNAPSHOTS_TABLE",
    "SliceWrite",
    "Warehouse",
    "WarehouseError",
    "WarehouseLockedError",
    "check_ident",
    "ohlc_table",
    "slice_where",
]
