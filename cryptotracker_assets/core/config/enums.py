"""The config's enumerations (timeframe, tier, strategy) and :class:`ConfigError`. Enums parse strictly (SPEC §0.4)."""

from __future__ import annotations

from ..common import MINUTES_PER_DAY, StrictEnum


class ConfigError(ValueError):
    """A config file failed to load or validate; the message names the dotted key."""


class Timeframe(StrictEnum):
    M1 = "1m"
    M5 = "5m"
    M15 = "15m"
    H1 = "1h"
    D1 = "1d"

    @property
    def minutes(self) -> int:
        return {"1m": 1, "5m": 5, "15m": 15, "1h": 60, "1d": MINUTES_PER_DAY}[self.value]


class Tier(StrictEnum):
    LARGE_CAP = "large_cap"
    MID_CAP = "mid_cap"
    SMALL_CAP = "small_cap"
    MEMECOIN = "memecoin"


class Strategy(StrictEnum):
    DCA = "DCA"
    SWING = "SWING"
    CHANNEL = "CHANNEL"

    @property
    def key(self) -> str:
        """The config key of the strategy (``dca``, ``swing``, ``channel``)."""
        return self.value.lower()
