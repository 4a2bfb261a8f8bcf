"""The notification outbox: messages the engine (and the health checks) want to say, queued in the same
transaction as the rows they are about and delivered later, at least once, by the delivery sensor. Never imports
dagster.

A message is marked delivered right after its send, in a transaction of its own: a crash between the send and the
mark re-sends that one message after a restart (at most one duplicate per crash), nothing is ever lost.
"""

from __future__ import annotations

import pandas as pd

from .base import query_df, scalar
from .tables import append_keyed

OUTBOX_TABLE = "notification_outbox"
OUTBOX_DDL = """
CREATE TABLE IF NOT EXISTS notification_outbox (
    message_id   VARCHAR     NOT NULL,
    cycle_point  TIMESTAMPTZ,
    kind         VARCHAR     NOT NULL,
    channel_key  VARCHAR     NOT NULL,
    channel      VARCHAR     NOT NULL,
    text         VARCHAR     NOT NULL,
    payload_json VARCHAR     NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    attempts     BIGINT      NOT NULL,
    delivered_at TIMESTAMPTZ,
    last_error   VARCHAR
)
"""


def queued(rows: pd.DataFrame, created_at: pd.Timestamp) -> pd.DataFrame:
    """Outbox rows as stored when queued: created now, no attempt yet, undelivered."""
    return rows.assign(created_at=pd.Timestamp(created_at), attempts=0, last_error=None,
                       delivered_at=pd.Series(pd.NaT, index=rows.index, dtype="datetime64[ns, UTC]"))


class OutboxMixin:
    """Outbox reads and delivery marks of :class:`~.warehouse.Warehouse`."""

    def queue_messages(self, rows: pd.DataFrame, created_at: pd.Timestamp) -> int:
        """Queue messages outside an engine tick (health checks); a message id already queued is skipped.
        Returns the messages queued."""
        if rows is None or rows.empty:
            return 0
        with self.transaction() as con:
            return append_keyed(con, OUTBOX_TABLE, queued(rows, created_at), ("message_id",), compare=False)

    def pending_messages(self, limit: int) -> pd.DataFrame:
        """Undelivered messages, oldest first (queue time, then id), at most ``limit``."""
        with self.connect(read_only=True) as con:
            return query_df(con, "SELECT * FROM notification_outbox WHERE delivered_at IS NULL "
                                 "ORDER BY created_at, message_id LIMIT ?", [int(limit)])

    def outbox(self) -> pd.DataFrame:
        """Every queued message, oldest first."""
        with self.connect(read_only=True) as con:
            return query_df(con, "SELECT * FROM notification_outbox ORDER BY created_at, message_id")

    def mark_delivered(self, message_id: str, at: pd.Timestamp) -> None:
        with self.transaction() as con:
            con.execute("UPDATE notification_outbox SET delivered_at = ?, attempts = attempts + 1, last_error = NULL "
                        "WHERE message_id = ? AND delivered_at IS NULL", [at.to_pydatetime(), message_id])

    def mark_failed(self, message_id: str, error: str) -> None:
        with self.transaction() as con:
            con.execute("UPDATE notification_outbox SET attempts = attempts + 1, last_error = ? WHERE message_id = ?",
                        [error[:500], message_id])

    def undelivered_count(self, *, con=None) -> int:
        sql = "SELECT count(*) FROM notification_outbox WHERE delivered_at IS NULL"
        if con is not None:
            return int(scalar(con, sql))
        with self.connect(read_only=True) as c:
            return int(scalar(c, sql))
