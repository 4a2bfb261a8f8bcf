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
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from typing import Any

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from .config import MINUTES_PER_DAY, Config, Tier, Timeframe
from .ohlc import aggregate_bars

# ---------------------------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------------------------


class Kind(str, Enum):
    """R = rolling over a fixed time span; X = recursive (EMA, Wilder) under the start rule of SPEC §2."""

    R = "R"
    X = "X"


class Unit(str, Enum):
    FRACTION = "fraction"
    RATIO = "ratio"
    SCORE = "0-100"
    USD = "USD"
    CORRELATION = "-1..1"
    FLAG = "0/1"
    CATEGORY = "category"
    HOUR = "hour"
    WEEKDAY = "weekday"


class FeatureGroup(str, Enum):
    SCAN = "scan"  # §2.1, base timeframe, per cycle point
    ML = "ml"  # §2.2, features.ml.timeframe
    ML_REL = "ml_rel"  # §2.2, USD features divided by close (the model inputs)
    MARKET = "market"  # §2.3, BTC 1m state per cycle point (computed by core.regime)
    DAILY = "daily"  # §2.3, completed UTC days before T
    STATIC = "static"  # §2.3, tier one-hot, hour and weekday


class BtcTrend(str, Enum):
    BULL = "BULL"
    BEAR = "BEAR"
    NEUTRAL = "NEUTRAL"
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True)
class FeatureSpec:
    """One registered feature.

    ``timeframe`` is the dotted config key of the timeframe the windows apply to (or a fixed timeframe value,
    ``"1d"`` for daily features); ``windows`` are dotted config keys (``[i]`` indexes a list) whose values are
    spans; ``params`` are other config keys that change the value.
    """

    name: str
    group: FeatureGroup
    kind: Kind
    unit: Unit
    timeframe: str | None
    windows: tuple[str, ...]
    definition: str
    params: tuple[str, ...] = ()

    @property
    def model_input(self) -> bool:
        """Models never get USD features (SPEC §2.2, I-18): they get the ``*_rel`` versions."""
        return self.unit is not Unit.USD


_ML = "features.ml.windows_min."
_ML_TF = "features.ml.timeframe"
_BASE_TF = "engine.base_timeframe"
_DAILY = "features.daily."


def _ml(name: str, window: str | tuple[str, ...], kind: Kind, unit: Unit, definition: str, *params: str) -> FeatureSpec:
    windows = (window,) if isinstance(window, str) else window
    return FeatureSpec(name, FeatureGroup.ML, kind, unit, _ML_TF, tuple(_ML + w for w in windows), definition, params)


_MACD_WINDOWS = ("macd[0]", "macd[1]", "macd[2]")
_BB = ("bb",)

ML_FEATURE_SPECS: tuple[FeatureSpec, ...] = (
    _ml("ret_75m", "ret[0]", Kind.R, Unit.FRACTION, "close / close n bars earlier - 1"),
    _ml("ret_225m", "ret[1]", Kind.R, Unit.FRACTION, "close / close n bars earlier - 1"),
    _ml("ret_15h", "ret[2]", Kind.R, Unit.FRACTION, "close / close n bars earlier - 1"),
    _ml("ret_60h", "ret[3]", Kind.R, Unit.FRACTION, "close / close n bars earlier - 1"),
    _ml("volume_ratio_15h", "volume_ratio", Kind.R, Unit.RATIO, "volume / mean volume of the window incl. current"),
    _ml("rsi_14", "rsi[0]", Kind.X, Unit.SCORE, "Wilder RSI of close; null when no movement"),
    _ml("rsi_30", "rsi[1]", Kind.X, Unit.SCORE, "Wilder RSI of close; null when no movement"),
    _ml("macd", _MACD_WINDOWS[:2], Kind.X, Unit.USD, "EMA(fast) - EMA(slow) of close"),
    _ml("macd_signal", _MACD_WINDOWS, Kind.X, Unit.USD, "EMA(signal) of macd"),
    _ml("macd_diff", _MACD_WINDOWS, Kind.X, Unit.USD, "macd - macd_signal"),
    _ml("bb_high", _BB, Kind.R, Unit.USD, "SMA + k * population std of close", "features.ml.bb_std"),
    _ml("bb_low", _BB, Kind.R, Unit.USD, "SMA - k * population std of close", "features.ml.bb_std"),
    _ml("bb_mid", _BB, Kind.R, Unit.USD, "SMA of close"),
    _ml("bb_width", _BB, Kind.R, Unit.FRACTION, "(bb_high - bb_low) / bb_mid", "features.ml.bb_std"),
    _ml("bb_position", _BB, Kind.R, Unit.RATIO, "(close - bb_low) / (bb_high - bb_low); null if width 0",
        "features.ml.bb_std"),
    _ml("sma_20", "sma[0]", Kind.R, Unit.USD, "SMA of close"),
    _ml("sma_50", "sma[1]", Kind.R, Unit.USD, "SMA of close"),
    _ml("ema_12", "ema[0]", Kind.X, Unit.USD, "EMA of close, alpha 2/(n+1)"),
    _ml("ema_26", "ema[1]", Kind.X, Unit.USD, "EMA of close, alpha 2/(n+1)"),
    _ml("dist_sma20", "sma[0]", Kind.R, Unit.FRACTION, "close / SMA - 1"),
    _ml("dist_sma50", "sma[1]", Kind.R, Unit.FRACTION, "close / SMA - 1"),
    _ml("dist_support_5h", "support_resistance", Kind.R, Unit.FRACTION, "close / min(close) - 1"),
    _ml("dist_resistance_5h", "support_resistance", Kind.R, Unit.FRACTION, "close / max(close) - 1"),
    _ml("volatility_15h", "volatility[0]", Kind.R, Unit.FRACTION, "std (ddof 1) of 1-bar returns"),
    _ml("volatility_60h", "volatility[1]", Kind.R, Unit.FRACTION, "std (ddof 1) of 1-bar returns"),
    _ml("obv_15h", "obv", Kind.R, Unit.CORRELATION, "sum sign(dclose) * volume / sum volume"),
    _ml("volume_sma_ratio", "volume_sma", Kind.R, Unit.RATIO, "volume / SMA(volume)"),
    _ml("roc_12", "roc", Kind.R, Unit.FRACTION, "close / close n bars earlier - 1"),
    _ml("stoch_k_14", "stoch", Kind.R, Unit.SCORE, "(close - min low) / (max high - min low) * 100; null if range 0"),
)
ML_FEATURES: tuple[str, ...] = tuple(s.name for s in ML_FEATURE_SPECS)
ML_USD_FEATURES: tuple[str, ...] = tuple(s.name for s in ML_FEATURE_SPECS if s.unit is Unit.USD)
ML_REL_SPECS: tuple[FeatureSpec, ...] = tuple(
    FeatureSpec(f"{s.name}_rel", FeatureGroup.ML_REL, s.kind, Unit.RATIO, s.timeframe, s.windows,
                f"({s.definition}) / close", s.params)
    for s in ML_FEATURE_SPECS if s.unit is Unit.USD
)
ML_REL_FEATURES: tuple[str, ...] = tuple(s.name for s in ML_REL_SPECS)
ML_MODEL_INPUTS: tuple[str, ...] = tuple(n for n in ML_FEATURES if n not in ML_USD_FEATURES) + ML_REL_FEATURES


def _scan(name: str, windows: tuple[str, ...], kind: Kind, unit: Unit, definition: str, *params: str) -> FeatureSpec:
    return FeatureSpec(name, FeatureGroup.SCAN, kind, unit, _BASE_TF, windows, definition, params)


SCAN_FEATURE_SPECS: tuple[FeatureSpec, ...] = (
    _scan("drop", ("strategies.dca.lookback_min",), Kind.R, Unit.FRACTION, "c.close / max(high, incl. c) - 1"),
    _scan("breakout", ("strategies.swing.lookback_min",), Kind.R, Unit.FRACTION, "c.close / max(high, excl. c) - 1"),
    _scan("volume_surge", ("strategies.swing.lookback_min",), Kind.R, Unit.RATIO,
          "c.volume / mean volume excl. c (0 if that mean is 0)"),
    _scan("channel_position", ("strategies.channel.lookback_min",), Kind.R, Unit.RATIO,
          "(c.close - min close) / (max close - min close), incl. c; null if flat"),
    _scan("channel_width", ("strategies.channel.lookback_min",), Kind.R, Unit.FRACTION,
          "(max close - min close) / min close, incl. c"),
    _scan("rsi_14m", ("scan.windows_min.rsi",), Kind.X, Unit.SCORE, "Wilder RSI of base closes"),
    _scan("volume_ratio", ("scan.windows_min.volume_ratio",), Kind.R, Unit.RATIO,
          "c.volume / mean volume of the reference window excl. c"),
    _scan("dist_support", ("scan.windows_min.support",), Kind.R, Unit.FRACTION, "c.close / min(low, incl. c) - 1"),
    _scan("btc_corr", ("scan.windows_min.btc_corr",), Kind.R, Unit.CORRELATION,
          "Pearson correlation of 1-bar returns with the market symbol, incl. c; market symbol = 1",
          "scan.min_btc_corr_pairs", "universe.market_symbol"),
    _scan("vol_24h", ("scan.windows_min.vol_24h",), Kind.R, Unit.FRACTION,
          "(max high - min low) / open of the window's first bar, incl. c"),
)
SCAN_FEATURES: tuple[str, ...] = tuple(s.name for s in SCAN_FEATURE_SPECS)


def _daily(name: str, windows: tuple[str, ...], unit: Unit, definition: str, *params: str) -> FeatureSpec:
    return FeatureSpec(name, FeatureGroup.DAILY, Kind.R, unit, Timeframe.D1.value, tuple(_DAILY + w for w in windows),
                       definition, params)


