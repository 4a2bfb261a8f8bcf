"""One new base bar → committed fills through the sensor and the chain (issue 9; goal < 10 s), for a tick at 00:05 UTC
and a tick at 23:55 UTC with the 97 active symbols: the scan of today's partition is incremental, so the two cost
the same. Measured on a temp DAGSTER_HOME and warehouse: the sensor evaluation and the run it requests, in-process
(``paper_engine_job``: features_scan, market_regime → scan_preview → the engine's outputs, setups, board); then the
same run as a ``dagster job execute`` subprocess (what the daemon's run launcher adds: a fresh process that loads the
code location). ``BENCH_DAYS_BACK`` days of history before the measured day make every read realistic (default 5 =
the scan warm-up)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd

warnings.filterwarnings("ignore")

ROOT = Path(__file__).resolve().parent.parent
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _ingest(job, instance, key: str, as_of: pd.Timestamp, incremental: bool = False) -> None:
    ops = {"as_of": as_of.isoformat(), **({"incremental": True} if incremental else {})}
    assert job.execute_in_process(partition_key=key, instance=instance,
                                  run_config={**QUIET, "ops": {"ohlc_1m": {"config": ops}}}).success


def _cycle_points(result) -> int:
    for ev in result.get_asset_materialization_events():
        mat = ev.step_materialization_data.materialization
        if mat.asset_key.to_user_string() == "paper_trades":
            return int(mat.metadata["cycle_points"].value)
    raise AssertionError("no paper_trades materialization")


def _steps(instance, run_id: str) -> tuple[dict[str, float], float]:
    """Seconds per step of a run, and from the run's start to the paper-engine step's end (fills committed)."""
    start: dict[str, float] = {}
    took: dict[str, float] = {}
    first = None
    engine_done = None
    for e in instance.all_logs(run_id):
        ev = e.dagster_event
        if ev is None:
            continue
        first = e.timestamp if first is None else first
        if ev.event_type_value == "STEP_START":
            start[ev.step_key] = e.timestamp
        elif ev.event_type_value == "STEP_SUCCESS" and ev.step_key in start:
            took[ev.step_key] = e.timestamp - start[ev.step_key]
            if ev.step_key == "paper_engine":
                engine_done = e.timestamp - first
    return took, engine_done if engine_done is not None else float("nan")


def _tick(defs, instance, engine_job, ingest, key: str, at: pd.Timestamp) -> tuple[float, float, int, float, dict]:
    """The bar opening at ``at`` − 1 min arrives; the sensor sees it; its run commits the tick."""
    import dagster as dg

    _ingest(ingest, instance, key, at + pd.Timedelta(seconds=30), incremental=True)
    sensor = next(s for s in defs.sensors if s.name == "paper_engine_sensor")
    t0 = time.perf_counter()
    tick = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, repository_def=defs.get_repository_def()))
    t_sensor = time.perf_counter() - t0
    req = list(tick.run_requests)[-1]
    t0 = time.perf_counter()
    result = engine_job.execute_in_process(partition_key=req.partition_key, instance=instance, run_config=QUIET,
                                           tags=req.tags)
    t_run = time.perf_counter() - t0
    assert result.success
    steps, to_fills = _steps(instance, result.run_id)
    return t_sensor, t_run, _cycle_points(result), to_fills, steps


def measure(tmp: str, env_extra: dict[str, str] | None = None, verbose: bool = True) -> tuple[dict, list]:
    """Ticks at 00:05 and 23:55 UTC of a day two days ago on a fresh home and warehouse under ``tmp``
    (``env_extra``: e.g. a user config). Returns (the environment, the rows of the two ticks)."""
    import dagster as dg

    from cryptotracker_assets.definitions import build_definitions
    from cryptotracker_assets.storage.warehouse import Warehouse

    back = int(os.environ.get("BENCH_DAYS_BACK", "5"))
    home = Path(tmp) / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    env = {"DAGSTER_HOME": str(home), "CRYPTOTRACKER_WAREHOUSE": str(Path(tmp) / "w.duckdb"), **(env_extra or {})}
    defs = build_definitions(env)
    n_symbols = len(defs.resources["project_config"].universe().active_symbols)
    day = pd.Timestamp.now(tz="UTC").floor("1D") - pd.Timedelta(days=2)
    key = day.strftime("%Y-%m-%d")
    prev = (day - pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        ingest = defs.resolve_job_def("ohlc_1m_job")
        engine_job = defs.resolve_job_def("paper_engine_job")
        t0 = time.perf_counter()
        for k in range(back, 0, -1):
            d = day - pd.Timedelta(days=k)
            _ingest(ingest, instance, d.strftime("%Y-%m-%d"), d + pd.Timedelta(days=1))
        assert engine_job.execute_in_process(partition_key=prev, instance=instance, run_config=QUIET).success
        if verbose:
            print(f"setup: {n_symbols} active symbols, {back} days of 1m bars, the engine run through {prev} "
                  f"({time.perf_counter() - t0:.1f} s)")
        rows = []
        rows.append(("00:05", *_tick(defs, instance, engine_job, ingest, key, day + pd.Timedelta(minutes=5))))
        t0 = time.perf_counter()
        _ingest(ingest, instance, key, day + pd.Timedelta(hours=23, minutes=50, seconds=30), incremental=True)
        assert engine_job.execute_in_process(partition_key=key, instance=instance, run_config=QUIET).success
        if verbose:
            print(f"(the day up to 23:50 ingested and processed: {time.perf_counter() - t0:.1f} s)")
        rows.append(("23:55", *_tick(defs, instance, engine_job, ingest, key,
                                     day + pd.Timedelta(hours=23, minutes=55))))
        cursor = Warehouse(env["CRYPTOTRACKER_WAREHOUSE"]).engine_state()["cursor"]
        assert cursor == day + pd.Timedelta(hours=23, minutes=55), cursor
    return {**env, "key": key}, rows


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env, rows = measure(tmp)
        key = env.pop("key")
        for at, s, r, n, fills, steps in rows:
            print(f"tick at {at} UTC: sensor {s * 1000:.0f} ms → chain run in-process ({n} cycle point(s)): "
                  f"fills committed {s + fills:.2f} s after the sensor tick, whole run {r:.2f} s; total "
                  f"{s + r:.2f} s (goal < 10 s)")
            print("  steps: " + ", ".join(f"{k} {v:.2f}s" for k, v in steps.items()))
        print(f"23:55 / 00:05 cost ratio: {(rows[1][1] + rows[1][2]) / (rows[0][1] + rows[0][2]):.2f} "
              f"(incremental scan: ≈ 1)")
        # The daemon launches each run in a fresh process: measure that launch + (empty) run once.
        t0 = time.perf_counter()
        proc = subprocess.run(
            [str(Path(sys.executable).parent / "dagster"), "job", "execute", "-m", "cryptotracker_assets.definitions",
             "-a", "defs", "-j", "paper_engine_job", "--tags", f'{{"dagster/partition": "{key}"}}'],
            capture_output=True, text=True, env={**os.environ, **env}, cwd=ROOT, timeout=600)
        t_proc = time.perf_counter() - t0
        status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}"
        print(f"the same run as a `dagster job execute` subprocess (fresh process + code load): {t_proc:.1f} s "
              f"({status}); the engine tick's own core time is in bench_engine")


if __name__ == "__main__":
    main()
