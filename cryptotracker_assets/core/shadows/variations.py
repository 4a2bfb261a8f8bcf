"""The shadow variations of SPEC §10.1 as data: each one's overrides of production, its setup re-evaluation from a
scan row's stored features (§10.2), its confidence threshold, its exit rule and its size.

Names follow SPEC §0.4 (numbers in shortest decimal form: ``DCA_DROPS_0.03``, ``CONFIDENCE_TEST_0.6``). Every value
comes from ``shadow.variations.*`` and the production keys; nothing here is a default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..config import Config, Strategy, Tier
from ..exits import ExitRule, widen_stop
from ..regime import Regime

CHAMPION = "CHAMPION"
# Variations that only report (SPEC §10.4): they never yield a recommendation.
REPORT_ONLY = frozenset({"CHAMPION", "BEAR_MARKET", "BULL_MARKET", "ML_TRUST", "VOLATILITY_SIZED"})


def number_name(x: float) -> str:
    """A number in shortest decimal form (``0.03``, ``0.6``): Python's shortest round-trip repr."""
    return repr(float(x))


def _by_tier(tiers: np.ndarray, values: dict[str, float]) -> np.ndarray:
    """Per row the value of its tier (an unknown tier raises naming it)."""
    out = pd.Series(tiers, dtype=object).map(values)
    if out.isna().any():
        raise ValueError(f"unknown tier {tiers[out.isna().to_numpy()][0]!r}")
    return out.to_numpy(dtype="float64")