DAILY_FEATURE_SPECS: tuple[FeatureSpec, ...] = (
    _daily("btc_dist_sma50", ("sma_d[0]",), Unit.FRACTION, "BTC close / SMA(close) - 1"),
    _daily("btc_dist_sma200", ("sma_d[1]",), Unit.FRACTION, "BTC close / SMA(close) - 1"),
    _daily("btc_trend_30d", ("trend_d",), Unit.FRACTION, "BTC close / close n days earlier - 1"),
    _daily("btc_vol_7d", ("vol_d[0]",), Unit.FRACTION, "std (ddof 1) of BTC daily returns * sqrt(365)"),
    _daily("btc_vol_30d", ("vol_d[1]",), Unit.FRACTION, "std (ddof 1) of BTC daily returns * sqrt(365)"),
    _daily("btc_range_7d", ("range_d",), Unit.FRACTION, "(max high - min low) / min low of BTC"),
    _daily("sym_vs_btc_7d", ("rel_d[0]",), Unit.FRACTION, "symbol n-day return - BTC n-day return"),
    _daily("sym_vs_btc_30d", ("rel_d[1]",), Unit.FRACTION, "symbol n-day return - BTC n-day return"),
    _daily("sym_btc_corr_30d", ("corr_d",), Unit.CORRELATION, "Pearson correlation of daily returns",
           "features.daily.corr_min_pairs"),
    _daily("trend_bull", ("sma_d[0]", "sma_d[1]"), Unit.FLAG, "BTC trend BULL (SMA50 > SMA200 and close > SMA50)"),
    _daily("trend_bear", ("sma_d[0]", "sma_d[1]"), Unit.FLAG, "BTC trend BEAR (SMA50 < SMA200 and close < SMA50)"),
)
DAILY_FEATURES: tuple[str, ...] = tuple(s.name for s in DAILY_FEATURE_SPECS)

_MARKET_DEF = "market symbol, exact horizon, per cycle point (core.regime, SPEC §8.1)"
MARKET_FEATURE_SPECS: tuple[FeatureSpec, ...] = (
    FeatureSpec("btc_ret_1h", FeatureGroup.MARKET, Kind.R, Unit.FRACTION, _BASE_TF, (), "1h return; " + _MARKET_DEF,
                ("protection.regime.max_reference_gap_min",)),
    FeatureSpec("btc_ret_4h", FeatureGroup.MARKET, Kind.R, Unit.FRACTION, _BASE_TF, (), "4h return; " + _MARKET_DEF,
                ("protection.regime.max_reference_gap_min",)),
    FeatureSpec("btc_ret_24h", FeatureGroup.MARKET, Kind.R, Unit.FRACTION, _BASE_TF, (), "24h return; " + _MARKET_DEF,
                ("protection.regime.max_reference_gap_min",)),
    FeatureSpec("btc_vol_24h", FeatureGroup.MARKET, Kind.R, Unit.FRACTION, _BASE_TF, (),
                "(max high - min low) / first open over [T - 24h, T); " + _MARKET_DEF),
    FeatureSpec("regime_panic", FeatureGroup.MARKET, Kind.R, Unit.FLAG, _BASE_TF, (), "regime == PANIC",
                ("protection.regime",)),
    FeatureSpec("regime_caution", FeatureGroup.MARKET, Kind.R, Unit.FLAG, _BASE_TF, (), "regime == CAUTION",
                ("protection.regime",)),
    FeatureSpec("regime_euphoria", FeatureGroup.MARKET, Kind.R, Unit.FLAG, _BASE_TF, (), "regime == EUPHORIA",
                ("protection.regime",)),
)
STATIC_FEATURE_SPECS: tuple[FeatureSpec, ...] = tuple(
    FeatureSpec(f"tier_{t.value}", FeatureGroup.STATIC, Kind.R, Unit.FLAG, None, (), f"tier(symbol) == {t.value}",
                ("universe",))
    for t in Tier
) + (
    FeatureSpec("hour_utc", FeatureGroup.STATIC, Kind.R, Unit.HOUR, None, (), "hour of T in UTC (0-23)"),
    FeatureSpec("dow_utc", FeatureGroup.STATIC, Kind.R, Unit.WEEKDAY, None, (), "weekday of T in UTC (0 = Monday)"),
)

FEATURE_REGISTRY: tuple[FeatureSpec, ...] = (
    SCAN_FEATURE_SPECS + ML_FEATURE_SPECS + ML_REL_SPECS + MARKET_FEATURE_SPECS + DAILY_FEATURE_SPECS
    + STATIC_FEATURE_SPECS
)
_BY_NAME: dict[str, FeatureSpec] = {s.name: s for s in FEATURE_REGISTRY}
if len(_BY_NAME) != len(FEATURE_REGISTRY):  # pragma: no cover - a programming error
    raise RuntimeError("duplicate feature name in FEATURE_REGISTRY")


def feature_spec(name: str) -> FeatureSpec:
    """The registry entry of ``name``; raises KeyError for an unknown feature."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown feature {name!r}") from None


_KEY_PART = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\[(\d+)\])?$")


def config_value(cfg: Config, key: str) -> Any:
    """The value of dotted ``key`` (``a.b.c[1]`` indexes a list) in ``cfg``; raises ValueError naming the key."""
    obj: Any = cfg
    for part in key.split("."):
        m = _KEY_PART.match(part)
        if m is None or not hasattr(obj, m.group(1)):
            raise ValueError(f"`{key}`: no such config key")
        obj = getattr(obj, m.group(1))
        if m.group(2) is not None:
            i = int(m.group(2))
            if not isinstance(obj, (list, tuple)) or i >= len(obj):
                raise ValueError(f"`{key}`: the config list has no element {i}")
            obj = obj[i]
    return obj


def _timeframe_of(cfg: Config, spec_timeframe: str | None) -> Timeframe | None:
    if spec_timeframe is None:
        return None
    if "." in spec_timeframe:
        return Timeframe(config_value(cfg, spec_timeframe))
    return Timeframe(spec_timeframe)


def window_bars(cfg: Config, key: str, timeframe: Timeframe) -> int:
    """Bars of ``timeframe`` in the span at config ``key`` (minutes for ``*_min`` keys, days for ``features.daily``)."""
    span = config_value(cfg, key)
    if not isinstance(span, int) or span <= 0:
        raise ValueError(f"`{key}`: a window must be a positive integer span, got {span!r}")
    if key.startswith(_DAILY):
        if timeframe is not Timeframe.D1:
            raise ValueError(f"`{key}`: daily windows apply to 1d bars")
        return span
    if span % timeframe.minutes:
        raise ValueError(f"`{key}`: span {span} min is not a whole number of {timeframe.value} bars")
    return span // timeframe.minutes


def feature_set_version(cfg: Config, names: Iterable[str] | None = None) -> str:
    """Hash of the names, definitions, windows (resolved spans) and parameters of the registered features.

    ``names`` restricts the hash to those features (default: the whole registry). A change of any window,
    parameter, the Kind-X start span or the window coverage changes the version.
    """
    specs = FEATURE_REGISTRY if names is None else tuple(feature_spec(n) for n in names)
    rows = []
    for s in specs:
        tf = _timeframe_of(cfg, s.timeframe)
        rows.append(
            {
                "name": s.name,
                "group": s.group.value,
                "kind": s.kind.value,
                "unit": s.unit.value,
                "definition": s.definition,
                "timeframe": tf.value if tf else None,
                "windows": {k: config_value(cfg, k) for k in s.windows},
                "params": {k: _jsonable(config_value(cfg, k)) for k in s.params},
            }
        )
    payload = {
        "features": rows,
        "kind_x_start_min": cfg.features.ml.min_history_min,
        "min_window_coverage": cfg.engine.min_window_coverage,
    }
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
    return digest[:16]


def _jsonable(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, Enum):
        return value.value
    return value


# ---------------------------------------------------------------------------------------------------------------
# Time helpers (int64 nanoseconds since the epoch, UTC)
# ---------------------------------------------------------------------------------------------------------------

NS_PER_MIN = 60 * 10**9
NS_PER_DAY = MINUTES_PER_DAY * NS_PER_MIN


def _to_ns(value: Any, what: str) -> int:
    if isinstance(value, date) and not isinstance(value, datetime):
        return pd.Timestamp(value.isoformat(), tz="UTC").value
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        raise ValueError(f"{what} must be timezone-aware UTC, got naive {ts}")
    return ts.tz_convert("UTC").value


def _day_ns(day: Any) -> int:
    ns = _to_ns(day, "day")
    if ns % NS_PER_DAY:
        raise ValueError(f"a partition day must be 00:00 UTC, got {pd.Timestamp(ns, tz='UTC')}")
    return ns


def _floor(ns: Any, step: int) -> Any:
    return ns - ns % step


def _ceil(ns: int, step: int) -> int:
    return -((-ns) // step) * step


def _utc(ns: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(np.asarray(ns, dtype="int64").view("datetime64[ns]")).tz_localize("UTC")


def _cover(count: np.ndarray, n: int, coverage: float) -> np.ndarray:
    """Window validity (SPEC §0.2): at least ``coverage`` of the ``n`` expected bars are present."""
    return count + 1e-9 >= coverage * n


# ---------------------------------------------------------------------------------------------------------------
# Bars on a regular grid (symbols × slots); a missing bar is NaN
# ---------------------------------------------------------------------------------------------------------------

OHLCV = ("open", "high", "low", "close", "volume")


@dataclass
class BarGrid:
    """Bars of several symbols on one regular time grid: arrays (symbols × slots), NaN where no bar."""

    symbols: list[str]
    t0: int  # ns, open time of slot 0
    step: int  # ns
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    @property
    def present(self) -> np.ndarray:
        return ~np.isnan(self.close)

    @property
    def n_slots(self) -> int:
        return self.close.shape[1]

    def slot_times(self) -> np.ndarray:
        return self.t0 + self.step * np.arange(self.n_slots, dtype="int64")

    def row(self, symbol: str) -> int | None:
        try:
            return self.symbols.index(symbol)
        except ValueError:
            return None


def _timestamps_ns(col: pd.Series) -> np.ndarray:
    dtype = col.dtype
    if not isinstance(dtype, pd.DatetimeTZDtype) or str(dtype.tz) not in ("UTC", "utc"):
        raise ValueError(f"bars.timestamp must be datetime64[ns, UTC], got {dtype}")
    return col.dt.as_unit("ns").array.asi8


def _check_columns(bars: pd.DataFrame) -> None:
    missing = [c for c in ("symbol", "timestamp", *OHLCV) if c not in bars.columns]
    if missing:
        raise ValueError(f"bars lack columns {missing}")


def _aggregate(bars: pd.DataFrame, to: Timeframe, end_ns: int) -> pd.DataFrame:
    """SPEC §13.1 aggregation of closed buckets (core.ohlc), after the checks the grid would have made."""
    dup = bars.duplicated(["symbol", "timestamp"])
    if dup.any():
        row = bars[dup].iloc[0]
        raise ValueError(f"duplicate bar {row['symbol']} at {row['timestamp']}")
    values = bars[list(OHLCV)].to_numpy(dtype="float64")
    if not np.isfinite(values).all():
        raise ValueError("bars hold NaN or inf in open/high/low/close/volume (rejected rows must not reach features)")
    return aggregate_bars(bars, to, closed_by=pd.Timestamp(end_ns, tz="UTC"))


def bar_grid(bars: pd.DataFrame, step_min: int, t0: int, t1: int, symbols: list[str] | None = None) -> BarGrid:
    """Place long-format ``bars`` with open time in [t0, t1) on a grid of ``step_min`` slots from ``t0`` (ns).

    Raises on a timestamp that is not on the grid or on a duplicate (symbol, timestamp).
    """
    _check_columns(bars)
    step = step_min * NS_PER_MIN
    n = max(0, _ceil(t1 - t0, step) // step)
    ts = _timestamps_ns(bars["timestamp"])
    keep = (ts >= t0) & (ts < t1)
    sub = bars.loc[keep]
    ts = ts[keep]
    if symbols is None:
        symbols = sorted(sub["symbol"].astype(str).unique().tolist())
    codes = pd.Categorical(sub["symbol"].astype(str), categories=symbols).codes.astype("int64")
    ok = codes >= 0
    off = ts - t0
    if (off % step).any():
        bad = pd.Timestamp(int(ts[(off % step) != 0][0]), tz="UTC")
        raise ValueError(f"bar timestamp {bad} is not on the {step_min}-minute grid")
    slot = off // step
    key = codes[ok] * max(n, 1) + slot[ok]
    seen = np.zeros(len(symbols) * max(n, 1), dtype=bool)
    seen[key] = True
    if int(np.count_nonzero(seen)) != len(key):
        dup = pd.Series(key).duplicated()
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise ValueError(f"duplicate bar {sub['symbol'].iloc[np.flatnonzero(ok)[i]]} at "
                         f"{pd.Timestamp(int(ts[ok][i]), tz='UTC')}")
    arrays = {}
    for name in OHLCV:
        values = sub[name].to_numpy(dtype="float64")[ok]
        if not np.isfinite(values).all():
            raise ValueError(f"bars hold NaN or inf in {name} (rejected rows must not reach features)")
        a = np.full((len(symbols), n), np.nan)
        a[codes[ok], slot[ok]] = values
        arrays[name] = a
    return BarGrid(list(symbols), t0, step, **arrays)


def _to_long(grid_symbols: list[str], times: np.ndarray, mask: np.ndarray, columns: Mapping[str, np.ndarray],
             leading: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Rows (symbol, time) where ``mask``; sorted by symbol then time (symbols in grid order)."""
    si, gi = np.nonzero(mask)
    out: dict[str, Any] = {
        "symbol": np.asarray(grid_symbols, dtype=object)[si],
        "timestamp": _utc(times[gi]),
    }
    for name, fn in (leading or {}).items():
        out[name] = fn(si, gi)
    for name, arr in columns.items():
        out[name] = arr[si, gi]
    return pd.DataFrame(out)


