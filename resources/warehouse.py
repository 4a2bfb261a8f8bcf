"""The DuckDB warehouse as a resource, and the IO manager that stores OHLC partitions in it.

The stock dagster-duckdb IO manager deletes a partition's rows before inserting them, outside one transaction,
and inserts by column position; this one replaces a slice atomically (old rows survive any failure) and by
column name, and keeps ``ingested_at`` of bars that did not change.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd

from cryptotracker_assets.core.config import Timeframe
from cryptotracker_assets.storage.warehouse import Warehouse

SLICE_SYMBOLS = "slice_symbols"


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB file every stage reads and writes (CRYPTOTRACKER_WAREHOUSE, default under DAGSTER_HOME)."""

    path: str
    lock_timeout_s: float = 120.0

    def get(self) -> Warehouse:
        return Warehouse(self.path, lock_timeout_s=self.lock_timeout_s)


def _time_window(context) -> tuple[pd.Timestamp, pd.Timestamp]:
    tw = context.asset_partitions_time_window
    return pd.Timestamp(tw.start).tz_convert("UTC"), pd.Timestamp(tw.end).tz_convert("UTC")


class BarsIOManager(dg.ConfigurableIOManager):
    """Stores ``ohlc_<tf>`` assets: a run's output replaces exactly its slice — the partition's time window ×
    the symbols it fetched (output metadata ``slice_symbols``) — in one transaction."""

    path: str
    lock_timeout_s: float = 120.0

    def _warehouse(self) -> Warehouse:
        return Warehouse(self.path, lock_timeout_s=self.lock_timeout_s)

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
        raw = (context.output_metadata or {}).get(SLICE_SYMBOLS)
        symbols = getattr(raw, "value", raw)
        if symbols is None:
            raise dg.DagsterInvariantViolationError(
                f"{context.asset_key.to_user_string()}: output metadata `{SLICE_SYMBOLS}` is required"
            )
        result = self._warehouse().replace_bars(tf, obj, start, end, list(symbols))
        context.add_output_metadata(
            {
                "stored_rows": result.inserted,
                "replaced_rows": result.deleted,
                "unchanged_rows": result.unchanged,
                "table": result.table,
            }
        )

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        upstream = context.upstream_output
        tf = self._timeframe(upstream) if upstream is not None else self._timeframe(context)
        if context.has_asset_partitions:
            start, end = _time_window(context)
            return self._warehouse().read_bars(tf, start, end)
        return self._warehouse().read_bars(tf)


class TableIOManager(dg.ConfigurableIOManager):
    """Stores daily-partitioned derived frames (features, regime, setups…): the output replaces the rows of the
    asset's ``table`` whose ``time_column`` lies in the partition window, in one transaction, by column name.
    Inputs read the same slice back (an empty frame when nothing is stored there)."""

    path: str
    lock_timeout_s: float = 120.0

    def _warehouse(self) -> Warehouse:
        return Warehouse(self.path, lock_timeout_s=self.lock_timeout_s)

    @staticmethod
    def _target(context) -> tuple[str, str]:
        meta = context.definition_metadata or {}
        table, column = meta.get("table"), meta.get("time_column")
        if table is None or column is None:
            raise dg.DagsterInvariantViolationError(
                f"{context.asset_key.to_user_string()}: `table` and `time_column` metadata are required"
            )
        return getattr(table, "value", table), getattr(column, "value", column)

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame) -> None:
        table, column = self._target(context)
        start, end = _time_window(context)
        result = self._warehouse().replace_slice(table, obj, column, start, end)
        context.add_output_metadata({"stored_rows": result.inserted, "replaced_rows": result.deleted, "table": table})

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        upstream = context.upstream_output
        table, column = self._target(upstream if upstream is not None else context)
        start, end = _time_window(context) if context.has_asset_partitions else (None, None)
        df = self._warehouse().read_slice(table, column, start, end)
        return df if df is not None else pd.DataFrame()
