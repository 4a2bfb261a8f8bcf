"""Copying a warehouse into another (``cryptotracker warehouse migrate --to URL``; issue 14): every table of the
source is written to the destination in one transaction per table (the destination's fixed tables exist from its
own schema migrations; a derived table is created from the source rows' types), then verified: the same row count
and the same checksum on both sides. Never imports dagster.

The checksum is computed the same way on both sides from the rows read back: each row as text (floats with round-trip
precision, times as ISO UTC, NULL as ∅), sorted, SHA-256 — so a float that lost a bit, a row lost or doubled, or a
time shifted by a time zone all show."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pandas as pd

from .base import check_ident, insert_frame, query_df, scalar, table_exists, to_utc_ns

SKIP = ("schema_version",)  # the destination records its own migrations


def base_tables(con) -> list[str]:
    rows = con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
                       "AND table_type = 'BASE TABLE' ORDER BY table_name").fetchall()
    return [r[0] for r in rows if r[0] not in SKIP]


def cell(v) -> str:
    if v is None or (isinstance(v, float) and v != v) or v is pd.NaT:
        return "∅"
    if isinstance(v, pd.Timestamp):
        return v.tz_convert("UTC").isoformat() if v.tzinfo else v.isoformat()
    if isinstance(v, float):
        return repr(v)
    if hasattr(v, "item"):
        return cell(v.item())
    return str(v)


def checksum(df: pd.DataFrame) -> str:
    """SHA-256 of the sorted rows of ``df`` as text, columns in name order (module docstring)."""
    cols = sorted(df.columns)
    lines = sorted("\x1f".join(cell(v) for v in row) for row in df[cols].itertuples(index=False, name=None))
    h = hashlib.sha256()
    for line in lines:
        h.update(line.encode())
        h.update(b"\n")
    return h.hexdigest()


@dataclass(frozen=True)
class TableCopy:
    table: str
    rows: int
    copied_rows: int
    checksum: str
    copied_checksum: str

    @property
    def ok(self) -> bool:
        return self.rows == self.copied_rows and self.checksum == self.copied_checksum


class TransferMixin:
    """Whole-table reads and writes of :class:`~.warehouse.Warehouse` for copying one warehouse into another."""

    def base_tables(self) -> list[str]:
        with self.connect(read_only=True) as con:
            return base_tables(con)

    def whole_table(self, table: str) -> pd.DataFrame:
        with self.connect(read_only=True) as con:
            return query_df(con, f"SELECT * FROM {check_ident(table)}")

    def row_count(self, table: str) -> int:
        with self.connect(read_only=True) as con:
            return int(scalar(con, f"SELECT count(*) FROM {check_ident(table)}")) if table_exists(con, table) else 0

    def load_table(self, table: str, df: pd.DataFrame) -> int:
        """Write ``df`` as the whole content of ``table`` (created from ``df`` when missing), in one transaction."""
        check_ident(table)
        df = to_utc_ns(df.copy(), list(df.columns))
        with self.transaction() as con:
            if table_exists(con, table):
                con.execute(f"DELETE FROM {table}")
            if len(df) or not table_exists(con, table):
                insert_frame(con, table, df)
        return len(df)


def copy_table(src, dst, table: str) -> TableCopy:
    """Copy ``table`` from ``src`` into ``dst`` and verify it (row count, checksum)."""
    rows = src.whole_table(table)
    dst.load_table(table, rows)
    back = dst.whole_table(table)
    return TableCopy(table, len(rows), len(back), checksum(rows), checksum(back[list(rows.columns)]
                                                                           if set(rows.columns) <= set(back.columns)
                                                                           else back))


__all__ = ["TableCopy", "TransferMixin", "base_tables", "checksum", "copy_table"]
