"""What every asset module shares: the warehouse pool, partition windows, lookback dependencies, Pandera types and
Markdown tables for metadata."""

from __future__ import annotations

from functools import lru_cache

import dagster as dg
import pandas as pd
from dagster_pandera import pandera_schema_to_dagster_type

from ..core.config import Timeframe

# Every warehouse step holds this one-slot pool (dagster.yaml): DuckDB allows one writing process per file.
WAREHOUSE_POOL = "duckdb_warehouse"
OWNERS = ["team:trading"]


def ohlc_asset_name(tf: Timeframe) -> str:
    return f"ohlc_{tf.value}"


@lru_cache(maxsize=None)
def dagster_type(schema):
    """The Dagster type of a Pandera model (built once per model)."""
    return pandera_schema_to_dagster_type(schema)


def partition_window(context) -> tuple[pd.Timestamp, pd.Timestamp]:
    """[start, end) of the run's partition (or partition range), UTC."""
    tw = context.partition_time_window
    return pd.Timestamp(tw.start).tz_convert("UTC"), pd.Timestamp(tw.end).tz_convert("UTC")


def lookback_days(span: pd.Timedelta) -> int:
    """Whole days a lookback of ``span`` reaches back."""
    return -(-span // pd.Timedelta(days=1))


def lookback_dep(key: dg.AssetKey, span: pd.Timedelta, end_offset: int = 0) -> dg.AssetDep:
    """A dependency on the daily partitions of ``key`` that a warm-up of ``span`` reads."""
    return dg.AssetDep(key, partition_mapping=dg.TimeWindowPartitionMapping(
        start_offset=-lookback_days(span), end_offset=end_offset, allow_nonexistent_upstream_partitions=True))


def previous_day_dep(key: dg.AssetKey) -> dg.AssetDep:
    """A dependency on the previous daily partition of ``key`` (a state carried from day to day)."""
    return dg.AssetDep(key, partition_mapping=dg.TimeWindowPartitionMapping(
        start_offset=-1, end_offset=-1, allow_nonexistent_upstream_partitions=True))


def markdown_table(df: pd.DataFrame, limit: int = 20) -> str:
    """``df`` as a Markdown table for asset metadata (the first ``limit`` rows)."""
    if df.empty:
        return "(none)"
    shown = df.head(limit)
    lines = ["| " + " | ".join(map(str, shown.columns)) + " |", "|" + "---|" * len(shown.columns)]
    for row in shown.itertuples(index=False):
        lines.append("| " + " | ".join(str(v) for v in row) + " |")
    if len(df) > limit:
        lines.append(f"| … {len(df) - limit} more | " + " | " * (len(shown.columns) - 1))
    return "\n".join(lines)


def json_counts(series: pd.Series) -> dg.MetadataValue:
    """Value counts as JSON metadata."""
    return dg.MetadataValue.json({str(k): int(v) for k, v in series.value_counts().items()} if len(series) else {})


def table_schema(model) -> dg.TableSchema:
    """The columns of a Pandera model (with their descriptions) as Dagster column-schema metadata."""
    schema = model.to_schema()
    return dg.TableSchema(columns=[
        dg.TableColumn(name=name, type=str(col.dtype), description=col.description or "")
        for name, col in schema.columns.items()])
