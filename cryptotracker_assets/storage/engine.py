"""The paper engine's tables: its state (one row per UTC day of the cycle points it processed), the one-transaction
tick commit with its cursor check and keys, the tick records, the limiter state, the ledger read and the operator
events. The notification outbox lives in :mod:`.outbox`. Never imports dagster."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from ..core.engine_records import TickRecord
from .base import WarehouseError, check_ident, insert_frame, query_df, scalar, slice_where, table_exists
from .outbox import OUTBOX_DDL, OUTBOX_TABLE, queued
from .tables import append_keyed

LEDGER_TABLE = "paper_trades"
SCAN_HISTORY_TABLE = "scan_history"
SNAPSHOTS_TABLE = "portfolio_snapshots"
ENGINE_STATE_TABLE = "engine_state"
TICKS_TABLE = "engine_ticks"
LIMITER_TABLE = "limiter_state"
SHADOW_OUTCOMES_TABLE = "shadow_outcomes"  # shadow decisions (SPEC §10.2), written at their cycle point
SHADOW_EXITS_TABLE = "shadow_exits"  # one row per shadow take when it closes or its order expires
# SPEC §5.3: rows are idempotent on their key; the time column equal keys share (to read only the tick's range).
KEYS: dict[str, tuple[tuple[str, ...], str | None]] = {
    LEDGER_TABLE: (("trade_group_id", "side", "level"), None),
    SCAN_HISTORY_TABLE: (("scan_id",), "timestamp"),
    SNAPSHOTS_TABLE: (("cycle_point",), "cycle_point"),
    SHADOW_OUTCOMES_TABLE: (("shadow_id",), "timestamp"),
    SHADOW_EXITS_TABLE: (("shadow_id",), "closed_at"),
}

ENGINE_STATE_DDL = """
CREATE TABLE IF NOT EXISTS engine_state (
    day             TIMESTAMPTZ NOT NULL,
    cursor          TIMESTAMPTZ NOT NULL,
    state_json      VARCHAR     NOT NULL,
    watermark       TIMESTAMPTZ,
    config_version  BIGINT      NOT NULL,
    committed_at    TIMESTAMPTZ NOT NULL,
    ticks           BIGINT      NOT NULL
)
"""
TICKS_DDL = """
CREATE TABLE IF NOT EXISTS engine_ticks (
    tick_id           BIGINT      NOT NULL,
    first_cycle_point TIMESTAMPTZ NOT NULL,
    last_cycle_point  TIMESTAMPTZ NOT NULL,
    cycle_points      BIGINT      NOT NULL,
    watermark         TIMESTAMPTZ,
    config_version    BIGINT      NOT NULL,
    committed_at      TIMESTAMPTZ NOT NULL,
    ledger_rows       BIGINT      NOT NULL,
    scan_rows         BIGINT      NOT NULL,
    messages          BIGINT      NOT NULL
)
"""
LIMITER_DDL = """
CREATE TABLE IF NOT EXISTS limiter_state (
    day            TIMESTAMPTZ NOT NULL,
    cursor         TIMESTAMPTZ NOT NULL,
    symbol         VARCHAR     NOT NULL,
    stops          BIGINT      NOT NULL,
    cooldown_until TIMESTAMPTZ,
    banned_until   TIMESTAMPTZ
)
"""
OPERATOR_EVENTS_DDL = """
CREATE TABLE IF NOT EXISTS operator_events (
    event_time      TIMESTAMPTZ NOT NULL,
    action          VARCHAR     NOT NULL,
    target          VARCHAR,
    who             VARCHAR     NOT NULL,
    why             VARCHAR     NOT NULL
)
"""


@dataclass(frozen=True)
class DayState:
    """The engine state at the end of the last processed cycle point of one UTC ``day``."""

    day: pd.Timestamp
    cursor: pd.Timestamp
    state_json: str
    watermark: pd.Timestamp | None
    config_version: int
    limiter: pd.DataFrame | None = None  # the day's limiter_state rows (core.engine_records.limiter_rows)


def create_engine_tables(con) -> None:
    """The engine's fixed tables (an older layout of ``engine_state`` is migrated first: :mod:`.migrations`)."""
    con.execute(ENGINE_STATE_DDL)
    con.execute(OPERATOR_EVENTS_DDL)
    con.execute(TICKS_DDL)
    con.execute(LIMITER_DDL)
    con.execute(OUTBOX_DDL)


def _latest_cursor(con) -> pd.Timestamp | None:
    v = scalar(con, "SELECT max(cursor) FROM engine_state")
    return None if v is None else pd.Timestamp(v).tz_convert("UTC")


