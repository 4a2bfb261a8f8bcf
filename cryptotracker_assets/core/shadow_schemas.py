"""Pandera schemas of the shadow tables (SPEC §10.2): the decision rows (``shadow_outcomes`` as stored), the exit rows
(``shadow_exits``) and the derived outcome rows users read. Never imports dagster."""

from __future__ import annotations

import re
from typing import Annotated

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from .config import Strategy, Tier
from .exits import ExitReason
from .regime import Regime
from .shadows import SKIP_REASONS
from .shadows.book import DECISION_COLUMNS, EXIT_COLUMNS

UtcTime = Series[Annotated[pd.DatetimeTZDtype, "ns", "UTC"]]
VARIATION_RE = re.compile(r"^(CHAMPION|BEAR_MARKET|BULL_MARKET|ML_TRUST|QUICK_EXITS|VOLATILITY_SIZED|"
                          r"DCA_DROPS_\d+(\.\d+)?(e-?\d+)?|CONFIDENCE_TEST_\d+(\.\d+)?(e-?\d+)?)$")
_STRATEGIES = [s.value for s in Strategy]
_TIERS = [t.value for t in Tier]
_REASONS = [r.value for r in ExitReason]
_DECISIONS = ["TAKE", "SKIP", "NEAR_MISS"]


def _ids_match(df: pd.DataFrame) -> pd.Series:
    return pd.Series(df["shadow_id"].to_numpy(dtype=object) == (df["scan_id"] + "_" + df["variation"]).to_numpy(
        dtype=object), index=df.index)


class ShadowDecisionSchema(pa.DataFrameModel):
    """``shadow_outcomes`` as stored: one row per eligible scan row × applicable variation (SPEC §10.2), written in
    the engine tick's commit with the scan rows."""

    shadow_id: Series[str] = pa.Field(unique=True, description="{scan_id}_{VARIATION} (SPEC §0.3)")
    scan_id: Series[str] = pa.Field(description="the scan row decided on")
    timestamp: UtcTime = pa.Field(description="cycle point T of the scan row (UTC)")
    symbol: Series[str]
    tier: Series[str] = pa.Field(isin=_TIERS)
    strategy: Series[str] = pa.Field(isin=_STRATEGIES)
    variation: Series[str] = pa.Field(str_matches=VARIATION_RE.pattern, description="SPEC §10.1 variation")
    would_take: Series[bool] = pa.Field(description="setup fires, confidence ≥ threshold, not PANIC, not disabled")
    opened: Series[bool] = pa.Field(description="an entry order was created (a take not skipped as shadow_open)")
    skip_reason: Series[str] = pa.Field(nullable=True, isin=list(SKIP_REASONS), description="why it did not open")
    production_decision: Series[str] = pa.Field(isin=_DECISIONS, description="the scan row's own decision")
    production_take: Series[bool] = pa.Field(description="the scan row became a real entry order (TAKE)")
    confidence: Series[float] = pa.Field(nullable=True, ge=0, le=1)
    threshold: Series[float] = pa.Field(ge=0, le=1, description="the variation's confidence threshold in use")
    setup_value: Series[float] = pa.Field(nullable=True, description="drop / breakout / channel position")
    setup_threshold: Series[float] = pa.Field(description="the variation's setup threshold")
    regime: Series[str] = pa.Field(isin=[r.value for r in Regime])
    size_usd: Series[float] = pa.Field(nullable=True, gt=0, description="G × the variation's size multiplier")
    take_profit: Series[float] = pa.Field(nullable=True, gt=0, description="frozen effective tp (fraction)")
    stop_loss: Series[float] = pa.Field(nullable=True, gt=0, description="frozen stop after widening (fraction)")
    trail: Series[float] = pa.Field(nullable=True, ge=0)
    trail_activation: Series[float] = pa.Field(nullable=True, ge=0)
    max_hold_h: Series[float] = pa.Field(nullable=True, gt=0)
    grid_levels: Series[pd.Int64Dtype] = pa.Field(nullable=True, ge=1)
    grid_spacing: Series[float] = pa.Field(nullable=True, ge=0)
    config_version: Series["int64"] = pa.Field(ge=0)

    class Config:
        strict = True
        coerce = False

    @pa.dataframe_check(error="shadow_id is not {scan_id}_{VARIATION}")
    def id_is_scan_and_variation(cls, df: pd.DataFrame) -> pd.Series:
        return _ids_match(df)

    @pa.dataframe_check(error="an opened take must be a would_take row with its frozen parameters")
    def opened_has_parameters(cls, df: pd.DataFrame) -> pd.Series:
        o = df["opened"].to_numpy(dtype=bool)
        full = df[["size_usd", "take_profit", "stop_loss", "max_hold_h"]].notna().all(axis=1).to_numpy()
        return pd.Series(~o | (df["would_take"].to_numpy(dtype=bool) & full), index=df.index)

    @pa.dataframe_check(error="skip_reason is set exactly when the row did not open")
    def skip_reason_iff_not_opened(cls, df: pd.DataFrame) -> pd.Series:
        return pd.Series(df["skip_reason"].isna().to_numpy() == df["opened"].to_numpy(dtype=bool), index=df.index)

    @pa.dataframe_check(error="a production TAKE's CHAMPION always opens")
    def champion_of_a_take_opens(cls, df: pd.DataFrame) -> pd.Series:
        c = (df["variation"] == "CHAMPION").to_numpy() & df["production_take"].to_numpy(dtype=bool)
        return pd.Series(~c | df["opened"].to_numpy(dtype=bool), index=df.index)


