"""Production instance storage on PostgreSQL (dagster-postgres), switched on by configuration only."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid

import pytest

import dagster as dg
from cryptotracker_assets.definitions import build_definitions
from cryptotracker_tests.conftest import PROJECT_ROOT

psycopg2 = pytest.importorskip("psycopg2")
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "test"}


@pytest.fixture()
def pg_database():
    try:
        con = psycopg2.connect(**PG, connect_timeout=3)
    except psycopg2.OperationalError as exc:  # in CI the server is part of the test environment: a failure
        msg = f"PostgreSQL at 127.0.0.1:5432 is not reachable (trust auth, database test): {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    con.autocommit = True
    name = f"ct_{uuid.uuid4().hex[:12]}"
    con.cursor().execute(f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        con.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        con.close()


PASSWORD = "pg-secret-never-logged-7731"  # trust auth ignores it; it must never be printed anywhere
READER = """
import dagster as dg
with dg.DagsterInstance.get() as instance:
    runs = instance.get_run_records()
    print(type(instance.run_storage).__name__, [r.dagster_run.run_id for r in runs])
    print(sorted(instance.get_materialized_partitions(dg.AssetKey("ohlc_1d"))))
"""


def test_runs_and_materializations_land_in_postgres(tmp_env, pg_database, monkeypatch, tmp_path, capfd, caplog):
    home = tmp_path / "pg_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.postgres.yaml", home / "dagster.yaml")
    for k, v in {"DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": "5432", "DAGSTER_PG_DB": pg_database,
                 "DAGSTER_PG_USER": "postgres", "DAGSTER_PG_PASSWORD": PASSWORD}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    defs = build_definitions({**tmp_env, "DAGSTER_HOME": str(home)})
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        result = defs.resolve_job_def("ohlc_1d_job").execute_in_process(
            partition_key="2026-04-01", instance=instance,
            run_config={"ops": {"ohlc_1d": {"config": {"symbols": ["BTC", "ETH"]}}}})
        assert result.success
        assert instance.get_materialized_partitions(dg.AssetKey("ohlc_1d")) == {"2026-04-01"}
    con = psycopg2.connect(**{**PG, "dbname": pg_database})
    with con, con.cursor() as cur:
        cur.execute("SELECT count(*) FROM runs WHERE run_id = %s", [result.run_id])
        assert cur.fetchone()[0] == 1
    con.close()
    # a second process reading the instance sees the run and the materialization
    reader = subprocess.run([sys.executable, "-c", READER], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "DAGSTER_HOME": str(home)})
    assert reader.returncode == 0, reader.stderr[-2000:]
    assert "PostgresRunStorage" in reader.stdout and result.run_id in reader.stdout
    assert "['2026-04-01']" in reader.stdout
    # the password is in no log, message, metadata or output
    out, err = capfd.readouterr()
    events = [str(e) for e in result.all_events]
    for text in (out, err, caplog.text, reader.stdout, reader.stderr, *events):
        assert PASSWORD not in text
