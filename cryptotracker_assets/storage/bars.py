"""Candles in the warehouse: ``ohlc_<tf>`` tables, rejects and gaps (SPEC §13.1, I-6). Never imports dagster.

Inserts go by column NAME, never by position; a slice write is one transaction; reads return complete,
chronological results or raise.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pandas as pd

from ..core.config import Timeframe
from ..core.ohlc import NUMERIC_COLUMNS, STORED_COLUMNS, empty_bars
from .base import (IN_SYMBOLS, SliceWrite, WarehouseError, column_list, insert_frame, ohlc_table, query_df, scalar,
                   slice_where, table_exists, to_utc_ns)

OHLC_DDL = """
CREATE TABLE IF NOT EXISTS {table} (
    symbol      VARCHAR     NOT NULL,
    timestamp   TIMESTAMPTZ NOT NULL,
    open        DOUBLE PRECISION      NOT NULL,
    high        DOUBLE PRECISION      NOT NULL,
    low         DOUBLE PRECISION      NOT NULL,
    close       DOUBLE PRECISION      NOT NULL,
    volume      DOUBLE PRECISION      NOT NULL,
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

REJECT_COLUMNS_SHOWN = ["timeframe", "partition", "symbol", "timestamp", "field", "reason"]


def create_bar_tables(con: duckdb.DuckDBPyConnection) -> None:
    for tf in Timeframe:
        con.execute(OHLC_DDL.format(table=ohlc_table(tf)))
    con.execute(REJECTS_DDL)
    con.execute(GAPS_DDL)


def _replace_rejects(con, timeframe: Timeframe, partition: str, symbols, rejects: pd.DataFrame, run_id) -> None:
    where = "timeframe = ? AND partition = ?"
    params: list = [timeframe.value, partition]
    if symbols is not None:
        where += f" AND {IN_SYMBOLS}"
        params.append(list(symbols))
    con.execute(f"DELETE FROM ohlc_rejects WHERE {where}", params)
    if len(rejects):
        insert_frame(con, "ohlc_rejects", to_utc_ns(rejects.assign(run_id=run_id), ["rejected_at"]), create=False)


class BarsMixin:
    """Bar reads and writes of :class:`~.warehouse.Warehouse`."""

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
        df = to_utc_ns(bars[STORED_COLUMNS], ["timestamp", "ingested_at"])  # a new frame: safe to modify
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
        with self.transaction() as con:
            con.register("_incoming", df)
            try:
                existing = scalar(con, f"SELECT count(*) FROM {table} WHERE {where}", params)
                unchanged = 0
                source = "_incoming"
                if existing:
                    eq = " AND ".join(f"o.{c} = n.{c}" for c in NUMERIC_COLUMNS)
                    kept = column_list([c for c in STORED_COLUMNS if c != "ingested_at"], "n.")
                    con.execute("DROP TABLE IF EXISTS _incoming_kept")
                    con.execute(
                        f"CREATE TEMP TABLE _incoming_kept AS "
                        f"SELECT {kept}, coalesce(o.ingested_at, n.ingested_at) AS ingested_at "
                        f"FROM _incoming n LEFT JOIN (SELECT * FROM {table} WHERE {where}) o "
                        f"ON o.symbol = n.symbol AND o.timestamp = n.timestamp AND {eq}",
                        params,
                    )
                    unchanged = scalar(
                        con,
                        f"SELECT count(*) FROM _incoming_kept k JOIN (SELECT * FROM {table} WHERE {where}) o "
                        f"ON o.symbol = k.symbol AND o.timestamp = k.timestamp AND o.ingested_at = k.ingested_at",
                        params,
                    )
                    source = "_incoming_kept"
                    con.execute(f"DELETE FROM {table} WHERE {where}", params)
                if _fail_after_delete:  # test hook: a crash between delete and insert
                    raise WarehouseError(f"{table}: injected failure after delete")
                cols = column_list(STORED_COLUMNS)
                con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {source}")
                if rejects is not None and partition is not None:
                    _replace_rejects(con, Timeframe(timeframe), partition, symbols, rejects, run_id)
            finally:
                con.unregister("_incoming")
        return SliceWrite(table=table, deleted=int(existing), inserted=len(df), unchanged=int(unchanged))

    def replace_rejects(
        self, timeframe: Timeframe | str, partition: str, symbols: Sequence[str] | None, rejects: pd.DataFrame,
        run_id: str | None = None,
    ) -> int:
        """Replace the rejects recorded for (timeframe, partition[, symbols]) with ``rejects`` (one transaction)."""
        with self.transaction() as con:
            _replace_rejects(con, Timeframe(timeframe), partition, symbols, rejects, run_id)
        return len(rejects)

    def upsert_bars(self, timeframe: Timeframe | str, bars: pd.DataFrame) -> int:
        """Insert bars, replacing stored bars with the same (symbol, timestamp) whose values differ; identical
        bars are left alone (their ingested_at is kept). Returns the number of rows inserted or changed."""
        table = ohlc_table(timeframe)
        if bars.empty:
            return 0
        df = to_utc_ns(bars[STORED_COLUMNS].copy(), ["timestamp", "ingested_at"])
        eq = " AND ".join(f"o.{c} = n.{c}" for c in NUMERIC_COLUMNS)
        with self.transaction() as con:
            con.register("_incoming", df)
            try:
                con.execute("DROP TABLE IF EXISTS _changed")
                con.execute(
                    f"CREATE TEMP TABLE _changed AS SELECT n.* FROM _incoming n "
                    f"WHERE NOT EXISTS (SELECT 1 FROM {table} o WHERE o.symbol = n.symbol "
                    f"AND o.timestamp = n.timestamp AND {eq})"
                )
                changed = scalar(con, "SELECT count(*) FROM _changed")
                con.execute(
                    f"DELETE FROM {table} o USING _changed c WHERE o.symbol = c.symbol AND o.timestamp = c.timestamp"
                )
                cols = column_list(STORED_COLUMNS)
                con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _changed")
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
            return query_df(con, sql, params)
        with self.connect(read_only=True) as c:
            if not table_exists(c, table):
                return empty_bars(with_flags=True)
            return query_df(c, sql, params)

    def read_bars_after(
        self,
        timeframe: Timeframe | str,
        after: dict[str, pd.Timestamp],
        default_start: pd.Timestamp,
        end: pd.Timestamp,
        symbols: Sequence[str],
        *,
        con: duckdb.DuckDBPyConnection | None = None,
    ) -> pd.DataFrame:
        """Bars of ``symbols`` with open time < ``end``: after ``after[symbol]`` (exclusive) where given, else from
        ``default_start``; ordered by (symbol, timestamp)."""
        table = ohlc_table(timeframe)
        bounds = pd.DataFrame({
            "symbol": list(symbols),
            "after": pd.to_datetime([after.get(s, default_start - pd.Timedelta(1, unit="ns")) for s in symbols],
                                    utc=True).astype("datetime64[ns, UTC]"),
        })
        sql = (f"SELECT {', '.join('b.' + c for c in STORED_COLUMNS)} FROM {table} b JOIN _bounds a "
               f"ON a.symbol = b.symbol AND b.timestamp > a.after WHERE b.timestamp < ? ORDER BY b.symbol, b.timestamp")

        def read(c) -> pd.DataFrame:
            c.register("_bounds", bounds)
            try:
                return query_df(c, sql, [pd.Timestamp(end).to_pydatetime()])
            finally:
                c.unregister("_bounds")

        if con is not None:
            return read(con)
        with self.connect(read_only=True) as c:
            return read(c)

    def newest_bar_before(self, timeframe: Timeframe | str, end: pd.Timestamp, *,
                          con: duckdb.DuckDBPyConnection | None = None) -> pd.Timestamp | None:
        """Open time of the newest stored bar (any symbol) opening before ``end``."""
        sql = f"SELECT max(timestamp) FROM {ohlc_table(timeframe)} WHERE timestamp < ?"
        if con is not None:
            v = scalar(con, sql, [pd.Timestamp(end).to_pydatetime()])
        else:
            with self.connect(read_only=True) as c:
                v = scalar(c, sql, [pd.Timestamp(end).to_pydatetime()])
        return None if v is None else pd.Timestamp(v).tz_convert("UTC")

    def bar_watermarks(
        self,
        timeframe: Timeframe | str,
        start: pd.Timestamp,
        end: pd.Timestamp,
        *,
        con: duckdb.DuckDBPyConnection | None = None,
    ) -> pd.DataFrame:
        """Per bar open time in [start, end): the greatest ``ingested_at`` over all symbols (columns ``timestamp``,
        ``ingested_at``, chronological) — what a derived row computed at T from the bars before T has seen."""
        table = ohlc_table(timeframe)
        where, params = slice_where("timestamp", start, end)
        sql = f"SELECT timestamp, max(ingested_at) AS ingested_at FROM {table} WHERE {where} GROUP BY 1 ORDER BY 1"
        if con is not None:
            return query_df(con, sql, params)
        with self.connect(read_only=True) as c:
            return query_df(c, sql, params)

    def last_close_before(
        self, timeframe: Timeframe | str, before: pd.Timestamp, symbols: Sequence[str]
    ) -> dict[str, float]:
        """Each symbol's close of its latest stored bar with open time < ``before`` (for suspect flags)."""
        table = ohlc_table(timeframe)
        with self.connect(read_only=True) as con:
            rows = con.execute(
                f"SELECT DISTINCT ON (symbol) symbol, close FROM {table} "
                f"WHERE timestamp < ? AND {IN_SYMBOLS} ORDER BY symbol, timestamp DESC",
                [pd.Timestamp(before).to_pydatetime(), list(symbols)],
            ).fetchall()
        return {s: float(c) for s, c in rows}

    def latest_closes(
        self, timeframe: Timeframe | str, symbols: Sequence[str]
    ) -> dict[str, tuple[float, pd.Timestamp]]:
        """Each symbol's latest stored close and that bar's open time."""
        if not symbols:
            return {}
        table = ohlc_table(timeframe)
        with self.connect(read_only=True) as con:
            rows = con.execute(
                f"SELECT DISTINCT ON (symbol) symbol, close, timestamp FROM {table} "
                f"WHERE {IN_SYMBOLS} ORDER BY symbol, timestamp DESC", [list(symbols)]).fetchall()
        return {s: (float(c), pd.Timestamp(t).tz_convert("UTC")) for s, c, t in rows}

    def latest_bar_times(self, timeframe: Timeframe | str,
                         symbols: Sequence[str] | None = None) -> dict[str, pd.Timestamp]:
        table = ohlc_table(timeframe)
        with self.connect(read_only=True) as con:
            sql = f"SELECT symbol, max(timestamp) FROM {table}"
            params: list = []
            if symbols is not None:
                sql += f" WHERE {IN_SYMBOLS}"
                params.append(list(symbols))
            rows = con.execute(sql + " GROUP BY symbol", params).fetchall()
        return {s: pd.Timestamp(t).tz_convert("UTC") for s, t in rows}

    def duplicate_keys(self, timeframe: Timeframe | str) -> int:
        table = ohlc_table(timeframe)
        with self.connect(read_only=True) as con:
            return int(scalar(
                con, f"SELECT count(*) FROM (SELECT symbol, timestamp FROM {table} GROUP BY 1, 2 HAVING count(*) > 1) AS dup"))

    def read_rejects(self, timeframe: Timeframe | str | None = None, partition: str | None = None) -> pd.DataFrame:
        where, params = ["TRUE"], []
        if timeframe is not None:
            where.append("timeframe = ?")
            params.append(Timeframe(timeframe).value)
        if partition is not None:
            where.append("partition = ?")
            params.append(partition)
        with self.connect(read_only=True) as con:
            return query_df(
                con,
                f"SELECT * FROM ohlc_rejects WHERE {' AND '.join(where)} ORDER BY timeframe, partition, symbol, timestamp",
                params,
            )

    def append_gaps(self, gaps: pd.DataFrame) -> int:
        """Append gap-healing results to ``data_gaps`` (one transaction)."""
        if gaps.empty:
            return 0
        with self.transaction() as con:
            insert_frame(con, "data_gaps", to_utc_ns(gaps.copy(), list(gaps.columns)), create=False)
        return len(gaps)
