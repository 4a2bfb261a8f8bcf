"""Production instance storage on PostgreSQL (dagster-postgres), switched on by configuration only."""

from __future__ import annotations

import shutil
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
    except psycopg2.OperationalError as exc:  # the machine's PostgreSQL is part of the test environment
        pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is not reachable: {exc}")
    con.autocommit = True
    name = f"ct_{uuid.uuid4().hex[:12]}"
    con.cursor().execute(f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        con.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        con.close()


def test_runs_and_materializations_land_in_postgres(tmp_env, pg_database, monkeypatch, tmp_path):
    home = tmp_path / "pg_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.postgres.yaml", home / "dagster.yaml")
    for k, v in {"DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": "5432", "DAGSTER_PG_DB": pg_database,
                 "DAGSTER_PG_USER": "postgres", "DAGSTER_PG_PASSWORD": "trust-auth-ignores-this"}.items():
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
