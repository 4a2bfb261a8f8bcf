"""Helpers every core module shares: UTC conversion, strict enums and the time grid. Never imports dagster.

Times inside the core are tz-aware UTC ``pd.Timestamp`` values or int64 nanoseconds since the epoch (UTC); a naive
or non-UTC time is an error, never silently converted. Enumerations parse strictly: an unknown value raises a
``ValueError`` naming the allowed values (SPEC §0.4).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import date, datetime, timedelta, timezone
from enum import Enum
from typing import Any

import numpy as np
import pandas as pd

MINUTES_PER_DAY = 1440
NS_PER_SECOND = 10**9
NS_PER_MIN = 60 * NS_PER_SECOND
NS_PER_HOUR = 60 * NS_PER_MIN
NS_PER_DAY = MINUTES_PER_DAY * NS_PER_MIN
UTC_NS = "datetime64[ns, UTC]"
_UTC_NAMES = {"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Universal", "Universal", "Zulu", "Etc/Zulu"}


class StrictEnum(str, Enum):
    """A string enum whose :meth:`parse` accepts a member or its exact value and raises on anything else."""

    @classmethod
    def parse(cls, value: Any):
        """Strict parse; an unknown value raises ``ValueError`` naming the allowed values."""
        if isinstance(value, cls):
            return value
        try:
            return cls(value)
        except ValueError:
            allowed = [m.value for m in cls]
            label = re.sub(r"(?<!^)(?=[A-Z])", " ", cls.__name__).lower()  # GateReason → "gate reason"
            raise ValueError(f"unknown {label} {value!r}; expected one of {allowed}") from None


# ---------------------------------------------------------------------------------------------------------------
# UTC
# ---------------------------------------------------------------------------------------------------------------


def is_utc(tz: Any) -> bool:
    """True for UTC and zero fixed offsets; False for region zones (even Europe/London in winter)."""
    if tz is None:
        return False
    if str(tz) in _UTC_NAMES:
        return True
    try:
        return tz.utcoffset(None) == timedelta(0)
    except Exception:  # tz objects that need a datetime are region zones
        return False


def utc(value: Any, what: str, error: type[Exception] = ValueError) -> pd.Timestamp:
    """``value`` as a tz-aware UTC ``pd.Timestamp``; a naive or non-UTC time raises ``error`` naming ``what``."""
    if type(value) is pd.Timestamp and value.tzinfo is timezone.utc:  # already one (the hot path of the engine)
        return value
    ts = pd.Timestamp(value)
    if ts.tzinfo is None or not is_utc(ts.tzinfo):
        raise error(f"{what} must be a tz-aware UTC time, got {value!r}")
    return ts.tz_convert("UTC")


def utc_or_none(value: Any) -> pd.Timestamp | None:
    """A stored time (tz-aware) as UTC, or None for a missing value (None, NaT, NaN)."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return pd.Timestamp(value).tz_convert("UTC")


def to_ns(value: Any, what: str) -> int:
    """Nanoseconds since the epoch of a tz-aware time (any zone) or of a calendar date (00:00 UTC)."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return pd.Timestamp(value.isoformat(), tz="UTC").value
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        raise ValueError(f"{what} must be timezone-aware UTC, got naive {ts}")
    return ts.tz_convert("UTC").value


def from_ns(ns: int) -> pd.Timestamp:
    """The UTC timestamp of int64 nanoseconds."""
    return pd.Timestamp(int(ns), tz="UTC")


def utc_index(ns: np.ndarray) -> pd.DatetimeIndex:
    """A UTC ``DatetimeIndex`` of int64 nanoseconds."""
    return pd.DatetimeIndex(np.asarray(ns, dtype="int64").view("datetime64[ns]")).tz_localize("UTC")


def ns_column(col: pd.Series, what: str, error: type[Exception] = ValueError) -> np.ndarray:
    """A tz-aware UTC datetime column as int64 nanoseconds (a copy); naive, non-UTC or missing values raise."""
    if not isinstance(col.dtype, pd.DatetimeTZDtype) or not is_utc(col.dtype.tz):
        raise error(f"{what} must be tz-aware UTC, got {col.dtype}")
    idx = pd.DatetimeIndex(col).as_unit("ns")
    if idx.isna().any():
        raise error(f"{what} has missing values")
    return idx.asi8.copy()


def day_ns(day: Any) -> int:
    """A partition day (00:00 UTC) as nanoseconds; another time of day raises."""
    ns = to_ns(day, "day")
    if ns % NS_PER_DAY:
        raise ValueError(f"a partition day must be 00:00 UTC, got {pd.Timestamp(ns, tz='UTC')}")
    return ns


def floor_ns(ns: Any, step: int) -> Any:
    return ns - ns % step


def ceil_ns(ns: int, step: int) -> int:
    return -((-ns) // step) * step


def hours(h: float) -> pd.Timedelta:
    return pd.Timedelta(hours=float(h))


# ---------------------------------------------------------------------------------------------------------------
# The time grid (SPEC §0.2)
# ---------------------------------------------------------------------------------------------------------------


def cycle_points(start: Any, end: Any, cycle_min: int) -> pd.DatetimeIndex:
    """The cycle points T in [start, end): UTC multiples of ``cycle_min`` (SPEC §0.2)."""
    step = cycle_min * NS_PER_MIN
    a = ceil_ns(to_ns(start, "start"), step)
    b = to_ns(end, "end")
    return utc_index(np.arange(a, b, step, dtype="int64")) if b > a else utc_index(np.array([], dtype="int64"))


def utc_days(start: pd.Timestamp, end: pd.Timestamp) -> list[pd.Timestamp]:
    """The UTC days (00:00) that [start, end) touches, in order."""
    if end <= start:
        return []
    first = start.floor("1D")
    last = (end - pd.Timedelta(1, unit="ns")).floor("1D")
    return list(pd.date_range(first, last, freq="1D"))


# ---------------------------------------------------------------------------------------------------------------
# Exact running sums
# ---------------------------------------------------------------------------------------------------------------


class ExactSum:
    """A running sum of floats kept exactly as non-overlapping partials (Shewchuk; the algorithm behind
    :func:`math.fsum`). :attr:`value` is the correctly rounded sum of every number added so far — bit-identical to
    ``math.fsum`` over the same numbers in any order — at a cost independent of how many were added."""

    __slots__ = ("_partials",)

    def __init__(self, values: Iterable[float] = ()) -> None:
        self._partials: list[float] = []
        for v in values:
            self.add(v)

    def add(self, x: float) -> None:
        x = float(x)
        if not math.isfinite(x):
            raise ValueError(f"ExactSum takes finite numbers, got {x!r}")
        partials = self._partials
        i = 0
        for y in partials:
            if abs(x) < abs(y):
                x, y = y, x
            hi = x + y
            lo = y - (hi - x)
            if lo:
                partials[i] = lo
                i += 1
            x = hi
        partials[i:] = [x]

    @property
    def value(self) -> float:
        return math.fsum(self._partials)
