"""config_version (SPEC §0.3, issue 10 item 5): one integer sequence in ``config_versions``, +1 per distinct effective
config seen at load, recorded atomically with its content hash, origin and values; every row a run writes carries the
version of the config it was computed under; a replay rebuilds the config that was in force for a version."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
from contextlib import contextmanager

import duckdb
import pandas as pd
import pytest

import dagster as dg
from cryptotracker_assets.core.config import ConfigError, load_config, raw_dict
from cryptotracker_assets.definitions import build_definitions
from cryptotracker_assets.services.config_versions import (config_for_version, config_of_day, origin_of,
                                                           record_version, versioned)
from cryptotracker_assets.storage.warehouse import Warehouse
from cryptotracker_tests.conftest import write_user_config
from cryptotracker_tests.test_feature_assets import SMALL_UNIVERSE
from cryptotracker_tests.test_paper_engine import DAYS, subset_job

NOW = pd.Timestamp("2026-02-01 12:00", tz="UTC")
# A value that matters: the DCA entry thresholds of two tiers (the defaults are -0.0175 and -0.025).
LAST = "2026-02-04"  # the day after the edit
EDIT = "strategies: {dca: {drop_threshold: {large_cap: -0.012, mid_cap: -0.015}}}\n"
ENGINE_OUTPUTS = ("paper_trades", "scan_history", "portfolio_snapshots", "engine_state", "limiter_state",
                  "engine_ticks", "notification_outbox", "shadow_outcomes", "shadow_exits")


def _user(tmp_path, text: str):
    return write_user_config(tmp_path, text)


def test_versions_start_at_one_and_grow_only_with_new_content(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    a = load_config(str(_user(tmp_path, SMALL_UNIVERSE)))
    b = load_config(str(_user(tmp_path, SMALL_UNIVERSE + EDIT)))
    assert a.config_version == 0 and a.fingerprint() != b.fingerprint()
    first = record_version(wh, a, "user.yaml", NOW)
    assert (first.config_version, first.created, first.content_hash) == (1, True, a.fingerprint())
    again = record_version(wh, a, "user.yaml", NOW + pd.Timedelta(hours=1))
    assert (again.config_version, again.created, again.recorded_at) == (1, False, NOW)  # the stored row
    assert versioned(wh, b, "user.yaml", NOW).config_version == 2
    assert versioned(wh, b, "user.yaml", NOW).config_version == 2
    # back to the first content: a change seen at load, so the next integer (compared with the latest only)
    assert versioned(wh, a, "config.yaml", NOW).config_version == 3
    rows = wh.config_versions()
    assert rows["config_version"].tolist() == [1, 2, 3]
    assert rows["content_hash"].tolist() == [a.fingerprint(), b.fingerprint(), a.fingerprint()]
    assert rows["origin"].tolist() == ["user.yaml", "user.yaml", "config.yaml"]
    assert json.loads(rows["values_json"].iloc[1]) == raw_dict(b)
    assert origin_of(None) == "config.yaml" and origin_of("/x/u.yaml") == "/x/u.yaml"


def test_config_for_version_rebuilds_the_config_in_force(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    a = load_config(str(_user(tmp_path, SMALL_UNIVERSE)))
    b = load_config(str(_user(tmp_path, SMALL_UNIVERSE + EDIT)))
    versioned(wh, a, "u", NOW)
    versioned(wh, b, "u", NOW)
    one, two = config_for_version(wh, 1), config_for_version(wh, 2)
    assert (one.config_version, one.fingerprint()) == (1, a.fingerprint())
    assert (two.config_version, two.fingerprint()) == (2, b.fingerprint())
    assert two.strategies.dca.drop_threshold.large_cap == -0.012
    assert one.strategies.dca.drop_threshold.large_cap == -0.0175
    with pytest.raises(ConfigError, match="config_version 7 is not recorded"):
        config_for_version(wh, 7)
    # values that no longer give the recorded hash are refused, never silently rebuilt
    with wh.transaction() as con:
        con.execute("UPDATE config_versions SET content_hash = 'x' WHERE config_version = 1")
    with pytest.raises(ConfigError, match="config_version 1 .* no longer give the recorded content hash"):
        config_for_version(wh, 1)


def test_a_warehouse_with_unnumbered_rows_keeps_them_aside_and_starts_at_one(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE config_versions (config_version BIGINT NOT NULL, fingerprint VARCHAR NOT NULL, "
                "source VARCHAR, values_json VARCHAR NOT NULL, recorded_at TIMESTAMPTZ NOT NULL)")
    con.execute("INSERT INTO config_versions VALUES (0, 'f1', 'config.yaml', '{}', now()), "
                "(0, 'f2', 'config.yaml', '{}', now())")
    con.close()
    wh = Warehouse(path)
    assert versioned(wh, load_config(), "config.yaml", NOW).config_version == 1
    assert wh.read_sql("SELECT count(*) AS n FROM config_versions_unversioned")["n"].iloc[0] == 2


CHILD = """
import sys, pandas as pd
from cryptotracker_assets.core.config import load_config
from cryptotracker_assets.services.config_versions import versioned
from cryptotracker_assets.storage.warehouse import Warehouse
import time
start = float(sys.argv[3])
time.sleep(max(0.0, start - time.time()))
print(versioned(Warehouse(sys.argv[1]), load_config(sys.argv[2]), sys.argv[2]).config_version)
"""


def test_two_processes_loading_the_same_new_config_record_one_version(tmp_path):
    import time

    path = tmp_path / "w.duckdb"
    wh = Warehouse(path)
    versioned(wh, load_config(), "config.yaml", NOW)  # version 1: the defaults
    user = _user(tmp_path, SMALL_UNIVERSE)
    start = time.time() + 3.0  # both processes are up by then and load at the same moment
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(user), str(start)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    assert [o[0].strip() for o in outs] == ["2", "2"]
    assert wh.config_versions()["config_version"].tolist() == [1, 2]


def test_two_connections_of_one_process_racing_record_one_version(tmp_path):
    """Within one process DuckDB runs two transactions at once: both begin before either writes, both read the
    same latest row (none); the key makes the second insert conflict, and its retry finds the first one's row."""
    path = tmp_path / "w.duckdb"
    Warehouse(path).config_versions()  # the schema
    cfg = load_config(str(_user(tmp_path, SMALL_UNIVERSE)))
    barrier = threading.Barrier(2)
    calls = itertools.count()
    original = Warehouse.transaction
    results, errors = [], []

    @contextmanager
    def racing_transaction(self):
        with original(self) as con:
            con.execute("SELECT count(*) FROM config_versions").fetchall()  # the snapshot is taken
            if next(calls) < 2:  # the two first transactions overlap; the retry runs alone
                barrier.wait(timeout=30)
            yield con

    def work():
        try:
            results.append(Warehouse(path).config_version_for(cfg.fingerprint(), "u", raw_dict(cfg), NOW))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    Warehouse.transaction = racing_transaction
    try:
        threads = [threading.Thread(target=work) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        Warehouse.transaction = original
    assert not errors, errors
    assert next(calls) == 3  # one conflict, one retry
    assert sorted(r.config_version for r in results) == [1, 1]
    assert sorted(r.created for r in results) == [False, True]
    assert Warehouse(path).config_versions()["config_version"].tolist() == [1]


def _by_day(wh: Warehouse, table: str, column: str) -> dict[str, set[int]]:
    df = wh.read_sql(f"SELECT {column} AS t, config_version FROM {table}")
    day = pd.to_datetime(df["t"], utc=True).dt.strftime("%Y-%m-%d")
    return {d: set(g["config_version"].astype(int)) for d, g in df.groupby(day)}


def test_editing_the_config_file_produces_a_new_version_recorded_on_the_following_rows(tmp_env, tmp_path, instance):
    user = _user(tmp_path, SMALL_UNIVERSE)
    env = {**tmp_env, "CRYPTOTRACKER_CONFIG": str(user)}
    defs = build_definitions(env)
    wh = Warehouse(env["CRYPTOTRACKER_WAREHOUSE"])
    for d in (*DAYS, LAST):
        assert defs.resolve_job_def("ohlc_1m_job").execute_in_process(partition_key=d, instance=instance).success
    engine = defs.resolve_job_def("paper_engine_job")
    for d in DAYS:  # the first entries come on the second day (the first one warms the windows up)
        assert engine.execute_in_process(partition_key=d, instance=instance).success
    before = load_config(str(user))

    user.write_text(SMALL_UNIVERSE + EDIT)  # the operator edits the user file between two ticks
    after = load_config(str(user))
    assert engine.execute_in_process(partition_key=LAST, instance=instance).success

    versions = wh.config_versions()
    assert versions["config_version"].tolist() == [1, 2]
    assert versions["content_hash"].tolist() == [before.fingerprint(), after.fingerprint()]
    assert versions["origin"].tolist() == [str(user), str(user)]
    assert versions["recorded_at"].is_monotonic_increasing
    # every row written after the edit carries version 2, every earlier one version 1
    expected = {DAYS[0]: {1}, DAYS[1]: {1}, LAST: {2}}
    for table in ("features_scan", "market_regime", "scan_preview", "scan_history"):
        assert _by_day(wh, table, "timestamp") == expected, table
    assert _by_day(wh, "engine_state", "day") == expected
    ticks = wh.engine_ticks()
    assert ticks.sort_values("tick_id")["config_version"].tolist() == [1, 1, 2]
    # ledger rows carry the version at entry: a position opened before the edit keeps 1 when it closes after it
    ledger = wh.read_sql("SELECT * FROM paper_trades")
    entry = ledger[ledger["side"] == "BUY"].groupby("trade_group_id")["cycle_point"].min()
    entry_day = pd.to_datetime(entry, utc=True).dt.strftime("%Y-%m-%d")
    want = ledger["trade_group_id"].map(entry_day).map({DAYS[0]: 1, DAYS[1]: 1, LAST: 2})
    assert (ledger["config_version"] == want).all()
    assert set(ledger["config_version"]) == {1, 2}
    # …and the edit is what the rows of day 2 were decided with
    scans = wh.read_sql("SELECT timestamp, tier, setup_threshold FROM scan_history "
                        "WHERE strategy = 'DCA' AND tier = 'large_cap'")
    day = pd.to_datetime(scans["timestamp"], utc=True).dt.strftime("%Y-%m-%d")
    assert set(scans.loc[day != LAST, "setup_threshold"]) == {-0.0175}
    assert set(scans.loc[day == LAST, "setup_threshold"]) == {-0.012}

    # Loading the same content again does not bump the version: the file rewritten unchanged, the config job and
    # another tick of the day.
    user.write_text(SMALL_UNIVERSE + EDIT)
    r = defs.resolve_job_def("config_job").execute_in_process(instance=instance)
    meta = next(m for m in r.asset_materializations_for_node("effective_config")).metadata
    assert meta["config_version"].value == 2 and meta["versions"].value == 2
    assert meta["content_hash"].value == after.fingerprint()[:16] and meta["origin"].value == str(user)
    assert engine.execute_in_process(partition_key=LAST, instance=instance).success
    assert wh.config_versions()["config_version"].tolist() == [1, 2]
    assert defs.resources["project_config"].load().config_version == 2

    # A replay gets the config that was in force: a past day is audited under version 1 (its engine state row)
    assert config_of_day(wh, config_for_version(wh, 2), pd.Timestamp(DAYS[1], tz="UTC")).config_version == 1
    audit = subset_job(defs, *ENGINE_OUTPUTS, audit=True)
    r = audit.execute_in_process(partition_key=DAYS[1], instance=instance)
    check = {e.check_name: e for e in r.get_asset_check_evaluations()}["replay_matches_ledger"]
    assert check.passed, check.metadata["first_difference"].value
    assert check.metadata["cycle_points"].value == 288


def test_without_a_warehouse_the_resource_stays_unversioned(tmp_path):
    from resources.config import ProjectConfigResource

    user = _user(tmp_path, SMALL_UNIVERSE)
    assert ProjectConfigResource(user_config_path=str(user)).load().config_version == 0
    assert dg.ConfigurableResource  # the resource is a Dagster resource
