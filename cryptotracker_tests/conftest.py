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
    return {"DAGSTER_HOME": str(home), "CRYPTOTRACKER_WAREHOUSE": str(tmp_path / "warehouse.duckdb")}


@pytest.fixture()
def instance(tmp_env):
    import dagster as dg

    with dg.instance_for_test(temp_dir=tmp_env["DAGSTER_HOME"]) as inst:
        yield inst


def write_user_config(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "user_config.yaml"
    p.write_text(text)
    return p
