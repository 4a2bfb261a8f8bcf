"""THE entry point: one ``Definitions`` from explicit lists. The environment is read here, once.

Environment (all optional — with none set everything runs on the synthetic source, a DuckDB file and the log):
- ``CRYPTOTRACKER_CONFIG``: user config file merged over cryptotracker_assets/config.yaml.
- ``CRYPTOTRACKER_MARKET_SOURCE``: ``synthetic`` | ``polygon`` | ``files`` (default: polygon when
  ``POLYGON_API_KEY`` is set, else synthetic); ``CRYPTOTRACKER_FILES_DIR`` for ``files``;
  ``CRYPTOTRACKER_POLYGON_BASE_URL`` to point the Polygon client elsewhere (tests).
- ``SLACK_BOT_TOKEN``: notifications go to Slack instead of the log.
- ``CRYPTOTRACKER_WAREHOUSE``: the DuckDB file (default ``$DAGSTER_HOME/warehouse.duckdb``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path

# Backfill policies, pandera types and nonexistent-partition mappings are marked beta in Dagster; the warnings
# would repeat at every load of the code location.
warnings.filterwarnings("ignore", message=r".*is currently in beta.*")

import dagster as dg

from sensors.new_bars import make_new_bars_sensor

from resources import (
    BarsIOManager,
    FilesMarketData,
    TableIOManager,
    LogNotifier,
    PolygonMarketData,
    ProjectConfigResource,
    SlackNotifier,
    SyntheticMarketData,
    WarehouseResource,
)

from .assets.config import effective_config, universe
from .assets.features import build_feature_assets
from .assets.paper import build_paper_assets, paper_engine_job
from .assets.setups import build_setup_assets
from .assets.maintenance import build_data_gaps_asset, retention_job
from .assets.market_data import STANDARD_TIMEFRAMES, build_health_checks, build_ohlc_asset
from .core.config import Config, Timeframe, load_config
from .jobs import (
    analysis_job,
    build_data_health_job,
    build_main_job,
    build_ohlc_job,
    config_job,
    features_job,
    gap_healing_job,
)
from .schedules import build_maintenance_schedules, build_ohlc_schedule
from .assets.market_data import ohlc_asset_name

# How many daily partitions one backfill run covers, per timeframe (batching, not a trading rule): 1m runs one
# day per run so a 30-day backfill shows per-day progress; coarse timeframes batch many small days.
BACKFILL_PARTITIONS_PER_RUN = {Timeframe.M1: 1, Timeframe.M5: 1, Timeframe.M15: 7, Timeframe.H1: 31, Timeframe.D1: 366}

SOURCES = ("synthetic", "polygon", "files")


class EnvironmentError_(ValueError):
    """The environment asks for something inconsistent (names the variable)."""


def timeframes_for(cfg: Config) -> list[Timeframe]:
    """The OHLC timeframes: 1m, 15m, 1h, 1d, plus the base timeframe when it is another one (5m imports)."""
    tfs = list(STANDARD_TIMEFRAMES)
    if cfg.engine.base_timeframe not in tfs:
        tfs.insert(0, cfg.engine.base_timeframe)
    return tfs


def market_source_from_env(env: Mapping[str, str]):
    name = (env.get("CRYPTOTRACKER_MARKET_SOURCE") or ("polygon" if env.get("POLYGON_API_KEY") else "synthetic"))
    name = name.strip().lower()
    if name not in SOURCES:
        raise EnvironmentError_(f"CRYPTOTRACKER_MARKET_SOURCE={name!r}: expected one of {SOURCES}")
    if name == "polygon":
        if not env.get("POLYGON_API_KEY"):
            raise EnvironmentError_("CRYPTOTRACKER_MARKET_SOURCE=polygon needs POLYGON_API_KEY")
        kwargs = {}
        if env.get("CRYPTOTRACKER_POLYGON_BASE_URL"):
            kwargs["base_url"] = env["CRYPTOTRACKER_POLYGON_BASE_URL"]
        return PolygonMarketData(api_key=dg.EnvVar("POLYGON_API_KEY"), **kwargs)
    if name == "files":
        folder = env.get("CRYPTOTRACKER_FILES_DIR")
        if not folder:
            raise EnvironmentError_("CRYPTOTRACKER_MARKET_SOURCE=files needs CRYPTOTRACKER_FILES_DIR")
        return FilesMarketData(folder=str(Path(folder).resolve()))
    return SyntheticMarketData()


def warehouse_path_from_env(env: Mapping[str, str]) -> str:
    path = env.get("CRYPTOTRACKER_WAREHOUSE") or os.path.join(env.get("DAGSTER_HOME") or ".", "warehouse.duckdb")
    return str(Path(path).resolve())


def build_definitions(env: Mapping[str, str]) -> dg.Definitions:
    user_config = env.get("CRYPTOTRACKER_CONFIG") or None
    cfg = load_config(user_config)
    timeframes = timeframes_for(cfg)
    warehouse_path = warehouse_path_from_env(env)
    lock_wait = float(cfg.data.warehouse.lock_wait_s)

    ohlc_assets = [build_ohlc_asset(tf, BACKFILL_PARTITIONS_PER_RUN[tf]) for tf in timeframes]
    health_checks = [c for tf in timeframes for c in build_health_checks(tf)]
    scheduled = [tf for tf in timeframes if tf in STANDARD_TIMEFRAMES]

    if env.get("SLACK_BOT_TOKEN"):
        ch = cfg.notifications.channels
        notifier = SlackNotifier(
            token=dg.EnvVar("SLACK_BOT_TOKEN"),
            channels={"trades": ch.trades, "reports": ch.reports, "alerts": ch.alerts, "signals": ch.signals},
        )
    else:
        notifier = LogNotifier()

    return dg.Definitions(
        assets=[*ohlc_assets, *build_feature_assets(cfg), *build_setup_assets(cfg), *build_paper_assets(cfg),
                build_data_gaps_asset(timeframes),
                universe,
                effective_config],
        asset_checks=health_checks,
        jobs=[
            *[build_ohlc_job(tf) for tf in timeframes],
            build_main_job(timeframes),
            build_data_health_job(timeframes),
            gap_healing_job,
            config_job,
            features_job,
            analysis_job,
            paper_engine_job,
            retention_job,
        ],
        schedules=[*[build_ohlc_schedule(tf, cfg) for tf in scheduled], *build_maintenance_schedules(cfg)],
        sensors=[
            make_new_bars_sensor(paper_engine_job, dg.AssetKey(ohlc_asset_name(cfg.engine.base_timeframe)),
                                 "paper_engine_sensor"),
            make_new_bars_sensor(features_job, dg.AssetKey("market_regime"), "features_sensor"),
        ],
        resources={
            "project_config": ProjectConfigResource(user_config_path=user_config),
            "market_data": market_source_from_env(env),
            "warehouse": WarehouseResource(path=warehouse_path, lock_timeout_s=lock_wait),
            "bars_io_manager": BarsIOManager(path=warehouse_path, lock_timeout_s=lock_wait),
            "table_io_manager": TableIOManager(path=warehouse_path, lock_timeout_s=lock_wait),
            "notifier": notifier,
        },
        executor=dg.in_process_executor,
    )


defs = build_definitions(os.environ)
