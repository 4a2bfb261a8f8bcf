"""The setup rules: parameters and warm-up, the detectors (SPEC §3.2) and the readiness scores and statuses
(SPEC §3.6)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..common import NS_PER_MIN
from ..config import Config, ReadinessConfig, Strategy, Tier, Timeframe
from ..features import scan_warmup, window_bars
from .reasons import STATUSES


@dataclass(frozen=True)
class SetupParams:
    """The §3.2/§3.3/§3.6 parameters of one effective config."""

    base: Timeframe
    cycle_min: int
    max_bar_lag_min: int
    coverage: float
    dca_bars: int
    swing_bars: int
    channel_bars: int
    baseline_bars: int
    drop_threshold: Mapping[Tier, float]
    volume_filter_enabled: bool
    volume_filter_min_ratio: Mapping[Tier, float]
    breakout_threshold: float
    min_volume_surge: float
    buy_zone: float
    top_zone: float
    readiness: ReadinessConfig
    near_miss_ratio: float
    config_version: int

    @classmethod
    def from_config(cls, cfg: Config) -> "SetupParams":
        base = cfg.engine.base_timeframe
        st = cfg.strategies

        def bars(key: str) -> int:
            return window_bars(cfg, key, base)

        return cls(
            base=base, cycle_min=cfg.engine.cycle_min, max_bar_lag_min=cfg.engine.max_bar_lag_min,
            coverage=cfg.engine.min_window_coverage, dca_bars=bars("strategies.dca.lookback_min"),
            swing_bars=bars("strategies.swing.lookback_min"), channel_bars=bars("strategies.channel.lookback_min"),
            baseline_bars=bars("strategies.dca.volume_filter.baseline_min"),
            drop_threshold={t: st.dca.drop_threshold.of(t) for t in Tier},
            volume_filter_enabled=st.dca.volume_filter.enabled,
            volume_filter_min_ratio={t: st.dca.volume_filter.min_ratio.of(t) for t in Tier},
            breakout_threshold=st.swing.breakout_threshold, min_volume_surge=st.swing.min_volume_surge,
            buy_zone=st.channel.buy_zone, top_zone=st.channel.top_zone, readiness=cfg.readiness,
            near_miss_ratio=cfg.ml.near_miss_ratio, config_version=cfg.config_version,
        )

    @property
    def reach_bars(self) -> int:
        """Bars up to and including the decision bar that a setup window (or the volume baseline) reads."""
        return max(self.dca_bars, self.swing_bars + 1, self.channel_bars, self.baseline_bars)


def setups_warmup(cfg: Config) -> pd.Timedelta:
    """Warm-up span for the scan rows of [start, end): pass base bars with open time in [start − span, end).

    The longest of :func:`~.features.scan_warmup` (the scan features, 5 days with the defaults: the Kind-X RSI start)
    and ``engine.max_bar_lag_min`` plus the DCA volume baseline (``strategies.dca.volume_filter.baseline_min``).
    The ``regime_frame`` comes from :func:`~.regime.build_market_regime` with its own (shorter) warm-up.
    """
    p = SetupParams.from_config(cfg)
    own = (p.max_bar_lag_min + p.reach_bars * p.base.minutes) * NS_PER_MIN
    return pd.Timedelta(max(int(scan_warmup(cfg).value), own), unit="ns")


# ---------------------------------------------------------------------------------------------------------------
# Detectors (SPEC §3.2): vectorised over arrays of rows; NaN inputs never fire
# ---------------------------------------------------------------------------------------------------------------


def dca_setup(drop: np.ndarray, threshold: np.ndarray, volume_filter_ratio: np.ndarray | None = None,
              min_ratio: np.ndarray | None = None) -> np.ndarray:
    """DCA fires when ``drop`` ≤ the tier's ``threshold`` (fractions, equal fires) and, when the volume filter is
    on (pass ``volume_filter_ratio`` and ``min_ratio``), the ratio ≥ the tier's ``min_ratio`` (equal fires)."""
    fire = np.asarray(drop, dtype="float64") <= threshold
    if volume_filter_ratio is not None:
        fire &= np.asarray(volume_filter_ratio, dtype="float64") >= min_ratio
    return fire