# ---------------------------------------------------------------------------------------------------------------
# Window reductions: a fixed binary tree over the window's own slots (start-independent, bit for bit)
# ---------------------------------------------------------------------------------------------------------------


def _op_add(older: np.ndarray, newer: np.ndarray, out: np.ndarray) -> None:
    np.add(older, newer, out=out)


def _op_max(older: np.ndarray, newer: np.ndarray, out: np.ndarray) -> None:
    np.fmax(older, newer, out=out)


def _op_min(older: np.ndarray, newer: np.ndarray, out: np.ndarray) -> None:
    np.fmin(older, newer, out=out)


def _op_first(older: np.ndarray, newer: np.ndarray, out: np.ndarray) -> None:
    """The oldest non-NaN value."""
    if out is not newer:
        np.copyto(out, newer)
    np.copyto(out, older, where=~np.isnan(older))


Op = Callable[[np.ndarray, np.ndarray, np.ndarray], None]


def rolling(x: np.ndarray, n: int, op: Op, out: np.ndarray | None = None) -> np.ndarray:
    """Reduce the last ``n`` slots (including the current one) along the last axis with ``op``.

    The value at slot i is a fixed expression over slots i − n + 1 … i (powers-of-two blocks combined from the
    newest), so it depends only on those slots. Slots before the array start are absent: use NaN-free input with
    ``_op_add`` (absent = 0) and NaN-aware ops (fmax/fmin/first) otherwise. ``out`` must not be ``x``.
    """
    if n < 1:
        raise ValueError("window must hold at least one bar")
    g = x.shape[-1]
    res = np.empty_like(x) if out is None else out
    levels = (_scratch("roll_a", x.shape), _scratch("roll_b", x.shape))
    have = False
    off = 0
    level = x
    k = 1
    flip = 0
    while True:
        if n & k:
            if not have:
                np.copyto(res, level)
                off = k
                have = True
            else:
                if off < g:
                    op(level[..., : g - off], res[..., off:], res[..., off:])
                off += k
        if (k << 1) > n:
            break
        nxt = levels[flip]
        flip ^= 1
        nxt[..., :k] = level[..., :k]
        if k < g:
            op(level[..., : g - k], level[..., k:], nxt[..., k:])
        level = nxt
        k <<= 1
    return res


def _shift(x: np.ndarray, n: int, fill: float = np.nan) -> np.ndarray:
    """x shifted n slots later along the last axis (out[i] = x[i − n])."""
    out = np.full_like(x, fill)
    if n < x.shape[-1]:
        out[..., n:] = x[..., : x.shape[-1] - n]
    return out


class _Windows:
    """Rolling reductions with a memo: the same (series, window) is often shared by several features."""

    def __init__(self, coverage: float) -> None:
        self.coverage = coverage
        self._memo: dict[tuple[str, str, int], np.ndarray] = {}
        self._src: dict[str, np.ndarray] = {}

    def source(self, name: str, x: np.ndarray) -> None:
        self._src[name] = x

    def get(self, name: str, n: int, op: Op) -> np.ndarray:
        key = (name, op.__name__, n)
        if key not in self._memo:
            self._memo[key] = rolling(self._src[name], n, op)
        return self._memo[key]

    def sum(self, name: str, n: int) -> np.ndarray:
        return self.get(name, n, _op_add)

    def max(self, name: str, n: int) -> np.ndarray:
        return self.get(name, n, _op_max)

    def min(self, name: str, n: int) -> np.ndarray:
        return self.get(name, n, _op_min)

    def first(self, name: str, n: int) -> np.ndarray:
        return self.get(name, n, _op_first)

    def valid(self, count_name: str, n: int) -> np.ndarray:
        return _cover(self.sum(count_name, n), n, self.coverage)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN where den is 0 or NaN."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = num / den
    out[~(den != 0)] = np.nan
    return out


# ---------------------------------------------------------------------------------------------------------------
# Row-parallel execution: every computation below treats each row (series) independently, so splitting rows into
# cache-sized chunks, on threads, never changes a value. Temporaries of chunk size are reused per thread.
# ---------------------------------------------------------------------------------------------------------------

_CHUNK_CELLS = 1 << 18  # ≈ 2 MB per float64 array: the working set of a chunk stays in cache
_MAX_THREADS = 4
_POOL: ThreadPoolExecutor | None = None
_LOCAL = threading.local()


def _scratch(name: str, shape: tuple[int, ...]) -> np.ndarray:
    """A reusable temporary of this thread (chunk-sized arrays only; larger ones are allocated each time)."""
    size = math.prod(shape)
    if size > 2 * _CHUNK_CELLS:
        return np.empty(shape)
    cache = getattr(_LOCAL, "arrays", None)
    if cache is None:
        cache = _LOCAL.arrays = {}
    arr = cache.get(name)
    if arr is None or arr.size < size:
        arr = cache[name] = np.empty(size)
    return arr[:size].reshape(shape)


def _pool() -> ThreadPoolExecutor | None:
    """The shared worker pool (numpy and lfilter release the GIL), created on first use; None on one core."""
    global _POOL
    workers = min(os.cpu_count() or 1, _MAX_THREADS)
    if workers < 2:
        return None
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="features")
    return _POOL