@dataclass(frozen=True)
class Variation:
    """One variation's overrides of production (None / 1.0 = production's value)."""

    name: str
    strategies: frozenset[Strategy]  # the strategies whose scans it applies to
    needs_champion: bool = False
    confidence: float | None = None  # threshold when the strategy has a champion in use
    size_multiplier: float = 1.0
    base_stop: float | None = None  # every tier's base stop (widened at entry like production's)
    tp_factor: float = 1.0  # × the effective take profit
    max_hold_h: float | None = None
    trail_activation_factor: float = 1.0
    dca_drop: float | None = None  # DCA drop threshold of every tier
    swing_breakout: float | None = None
    volatility_sized: bool = False
    ml_trust: bool = False

    def applies(self, strategy: Strategy, champion_in_use: bool) -> bool:
        return strategy in self.strategies and (champion_in_use or not self.needs_champion)

    def threshold(self, cfg: Config, strategy: Strategy, champion_in_use: bool) -> float:
        """The confidence threshold: the variation's (or ``ml.confidence_threshold.<s>``) with a champion in use,
        the rule threshold for every variation without one (SPEC §10.2)."""
        if not champion_in_use:
            return cfg.ml.rule.threshold
        return self.confidence if self.confidence is not None else cfg.ml.confidence_threshold.of(strategy)

    def setup(self, cfg: Config, strategy: Strategy, tiers: np.ndarray, value: np.ndarray, volume_surge: np.ndarray,
              volume_filter_ratio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(fires, threshold) of the §3.2 setup with this variation's parameters, re-evaluated from stored features
        (``value`` = the scan row's ``setup_value``: DCA drop, SWING breakout, CHANNEL channel position); vectorised
        over rows of one strategy; NaN never fires."""
        st = cfg.strategies
        value = np.asarray(value, dtype="float64")
        with np.errstate(invalid="ignore"):
            if strategy is Strategy.DCA:
                if self.dca_drop is not None:
                    thr = np.full(len(value), self.dca_drop)
                else:
                    thr = _by_tier(tiers, {t.value: st.dca.drop_threshold.of(t) for t in Tier})
                fires = value <= thr
                if st.dca.volume_filter.enabled:
                    ratio = _by_tier(tiers, {t.value: st.dca.volume_filter.min_ratio.of(t) for t in Tier})
                    fires &= np.asarray(volume_filter_ratio, dtype="float64") >= ratio
                return fires, thr
            if strategy is Strategy.SWING:
                b = self.swing_breakout if self.swing_breakout is not None else st.swing.breakout_threshold
                fires = (value >= b) & (np.asarray(volume_surge, dtype="float64") > st.swing.min_volume_surge)
                return fires, np.full(len(value), b)
            fires = (value <= st.channel.buy_zone) & ~(value >= st.channel.top_zone)
            return fires, np.full(len(value), st.channel.buy_zone)

    def exit_rule(self, cfg: Config, strategy: Strategy, tier: Tier, vol24h: float, regime: Regime | str,
                  targets: tuple[float, float, float] | None = None) -> ExitRule:
        """The frozen rule of a take at a cycle point with BTC ``vol24h`` and ``regime``: production's (the
        effective tp, the stop widened per §8.4) with the overrides. ML_TRUST takes ``targets`` = (tp, stop,
        hold h) from the champion's regressors, clamped per §10.1, the stop not widened."""
        p = cfg.exits.params(strategy, tier)
        tp = p.take_profit * cfg.exits.tp_multiplier.of(strategy) * self.tp_factor
        hold_min = (self.max_hold_h if self.max_hold_h is not None else cfg.exits.max_hold_h) * 60.0
        if self.ml_trust:
            if targets is None:
                raise ValueError("ML_TRUST needs the champion's regressor targets")
            t = cfg.ml.targets
            rt = 2 * cfg.costs.taker_fee + 2 * cfg.costs.slippage.of(tier)
            lo, hi = cfg.shadow.variations.ml_trust.hold_h_range
            return ExitRule(take_profit=min(max(targets[0], rt), t.tp_cap), stop_loss=min(max(targets[1], t.sl_floor),
                            0.5), trailing=p.trail, trail_activation=p.trail_activation,
                            max_hold_minutes=min(max(targets[2], lo), hi) * 60.0)
        base = self.base_stop if self.base_stop is not None else p.stop_loss
        return ExitRule(take_profit=tp, stop_loss=widen_stop(base, vol24h, regime, tier, cfg), trailing=p.trail,
                        trail_activation=p.trail_activation * self.trail_activation_factor,
                        max_hold_minutes=hold_min)

    def size_factor(self, cfg: Config, symbol_vol24h: float) -> float:
        """The size multiplier (VOLATILITY_SIZED: by the symbol's ``vol_24h`` feature; a missing one sizes × 1)."""
        if not self.volatility_sized:
            return self.size_multiplier
        v = cfg.shadow.variations.volatility_sized
        if not math.isfinite(symbol_vol24h):
            return 1.0
        if symbol_vol24h < v.low_vol:
            return v.low_multiplier
        if symbol_vol24h > v.high_vol:
            return v.high_multiplier
        return 1.0


def variations(cfg: Config) -> tuple[Variation, ...]:
    """Every variation of SPEC §10.1, in its table order."""
    v = cfg.shadow.variations
    every = frozenset(Strategy)
    out = [
        Variation(CHAMPION, every),
        Variation("BEAR_MARKET", every, confidence=v.bear_market.confidence,
                  size_multiplier=v.bear_market.size_multiplier, base_stop=v.bear_market.stop_loss,
                  tp_factor=v.bear_market.tp_multiplier, dca_drop=v.bear_market.dca_drop),
        Variation("BULL_MARKET", every, confidence=v.bull_market.confidence,
                  size_multiplier=v.bull_market.size_multiplier, base_stop=v.bull_market.stop_loss,
                  tp_factor=v.bull_market.tp_multiplier, swing_breakout=v.bull_market.swing_breakout),
        Variation("ML_TRUST", every, needs_champion=True, confidence=v.ml_trust.confidence, ml_trust=True),
        Variation("QUICK_EXITS", every, tp_factor=v.quick_exits.tp_multiplier, max_hold_h=v.quick_exits.max_hold_h,
                  trail_activation_factor=v.quick_exits.trail_activation_multiplier),
        *(Variation(f"DCA_DROPS_{number_name(abs(x))}", frozenset({Strategy.DCA}), dca_drop=x)
          for x in v.dca_drops.dca_drop),
        *(Variation(f"CONFIDENCE_TEST_{number_name(c)}", every, needs_champion=True, confidence=c)
          for c in v.confidence_test.confidence),
        Variation("VOLATILITY_SIZED", every, volatility_sized=True),
    ]
    return tuple(out)


def applicable(cfg: Config, strategy: Strategy, champion_in_use: bool) -> tuple[Variation, ...]:
    """The variations of a ``strategy`` scan (with a champion: 13 for DCA, 10 for SWING / CHANNEL)."""
    return tuple(v for v in variations(cfg) if v.applies(strategy, champion_in_use))
