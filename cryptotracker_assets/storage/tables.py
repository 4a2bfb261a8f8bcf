"""Derived tables in the warehouse: atomic slice replace / append / read, retention and the summary. Never imports
dagster. A table is created from the first frame written to it; later frames must carry the same columns."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import pandas as pd

from ..core.config import Timeframe
from .base import (SliceWrite, WarehouseError, check_ident, column_list, insert_frame, ohlc_table, query_df, scalar,
                   slice_where, sql_type, table_columns, table_exists, to_utc_ns)

CONFIG_VERSIONS_TABLE = "config_versions"
# SPEC §0.3: one integer sequence, +1 per distinct effective config; each row keeps its content hash (the SHA-256
# of the effective values, ``Config.fingerprint``), its origin and the values themselves (a replay rebuilds the
# config that was in force from them). The primary key makes two writers that saw the same latest row conflict.
CONFIG_VERSIONS_DDL = """
CREATE TABLE IF NOT EXISTS config_versions (
    config_version BIGINT      PRIMARY KEY,
    content_hash   VARCHAR     NOT NULL,
    origin         VARCHAR     NOT NULL,
    values_json    VARCHAR     NOT NULL,
    recorded_at    TIMESTAMPTZ NOT NULL
)
"""
LEGACY_CONFIG_VERSIONS_TABLE = "config_versions_unversioned"
# A version-number conflict between two writers is retried this many times (each retry re-reads the latest row).
CONFIG_VERSION_ATTEMPTS = 5


def create_config_versions(con) -> None:
    """Create ``config_versions``. A table written before versions were numbered (every row version 0, no key)
    is kept, renamed to ``config_versions_unversioned``; the sequence starts at 1."""
    if table_exists(con, CONFIG_VERSIONS_TABLE) and "origin" not in table_columns(con, CONFIG_VERSIONS_TABLE):
        con.execute(f"ALTER TABLE {CONFIG_VERSIONS_TABLE} RENAME TO {LEGACY_CONFIG_VERSIONS_TABLE}")
    con.execute(CONFIG_VERSIONS_DDL)


@dataclass(frozen=True)
class ConfigVersion:
    """One row of ``config_versions``."""

    config_version: int
    content_hash: str
    origin: str
    values: dict
    recorded_at: pd.Timestamp
    created: bool = False  # True when this call recorded it


def _config_version(row) -> ConfigVersion:
    v, h, o, values, at = row
    return ConfigVersion(int(v), h, o, json.loads(values), pd.Timestamp(at).tz_convert("UTC"))


def _same_columns(con, table: str, df: pd.DataFrame) -> None:
    """The frame carries every stored column (no silent drift); a column the table lacks is added to it first
    (a forward migration: stored rows get NULL there, which the watermark checks treat as stale)."""
    cols = table_columns(con, table)
    missing = sorted(set(cols) - set(df.columns))
    if missing:
        raise WarehouseError(f"{table}: the rows to store lack the stored column(s) {missing}")
    new = [c for c in df.columns if c not in cols]
    if new:
        for c in new:
            con.execute(f'ALTER TABLE {table} ADD COLUMN "{check_ident(c)}" {sql_type(df[c].dtype)}')


def record_config_version(con, content_hash: str, origin: str, values: dict, now: pd.Timestamp) -> ConfigVersion:
    """Inside an open transaction: the latest recorded version when its content hash is ``content_hash``, else the
    next integer (1 for the first), recorded with ``origin`` and ``values``."""
    rows = con.execute(f"SELECT * FROM {CONFIG_VERSIONS_TABLE} ORDER BY config_version DESC LIMIT 1").fetchall()
    if rows and rows[0][1] == content_hash:
        return _config_version(rows[0])
    version = int(rows[0][0]) + 1 if rows else 1
    payload = json.dumps(values, sort_keys=True)
    con.execute(f"INSERT INTO {CONFIG_VERSIONS_TABLE} VALUES (?, ?, ?, ?, ?)",
                [version, content_hash, origin, payload, pd.Timestamp(now).to_pydatetime()])
    return ConfigVersion(version, content_hash, origin, json.loads(payload), pd.Timestamp(now).tz_convert("UTC"),
                         created=True)


class TablesMixin:
    """Generic table operations of :class:`~.warehouse.Warehouse`."""

    def replace_table(self, table: str, df: pd.DataFrame) -> int:
        """Replace a whole (small, unpartitioned) table with ``df`` in one transaction."""
        check_ident(table)
        df = to_utc_ns(df.copy(), list(df.columns))
        with self.transaction() as con:
            con.register("_incoming", df)
            try:
                con.execute(f"DROP TABLE IF EXISTS {table}")
                con.execute(f"CREATE TABLE {table} AS SELECT * FROM _incoming")
            finally:
                con.unregister("_incoming")
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
        ONE transaction, by column name. The table is created from ``df``'s schema on first write; a column the
        frame adds is added to the table (a forward migration: other rows get NULL there); a frame lacking a stored
        column is an error naming it (no silent column drift)."""
        check_ident(table)
        check_ident(time_column)
        df = to_utc_ns(df.copy(), list(df.columns))
        if len(df):
            outside = (df[time_column] < start) | (df[time_column] >= end)
            if symbols is not None:
                outside |= ~df["symbol"].isin(list(symbols))
            if outside.any():
                raise WarehouseError(f"{table}: {int(outside.sum())} row(s) outside the slice [{start}, {end})")
        where, params = slice_where(time_column, start, end, symbols)
        with self.transaction() as con:
            if df.empty and not table_exists(con, table):
                return SliceWrite(table=table, deleted=0, inserted=0, unchanged=0)  # no types to create it from
            con.register("_incoming", df)
            try:
                if not table_exists(con, table):
                    con.execute(f"CREATE TABLE {table} AS SELECT * FROM _incoming LIMIT 0")
                _same_columns(con, table, df)
                deleted = scalar(con, f"SELECT count(*) FROM {table} WHERE {where}", params)
                con.execute(f"DELETE FROM {table} WHERE {where}", params)
                cols = column_list(df.columns)
                con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _incoming")
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
        *,
        columns: Sequence[str] | None = None,
        where_true: str | None = None,
        con=None,
    ) -> pd.DataFrame | None:
        """All rows of ``table`` with ``time_column`` in [start, end) (only ``columns`` if given, those the table
        has; only rows whose boolean column ``where_true`` is true if given), ordered by ``order_by`` (default: symbol
        when the table has one) then time; None when the table does not exist yet."""
        check_ident(table)
        check_ident(time_column)
        where, params = slice_where(time_column, start, end, symbols)
        if where_true is not None:
            where += f" AND {check_ident(where_true)}"

        def read(c) -> pd.DataFrame | None:
            if not table_exists(c, table):
                return None
            have = table_columns(c, table)
            by = order_by
            if by is None:
                by = ("symbol",) if "symbol" in have else ()
            order = ", ".join([*(check_ident(x) for x in by), time_column])
            what = "*" if columns is None else ", ".join(check_ident(x) for x in columns if x in have)
            return query_df(c, f"SELECT {what} FROM {table} WHERE {where} ORDER BY {order}", params)

        if con is not None:
            return read(con)
        with self.connect(read_only=True) as c:
            return read(c)

    def read_table(self, table: str, order_by: Sequence[str] = ()) -> pd.DataFrame | None:
        """A whole (small) table, ordered by ``order_by``; None when it does not exist."""
        check_ident(table)
        order = f" ORDER BY {', '.join(check_ident(c) for c in order_by)}" if order_by else ""
        with self.connect(read_only=True) as con:
            if not table_exists(con, table):
                return None
            return query_df(con, f"SELECT * FROM {table}{order}")

    def delete_before(self, table: str, column: str, cutoff: pd.Timestamp, keep: str | None = None) -> int:
        """Delete rows of ``table`` with ``column`` < ``cutoff`` (retention), except rows where the boolean
        column ``keep`` is true; returns the count."""
        check_ident(table)
        check_ident(column)
        cond = f"{column} < ?" + (f" AND NOT coalesce({check_ident(keep)}, FALSE)" if keep else "")
        with self.transaction() as con:
            if not table_exists(con, table):
                return 0
            n = scalar(con, f"SELECT count(*) FROM {table} WHERE {cond}", [cutoff.to_pydatetime()])
            con.execute(f"DELETE FROM {table} WHERE {cond}", [cutoff.to_pydatetime()])
        return int(n)

    # --- config versions ---------------------------------------------------------------------------------------

    def config_version_for(self, content_hash: str, origin: str, values: dict, now: pd.Timestamp) -> ConfigVersion:
        """The version of the effective config with ``content_hash``: the latest recorded version when its hash is
        the same, else the next integer (1 for the first), recorded with its origin and values — in ONE write
        transaction. Two writers that read the same latest row conflict on the key; the loser re-reads and finds
        the winner's row (same content: its version, nothing recorded twice)."""
        for attempt in range(CONFIG_VERSION_ATTEMPTS):
            try:
                with self.transaction() as con:
                    return record_config_version(con, content_hash, origin, values, now)
            except (duckdb.ConstraintException, duckdb.TransactionException):
                if attempt == CONFIG_VERSION_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def config_version_row(self, version: int) -> ConfigVersion | None:
        """The recorded row of ``version`` (its values rebuild the config that was in force), or None."""
        with self.connect(read_only=True) as con:
            rows = con.execute(f"SELECT * FROM {CONFIG_VERSIONS_TABLE} WHERE config_version = ?",
                               [int(version)]).fetchall()
        return _config_version(rows[0]) if rows else None

    def config_versions(self) -> pd.DataFrame:
        """Every recorded version, oldest first (values as JSON text)."""
        with self.connect(read_only=True) as con:
            return query_df(con, f"SELECT * FROM {CONFIG_VERSIONS_TABLE} ORDER BY config_version")

    # --- what is stored ----------------------------------------------------------------------------------------

    def summary(self, derived: Sequence[str] = ()) -> pd.DataFrame:
        """What is stored: per OHLC table the symbols, bars, first/last bar and suspect/reject counts; then the
        ``derived`` tables (rows, symbols if they have them, first/last of their time column)."""
        rows = []
        with self.connect(read_only=True) as con:
            for tf in Timeframe:
                table = ohlc_table(tf)
                n, nsym, first, last, susp = con.execute(
                    f"SELECT count(*), count(DISTINCT symbol), min(timestamp), max(timestamp), "
                    f"count(*) FILTER (WHERE suspect) FROM {table}"
                ).fetchall()[0]
                if n == 0:
                    continue
                rej = scalar(con, "SELECT count(*) FROM ohlc_rejects WHERE timeframe = ?", [tf.value])
                rows.append({"table": table, "symbols": nsym, "bars": n,
                             "first_bar": pd.Timestamp(first).tz_convert("UTC"),
                             "last_bar": pd.Timestamp(last).tz_convert("UTC"), "suspect": susp, "rejects": rej})
            for table in derived:
                check_ident(table)
                if not table_exists(con, table):
                    continue
                cols = set(table_columns(con, table))
                sym = "count(DISTINCT symbol)" if "symbol" in cols else "NULL"
                tcol = next(c for c in ("timestamp", "detected_at", "cycle_point", "day", "closed_at", "analyzed_at")
                            if c in cols)
                n, nsym, first, last = con.execute(
                    f"SELECT count(*), {sym}, min({tcol}), max({tcol}) FROM {table}").fetchall()[0]
                if n:
                    rows.append({"table": table, "symbols": nsym, "bars": n,
                                 "first_bar": pd.Timestamp(first).tz_convert("UTC"),
                                 "last_bar": pd.Timestamp(last).tz_convert("UTC"), "suspect": None, "rejects": None})
        return pd.DataFrame(rows, columns=["table", "symbols", "bars", "first_bar", "last_bar", "suspect", "rejects"])