class EngineTablesMixin:
    """Engine reads and the tick commit of :class:`~.warehouse.Warehouse`."""

    def engine_state(self, before_day: pd.Timestamp | None = None, *, con=None) -> dict | None:
        """The newest engine state row (``day``, ``cursor``, ``state_json``, ``watermark``, ``config_version``,
        ``committed_at``, ``ticks``) — of a day before ``before_day`` if given — or None."""
        sql, params = "SELECT * FROM engine_state", []
        if before_day is not None:
            sql += " WHERE day < ?"
            params.append(pd.Timestamp(before_day).to_pydatetime())
        sql += " ORDER BY day DESC LIMIT 1"

        def read(c) -> dict | None:
            rows = query_df(c, sql, params)
            return None if rows.empty else rows.iloc[0].to_dict()

        if con is not None:
            return read(con)
        with self.connect(read_only=True) as c:
            return read(c)

    def engine_states(self, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None, *,
                      con=None) -> pd.DataFrame | None:
        """The per-day state rows with ``day`` in [start, end), oldest first (None before the first tick)."""
        return self.read_slice(ENGINE_STATE_TABLE, "day", start, end, con=con)

    def read_ledger_rows(self, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None, *,
                         con=None) -> pd.DataFrame | None:
        """Ledger rows with cycle point in [start, end), in commit order (cycle point, trade_group_id, side,
        level); None before the first tick."""
        where, params = slice_where("cycle_point", start, end)
        sql = f"SELECT * FROM {LEDGER_TABLE} WHERE {where} ORDER BY cycle_point, trade_group_id, side, level"

        def read(c) -> pd.DataFrame | None:
            return query_df(c, sql, params) if table_exists(c, LEDGER_TABLE) else None

        if con is not None:
            return read(con)
        with self.connect(read_only=True) as c:
            return read(c)

    def commit_tick(
        self,
        appends: Mapping[str, pd.DataFrame],
        *,
        states: Sequence[DayState],
        previous_cursor: pd.Timestamp | None,
        committed_at: pd.Timestamp,
        tick: TickRecord | None = None,
        outbox: pd.DataFrame | None = None,
        _crash_before_commit: bool = False,
    ) -> int | None:
        """Append the tick's rows to their tables, store the state (and limiter state) of every day it processed,
        queue its messages in the outbox and record the tick, in ONE transaction; returns the tick id.

        The stored cursor must still be ``previous_cursor`` (optimistic check): a tick computed from an older
        state is refused, so a cycle point is never processed twice. Ledger, scan and snapshot rows are idempotent
        on their keys (:data:`KEYS`): an identical stored row is skipped, a different row under a stored key
        (e.g. after an engine-state reset) fails the whole commit. Tables are created from the first frame written
        to them; appends go by column name."""
        with self.transaction() as con:
            stored = _latest_cursor(con)
            if stored != previous_cursor:
                raise WarehouseError(f"engine_state: cursor is {stored}, the tick started from {previous_cursor} "
                                     f"(another tick committed first)")
            for table, df in appends.items():
                key, prune = KEYS[check_ident(table)]
                append_keyed(con, table, df, key, prune=prune)
            for s in states:
                day = pd.Timestamp(s.day).to_pydatetime()
                ticks = scalar(con, "SELECT coalesce(max(ticks), 0) FROM engine_state WHERE day = ?", [day])
                con.execute("DELETE FROM engine_state WHERE day = ?", [day])
                con.execute("INSERT INTO engine_state VALUES (?, ?, ?, ?, ?, ?, ?)",
                            [day, s.cursor.to_pydatetime(), s.state_json,
                             None if s.watermark is None else pd.Timestamp(s.watermark).to_pydatetime(),
                             int(s.config_version), committed_at.to_pydatetime(), int(ticks) + 1])
                if s.limiter is not None:
                    con.execute("DELETE FROM limiter_state WHERE day = ?", [day])
                    if len(s.limiter):
                        insert_frame(con, LIMITER_TABLE, s.limiter, create=False)
            if outbox is not None and len(outbox):
                append_keyed(con, OUTBOX_TABLE, queued(outbox, committed_at), ("message_id",), compare=False)
            tick_id = None
            if tick is not None:
                tick_id = int(scalar(con, "SELECT coalesce(max(tick_id), 0) FROM engine_ticks")) + 1
                insert_frame(con, TICKS_TABLE, tick.frame(tick_id, committed_at), create=False)
            if _crash_before_commit:  # test hook: the process dies with everything written but not committed
                import os
                import signal

                os.kill(os.getpid(), signal.SIGKILL)
        return tick_id

    def engine_ticks(self, last: int | None = None, *, con=None) -> pd.DataFrame:
        """The tick records, oldest first (the newest ``last`` if given)."""
        sql = "SELECT * FROM engine_ticks ORDER BY tick_id"
        if last is not None:
            sql = f"SELECT * FROM (SELECT * FROM engine_ticks ORDER BY tick_id DESC LIMIT {int(last)}) AS t ORDER BY tick_id"
        return self.query(sql, con=con)

    def limiter_state(self, *, con=None) -> pd.DataFrame:
        """The limiter rows of the newest day (each symbol's stops, cooldown and ban as of the engine's cursor)."""
        sql = "SELECT * FROM limiter_state WHERE day = (SELECT max(day) FROM engine_state) ORDER BY symbol"
        return self.query(sql, con=con)

    # --- operator events ---------------------------------------------------------------------------------------

    def record_operator_event(self, action: str, target: str | None, who: str, why: str,
                              clock: Callable[[], pd.Timestamp]) -> pd.Timestamp:
        """Insert an operator event stamped by ``clock()`` INSIDE the insert transaction (after the file lock is
        held), so a tick that read the events before it can never have missed an event stamped before its cycle
        point (SPEC §0.2). Returns the stamp."""
        with self.transaction() as con:
            t = clock()
            con.execute("INSERT INTO operator_events VALUES (?, ?, ?, ?, ?)",
                        [t.to_pydatetime(), action, target, who, why])
        return t

    def operator_events(self, *, con=None) -> pd.DataFrame:
        sql = "SELECT * FROM operator_events ORDER BY event_time, action, target"
        return self.query(sql, con=con)
