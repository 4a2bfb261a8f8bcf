"""The DuckDB warehouse as a resource, and the IO managers that store assets in it.

The stock dagster-duckdb IO manager deletes a partition's rows before inserting them, outside one transaction,
and inserts by column position; these replace a slice atomically (old rows survive any failure) and by column
name, and keep ``ingested_at`` of bars that did not change. Both take the warehouse resource, not a path.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd

from cryptotracker_assets.core.config import Timeframe
from cryptotracker_assets.storage.warehouse import Warehouse

SLICE_SYMBOLS = "slice_symbols"  # output metadata of an OHLC run: the symbols whose slice it replaces
REPLACE_FROM = "replace_from"  # output metadata of an incremental run: it replaces [replace_from, partition end)


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB file every stage reads and writes (CRYPTOTRACKER_WAREHOUSE, default under DAGSTER_HOME); a
    lock held by another process is waited for ``lock_timeout_s`` (``data.warehouse.lock_wait_s``)."""

    path: str
    lock_timeout_s: float = 60.0

    def get(self) -> Warehouse:
        return Warehouse(self.path, lock_timeout_s=self.lock_timeout_s)


def _time_window(context) -> tuple[pd.Timestamp, pd.Timestamp]:
    tw = context.asset_partitions_time_window
    return pd.Timestamp(tw.start).tz_convert("UTC"), pd.Timestamp(tw.end).tz_convert("UTC")


def _meta(context, key: str):
    raw = (context.output_metadata or {}).get(key)
    return getattr(raw, "value", raw)


class BarsIOManager(dg.ConfigurableIOManager):
    """Stores ``ohlc_<tf>`` assets: a run's output replaces exactly its slice — the partition's time window ×
    the symbols it fetched (output metadata ``slice_symbols``) — in one transaction."""

    warehouse: WarehouseResource

    @staticmethod
    def _timeframe(context) -> Timeframe:
        meta = context.definition_metadata or {}
        tf = meta.get("timeframe")
        if tf is None:
            raise dg.DagsterInvariantViolationError(f"{context.asset_key.to_user_string()}: no timeframe metadata")
        return Timeframe(getattr(tf, "value", tf))

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame) -> None:
        tf = self._timeframe(context)
        start, end = _time_window(context)
        symbols = _meta(context, SLICE_SYMBOLS)
        if symbols is None:
            raise dg.DagsterInvariantViolationError(
                f"{context.asset_key.to_user_string()}: output metadata `{SLICE_SYMBOLS}` is required"
            )
        result = self.warehouse.get().replace_bars(tf, obj, start, end, list(symbols))
        context.add_output_metadata({"stored_rows": result.inserted, "replaced_rows": result.deleted,
                                     "unchanged_rows": result.unchanged, "table": result.table})

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        upstream = context.upstream_output
        tf = self._timeframe(upstream) if upstream is not None else self._timeframe(context)
        if context.has_asset_partitions:
            start, end = _time_window(context)
            return self.warehouse.get().read_bars(tf, start, end)
        return self.warehouse.get().read_bars(tf)


class TableIOManager(dg.ConfigurableIOManager):
    """Stores derived frames in the asset's ``table``. Daily-partitioned: the output replaces the rows whose
    ``time_column`` lies in the partition window — from ``replace_from`` (output metadata) on for an incremental
    run — in one transaction, by column name. Unpartitioned: the output replaces the whole table. Inputs read the
    same slice back (an empty frame when nothing is stored there)."""

    warehouse: WarehouseResource

    @staticmethod
    def _target(context) -> tuple[str, str | None]:
        meta = context.definition_metadata or {}
        table, column = meta.get("table"), meta.get("time_column")
        if table is None:
            raise dg.DagsterInvariantViolationError(
                f"{context.asset_key.to_user_string()}: `table` metadata is required")
        return getattr(table, "value", table), getattr(column, "value", column)

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame) -> None:
        table, column = self._target(context)
        wh = self.warehouse.get()
        if not context.has_asset_partitions:
            n = wh.replace_table(table, obj)
            context.add_output_metadata({"stored_rows": n, "table": table})
            return
        start, end = _time_window(context)
        since = _meta(context, REPLACE_FROM)
        if since is not None:
            start = max(start, pd.Timestamp(since).tz_convert("UTC"))
        result = wh.replace_slice(table, obj, column, start, end)
        context.add_output_metadata({"stored_rows": result.inserted, "replaced_rows": result.deleted, "table": table})

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        upstream = context.upstream_output
        table, column = self._target(upstream if upstream is not None else context)
        wh = self.warehouse.get()
        if not context.has_asset_partitions:
            df = wh.read_table(table)
        else:
            start, end = _time_window(context)
            df = wh.read_slice(table, column, start, end)
        return df if df is not None else pd.DataFrame()
