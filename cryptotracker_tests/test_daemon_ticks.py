"""The daemon drives the pipeline (issue 14): with the paper-engine sensor (5 s) and a schedule switched on, an
ingest run's new bars make the sensor launch exactly one engine run; the daemon is SIGKILLed and restarted while a
run waits in the queue: nothing is lost (the queued ingest runs, its bars reach the engine) and nothing is doubled
(one engine run per materialization, one run per schedule tick). One daemon in this module, bounded in time."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

import dagster as dg
from cryptotracker_assets.daemon_ctl import cmdline, down, up
from cryptotracker_tests.conftest import PROJECT_ROOT
from cryptotracker_tests.engine_support import DAYS, user_config

pytestmark = pytest.mark.slow
SELECTOR = {"repositoryLocationName": "cryptotracker", "repositoryName": "__repository__"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql",
                                 data=json.dumps({"query": query, "variables": variables or {}}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())["data"]


def start(port: int, kind: str, name: str) -> None:
    if kind == "sensor":
        q = ("mutation($s: SensorSelector!) { startSensor(sensorSelector: $s) { __typename "
             "... on PythonError { message } } }")
        out = graphql(port, q, {"s": {**SELECTOR, "sensorName": name}})["startSensor"]
    else:
        q = ("mutation($s: ScheduleSelector!) { startSchedule(scheduleSelector: $s) { __typename "
             "... on PythonError { message } } }")
        out = graphql(port, q, {"s": {**SELECTOR, "scheduleName": name}})["startSchedule"]
    assert "Error" not in out["__typename"], out


def launch_ingest(port: int, day: str) -> str:
    params = {"selector": {**SELECTOR, "jobName": "ohlc_1m_job"},
              "runConfigData": {"ops": {"ohlc_1m": {"config": {"as_of": f"{DAYS[-1]}T23:59:00+00:00"}}}},
              "executionMetadata": {"tags": [{"key": "dagster/partition", "value": day}]}}
    q = ("mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename "
         "... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }")
    out = graphql(port, q, {"p": params})["launchRun"]
    assert out["__typename"] == "LaunchRunSuccess", out
    return out["run"]["runId"]


def runs(instance, job: str) -> list:
    return instance.get_run_records(dg.RunsFilter(job_name=job))


def wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(1)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")


def test_the_daemon_launches_each_tick_once_across_a_kill_and_restart(tmp_env, monkeypatch, tmp_path):
    home = Path(tmp_env["DAGSTER_HOME"])
    config = tmp_path / "user_config.yaml"
    config.write_text(user_config(extra="data: {health: {every_min: 1}}\n"))  # data_health_schedule: every minute
    for k, v in {**tmp_env, "CRYPTOTRACKER_CONFIG": str(config), "CRYPTOTRACKER_SENSOR_INTERVAL_S": "5"}.items():
        monkeypatch.setenv(k, v)
    port = free_port()
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        pids = up(home, bin_dir=Path(sys.executable).parent, port=port, workspace=PROJECT_ROOT / "workspace.yaml",
                  wait_s=120)
        start(port, "sensor", "paper_engine_sensor")
        start(port, "schedule", "data_health_schedule")
        first = launch_ingest(port, DAYS[0])
        engine = wait_for(lambda: [r for r in runs(instance, "paper_engine_job")
                                   if first in r.dagster_run.tags.get("cryptotracker/trigger", "")], 150,
                          "the sensor's engine run for the first day's bars")
        assert len(engine) == 1
        # the daemon dies (SIGKILL, no cleanup); meanwhile a second ingest run is queued
        os.kill(pids["daemon"], signal.SIGKILL)
        wait_for(lambda: not cmdline(pids["daemon"]), 20, "the daemon to die")
        second = launch_ingest(port, DAYS[1])
        time.sleep(3)
        assert instance.get_run_by_id(second).status == dg.DagsterRunStatus.QUEUED  # nobody launches it
        restarted = up(home, bin_dir=Path(sys.executable).parent, port=port,
                       workspace=PROJECT_ROOT / "workspace.yaml", wait_s=60)
        assert restarted["daemon"] != pids["daemon"] and restarted["webserver"] == pids["webserver"]
        wait_for(lambda: [r for r in runs(instance, "paper_engine_job")
                          if second in r.dagster_run.tags.get("cryptotracker/trigger", "")], 150,
                 "the engine run for the second day's bars after the restart")
        done = wait_for(lambda: (all(r.dagster_run.is_finished for r in runs(instance, "paper_engine_job")
                                     + runs(instance, "ohlc_1m_job")) and runs(instance, "paper_engine_job")),
                        150, "every run to finish")
        assert done
        triggers = Counter(r.dagster_run.tags.get("cryptotracker/trigger") for r in runs(instance, "paper_engine_job"))
        assert sorted(triggers.values()) == [1, 1]  # one engine run per materialization: none lost, none doubled
        assert {r.dagster_run.status for r in runs(instance, "ohlc_1m_job") + runs(instance, "paper_engine_job")} \
            == {dg.DagsterRunStatus.SUCCESS}
        # the schedule ticks every minute (the daemon's scheduler loop checks every ~30 s): each tick launched one run
        health = wait_for(lambda: runs(instance, "data_health_job"), 100, "a tick of data_health_schedule")
        assert 1 <= len(health) <= 4
        ticks = Counter(r.dagster_run.tags.get("dagster/tick") for r in health)
        assert None not in ticks and all(n == 1 for n in ticks.values()), ticks
    finally:
        down(home, grace_s=10)