class ShadowExitSchema(pa.DataFrameModel):
    """``shadow_exits``: one row per shadow take when it closed (or its entry order expired), written by the tick
    that processed the cycle point ``closed_at``; a final outcome, never changed."""

    shadow_id: Series[str] = pa.Field(unique=True)
    scan_id: Series[str]
    variation: Series[str] = pa.Field(str_matches=VARIATION_RE.pattern)
    strategy: Series[str] = pa.Field(isin=_STRATEGIES)
    symbol: Series[str]
    tier: Series[str] = pa.Field(isin=_TIERS)
    decided_at: UtcTime
    closed_at: UtcTime = pa.Field(description="the cycle point whose processing closed it")
    expired: Series[bool] = pa.Field(description="the entry order expired without an entry bar (no outcome)")
    entry_time: UtcTime = pa.Field(nullable=True)
    exit_time: UtcTime = pa.Field(nullable=True)
    exit_reason: Series[str] = pa.Field(nullable=True, isin=_REASONS)
    outcome: Series[str] = pa.Field(nullable=True, isin=["WIN", "LOSS", "TIMEOUT"])
    avg_entry: Series[float] = pa.Field(nullable=True, gt=0)
    exit_fill: Series[float] = pa.Field(nullable=True, gt=0)
    size_usd: Series[float] = pa.Field(nullable=True, gt=0, description="Σ g over filled levels")
    pnl_usd: Series[float] = pa.Field(nullable=True)
    pnl_pct: Series[float] = pa.Field(nullable=True)
    hold_h: Series[float] = pa.Field(nullable=True, ge=0)
    grid_fills: Series[pd.Int64Dtype] = pa.Field(nullable=True, ge=1)
    no_data: Series[pd.BooleanDtype] = pa.Field(nullable=True)
    fees_usd: Series[float] = pa.Field(nullable=True, ge=0)
    high_water: Series[float] = pa.Field(nullable=True, gt=0)

    class Config:
        strict = True
        coerce = False

    @pa.dataframe_check(error="the outcome is TIMEOUT for time_exit, else WIN iff net P&L > 0")
    def outcome_follows_exit(cls, df: pd.DataFrame) -> pd.Series:
        closed = ~df["expired"].to_numpy(dtype=bool)
        want = np.where(df["exit_reason"].to_numpy(dtype=object) == ExitReason.TIME_EXIT.value, "TIMEOUT",
                        np.where(df["pnl_usd"].to_numpy(dtype="float64") > 0, "WIN", "LOSS"))
        return pd.Series(~closed | (df["outcome"].to_numpy(dtype=object) == want), index=df.index)

    @pa.dataframe_check(error="the exit is at or after the entry, which is at or after the decision")
    def times_ordered(cls, df: pd.DataFrame) -> pd.Series:
        closed = ~df["expired"].to_numpy(dtype=bool)
        ok = (df["entry_time"] >= df["decided_at"]) & (df["exit_time"] >= df["entry_time"]) & (
            df["exit_time"] <= df["closed_at"])
        return pd.Series(~closed | ok.fillna(False).to_numpy(dtype=bool), index=df.index)


