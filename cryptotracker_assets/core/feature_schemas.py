"""Pandera schemas of the feature frames and of ``market_regime`` (SPEC §2, §8, §9.1); never imports dagster.

The models are built from the feature registry (one field per registered feature, its definition as the field
description), so a feature cannot be added without its schema. Broken invariants are errors: RSI, stochastic and
correlations out of range, negative volume ratios and widths, inf anywhere, unknown enum values. A null outside
the documented warm-up (``warmup`` false, symbol not stale) is a warning only: gaps and zero denominators also give
nulls by SPEC §0.2/§2.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from .config import CautionConfig, EuphoriaConfig, PanicConfig, Strategy
from .features import (
    DAILY_FEATURE_SPECS,
    ML_FEATURE_SPECS,
    ML_REL_SPECS,
    SCAN_FEATURE_SPECS,
    BtcTrend,
    FeatureSpec,
    Unit,
)
from .regime import STRUCTURE_COLUMNS, BestStrategy, Regime, StructureReason
from .setups import WINDOW_COLUMNS

UtcTime = Series[Annotated[pd.DatetimeTZDtype, "ns", "UTC"]]

# Bounds beyond those implied by the unit (0–100 scores, −1…1 correlations, 0/1 flags).
_BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "volume_ratio_15h": (0.0, None), "volume_sma_ratio": (0.0, None), "bb_width": (0.0, None),
    "dist_support_5h": (0.0, None), "dist_resistance_5h": (None, 0.0), "volatility_15h": (0.0, None),
    "volatility_60h": (0.0, None), "sma_20": (0.0, None), "sma_50": (0.0, None), "bb_mid": (0.0, None),
    "ema_12": (0.0, None), "ema_26": (0.0, None), "sma_20_rel": (0.0, None), "sma_50_rel": (0.0, None),
    "bb_mid_rel": (0.0, None), "ema_12_rel": (0.0, None), "ema_26_rel": (0.0, None),
    "drop": (None, 0.0), "volume_surge": (0.0, None), "channel_position": (0.0, 1.0), "channel_width": (0.0, None),
    "volume_ratio": (0.0, None), "dist_support": (0.0, None), "vol_24h": (0.0, None),
    "btc_vol_7d": (0.0, None), "btc_vol_30d": (0.0, None), "btc_range_7d": (0.0, None),
}
_UNIT_BOUNDS: dict[Unit, tuple[float, float]] = {Unit.SCORE: (0.0, 100.0), Unit.CORRELATION: (-1.0, 1.0)}


def feature_field(spec: FeatureSpec) -> Any:
    """The Pandera field of a registered feature: its bounds and its definition as the description."""
    lo, hi = _BOUNDS.get(spec.name, _UNIT_BOUNDS.get(spec.unit, (None, None)))
    kwargs: dict[str, Any] = {}
    if lo is not None:
        kwargs["ge"] = lo
    if hi is not None:
        kwargs["le"] = hi
    return pa.Field(nullable=True, description=f"{spec.definition} ({spec.unit.value}; {spec.kind.value})", **kwargs)


def _model(name: str, doc: str, keys: dict[str, tuple[Any, Any]], specs: tuple[FeatureSpec, ...],
           extra: dict[str, tuple[Any, Any]] | None = None, stale: bool = False) -> type[pa.DataFrameModel]:
    annotations: dict[str, Any] = {}
    attrs: dict[str, Any] = {"__doc__": doc}
    for col, (typ, fld) in keys.items():
        annotations[col] = typ
        attrs[col] = fld
    features = [s.name for s in specs]
    for s in specs:
        annotations[s.name] = Series[float]
        attrs[s.name] = feature_field(s)
    for col, (typ, fld) in (extra or {}).items():
        annotations[col] = typ
        attrs[col] = fld
    attrs["__annotations__"] = annotations

    class Config:
        strict = True
        ordered = False

    attrs["Config"] = Config

    def no_inf(cls, df: pd.DataFrame) -> pd.Series:
        values = df[features].to_numpy(dtype="float64")
        return pd.Series(~np.isinf(values).any(axis=1), index=df.index)

    def nan_only_in_warmup(cls, df: pd.DataFrame) -> pd.Series:
        outside = ~df["warmup"].to_numpy()
        if stale:
            outside &= ~df["stale"].to_numpy()
        has_nan = df[features].isna().to_numpy().any(axis=1)
        return pd.Series(~(outside & has_nan), index=df.index)

    attrs["no_inf"] = pa.dataframe_check(error="features must be finite or null, never inf")(no_inf)
    attrs["nan_only_in_warmup"] = pa.dataframe_check(
        raise_warning=True, error="null feature outside the documented warm-up (gap or zero denominator)")(
        nan_only_in_warmup)
    return type(name, (pa.DataFrameModel,), attrs)


_SYMBOL = (Series[str], pa.Field(description="symbol as in the universe (BASE or BASE-QUOTE)"))
_WARMUP = (Series[bool], pa.Field(description="the symbol's history since the Kind-X start is shorter than the "
                                              "windows need: nulls are expected"))
_WATERMARK = (UtcTime, pa.Field(nullable=True, description="W(T): the newest ingested_at of the base bars the row was "
                                                           "computed from (SPEC §0.5); null = no bar"))
_CONFIG_VERSION = (Series[np.int64], pa.Field(ge=0, description="effective config version (SPEC §0.3) of the run"))
_WINDOW_DOCS = {
    "close": (True, "close of the decision bar (quote currency); null when stale"),
    "volume_filter_ratio": (True, "DCA volume filter: mean volume of the DCA window / mean volume of the baseline "
                                  "window, both incl. c (ratio); null if a window is invalid or the baseline mean is 0"),
    "dca_ok": (False, "the DCA window (incl. c) has engine.min_window_coverage of its bars"),
    "swing_ok": (False, "the SWING reference window (excl. c) has its coverage"),
    "channel_ok": (False, "the CHANNEL window (incl. c) has its coverage"),
    "baseline_ok": (False, "the DCA volume baseline window (incl. c) has its coverage"),
    "dca_suspect": (False, "a suspect bar (SPEC §13.2) in the DCA window"),
    "swing_suspect": (False, "a suspect bar as c or in the SWING reference window"),
    "channel_suspect": (False, "a suspect bar in the CHANNEL window"),
    "baseline_suspect": (False, "a suspect bar in the DCA volume baseline window"),
}


def _window_fields() -> dict[str, tuple[Any, Any]]:
    out: dict[str, tuple[Any, Any]] = {}
    for name, dtype in WINDOW_COLUMNS.items():
        nullable, doc = _WINDOW_DOCS[name]
        bounds = {"gt": 0.0} if name == "close" else {"ge": 0.0} if name == "volume_filter_ratio" else {}
        out[name] = (Series[float] if dtype == "float64" else Series[bool],
                     pa.Field(nullable=nullable, description=doc, **bounds))
    return out


MlFeatureSchema = _model(
    "MlFeatureSchema",
    "ML indicators (SPEC §2.2) per symbol and closed features.ml.timeframe bar.",
    {
        "symbol": _SYMBOL,
        "timestamp": (UtcTime, pa.Field(description="bar open time (UTC)")),
        "available_at": (UtcTime, pa.Field(description="cycle point T from which the row may be used: the bar's close")),
        "warmup": _WARMUP,
    },
    ML_FEATURE_SPECS + ML_REL_SPECS,
)

_SCAN_KEYS = {
    "symbol": _SYMBOL,
    "timestamp": (UtcTime, pa.Field(description="cycle point T (UTC); only bars opening before T are used")),
    "bar_timestamp": (UtcTime, pa.Field(nullable=True, description="decision bar open time; null when stale")),
    "stale": (Series[bool], pa.Field(description="no bar within engine.max_bar_lag_min before T")),
    "warmup": _WARMUP,
}
ScanFeatureSchema = _model("ScanFeatureSchema",
                           "Scan features (SPEC §2.1) per symbol and cycle point, at the decision bar.",
                           _SCAN_KEYS, SCAN_FEATURE_SPECS, stale=True)
ScanFeatureTableSchema = _model(
    "ScanFeatureTableSchema",
    "features_scan: the scan features (SPEC §2.1) and setup-window inputs per active symbol and cycle point, at "
    "the decision bar, each row with its bar watermark and config version.",
    _SCAN_KEYS, SCAN_FEATURE_SPECS,
    extra={**_window_fields(), "bars_watermark": _WATERMARK, "config_version": _CONFIG_VERSION}, stale=True)

DailyContextSchema = _model(
    "DailyContextSchema",
    "Daily BTC context (SPEC §2.3) per symbol and UTC day, from completed days before it.",
    {
        "symbol": _SYMBOL,
        "timestamp": (UtcTime, pa.Field(description="the UTC day D (00:00) the row serves")),
        "warmup": _WARMUP,
    },
    tuple(s for s in DAILY_FEATURE_SPECS if s.unit is not Unit.FLAG),
    extra={
        "btc_trend": (Series[str], pa.Field(isin=[t.value for t in BtcTrend], description="BTC trend (SPEC §8.1)")),
        "trend_bull": (Series[np.int8], pa.Field(isin=[0, 1], description="btc_trend == BULL")),
        "trend_bear": (Series[np.int8], pa.Field(isin=[0, 1], description="btc_trend == BEAR")),
    },
)


def _regime_measures() -> list[str]:
    names = {n for m in (PanicConfig, CautionConfig, EuphoriaConfig) for n in m.model_fields}
    return sorted(names)


def _market_regime_model(stored: bool = False) -> type[pa.DataFrameModel]:
    annotations: dict[str, Any] = {}
    attrs: dict[str, Any] = {"__doc__": "One shared market state per cycle point (SPEC §8, §9.1): table market_regime."}

    def col(name: str, typ: Any, **field: Any) -> None:
        annotations[name] = typ
        attrs[name] = pa.Field(**field)

    col("timestamp", UtcTime, unique=True, description="cycle point T (UTC)")
    col("market_symbol", Series[str], description="universe.market_symbol")
    col("bar_timestamp", UtcTime, nullable=True, description="decision bar open of the market symbol; null = stale")
    col("stale", Series[bool], description="market symbol stale at T (regime UNKNOWN)")
    col("btc_close", Series[float], nullable=True, gt=0, description="decision-bar close of the market symbol")
    for m in _regime_measures():
        bounds = {"ge": 0.0} if m.startswith("vol") else {"le": 0.0} if m.startswith("decline") else {}
        col(f"btc_{m}", Series[float], nullable=True, description=f"{m} of the market symbol (fraction)", **bounds)
    col("regime", Series[str], isin=[r.value for r in Regime], description="SPEC §8.1 regime")
    col("size_multiplier", Series[float], ge=0.0, description="protection.regime.size_multiplier of the regime")
    for r in ("panic", "caution", "euphoria"):
        col(f"regime_{r}", Series[np.int8], isin=[0, 1], description=f"regime == {r.upper()}")
    col("entered_panic", Series[bool], description="PANIC now, not at the previous cycle point (alert)")
    for s in Strategy:
        col(f"{s.key}_enabled", Series[bool], description=f"{s.value} not disabled by BTC volatility (SPEC §8.2)")
        col(f"{s.key}_disabled_at", UtcTime, nullable=True, description=f"{s.value} disabled since (UTC)")
        col(f"{s.key}_changed", Series[bool], description=f"{s.value} changed state at T (alert)")
    for c in STRUCTURE_COLUMNS:
        if c == "best_strategy":
            col(c, Series[str], isin=[b.value for b in BestStrategy], description="SPEC §9.1 best strategy")
        elif c == "best_reason":
            col(c, Series[str], isin=[r.value for r in StructureReason], description="the decision-tree branch")
        elif c.startswith("ms_avg"):
            col(c, Series[float], nullable=True, description=f"{c[3:]} over analysed symbols (fraction)")
        else:
            col(c, Series[np.int64], ge=0, description=f"{c[3:]}: symbols (count)")
    if stored:
        annotations["bars_watermark"], attrs["bars_watermark"] = _WATERMARK
        annotations["config_version"], attrs["config_version"] = _CONFIG_VERSION
    attrs["__annotations__"] = annotations

    class Config:
        strict = True
        ordered = False

    attrs["Config"] = Config

    def no_inf(cls, df: pd.DataFrame) -> pd.Series:
        floats = df.select_dtypes("float64").to_numpy()
        return pd.Series(~np.isinf(floats).any(axis=1), index=df.index)

    attrs["no_inf"] = pa.dataframe_check(error="values must be finite or null, never inf")(no_inf)
    return type("MarketRegimeTableSchema" if stored else "MarketRegimeSchema", (pa.DataFrameModel,), attrs)


MarketRegimeSchema = _market_regime_model()
MarketRegimeTableSchema = _market_regime_model(stored=True)  # the market_regime table: + watermark, config version


def history_report(frame: pd.DataFrame) -> pd.DataFrame:
    """Per symbol: rows, rows in warm-up and whether every row is in warm-up (a WARN check: too little history
    for the windows). ``frame`` is any feature frame with ``symbol`` and ``warmup``."""
    g = frame.groupby("symbol", sort=True)["warmup"]
    out = pd.DataFrame({"rows": g.size(), "warmup_rows": g.sum().astype("int64")})
    out["insufficient_history"] = out["warmup_rows"] == out["rows"]
    return out.reset_index()
