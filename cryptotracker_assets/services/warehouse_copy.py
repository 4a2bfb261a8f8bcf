"""``cryptotracker warehouse migrate --to URL`` (issue 14; no Dagster): copy an existing warehouse (a DuckDB file)
into another (a PostgreSQL database), table by table, each verified by row count and checksum
(:mod:`..storage.transfer`). The destination must be empty of rows (a fresh database, or one holding only what its
own schema migrations created); the source is only read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..storage.transfer import TableCopy, copy_table
from ..storage.warehouse import SCHEMA_VERSION, Warehouse, WarehouseError


@dataclass
class CopyReport:
    source: str
    destination: str
    tables: list[TableCopy] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tables)

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)


def copy_warehouse(src: Warehouse, dst: Warehouse, progress: Callable[[str], None] = lambda _m: None) -> CopyReport:
    """Copy every table of ``src`` into ``dst`` and verify each; raises when ``dst`` already holds rows."""
    if not src.exists():
        raise WarehouseError(f"no warehouse at {src.path}")
    tables = src.base_tables()  # opening the source brings it to schema version SCHEMA_VERSION first
    held = {t: n for t in dst.base_tables() if (n := dst.row_count(t))}
    if held:
        raise WarehouseError(f"{dst.path} already holds rows ({', '.join(f'{t}: {n}' for t, n in held.items())}); "
                             f"migrate into an empty database")
    report = CopyReport(src.path, dst.path)
    for i, table in enumerate(tables, start=1):
        progress(f"[{i}/{len(tables)}] {table}")
        report.tables.append(copy_table(src, dst, table))
    return report


__all__ = ["SCHEMA_VERSION", "CopyReport", "copy_warehouse"]
