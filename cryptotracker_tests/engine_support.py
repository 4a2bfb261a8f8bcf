"""Shared by the engine-records, outbox and keys tests: a prepared warehouse built once per module (bars and the
scan inputs of two synthetic days, through Dagster, the engine not run) and copied per test, and the bodies of the
child processes those tests start (spawned: they import nothing of Dagster).

A child process is what a second process of the platform is: DuckDB lets one process at a time hold the file, so
"the warehouse is locked" and "the process died" can only be shown with another process."""

from __future__ import annotations

import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

DAYS = ["2026-02-02", "2026-02-03"]
SCAN_INPUTS = ("market_regime", "features_scan", "scan_preview")
PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The small universe of the feature tests, with the #trades messages switched on (more messages to queue).
UNIVERSE = """
universe:
  large_cap: [BTC, ETH, SOL]
  mid_cap: [LINK, AVAX]
  small_cap: [DOGE]
  memecoin: [PEPE]
  inactive: {inactive}
prioritisation: {{symbols: [BTC, ETH, SOL, LINK, AVAX, DOGE, PEPE]}}
notifications: {{trade_events: true}}
"""


def user_config(inactive: tuple[str, ...] = (), extra: str = "") -> str:
    return UNIVERSE.format(inactive=f"[{', '.join(inactive)}]") + extra


@dataclass(frozen=True)
class World:
    """A warehouse file, the user config it was built with and the Dagster home of its runs."""

    warehouse: Path
    config: Path
    home: Path

    def env(self, config: Path | None = None) -> dict[str, str]:
        return {"DAGSTER_HOME": str(self.home), "CRYPTOTRACKER_WAREHOUSE": str(self.warehouse),
                "CRYPTOTRACKER_CONFIG": str(config or self.config),
                "CRYPTOTRACKER_MODELS": str(self.warehouse.parent / "models")}  # never the working tree's models/

    def copy(self, dest: Path) -> "World":
        """The same warehouse and config in ``dest`` (a new Dagster home: run history is not copied)."""
        dest.mkdir(parents=True, exist_ok=True)
        home = dest / "dagster_home"
        home.mkdir(exist_ok=True)
        (home / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
        shutil.copy(self.warehouse, dest / "warehouse.duckdb")
        shutil.copy(self.config, dest / "user_config.yaml")
        return World(dest / "warehouse.duckdb", dest / "user_config.yaml", home)


def engine_config(warehouse: Path | str, config: Path | str):
    """The config as the engine's runs load it: the user file with its ``config_version`` from the warehouse."""
    from cryptotracker_assets.core.config import load_config
    from cryptotracker_assets.services.config_versions import origin_of, versioned
    from cryptotracker_assets.storage.warehouse import Warehouse

    return versioned(Warehouse(warehouse), load_config(str(config)), origin_of(str(config)))


def new_world(dest: Path, config_text: str) -> World:
    dest.mkdir(parents=True, exist_ok=True)
    home = dest / "dagster_home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
    (dest / "user_config.yaml").write_text(config_text)
    return World(dest / "warehouse.duckdb", dest / "user_config.yaml", home)


def ingest_and_scan(world: World, days, *, config: Path | None = None, as_of: str | None = None,
                    scan: bool = True) -> None:
    """Materialize ``ohlc_1m`` (synthetic source, its default symbols) and, if ``scan``, the scan inputs for ``days``
    in Dagster (``as_of``: only the bars closed then, for the last day)."""
    import dagster as dg

    from cryptotracker_assets.definitions import build_definitions

    defs = build_definitions(world.env(config))
    graph = defs.resolve_asset_graph()
    sel = dg.AssetSelection.assets(*SCAN_INPUTS)
    scan_job = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection=sel.resolve(graph), asset_check_selection=sel.resolve_checks(graph))
    ingest = defs.resolve_job_def("ohlc_1m_job")
    with dg.instance_for_test(temp_dir=str(world.home)) as instance:
        for i, d in enumerate(days):
            run_config = None
            if as_of is not None and i == len(days) - 1:
                run_config = {"ops": {"ohlc_1m": {"config": {"as_of": as_of}}}}
            assert ingest.execute_in_process(partition_key=d, instance=instance, run_config=run_config).success
        for d in days if scan else ():
            assert scan_job.execute_in_process(partition_key=d, instance=instance).success


def prepared_world(dest: Path, inactive: tuple[str, ...] = ()) -> World:
    """Two synthetic days of bars and scan inputs (the engine has not run)."""
    world = new_world(dest, user_config(inactive))
    ingest_and_scan(world, DAYS)
    return world


def at(day: int, hhmm: str, seconds: int = 0) -> pd.Timestamp:
    """``DAYS[day]`` at ``hh:mm`` (+ seconds), UTC."""
    return pd.Timestamp(f"{DAYS[day]} {hhmm}", tz="UTC") + pd.Timedelta(seconds=seconds)


# --- child processes (multiprocessing "spawn" targets) ----------------------------------------------------------


def hold_lock(path: str, held, release) -> None:
    """Hold the warehouse file (DuckDB's process lock) until ``release`` is set."""
    import duckdb

    con = duckdb.connect(path)
    held.set()
    release.wait(120)
    con.close()


def hold_lock_for(path: str, seconds: float, held) -> None:
    """Hold the warehouse file for ``seconds`` (a long commit of another process)."""
    import time

    import duckdb

    con = duckdb.connect(path)
    held.set()
    time.sleep(seconds)
    con.close()


def tick_holding_lock(path: str, config: str, until: str, stamp_after_ns: int, clock_ns, held, go) -> None:
    """Hold the warehouse file; on ``go`` run one engine tick (cycle points before ``until``) in this process; once
    it committed, move the shared clock past the cycle point to ``stamp_after_ns``, then release the file."""
    import duckdb

    from cryptotracker_assets.services.engine_runner import run_tick
    from cryptotracker_assets.storage.warehouse import Warehouse

    hold = duckdb.connect(path)
    held.set()
    go.wait(120)
    run_tick(Warehouse(path), engine_config(path, config), until=pd.Timestamp(until))
    clock_ns.value = stamp_after_ns
    hold.close()


def tick_then_die(path: str, config: str, until: str) -> None:
    """One engine tick that commits, then SIGKILL before anything else happens (no delivery)."""
    from cryptotracker_assets.services.engine_runner import run_tick
    from cryptotracker_assets.storage.warehouse import Warehouse

    result = run_tick(Warehouse(path), engine_config(path, config), until=pd.Timestamp(until))
    assert result.tick_id is not None and result.messages > 0
    os.kill(os.getpid(), signal.SIGKILL)


def deliver_then_die(path: str, sent_log: str, die_after: int) -> None:
    """A delivery pass whose notifier writes each text to ``sent_log`` (the receiving end) and whose process is
    SIGKILLed right after the ``die_after``-th send returned: between that send and its delivered mark."""
    from cryptotracker_assets.services.outbox import Pacing, deliver
    from cryptotracker_assets.storage.warehouse import Warehouse

    sends = 0

    def send(channel_key: str, message, channel: str) -> None:
        nonlocal sends
        with open(sent_log, "a") as f:
            f.write(message.text.replace("\n", " / ") + "\n")  # one line per sent message
            f.flush()
            os.fsync(f.fileno())
        sends += 1
        if sends == die_after:
            os.kill(os.getpid(), signal.SIGKILL)

    deliver(Warehouse(path), send, pacing=Pacing(min_interval_s=0.0))