def swing_setup(breakout: np.ndarray, volume_surge: np.ndarray, threshold: float, min_surge: float) -> np.ndarray:
    """SWING fires when ``breakout`` ≥ ``threshold`` (fraction, equal fires) and ``volume_surge`` > ``min_surge``
    (ratio, strict)."""
    breakout, volume_surge = np.asarray(breakout, dtype="float64"), np.asarray(volume_surge, dtype="float64")
    return (breakout >= threshold) & (volume_surge > min_surge)


def channel_setup(channel_position: np.ndarray, buy_zone: float, top_zone: float) -> tuple[np.ndarray, np.ndarray]:
    """(long setup, top of range) of CHANNEL: position ≥ ``top_zone`` is top of range and never a long; otherwise
    position ≤ ``buy_zone`` is a long setup (equal fires). A flat window (null position) is neither."""
    cp = np.asarray(channel_position, dtype="float64")
    top = cp >= top_zone
    return (cp <= buy_zone) & ~top, top


# ---------------------------------------------------------------------------------------------------------------
# Readiness (SPEC §3.6): 0–100; null where the inputs are null
# ---------------------------------------------------------------------------------------------------------------


def dca_readiness(drop: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    """d = 100·|drop − t| (pp); drop ≤ t → min(100, 80 + 4d); else max(0, 80 − 20d)."""
    drop = np.asarray(drop, dtype="float64")
    d = 100.0 * np.abs(drop - threshold)
    with np.errstate(invalid="ignore"):
        out = np.where(drop <= threshold, np.minimum(100.0, 80.0 + 4.0 * d), np.maximum(0.0, 80.0 - 20.0 * d))
    return np.where(np.isnan(drop), np.nan, out)


def swing_readiness(breakout: np.ndarray, volume_surge: np.ndarray, breakout_threshold: float, min_surge: float,
                    breakout_weight: float, volume_weight: float) -> np.ndarray:
    """x = breakout / breakout_threshold; b = 0 (x < −2), 35(x + 2) (−2 ≤ x < 0), 70 + 20x (0 ≤ x < 1),
    min(100, 90 + 10(x − 1)) (x ≥ 1); v = min(100, 100·surge / min_surge); readiness = w_b·b + w_v·v."""
    x = np.asarray(breakout, dtype="float64") / breakout_threshold
    b = np.select([x < -2.0, x < 0.0, x < 1.0], [0.0, 35.0 * (x + 2.0), 70.0 + 20.0 * x],
                  np.minimum(100.0, 90.0 + 10.0 * (x - 1.0)))
    v = np.minimum(100.0, 100.0 * np.asarray(volume_surge, dtype="float64") / min_surge)
    out = breakout_weight * b + volume_weight * v
    return np.where(np.isnan(x) | np.isnan(v), np.nan, out)


def channel_readiness(channel_position: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """p = 100·position (50 where ``flat``); p ≤ 35 → 100 − 20p/35; else max(0, 80 − 1.6(p − 35))."""
    p = np.where(flat, 50.0, 100.0 * np.asarray(channel_position, dtype="float64"))
    out = np.where(p <= 35.0, 100.0 - 20.0 * p / 35.0, np.maximum(0.0, 80.0 - 1.6 * (p - 35.0)))
    return np.where(np.isnan(p), np.nan, out)


def readiness_cutoffs(strategy: Strategy, readiness: ReadinessConfig) -> tuple[float, float]:
    """(top, middle) status cut-offs of ``strategy`` on 0–100 (``readiness.<s>.*``)."""
    s = Strategy(strategy)
    if s is Strategy.SWING:
        return readiness.swing.ready, readiness.swing.close
    if s is Strategy.DCA:
        return readiness.dca.ready, readiness.dca.close
    return readiness.channel.buy_zone_score, readiness.channel.neutral


def readiness_status(strategy: Strategy, score: np.ndarray, setup: np.ndarray, readiness: ReadinessConfig
                     ) -> np.ndarray:
    """Status labels (object array): ≥ top cut-off → READY / BUY_ZONE, ≥ middle → CLOSE / NEUTRAL, else WAITING /
    SELL_ZONE; a firing ``setup`` is READY / BUY_ZONE whatever its score; null where the score is null."""
    top, mid = readiness_cutoffs(strategy, readiness)
    labels = [s.value for s in STATUSES[Strategy(strategy)]]
    score = np.asarray(score, dtype="float64")
    out = np.select([score >= top, score >= mid, ~np.isnan(score)], labels, None).astype(object)
    out[np.asarray(setup, dtype=bool)] = labels[0]
    return out
