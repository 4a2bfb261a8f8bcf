"""Connections, transactions and the generic SQL helpers of the DuckDB warehouse. Never imports dagster.

- Every write is ONE transaction (:meth:`WarehouseBase.transaction`): the old rows survive any failure.
- Several reads that must agree go through one read transaction (:meth:`WarehouseBase.snapshot`).
- DuckDB allows one process per file: connections are opened briefly and retried while another process holds
  the lock, for ``lock_timeout_s`` (``data.warehouse.lock_wait_s``), then fail with a clear message.
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
from ..environment import is_url

IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")
# "symbol is one of the list parameter", in SQL both DuckDB and PostgreSQL run (the list as a typed array)
IN_SYMBOLS = "symbol IN (SELECT unnest(CAST(? AS VARCHAR[])))"
UTC_NS = "datetime64[ns, UTC]"


class WarehouseError(RuntimeError):
    """A warehouse operation failed; the message names the table/slice."""


class WarehouseLockedError(WarehouseError):
    """Another process held the DuckDB file lock for longer than the wait budget."""


def ohlc_table(timeframe: Timeframe | str) -> str:
    return f"ohlc_{Timeframe(timeframe).value}"


def check_ident(name: str) -> str:
    """``name`` if it is a plain lower-case SQL identifier (tables and columns are never user text)."""
    if not IDENT.match(name):
        raise WarehouseError(f"invalid table name {name!r}")
    return name


def slice_where(
    time_column: str, start: pd.Timestamp | None, end: pd.Timestamp | None, symbols: Sequence[str] | None = None
) -> tuple[str, list]:
    """SQL condition + parameters for ``time_column`` in [start, end) (either bound optional) × ``symbols``."""
    where, params = ["TRUE"], []
    if start is not None:
        where.append(f"{check_ident(time_column)} >= ?")
        params.append(pd.Timestamp(start).to_pydatetime())
    if end is not None:
        where.append(f"{check_ident(time_column)} < ?")
        params.append(pd.Timestamp(end).to_pydatetime())
    if symbols is not None:
        where.append(IN_SYMBOLS)
        params.append(list(symbols))
    return " AND ".join(where), params


@dataclass(frozen=True)
class SliceWrite:
    """What a slice replacement did."""

    table: str
    deleted: int
    inserted: int
    unchanged: int  # rows whose values were identical to the stored ones (their ingested_at was kept)


def to_utc_ns(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Prepare a frame for DuckDB in place: tz-aware columns as ns UTC (naive ones raise), all-null object columns
    as text (DuckDB would type them NULL when it creates a table from the frame)."""
    for c in df.columns:
        if df[c].dtype == object and len(df) and df[c].isna().all():
            df[c] = df[c].astype("string")
    for c in columns:
        if c in df.columns:
            col = df[c]
            if isinstance(col.dtype, pd.DatetimeTZDtype):
                if str(col.dtype) != UTC_NS:
                    df[c] = col.dt.tz_convert("UTC").astype(UTC_NS)
            elif pd.api.types.is_datetime64_any_dtype(col):
                raise WarehouseError(f"column {c} holds naive timestamps; the warehouse stores tz-aware UTC only")
    return df


def query_df(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence | None = None) -> pd.DataFrame:
    """Run ``sql`` and return all rows as pandas (Arrow path; timestamps as ns UTC)."""
    df = con.sql(sql, params=list(params or [])).to_arrow_table().to_pandas(coerce_temporal_nanoseconds=True)
    for c in df.columns:
        if isinstance(df[c].dtype, pd.DatetimeTZDtype) and str(df[c].dtype) != UTC_NS:
            df[c] = df[c].dt.tz_convert("UTC").astype(UTC_NS)
    return df


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence | None = None):
    return con.execute(sql, list(params or [])).fetchall()[0][0]


def table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(scalar(con, "SELECT count(*) FROM information_schema.tables WHERE table_name = ? "
                            "AND table_schema = current_schema()", [table]))


def table_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ? AND table_schema = current_schema() "
        "ORDER BY ordinal_position", [table]).fetchall()]


def sql_type(dtype) -> str:
    """The SQL type (DuckDB and PostgreSQL alike) of a pandas column dtype."""
    kind = str(dtype)
    if kind.startswith("datetime64") and "UTC" in kind:
        return "TIMESTAMPTZ"
    if kind.startswith("datetime64"):
        return "TIMESTAMP"
    return {"float64": "DOUBLE PRECISION", "float32": "REAL", "int64": "BIGINT", "Int64": "BIGINT",
            "int32": "INTEGER", "Int32": "INTEGER", "int16": "SMALLINT", "int8": "SMALLINT", "bool": "BOOLEAN",
            "boolean": "BOOLEAN"}.get(kind, "VARCHAR")


def column_list(columns, prefix: str = "") -> str:
    """``"a", "b"`` (quoted: a column may be a keyword, e.g. ``trailing``), each after ``prefix`` (``i.``)."""
    return ", ".join(f'{prefix}"{check_ident(c)}"' for c in columns)


def begin_write(con) -> None:
    """Start a write transaction (PostgreSQL: holding the warehouse's writer lock, :mod:`.pg`)."""
    if hasattr(con, "begin_write"):
        con.begin_write()
    else:
        con.execute("BEGIN TRANSACTION")


def begin_read(con) -> None:
    """Start a read transaction that sees one committed state (PostgreSQL: REPEATABLE READ, :mod:`.pg`)."""
    if hasattr(con, "begin_read"):
        con.begin_read()
    else:
        con.execute("BEGIN TRANSACTION")


