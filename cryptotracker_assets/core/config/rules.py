"""Two SPEC §0.5 validation rules: the sign of every multiplier and divisor, and the per-timeframe keys of the base
timeframe (a 5m base needs its own ``5m`` keys: the code has no fallback to the 1m settings)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .blocks import BASE_ONLY_TIMEFRAME, ConfigModel, TimeframeKeyed
from .enums import Tier
from .model import Config

_REGIMES = ("panic", "caution", "euphoria", "normal")

# Multipliers and divisors: 0 (or a negative value) has the right type but breaks a formula — a zero-size order,
# a division by zero, a grid of no levels — so the load rejects it. (dotted key, True = must be > 0, False = >= 0.)
SIGN_RULES: tuple[tuple[str, bool], ...] = (
    # PANIC enters nothing (SPEC §8.1), so its multiplier may be 0; every other regime sizes its entries with it.
    ("protection.regime.size_multiplier.panic", False),
    *((f"protection.regime.size_multiplier.{r}", True) for r in _REGIMES[1:]),
    *((f"protection.stop_widening.regime_multiplier.{r}", True) for r in _REGIMES),
    ("protection.stop_widening.vol_factor", False),  # 0 = no widening
    *((f"exits.tp_multiplier.{s}", True) for s in ("dca", "swing", "channel")),
    ("portfolio.position_size_usd", True),  # G; pnl_pct = net / size
    ("portfolio.initial_balance_usd", True),  # E₀ of the daily loss gate
    ("strategies.swing.breakout_threshold", True),  # readiness x = breakout / breakout_threshold
    ("strategies.swing.min_volume_surge", True),  # readiness v = 100 · volume_surge / min_volume_surge
    *((f"strategies.dca.grid.levels.{t.value}", True) for t in Tier),  # g = G / levels
    ("prioritisation.min_symbols", True),  # the averages divide by N >= min_symbols
    ("features.ml.bb_std", True),  # bb_position divides by the band width 2·k·σ
    ("shadow.variations.bear_market.size_multiplier", True),
    ("shadow.variations.bear_market.tp_multiplier", True),
    ("shadow.variations.bull_market.size_multiplier", True),
    ("shadow.variations.bull_market.tp_multiplier", True),
    ("shadow.variations.quick_exits.tp_multiplier", True),
    ("shadow.variations.quick_exits.trail_activation_multiplier", True),
    ("shadow.variations.volatility_sized.low_multiplier", True),
    ("shadow.variations.volatility_sized.high_multiplier", True),
    *((f"threshold_manager.tier_multiplier.{t}", True) for t in ("high", "medium", "low")),
)


def _value(cfg: Config, dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


def sign_errors(cfg: Config) -> list[str]:
    """One message per multiplier or divisor of :data:`SIGN_RULES` that is not > 0 (or >= 0 where 0 is allowed)."""
    errors = []
    for key, strict in SIGN_RULES:
        v = _value(cfg, key)
        if (v <= 0) if strict else (v < 0):
            errors.append(f"`{key}`: must be {'>' if strict else '>='} 0, got {v}")
    return errors


def timeframe_maps(model: ConfigModel, prefix: str = "") -> Iterator[tuple[str, TimeframeKeyed]]:
    """Every per-timeframe map inside ``model`` with its dotted key (keys as in the file)."""
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if not isinstance(value, ConfigModel):
            continue
        key = f"{prefix}{info.alias or name}"
        if isinstance(value, TimeframeKeyed):
            yield key, value
        yield from timeframe_maps(value, f"{key}.")


def timeframe_key_errors(cfg: Config) -> list[str]:
    """With ``engine.base_timeframe`` 5m every per-timeframe map needs its ``5m`` key; otherwise none may have one
    (every key is read by a component)."""
    tf = BASE_ONLY_TIMEFRAME.value
    base_only = cfg.engine.base_timeframe is BASE_ONLY_TIMEFRAME
    errors = []
    for key, m in timeframe_maps(cfg):
        if base_only and not m.has_base_only_key:
            errors.append(f"`{key}.{tf}`: missing key (engine.base_timeframe is {tf}; there is no fallback to 1m)")
        elif m.has_base_only_key and not base_only:
            errors.append(f"`{key}.{tf}`: only read when engine.base_timeframe is {tf}")
    return errors
