"""Pandera models at the stage boundaries, a description on every field, and their Dagster types."""

from __future__ import annotations

from functools import lru_cache

import pandas as pd
import pandera.pandas as pa
from dagster_pandera import pandera_schema_to_dagster_type
from pandera.typing import Series

from .core.config import Timeframe


class OhlcBars(pa.DataFrameModel):
    """Closed candles as stored in ``ohlc_<tf>``: one row per (symbol, bar open time), UTC."""

    symbol: Series[str] = pa.Field(description="Universe symbol (e.g. BTC, or a pair like ETH-BTC for imports).")
    timestamp: Series[pd.DatetimeTZDtype] = pa.Field(
        dtype_kwargs={"unit": "ns", "tz": "UTC"},
        description="Bar open time, tz-aware UTC; the bar covers [timestamp, timestamp + length).",
    )
    open: Series[float] = pa.Field(gt=0, description="First trade price of the bar (quote currency).")
    high: Series[float] = pa.Field(gt=0, description="Highest trade price; ≥ max(open, close).")
    low: Series[float] = pa.Field(gt=0, description="Lowest trade price; ≤ min(open, close).")
    close: Series[float] = pa.Field(gt=0, description="Last trade price of the bar (quote currency).")
    volume: Series[float] = pa.Field(ge=0, description="Traded base-currency volume; ≥ 0.")
    suspect: Series[bool] = pa.Field(
        description="True when |close / previous close − 1| exceeds data.health.extreme_move (kept, flagged)."
    )
    ingested_at: Series[pd.DatetimeTZDtype] = pa.Field(
        dtype_kwargs={"unit": "ns", "tz": "UTC"},
        description="When this version of the bar was stored (UTC); renewed only when a re-fetch changes it.",
    )

    class Config:
        strict = True
        coerce = False
        unique = ["symbol", "timestamp"]

    @pa.dataframe_check(description="high ≥ max(open, close)")
    def high_covers_body(cls, df: pd.DataFrame) -> Series[bool]:
        return df["high"] >= df[["open", "close"]].max(axis=1)

    @pa.dataframe_check(description="low ≤ min(open, close)")
    def low_covers_body(cls, df: pd.DataFrame) -> Series[bool]:
        return df["low"] <= df[["open", "close"]].min(axis=1)


@lru_cache(maxsize=None)
def ohlc_model(timeframe: Timeframe | str) -> type[OhlcBars]:
    """The OHLC model for one timeframe: adds the open-time alignment check."""
    tf = Timeframe(timeframe)
    step_ns = tf.minutes * 60 * 1_000_000_000

    def aligned(cls, df: pd.DataFrame) -> Series[bool]:
        return (df["timestamp"].astype("int64") % step_ns) == 0

    aligned.__name__ = f"aligned_to_{tf.name}"
    namespace = {
        "__doc__": f"Closed {tf.value} candles as stored in ``ohlc_{tf.value}``.",
        f"aligned_to_{tf.name}": pa.dataframe_check(description=f"timestamp aligned to the {tf.value} grid")(aligned),
    }
    return type(f"OhlcBars{tf.name}", (OhlcBars,), namespace)


@lru_cache(maxsize=None)
def ohlc_dagster_type(timeframe: Timeframe | str):
    return pandera_schema_to_dagster_type(ohlc_model(timeframe))
