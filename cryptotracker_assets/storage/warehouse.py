"""The DuckDB warehouse: the one data-access layer for bars and tables (SPEC §13.1, I-6). Never imports dagster.

All SQL of the project lives in this package: :mod:`.base` (connections, transactions, snapshots),
:mod:`.bars` (candles, rejects, gaps), :mod:`.tables` (derived tables, retention, config versions, the summary)
and :mod:`.engine` (the engine's state, its one-transaction tick commit, the ledger and operator events) and :mod:`.outbox`
(the notification outbox) and :mod:`.revisions` (the threshold manager's proposals, decisions and revisions) and :mod:`.shadows`
(shadow reads and retention) and :mod:`.models` (the
champion pointer, model metrics, training labels) and :mod:`.notices` (check-alert episodes, the report log); :mod:`.migrations` keeps the schema version.
"""

from __future__ import annotations

from .bars import OHLC_DDL, BarsMixin
from .base import (SliceWrite, WarehouseBase, WarehouseError, WarehouseLockedError, check_ident, ohlc_table,
                   slice_where)
from .engine import (ENGINE_STATE_TABLE, LEDGER_TABLE, LIMITER_TABLE, SCAN_HISTORY_TABLE, SHADOW_EXITS_TABLE,
                     SHADOW_OUTCOMES_TABLE, SNAPSHOTS_TABLE, TICKS_TABLE, DayState, EngineTablesMixin)
from .outbox import OUTBOX_TABLE, OutboxMixin
from .migrations import LATEST as SCHEMA_VERSION
from .migrations import SCHEMA_VERSION_TABLE, migrate
from .models import ModelTablesMixin
from .notices import CHECK_ALERTS_TABLE, REPORT_LOG_TABLE, NoticesMixin
from .shadows import ShadowRows, ShadowTablesMixin
from .revisions import RevisionConflict, RevisionsMixin
from .tables import CONFIG_VERSIONS_DDL, CONFIG_VERSIONS_TABLE, ConfigVersion, TablesMixin
from .transfer import TransferMixin


class Warehouse(BarsMixin, TablesMixin, EngineTablesMixin, OutboxMixin, RevisionsMixin, ShadowTablesMixin,
                ModelTablesMixin, NoticesMixin, TransferMixin, WarehouseBase):
    """A DuckDB file (or ``:memory:`` for tests that need one process only), or a PostgreSQL database
    (``postgresql://USER@HOST:PORT/DB``, :mod:`.pg`): see the package modules."""

    def _ensure_schema(self, con) -> None:
        """Bring the file to the current schema version (:mod:`.migrations`); a newer file is refused."""
        migrate(con, self.path)


__all__ = [
    "CHECK_ALERTS_TABLE",
    "REPORT_LOG_TABLE",
    "SCHEMA_VERSION",
    "SCHEMA_VERSION_TABLE",
    "CONFIG_VERSIONS_DDL",
    "CONFIG_VERSIONS_TABLE",
    "ConfigVersion",
    "DayState",
    "ENGINE_STATE_TABLE",
    "LEDGER_TABLE",
    "LIMITER_TABLE",
    "OUTBOX_TABLE",
    "OHLC_DDL",
    "RevisionConflict",
    "SCAN_HISTORY_TABLE",
    "SHADOW_EXITS_TABLE",
    "SHADOW_OUTCOMES_TABLE",
    "SNAPSHOTS_TABLE",
    "TICKS_TABLE",
    "ShadowRows",
    "SliceWrite",
    "Warehouse",
    "WarehouseError",
    "WarehouseLockedError",
    "check_ident",
    "ohlc_table",
    "slice_where",
]
