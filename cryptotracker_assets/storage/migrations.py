"""The warehouse's schema version (issue 14): ``schema_version`` holds one row per forward migration applied (its
number, name and time). Opening a warehouse applies the migrations it lacks, in order, each in its own
transaction with its row; a warehouse whose version is newer than this code's is refused (it was written by a
newer cryptotracker: reading it with an older one could misread columns). Never imports dagster.

Every migration is idempotent, so a warehouse written before versions were recorded (no ``schema_version``) is
brought to the current layout by running all of them: the ones whose change is already there do nothing.

The derived tables a run creates from its frames (features, scans, setups, …) are not listed here: a column a
newer capability adds to them is added to the stored table on the first write that carries it (NULL in the stored
rows, which the watermark checks treat as stale: :func:`.tables.append_keyed` and friends).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from .bars import create_bar_tables
from .base import WarehouseError, begin_write, scalar, table_columns, table_exists
from .engine import ENGINE_STATE_DDL, ENGINE_STATE_TABLE, create_engine_tables
from .models import create_model_tables
from .notices import create_notice_tables
from .revisions import create_revision_tables
from .tables import create_config_versions

SCHEMA_VERSION_TABLE = "schema_version"
SCHEMA_VERSION_DDL = """
CREATE TABLE IF NOT EXISTS schema_version (
    version    BIGINT      NOT NULL,
    name       VARCHAR     NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL
)
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[object], None]  # (connection inside a transaction) -> None; idempotent


def engine_state_per_day(con) -> None:
    """Issue 10: ``engine_state`` keeps one row per UTC day (a one-row table becomes the row of its cursor's day)."""
    if table_exists(con, ENGINE_STATE_TABLE) and "id" in table_columns(con, ENGINE_STATE_TABLE):
        con.execute("ALTER TABLE engine_state RENAME TO engine_state_v1")
        con.execute(ENGINE_STATE_DDL)
        con.execute("INSERT INTO engine_state SELECT date_trunc('day', cursor), cursor, state_json, watermark, "
                    "config_version, committed_at, ticks FROM engine_state_v1 WHERE cursor IS NOT NULL")
        con.execute("DROP TABLE engine_state_v1")


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "candles, rejects and gaps", create_bar_tables),
    Migration(2, "engine state per UTC day", engine_state_per_day),
    Migration(3, "engine tables: state, operator events, ticks, limiter, outbox", create_engine_tables),
    # SPEC §0.3: versions numbered 1, 2, …; an unnumbered table is kept as config_versions_unversioned
    Migration(4, "numbered config versions", create_config_versions),
    Migration(5, "threshold proposals, decisions and config revisions", create_revision_tables),
    Migration(6, "model registry", create_model_tables),
    Migration(7, "check-alert episodes and the report log", create_notice_tables),
)
LATEST = MIGRATIONS[-1].version


def current_version(con) -> int:
    """The newest version recorded (0: none, a warehouse written before versions were recorded, or a new one)."""
    con.execute(SCHEMA_VERSION_DDL)
    return int(scalar(con, "SELECT coalesce(max(version), 0) FROM schema_version"))


def migrate(con, path: str, now: pd.Timestamp | None = None) -> list[int]:
    """Apply the migrations ``con``'s warehouse lacks, in one write transaction with their ``schema_version`` rows
    (two processes opening a new warehouse at once: one migrates, the other then finds it done); returns the
    versions applied. Raises naming both versions when the warehouse is newer than this code."""
    begin_write(con)
    try:
        have = current_version(con)
        if have > LATEST:
            raise WarehouseError(f"warehouse {path} has schema version {have}, newer than this cryptotracker's "
                                 f"{LATEST}: upgrade cryptotracker (pip install -e .) before opening it")
        applied = []
        for m in MIGRATIONS:
            if m.version <= have:
                continue
            m.apply(con)
            con.execute("INSERT INTO schema_version VALUES (?, ?, ?)",
                        [m.version, m.name, (now or pd.Timestamp.now(tz="UTC")).to_pydatetime()])
            applied.append(m.version)
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
    return applied
