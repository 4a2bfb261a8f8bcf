"""``make up`` / ``make down`` (issue 14): the webserver and the daemon (not ``dagster dev``) start against the
instance in DAGSTER_HOME, bound to 127.0.0.1, with PID files and logs there; the UI lists the failure sensor, the
report schedules and daily_performance (issue 13); the daemon runs the sensors; a second
``up`` starts nothing new; ``down`` stops exactly those processes — an unrelated process, even one whose PID a stale
PID file names, is left alone."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from cryptotracker_assets.daemon_ctl import cmdline, down, up
from cryptotracker_tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graphql(port: int, query: str) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())["data"]


SYMBOLS = ("BTC", "ETH")


def launch(port: int, job: str, day: str) -> str:
    """Submit a run through the webserver (the queued run coordinator; the daemon launches it)."""
    asset = job.removesuffix("_job")
    params = {"selector": {"repositoryLocationName": "cryptotracker", "repositoryName": "__repository__",
                           "jobName": job},
              "runConfigData": {"ops": {asset: {"config": {"symbols": list(SYMBOLS),
                                                           "as_of": "2026-03-03T00:00:00+00:00"}}}},
              "executionMetadata": {"tags": [{"key": "dagster/partition", "value": day}]}}
    q = ("mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename "
         "... on LaunchRunSuccess { run { runId } } ... on PythonError { message } "
         "... on RunConfigValidationInvalid { errors { message } } } }")
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql",
                                 data=json.dumps({"query": q, "variables": {"p": params}}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        out = json.loads(r.read())["data"]["launchRun"]
    assert out["__typename"] == "LaunchRunSuccess", out
    return out["run"]["runId"]


def wait_runs(home: Path, run_ids: list[str], timeout_s: float):
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(home))
    deadline = time.monotonic() + timeout_s
    while True:
        records = instance.get_run_records(dg.RunsFilter(run_ids=run_ids))
        if len(records) == len(run_ids) and all(r.dagster_run.is_finished for r in records):
            return records
        assert time.monotonic() < deadline, [(r.dagster_run.job_name, r.dagster_run.status.value) for r in records]
        time.sleep(1)


def stored_counts(warehouse: str) -> dict:
    from cryptotracker_assets.storage.warehouse import Warehouse

    wh = Warehouse(warehouse, create=False)
    out = {}
    for table in ("ohlc_1m", "ohlc_15m"):
        df = wh.read_sql(f"SELECT strftime(timestamp, '%Y-%m-%d') AS day, symbol, count(*) AS n FROM {table} "
                         f"GROUP BY 1, 2")
        out.update({(table, r.day, r.symbol): int(r.n) for r in df.itertuples()})
    return out


def alive(pid: int) -> bool:
    return bool(cmdline(pid))


def test_up_serves_and_runs_sensors_then_down_stops_exactly_those(tmp_env, monkeypatch):
    home = Path(tmp_env["DAGSTER_HOME"])
    for k, v in tmp_env.items():
        monkeypatch.setenv(k, v)
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    port = free_port()
    try:
        pids = up(home, bin_dir=Path(sys.executable).parent, port=port, workspace=PROJECT_ROOT / "workspace.yaml",
                  wait_s=120)
        assert set(pids) == {"webserver", "daemon"} and all(alive(p) for p in pids.values())
        assert "dagster-webserver" in cmdline(pids["webserver"]) and "127.0.0.1" in cmdline(pids["webserver"])
        assert "dagster-daemon" in cmdline(pids["daemon"])
        assert (home / "services" / "daemon.pid").read_text().strip() == str(pids["daemon"])
        # the UI serves the operators' view: the failure sensor, the report schedules, daily_performance
        ui = graphql(port, "{ repositoriesOrError { ... on RepositoryConnection { nodes { sensors { name } "
                           "schedules { name } } } } assetNodes { assetKey { path } } }")
        repo = ui["repositoriesOrError"]["nodes"][0]
        assert {"run_failure_alert_sensor", "check_alert_sensor"} <= {x["name"] for x in repo["sensors"]}
        assert {f"{k}_report_schedule" for k in ("morning", "midday", "evening", "weekly")} <= {
            x["name"] for x in repo["schedules"]}
        assert {"daily_performance", "html_report", "trading_report"} <= {
            a["assetKey"]["path"][-1] for a in ui["assetNodes"]}
        # the daemon evaluates the sensors that run by default (the outbox delivery, the alert sensors)
        log = home / "services" / "daemon.log"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and "outbox_delivery_sensor" not in log.read_text(errors="replace"):
            time.sleep(1)
        assert "outbox_delivery_sensor" in log.read_text(errors="replace"), log.read_text(errors="replace")[-3000:]
        # overlapping runs that write the warehouse, launched through the queued coordinator and the daemon: all
        # succeed (the one-slot warehouse pool serialises their warehouse steps), no lock error, the data complete
        launched = [launch(port, job, day) for job in ("ohlc_1m_job", "ohlc_15m_job")
                    for day in ("2026-03-01", "2026-03-02")]
        runs = wait_runs(home, launched, timeout_s=150)
        assert {r.dagster_run.status.value for r in runs} == {"SUCCESS"}, [
            (r.dagster_run.job_name, r.dagster_run.status.value) for r in runs]
        counts = stored_counts(tmp_env["CRYPTOTRACKER_WAREHOUSE"])
        assert counts == {("ohlc_1m", d, s): 1440 for d in ("2026-03-01", "2026-03-02") for s in SYMBOLS} | {
            ("ohlc_15m", d, s): 96 for d in ("2026-03-01", "2026-03-02") for s in SYMBOLS}
        # a second `up` starts nothing new
        assert up(home, bin_dir=Path(sys.executable).parent, port=port,
                  workspace=PROJECT_ROOT / "workspace.yaml", wait_s=30) == pids
        stopped = down(home, grace_s=20)
        assert stopped == pids
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(alive(p) for p in pids.values()):
            time.sleep(0.2)
        assert not any(alive(p) for p in pids.values())
        assert not (home / "services" / "daemon.pid").exists()
        # a stale PID file naming another program: `down` leaves that program alone
        (home / "services" / "webserver.pid").write_text(f"{bystander.pid}\n")
        assert down(home, grace_s=1) == {"webserver": None, "daemon": None}
        assert bystander.poll() is None
    finally:
        down(home, grace_s=5)
        bystander.kill()


def recording_launches(monkeypatch) -> list:
    """The processes `up` starts, recorded (to prove a failed `up` left none of them running)."""
    import cryptotracker_assets.daemon_ctl as ctl

    procs, real = [], ctl.launch

    def launch(*args, **kwargs):
        procs.append(real(*args, **kwargs))
        return procs[-1]

    monkeypatch.setattr(ctl, "launch", launch)
    return procs


def group_gone(pid: int, within_s: float = 10.0) -> bool:
    """No process of the group ``pid`` is left (within a few seconds: a killed grandchild is reaped by init)."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)


