"""The PostgreSQL warehouse backend (issue 14): everything that differs from DuckDB lives here. Never imports dagster.

``CRYPTOTRACKER_WAREHOUSE=postgresql://USER@HOST:PORT/DB`` selects it; the password comes from ``PGPASSWORD`` (libpq
reads it), never from the URL — a URL that carries one is refused without echoing it. The storage modules speak
one SQL both databases run; :class:`PgConnection` offers the small DuckDB connection API they use:

- ``execute(sql, params)`` / ``fetchall`` / ``fetchone``: ``?`` placeholders (DuckDB's) become psycopg2's;
- ``register(name, frame)`` / ``unregister(name)``: the frame as a temporary table, filled by ``COPY`` (bulk, not
  row inserts) from CSV written with round-trip float precision, so every float bit survives;
- ``sql(sql, params).to_arrow_table()``: the rows as Arrow with the column types of the result (the same pandas
  conversion as DuckDB's);
- ``begin_write`` / ``begin_read``: a write transaction holds the warehouse's advisory lock for its lifetime (writers
  serialise per warehouse, as one DuckDB file would make them; readers never wait), a read transaction is
  REPEATABLE READ, so every read in it sees one committed state (its temporary tables aside).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from datetime import datetime
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd
import pyarrow as pa

from .base import WarehouseError, WarehouseLockedError, check_ident, sql_type

WRITE_LOCK = 7_231_401  # pg_advisory_xact_lock key of the warehouse's writers (one database = one warehouse)
ARROW = {16: pa.bool_(), 20: pa.int64(), 21: pa.int64(), 23: pa.int64(), 700: pa.float64(), 701: pa.float64(),
         1700: pa.float64(), 25: pa.string(), 1043: pa.string(), 1042: pa.string(),
         1114: pa.timestamp("us"), 1184: pa.timestamp("us", tz="UTC")}


def connect_args(url: str) -> dict:
    """libpq keywords of a warehouse URL; a password in it is refused (the message never repeats the URL)."""
    u = urlparse(url)
    if u.password is not None:
        raise WarehouseError("CRYPTOTRACKER_WAREHOUSE: the PostgreSQL URL carries a password; remove it from the "
                             "URL and set PGPASSWORD instead (passwords never go in URLs, logs or metadata)")
    db = unquote(u.path.lstrip("/"))
    if not db:
        raise WarehouseError(f"CRYPTOTRACKER_WAREHOUSE={url}: name the database (postgresql://USER@HOST:PORT/DB)")
    args = {"host": u.hostname or "127.0.0.1", "port": u.port or 5432, "dbname": db}
    if u.username:
        args["user"] = unquote(u.username)
    return args


def translate(sql: str) -> str:
    """DuckDB's ``?`` placeholders as psycopg2's ``%s`` (a literal ``%`` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


def adapt(value):
    if isinstance(value, (list, tuple)):
        return [adapt(v) for v in value]
    if value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, np.generic):
        return value.item()
    return value


class PgResult:
    """The rows of one statement (fetched at once), as DuckDB's results give them."""

    def __init__(self, rows: list[tuple], description) -> None:
        self.rows = rows
        self.description = description

    def fetchall(self) -> list[tuple]:
        return list(self.rows)

    def fetchone(self):
        return self.rows[0] if self.rows else None


def copy_source(table: str, frame: pd.DataFrame) -> tuple[str, io.BytesIO]:
    """(the COPY statement, its CSV) of ``frame``: written by Arrow (floats as their shortest round-trip digits,
    UTC times with ``Z``, strings quoted, NULL unquoted-empty); a frame Arrow cannot type (mixed Python objects)
    by pandas with an explicit NULL marker."""
    import pyarrow.csv as pcsv

    buf = io.BytesIO()
    try:
        pcsv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), buf,
                       write_options=pcsv.WriteOptions(include_header=False))
        sql = f"COPY {table} FROM STDIN WITH (FORMAT csv)"
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        buf = io.BytesIO(frame.to_csv(index=False, header=False, na_rep="\\N").encode())
        sql = f"COPY {table} FROM STDIN WITH (FORMAT csv, NULL '\\N')"
    buf.seek(0)
    return sql, buf