class ShadowOutcomeSchema(pa.DataFrameModel):
    """The derived outcome rows of ``shadow_outcomes`` (decision ⋈ exit ⋈ real trade): what a user reads."""

    shadow_id: Series[str] = pa.Field(unique=True)
    variation: Series[str] = pa.Field(str_matches=VARIATION_RE.pattern)
    strategy: Series[str] = pa.Field(isin=_STRATEGIES)
    opened: Series[bool]
    expired: Series[pd.BooleanDtype] = pa.Field(nullable=True, description="the take's entry order expired")
    outcome: Series[str] = pa.Field(nullable=True, isin=["WIN", "LOSS", "TIMEOUT", "PENDING"],
                                    description="PENDING until the take's exit row exists; null for non-takes")
    pnl_usd: Series[float] = pa.Field(nullable=True)
    pnl_pct: Series[float] = pa.Field(nullable=True)
    matched_real_trade: Series[pd.BooleanDtype] = pa.Field(nullable=True)

    class Config:
        strict = "filter"
        coerce = False

    @pa.dataframe_check(error="an opened take has an outcome (PENDING while open) unless its order expired")
    def takes_have_outcomes(cls, df: pd.DataFrame) -> pd.Series:
        o = df["opened"].to_numpy(dtype=bool)
        exp = df["expired"].fillna(False).to_numpy(dtype=bool)
        return pd.Series(~o | exp | df["outcome"].notna().to_numpy(), index=df.index)


def validate_shadow_rows(decisions: pd.DataFrame, exits: pd.DataFrame) -> None:
    """Check a tick's shadow rows before the commit (raises naming the column and rows; nothing is written)."""
    if len(decisions):
        ShadowDecisionSchema.validate(decisions[list(DECISION_COLUMNS)], lazy=True)
    if len(exits):
        ShadowExitSchema.validate(exits[list(EXIT_COLUMNS)], lazy=True)




class ShadowPerformanceSchema(pa.DataFrameModel):
    """``shadow_performance`` (SPEC §10.3): one analysis per materialization at its time t (history kept), one row
    per window × variation × strategy (DCA, SWING, CHANNEL and ALL)."""

    analyzed_at: UtcTime = pa.Field(description="analysis time t: the engine's cursor (outcomes known up to it)")
    window_h: Series[float] = pa.Field(gt=0, description="W: entries in [t − max hold − W, t − max hold)")
    strategy: Series[str] = pa.Field(isin=[*_STRATEGIES, "ALL"])
    variation: Series[str] = pa.Field(str_matches=VARIATION_RE.pattern)
    trades: Series["int64"] = pa.Field(ge=0, description="completed takes (WIN / LOSS / TIMEOUT)")
    pending: Series["int64"] = pa.Field(ge=0)
    win_rate: Series[float] = pa.Field(nullable=True, ge=0, le=1)
    mean_pnl_pct: Series[float] = pa.Field(nullable=True)
    total_pnl_usd: Series[float] = pa.Field(nullable=True)
    size_weighted_return: Series[float] = pa.Field(nullable=True, description="Σ pnl_usd / Σ size_usd (I-2)")
    best_pnl_pct: Series[float] = pa.Field(nullable=True)
    worst_pnl_pct: Series[float] = pa.Field(nullable=True)
    sharpe: Series[float] = pa.Field(nullable=True, description="mean / std (ddof 1) of per-trade pnl_pct")
    max_drawdown: Series[float] = pa.Field(nullable=True, ge=0, le=1)
    mean_hold_h: Series[float] = pa.Field(nullable=True, ge=0)
    outperformance: Series[float] = pa.Field(nullable=True, ge=-1, le=1, description="win_rate − CHAMPION's")
    p_z: Series[float] = pa.Field(ge=0, le=1, description="two-proportion z-test vs CHAMPION (two-sided)")
    p_welch: Series[float] = pa.Field(ge=0, le=1, description="Welch t-test on pnl_pct vs CHAMPION")
    p_z_holm: Series[float] = pa.Field(ge=0, le=1, description="Holm-adjusted p_z within the window's family")
    tier: Series[str] = pa.Field(isin=["HIGH", "MEDIUM", "LOW", "INSUFFICIENT"])
    dsr: Series[float] = pa.Field(nullable=True, ge=0, le=1, description="Deflated Sharpe Ratio of the best "
                                                                         "variation (reported, not a gate)")

    class Config:
        strict = True
        coerce = False
        unique = ["analyzed_at", "window_h", "strategy", "variation"]

    @pa.dataframe_check(error="CHAMPION is the baseline: its tier is INSUFFICIENT")
    def champion_is_baseline(cls, df: pd.DataFrame) -> pd.Series:
        return pd.Series((df["variation"] != "CHAMPION").to_numpy() | (df["tier"] == "INSUFFICIENT").to_numpy(),
                         index=df.index)
