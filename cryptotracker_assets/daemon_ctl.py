"""``make up`` / ``make down``: the Dagster webserver and daemon as two background processes (not ``dagster dev``)
against the instance in ``$DAGSTER_HOME`` (SQLite by default; ``DAGSTER_INSTANCE=dagster.postgres.yaml`` for
PostgreSQL), bound to 127.0.0.1, with their PIDs in ``$DAGSTER_HOME/services/<name>.pid`` and their logs in
``$DAGSTER_HOME/services/<name>.log``. Schedules and sensors run under this daemon.

``down`` stops exactly the processes ``up`` started: a PID file is trusted only while that PID still runs the
command it was started with (a PID reused by another program is left alone), and each service's process group
(the daemon's own subprocesses) gets SIGTERM, then SIGKILL after ``grace_s``. ``up`` creates or migrates the
instance storage first (one process), refuses a port another program holds, and returns only once the code location
has loaded; when it fails (a service exits, the location does not load) it names why and stops what it started.
Never imports dagster.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Service:
    name: str
    argv: list[str]
    marker: str  # a word of the command line that identifies the process (the PID check)


def services(bin_dir: Path, host: str, port: int, workspace: Path) -> list[Service]:
    """In start order: the webserver first (it creates the instance's storage), then the daemon."""
    return [Service("webserver", [str(bin_dir / "dagster-webserver"), "-h", host, "-p", str(port), "-w",
                                  str(workspace)], "dagster-webserver"),
            Service("daemon", [str(bin_dir / "dagster-daemon"), "run", "-w", str(workspace)], "dagster-daemon")]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def running(pid_file: Path, marker: str) -> int | None:
    """The PID of ``pid_file`` when that process is alive and still runs the service (``marker`` in its command)."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if marker in cmdline(pid) else None


def up(home: Path, *, bin_dir: Path, host: str = "127.0.0.1", port: int = 3000,
       workspace: Path = PROJECT_ROOT / "workspace.yaml", wait_s: float = 90.0) -> dict[str, int]:
    """Start the services that are not running; returns name → PID. The webserver starts first and must answer with
    every code location loaded before the daemon starts. Any failure (a taken port, a service that exits, a location
    that does not load, Ctrl-C) raises after stopping what this call started."""
    if not (home / "dagster.yaml").exists():
        raise SystemExit(f"no Dagster instance at {home} (dagster.yaml missing): run `make up`, which creates it")
    (home / "services").mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    todo = [s for s in services(bin_dir, host, port, workspace)
            if running(home / "services" / f"{s.name}.pid", s.marker) is None]
    if any(s.name == "webserver" for s in todo) and port_in_use(host, port):
        raise SystemExit(f"port {port} on {host} is in use by another program: stop it, or choose another port "
                         f"(DAGSTER_PORT={port + 1} make up)")
    started: dict[str, subprocess.Popen] = {}

    def check() -> None:  # a service that exited while we wait: say so with its log's tail, not a timeout
        for name, proc in started.items():
            if proc.poll() is not None:
                raise SystemExit(f"{name} exited with code {proc.returncode} while starting; the end of "
                                 f"{home / 'services' / (name + '.log')}:\n{log_tail(home, name)}")

    deadline = time.monotonic() + wait_s
    ok = False
    try:
        if todo and fresh_sqlite_instance(home):
            prepare_instance(bin_dir, home, env)
        pids = {}
        for s in services(bin_dir, host, port, workspace):
            pid = running(home / "services" / f"{s.name}.pid", s.marker)
            if pid is None:
                started[s.name] = launch(s, home, env, workspace)
                pid = started[s.name].pid
            pids[s.name] = pid
            if s.name == "webserver":
                wait_ready(host, port, deadline, home, check)
        check()
        ok = True
        return pids
    finally:
        if not ok:
            for name, proc in started.items():  # a failed `up` leaves nothing of its own running
                stop_started(proc, 10.0)
                (home / "services" / f"{name}.pid").unlink(missing_ok=True)


def launch(s: Service, home: Path, env: dict, workspace: Path) -> subprocess.Popen:
    with open(home / "services" / f"{s.name}.log", "ab") as log:
        proc = subprocess.Popen(s.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                cwd=str(workspace.parent), start_new_session=True)
    (home / "services" / f"{s.name}.pid").write_text(f"{proc.pid}\n")
    # right after exec the kernel may show an empty command line for a moment: wait it out, so that the PID
    # check (``running``: the command names the service) holds as soon as `up` returns
    deadline = time.monotonic() + 10.0
    while not cmdline(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return proc


def stop_started(proc: subprocess.Popen, grace_s: float) -> None:
    """Stop a service this process started (its child: waited for, so its group gets the whole grace)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the leader, or what is left of its group (its code server)
    except ProcessLookupError:
        pass
    proc.wait()


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def log_tail(home: Path, name: str, lines: int = 15) -> str:
    try:
        return "\n".join((home / "services" / f"{name}.log").read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def fresh_sqlite_instance(home: Path) -> bool:
    """An embedded (SQLite) instance whose storage does not exist yet. (PostgreSQL storage: the webserver, started
    alone first, creates it.)"""
    return "postgres" not in (home / "dagster.yaml").read_text() and not (home / "history" / "runs.db").exists()


def prepare_instance(bin_dir: Path, home: Path, env: dict) -> None:
    """Create a fresh SQLite instance's storage in one process before any service starts: a webserver and its code
    server (or a daemon) creating it at once can fail to load the code location ("alembic_version has more than one
    head"), leaving a UI with no assets. Run only on a fresh instance: on a large one a migration rereads every
    run's event log."""
    try:
        done = subprocess.run([str(bin_dir / "dagster"), "instance", "migrate"], env=env, cwd=str(home),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SystemExit(f"could not prepare the Dagster instance at {home}: {exc}") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise SystemExit(f"could not prepare the Dagster instance at {home}: " + " | ".join(tail))


LOCATIONS = ("{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus "
             "locationOrLoadError { __typename ... on PythonError { message causes { message } } } } } "
             "... on PythonError { message } } }")


def location_states(graphql_url: str) -> list[tuple[str, str, str | None]]:
    """(location, load status, load error or None) for every code location the webserver knows; raises
    ``RuntimeError`` naming what came back when the answer is not a workspace."""
    req = urllib.request.Request(graphql_url, data=json.dumps({"query": LOCATIONS}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - our own 127.0.0.1 server
        body = json.loads(r.read())
    ws = (body.get("data") or {}).get("workspaceOrError") or {}
    if ws.get("__typename") != "Workspace":
        raise RuntimeError(f"the webserver's workspace query answered {str(ws.get('message') or body)[:500]}")
    out = []
    for e in ws.get("locationEntries") or []:
        err = e.get("locationOrLoadError") or {}
        message = None
        if err.get("__typename") == "PythonError":  # the error, then what caused it (the user's own exception)
            message = " | caused by: ".join(m["message"].strip() for m in [err, *(err.get("causes") or [])])
        out.append((e["name"], e["loadStatus"], message))
    return out


def wait_ready(host: str, port: int, deadline: float, home: Path, check) -> None:
    """Until ``deadline``: the webserver answers and every code location is LOADED (a webserver whose location
    failed to load still answers, with a UI that shows no assets, sensors or schedules: that is an error naming the
    location and its message); ``check()`` runs between attempts."""
    url = f"http://{host}:{port}/graphql"
    last = "no answer yet"
    while time.monotonic() < deadline:
        check()
        try:
            states = location_states(url)
        except (OSError, ValueError, RuntimeError, http.client.HTTPException) as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            failed = [(n, e) for n, status, e in states if e]
            if failed:
                raise SystemExit("code location failed to load: " + "; ".join(f"{n}: {e[-3000:]}" for n, e in failed))
            if states and all(status == "LOADED" for _, status, _ in states):
                return
            last = f"locations {states or 'none listed'}"
        time.sleep(0.5)
    raise SystemExit(f"the webserver at {url} was not ready in time (last: {last}); see "
                     f"{home / 'services' / 'webserver.log'}")


def down(home: Path, *, grace_s: float = 20.0) -> dict[str, int | None]:
    """Stop the services ``up`` started (their process groups); returns name → the PID stopped (None: not
    running, or its PID file names another program now)."""
    stopped: dict[str, int | None] = {}
    for name, marker in (("webserver", "dagster-webserver"), ("daemon", "dagster-daemon")):
        pid_file = home / "services" / f"{name}.pid"
        pid = running(pid_file, marker)
        stopped[name] = pid
        if pid is not None:
            stop_group(pid, grace_s)
        pid_file.unlink(missing_ok=True)
    return stopped


def stop_group(pid: int, grace_s: float) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)  # start_new_session: the service leads its own group
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        if not cmdline(pid):  # the leader is gone (a zombie of no one of ours): stop waiting for it
            break
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cryptotracker_assets.daemon_ctl", description=__doc__)
    p.add_argument("action", choices=["up", "down"])
    p.add_argument("--port", type=int, default=int(os.environ.get("DAGSTER_PORT", "3000")))
    args = p.parse_args(argv)
    home = Path(os.environ.get("DAGSTER_HOME") or PROJECT_ROOT / ".dagster_home").resolve()
    if args.action == "up":
        pids = up(home, bin_dir=Path(sys.executable).parent, port=args.port)
        print(f"Dagster instance: {home}")
        print(f"webserver (PID {pids['webserver']}): http://127.0.0.1:{args.port}   daemon (PID {pids['daemon']}): "
              f"schedules and sensors run now (the schedules are off until you enable them in the UI)")
        print(f"PIDs and logs: {home / 'services'}   stop with `make down`")
    else:
        stopped = down(home)
        for name, pid in stopped.items():
            print(f"{name}: {'stopped PID ' + str(pid) if pid else 'not running'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