def _by_rows(fn: Callable[..., None], n_out: int, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Run ``fn(*input_chunks, *output_chunks)`` on row chunks of ``arrays`` (same shape, rows × time); ``fn``
    writes its ``n_out`` results into the output chunks. Returns the outputs (rows × time)."""
    rows, length = arrays[0].shape
    outs = tuple(np.empty((rows, length)) for _ in range(n_out))
    step = max(1, _CHUNK_CELLS // max(length, 1))

    def work(a: int) -> None:
        fn(*(x[a: a + step] for x in arrays), *(o[a: a + step] for o in outs))

    pool = _pool()
    starts = range(0, rows, step)
    if pool is None or len(starts) == 1:
        for a in starts:
            work(a)
    else:
        list(pool.map(work, starts))
    return outs


# ---------------------------------------------------------------------------------------------------------------
# Recursive indicators on rows of NaN-free series that all start at column 0 (the caller applies the start rule)
# ---------------------------------------------------------------------------------------------------------------


def _ema_into(x: np.ndarray, n: int, alpha: float, out: np.ndarray, first: int = 0) -> np.ndarray:
    """out = y with y = alpha·x + (1 − alpha)·y_prev along axis 1 from column ``first``, seeded at column
    first + n − 1 with the mean of columns first … first + n − 1 (summed in order, so a row's result never depends on
    other rows); NaN before. ``out`` may be ``x``."""
    rows, length = x.shape
    if n < 1:
        raise ValueError("EMA period must be >= 1")
    if length - first < n:
        out.fill(np.nan)
        return out
    seed = x[:, first].copy()
    for j in range(first + 1, first + n):
        seed += x[:, j]
    seed /= n
    tail = None
    if length > first + n:
        decay = 1.0 - alpha
        tail = lfilter([alpha], [1.0, -decay], x[:, first + n:], axis=1, zi=(decay * seed)[:, None])[0]
    out[:, : first + n - 1] = np.nan
    out[:, first + n - 1] = seed
    if tail is not None:
        out[:, first + n:] = tail
    return out


def _rsi_into(c: np.ndarray, n: int, out: np.ndarray) -> np.ndarray:
    """Wilder RSI aligned with the closes (first value at column n) into ``out``."""
    rows, length = c.shape
    if length <= n:
        out.fill(np.nan)
        return out
    d = _scratch("rsi_d", c.shape)
    d[:, 0] = 0.0  # placeholder before the first change; never read (the averages start at column 1)
    np.subtract(c[:, 1:], c[:, :-1], out=d[:, 1:])
    gain = _scratch("rsi_g", c.shape)
    np.maximum(d, 0.0, out=gain)
    np.negative(d, out=d)
    np.maximum(d, 0.0, out=d)
    _ema_into(gain, n, 1.0 / n, out, first=1)
    total = _ema_into(d, n, 1.0 / n, d, first=1)
    total += out
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(out, total, out=out)  # no movement at all: 0 / 0 = NaN (null)
    out *= 100.0
    return out


def _macd_into(c: np.ndarray, fast: int, slow: int, signal: int, line: np.ndarray, sig: np.ndarray,
               hist: np.ndarray, ema_fast: np.ndarray | None = None, ema_slow: np.ndarray | None = None) -> None:
    ef = _ema_into(c, fast, 2.0 / (fast + 1), _scratch("macd_f", c.shape) if ema_fast is None else ema_fast)
    es = _ema_into(c, slow, 2.0 / (slow + 1), hist if ema_slow is None else ema_slow)
    np.subtract(ef, es, out=line)
    _ema_into(line, signal, 2.0 / (signal + 1), sig, first=max(fast, slow) - 1)
    np.subtract(line, sig, out=hist)


def _bollinger_into(x: np.ndarray, n: int, k: float, upper: np.ndarray, mid: np.ndarray,
                    lower: np.ndarray) -> None:
    rolling(x, n, _op_add, out=mid)
    sq = _scratch("bb_sq", x.shape)
    np.multiply(x, x, out=sq)
    var = rolling(sq, n, _op_add, out=lower)
    mid /= n
    var /= n
    np.multiply(mid, mid, out=sq)
    var -= sq
    np.maximum(var, 0.0, out=var)
    band = np.sqrt(var, out=var)
    band *= k
    np.add(mid, band, out=upper)
    np.subtract(mid, band, out=lower)
    for a in (upper, mid, lower):
        a[:, : n - 1] = np.nan


def _as_rows(values: np.ndarray) -> tuple[np.ndarray, bool]:
    arr = np.ascontiguousarray(values, dtype="float64")
    if arr.ndim == 1:
        return arr[None, :], True
    if arr.ndim != 2:
        raise ValueError("expected a 1-D series or a 2-D array of rows")
    return arr, False


def _unrow(out: tuple[np.ndarray, ...], one: bool) -> Any:
    res = tuple(a[0] for a in out) if one else out
    return res[0] if len(res) == 1 else res


def ema(values: np.ndarray, n: int) -> np.ndarray:
    """EMA with alpha = 2/(n+1), seeded with the SMA of the first n values (NaN before). Rows are series."""
    x, one = _as_rows(values)
    return _unrow(_by_rows(lambda c, o: _ema_into(c, n, 2.0 / (n + 1), o), 1, x), one)


def wilder_rsi(close: np.ndarray, n: int) -> np.ndarray:
    """Wilder RSI (0–100) of each row: averages of gains/losses seeded with the SMA of the first n changes, then
    avg = (avg·(n − 1) + x)/n; first value at index n; null where there was no movement at all."""
    x, one = _as_rows(close)
    return _unrow(_by_rows(lambda c, o: _rsi_into(c, n, o), 1, x), one)


def macd(close: np.ndarray, fast: int, slow: int, signal: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(macd, signal, macd − signal): EMA(fast) − EMA(slow) of close, signal = EMA(signal) of macd seeded with the
    SMA of its first ``signal`` values. Each EMA is seeded with the SMA of its own first n inputs."""
    x, one = _as_rows(close)
    return _unrow(_by_rows(lambda c, a, b, h: _macd_into(c, fast, slow, signal, a, b, h), 3, x), one)


def sma(values: np.ndarray, n: int) -> np.ndarray:
    """Simple moving average over the last n values (NaN before the n-th)."""
    x, one = _as_rows(values)

    def chunk(c: np.ndarray, o: np.ndarray) -> None:
        rolling(c, n, _op_add, out=o)
        o /= n
        o[:, : n - 1] = np.nan

    return _unrow(_by_rows(chunk, 1, x), one)


def bollinger(close: np.ndarray, n: int, k: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(upper, middle, lower) = SMA ± k·σ over the last n closes, σ the population std (ddof 0)."""
    x, one = _as_rows(close)
    return _unrow(_by_rows(lambda c, u, m, lo: _bollinger_into(c, n, k, u, m, lo), 3, x), one)


# ---------------------------------------------------------------------------------------------------------------
# Kind-X lanes: one compressed series per (symbol, start day), left-justified, computed in batches
# ---------------------------------------------------------------------------------------------------------------

_LANE_BATCH_CELLS = 4_000_000


def kind_x_start(t_ns: Any, min_history_min: int) -> Any:
    """Start of the recursion for a value used at T (ns): 00:00 UTC of the day containing T − min_history_min."""
    return _floor(t_ns - min_history_min * NS_PER_MIN, NS_PER_DAY)


def _run_lanes(values: np.ndarray, present: np.ndarray, groups: list[tuple[int, np.ndarray]],
               fn: Callable[..., None], names: tuple[str, ...]) -> list[dict[str, np.ndarray]]:
    """For each group (start slot s, targets J (symbols × m), −1 = none), compute ``names`` on the lanes of the
    present values from s to the last target with ``fn(lanes, *outputs)`` (row-independent, see :func:`_by_rows`)
    and return the lane values at the targets, (symbols × m) per name."""
    n_sym = values.shape[0]
    results: list[dict[str, np.ndarray]] = [{} for _ in groups]
    batch: list[int] = []
    cells = 0

    def flush() -> None:
        spans = [int(groups[g][1].max()) - groups[g][0] + 1 for g in batch]
        length = max(spans)
        lanes = np.zeros((n_sym * len(batch), length))
        positions = []
        for b, g in enumerate(batch):
            s, _ = groups[g]
            e = s + spans[b]
            sub_p = present[:, s:e]
            pos = np.cumsum(sub_p, axis=1) - 1
            rows = np.broadcast_to((np.arange(n_sym) + b * n_sym)[:, None], sub_p.shape)
            lanes[rows[sub_p], pos[sub_p]] = values[:, s:e][sub_p]  # padding after a lane's end stays 0
            positions.append(pos)
        out = dict(zip(names, _by_rows(fn, len(names), lanes)))
        for b, g in enumerate(batch):
            s, targets = groups[g]
            ok = targets >= s
            rel = np.where(ok, targets - s, 0)
            p = np.take_along_axis(positions[b], rel, axis=1)
            ok &= p >= 0
            rows = (np.arange(n_sym) + b * n_sym)[:, None]
            for name, arr in out.items():
                v = arr[rows, np.maximum(p, 0)]
                v[~ok] = np.nan
                results[g][name] = v

    for g, (s, targets) in enumerate(groups):
        if targets.size == 0 or targets.max() < s:
            continue
        span = int(targets.max()) - s + 1
        if batch and cells + n_sym * span > _LANE_BATCH_CELLS:
            flush()
            batch, cells = [], 0
        batch.append(g)
        cells += n_sym * span
    if batch:
        flush()
    return results


# ---------------------------------------------------------------------------------------------------------------
# ML indicators (SPEC §2.2)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MlParams:
    """Windows of §2.2 in bars of ``features.ml.timeframe`` and the other parameters, from the config."""

    timeframe: Timeframe
    ret: tuple[int, int, int, int]
    volume_ratio: int
    rsi: tuple[int, int]
    macd: tuple[int, int, int]
    bb: int
    bb_std: float
    sma: tuple[int, int]
    ema: tuple[int, int]
    support_resistance: int
    volatility: tuple[int, int]
    obv: int
    volume_sma: int
    roc: int
    stoch: int
    min_history_min: int
    coverage: float

    @classmethod
    def from_config(cls, cfg: Config) -> "MlParams":
        tf = cfg.features.ml.timeframe

        def bars(key: str, count: int | None = None) -> Any:
            if count is None:
                return window_bars(cfg, _ML + key, tf)
            values = config_value(cfg, _ML + key)
            if len(values) != count:
                raise ValueError(f"`{_ML}{key}`: expected {count} spans, got {len(values)}")
            return tuple(window_bars(cfg, f"{_ML}{key}[{i}]", tf) for i in range(count))

        return cls(
            timeframe=tf, ret=bars("ret", 4), volume_ratio=bars("volume_ratio"), rsi=bars("rsi", 2),
            macd=bars("macd", 3), bb=bars("bb"), bb_std=float(cfg.features.ml.bb_std), sma=bars("sma", 2),
            ema=bars("ema", 2), support_resistance=bars("support_resistance"), volatility=bars("volatility", 2),
            obv=bars("obv"), volume_sma=bars("volume_sma"), roc=bars("roc"), stoch=bars("stoch"),
            min_history_min=cfg.features.ml.min_history_min, coverage=cfg.engine.min_window_coverage,
        )

    @property
    def r_lookback(self) -> int:
        """Bars before t that a Kind-R feature of bar t reads (Δ-based windows also read the bar before)."""
        return max(*self.ret, self.volume_ratio - 1, self.bb - 1, self.sma[0] - 1, self.sma[1] - 1,
                   self.support_resistance - 1, *self.volatility, self.obv, self.volume_sma - 1, self.roc,
                   self.stoch - 1)

    @property
    def x_lookback(self) -> int:
        """Bars after the start a Kind-X feature needs before its first value."""
        fast, slow, signal = self.macd
        return max(*self.rsi, self.ema[0] - 1, self.ema[1] - 1, max(fast, slow) - 1 + signal - 1)

    @property
    def history_bars(self) -> int:
        """Bars of history a row needs to be out of the documented warm-up."""
        return max(self.r_lookback, self.x_lookback)


def ml_warmup(cfg: Config) -> pd.Timedelta:
    """Warm-up span for a UTC day D of ML features: the base bars with open time in [D − span, D + 1 day) give
    the rows of D exactly as the continuous series does.

    span = max(whole days back to 00:00 of the day containing D + 15 min − min_history_min, the longest Kind-R
    lookback, the documented history) — 5 days with the defaults.
    """
    p = MlParams.from_config(cfg)
    tf_ns = p.timeframe.minutes * NS_PER_MIN
    x_days = -(_floor(tf_ns - p.min_history_min * NS_PER_MIN, NS_PER_DAY) // NS_PER_DAY)
    span_ns = max(x_days * NS_PER_DAY, p.history_bars * tf_ns)
    return pd.Timedelta(span_ns, unit="ns")


ML_COLUMNS: tuple[str, ...] = ("symbol", "timestamp", "available_at", "warmup") + ML_FEATURES + ML_REL_FEATURES


def _empty(columns: Iterable[str], dtypes: Mapping[str, str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=dtypes.get(c, "float64")) for c in columns})


_KEY_DTYPES = {"symbol": "object", "timestamp": "datetime64[ns, UTC]", "available_at": "datetime64[ns, UTC]",
               "bar_timestamp": "datetime64[ns, UTC]", "warmup": "bool", "stale": "bool", "btc_trend": "object",
               "trend_bull": "int8", "trend_bear": "int8"}


def compute_ml_features(bars: pd.DataFrame, cfg: Config, *, start: Any = None, end: Any = None,
                        bar_timeframe: Timeframe | str | None = None) -> pd.DataFrame:
    """The §2.2 indicators for every ``features.ml.timeframe`` bar with open time ≥ ``start`` that is closed by
    ``end`` (open + length ≤ end), from ``bars`` (long format, several symbols, of ``bar_timeframe``; default
    ``engine.base_timeframe``; bars are aggregated per §13.1 unless they already have the ML timeframe).

    Only bars with open time < ``end`` are read (default: the newest bar's end). ``start`` defaults to the first
    bar; pass bars from ``start − ml_warmup(cfg)`` to get rows equal to the continuous series.

    Returns one row per (symbol, bar), sorted by symbol then time: ``symbol``, ``timestamp`` (bar open, UTC),
    ``available_at`` (= the cycle point T at which the row may be used: the bar's close), ``warmup`` (the symbol
    has less history than the windows need since the Kind-X start: nulls expected), the 29 features of
    :data:`ML_FEATURES` and the ``*_rel`` model inputs of :data:`ML_REL_FEATURES`. Null = NaN.
    """
    p = MlParams.from_config(cfg)
    base = Timeframe(bar_timeframe) if bar_timeframe is not None else cfg.engine.base_timeframe
    tf = p.timeframe
    if tf.minutes % base.minutes:
        raise ValueError(f"bars of {base.value} cannot be aggregated to {tf.value}")
    step = tf.minutes * NS_PER_MIN
    _check_columns(bars)
    if bars.empty:
        return _empty(ML_COLUMNS, _KEY_DTYPES)
    ts = _timestamps_ns(bars["timestamp"])
    end_ns = _to_ns(end, "end") if end is not None else int(ts.max()) + base.minutes * NS_PER_MIN
    start_ns = _to_ns(start, "start") if start is not None else _floor(int(ts.min()), step)
    lo = start_ns - int(ml_warmup(cfg).value)
    sub = bars.loc[(ts >= lo) & (ts < end_ns)]
    if sub.empty:
        return _empty(ML_COLUMNS, _KEY_DTYPES)
    if base is not tf:
        sub = _aggregate(sub, tf, end_ns)
    t_sub = _timestamps_ns(sub["timestamp"])
    t0 = _floor(int(t_sub.min()), NS_PER_DAY)
    grid = bar_grid(sub, tf.minutes, t0, _floor(end_ns, step))
    times = grid.slot_times()
    out_mask = grid.present & (times >= start_ns)[None, :] & (times + step <= end_ns)[None, :]
    feats = _ml_kind_r(grid, p)
    feats.update(_ml_kind_x(grid, p, out_mask))
    feats["macd_diff"] = feats["macd"] - feats["macd_signal"]
    close = grid.close
    for name in ML_USD_FEATURES:
        feats[f"{name}_rel"] = feats[name] / close
    warm = _history_short(grid.present, grid.t0, step, times + step, p.min_history_min, p.history_bars) & out_mask
    columns = {name: feats[name] for name in ML_FEATURES + ML_REL_FEATURES}
    return _to_long(grid.symbols, times, out_mask, columns, leading={
        "available_at": lambda si, gi: _utc(times[gi] + step),
        "warmup": lambda si, gi: warm[si, gi],
    })


def compute_ml_features_day(bars: pd.DataFrame, day: Any, cfg: Config, *,
                            bar_timeframe: Timeframe | str | None = None) -> pd.DataFrame:
    """The ML rows of UTC ``day`` (bars opening in [day, day + 1 d)) from base bars with open time in
    [day − ml_warmup(cfg), day + 1 d); equal, bit for bit, to the same rows of the continuous series."""
    d = _day_ns(day)
    return compute_ml_features(bars, cfg, start=pd.Timestamp(d, tz="UTC"), end=pd.Timestamp(d + NS_PER_DAY, tz="UTC"),
                               bar_timeframe=bar_timeframe)


def _history_short(present: np.ndarray, t0: int, step: int, use_times: np.ndarray, min_history_min: int,
                   history_bars: int, slots: np.ndarray | None = None) -> np.ndarray:
    """True where no bar lies in [min(Kind-X start, slot − history), slot − history]: the symbol's history since
    the start rule's start is shorter than its windows need (the documented warm-up).

    ``slots`` (symbols × m) are the rows' slots (default: every slot, one row per slot); ``use_times`` the T of
    each row (its Kind-X start is derived from it)."""
    n_sym, n_slots = present.shape
    csum = np.concatenate([np.zeros((n_sym, 1), dtype="int64"), np.cumsum(present, axis=1)], axis=1)
    if slots is None:
        slots = np.broadcast_to(np.arange(n_slots)[None, :], (n_sym, n_slots))
    start_slot = ((kind_x_start(use_times, min_history_min) - t0) // step)[None, :]
    hi = slots - history_bars
    lo = np.clip(np.minimum(start_slot, hi), 0, None)
    hi_c = np.clip(hi, -1, n_slots - 1)
    rows = np.arange(n_sym)[:, None]
    count = csum[rows, hi_c + 1] - csum[rows, np.minimum(lo, hi_c + 1)]
    return (count <= 0) | (hi < 0)


def _ml_kind_r(g: BarGrid, p: MlParams) -> dict[str, np.ndarray]:
    c, h, lo, v = g.close, g.high, g.low, g.volume
    present = g.present
    w = _Windows(p.coverage)
    w.source("n", present.astype("float64"))
    w.source("c0", np.where(present, c, 0.0))
    w.source("c0sq", np.where(present, c * c, 0.0))
    w.source("v0", np.where(present, v, 0.0))
    w.source("c", c)
    w.source("h", h)
    w.source("l", lo)
    prev = _shift(c, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r1 = c / prev - 1.0
    has_r = ~np.isnan(r1)
    w.source("nr", has_r.astype("float64"))
    r0 = np.where(has_r, r1, 0.0)
    w.source("r0", r0)
    w.source("r0sq", r0 * r0)
    sign = np.sign(np.where(has_r, c - prev, 0.0))
    w.source("obv_num", np.where(has_r, sign * np.where(present, v, 0.0), 0.0))
    w.source("obv_den", np.where(has_r, v, 0.0))
    f: dict[str, np.ndarray] = {}

    def ret(n: int) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            out = c / _shift(c, n) - 1.0
        out[~w.valid("n", n)] = np.nan
        return out

    for name, n in zip(("ret_75m", "ret_225m", "ret_15h", "ret_60h"), p.ret):
        f[name] = ret(n)
    f["roc_12"] = ret(p.roc)

    def mean(src: str, n: int) -> np.ndarray:
        out = _safe_div(w.sum(src, n), w.sum("n", n))
        out[~w.valid("n", n)] = np.nan
        return out

    f["volume_ratio_15h"] = _safe_div(v, mean("v0", p.volume_ratio))
    f["volume_sma_ratio"] = _safe_div(v, mean("v0", p.volume_sma))

    n = p.bb
    mid = mean("c0", n)
    with np.errstate(invalid="ignore"):
        var = w.sum("c0sq", n) / w.sum("n", n) - mid * mid
    np.maximum(var, 0.0, out=var)
    var[w.max("c", n) == w.min("c", n)] = 0.0  # a flat window has exactly zero width
    band = p.bb_std * np.sqrt(var)
    f["bb_mid"] = mid
    f["bb_high"] = mid + band
    f["bb_low"] = mid - band
    width = f["bb_high"] - f["bb_low"]
    f["bb_width"] = width / mid
    f["bb_position"] = _safe_div(c - f["bb_low"], width)

    for name, dist, n in (("sma_20", "dist_sma20", p.sma[0]), ("sma_50", "dist_sma50", p.sma[1])):
        f[name] = mean("c0", n)
        f[dist] = c / f[name] - 1.0

    n = p.support_resistance
    ok = w.valid("n", n)
    f["dist_support_5h"] = np.where(ok, c / w.min("c", n) - 1.0, np.nan)
    f["dist_resistance_5h"] = np.where(ok, c / w.max("c", n) - 1.0, np.nan)

    for name, n in zip(("volatility_15h", "volatility_60h"), p.volatility):
        k = w.sum("nr", n)
        s1 = w.sum("r0", n)
        with np.errstate(invalid="ignore", divide="ignore"):
            var = (w.sum("r0sq", n) - s1 * s1 / k) / (k - 1.0)
        np.maximum(var, 0.0, out=var)
        out = np.sqrt(var)
        out[~(_cover(k, n, p.coverage) & (k >= 2))] = np.nan
        f[name] = out

    n = p.obv
    k = w.sum("nr", n)
    out = _safe_div(w.sum("obv_num", n), w.sum("obv_den", n))
    out[~_cover(k, n, p.coverage)] = np.nan
    f["obv_15h"] = out

    n = p.stoch
    low_n = w.min("l", n)
    rng = w.max("h", n) - low_n
    out = _safe_div(c - low_n, rng) * 100.0
    out[~w.valid("n", n)] = np.nan
    f["stoch_k_14"] = out

    for name in f:
        f[name][~present] = np.nan
    return f


def _ml_kind_x(g: BarGrid, p: MlParams, out_mask: np.ndarray) -> dict[str, np.ndarray]:
    names = ("rsi_14", "rsi_30", "ema_12", "ema_26", "macd", "macd_signal")
    n_sym, n_slots = out_mask.shape
    out = {name: np.full((n_sym, n_slots), np.nan) for name in names}
    slots = np.flatnonzero(out_mask.any(axis=0))
    if slots.size == 0:
        return out
    use_t = g.t0 + (slots + 1) * g.step  # T of the row of bar t = its close
    start_slot = np.maximum((kind_x_start(use_t, p.min_history_min) - g.t0) // g.step, 0)
    groups: list[tuple[int, np.ndarray]] = []
    cols: list[np.ndarray] = []
    for s in np.unique(start_slot):
        js = slots[start_slot == s]
        groups.append((int(s), np.where(out_mask[:, js], js[None, :], -1)))
        cols.append(js)
    fast, slow, signal = p.macd

    def lane_fn(c: np.ndarray, rsi_a: np.ndarray, rsi_b: np.ndarray, ema_a: np.ndarray, ema_b: np.ndarray,
                line: np.ndarray, sig: np.ndarray) -> None:
        _rsi_into(c, p.rsi[0], rsi_a)
        _rsi_into(c, p.rsi[1], rsi_b)
        emas = {p.ema[0]: _ema_into(c, p.ema[0], 2.0 / (p.ema[0] + 1), ema_a),
                p.ema[1]: _ema_into(c, p.ema[1], 2.0 / (p.ema[1] + 1), ema_b)}
        for n in (fast, slow):
            if n not in emas:
                emas[n] = _ema_into(c, n, 2.0 / (n + 1), _scratch(f"lane_ema_{n}", c.shape))
        np.subtract(emas[fast], emas[slow], out=line)
        _ema_into(line, signal, 2.0 / (signal + 1), sig, first=max(fast, slow) - 1)

    for js, res in zip(cols, _run_lanes(g.close, g.present, groups, lane_fn, names)):
        for name, vals in res.items():
            out[name][:, js] = vals
    return out


# ---------------------------------------------------------------------------------------------------------------
# Scan features (SPEC §2.1) at the decision bar of each cycle point
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScanParams:
    """§2.1 windows in base bars, the cycle and staleness rules, from the config."""

    base: Timeframe
    dca: int
    swing: int
    channel: int
    rsi: int
    volume_ratio: int
    support: int
    btc_corr: int
    vol_24h: int
    min_btc_corr_pairs: int
    market_symbol: str
    cycle_min: int
    max_bar_lag_min: int
    min_history_min: int
    coverage: float

    @classmethod
    def from_config(cls, cfg: Config, base: Timeframe | None = None) -> "ScanParams":
        tf = base or cfg.engine.base_timeframe

        def bars(key: str) -> int:
            return window_bars(cfg, key, tf)

        return cls(
            base=tf, dca=bars("strategies.dca.lookback_min"), swing=bars("strategies.swing.lookback_min"),
            channel=bars("strategies.channel.lookback_min"), rsi=bars("scan.windows_min.rsi"),
            volume_ratio=bars("scan.windows_min.volume_ratio"), support=bars("scan.windows_min.support"),
            btc_corr=bars("scan.windows_min.btc_corr"), vol_24h=bars("scan.windows_min.vol_24h"),
            min_btc_corr_pairs=cfg.scan.min_btc_corr_pairs, market_symbol=cfg.universe.market_symbol,
            cycle_min=cfg.engine.cycle_min, max_bar_lag_min=cfg.engine.max_bar_lag_min,
            min_history_min=cfg.features.ml.min_history_min, coverage=cfg.engine.min_window_coverage,
        )

    @property
    def lookback(self) -> int:
        """Bars before the decision bar that a Kind-R scan feature reads."""
        return max(self.dca - 1, self.swing, self.channel - 1, self.volume_ratio, self.support - 1, self.btc_corr,
                   self.vol_24h - 1)

    @property
    def history_bars(self) -> int:
        return max(self.lookback, self.rsi)


def scan_warmup(cfg: Config, bar_timeframe: Timeframe | str | None = None) -> pd.Timedelta:
    """Warm-up span for a UTC day D of scan features: base bars with open time in [D − span, D + 1 day) give
    the rows of D's cycle points exactly as the continuous series does.

    span = max(whole days back to 00:00 of the day containing D − min_history_min, max_bar_lag + the longest
    window lookback) — 5 days with the defaults.
    """
    p = ScanParams.from_config(cfg, Timeframe(bar_timeframe) if bar_timeframe else None)
    x_days = -(_floor(-p.min_history_min * NS_PER_MIN, NS_PER_DAY) // NS_PER_DAY)
    b = p.base.minutes * NS_PER_MIN
    span_ns = max(x_days * NS_PER_DAY, p.max_bar_lag_min * NS_PER_MIN + p.history_bars * b)
    return pd.Timedelta(span_ns, unit="ns")


SCAN_COLUMNS: tuple[str, ...] = ("symbol", "timestamp", "bar_timestamp", "stale", "warmup") + SCAN_FEATURES


def cycle_points(start: Any, end: Any, cycle_min: int) -> pd.DatetimeIndex:
    """The cycle points T in [start, end): UTC multiples of ``cycle_min`` (SPEC §0.2)."""
    step = cycle_min * NS_PER_MIN
    a = _ceil(_to_ns(start, "start"), step)
    b = _to_ns(end, "end")
    return _utc(np.arange(a, b, step, dtype="int64")) if b > a else _utc(np.array([], dtype="int64"))


def decision_slots(present: np.ndarray, t0: int, step: int, points: np.ndarray, lag_min: int) -> tuple[np.ndarray,
                                                                                                       np.ndarray]:
    """Per symbol and cycle point T (ns): the slot of the decision bar (latest bar with open < T) and whether the
    symbol is stale (no bar, or decision bar open < T − lag). Slots are −1 where there is no decision bar."""
    n_sym, n_slots = present.shape
    last = np.where(present, np.arange(n_slots)[None, :], -1)
    np.maximum.accumulate(last, axis=1, out=last)
    k = (points - t0) // step  # slot of T; the decision bar is at most k − 1
    idx = np.clip(k - 1, -1, n_slots - 1)
    c = np.where(idx[None, :] >= 0, last[:, np.maximum(idx, 0)], -1)
    lag_slots = (lag_min * NS_PER_MIN) // step
    stale = (c < 0) | (c < (k - lag_slots)[None, :])
    return np.where(stale, -1, c), stale


def compute_scan_features(bars: pd.DataFrame, cfg: Config, *, start: Any, end: Any,
                          bar_timeframe: Timeframe | str | None = None,
                          symbols: Iterable[str] | None = None) -> pd.DataFrame:
    """The §2.1 scan features of ``symbols`` (default: those with bars in the span read) at every cycle point T in
    [start, end); pass the symbol list (e.g. the active universe) for a row set that does not depend on the input.

    At T only bars with open time < T are visible; the decision bar c is the latest one; the symbol is stale
    when there is none or c.open < T − ``engine.max_bar_lag_min`` (then every feature is null). Pass bars from
    ``start − scan_warmup(cfg)`` to get rows equal to the continuous series.

    Returns one row per (symbol, T), sorted by symbol then T: ``symbol``, ``timestamp`` (= T), ``bar_timestamp``
    (c.open, NaT when stale), ``stale``, ``warmup`` (less history than the windows need since the Kind-X start),
    then :data:`SCAN_FEATURES`. Null = NaN.
    """
    base = Timeframe(bar_timeframe) if bar_timeframe is not None else cfg.engine.base_timeframe
    p = ScanParams.from_config(cfg, base)
    start_ns, end_ns = _to_ns(start, "start"), _to_ns(end, "end")
    points = cycle_points(start, end, p.cycle_min).asi8
    _check_columns(bars)
    ts = _timestamps_ns(bars["timestamp"])
    sub = bars.loc[(ts >= start_ns - int(scan_warmup(cfg, base).value)) & (ts < end_ns)]
    present_syms = set(sub["symbol"].astype(str).unique().tolist())
    wanted = sorted(present_syms) if symbols is None else sorted(set(symbols))
    if not wanted or points.size == 0:
        return _empty(SCAN_COLUMNS, _KEY_DTYPES)
    # The market symbol's bars enter btc_corr even when its own rows are not asked for.
    symbols = sorted(set(wanted) | ({p.market_symbol} & present_syms))
    step = base.minutes * NS_PER_MIN
    t0 = _floor(int(_timestamps_ns(sub["timestamp"]).min()) if not sub.empty else start_ns, NS_PER_DAY)
    grid = bar_grid(sub, base.minutes, t0, _ceil(end_ns, step), symbols)
    dec, stale = decision_slots(grid.present, t0, step, points, p.max_bar_lag_min)
    feats = _scan_kind_r(grid, p)
    rows = np.arange(len(symbols))[:, None]
    safe = np.maximum(dec, 0)
    columns: dict[str, np.ndarray] = {}
    for name in SCAN_FEATURES:
        if name == "rsi_14m":
            continue
        vals = feats[name][rows, safe]
        vals[stale] = np.nan
        columns[name] = vals
    columns["rsi_14m"] = _scan_rsi(grid, p, points, dec)
    columns = {name: columns[name] for name in SCAN_FEATURES}
    warm = _history_short(grid.present, t0, step, points, p.min_history_min, p.history_bars, dec) & ~stale
    mask = np.broadcast_to(np.isin(symbols, wanted)[:, None], (len(symbols), points.size))
    bar_ts = np.where(stale, np.iinfo("int64").min, t0 + dec * step)
    return _to_long(symbols, points, mask, columns, leading={
        "bar_timestamp": lambda si, gi: pd.DatetimeIndex(bar_ts[si, gi].view("datetime64[ns]")).tz_localize("UTC"),
        "stale": lambda si, gi: stale[si, gi],
        "warmup": lambda si, gi: warm[si, gi],
    })


def compute_scan_features_day(bars: pd.DataFrame, day: Any, cfg: Config, *,
                              bar_timeframe: Timeframe | str | None = None,
                              symbols: Iterable[str] | None = None) -> pd.DataFrame:
    """Scan rows of the cycle points of UTC ``day`` from base bars with open time in [day − scan_warmup(cfg),
    day + 1 d); equal, bit for bit, to the same rows of the continuous series."""
    d = _day_ns(day)
    return compute_scan_features(bars, cfg, start=pd.Timestamp(d, tz="UTC"),
                                 end=pd.Timestamp(d + NS_PER_DAY, tz="UTC"), bar_timeframe=bar_timeframe,
                                 symbols=symbols)


def _scan_kind_r(g: BarGrid, p: ScanParams) -> dict[str, np.ndarray]:
    c, h, lo, v, o = g.close, g.high, g.low, g.volume, g.open
    present = g.present
    w = _Windows(p.coverage)
    w.source("n", present.astype("float64"))
    w.source("v0", np.where(present, v, 0.0))
    w.source("c", c)
    w.source("h", h)
    w.source("l", lo)
    w.source("o", o)
    f: dict[str, np.ndarray] = {}

    n = p.dca
    f["drop"] = np.where(w.valid("n", n), c / w.max("h", n) - 1.0, np.nan)

    n = p.swing  # reference window excluding c: the n bars before it
    ok = _shift(w.valid("n", n).astype("float64"), 1, 0.0) > 0
    f["breakout"] = np.where(ok, c / _shift(w.max("h", n), 1) - 1.0, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        ref_mean = _shift(w.sum("v0", n), 1) / _shift(w.sum("n", n), 1, 1.0)
        surge = np.where(ref_mean == 0, 0.0, v / ref_mean)  # SPEC: 0 if that mean is 0
    f["volume_surge"] = np.where(ok, surge, np.nan)

    n = p.channel
    ok = w.valid("n", n)
    hi_c, lo_c = w.max("c", n), w.min("c", n)
    f["channel_position"] = np.where(ok, _safe_div(c - lo_c, hi_c - lo_c), np.nan)
    f["channel_width"] = np.where(ok, (hi_c - lo_c) / lo_c, np.nan)

    n = p.volume_ratio
    ok = _shift(w.valid("n", n).astype("float64"), 1, 0.0) > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        ref_mean = _shift(w.sum("v0", n), 1) / _shift(w.sum("n", n), 1, 1.0)
    f["volume_ratio"] = np.where(ok, _safe_div(v, ref_mean), np.nan)

    n = p.support
    f["dist_support"] = np.where(w.valid("n", n), c / w.min("l", n) - 1.0, np.nan)

    f["btc_corr"] = _btc_corr(g, p)

    n = p.vol_24h
    f["vol_24h"] = np.where(w.valid("n", n), (w.max("h", n) - w.min("l", n)) / w.first("o", n), np.nan)
    return f


def _btc_corr(g: BarGrid, p: ScanParams) -> np.ndarray:
    n_sym, n_slots = g.close.shape
    out = np.full((n_sym, n_slots), np.nan)
    m = g.row(p.market_symbol)
    if m is None:
        return out  # the market symbol's bars are not in the input: no correlation can be computed
    with np.errstate(invalid="ignore", divide="ignore"):
        r = g.close / _shift(g.close, 1) - 1.0
    rb = r[m][None, :]
    pair = ~np.isnan(r) & ~np.isnan(rb)
    x = np.where(pair, r, 0.0)
    y = np.where(pair, rb, 0.0)
    n = p.btc_corr
    k = rolling(pair.astype("float64"), n, _op_add)
    sx, sy = rolling(x, n, _op_add), rolling(y, n, _op_add)
    sxx, syy, sxy = rolling(x * x, n, _op_add), rolling(y * y, n, _op_add), rolling(x * y, n, _op_add)
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = k * sxy - sx * sy
        den = np.sqrt((k * sxx - sx * sx) * (k * syy - sy * sy))
        corr = cov / den
    corr[~(den > 0) | (k < p.min_btc_corr_pairs)] = np.nan
    np.clip(corr, -1.0, 1.0, out=corr)
    corr[m] = np.where(g.present[m], 1.0, np.nan)  # SPEC §2.1: the market symbol's own correlation is 1
    return corr


def _scan_rsi(g: BarGrid, p: ScanParams, points: np.ndarray, dec: np.ndarray) -> np.ndarray:
    out = np.full(dec.shape, np.nan)
    starts = np.maximum((kind_x_start(points, p.min_history_min) - g.t0) // g.step, 0)
    groups, cols = [], []
    for s in np.unique(starts):
        ks = np.flatnonzero(starts == s)
        groups.append((int(s), dec[:, ks]))
        cols.append(ks)
    res = _run_lanes(g.close, g.present, groups, lambda c, o: _rsi_into(c, p.rsi, o), ("rsi",))
    for ks, r in zip(cols, res):
        if r:
            out[:, ks] = r["rsi"]
    return out


# ---------------------------------------------------------------------------------------------------------------
# Daily BTC context (SPEC §2.3, §8.1 trend)
# ---------------------------------------------------------------------------------------------------------------

_DAYS_PER_YEAR = 365  # the √365 annualisation of the daily-return std is part of the definition (SPEC §2.3)


@dataclass(frozen=True)
class DailyParams:
    sma: tuple[int, int]
    trend: int
    vol: tuple[int, int]
    range: int
    rel: tuple[int, int]
    corr: int
    corr_min_pairs: int
    market_symbol: str
    coverage: float

    @classmethod
    def from_config(cls, cfg: Config) -> "DailyParams":
        d = cfg.features.daily

        def pair(key: str) -> tuple[int, int]:
            values = config_value(cfg, _DAILY + key)
            if len(values) != 2:
                raise ValueError(f"`{_DAILY}{key}`: expected 2 spans, got {len(values)}")
            return tuple(window_bars(cfg, f"{_DAILY}{key}[{i}]", Timeframe.D1) for i in range(2))  # type: ignore

        return cls(sma=pair("sma_d"), trend=window_bars(cfg, _DAILY + "trend_d", Timeframe.D1), vol=pair("vol_d"),
                   range=window_bars(cfg, _DAILY + "range_d", Timeframe.D1), rel=pair("rel_d"),
                   corr=window_bars(cfg, _DAILY + "corr_d", Timeframe.D1), corr_min_pairs=d.corr_min_pairs,
                   market_symbol=cfg.universe.market_symbol, coverage=cfg.engine.min_window_coverage)

    @property
    def btc_days(self) -> int:
        """Days before D the BTC features of D read (returns also read the day before their window)."""
        return max(*self.sma, self.trend + 1, self.vol[0] + 1, self.vol[1] + 1, self.range, self.rel[0] + 1,
                   self.rel[1] + 1, self.corr + 1)

    @property
    def symbol_days(self) -> int:
        return max(self.rel[0] + 1, self.rel[1] + 1, self.corr + 1)


def daily_warmup(cfg: Config) -> pd.Timedelta:
    """Days before D whose bars the daily context of D reads: bars of [D − span, D) (200 days by default)."""
    return pd.Timedelta(days=DailyParams.from_config(cfg).btc_days)


DAILY_COLUMNS: tuple[str, ...] = ("symbol", "timestamp", "warmup") + DAILY_FEATURES[:-2] + (
    "btc_trend", "trend_bull", "trend_bear")


def compute_daily_context(bars: pd.DataFrame, cfg: Config, *, start: Any = None, end: Any = None,
                          bar_timeframe: Timeframe | str | None = None,
                          symbols: Iterable[str] | None = None) -> pd.DataFrame:
    """The §2.3 daily context of ``symbols`` (default: those with bars in the span read) for each UTC day D in
    [start, end), from completed UTC days before D (the market symbol is ``universe.market_symbol``).

    ``bars`` are ``bar_timeframe`` bars (default ``engine.base_timeframe``; pass ``"1d"`` for stored daily bars);
    finer bars are aggregated per UTC day (only days closed by ``end``). Returns one row per (symbol, D) sorted by
    symbol then D: ``symbol``, ``timestamp`` (D 00:00 UTC), ``warmup`` (the symbol or BTC has no bar as far back
    as the windows reach), the features of :data:`DAILY_FEATURES` except the one-hots, ``btc_trend``
    (BULL/BEAR/NEUTRAL/UNKNOWN; UNKNOWN unless BTC has a bar sma_d[1] days back and both SMAs are valid),
    ``trend_bull``, ``trend_bear`` (int8 one-hot).
    """
    p = DailyParams.from_config(cfg)
    tf = Timeframe(bar_timeframe) if bar_timeframe is not None else cfg.engine.base_timeframe
    _check_columns(bars)
    if bars.empty:
        return _empty(DAILY_COLUMNS, _KEY_DTYPES)
    ts = _timestamps_ns(bars["timestamp"])
    end_ns = _to_ns(end, "end") if end is not None else int(ts.max()) + tf.minutes * NS_PER_MIN
    start_ns = _ceil(_to_ns(start, "start"), NS_PER_DAY) if start is not None else _floor(int(ts.min()),
                                                                                           NS_PER_DAY) + NS_PER_DAY
    sub = bars.loc[(ts >= start_ns - p.btc_days * NS_PER_DAY) & (ts < end_ns)]
    if sub.empty and symbols is None:
        return _empty(DAILY_COLUMNS, _KEY_DTYPES)
    if symbols is None:
        symbols = sorted(sub["symbol"].astype(str).unique().tolist())
    symbols = sorted(set(symbols))
    if tf is not Timeframe.D1:
        sub = _aggregate(sub, Timeframe.D1, end_ns)
    t0 = start_ns
    if not sub.empty:
        t0 = min(t0, _floor(int(_timestamps_ns(sub["timestamp"]).min()), NS_PER_DAY))
    grid = bar_grid(sub, MINUTES_PER_DAY, t0, _ceil(end_ns, NS_PER_DAY), symbols)
    feats, trend = _daily_features(grid, p)
    warm = feats.pop("_warmup")
    days = grid.slot_times()
    mask = np.broadcast_to(((days >= start_ns) & (days < end_ns))[None, :], grid.close.shape)
    columns = {name: feats[name] for name in DAILY_FEATURES if name in feats}
    columns["btc_trend"] = np.broadcast_to(trend[None, :], grid.close.shape)
    columns["trend_bull"] = np.broadcast_to((trend == BtcTrend.BULL.value).astype("int8")[None, :], grid.close.shape)
    columns["trend_bear"] = np.broadcast_to((trend == BtcTrend.BEAR.value).astype("int8")[None, :], grid.close.shape)
    return _to_long(symbols, days, mask, columns, leading={"warmup": lambda si, gi: warm[si, gi]})


def compute_daily_context_day(bars: pd.DataFrame, day: Any, cfg: Config, *,
                              bar_timeframe: Timeframe | str | None = None,
                              symbols: Iterable[str] | None = None) -> pd.DataFrame:
    """The daily-context rows of UTC ``day`` from bars with open time in [day − daily_warmup(cfg), day)."""
    d = _day_ns(day)
    return compute_daily_context(bars, cfg, start=pd.Timestamp(d, tz="UTC"),
                                 end=pd.Timestamp(d + NS_PER_DAY, tz="UTC"), bar_timeframe=bar_timeframe,
                                 symbols=symbols)


def _daily_features(g: BarGrid, p: DailyParams) -> tuple[dict[str, np.ndarray], np.ndarray]:
    n_sym, n_days = g.close.shape
    present = g.present
    m = g.row(p.market_symbol)
    c = g.close
    nan_row = np.full((1, n_days), np.nan)
    cb = c[m][None, :] if m is not None else nan_row
    hb = g.high[m][None, :] if m is not None else nan_row
    lb = g.low[m][None, :] if m is not None else nan_row
    pb = ~np.isnan(cb)
    cov = p.coverage

    def sma(x: np.ndarray, ok: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        cnt = rolling(ok.astype("float64"), n, _op_add)
        s = rolling(np.where(ok, x, 0.0), n, _op_add)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = s / cnt
        out[~_cover(cnt, n, cov)] = np.nan
        return out, cnt

    def ret(x: np.ndarray, ok: np.ndarray, n: int) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            out = x / _shift(x, n) - 1.0
        out[~_cover(rolling(ok.astype("float64"), n, _op_add), n, cov)] = np.nan
        return out

    def std_returns(x: np.ndarray, n: int) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            r = x / _shift(x, 1) - 1.0
        ok = ~np.isnan(r)
        r0 = np.where(ok, r, 0.0)
        k = rolling(ok.astype("float64"), n, _op_add)
        s1 = rolling(r0, n, _op_add)
        with np.errstate(invalid="ignore", divide="ignore"):
            var = (rolling(r0 * r0, n, _op_add) - s1 * s1 / k) / (k - 1.0)
        np.maximum(var, 0.0, out=var)
        out = np.sqrt(var) * math.sqrt(_DAYS_PER_YEAR)
        out[~(_cover(k, n, cov) & (k >= 2))] = np.nan
        return out

    # Every value below is as of the end of day d; the row of day D takes day D − 1 (completed days before D).
    f: dict[str, np.ndarray] = {}
    sma_fast, _ = sma(cb, pb, p.sma[0])
    sma_slow, _ = sma(cb, pb, p.sma[1])
    f["btc_dist_sma50"] = cb / sma_fast - 1.0
    f["btc_dist_sma200"] = cb / sma_slow - 1.0
    f["btc_trend_30d"] = ret(cb, pb, p.trend)
    f["btc_vol_7d"] = std_returns(cb, p.vol[0])
    f["btc_vol_30d"] = std_returns(cb, p.vol[1])
    n = p.range
    min_low = rolling(lb, n, _op_min)
    rng = (rolling(hb, n, _op_max) - min_low) / min_low
    rng[~_cover(rolling(pb.astype("float64"), n, _op_add), n, cov)] = np.nan
    f["btc_range_7d"] = rng
    for name, n in zip(("sym_vs_btc_7d", "sym_vs_btc_30d"), p.rel):
        f[name] = ret(c, present, n) - ret(cb, pb, n)
    f["sym_btc_corr_30d"] = _daily_corr(c, cb, p.corr, p.corr_min_pairs)

    # "UNKNOWN under sma_d[1] days": the slow window's oldest day must be present (history reaches that far).
    reach = _shift(pb.astype("float64"), p.sma[1] - 1, 0.0)[0] > 0
    known = ~np.isnan(sma_fast[0]) & ~np.isnan(sma_slow[0]) & pb[0] & reach
    bull = known & (sma_fast[0] > sma_slow[0]) & (cb[0] > sma_fast[0])
    bear = known & (sma_fast[0] < sma_slow[0]) & (cb[0] < sma_fast[0])
    trend = np.where(bull, BtcTrend.BULL.value, np.where(bear, BtcTrend.BEAR.value, BtcTrend.NEUTRAL.value))
    trend = np.where(known, trend, BtcTrend.UNKNOWN.value).astype(object)

    out = {name: np.broadcast_to(_shift(arr, 1), (n_sym, n_days)).copy() for name, arr in f.items()}
    trend_d = np.empty(n_days, dtype=object)
    trend_d[0] = BtcTrend.UNKNOWN.value
    trend_d[1:] = trend[:-1]
    sym_back = _shift(present.astype("float64"), p.symbol_days, 0.0) > 0
    btc_back = _shift(pb.astype("float64"), p.btc_days, 0.0) > 0
    out["_warmup"] = ~(sym_back & btc_back)
    return out, trend_d


def _daily_corr(c: np.ndarray, cb: np.ndarray, n: int, min_pairs: int) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        r = c / _shift(c, 1) - 1.0
        rb = cb / _shift(cb, 1) - 1.0
    pair = ~np.isnan(r) & ~np.isnan(rb)
    x = np.where(pair, r, 0.0)
    y = np.where(pair, rb, 0.0)
    k = rolling(pair.astype("float64"), n, _op_add)
    sx, sy = rolling(x, n, _op_add), rolling(y, n, _op_add)
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = k * rolling(x * y, n, _op_add) - sx * sy
        den = np.sqrt((k * rolling(x * x, n, _op_add) - sx * sx) * (k * rolling(y * y, n, _op_add) - sy * sy))
        corr = cov / den
    corr[~(den > 0) | (k < min_pairs)] = np.nan
    return np.clip(corr, -1.0, 1.0)


# ---------------------------------------------------------------------------------------------------------------
# Static context (SPEC §2.3): tier one-hot, hour and weekday of T in UTC
# ---------------------------------------------------------------------------------------------------------------


def static_context(symbols: pd.Series, timestamps: pd.Series, tier_of: Callable[[str], Tier]) -> pd.DataFrame:
    """``tier_*`` one-hot (int8) from ``tier_of`` (``Universe.tier``; an unknown symbol raises), ``hour_utc`` and
    ``dow_utc`` (0 = Monday) of each timestamp (UTC), aligned with the inputs' index."""
    tiers = symbols.astype(str).map(lambda s: tier_of(s).value)
    out = pd.DataFrame(index=symbols.index)
    for t in Tier:
        out[f"tier_{t.value}"] = (tiers == t.value).astype("int8")
    ts = pd.DatetimeIndex(timestamps)
    if ts.tz is None:
        raise ValueError("timestamps must be timezone-aware UTC")
    ts = ts.tz_convert("UTC")
    out["hour_utc"] = np.asarray(ts.hour, dtype="int8")
    out["dow_utc"] = np.asarray(ts.dayofweek, dtype="int8")
    return out
