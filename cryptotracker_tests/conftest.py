"""Shared fixtures: the default config, temp DAGSTER_HOME + DuckDB, the real candles in ../shared/data."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

warnings.filterwarnings("ignore", module="dagster")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
FIXTURES = PROJECT_ROOT.parent / "shared" / "fixtures"


def require_path(path: Path, what: str) -> Path:
    """Return ``path``; when absent, fail in CI (CI=true) and skip elsewhere."""
    if path.exists():
        return path
    msg = f"{what} not found at {path}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{msg} (required in CI)")
    pytest.skip(msg)


@pytest.fixture(scope="session")
def cfg():
    from cryptotracker_assets.core.config import load_config

    return load_config()


@pytest.fixture()
def shared_data() -> Path:
    return require_path(SHARED_DATA, "real candles (../shared/data)")


@pytest.fixture()
def fixtures_dir() -> Path:
    return require_path(FIXTURES, "wire-format fixtures (../shared/fixtures)")


@pytest.fixture()
def tmp_env(tmp_path) -> dict[str, str]:
    """An environment for build_definitions with a temp DAGSTER_HOME and warehouse (no keys, synthetic)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
    return {"DAGSTER_HOME": str(home), "CRYPTOTRACKER_WAREHOUSE": str(tmp_path / "warehouse.duckdb"),
            "CRYPTOTRACKER_MODELS": str(tmp_path / "models")}  # never the working tree's models/


@pytest.fixture()
def instance(tmp_env):
    import dagster as dg

    with dg.instance_for_test(temp_dir=tmp_env["DAGSTER_HOME"]) as inst:
        yield inst


def write_user_config(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "user_config.yaml"
    p.write_text(text)
    return p


def five_minute_base() -> dict:
    """User-config keys of a 5m base timeframe (imported 5m candles): ``engine.base_timeframe`` and the ``5m`` key
    of every per-timeframe map, which a 5m base must give (no fallback to 1m, SPEC §0.5); values as for 1m."""
    return {
        "engine": {"base_timeframe": "5m"},
        "data": {
            "ingest": {"5m": {"cron_utc": "*/5 * * * *", "overlap_min": 10, "max_catchup_d": 2}},
            "backfill_d": {"5m": 30},
            "retention_d": {"5m": 30},
            "health": {"freshness_min": {"5m": 15}, "min_completeness": {"5m": 0.95},
                       "completeness_window_h": {"5m": 24},
                       "gaps": {"interval_multiple": {"5m": 5}, "lookback_d": {"5m": 7}, "alert_min": {"5m": 10}}},
        },
    }


# --- the PostgreSQL server of the test environment (127.0.0.1:5432, trust auth, database `test`) ----------------

PG_SERVER = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "test"}


def pg_admin():
    """A connection to the server's `test` database; outside CI a missing server skips, in CI it fails."""
    import psycopg2

    try:
        con = psycopg2.connect(**PG_SERVER, connect_timeout=3)
    except psycopg2.OperationalError as exc:
        msg = f"PostgreSQL at 127.0.0.1:5432 is not reachable (trust auth, database test): {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    con.autocommit = True
    return con


@pytest.fixture()
def pg_url():
    """A fresh PostgreSQL database as a warehouse URL, dropped afterwards."""
    import uuid

    admin = pg_admin()
    name = f"ct_{uuid.uuid4().hex[:12]}"
    admin.cursor().execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse_location(request, tmp_path):
    """The warehouse suite runs on both backends: a DuckDB file, and a fresh PostgreSQL database."""
    if request.param == "duckdb":
        return str(tmp_path / "w.duckdb")
    return request.getfixturevalue("pg_url")
