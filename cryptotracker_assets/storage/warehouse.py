"""The DuckDB warehouse: the one data-access layer for bars and tables (SPEC §13.1, I-6). Never imports dagster.

- Every write of a slice is ONE transaction: the old rows of the slice survive any failure.
- Inserts go by column NAME (``INSERT … BY NAME``), never by position.
- Reads return complete, chronological results or raise; nothing is silently truncated.
- DuckDB allows one process per file: connections are opened briefly and retried while another process holds
  the lock (readers such as the CLI and reports; writers are serialised by the run queue, see dagster.yaml).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from ..core.config import Timeframe
from ..core.ohlc import NUMERIC_COLUMNS, STORED_COLUMNS

_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")

OHLC_DDL = """
CREATE TABLE IF NOT EXISTS {table} (
    symbol      VARCHAR     NOT NULL,
    timestamp   TIMESTAMPTZ NOT NULL,
    open        DOUBLE      NOT NULL,
    high        DOUBLE      NOT NULL,
    low         DOUBLE      NOT NULL,
    close       DOUBLE      NOT NULL,
    volume      DOUBLE      NOT NULL,
    suspect     BOOLEAN     NOT NULL,
    ingested_at TIMESTAMPTZ NOT NULL
)
"""
# No PRIMARY KEY: DuckDB's ART index makes bulk writes 5–20× slower. (symbol, timestamp) uniqueness is enforced
# by the write path (validation removes duplicates; a slice is deleted before its rows are inserted, in one
# transaction) and verified by `duplicate_keys()` in tests and checks.

REJECTS_DDL = """
CREATE TABLE IF NOT EXISTS ohlc_rejects (
    timeframe   VARCHAR     NOT NULL,
    partition   VARCHAR     NOT NULL,
    symbol      VARCHAR,
    timestamp   VARCHAR,
    field       VARCHAR     NOT NULL,
    reason      VARCHAR     NOT NULL,
    raw         VARCHAR,
    rejected_at TIMESTAMPTZ NOT NULL,
    run_id      VARCHAR
)
"""

GAPS_DDL = """
CREATE TABLE IF NOT EXISTS data_gaps (
    timeframe   VARCHAR     NOT NULL,
    symbol      VARCHAR     NOT NULL,
    gap_start   TIMESTAMPTZ NOT NULL,
    gap_end     TIMESTAMPTZ NOT NULL,
    missing     BIGINT      NOT NULL,
    status      VARCHAR     NOT NULL,
    healed_bars BIGINT      NOT NULL,
    detected_at TIMESTAMPTZ NOT NULL,
    checked_at  TIMESTAMPTZ NOT NULL
)
"""


class WarehouseError(RuntimeError):
    """A warehouse operation failed; the message names the table/slice."""


class WarehouseLockedError(WarehouseError):
    """Another process held the DuckDB file lock for longer than the retry budget."""


def ohlc_table(timeframe: Timeframe | str) -> str:
    return f"ohlc_{Timeframe(timeframe).value}"


def _check_ident(name: str) -> str:
    if not _IDENT.match(name):
        raise WarehouseError(f"invalid table name {name!r}")
    return name


def slice_where(
    time_column: str, start: pd.Timestamp | None, end: pd.Timestamp | None, symbols: Sequence[str] | None = None
) -> tuple[str, list]:
    """SQL condition + parameters for ``time_column`` in [start, end) (either bound optional) × ``symbols``."""
    where, params = ["TRUE"], []
    if start is not None:
        where.append(f"{time_column} >= ?")
        params.append(pd.Timestamp(start).to_pydatetime())
    if end is not None:
        where.append(f"{time_column} < ?")
        params.append(pd.Timestamp(end).to_pydatetime())
    if symbols is not None:
        where.append("list_contains(?, symbol)")
        params.append(list(symbols))
    return " AND ".join(where), params


@dataclass(frozen=True)
class SliceWrite:
    """What a slice replacement did."""

    table: str
    deleted: int
    inserted: int
    unchanged: int  # rows whose values were identical to the stored ones (their ingested_at was kept)


def _to_utc_ns(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    for c in df.columns:
        # An all-null object column would be typed NULL by DuckDB when it creates a table from the frame (and
        # refuse later text); such a column is text.
        if df[c].dtype == object and len(df) and df[c].isna().all():
            df[c] = df[c].astype("string")
    for c in columns:
        if c in df.columns:
            col = df[c]
            if isinstance(col.dtype, pd.DatetimeTZDtype):
                if str(col.dtype) != "datetime64[ns, UTC]":
                    df[c] = col.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
            elif pd.api.types.is_datetime64_any_dtype(col):
                raise WarehouseError(f"column {c} holds naive timestamps; the warehouse stores tz-aware UTC only")
    return df


class Warehouse:
    """A DuckDB file (or ``:memory:`` for tests that need one process only)."""

    def __init__(self, path: str | Path, lock_timeout_s: float = 60.0, lock_retry_s: float = 0.1,
                 keep_open: bool = False):
        """``keep_open``: hold one connection for this object's lifetime (close with :meth:`close` or ``with``),
        for a long-lived process that reads repeatedly (warm buffers); otherwise every call opens briefly so
        other processes can take the file lock in between."""
        self.path = str(path)
        self.lock_timeout_s = lock_timeout_s
        self.lock_retry_s = lock_retry_s
        self.keep_open = keep_open
        self._con: duckdb.DuckDBPyConnection | None = None
        self._schema_ready = False

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def __enter__(self) -> "Warehouse":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- connections -------------------------------------------------------------------------------------------

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection with UTC session time; retries while another process holds the file lock.

        ``read_only`` documents intent (readers never write); the schema is created on first use either way."""
        if self._con is not None:
            yield self._con
            return
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout_s
        delay = self.lock_retry_s
        while True:
            try:
                # Always a read-write open: DuckDB refuses two connections of one process to one file with
                # different settings, and a read-only open is locked out by a writer all the same.
                con = duckdb.connect(self.path)
                break
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    if "lock" in str(exc).lower():
                        raise WarehouseLockedError(
                            f"warehouse {self.path} is locked by another process (waited {self.lock_timeout_s:.0f} s)"
                        ) from exc
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
        con.execute("SET TimeZone = 'UTC'")
        if not self._schema_ready:
            self._ensure_schema(con)
            self._schema_ready = True
        if self.keep_open:
            self._con = con
            yield con
            return
        try:
            yield con
        finally:
            con.close()

    def _ensure_schema(self, con: duckdb.DuckDBPyConnection) -> None:
        for tf in Timeframe:
            con.execute(OHLC_DDL.format(table=ohlc_table(tf)))
        con.execute(REJECTS_DDL)
        con.execute(GAPS_DDL)

    # --- generic -----------------------------------------------------------------------------------------------

    @staticmethod
    def query_df(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence | None = None) -> pd.DataFrame:
        """Run ``sql`` and return all rows as pandas (Arrow path; timestamps as ns UTC)."""
        df = con.sql(sql, params=list(params or [])).to_arrow_table().to_pandas(coerce_temporal_nanoseconds=True)
        for c in df.columns:
            if isinstance(df[c].dtype, pd.DatetimeTZDtype) and str(df[c].dtype) != "datetime64[ns, UTC]":
                df[c] = df[c].dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
        return df

    def read_sql(self, sql: str, params: Sequence | None = None) -> pd.DataFrame:
        with self.connect(read_only=True) as con:
            return self.query_df(con, sql, params)

    def table_exists(self, con: duckdb.DuckDBPyConnection, table: str) -> bool:
        return bool(
            con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]
            ).fetchall()[0][0]
        )

    def replace_table(self, table: str, df: pd.DataFrame) -> int:
        """Replace a whole (small, unpartitioned) table with ``df`` in one transaction."""
        _check_ident(table)
        df = _to_utc_ns(df.copy(), [c for c in df.columns])
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                con.register("_incoming", df)
                con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM _incoming")
                con.unregister("_incoming")
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise
        return len(df)

    def replace_slice(
        self,
        table: str,
        df: pd.DataFrame,
        time_column: str,
        start: pd.Timestamp,
        end: pd.Timestamp,
        symbols: Sequence[str] | None = None,
    ) -> SliceWrite:
        """Replace rows of ``table`` with ``time_column`` in [start, end) (× ``symbols`` if given) by ``df``, in
        ONE transaction, by column name. The table is created from ``df``'s schema on first write; a frame whose
        columns differ from the table's is an error naming them (no silent column drift)."""
        _check_ident(table)
        _check_ident(time_column)
        df = _to_utc_ns(df.copy(), [c for c in df.columns])
        if len(df):
            outside = (df[time_column] < start) | (df[time_column] >= end)
            if symbols is not None:
                outside |= ~df["symbol"].isin(list(symbols))
            if outside.any():
                raise WarehouseError(f"{table}: {int(outside.sum())} row(s) outside the slice [{start}, {end})")
        where, params = slice_where(time_column, start, end, symbols)
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                con.register("_incoming", df)
                if not self.table_exists(con, table):
                    con.execute(f"CREATE TABLE {table} AS SELECT * FROM _incoming LIMIT 0")
                cols = [r[0] for r in con.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
                    [table]).fetchall()]
                if set(cols) != set(df.columns):
                    raise WarehouseError(
                        f"{table}: columns differ from the stored table (missing {sorted(set(cols) - set(df.columns))}, "
                        f"new {sorted(set(df.columns) - set(cols))})"
                    )
                deleted = con.execute(f"SELECT count(*) FROM {table} WHERE {where}", params).fetchall()[0][0]
                con.execute(f"DELETE FROM {table} WHERE {where}", params)
                con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _incoming")
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise
            finally:
                con.unregister("_incoming")
        return SliceWrite(table=table, deleted=int(deleted), inserted=len(df), unchanged=0)

    def read_slice(
        self,
        table: str,
        time_column: str,
        start: pd.Timestamp | None = None,
        end: pd.Timestamp | None = None,
        symbols: Sequence[str] | None = None,
        order_by: Sequence[str] | None = None,
    ) -> pd.DataFrame | None:
        """All rows of ``table`` with ``time_column`` in [start, end), ordered by ``order_by`` (default: symbol
        when the table has one) then time; None when the table does not exist yet."""
        _check_ident(table)
        _check_ident(time_column)
        where, params = slice_where(time_column, start, end, symbols)
        with self.connect(read_only=True) as con:
            if not self.table_exists(con, table):
                return None
            if order_by is None:
                has_symbol = con.execute("SELECT count(*) FROM information_schema.columns WHERE table_name = ? AND "
                                         "column_name = 'symbol'", [table]).fetchall()[0][0]
                order_by = ("symbol",) if has_symbol else ()
            order = ", ".join([*(_check_ident(c) for c in order_by), time_column])
            return self.query_df(con, f"SELECT * FROM {table} WHERE {where} ORDER BY {order}", params)

    # --- the paper engine ---------------------------------------------------------------------------------------

    ENGINE_STATE_DDL = """
    CREATE TABLE IF NOT EXISTS engine_state (
        id              INTEGER     NOT NULL,
        cursor          TIMESTAMPTZ,
        state_json      VARCHAR     NOT NULL,
        watermark       TIMESTAMPTZ,
        config_version  BIGINT      NOT NULL,
        committed_at    TIMESTAMPTZ NOT NULL,
        ticks           BIGINT      NOT NULL
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

    def engine_state(self) -> dict | None:
        """The committed engine state row (cursor, state_json, watermark, config_version, ticks) or None."""
        with self.connect(read_only=True) as con:
            con.execute(self.ENGINE_STATE_DDL)
            rows = self.query_df(con, "SELECT * FROM engine_state WHERE id = 1")
        return None if rows.empty else rows.iloc[0].to_dict()

    def commit_tick(
        self,
        appends: dict[str, pd.DataFrame],
        *,
        state_json: str,
        previous_cursor: pd.Timestamp | None,
        cursor: pd.Timestamp | None,
        watermark: pd.Timestamp | None,
        config_version: int,
        committed_at: pd.Timestamp,
        _crash_before_commit: bool = False,
    ) -> None:
        """Append the tick's rows to their tables and move the engine cursor, in ONE transaction.

        The stored cursor must still be ``previous_cursor`` (optimistic check): a tick computed from an older
        state is refused, so a cycle point is never processed twice. Tables are created from the first frame
        written to them; appends go by column name."""
        with self.connect() as con:
            con.execute(self.ENGINE_STATE_DDL)
            con.execute("BEGIN TRANSACTION")
            try:
                row = con.execute("SELECT cursor, ticks FROM engine_state WHERE id = 1").fetchall()
                stored = pd.Timestamp(row[0][0]).tz_convert("UTC") if row and row[0][0] is not None else None
                if (stored is None) != (previous_cursor is None) or (stored is not None and stored != previous_cursor):
                    raise WarehouseError(f"engine_state: cursor is {stored}, the tick started from {previous_cursor} "
                                         f"(another tick committed first)")
                for table, df in appends.items():
                    _check_ident(table)
                    if df is None or df.empty:
                        continue
                    frame = _to_utc_ns(df.copy(), list(df.columns))
                    con.register("_append", frame)
                    try:
                        if not self.table_exists(con, table):
                            con.execute(f"CREATE TABLE {table} AS SELECT * FROM _append LIMIT 0")
                        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _append")
                    finally:
                        con.unregister("_append")
                ticks = (row[0][1] if row else 0) + 1
                con.execute("DELETE FROM engine_state WHERE id = 1")
                con.execute(
                    "INSERT INTO engine_state VALUES (1, ?, ?, ?, ?, ?, ?)",
                    [None if cursor is None else cursor.to_pydatetime(), state_json,
                     None if watermark is None else pd.Timestamp(watermark).to_pydatetime(), config_version,
                     committed_at.to_pydatetime(), ticks],
                )
                if _crash_before_commit:  # test hook: the process dies with everything written but not committed
                    import os
                    import signal

                    os.kill(os.getpid(), signal.SIGKILL)
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise

    def record_operator_event(self, event_time: pd.Timestamp, action: str, target: str | None, who: str,
                              why: str) -> None:
        with self.connect() as con:
            con.execute(self.OPERATOR_EVENTS_DDL)
            con.execute("INSERT INTO operator_events VALUES (?, ?, ?, ?, ?)",
                        [event_time.to_pydatetime(), action, target, who, why])

    def operator_events(self) -> pd.DataFrame:
        with self.connect(read_only=True) as con:
            con.execute(self.OPERATOR_EVENTS_DDL)
            return self.query_df(con, "SELECT * FROM operator_events ORDER BY event_time, action, target")

    # --- bars --------------------------------------------------------------------------------------------------

    def replace_bars(
        self,
        timeframe: Timeframe | str,
        bars: pd.DataFrame,
        start: pd.Timestamp,
        end: pd.Timestamp,
        symbols: Sequence[str] | None = None,
        *,
        rejects: pd.DataFrame | None = None,
        partition: str | None = None,
        run_id: str | None = None,
        _fail_after_delete: bool = False,
    ) -> SliceWrite:
        """Replace the slice [start, end) (× ``symbols`` if given, else all symbols) of ``ohlc_<tf>`` with
        ``bars`` in ONE transaction, by column name. A bar whose values equal the stored bar keeps its stored
        ``ingested_at`` (SPEC §13.1: renewed only when a re-fetch changes the bar). Rejects of the same slice
        (``partition``) are replaced in the same transaction. Rows outside the slice are an error."""
        table = ohlc_table(timeframe)
        missing = [c for c in STORED_COLUMNS if c not in bars.columns]
        if missing:
            raise WarehouseError(f"{table}: rows to store lack column(s) {missing}")
        df = _to_utc_ns(bars[STORED_COLUMNS], ["timestamp", "ingested_at"])  # a new frame: safe to modify
        outside = (df["timestamp"] < start) | (df["timestamp"] >= end)
        if symbols is not None:
            outside |= ~df["symbol"].isin(list(symbols))
        if outside.any():
            row = df[outside].iloc[0]
            raise WarehouseError(
                f"{table}: row {row['symbol']} {row['timestamp']} is outside the slice [{start}, {end})"
                + (f" × {list(symbols)}" if symbols is not None else "")
            )
        where, params = slice_where("timestamp", start, end, symbols)
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                con.register("_incoming", df)
                existing = con.execute(f"SELECT count(*) FROM {table} WHERE {where}", params).fetchall()[0][0]
                unchanged = 0
                source = "_incoming"
                if existing:
                    eq = " AND ".join(f"o.{c} = n.{c}" for c in NUMERIC_COLUMNS)
                    con.execute(
                        f"CREATE OR REPLACE TEMP TABLE _incoming_kept AS "
                        f"SELECT n.* EXCLUDE (ingested_at), coalesce(o.ingested_at, n.ingested_at) AS ingested_at "
                        f"FROM _incoming n LEFT JOIN (SELECT * FROM {table} WHERE {where}) o "
                        f"ON o.symbol = n.symbol AND o.timestamp = n.timestamp AND {eq}",
                        params,
                    )
                    unchanged = con.execute(
                        f"SELECT count(*) FROM _incoming_kept k JOIN (SELECT * FROM {table} WHERE {where}) o "
                        f"ON o.symbol = k.symbol AND o.timestamp = k.timestamp AND o.ingested_at = k.ingested_at",
                        params,
                    ).fetchall()[0][0]
                    source = "_incoming_kept"
                    con.execute(f"DELETE FROM {table} WHERE {where}", params)
                if _fail_after_delete:  # test hook: a crash between delete and insert
                    raise WarehouseError(f"{table}: injected failure after delete")
                con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {source}")
                if rejects is not None and partition is not None:
                    self._replace_rejects(con, Timeframe(timeframe), partition, symbols, rejects, run_id)
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise
            finally:
                con.unregister("_incoming")
        return SliceWrite(table=table, deleted=int(existing), inserted=len(df), unchanged=int(unchanged))

    def _replace_rejects(self, con, timeframe: Timeframe, partition: str, symbols, rejects: pd.DataFrame, run_id):
        where = "timeframe = ? AND partition = ?"
        params: list = [timeframe.value, partition]
        if symbols is not None:
            where += " AND list_contains(?, symbol)"
            params.append(list(symbols))
        con.execute(f"DELETE FROM ohlc_rejects WHERE {where}", params)
        if len(rejects):
            r = rejects.copy()
            r["run_id"] = run_id
            r = _to_utc_ns(r, ["rejected_at"])
            con.register("_rejects", r)
            try:
                con.execute("INSERT INTO ohlc_rejects BY NAME SELECT * FROM _rejects")
            finally:
                con.unregister("_rejects")

    def replace_rejects(
        self, timeframe: Timeframe | str, partition: str, symbols: Sequence[str] | None, rejects: pd.DataFrame,
        run_id: str | None = None,
    ) -> int:
        """Replace the rejects recorded for (timeframe, partition[, symbols]) with ``rejects`` (one transaction)."""
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                self._replace_rejects(con, Timeframe(timeframe), partition, symbols, rejects, run_id)
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise
        return len(rejects)

    def upsert_bars(self, timeframe: Timeframe | str, bars: pd.DataFrame) -> int:
        """Insert bars, replacing stored bars with the same (symbol, timestamp) whose values differ; identical
        bars are left alone (their ingested_at is kept). Returns the number of rows inserted or changed."""
        table = ohlc_table(timeframe)
        if bars.empty:
            return 0
        df = _to_utc_ns(bars[STORED_COLUMNS].copy(), ["timestamp", "ingested_at"])
        eq = " AND ".join(f"o.{c} = n.{c}" for c in NUMERIC_COLUMNS)
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                con.register("_incoming", df)
                con.execute(
                    f"CREATE OR REPLACE TEMP TABLE _changed AS SELECT n.* FROM _incoming n "
                    f"WHERE NOT EXISTS (SELECT 1 FROM {table} o WHERE o.symbol = n.symbol "
                    f"AND o.timestamp = n.timestamp AND {eq})"
                )
                changed = con.execute("SELECT count(*) FROM _changed").fetchall()[0][0]
                con.execute(
                    f"DELETE FROM {table} o USING _changed c WHERE o.symbol = c.symbol AND o.timestamp = c.timestamp"
                )
                con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _changed")
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise
            finally:
                con.unregister("_incoming")
        return int(changed)

    def read_bars(
        self,
        timeframe: Timeframe | str,
        start: pd.Timestamp | None = None,
        end: pd.Timestamp | None = None,
        symbols: Sequence[str] | None = None,
        *,
        con: duckdb.DuckDBPyConnection | None = None,
    ) -> pd.DataFrame:
        """All stored bars of ``timeframe`` with open time in [start, end), ordered by (symbol, timestamp)."""
        table = ohlc_table(timeframe)
        where, params = slice_where("timestamp", start, end, symbols)
        sql = f"SELECT {', '.join(STORED_COLUMNS)} FROM {table} WHERE {where} ORDER BY symbol, timestamp"
        if con is not None:
            return self.query_df(con, sql, params)
        with self.connect(read_only=True) as c:
            if not self.table_exists(c, table):
                from ..core.ohlc import empty_bars

                return empty_bars(with_flags=True)
            return self.query_df(c, sql, params)

    def last_close_before(
        self, timeframe: Timeframe | str, before: pd.Timestamp, symbols: Sequence[str]
    ) -> dict[str, float]:
        """Each symbol's close of its latest stored bar with open time < ``before`` (for suspect flags)."""
        table = ohlc_table(timeframe)
        with self.connect(read_only=True) as con:
            if not self.table_exists(con, table):
                return {}
            rows = con.execute(
                f"SELECT symbol, arg_max(close, timestamp) FROM {table} "
                f"WHERE timestamp < ? AND list_contains(?, symbol) GROUP BY symbol",
                [pd.Timestamp(before).to_pydatetime(), list(symbols)],
            ).fetchall()
        return {s: float(c) for s, c in rows}

    def latest_bar_times(self, timeframe: Timeframe | str, symbols: Sequence[str] | None = None) -> dict[str, pd.Timestamp]:
        table = ohlc_table(timeframe)
        with self.connect(read_only=True) as con:
            if not self.table_exists(con, table):
                return {}
            sql = f"SELECT symbol, max(timestamp) FROM {table}"
            params: list = []
            if symbols is not None:
                sql += " WHERE list_contains(?, symbol)"
                params.append(list(symbols))
            rows = con.execute(sql + " GROUP BY symbol", params).fetchall()
        return {s: pd.Timestamp(t).tz_convert("UTC") for s, t in rows}

    def duplicate_keys(self, timeframe: Timeframe | str) -> int:
        table = ohlc_table(timeframe)
        with self.connect(read_only=True) as con:
            if not self.table_exists(con, table):
                return 0
            return int(
                con.execute(
                    f"SELECT count(*) FROM (SELECT symbol, timestamp FROM {table} GROUP BY 1, 2 HAVING count(*) > 1)"
                ).fetchall()[0][0]
            )

    def read_rejects(self, timeframe: Timeframe | str | None = None, partition: str | None = None) -> pd.DataFrame:
        where, params = ["TRUE"], []
        if timeframe is not None:
            where.append("timeframe = ?")
            params.append(Timeframe(timeframe).value)
        if partition is not None:
            where.append("partition = ?")
            params.append(partition)
        with self.connect(read_only=True) as con:
            if not self.table_exists(con, "ohlc_rejects"):
                return pd.DataFrame(columns=["timeframe", "partition", "symbol", "timestamp", "field", "reason"])
            return self.query_df(
                con,
                f"SELECT * FROM ohlc_rejects WHERE {' AND '.join(where)} ORDER BY timeframe, partition, symbol, timestamp",
                params,
            )

    def delete_before(self, table: str, column: str, cutoff: pd.Timestamp) -> int:
        """Delete rows of ``table`` with ``column`` < ``cutoff`` (retention); returns the count."""
        _check_ident(table)
        _check_ident(column)
        with self.connect() as con:
            if not self.table_exists(con, table):
                return 0
            con.execute("BEGIN TRANSACTION")
            try:
                n = con.execute(f"SELECT count(*) FROM {table} WHERE {column} < ?", [cutoff.to_pydatetime()]).fetchall()[0][0]
                con.execute(f"DELETE FROM {table} WHERE {column} < ?", [cutoff.to_pydatetime()])
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise
        return int(n)

    def summary(self, derived: Sequence[str] = ()) -> pd.DataFrame:
        """What is stored: per OHLC table the symbols, bars, first/last bar and suspect/reject counts; then the
        ``derived`` tables (rows, symbols if they have them, first/last ``timestamp``)."""
        rows = []
        with self.connect(read_only=True) as con:
            rows += self._derived_summary(con, derived)
            for tf in Timeframe:
                table = ohlc_table(tf)
                if not self.table_exists(con, table):
                    continue
                n, nsym, first, last, susp = con.execute(
                    f"SELECT count(*), count(DISTINCT symbol), min(timestamp), max(timestamp), "
                    f"count(*) FILTER (WHERE suspect) FROM {table}"
                ).fetchall()[0]
                if n == 0:
                    continue
                rej = 0
                if self.table_exists(con, "ohlc_rejects"):
                    rej = con.execute("SELECT count(*) FROM ohlc_rejects WHERE timeframe = ?", [tf.value]).fetchall()[0][0]
                rows.append(
                    {
                        "table": table,
                        "symbols": nsym,
                        "bars": n,
                        "first_bar": pd.Timestamp(first).tz_convert("UTC"),
                        "last_bar": pd.Timestamp(last).tz_convert("UTC"),
                        "suspect": susp,
                        "rejects": rej,
                    }
                )
        ohlc = [r for r in rows if r["table"].startswith("ohlc_")]
        other = [r for r in rows if not r["table"].startswith("ohlc_")]
        return pd.DataFrame(ohlc + other,
                            columns=["table", "symbols", "bars", "first_bar", "last_bar", "suspect", "rejects"])

    def _derived_summary(self, con, tables: Sequence[str]) -> list[dict]:
        out = []
        for table in tables:
            _check_ident(table)
            if not self.table_exists(con, table):
                continue
            cols = {r[0] for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table]).fetchall()}
            sym = "count(DISTINCT symbol)" if "symbol" in cols else "NULL"
            tcol = next(c for c in ("timestamp", "detected_at", "cycle_point") if c in cols)
            n, nsym, first, last = con.execute(
                f"SELECT count(*), {sym}, min({tcol}), max({tcol}) FROM {table}").fetchall()[0]
            if n:
                out.append({"table": table, "symbols": nsym, "bars": n,
                            "first_bar": pd.Timestamp(first).tz_convert("UTC"),
                            "last_bar": pd.Timestamp(last).tz_convert("UTC"), "suspect": None, "rejects": None})
        return out
