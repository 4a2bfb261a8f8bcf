"""The feature registry (SPEC §2): every feature with its group, kind, unit, timeframe and config windows, and the
feature-set version hashed from them."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ..config import Config, Tier, Timeframe


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


ML_WINDOWS_PREFIX = "features.ml.windows_min."  # the config keys of the §2.2 windows
_ML_TF = "features.ml.timeframe"
_BASE_TF = "engine.base_timeframe"
DAILY_WINDOWS_PREFIX = "features.daily."  # the config keys of the §2.3 daily windows (in days)


def _ml(name: str, window: str | tuple[str, ...], kind: Kind, unit: Unit, definition: str, *params: str) -> FeatureSpec:
    windows = (window,) if isinstance(window, str) else window
    return FeatureSpec(name, FeatureGroup.ML, kind, unit, _ML_TF, tuple(ML_WINDOWS_PREFIX + w for w in windows),
                       definition, params)


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
    return FeatureSpec(name, FeatureGroup.DAILY, Kind.R, unit, Timeframe.D1.value,
                       tuple(DAILY_WINDOWS_PREFIX + w for w in windows), definition, params)


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


def timeframe_of(cfg: Config, spec_timeframe: str | None) -> Timeframe | None:
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
    if key.startswith(DAILY_WINDOWS_PREFIX):
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
        tf = timeframe_of(cfg, s.timeframe)
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
