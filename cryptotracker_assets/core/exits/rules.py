"""Exit reasons and the exit rule a position opens with (SPEC §0.4, §5.1, §8.4); never imports dagster.

:func:`opening_rule` is the one place that decides the frozen rule of a new position: the ``exits.<strategy>.<tier>``
cell with the effective take profit (× ``exits.tp_multiplier``), the stop widened per §8.4, trail, activation and
max hold. Rates are fractions of the average entry A (0 disables an exit); the hold is in minutes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..common import StrictEnum
from ..config import Config, Strategy, Tier
from ..regime import Regime

# Longest accepted max hold (100 years): keeps E + max hold inside int64 nanoseconds.
MAX_HOLD_LIMIT_MIN = 100 * 365 * 24 * 60
# Accepted ranges of the exit parameters and costs: (column, lowest allowed, highest allowed or None, exclusive).
ENTRY_RANGES = (
    ("take_profit", 0.0, None),
    ("stop_loss", 0.0, 1.0),
    ("trailing", 0.0, 1.0),
    ("trail_activation", 0.0, None),
    ("max_hold_minutes", 0.0, float(MAX_HOLD_LIMIT_MIN)),
    ("fee", 0.0, 1.0),
    ("slippage", 0.0, 1.0),
)


class ExitReason(StrictEnum):
    """Why a position closed (SPEC §0.4); the one exit-reason enum of the project."""

    STOP_LOSS = "stop_loss"
    TRAILING_STOP = "trailing_stop"
    TAKE_PROFIT = "take_profit"
    TIME_EXIT = "time_exit"
    STRATEGY_SHIFT_BIG_LOSS = "strategy_shift_big_loss"
    STRATEGY_SHIFT_MODERATE_LOSS = "strategy_shift_moderate_loss"
    STRATEGY_SHIFT_FLAT = "strategy_shift_flat"
    STRATEGY_SHIFT_STALE_WIN = "strategy_shift_stale_win"
    MANUAL = "manual"
    END_OF_DATA = "end_of_data"  # offline simulation only

    @classmethod
    def parse(cls, value: str) -> "ExitReason":
        """Strict parse; an unknown value raises ``ValueError`` naming the ``exit_reason`` column and the allowed
        values."""
        try:
            return super().parse(value)
        except ValueError:
            raise ValueError(f"unknown exit_reason {value!r}; expected one of {[r.value for r in cls]}") from None


@dataclass(frozen=True)
class ExitRule:
    """Exit parameters frozen at entry (fractions of the average entry A; 0 disables; minutes for the hold)."""

    take_profit: float
    stop_loss: float
    trailing: float
    trail_activation: float
    max_hold_minutes: float

    def __post_init__(self) -> None:
        for name, lo, hi in ENTRY_RANGES:
            if name in ("fee", "slippage"):
                continue
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= lo and (hi is None or v < hi)):
                raise ValueError(f"ExitRule.{name}: invalid value {v!r}")

    @classmethod
    def from_config(cls, cfg: Config, strategy: Strategy | str, tier: Tier | str) -> "ExitRule":
        """The rule of ``exits.<strategy>.<tier>`` with the effective tp (× ``exits.tp_multiplier``) and max hold.

        The stop is the cell's, before widening; a new position opens with :func:`opening_rule`.
        """
        p = cfg.exits.params(strategy, tier)
        return cls(
            take_profit=p.take_profit * cfg.exits.tp_multiplier.of(strategy),
            stop_loss=p.stop_loss,
            trailing=p.trail,
            trail_activation=p.trail_activation,
            max_hold_minutes=cfg.exits.max_hold_h * 60.0,
        )


def widen_stop(base_stop: float, vol24h: float, regime: Regime | str, tier: Tier | str, cfg: Config) -> float:
    """The stop-loss fraction at entry: sl₁ = base × (1 + (vol24h − vol_floor) × vol_factor) if vol24h > vol_floor
    else base; sl = max(base, min(sl₁ × regime_multiplier.<regime>, cap.<tier>)). Raises for UNKNOWN or a
    missing vol24h (no entries are made then)."""
    w = cfg.protection.stop_widening
    reg = Regime(regime)
    if reg is Regime.UNKNOWN or not np.isfinite(vol24h):
        raise ValueError("stop widening needs a known regime and vol24h")
    sl1 = base_stop * (1.0 + (vol24h - w.vol_floor) * w.vol_factor) if vol24h > w.vol_floor else base_stop
    mult = getattr(w.regime_multiplier, reg.value.lower())
    return max(base_stop, min(sl1 * mult, w.cap.of(tier)))


def opening_rule(
    cfg: Config, strategy: Strategy | str, tier: Tier | str, vol24h: float, regime: Regime | str
) -> ExitRule:
    """The frozen rule a new ``strategy`` position of ``tier`` opens with at a cycle point with BTC ``vol24h`` and
    ``regime``: :meth:`ExitRule.from_config` with its stop widened by :func:`widen_stop` (SPEC §5.1, §8.4)."""
    base = ExitRule.from_config(cfg, strategy, tier)
    return ExitRule(
        take_profit=base.take_profit,
        stop_loss=widen_stop(base.stop_loss, vol24h, regime, tier, cfg),
        trailing=base.trailing,
        trail_activation=base.trail_activation,
        max_hold_minutes=base.max_hold_minutes,
    )