def test_up_names_a_code_location_that_fails_to_load(tmp_env, tmp_path, monkeypatch):
    """A webserver that answers while its code location failed to load is not "up": the UI would list nothing.
    `up` names the location's error and stops the webserver it started (the daemon is never started)."""
    home = Path(tmp_env["DAGSTER_HOME"])
    for k, v in tmp_env.items():
        monkeypatch.setenv(k, v)
    (tmp_path / "broken_defs.py").write_text("raise ValueError('broken on purpose: 7f3a')\n")
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text("load_from:\n  - python_file:\n      relative_path: broken_defs.py\n"
                         "      location_name: broken\n")
    procs = recording_launches(monkeypatch)
    try:
        with pytest.raises(SystemExit) as err:
            up(home, bin_dir=Path(sys.executable).parent, port=free_port(), workspace=workspace, wait_s=120)
        assert "code location failed to load: broken:" in str(err.value)
        assert "broken on purpose: 7f3a" in str(err.value)
        assert [p.args[0].rsplit("/", 1)[-1] for p in procs] == ["dagster-webserver"]
        assert all(group_gone(p.pid) for p in procs)  # the webserver and its code server are stopped
        assert not list((home / "services").glob("*.pid"))
    finally:
        down(home, grace_s=5)


def test_up_refuses_a_taken_port_and_names_a_service_that_exits(tmp_env, tmp_path, monkeypatch):
    home = Path(tmp_env["DAGSTER_HOME"])
    for k, v in tmp_env.items():
        monkeypatch.setenv(k, v)
    procs = recording_launches(monkeypatch)
    # another program listens on the port: nothing is started, the message names the port and a way out
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        with pytest.raises(SystemExit, match=f"port {port} on 127.0.0.1 is in use by another program"):
            up(home, bin_dir=Path(sys.executable).parent, port=port, wait_s=30)
    assert procs == [] and not list((home / "services").glob("*.pid"))
    # a webserver that dies while starting: said at once with the end of its log, not after the whole wait
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("dagster", "dagster-daemon"):
        (bin_dir / name).symlink_to(Path(sys.executable).parent / name)
    fake = bin_dir / "dagster-webserver"
    fake.write_text("#!/bin/sh\necho 'cannot start: 5e1d' >&2\nexit 3\n")
    fake.chmod(0o755)
    started = time.monotonic()
    try:
        with pytest.raises(SystemExit) as err:
            up(home, bin_dir=bin_dir, port=free_port(), wait_s=120)
        assert "webserver exited with code 3 while starting" in str(err.value)
        assert "cannot start: 5e1d" in str(err.value) and time.monotonic() - started < 60
        assert len(procs) == 1 and all(group_gone(p.pid) for p in procs)  # the daemon was never started
        assert not list((home / "services").glob("*.pid"))
    finally:
        down(home, grace_s=5)