class PgArrow:
    """The lazy result of :meth:`PgConnection.sql` (DuckDB's relation API: ``to_arrow_table``)."""

    def __init__(self, con: "PgConnection", sql: str, params: Sequence | None) -> None:
        self.con, self.sql, self.params = con, sql, params

    def to_arrow_table(self) -> pa.Table:
        import pyarrow.csv as pcsv

        raw = self.con.raw
        with raw.cursor() as cur:
            query = cur.mogrify(translate(self.sql), adapt(list(self.params or []))).decode()
            cur.execute(f"SELECT * FROM ({query}) AS _shape LIMIT 0")
            desc = cur.description
            buf = io.BytesIO()
            cur.copy_expert(f"COPY ({query}) TO STDOUT WITH (FORMAT csv, NULL '\\N')", buf)
        names = [d.name for d in desc]
        types = {d.name: ARROW.get(d.type_code, pa.string()) for d in desc}
        if not buf.getbuffer().nbytes:
            return pa.table({n: pa.array([], type=types[n]) for n in names})
        buf.seek(0)
        return pcsv.read_csv(buf, read_options=pcsv.ReadOptions(column_names=names),
                             convert_options=pcsv.ConvertOptions(
                                 column_types=types, null_values=["\\N"], strings_can_be_null=True,
                                 quoted_strings_can_be_null=False, true_values=["t"], false_values=["f"]))


class PgConnection:
    """One psycopg2 connection with the DuckDB connection API the storage modules use (module docstring)."""

    def __init__(self, url: str, lock_timeout_s: float) -> None:
        import psycopg2

        self.url = url
        self.lock_timeout_s = lock_timeout_s
        try:
            self.raw = psycopg2.connect(**connect_args(url), connect_timeout=10,
                                        application_name=f"cryptotracker pid {os.getpid()}")
        except psycopg2.OperationalError as exc:
            raise WarehouseError(f"warehouse {url}: cannot connect: {str(exc).strip()}") from None
        self.raw.autocommit = True  # transactions are explicit (BEGIN … COMMIT), as on DuckDB
        with self.raw.cursor() as cur:
            cur.execute("SET TIME ZONE 'UTC'")
            cur.execute(f"SET lock_timeout = '{max(int(lock_timeout_s * 1000), 1)}ms'")

    # --- DuckDB's connection API ----------------------------------------------------------------------------------

    def execute(self, sql: str, params: Sequence | None = None) -> PgResult:
        import psycopg2

        if sql.strip().upper() == "BEGIN TRANSACTION":
            self.begin_write()
            return PgResult([], None)
        with self.raw.cursor() as cur:
            try:
                cur.execute(translate(sql), adapt(list(params or [])))
            except psycopg2.errors.LockNotAvailable as exc:
                raise WarehouseLockedError(self.locked_message(exc)) from None
            rows = cur.fetchall() if cur.description else []
            return PgResult(rows, cur.description)

    def sql(self, sql: str, params: Sequence | None = None) -> "PgArrow":
        """A query's rows for pandas: its column types from a ``LIMIT 0`` of it, its rows by ``COPY … TO STDOUT``
        as CSV parsed by Arrow (floats round-trip exactly: PostgreSQL writes the shortest exact digits)."""
        return PgArrow(self, sql, params)

    def register(self, name: str, frame: pd.DataFrame) -> None:
        """``frame`` as the temporary table ``name``, filled by COPY (floats written as repr: exact)."""
        check_ident(name)
        cols = ", ".join(f'"{check_ident(c)}" {sql_type(frame[c].dtype)}' for c in frame.columns)
        with self.raw.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {name}")
            cur.execute(f"CREATE TEMP TABLE {name} ({cols})")
            if len(frame):
                cur.copy_expert(*copy_source(name, frame))

    def unregister(self, name: str) -> None:
        with self.raw.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {name}")

    def close(self) -> None:
        self.raw.close()

    # --- transactions -----------------------------------------------------------------------------------------

    def begin_write(self) -> None:
        """A write transaction holding the warehouse's advisory lock (waits up to ``lock_timeout_s``)."""
        import psycopg2

        with self.raw.cursor() as cur:
            cur.execute("BEGIN")
            try:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", [WRITE_LOCK])
            except psycopg2.errors.LockNotAvailable as exc:
                cur.execute("ROLLBACK")
                raise WarehouseLockedError(self.locked_message(exc)) from None

    def begin_read(self) -> None:
        with self.raw.cursor() as cur:
            cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")  # not READ ONLY: reads may register a frame

    def locked_message(self, exc) -> str:
        holder = self.lock_holder()
        return (f"warehouse {self.url} is locked by another writer{f' ({holder})' if holder else ''} (waited "
                f"{self.lock_timeout_s:.0f} s, data.warehouse.lock_wait_s): {str(exc).strip()}")

    def lock_holder(self) -> str | None:
        try:
            with self.raw.cursor() as cur:
                cur.execute("SELECT a.pid, a.application_name, a.query_start FROM pg_locks l JOIN pg_stat_activity a "
                            "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.objid = %s AND l.granted",
                            [WRITE_LOCK])
                row = cur.fetchone()
        except Exception:  # naming the holder is a courtesy; the lock error is the message
            return None
        if row is None:
            return None
        since = row[2].isoformat() if isinstance(row[2], datetime) else row[2]
        return f"PID {row[0]} on the server, {row[1] or 'unnamed client'}, since {since}"