def insert_frame(con: duckdb.DuckDBPyConnection, table: str, df: pd.DataFrame, create: bool = True) -> None:
    """Insert ``df`` into ``table`` by column NAME (the table is created from the frame's schema when missing)."""
    check_ident(table)
    con.register("_frame", df)
    try:
        if create and not table_exists(con, table):
            con.execute(f"CREATE TABLE {table} AS SELECT * FROM _frame LIMIT 0")
        cols = column_list(df.columns)
        con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _frame")
    finally:
        con.unregister("_frame")


class WarehouseBase:
    """A DuckDB file (or ``:memory:`` for tests that need one process only)."""

    def __init__(self, path: str | Path, lock_timeout_s: float = 60.0, lock_retry_s: float = 0.1,
                 keep_open: bool = False, create: bool = True, memory_limit_mb: int | None = None,
                 threads: int | None = None):
        """``keep_open``: hold one connection for this object's lifetime (close with :meth:`close` or ``with``),
        for a long-lived process that reads repeatedly; otherwise every call opens briefly so other processes can
        take the file lock in between. ``create=False``: a missing file raises instead of being created (read-only
        commands never create a warehouse). ``memory_limit_mb``: DuckDB's memory limit for this object's connections
        (default: DuckDB's, 80 % of RAM), for long-lived processes that should not keep a large buffer pool;
        ``threads``: DuckDB's worker threads (default: one per core), for a process that shares the cores."""
        self.path = str(path)
        self.memory_limit_mb = memory_limit_mb
        self.threads = threads
        self.lock_timeout_s = lock_timeout_s
        self.lock_retry_s = lock_retry_s
        self.keep_open = keep_open
        self.create = create
        self._con: duckdb.DuckDBPyConnection | None = None
        self._schema_ready = False

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def is_postgres(self) -> bool:
        return is_url(self.path)

    def exists(self) -> bool:
        if self.is_postgres:
            try:
                with self.connect(read_only=True):
                    return True
            except WarehouseError:
                return False
        return self.path == ":memory:" or Path(self.path).exists()

    # --- connections -------------------------------------------------------------------------------------------

    def _open(self) -> duckdb.DuckDBPyConnection:
        if self.is_postgres:
            return self._open_postgres()
        if self.path != ":memory:":
            if not self.create and not Path(self.path).exists():
                raise WarehouseError(f"no warehouse at {self.path} (run `make run` or set CRYPTOTRACKER_WAREHOUSE)")
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
                locked = "lock" in str(exc).lower()
                if not locked:
                    raise
                if time.monotonic() > deadline:
                    raise WarehouseLockedError(
                        f"warehouse {self.path} is locked by another process (waited {self.lock_timeout_s:.0f} s, "
                        f"data.warehouse.lock_wait_s): {exc}") from exc
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
        con.execute("SET TimeZone = 'UTC'")
        if self.memory_limit_mb is not None:
            con.execute(f"SET memory_limit = '{int(self.memory_limit_mb)}MB'")
        if self.threads is not None:
            con.execute(f"SET threads = {int(self.threads)}")
        if not self._schema_ready:
            self._ensure_schema(con)
            self._schema_ready = True
        return con

    def _open_postgres(self):
        from .pg import PgConnection

        con = PgConnection(self.path, self.lock_timeout_s)
        try:
            if not self.create and not table_exists(con, "schema_version"):
                raise WarehouseError(f"no warehouse at {self.path} (run `make run` with CRYPTOTRACKER_WAREHOUSE set "
                                     f"to it, or `cryptotracker warehouse migrate --to` it)")
            if not self._schema_ready:
                self._ensure_schema(con)
                self._schema_ready = True
        except BaseException:
            con.close()
            raise
        return con

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection with UTC session time (``read_only`` documents intent: readers never write)."""
        if self._con is not None:
            yield self._con
            return
        con = self._open()
        if self.keep_open:
            self._con = con
            yield con
            return
        try:
            yield con
        finally:
            con.close()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One write transaction: committed when the block ends, rolled back on any exception."""
        with self.connect() as con:
            begin_write(con)
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    @contextmanager
    def snapshot(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One read transaction: every read in the block sees the same committed state."""
        with self.connect(read_only=True) as con:
            begin_read(con)
            try:
                yield con
            finally:
                con.execute("ROLLBACK")

    def _ensure_schema(self, con: duckdb.DuckDBPyConnection) -> None:
        """Create the fixed tables; subclasses extend it."""

    # --- generic reads -----------------------------------------------------------------------------------------

    def query(self, sql: str, params: Sequence | None = None, *, con=None) -> pd.DataFrame:
        """Rows of one of this package's queries: on ``con`` when given (a read inside a :meth:`snapshot`), else on
        a short read connection."""
        if con is not None:
            return query_df(con, sql, params)
        with self.connect(read_only=True) as c:
            return query_df(c, sql, params)

    def read_sql(self, sql: str, params: Sequence | None = None) -> pd.DataFrame:
        """An ad-hoc read-only query (diagnostics and tests; the product's own reads are the named methods)."""
        with self.connect(read_only=True) as con:
            return query_df(con, sql, params)

    def table_exists(self, table: str) -> bool:
        with self.connect(read_only=True) as con:
            return table_exists(con, check_ident(table))

    def time_bounds(self, table: str, column: str, *, con=None) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
        """(min, max) of ``column`` in ``table`` (None, None when the table is missing or empty)."""
        def read(c):
            if not table_exists(c, check_ident(table)):
                return None, None
            return c.execute(f"SELECT min({check_ident(column)}), max({column}) FROM {table}").fetchall()[0]

        if con is not None:
            lo, hi = read(con)
        else:
            with self.connect(read_only=True) as c:
                lo, hi = read(c)
        conv = (lambda v: None if v is None else pd.Timestamp(v).tz_convert("UTC"))
        return conv(lo), conv(hi)
