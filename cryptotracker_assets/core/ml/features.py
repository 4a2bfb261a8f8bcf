"""The model inputs (SPEC §2, §11.1, I-18, I-21): the one feature vector training and inference both build.

:data:`MODEL_FEATURES` fixes the order of the model inputs, derived from the feature registry: the §2.1 scan
features, the §2.2 model inputs (``*_rel`` instead of the USD features), the §2.3 market features (BTC returns and
vol24h, regime one-hots), the daily context and the static context (tier one-hot, hour, weekday).

:func:`model_feature_frame` joins the stored feature frames to keys (symbol, setup time T) by time, never looking
ahead: the scan row of (symbol, T), the latest ML row with ``available_at`` ≤ T, the ``market_regime`` row at T and
the daily row of T's UTC day (computed from the completed days before it). A missing input leaves its features NaN
(never a default). Times are tz-aware UTC; fractions, not percent.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from ..common import NS_PER_DAY, NS_PER_MIN
from ..config import Config, Tier
from ..features.daily import static_context
from ..features.registry import (
    DAILY_FEATURES,
    MARKET_FEATURE_SPECS,
    ML_MODEL_INPUTS,
    SCAN_FEATURES,
    STATIC_FEATURE_SPECS,
    feature_spec,
)
from ..features.registry import feature_set_version as registry_feature_set_version

MARKET_FEATURES: tuple[str, ...] = tuple(s.name for s in MARKET_FEATURE_SPECS)
STATIC_FEATURES: tuple[str, ...] = tuple(s.name for s in STATIC_FEATURE_SPECS)
MODEL_FEATURES: tuple[str, ...] = SCAN_FEATURES + ML_MODEL_INPUTS + MARKET_FEATURES + DAILY_FEATURES + STATIC_FEATURES
_usd = [n for n in MODEL_FEATURES if not feature_spec(n).model_input]
if _usd or len(set(MODEL_FEATURES)) != len(MODEL_FEATURES):  # pragma: no cover - a registry error (I-18)
    raise RuntimeError(f"model inputs must be unique and never USD features: {_usd}")

KEY_COLUMNS: tuple[str, ...] = ("symbol", "setup_time")
FEATURE_FRAME_COLUMNS: tuple[str, ...] = KEY_COLUMNS + MODEL_FEATURES + ("max_feature_time",)


def feature_set_version(cfg: Config) -> str:
    """The registry's feature-set version of exactly :data:`MODEL_FEATURES` (names, definitions, windows)."""
    return registry_feature_set_version(cfg, MODEL_FEATURES)


def _ns(col: pd.Series, what: str) -> np.ndarray:
    """int64 ns of a tz-aware UTC column (NaT → int64 min); a naive column raises naming ``what``."""
    if not isinstance(col.dtype, pd.DatetimeTZDtype):
        raise ValueError(f"{what} must be tz-aware UTC, got {col.dtype}")
    return pd.DatetimeIndex(col).tz_convert("UTC").as_unit("ns").asi8


