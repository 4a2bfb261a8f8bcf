"""The report schedules as the daemon runs them (issue 13): Dagster's own tick iterator over the schedule's cron and
``execution_timezone`` lands MORNING at 07:00 America/Los_Angeles on both sides of both DST changes, and each tick's
evaluation asks for the right report; late ticks collapse into one catch-up request."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pandas as pd
from dagster._utils.schedules import cron_string_iterator  # what the scheduler daemon iterates

import dagster as dg
from cryptotracker_assets.assets.reports import build_report_schedules
from cryptotracker_assets.core.config import load_config

CFG = load_config()
LA = ZoneInfo("America/Los_Angeles")


def schedules(clock):
    return {s.name: s for s in build_report_schedules(CFG, clock)}


def ticks(schedule: dg.ScheduleDefinition, start: str, n: int) -> list[pd.Timestamp]:
    it = cron_string_iterator(pd.Timestamp(start, tz="UTC").timestamp(), schedule.cron_schedule,
                              schedule.execution_timezone)
    return [pd.Timestamp(next(it)).tz_convert("UTC") for _ in range(n)]


def evaluate(schedule: dg.ScheduleDefinition, tick: pd.Timestamp, instance):
    ctx = dg.build_schedule_context(instance=instance, scheduled_execution_time=tick.to_pydatetime())
    return schedule.evaluate_tick(ctx)


def test_morning_ticks_land_at_0700_local_across_both_dst_changes(instance):
    morning = schedules(lambda: pd.Timestamp.now(tz="UTC"))["morning_report_schedule"]
    assert morning.execution_timezone == "America/Los_Angeles"
    spring = ticks(morning, "2026-03-06 16:00", 4)  # 2026-03-08 02:00 PST -> 03:00 PDT
    fall = ticks(morning, "2026-10-30 16:00", 4)  # 2026-11-01 02:00 PDT -> 01:00 PST
    # 07:00 PST = 15:00 UTC, 07:00 PDT = 14:00 UTC (hand-converted)
    assert spring == [pd.Timestamp(t, tz="UTC") for t in ("2026-03-07 15:00", "2026-03-08 14:00",
                                                          "2026-03-09 14:00", "2026-03-10 14:00")]
    assert fall == [pd.Timestamp(t, tz="UTC") for t in ("2026-10-31 14:00", "2026-11-01 15:00",
                                                        "2026-11-02 15:00", "2026-11-03 15:00")]
    for t in spring + fall:
        assert (t.tz_convert(LA).hour, t.tz_convert(LA).minute) == (7, 0)
        on_time = schedules(lambda t=t: t + pd.Timedelta(minutes=1))["morning_report_schedule"]
        (req,) = evaluate(on_time, t, instance).run_requests
        config = req.run_config["ops"]["trading_report"]["config"]
        assert config == {"reports": ["MORNING"], "scheduled_for": t.isoformat(), "catchup": False}
        assert req.tags["cryptotracker/report"] == "MORNING"


def test_weekly_is_sunday_1900_local():
    weekly = schedules(lambda: pd.Timestamp.now(tz="UTC"))["weekly_report_schedule"]
    got = ticks(weekly, "2026-10-26 00:00", 3)
    assert [t.tz_convert(LA).strftime("%a %H:%M %Z") for t in got] == ["Sun 19:00 PDT", "Sun 19:00 PST",
                                                                      "Sun 19:00 PST"]


def test_late_ticks_collapse_into_one_catch_up_request(instance):
    now = pd.Timestamp("2026-12-08 04:30", tz="UTC")  # 20:30 PST: the daemon was down since 06:00
    s = schedules(lambda: now)
    morning, midday, evening = (pd.Timestamp(t, tz="UTC") for t in ("2026-12-07 15:00", "2026-12-07 20:00",
                                                                    "2026-12-08 03:00"))
    assert not evaluate(s["morning_report_schedule"], morning, instance).run_requests
    assert not evaluate(s["midday_report_schedule"], midday, instance).run_requests
    (req,) = evaluate(s["evening_report_schedule"], evening, instance).run_requests
    assert req.run_config["ops"]["trading_report"]["config"]["catchup"] is True
    assert req.tags["cryptotracker/report"] == "CATCH-UP"


def test_sundays_late_evening_and_weekly_send_one_catch_up(instance):
    tick = pd.Timestamp("2026-12-07 03:00", tz="UTC")  # Sunday 19:00 PST
    s = schedules(lambda: tick + pd.Timedelta(hours=1))
    (req,) = evaluate(s["evening_report_schedule"], tick, instance).run_requests
    assert req.tags["cryptotracker/report"] == "CATCH-UP"
    weekly = evaluate(s["weekly_report_schedule"], tick, instance)
    assert not weekly.run_requests and "sent by the EVENING schedule" in weekly.skip_message