def append_keyed(con, table: str, df: pd.DataFrame, key: Sequence[str], *, prune: str | None = None,
                 compare: bool = True) -> int:
    """Append ``df`` to ``table`` inside an open transaction, idempotent on ``key`` (SPEC §5.3): a row whose key is
    stored and whose values are identical is skipped (committing it again is a no-op); a row whose key is stored
    with different values raises naming the key and the columns (``compare=False``: stored keys are skipped
    whatever the values, for rows that are queued, not history). ``prune``: a time column that equal keys share,
    used to read only the stored rows in the frame's time range. Returns the rows inserted."""
    if df is None or df.empty:
        return 0
    frame = to_utc_ns(df.copy(), list(df.columns))
    cols = [check_ident(c) for c in key]
    dup = frame.duplicated(list(key), keep=False)
    if dup.any():
        first = frame.loc[dup, list(key)].iloc[0].to_dict()
        raise WarehouseError(f"{table}: the rows to store repeat the key {first}")
    if not table_exists(con, table):
        insert_frame(con, table, frame)
        return len(frame)
    _same_columns(con, table, frame)
    on = " AND ".join(f"s.{c} = i.{c}" for c in cols)
    where = "TRUE"
    params: list = []
    if prune is not None:
        where = f"s.{check_ident(prune)} >= ? AND s.{prune} <= ?"
        params = [frame[prune].min().to_pydatetime(), frame[prune].max().to_pydatetime()]
    if prune is not None and not scalar(con, f"SELECT count(*) FROM {table} s WHERE {where}", params):
        insert_frame(con, table, frame, create=False)  # nothing stored in the frame's time range: no key to meet
        return len(frame)
    con.register("_incoming", frame)
    try:
        stored_keys = query_df(con, f"SELECT i.* FROM _incoming i JOIN {table} s ON {on} WHERE {where}", params)
        if len(stored_keys) and compare:
            others = [check_ident(c) for c in frame.columns if c not in key]
            differs = " OR ".join(f"s.{c} IS DISTINCT FROM i.{c}" for c in others) or "FALSE"
            bad = query_df(con, f"SELECT {', '.join('i.' + c for c in cols)}, "
                                f"{', '.join(f'(s.{c} IS DISTINCT FROM i.{c}) AS d_{c}' for c in others)} "
                                f"FROM _incoming i JOIN {table} s ON {on} WHERE {where} AND ({differs}) LIMIT 1",
                           params)
            if len(bad):
                r = bad.iloc[0]
                which = [c for c in others if bool(r[f"d_{c}"])]
                raise WarehouseError(
                    f"{table}: a stored row has the key {({c: r[c] for c in cols})} with other values in {which} "
                    f"(an engine-state reset or a second writer?); refusing to store a second version")
        if len(stored_keys) == len(frame):
            return 0
        con.execute(f"INSERT INTO {table} ({column_list(frame.columns)}) "
                    f"SELECT {column_list(frame.columns, 'i.')} FROM _incoming i "
                    f"WHERE NOT EXISTS (SELECT 1 FROM {table} s WHERE {on} AND {where})", params)
    finally:
        con.unregister("_incoming")
    return len(frame) - len(stored_keys)


def append_frame(con, table: str, df: pd.DataFrame) -> None:
    """Append ``df`` to ``table`` inside an open transaction (ns UTC times, by column name)."""
    if df is None or df.empty:
        return
    frame = to_utc_ns(df.copy(), list(df.columns))
    if table_exists(con, table):
        _same_columns(con, table, frame)
    insert_frame(con, table, frame)
