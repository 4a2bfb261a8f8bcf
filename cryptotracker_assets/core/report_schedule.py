"""When the trading reports are due (SPEC §12.1; never imports dagster): MORNING, MIDDAY, EVENING daily and WEEKLY
on one weekday, at wall-clock times of ``notifications.timezone`` (America/Los_Angeles; DST-aware: 07:00 local is
14:00 UTC in summer and 15:00 UTC in winter), each covering its ``lookback_h``.

Catch-up: a tick evaluated more than ``notifications.catchup_quiet_min`` after its time (the daemon was down) is
late. Of a run of late ticks only the newest says anything — one CATCH-UP report covering everything since the last
scheduled report sent, naming the reports it replaces; the older late ticks are skipped. A tick after them that is
on time reports normally. Two slots at one instant (Sunday's EVENING and WEEKLY) send one catch-up: the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

import pandas as pd

from .config import Config

KINDS = ("MORNING", "MIDDAY", "EVENING", "WEEKLY")
CATCH_UP = "CATCH-UP"
ON_DEMAND = "ON-DEMAND"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
CRON_WEEKDAY = {d: (i + 1) % 7 for i, d in enumerate(WEEKDAYS)}  # cron: 0 = Sunday


@dataclass(frozen=True)
class Slot:
    kind: str
    hour: int
    minute: int
    lookback: pd.Timedelta
    weekday: str | None = None  # WEEKLY only

    @property
    def cron(self) -> str:
        return f"{self.minute} {self.hour} * * {CRON_WEEKDAY[self.weekday] if self.weekday else '*'}"


def slots(cfg: Config) -> list[Slot]:
    r = cfg.notifications.reports
    out = []
    for kind, spec in (("MORNING", r.morning), ("MIDDAY", r.midday), ("EVENING", r.evening), ("WEEKLY", r.weekly)):
        hh, mm = (int(x) for x in spec.at.split(":"))
        out.append(Slot(kind, hh, mm, pd.Timedelta(hours=float(spec.lookback_h)), getattr(spec, "day", None)))
    return out


def crons(cfg: Config) -> list[str]:
    """The distinct cron strings of the report slots (in ``notifications.timezone``)."""
    return sorted({s.cron for s in slots(cfg)})


def due(cfg: Config, t: pd.Timestamp) -> list[Slot]:
    """The slots scheduled exactly at ``t`` (any timezone; compared in ``notifications.timezone``)."""
    local = pd.Timestamp(t).tz_convert(ZoneInfo(cfg.notifications.timezone))
    return [s for s in slots(cfg) if (local.hour, local.minute) == (s.hour, s.minute)
            and (s.weekday is None or WEEKDAYS[local.weekday()] == s.weekday)]


def scheduled_between(cfg: Config, start: pd.Timestamp, end: pd.Timestamp) -> list[tuple[pd.Timestamp, Slot]]:
    """Every (UTC time, slot) with start < time ≤ end, in time order: local wall-clock times turned into instants
    by the zone's rules (a time that does not exist on a spring-forward day is taken at the shifted instant)."""
    tz = ZoneInfo(cfg.notifications.timezone)
    start, end = pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC")
    first = (start.tz_convert(tz).normalize() - pd.Timedelta(days=1)).tz_localize(None)
    last = (end.tz_convert(tz).normalize() + pd.Timedelta(days=1)).tz_localize(None)
    out = []
    for day in pd.date_range(first, last, freq="1D"):
        for s in slots(cfg):
            if s.weekday is not None and WEEKDAYS[day.weekday()] != s.weekday:
                continue
            local = (day + pd.Timedelta(hours=s.hour, minutes=s.minute)).tz_localize(
                tz, nonexistent="shift_forward", ambiguous=True)
            t = local.tz_convert("UTC")
            if start < t <= end:
                out.append((t, s))
    return sorted(out, key=lambda x: (x[0], KINDS.index(x[1].kind)))


@dataclass(frozen=True)
class Decision:
    """What a report tick does: ``reports`` (slots) to write now, as ``CATCH-UP`` when ``catchup``; or skip."""

    tick: pd.Timestamp
    reports: tuple[str, ...]
    catchup: bool
    skip_reason: str | None = None


def decide(cfg: Config, tick: pd.Timestamp, now: pd.Timestamp) -> Decision:
    """The decision of the report schedule's tick at ``tick`` evaluated at ``now`` (both instants)."""
    tick, now = pd.Timestamp(tick).tz_convert("UTC"), pd.Timestamp(now).tz_convert("UTC")
    kinds = tuple(s.kind for s in due(cfg, tick))
    if not kinds:
        return Decision(tick, (), False, f"no report is scheduled at {tick.isoformat()}")
    quiet = pd.Timedelta(minutes=cfg.notifications.catchup_quiet_min)
    if now - tick <= quiet:
        return Decision(tick, kinds, False)
    newer = [(t, s) for t, s in scheduled_between(cfg, tick, now) if now - t > quiet]  # also late: also missed
    if newer:
        t, s = newer[0]
        return Decision(tick, kinds, True, f"late by {now - tick}; collapsed into the catch-up report of the newest "
                                          f"missed tick (next: {s.kind} at {t.isoformat()})")
    return Decision(tick, kinds, True)


def catchup_period(cfg: Config, tick: pd.Timestamp, last_period_end: pd.Timestamp | None,
                   last_scheduled: pd.Timestamp | None) -> tuple[pd.Timestamp, list[str]]:
    """(period start, the missed reports' names) of a catch-up at ``tick``: since the end of the last report sent
    (else the longest lookback of the missed kinds), naming every slot after the last one sent up to ``tick``."""
    tz = ZoneInfo(cfg.notifications.timezone)
    horizon = max(s.lookback for s in slots(cfg))
    since = pd.Timestamp(last_scheduled).tz_convert("UTC") if last_scheduled is not None else tick - horizon
    missed = scheduled_between(cfg, since, tick)
    names = [f"{s.kind} {t.tz_convert(tz):%Y-%m-%d %H:%M %Z}" for t, s in missed]
    if last_period_end is not None and pd.Timestamp(last_period_end).tz_convert("UTC") < tick:
        start = pd.Timestamp(last_period_end).tz_convert("UTC")
    else:
        start = tick - max((s.lookback for _, s in missed), default=horizon)
    return start, names
