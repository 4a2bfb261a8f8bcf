"""Schema building blocks: the base model, the tier/strategy/timeframe maps, the scalar aliases, shared checks."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt

from .enums import Strategy, Tier, Timeframe

# ---------------------------------------------------------------------------------------------------------------
# Schema building blocks
# ---------------------------------------------------------------------------------------------------------------


class ConfigModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, populate_by_name=True)


T = TypeVar("T")

Fraction = StrictFloat
Num = StrictFloat
Int = StrictInt


class TierMap(ConfigModel, Generic[T]):
    large_cap: T
    mid_cap: T
    small_cap: T
    memecoin: T

    def of(self, tier: Tier | str) -> T:
        return getattr(self, Tier(tier).value)


class StrategyMap(ConfigModel, Generic[T]):
    dca: T
    swing: T
    channel: T

    def of(self, strategy: Strategy | str) -> T:
        key = strategy.key if isinstance(strategy, Strategy) else Strategy(str(strategy).upper()).key
        return getattr(self, key)


class TimeframeMap(ConfigModel, Generic[T]):
    m1: T = Field(alias="1m")
    m15: T = Field(alias="15m")
    h1: T = Field(alias="1h")
    d1: T = Field(alias="1d")

    def of(self, timeframe: Timeframe | str) -> T:
        tf = Timeframe(timeframe)
        if tf is Timeframe.M5:
            # 5m exists only as a base timeframe for imported data: it uses the base (1m) settings.
            tf = Timeframe.M1
        return getattr(self, {"1m": "m1", "15m": "m15", "1h": "h1", "1d": "d1"}[tf.value])


# A time of day as HH:MM on the 24-hour clock.
HHMM_PATTERN = r"^([01]\d|2[0-3]):[0-5]\d$"


def validate_cron(v: str) -> str:
    """A cron expression must have 5 fields; returns it unchanged (a pydantic field validator body)."""
    parts = v.split()
    if len(parts) != 5:
        raise ValueError(f"cron {v!r} must have 5 fields")
    return v
