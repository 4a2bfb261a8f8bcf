"""When the trading reports are due (SPEC §12.1): local wall-clock times in America/Los_Angeles across both DST
changes, the weekly slot, and the collapse of late (catch-up) ticks into one report."""

from __future__ import annotations

import pandas as pd

from cryptotracker_assets.core import report_schedule as RS
from cryptotracker_assets.core.config import load_config

CFG = load_config()


def utc(s: str) -> pd.Timestamp:
    return pd.Timestamp(s, tz="UTC")


def test_the_slots_and_their_crons_come_from_the_config():
    assert [(s.kind, s.hour, s.minute, s.lookback) for s in RS.slots(CFG)] == [
        ("MORNING", 7, 0, pd.Timedelta(hours=12)), ("MIDDAY", 12, 0, pd.Timedelta(hours=5)),
        ("EVENING", 19, 0, pd.Timedelta(hours=24)), ("WEEKLY", 19, 0, pd.Timedelta(hours=168))]
    assert RS.crons(CFG) == ["0 12 * * *", "0 19 * * *", "0 19 * * 0", "0 7 * * *"]


def test_morning_lands_at_0700_local_across_both_dst_changes():
    # 2026-03-08: clocks go 02:00 PST -> 03:00 PDT; 2026-11-01: 02:00 PDT -> 01:00 PST.
    # 07:00 PST = 15:00 UTC, 07:00 PDT = 14:00 UTC (hand-converted).
    got = [t for t, s in RS.scheduled_between(CFG, utc("2026-03-06 16:00"), utc("2026-03-10 12:00"))
           if s.kind == "MORNING"]  # from 08:00 PST on the 6th to 05:00 PDT on the 10th
    assert got == [utc("2026-03-07 15:00"), utc("2026-03-08 14:00"), utc("2026-03-09 14:00")]
    got = [t for t, s in RS.scheduled_between(CFG, utc("2026-10-30 15:00"), utc("2026-11-03 12:00"))
           if s.kind == "MORNING"]
    assert got == [utc("2026-10-31 14:00"), utc("2026-11-01 15:00"), utc("2026-11-02 15:00")]
    assert [s.kind for s in RS.due(CFG, utc("2026-03-08 14:00"))] == ["MORNING"]
    assert RS.due(CFG, utc("2026-03-08 15:00")) == []  # 08:00 PDT


def test_weekly_is_sunday_evening_beside_the_evening_report():
    # 2026-12-06 is a Sunday; 19:00 PST = 03:00 UTC on Monday
    assert [s.kind for s in RS.due(CFG, utc("2026-12-07 03:00"))] == ["EVENING", "WEEKLY"]
    assert [s.kind for s in RS.due(CFG, utc("2026-12-08 03:00"))] == ["EVENING"]
    week = RS.scheduled_between(CFG, utc("2026-11-30 08:00"), utc("2026-12-07 08:00"))  # Mon 00:00 PST, 7 days
    assert sum(s.kind == "WEEKLY" for _, s in week) == 1 and len(week) == 3 * 7 + 1


def test_a_tick_on_time_reports_and_late_ticks_collapse_into_one_catch_up():
    morning = utc("2026-12-07 15:00")  # 07:00 PST
    on_time = RS.decide(CFG, morning, morning + pd.Timedelta(minutes=29))
    assert on_time == RS.Decision(morning, ("MORNING",), False)
    # the daemon was down 06:00-20:30 local: MORNING, MIDDAY and EVENING ticks are evaluated at 20:30
    now = utc("2026-12-08 04:30")
    ticks = [t for t, _ in RS.scheduled_between(CFG, utc("2026-12-07 14:00"), now)]
    assert ticks == [utc("2026-12-07 15:00"), utc("2026-12-07 20:00"), utc("2026-12-08 03:00")]
    decisions = [RS.decide(CFG, t, now) for t in ticks]
    assert [d.skip_reason is None for d in decisions] == [False, False, True]
    assert all(d.catchup for d in decisions)
    # the catch-up covers everything since the last report sent (the previous evening) and names what it replaces
    start, missed = RS.catchup_period(CFG, ticks[-1], last_period_end=utc("2026-12-07 03:00"),
                                      last_scheduled=utc("2026-12-07 03:00"))
    assert start == utc("2026-12-07 03:00")
    assert missed == ["MORNING 2026-12-07 07:00 PST", "MIDDAY 2026-12-07 12:00 PST", "EVENING 2026-12-07 19:00 PST"]


def test_a_tick_with_no_slot_is_skipped():
    d = RS.decide(CFG, utc("2026-12-07 16:00"), utc("2026-12-07 16:00"))
    assert d.reports == () and "no report is scheduled" in d.skip_reason


def test_a_late_tick_followed_by_an_on_time_one_still_says_what_it_missed():
    # the daemon was down 06:50-12:10 PST: MORNING is late, MIDDAY (12:00, evaluated at 12:10) is on time
    now = utc("2026-12-07 20:10")
    morning = RS.decide(CFG, utc("2026-12-07 15:00"), now)
    assert morning.skip_reason is None and morning.catchup  # not collapsed into the on-time MIDDAY
    midday = RS.decide(CFG, utc("2026-12-07 20:00"), now)
    assert midday == RS.Decision(utc("2026-12-07 20:00"), ("MIDDAY",), False)


def test_a_catch_up_never_starts_at_or_after_its_tick():
    tick = utc("2026-12-08 03:00")
    start, _ = RS.catchup_period(CFG, tick, last_period_end=tick, last_scheduled=utc("2026-12-07 20:00"))
    assert start == tick - pd.Timedelta(hours=24)  # the longest lookback of the missed EVENING
