"""Schema building blocks: the base model, the tier/strategy/timeframe maps, the scalar aliases, shared checks."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import (BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, StrictFloat, StrictInt,
                      model_serializer)

from .enums import ConfigError, Strategy, Tier, Timeframe

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


# 5m exists only as a base timeframe for imported data (SPEC §0.4): the per-timeframe maps take a `5m` key, which the
# defaults leave out and a config with a 5m base must give (SPEC §0.5: no fallback to the 1m settings).
BASE_ONLY_TIMEFRAME = Timeframe.M5
_TIMEFRAME_FIELDS = {"1m": "m1", "5m": "m5", "15m": "m15", "1h": "h1", "1d": "d1"}


class TimeframeKeyed(ConfigModel):
    """A map keyed by timeframe (``1m``, ``15m``, ``1h``, ``1d``, and ``5m`` only where it was given).

    Subclasses declare ``m5`` with ``default=None`` (not validated), so an absent ``5m`` key is told apart from a
    given one by ``model_fields_set``; an absent one is left out of dumps (the fingerprint of a config without it is
    unchanged) and reading it raises :class:`ConfigError`.
    """

    @property
    def has_base_only_key(self) -> bool:
        """True when the ``5m`` key was given."""
        return "m5" in self.model_fields_set

    def of(self, timeframe: Timeframe | str) -> Any:
        tf = Timeframe(timeframe)
        if tf is BASE_ONLY_TIMEFRAME and not self.has_base_only_key:
            raise ConfigError(f"no `{tf.value}` key in this per-timeframe map (there is no fallback to 1m)")
        return getattr(self, _TIMEFRAME_FIELDS[tf.value])

    @model_serializer(mode="wrap")
    def _leave_out_absent_5m(self, handler: SerializerFunctionWrapHandler) -> Any:
        out = handler(self)
        if isinstance(out, dict) and not self.has_base_only_key:
            out.pop(BASE_ONLY_TIMEFRAME.value, None)
            out.pop("m5", None)
        return out


class TimeframeMap(TimeframeKeyed, Generic[T]):
    m1: T = Field(alias="1m")
    m5: T = Field(default=None, alias="5m")  # type: ignore[assignment]  # absent unless given (see TimeframeKeyed)
    m15: T = Field(alias="15m")
    h1: T = Field(alias="1h")
    d1: T = Field(alias="1d")


# A time of day as HH:MM on the 24-hour clock.
HHMM_PATTERN = r"^([01]\d|2[0-3]):[0-5]\d$"


def validate_cron(v: str) -> str:
    """A cron expression must have 5 fields; returns it unchanged (a pydantic field validator body)."""
    parts = v.split()
    if len(parts) != 5:
        raise ValueError(f"cron {v!r} must have 5 fields")
    return v
