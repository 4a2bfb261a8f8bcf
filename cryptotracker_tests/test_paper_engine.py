"""The paper engine against the warehouse and in Dagster: tick by tick = one run, SIGKILL during a tick loses
nothing and duplicates nothing, the sensor and job, operator pause / close through the CLI."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

import dagster as dg
from cryptotracker_assets.cli import main as cli
from cryptotracker_assets.core.config import load_config
from cryptotracker_assets.core.ledger import check_ledger, limit_violations
from cryptotracker_assets.definitions import build_definitions
from cryptotracker_assets.services.config_versions import versioned
from cryptotracker_assets.services.engine_runner import run_tick
from cryptotracker_assets.services.operator import read_ledger
from cryptotracker_assets.storage.warehouse import Warehouse
from cryptotracker_tests.conftest import write_user_config
from cryptotracker_tests.test_feature_assets import SMALL_UNIVERSE

DAYS = ["2026-02-02", "2026-02-03"]
# The tick's history tables: the shadow decisions and exits are written in the same commit as the scan rows.
TABLES = ("paper_trades", "scan_history", "portfolio_snapshots", "shadow_outcomes", "shadow_exits")


SCAN_INPUTS = ("market_regime", "features_scan", "scan_preview")


REPLAY_CHECK = dg.AssetCheckKey(dg.AssetKey("paper_trades"), "replay_matches_ledger")


def subset_job(defs, *assets: str, audit: bool = False) -> dg.JobDefinition:
    """A job over some assets of the graph with their checks (the day audit only if ``audit``)."""
    sel = dg.AssetSelection.assets(*assets)
    if not audit:
        sel = sel - dg.AssetSelection.checks(REPLAY_CHECK)
    graph = defs.resolve_asset_graph()
    return defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection=sel.resolve(graph), asset_check_selection=sel.resolve_checks(graph))


@pytest.fixture()
def prepared(tmp_env, tmp_path, instance):
    """Two days of bars, market_regime, features_scan and scan_preview in a warehouse (small universe); the engine
    has not run."""
    user = write_user_config(tmp_path, SMALL_UNIVERSE)
    env = {**tmp_env, "CRYPTOTRACKER_CONFIG": str(user)}
    defs = build_definitions(env)
    for d in DAYS:
        assert defs.resolve_job_def("ohlc_1m_job").execute_in_process(partition_key=d, instance=instance).success
    job = subset_job(defs, *SCAN_INPUTS)
    for d in DAYS:
        assert job.execute_in_process(partition_key=d, instance=instance).success
    # the config as the runs saw it: with its recorded version (SPEC §0.3), which the stored scan rows carry
    return env, defs, versioned(Warehouse(env["CRYPTOTRACKER_WAREHOUSE"]), load_config(str(user)), str(user))


def table(wh: Warehouse, name: str) -> pd.DataFrame:
    return wh.read_sql(f"SELECT * FROM {name}") if name else None


def snapshot(wh: Warehouse) -> dict:
    out = {}
    for t in TABLES:
        df = table(wh, t)
        keys = [c for c in ("cycle_point", "timestamp", "trade_group_id", "shadow_id", "symbol", "strategy", "side",
                            "level") if c in df.columns]
        out[t] = df.sort_values(keys).reset_index(drop=True)
    out["state"] = wh.engine_state()["state_json"]
    return out


def assert_same(a: dict, b: dict) -> None:
    for t in TABLES:
        pd.testing.assert_frame_equal(a[t], b[t], check_exact=True)
    assert a["state"] == b["state"]


def test_tick_by_tick_equals_one_run(prepared, tmp_path):
    env, defs, cfg = prepared
    src = env["CRYPTOTRACKER_WAREHOUSE"]
    one, many = tmp_path / "one.duckdb", tmp_path / "many.duckdb"
    shutil.copy(src, one)
    shutil.copy(src, many)
    until = pd.Timestamp(DAYS[1], tz="UTC") + pd.Timedelta(hours=6)
    r = run_tick(Warehouse(one), cfg, until=until)
    assert r.processed == 288 + 72
    wm = Warehouse(many)
    n = 0
    while True:
        step = run_tick(wm, cfg, until=until, max_points=37)  # uneven chunks across the day boundary
        if step.processed == 0:
            break
        n += step.processed
    assert n == 360
    a, b = snapshot(Warehouse(one)), snapshot(wm)
    assert_same(a, b)
    ledger = read_ledger(Warehouse(one))
    check_ledger(ledger)
    assert (ledger["side"] == "SELL").any() and (ledger["side"] == "BUY").any()
    # exactly one scan row per active symbol × strategy × cycle point
    assert len(a["scan_history"]) == 360 * 7 * 3
    assert not a["scan_history"].duplicated(["symbol", "strategy", "timestamp"]).any()


CHILD = """
import sys, pandas as pd
from cryptotracker_assets.core.config import load_config
from cryptotracker_assets.services.config_versions import versioned
from cryptotracker_assets.services.engine_runner import run_tick
from cryptotracker_assets.storage.warehouse import Warehouse
cfg = versioned(Warehouse(sys.argv[1]), load_config(sys.argv[2]), sys.argv[2])
run_tick(Warehouse(sys.argv[1]), cfg, until=pd.Timestamp(sys.argv[3]), _crash_in_commit=sys.argv[4] == "crash")
print("done")
"""


def child(path, cfg_path, until, mode="run"):
    return subprocess.Popen([sys.executable, "-c", CHILD, str(path), cfg_path, until, mode],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigkill_during_a_tick_then_rerun_equals_an_uninterrupted_run(prepared, tmp_path):
    env, defs, cfg = prepared
    cfg_path = env["CRYPTOTRACKER_CONFIG"]
    ref, crashed, killed = (tmp_path / f"{n}.duckdb" for n in ("ref", "crashed", "killed"))
    for p in (ref, crashed, killed):
        shutil.copy(env["CRYPTOTRACKER_WAREHOUSE"], p)
    until = str(pd.Timestamp(DAYS[1], tz="UTC") + pd.Timedelta(hours=12))
    run_tick(Warehouse(ref), cfg, until=pd.Timestamp(until))
    # 1) killed inside the commit transaction, after every row was written but before COMMIT
    p = child(crashed, cfg_path, until, "crash")
    p.wait(timeout=300)
    assert p.returncode == -signal.SIGKILL
    assert Warehouse(crashed).engine_state() is None  # the old state: nothing committed
    for name in ("scan_history", "shadow_outcomes", "shadow_exits"):  # scan rows and their shadows: neither
        assert not Warehouse(crashed).table_exists(name) or table(Warehouse(crashed), name).empty
    assert not Warehouse(crashed).read_sql("SELECT count(*) AS n FROM information_schema.tables "
                                           "WHERE table_name = 'paper_trades'")["n"].iloc[0] or \
        Warehouse(crashed).read_sql("SELECT count(*) AS n FROM paper_trades")["n"].iloc[0] == 0
    # 2) killed from outside at an arbitrary moment of the tick
    p = child(killed, cfg_path, until)
    time.sleep(1.5)
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=60)
    for path in (crashed, killed):
        run_tick(Warehouse(path), cfg, until=pd.Timestamp(until))  # the rerun
        assert_same(snapshot(Warehouse(ref)), snapshot(Warehouse(path)))
        ledger = read_ledger(Warehouse(path))
        assert not ledger.duplicated(["trade_group_id", "side", "level"]).any()
        # every scan row past the data step with a setup has its shadow rows (CHAMPION at least), none without
        scans, shadows = table(Warehouse(path), "scan_history"), table(Warehouse(path), "shadow_outcomes")
        assert len(shadows) and set(shadows["scan_id"]) <= set(scans["scan_id"])
        data_ok = ~scans["reason"].isin(["stale_data", "insufficient_history", "data_suspect"])
        assert set(scans.loc[scans["setup"] & data_ok, "scan_id"]) <= set(
            shadows.loc[shadows["variation"] == "CHAMPION", "scan_id"])


def test_engine_job_sensor_idempotent_and_checks(prepared, instance):
    env, defs, cfg = prepared
    sensor = next(s for s in defs.sensors if s.name == "paper_engine_sensor")
    tick = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, repository_def=defs.get_repository_def()))
    assert sensor.job_name == "paper_engine_job" and [r.partition_key for r in tick.run_requests] == [DAYS[1]]
    job = defs.resolve_job_def("paper_engine_job")
    assert job.tags.get("cryptotracker/engine") == "tick"
    for d in DAYS:
        r = job.execute_in_process(partition_key=d, instance=instance)
        assert r.success
        ev = {e.check_name: e for e in r.get_asset_check_evaluations()}
        assert ev["ledger_invariants"].passed
    wh = Warehouse(env["CRYPTOTRACKER_WAREHOUSE"])
    before = snapshot(wh)
    again = job.execute_in_process(partition_key=DAYS[1], instance=instance)
    assert again.success
    mats = {m.asset_key.to_user_string(): m for m in again.asset_materializations_for_node("paper_engine")}
    assert set(mats) == {"paper_trades", "scan_history", "portfolio_snapshots", "engine_state", "limiter_state",
                         "engine_ticks", "notification_outbox", "shadow_outcomes", "shadow_exits"}
    assert mats["paper_trades"].metadata["cycle_points"].value == 0
    assert_same(before, snapshot(wh))
    assert not limit_violations(__import__("cryptotracker_assets.core.engine", fromlist=["EngineState"])
                                .EngineState.from_json(before["state"]).open_counts(), cfg)


def test_pause_blocks_entries_exits_continue_and_manual_close(prepared, capsys):
    env, defs, cfg = prepared
    wh = Warehouse(env["CRYPTOTRACKER_WAREHOUSE"])
    os.environ["CRYPTOTRACKER_CONFIG"] = env["CRYPTOTRACKER_CONFIG"]
    try:
        t1 = pd.Timestamp(DAYS[0], tz="UTC") + pd.Timedelta(hours=20)
        run_tick(wh, cfg, until=t1)
        open_now = read_ledger(wh)
        groups = set(open_now["trade_group_id"]) - set(open_now.loc[open_now["side"] == "SELL", "trade_group_id"])
        assert cli(["pause", "--why", "test pause", "--who", "alice", "--warehouse", wh.path]) == 0
        assert cli(["close", "NOPE_X_1_2", "--why", "x", "--warehouse", wh.path]) == 2
        target = sorted(groups)[0] if groups else None
        if target:
            assert cli(["close", target, "--why", "manual test", "--who", "bob", "--warehouse", wh.path]) == 0
        # the events are stamped now (after t1): the engine applies them from the first cycle point after them,
        # so stamp copies inside the simulated window too
        ev = wh.operator_events()
        assert list(ev["who"]) == ["alice"] + (["bob"] if target else [])
        with wh.connect() as con:
            con.execute("UPDATE operator_events SET event_time = ?", [(t1 + pd.Timedelta(seconds=30)).to_pydatetime()])
        run_tick(wh, cfg, until=t1 + pd.Timedelta(hours=8))
        scans = wh.read_sql("SELECT * FROM scan_history WHERE timestamp > ?", [t1.to_pydatetime()])
        assert not (scans["decision"] == "TAKE").any()
        assert (scans["reason"] == "paused").any()
        ledger = read_ledger(wh)
        if target:
            sell = ledger[(ledger["trade_group_id"] == target) & (ledger["side"] == "SELL")]
            assert sell["exit_reason"].tolist() == ["manual"]
            assert sell["bar_time"].iloc[0] == t1 + pd.Timedelta(minutes=cfg.engine.cycle_min)
        assert cli(["status", "--warehouse", wh.path]) == 0
        out = capsys.readouterr().out
        assert "ENTRIES PAUSED" in out and "realised:" in out and "unrealised:" in out
    finally:
        os.environ.pop("CRYPTOTRACKER_CONFIG", None)


def test_full_run_on_real_candles_through_dagster(tmp_env, tmp_path, instance, shared_data):
    """All 20 days of the real 5m BTC-quoted pairs (with the January 2018 crash): ingest, regime, setups and the
    engine in ordinary Dagster runs; positions open and close and no rule is violated."""
    from cryptotracker_tests.test_market_data_assets import real_pairs_config

    folder = shared_data / "binance_altbtc_2018-01_5m"
    pairs = sorted(p.stem for p in folder.glob("*.parquet"))
    user = write_user_config(tmp_path, real_pairs_config(pairs) + "scan: {windows_min: {rsi: 15, btc_corr: 300}}\n")
    env = {**tmp_env, "CRYPTOTRACKER_CONFIG": str(user), "CRYPTOTRACKER_MARKET_SOURCE": "files",
           "CRYPTOTRACKER_FILES_DIR": str(folder)}
    defs = build_definitions(env)
    cfg = versioned(Warehouse(env["CRYPTOTRACKER_WAREHOUSE"]), load_config(str(user)), str(user))
    days = [d.strftime("%Y-%m-%d") for d in pd.date_range("2018-01-10", "2018-01-30", freq="1D")]
    for d in days:
        assert defs.resolve_job_def("ohlc_5m_job").execute_in_process(partition_key=d, instance=instance).success
    tags = {"dagster/asset_partition_range_start": days[0], "dagster/asset_partition_range_end": days[-1]}
    r = defs.resolve_job_def("paper_engine_job").execute_in_process(instance=instance, tags=tags)
    assert r.success
    assert {e.check_name: e for e in r.get_asset_check_evaluations()}["ledger_invariants"].passed
    wh = Warehouse(env["CRYPTOTRACKER_WAREHOUSE"])
    ledger = read_ledger(wh)
    check_ledger(ledger)
    sells = ledger[ledger["side"] == "SELL"]
    assert (ledger["side"] == "BUY").sum() >= 10 and len(sells) >= 5
    state = wh.engine_state()
    # the last bar opens 04:50 and closes 04:55: the last cycle point that sees it is 04:55
    assert state["cursor"] == pd.Timestamp("2018-01-30 04:55", tz="UTC")
    from cryptotracker_assets.core.engine import EngineState

    assert not limit_violations(EngineState.from_json(state["state_json"]).open_counts(), cfg)
    # exits respect max hold (+ the no-data grace) and happen after their entry
    buys = ledger[(ledger["side"] == "BUY") & (ledger["level"] == 0)].set_index("trade_group_id")["bar_time"]
    held = sells.set_index("trade_group_id")["bar_time"] - buys.reindex(sells["trade_group_id"]).to_numpy()
    limit = pd.Timedelta(hours=cfg.exits.max_hold_h) + pd.Timedelta(minutes=cfg.exits.no_data_grace_min)
    assert (held >= pd.Timedelta(0)).all() and (held <= limit).all()
    # one scan row per active symbol × strategy × cycle point; no entries under PANIC
    scans = wh.read_sql("SELECT s.*, m.regime AS mr FROM scan_history s JOIN market_regime m USING (timestamp)")
    assert not scans.duplicated(["symbol", "strategy", "timestamp"]).any()
    assert not ((scans["decision"] == "TAKE") & (scans["mr"] == "PANIC")).any()
    assert (scans["mr"] == "PANIC").any()
    # The engine traded on the stored scan_preview rows; the engine computing its own scan from the stored bars
    # gives exactly the stored ledger, scan history and snapshots (bit for bit).
    from cryptotracker_assets.core.engine import EngineInputs, run_engine

    snaps = wh.read_slice("portfolio_snapshots", "cycle_point")
    _, own = run_engine(EngineState(), EngineInputs(cfg=cfg, bars=wh.read_bars("5m"),
                                                    market_regime=wh.read_slice("market_regime", "timestamp")),
                        pd.DatetimeIndex(snaps["cycle_point"]))
    stored_scan = wh.read_slice("scan_history", "timestamp", order_by=())
    stored_ledger = ledger.reset_index(drop=True)
    for key, stored, mine in ((["trade_group_id", "side", "level"], stored_ledger, own.ledger_rows),
                              (["scan_id"], stored_scan, own.scan_rows), (["cycle_point"], snaps, own.snapshots)):
        assert list(stored.columns) == list(mine.columns) and len(stored) == len(mine)
        pd.testing.assert_frame_equal(stored.sort_values(key).reset_index(drop=True),
                                      mine.sort_values(key).reset_index(drop=True), check_exact=True,
                                      check_dtype=False)
