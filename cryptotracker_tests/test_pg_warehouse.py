"""The warehouse on PostgreSQL (issue 14), on the server at 127.0.0.1:5432 (a fresh database per test, dropped
afterwards): `cryptotracker warehouse migrate --to URL` copies a DuckDB warehouse with every table verified; the
engine over the same bars then gives bit-identical ledgers, scans and snapshots on both backends; two ticks forced
to race commit exactly once; a URL with a password is refused without echoing it, and the password (PGPASSWORD)
appears in no output."""

from __future__ import annotations

import multiprocessing as mp
import re

import pandas as pd
import pytest

from cryptotracker_assets.cli import main
from cryptotracker_assets.services.engine_runner import run_tick
from cryptotracker_assets.storage.warehouse import Warehouse, WarehouseError
from cryptotracker_tests.engine_support import at, engine_config, prepared_world

UNTIL = at(1, "06:00")
SPAWN = mp.get_context("spawn")
TICK_ROW = re.compile(r"^\s*\d+\s+\d{4}-\d\d-\d\d \d\d:\d\d \.\. ")


@pytest.fixture(scope="module")
def base_world(tmp_path_factory):
    return prepared_world(tmp_path_factory.mktemp("pgw"))


def migrate(world, url: str, capsys) -> str:
    assert main(["warehouse", "migrate", "--to", url, "--warehouse", str(world.warehouse)]) == 0
    return capsys.readouterr().out


def test_migrate_then_the_engine_gives_identical_ledgers_on_both_backends(base_world, tmp_path, pg_url, capsys,
                                                                          monkeypatch):
    monkeypatch.setenv("PGPASSWORD", "pg-secret-3141-never-printed")  # trust auth ignores it
    world = base_world.copy(tmp_path / "w")
    out = migrate(world, pg_url, capsys)
    duck, pg = Warehouse(world.warehouse), Warehouse(pg_url)
    tables = duck.base_tables()
    assert {"ohlc_1m", "features_scan", "scan_preview", "market_regime", "config_versions"} <= set(tables)
    for t in tables:
        assert f"| {t} " in out or t in out
        assert pg.row_count(t) == duck.row_count(t), t
    assert "every table verified" in out and "pg-secret" not in out
    # the same tick on both backends
    for wh, loc in ((duck, world.warehouse), (pg, pg_url)):
        run_tick(wh, engine_config(loc, world.config), until=UNTIL)
    for table, order in (("paper_trades", ["cycle_point", "trade_group_id", "side", "level"]),
                         ("scan_history", ["timestamp", "scan_id"]), ("portfolio_snapshots", ["cycle_point"]),
                         ("shadow_outcomes", ["shadow_id"]), ("notification_outbox", ["message_id"])):
        a = duck.whole_table(table).drop(columns=["created_at"], errors="ignore")  # the wall clock of the commit
        a = a.sort_values(order).reset_index(drop=True)
        b = pg.whole_table(table)[list(a.columns)].sort_values(order).reset_index(drop=True)
        assert len(a) > 0 or table == "shadow_outcomes"
        pd.testing.assert_frame_equal(a, b, check_exact=True, check_dtype=False, obj=table)
    assert len(duck.whole_table("paper_trades")) >= 10
    assert duck.engine_state()["cursor"] == pg.engine_state()["cursor"]
    # the CLI reads either backend alike: the same status, and the session line names the database as it is
    shown = {}
    monkeypatch.setenv("CRYPTOTRACKER_CONFIG", str(world.config))
    for loc in (str(world.warehouse), pg_url):
        assert main(["status", "--warehouse", loc]) == 0
        header, *body = capsys.readouterr().out.splitlines()
        assert header.startswith(f"warehouse: {loc} (--warehouse) · "), header
        shown[loc] = [x for x in body if not TICK_ROW.match(x)]  # a tick's row holds its commit's wall clock
    assert shown[pg_url] == shown[str(world.warehouse)] and any("open positions" in x for x in shown[pg_url])
    assert any("config in force: version" in x for x in shown[pg_url])


