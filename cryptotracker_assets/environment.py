"""The environment, read in ONE place: ``Environment.read(os.environ)`` (definitions.py and the CLI call it once).

All optional — with none set everything runs on the synthetic source, a DuckDB file and the log:
- ``CRYPTOTRACKER_CONFIG``: user config file merged over cryptotracker_assets/config.yaml.
- ``CRYPTOTRACKER_MARKET_SOURCE``: ``synthetic`` | ``polygon`` | ``files`` (default: polygon when
  ``POLYGON_API_KEY`` is set, else synthetic); ``CRYPTOTRACKER_FILES_DIR`` for ``files``;
  ``CRYPTOTRACKER_POLYGON_BASE_URL`` to point the Polygon client elsewhere (tests).
- ``SLACK_BOT_TOKEN``: notifications go to Slack instead of the log (the token itself is read by ``EnvVar``).
- ``CRYPTOTRACKER_WAREHOUSE``: the DuckDB file, or ``postgresql://USER@HOST:PORT/DB`` (the password from
  ``PGPASSWORD``, never in the URL); else ``$DAGSTER_HOME/warehouse.duckdb``; else
  ``./.dagster_home/warehouse.duckdb`` (where ``make run`` writes).
- ``DAGSTER_HOME``: the Dagster instance folder (default ``./.dagster_home``).
- ``CRYPTOTRACKER_MODELS``: the model store folder (default: the project's ``models/``; tests use a temp folder).
- ``CRYPTOTRACKER_REPORTS``: where the HTML report is written (default ``$DAGSTER_HOME/reports``).
- ``CRYPTOTRACKER_SENSOR_INTERVAL_S``: how often the daemon evaluates the paper-engine sensor (default 30 s).
Secrets are never stored here: only whether they are set.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SOURCES = ("synthetic", "polygon", "files")
DEFAULT_HOME = ".dagster_home"


POSTGRES_URL = re.compile(r"^postgres(ql)?://", re.IGNORECASE)


def is_url(location: str | None) -> bool:
    """Whether a warehouse location is a PostgreSQL URL (else a DuckDB file path)."""
    return bool(location) and bool(POSTGRES_URL.match(str(location)))


class EnvironmentError_(ValueError):
    """The environment asks for something inconsistent (names the variable)."""


def sensor_interval(raw: str | None) -> int:
    if not raw:
        return 30
    if not raw.strip().isdigit() or int(raw) < 1:
        raise EnvironmentError_(f"CRYPTOTRACKER_SENSOR_INTERVAL_S={raw!r}: expected a whole number of seconds ≥ 1")
    return int(raw)


@dataclass(frozen=True)
class Environment:
    """What the environment asks for (paths resolved, secrets only as flags)."""

    dagster_home: str
    warehouse: str
    config_path: str | None
    market_source: str
    files_dir: str | None
    polygon_base_url: str | None
    slack: bool
    models_dir: str = str(Path(__file__).resolve().parent.parent / "models")
    reports_dir: str = ""
    sensor_interval_s: int = 30

    @classmethod
    def read(cls, env: Mapping[str, str], cwd: Path | None = None) -> "Environment":
        here = Path(cwd) if cwd is not None else Path.cwd()
        home = str((here / (env.get("DAGSTER_HOME") or DEFAULT_HOME)).resolve())
        warehouse = env.get("CRYPTOTRACKER_WAREHOUSE") or str(Path(home) / "warehouse.duckdb")
        source = (env.get("CRYPTOTRACKER_MARKET_SOURCE") or ("polygon" if env.get("POLYGON_API_KEY") else
                                                              "synthetic")).strip().lower()
        if source not in SOURCES:
            raise EnvironmentError_(f"CRYPTOTRACKER_MARKET_SOURCE={source!r}: expected one of {SOURCES}")
        if source == "polygon" and not env.get("POLYGON_API_KEY"):
            raise EnvironmentError_("CRYPTOTRACKER_MARKET_SOURCE=polygon needs POLYGON_API_KEY")
        files_dir = env.get("CRYPTOTRACKER_FILES_DIR") or None
        if source == "files" and not files_dir:
            raise EnvironmentError_("CRYPTOTRACKER_MARKET_SOURCE=files needs CRYPTOTRACKER_FILES_DIR")
        return cls(
            dagster_home=home,
            warehouse=warehouse if is_url(warehouse) else str((here / warehouse).resolve()),
            config_path=env.get("CRYPTOTRACKER_CONFIG") or None,
            market_source=source,
            files_dir=str((here / files_dir).resolve()) if files_dir else None,
            polygon_base_url=env.get("CRYPTOTRACKER_POLYGON_BASE_URL") or None,
            slack=bool(env.get("SLACK_BOT_TOKEN")),
            models_dir=str((here / env["CRYPTOTRACKER_MODELS"]).resolve()) if env.get("CRYPTOTRACKER_MODELS")
            else str(Path(__file__).resolve().parent.parent / "models"),
            reports_dir=str((here / env["CRYPTOTRACKER_REPORTS"]).resolve()) if env.get("CRYPTOTRACKER_REPORTS")
            else str(Path(home) / "reports"),
            sensor_interval_s=sensor_interval(env.get("CRYPTOTRACKER_SENSOR_INTERVAL_S")),
        )
