"""Pandera schema of the report tables: ``daily_performance`` (one UTC day × strategy, :mod:`.reports.daily`).
Never imports dagster."""

from __future__ import annotations

from typing import Annotated

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from .common import NS_PER_DAY
from .config import Strategy

UtcTime = Series[Annotated[pd.DatetimeTZDtype, "ns", "UTC"]]


class DailyPerformanceSchema(pa.DataFrameModel):
    """``daily_performance``: per UTC day and strategy, the setups seen and taken and the trades closed that day."""

    day: UtcTime = pa.Field(description="The UTC day (00:00).")
    strategy: Series[str] = pa.Field(isin=[s.value for s in Strategy], description="DCA, SWING or CHANNEL.")
    setups_detected: Series["int64"] = pa.Field(ge=0, description="Scan rows of the day whose setup fired.")
    setups_taken: Series["int64"] = pa.Field(ge=0, description="Scan rows of the day decided TAKE.")
    trades: Series["int64"] = pa.Field(ge=0, description="Trade groups closed that day (exit time in the day).")
    wins: Series["int64"] = pa.Field(ge=0, description="Closed with net P&L > 0.")
    losses: Series["int64"] = pa.Field(ge=0, description="Closed with net P&L ≤ 0.")
    net_pnl_usd: Series[float] = pa.Field(description="Σ net P&L of the day's closed trades (USD).")
    net_pnl_pct: Series[float] = pa.Field(nullable=True, ge=-1,
                                          description="Σ net P&L / Σ filled size (fraction, I-2); NaN without trades.")
    fees_usd: Series[float] = pa.Field(ge=0, description="Entry fees + exit fees of the day's closed trades (USD).")
    champion_composite: Series[float] = pa.Field(nullable=True, ge=0, le=1,
                                                 description="Test composite of the champion in force at the end of "
                                                             "the day (SPEC §11.2); NaN without a champion.")
    config_version: Series["int64"] = pa.Field(ge=0, description="Config version of the day's last engine tick.")

    class Config:
        strict = True
        coerce = False
        unique = ["day", "strategy"]

    @pa.dataframe_check(error="day is not 00:00 UTC")
    def day_is_midnight(cls, df: pd.DataFrame) -> pd.Series:
        return pd.Series(pd.DatetimeIndex(df["day"]).asi8 % NS_PER_DAY == 0, index=df.index)

    @pa.dataframe_check(error="wins + losses exceed trades")
    def outcomes_within_trades(cls, df: pd.DataFrame) -> pd.Series:
        return df["wins"] + df["losses"] <= df["trades"]

    @pa.dataframe_check(error="more setups taken than detected")
    def taken_within_detected(cls, df: pd.DataFrame) -> pd.Series:
        return df["setups_taken"] <= df["setups_detected"]

    @pa.dataframe_check(error="net_pnl_pct is NaN exactly when there is no trade")
    def pct_iff_trades(cls, df: pd.DataFrame) -> pd.Series:
        return pd.Series(np.isnan(df["net_pnl_pct"].to_numpy(dtype="float64")) == (df["trades"] == 0).to_numpy(),
                         index=df.index)