def test_migrate_refuses_a_destination_with_rows_and_a_url_with_a_password(base_world, tmp_path, pg_url, capsys):
    world = base_world.copy(tmp_path / "w")
    migrate(world, pg_url, capsys)
    assert main(["warehouse", "migrate", "--to", pg_url, "--warehouse", str(world.warehouse)]) == 2
    assert "already holds rows" in capsys.readouterr().err
    with_password = pg_url.replace("postgres@", "postgres:hunter2@")
    assert main(["warehouse", "migrate", "--to", with_password, "--warehouse", str(world.warehouse)]) == 2
    err = capsys.readouterr()
    assert "carries a password" in err.err and "PGPASSWORD" in err.err
    assert "hunter2" not in err.err + err.out
    with pytest.raises(WarehouseError, match="carries a password") as exc:
        Warehouse(with_password).engine_state()
    assert "hunter2" not in str(exc.value)


def race(url: str, config: str, until: str, barrier, results) -> None:
    from cryptotracker_tests.engine_support import engine_config as ec

    try:
        cfg = ec(url, config)
        barrier.wait(60)
        r = run_tick(Warehouse(url), cfg, until=pd.Timestamp(until))
        results.put(("committed", r.tick_id))
    except Exception as exc:  # the loser's refusal
        results.put(("refused", f"{type(exc).__name__}: {exc}"))


def test_two_ticks_started_at_once_on_postgres_commit_exactly_once(base_world, tmp_path, pg_url, capsys):
    world = base_world.copy(tmp_path / "w")
    migrate(world, pg_url, capsys)
    barrier, results = SPAWN.Barrier(2), SPAWN.Queue()
    procs = [SPAWN.Process(target=race, args=(pg_url, str(world.config), str(UNTIL), barrier, results))
             for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(240)
    outcomes = sorted(results.get(timeout=5) for _ in procs)
    assert [o[0] for o in outcomes] == ["committed", "refused"], outcomes
    assert "cursor" in outcomes[1][1]
    pg = Warehouse(pg_url)
    assert len(pg.whole_table("engine_ticks")) == 1
    # exactly the fills of one tick: the same ledger as a single uninterrupted tick on DuckDB
    duck = Warehouse(world.warehouse)
    run_tick(duck, engine_config(world.warehouse, world.config), until=UNTIL)
    assert len(pg.whole_table("paper_trades")) == len(duck.whole_table("paper_trades")) > 0


CHILD = """
import sys, pandas as pd
from cryptotracker_assets.core.config import load_config
from cryptotracker_assets.services.config_versions import versioned
from cryptotracker_assets.services.engine_runner import run_tick
from cryptotracker_assets.storage.warehouse import Warehouse
cfg = versioned(Warehouse(sys.argv[1]), load_config(sys.argv[2]), sys.argv[2])
run_tick(Warehouse(sys.argv[1]), cfg, until=pd.Timestamp(sys.argv[3]), _crash_in_commit=True)
"""


def test_sigkill_inside_the_commit_on_postgres_commits_nothing_and_the_rerun_equals_duckdb(base_world, tmp_path,
                                                                                            pg_url, capsys):
    import signal
    import subprocess
    import sys

    world = base_world.copy(tmp_path / "w")
    migrate(world, pg_url, capsys)
    p = subprocess.run([sys.executable, "-c", CHILD, pg_url, str(world.config), str(UNTIL)], capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == -signal.SIGKILL, p.stderr[-2000:]
    pg = Warehouse(pg_url)
    assert pg.engine_state() is None and pg.row_count("paper_trades") == 0  # the server rolled it back
    run_tick(pg, engine_config(pg_url, world.config), until=UNTIL)  # the writer lock was released with the process
    duck = Warehouse(world.warehouse)
    run_tick(duck, engine_config(world.warehouse, world.config), until=UNTIL)
    order = ["cycle_point", "trade_group_id", "side", "level"]
    a = duck.whole_table("paper_trades").sort_values(order).reset_index(drop=True)
    b = pg.whole_table("paper_trades")[list(a.columns)].sort_values(order).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_exact=True, check_dtype=False)
