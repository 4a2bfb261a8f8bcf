"""What the operators' view remembers between sensor evaluations and scheduled runs (never imports dagster):

- ``check_alerts``: one row per (asset, check, partition) failure episode — opened at its first failing evaluation,
  closed (``resolved_at``) at the first passing one — so a failing check alerts once until it passes again, then
  once "resolved". Opening or closing an episode and queueing its message are one transaction.
- ``report_log``: every scheduled or on-demand trading report (its kind, scheduled time, period and message id),
  so a catch-up report knows which reports were missed since the last one.
"""

from __future__ import annotations

import pandas as pd

from .base import query_df
from .outbox import OUTBOX_TABLE, queued
from .tables import append_keyed

CHECK_ALERTS_TABLE = "check_alerts"
REPORT_LOG_TABLE = "report_log"
NOTICES_DDL = (
    """
    CREATE TABLE IF NOT EXISTS check_alerts (
        asset          VARCHAR     NOT NULL,
        check_name     VARCHAR     NOT NULL,
        partition      VARCHAR     NOT NULL,  -- '' when the check is not partitioned
        first_failed_at TIMESTAMPTZ NOT NULL,
        run_id         VARCHAR,
        message_id     VARCHAR,
        resolved_at    TIMESTAMPTZ,
        resolved_message_id VARCHAR
    )""",
    """
    CREATE TABLE IF NOT EXISTS report_log (
        report        VARCHAR     NOT NULL,
        scheduled_for TIMESTAMPTZ NOT NULL,
        period_start  TIMESTAMPTZ NOT NULL,
        period_end    TIMESTAMPTZ NOT NULL,
        message_id    VARCHAR     NOT NULL,
        written_at    TIMESTAMPTZ NOT NULL
    )""",
)


def create_notice_tables(con) -> None:
    for ddl in NOTICES_DDL:
        con.execute(ddl)


class NoticesMixin:
    """Check-alert episodes and the report log of :class:`~.warehouse.Warehouse`."""

    def open_check_alerts(self) -> pd.DataFrame:
        """The episodes not resolved yet (asset, check_name, partition, first_failed_at, run_id, message_id)."""
        with self.connect(read_only=True) as con:
            return query_df(con, "SELECT * FROM check_alerts WHERE resolved_at IS NULL "
                                 "ORDER BY first_failed_at, asset, check_name, partition")

    def record_check_alerts(self, opened: pd.DataFrame, resolved: pd.DataFrame, messages: pd.DataFrame,
                            now: pd.Timestamp) -> int:
        """In one transaction: open the ``opened`` episodes, close the ``resolved`` ones (asset, check_name,
        partition, resolved_at, resolved_message_id) and queue ``messages`` in the outbox. Returns the messages
        queued (an id already queued is skipped)."""
        with self.transaction() as con:
            for r in opened.itertuples(index=False):
                con.execute("INSERT INTO check_alerts (asset, check_name, partition, first_failed_at, run_id, "
                            "message_id) SELECT ?, ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM check_alerts "
                            "WHERE asset = ? AND check_name = ? AND partition = ? AND resolved_at IS NULL)",
                            [r.asset, r.check_name, r.partition, pd.Timestamp(r.first_failed_at).floor("us").to_pydatetime(),
                             r.run_id, r.message_id, r.asset, r.check_name, r.partition])
            for r in resolved.itertuples(index=False):
                con.execute("UPDATE check_alerts SET resolved_at = ?, resolved_message_id = ? WHERE asset = ? AND "
                            "check_name = ? AND partition = ? AND resolved_at IS NULL",
                            [pd.Timestamp(r.resolved_at).floor("us").to_pydatetime(), r.resolved_message_id, r.asset,
                             r.check_name, r.partition])
            if messages is None or messages.empty:
                return 0
            return append_keyed(con, OUTBOX_TABLE, queued(messages, now), ("message_id",), compare=False)

    def last_report(self, reports: tuple[str, ...] | None = None, before: pd.Timestamp | None = None) -> dict | None:
        """The newest logged report (of these kinds; scheduled before ``before``), or None."""
        conds, params = ["TRUE"], []
        if reports:
            conds.append(f"report IN ({', '.join('?' for _ in reports)})")
            params += list(reports)
        if before is not None:
            conds.append("scheduled_for < ?")
            params.append(pd.Timestamp(before).to_pydatetime())
        where = "WHERE " + " AND ".join(conds)
        with self.connect(read_only=True) as con:
            df = query_df(con, f"SELECT * FROM report_log {where} ORDER BY scheduled_for DESC, written_at DESC "
                               f"LIMIT 1", params)
        return None if df.empty else df.iloc[0].to_dict()

    def log_report(self, report: str, scheduled_for: pd.Timestamp, period_start: pd.Timestamp,
                   period_end: pd.Timestamp, messages: pd.DataFrame, now: pd.Timestamp) -> int:
        """Queue a report's message and log it, in one transaction. Returns the messages queued (0 when this
        report's message was queued before: a re-run of the same tick says nothing twice)."""
        with self.transaction() as con:
            n = append_keyed(con, OUTBOX_TABLE, queued(messages, now), ("message_id",), compare=False)
            if n:
                con.execute("INSERT INTO report_log VALUES (?, ?, ?, ?, ?, ?)",
                            [report, scheduled_for.to_pydatetime(), period_start.to_pydatetime(),
                             period_end.to_pydatetime(), str(messages["message_id"].iloc[0]), now.to_pydatetime()])
            return n