def _require(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lack columns {missing}")


_NAT = np.iinfo("int64").min


def model_feature_frame(keys: pd.DataFrame, scan_rows: pd.DataFrame, ml_rows: pd.DataFrame,
                        daily_rows: pd.DataFrame, regime_rows: pd.DataFrame, tier_of: Callable[[str], Tier], *,
                        cfg: Config) -> pd.DataFrame:
    """The model inputs of each key, known at its setup time T (no look-ahead, I-21).

    ``keys``: columns ``symbol`` and ``setup_time`` (T, a tz-aware UTC cycle point). Inputs: ``scan_rows`` (scan
    history: ``symbol``, ``timestamp`` = T, ``bar_timestamp`` and the §2.1 features; the strategies' rows of one
    symbol × T carry the same features), ``ml_rows`` (:func:`~..features.compute_ml_features`:
    ``symbol``, ``available_at`` and the §2.2 model inputs), ``daily_rows``
    (:func:`~..features.compute_daily_context`: ``symbol``, ``timestamp`` = the UTC day D and the daily features
    computed from completed days before D), ``regime_rows`` (``market_regime``: ``timestamp`` = T, ``btc_ret_1h``,
    ``btc_ret_4h``, ``btc_ret_24h``, ``btc_vol_24h`` and the regime one-hots), ``tier_of`` (``Universe.tier``; an
    unknown symbol raises).

    Joins: the scan row of (symbol, T); the ML row with the latest ``available_at`` ≤ T; the market row at T; the
    daily row of T's UTC day. Missing rows or values stay NaN (I-18).

    Returns one row per key in the keys' order (index reset): ``symbol``, ``setup_time``, :data:`MODEL_FEATURES`
    (float64) and ``max_feature_time``: the open time of the latest base bar (``engine.base_timeframe``) any value
    of the row may read — the decision bar c for the scan features, the base bar ending at ``available_at`` for the
    ML row, the base bar ending at T for the market row (it reads bars opening before T), the last base bar of the
    day before D for the daily row (NaT when no input row matched). It is always < T ≤ the entry bar's open E, as
    the leakage gate (§11.3) requires; T itself only sets the static hour and weekday.
    """
    _require(keys, KEY_COLUMNS, "keys")
    _require(scan_rows, ("symbol", "timestamp", "bar_timestamp") + SCAN_FEATURES, "scan rows")
    _require(ml_rows, ("symbol", "available_at") + ML_MODEL_INPUTS, "ML rows")
    _require(daily_rows, ("symbol", "timestamp") + DAILY_FEATURES, "daily rows")
    _require(regime_rows, ("timestamp",) + MARKET_FEATURES, "market_regime rows")
    base_ns = cfg.engine.base_timeframe.minutes * NS_PER_MIN
    n = len(keys)
    sym = keys["symbol"].astype(str).to_numpy(dtype=object)
    t_ns = _ns(keys["setup_time"], "keys.setup_time")
    if (t_ns == _NAT).any():
        raise ValueError("keys.setup_time has missing values")
    d_ns = t_ns - t_ns % NS_PER_DAY
    left = pd.DataFrame({"symbol": sym, "t": t_ns, "d": d_ns})
    out: dict[str, np.ndarray] = {}
    latest = np.full(n, _NAT, dtype="int64")

    def bump(idx: np.ndarray, times: np.ndarray) -> None:
        """latest = max(latest, times) where a row matched (idx ≥ 0) and its time is known."""
        ok = idx >= 0
        ok[ok] = times[ok] != _NAT
        latest[ok] = np.maximum(latest[ok], times[ok])

    # Scan features: the row of (symbol, T).
    s_sym = scan_rows["symbol"].astype(str).to_numpy(dtype=object)
    s_t = _ns(scan_rows["timestamp"], "scan_rows.timestamp")
    idx = _match(left, pd.DataFrame({"symbol": s_sym, "t": s_t}), ["symbol", "t"])
    _gather(out, scan_rows, SCAN_FEATURES, idx)
    bar = _ns(scan_rows["bar_timestamp"], "scan_rows.bar_timestamp")  # NaT where the symbol was stale
    bump(idx, np.where(idx >= 0, bar[np.maximum(idx, 0)] if len(bar) else _NAT, _NAT))

    # ML inputs: the latest row with available_at ≤ T (merge_asof per symbol, backward, exact matches allowed).
    avail = _ns(ml_rows["available_at"], "ml_rows.available_at")
    right = pd.DataFrame({"symbol": ml_rows["symbol"].astype(str).to_numpy(dtype=object), "t": avail,
                          "ridx": np.arange(len(ml_rows), dtype="int64")})
    right = right[right["t"] != _NAT].sort_values("t", kind="mergesort")
    lsorted = left[["symbol", "t"]].assign(pos=np.arange(n)).sort_values("t", kind="mergesort")
    m = pd.merge_asof(lsorted, right, on="t", by="symbol", direction="backward", allow_exact_matches=True)
    idx = np.full(n, -1, dtype="int64")
    hit = m["ridx"].notna().to_numpy()
    idx[m["pos"].to_numpy()[hit]] = m["ridx"].to_numpy()[hit].astype("int64")
    _gather(out, ml_rows, ML_MODEL_INPUTS, idx)
    bump(idx, np.where(idx >= 0, avail[np.maximum(idx, 0)] - base_ns if len(avail) else _NAT, _NAT))

    # Market features: the market_regime row at T.
    r_t = _ns(regime_rows["timestamp"], "regime_rows.timestamp")
    if pd.Index(r_t).duplicated().any():
        raise ValueError("market_regime rows must be unique per timestamp")
    idx = _match(left, pd.DataFrame({"t": r_t}), ["t"])
    _gather(out, regime_rows, MARKET_FEATURES, idx)
    bump(idx, t_ns - base_ns)

    # Daily context: the row of T's UTC day D (computed from the completed days before D).
    idx = _match(left, pd.DataFrame({"symbol": daily_rows["symbol"].astype(str).to_numpy(dtype=object),
                                     "d": _ns(daily_rows["timestamp"], "daily_rows.timestamp")}), ["symbol", "d"])
    _gather(out, daily_rows, DAILY_FEATURES, idx)
    bump(idx, d_ns - base_ns)

    # Static context: tier one-hot, hour and weekday of T.
    times = pd.DatetimeIndex(t_ns.view("datetime64[ns]")).tz_localize("UTC")
    static = static_context(pd.Series(sym), pd.Series(times), tier_of)
    for c in STATIC_FEATURES:
        out[c] = static[c].to_numpy(dtype="float64")

    frame = pd.DataFrame({"symbol": sym, "setup_time": times, **{c: out[c] for c in MODEL_FEATURES}})
    mft = latest.view("datetime64[ns]").copy()
    mft[latest == _NAT] = np.datetime64("NaT")
    frame["max_feature_time"] = pd.DatetimeIndex(mft).tz_localize("UTC")
    return frame


def _match(left: pd.DataFrame, right: pd.DataFrame, on: list[str]) -> np.ndarray:
    """For each left row, the position of the right row with equal ``on`` values (the last one if several), or −1."""
    r = right.assign(ridx=np.arange(len(right), dtype="int64")).drop_duplicates(on, keep="last")
    m = left[on].merge(r, on=on, how="left", sort=False)
    return m["ridx"].fillna(-1).to_numpy().astype("int64")


def _gather(out: dict[str, np.ndarray], frame: pd.DataFrame, columns: tuple[str, ...], idx: np.ndarray) -> None:
    """out[c] = frame[c] at rows ``idx`` as float64, NaN where idx < 0 (no matching row: never a default)."""
    miss = idx < 0
    safe = np.where(miss, 0, idx)
    for c in columns:
        v = frame[c].to_numpy(dtype="float64", na_value=np.nan)
        col = v[safe] if len(v) else np.full(len(idx), np.nan)
        col[miss] = np.nan
        out[c] = col
