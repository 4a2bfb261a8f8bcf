"""The feature registry and the causal features of SPEC §2 (pure numpy/pandas; never imports dagster).

Three frames, each computed for a time range from bars that include a warm-up span before it:

- ML indicators (§2.2, :func:`compute_ml_features`): the 29 features plus their ``*_rel`` model inputs on
  ``features.ml.timeframe`` (15m) bars aggregated from base bars (§13.1). One row per closed 15m bar.
- Scan features (§2.1, :func:`compute_scan_features`): on base bars at the decision bar of every cycle point.
- Daily BTC context (§2.3, :func:`compute_daily_context`): from completed UTC days before the row's day.

Conventions (SPEC §0.2)
- Every time is UTC; a bar is named by its open time t and covers [t, t + length). Fractions, not percent
  (RSI and stochastic are 0–100).
- Every window is a time span from the config, converted to bars of the timeframe it applies to. A window of span
  W *including* bar c holds the bars with open time in (c − W, c]; *excluding* c: [c − W, c). A window is valid
  with ≥ ``engine.min_window_coverage`` of its expected bars; otherwise its features are null (NaN). Returns and
  Δ-based features also need the bar just before the window. No forward or zero fill; a ratio with a zero
  denominator is null unless SPEC states otherwise.
- **Kind R** (rolling) values are computed by a fixed reduction tree over the window's own bars, so a value depends
  only on the bars inside its window and never on where the input starts.
- **Kind X** (recursive: EMA, Wilder) values are seeded with the SMA of the first n inputs and started at 00:00 UTC
  of the day that contains T − ``features.ml.min_history_min``, where T is the cycle point at which the row is
  used: T = the cycle point itself for scan rows, T = t + 15 min (the bar's close) for the ML row of bar t. The
  recursion runs over the bars present from that start (minutes without trades have no bar and are skipped).

Together these make the features of a UTC day computed from its warm-up window (``compute_*_day``) equal, bit for
bit, the features computed on the continuous series.

Modules: :mod:`.registry` (the registry and the feature-set version), :mod:`.grid` (bar grids, aggregation,
coverage, rolling reductions), :mod:`.kernels` (EMA/RSI/MACD/SMA/Bollinger and the Kind-X lanes), :mod:`.parallel`
(row-parallel execution), :mod:`.ml`, :mod:`.scan`, :mod:`.daily` (the three frames). This package re-exports
their public API.
"""

from __future__ import annotations

from ..common import NS_PER_DAY, NS_PER_MIN, cycle_points
from .daily import (
    DAILY_COLUMNS,
    DailyParams,
    compute_daily_context,
    compute_daily_context_day,
    daily_warmup,
    static_context,
)
from .grid import OHLCV, BarGrid, Op, bar_grid, rolling
from .kernels import bollinger, ema, kind_x_start, macd, sma, wilder_rsi
from .ml import ML_COLUMNS, MlParams, compute_ml_features, compute_ml_features_day, ml_warmup
from .registry import (
    DAILY_FEATURE_SPECS,
    DAILY_FEATURES,
    FEATURE_REGISTRY,
    MARKET_FEATURE_SPECS,
    ML_FEATURE_SPECS,
    ML_FEATURES,
    ML_MODEL_INPUTS,
    ML_REL_FEATURES,
    ML_REL_SPECS,
    ML_USD_FEATURES,
    SCAN_FEATURE_SPECS,
    SCAN_FEATURES,
    STATIC_FEATURE_SPECS,
    BtcTrend,
    FeatureGroup,
    FeatureSpec,
    Kind,
    Unit,
    config_value,
    feature_set_version,
    feature_spec,
    timeframe_of,
    window_bars,
)
from .scan import (
    SCAN_COLUMNS,
    ScanParams,
    compute_scan_features,
    compute_scan_features_day,
    decision_slots,
    scan_warmup,
)

__all__ = [
    "DAILY_COLUMNS", "DAILY_FEATURES", "DAILY_FEATURE_SPECS", "FEATURE_REGISTRY", "MARKET_FEATURE_SPECS",
    "ML_COLUMNS", "ML_FEATURES", "ML_FEATURE_SPECS", "ML_MODEL_INPUTS", "ML_REL_FEATURES", "ML_REL_SPECS",
    "ML_USD_FEATURES", "NS_PER_DAY", "NS_PER_MIN", "OHLCV", "SCAN_COLUMNS", "SCAN_FEATURES", "SCAN_FEATURE_SPECS",
    "STATIC_FEATURE_SPECS", "BarGrid", "BtcTrend", "DailyParams", "FeatureGroup", "FeatureSpec", "Kind", "MlParams",
    "Op", "ScanParams", "Unit", "bar_grid", "bollinger", "compute_daily_context", "compute_daily_context_day",
    "compute_ml_features", "compute_ml_features_day", "compute_scan_features", "compute_scan_features_day",
    "config_value", "cycle_points", "daily_warmup", "decision_slots", "ema", "feature_set_version", "feature_spec",
    "kind_x_start", "macd", "ml_warmup", "rolling", "scan_warmup", "sma", "static_context", "timeframe_of",
    "wilder_rsi", "window_bars",
]
