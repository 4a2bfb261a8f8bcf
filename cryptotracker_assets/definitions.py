"""THE entry point: one ``Definitions`` from explicit lists. The environment is read here, once
(:class:`~.environment.Environment`, which documents every variable)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping

# Backfill policies, pandera types and nonexistent-partition mappings are marked beta in Dagster; the warnings
# would repeat at every load of the code location.
warnings.filterwarnings("ignore", message=r".*is currently in beta.*")

import dagster as dg

from resources import (
    BarsIOManager,
    FilesMarketData,
    LogNotifier,
    PolygonMarketData,
    ProjectConfigResource,
    SlackApiResource,
    SlackNotifier,
    SyntheticMarketData,
    TableIOManager,
    WarehouseResource,
)
from sensors.alerts import make_check_alert_sensor, make_run_failure_sensor
from sensors.new_bars import make_new_bars_sensor
from sensors.outbox import make_outbox_sensor
from sensors.retraining import make_retraining_sensors

from . import checks as C
from .assets.common import ohlc_asset_name
from .assets.config import effective_config, universe
from .assets.features import build_feature_assets
from .assets.maintenance import build_data_gaps_asset, retention_job
from .assets.market_data import (STANDARD_TIMEFRAMES, build_health_checks, build_ohlc_asset,
                                 build_partition_freshness_checks)
from .assets.models import (ModelStoreResource, build_labels_asset, candidate_model, champion_model,
                            models_training_job, training_labels_job)
from .assets.paper import build_paper_assets
from .assets.pipeline import build_pipeline_checks
from .assets.reports import (ReportStoreResource, build_report_schedules, daily_performance, data_export,
                             html_report, reports_job, trading_report)
from .assets.revisions import (approve_proposal_job, build_rollback_monitor_schedule, config_revisions,
                               revisions_consistent, rollback_monitor_job)
from .assets.setups import build_setup_assets
from .assets.shadows import (build_shadow_schedules, performance_valid, shadow_analysis_job, shadow_daily_job,
                             shadow_performance, threshold_recommendations)
from .core.config import Config, Timeframe, load_config
from .environment import Environment, EnvironmentError_
from .jobs import (
    build_data_health_job,
    build_main_job,
    build_ohlc_job,
    config_job,
    features_job,
    gap_healing_job,
    health_check_keys,
    paper_engine_job,
)
from .schedules import build_maintenance_schedules, build_ohlc_schedule

# How many daily partitions one backfill run covers, per timeframe (batching, not a trading rule): 1m runs one
# day per run so a 30-day backfill shows per-day progress; coarse timeframes batch many small days.
BACKFILL_PARTITIONS_PER_RUN = {Timeframe.M1: 1, Timeframe.M5: 1, Timeframe.M15: 7, Timeframe.H1: 31, Timeframe.D1: 366}

__all__ = ["EnvironmentError_", "build_definitions", "defs", "timeframes_for"]


def timeframes_for(cfg: Config) -> list[Timeframe]:
    """The OHLC timeframes: 1m, 15m, 1h, 1d, plus the base timeframe when it is another one (5m imports)."""
    tfs = list(STANDARD_TIMEFRAMES)
    if cfg.engine.base_timeframe not in tfs:
        tfs.insert(0, cfg.engine.base_timeframe)
    return tfs


def market_source(env: Environment):
    if env.market_source == "polygon":
        kwargs = {"base_url": env.polygon_base_url} if env.polygon_base_url else {}
        return PolygonMarketData(api_key=dg.EnvVar("POLYGON_API_KEY"), **kwargs)
    if env.market_source == "files":
        return FilesMarketData(folder=env.files_dir)
    return SyntheticMarketData()


def notifier_for(env: Environment, cfg: Config):
    if not env.slack:
        return LogNotifier()
    ch = cfg.notifications.channels
    return SlackNotifier(slack=SlackApiResource(token=dg.EnvVar("SLACK_BOT_TOKEN")),
                         channels={"trades": ch.trades, "reports": ch.reports, "alerts": ch.alerts,
                                   "signals": ch.signals})


def alerting_checks(timeframes, freshness) -> set[str]:
    """The data-health and pipeline checks that alert whatever their severity (SPEC §13.2 "alert"); completeness
    and aggregates are warnings there: they alert only at ERROR severity, like any check."""
    warnings_only = {C.OHLC_COMPLETENESS, C.OHLC_AGGREGATES}
    return {f"{k.asset_key.to_user_string()}:{k.name}" for k in health_check_keys(timeframes, freshness)
            if k.name not in warnings_only}


def build_definitions(environ: Mapping[str, str] | Environment) -> dg.Definitions:
    """The definitions for an environment (``os.environ`` for the code location; tests pass their own)."""
    env = environ if isinstance(environ, Environment) else Environment.read(environ)
    cfg = load_config(env.config_path)
    timeframes = timeframes_for(cfg)
    ohlc_assets = [build_ohlc_asset(tf, BACKFILL_PARTITIONS_PER_RUN[tf]) for tf in timeframes]
    freshness = build_partition_freshness_checks(ohlc_assets, timeframes, cfg)
    health_checks = [c for tf in timeframes for c in build_health_checks(tf)]
    scheduled = [tf for tf in timeframes if tf in STANDARD_TIMEFRAMES]
    warehouse = WarehouseResource(path=env.warehouse, lock_timeout_s=float(cfg.data.warehouse.lock_wait_s))
    engine, engine_checks = build_paper_assets(cfg)

    return dg.Definitions(
        assets=[*ohlc_assets, *build_feature_assets(cfg), *build_setup_assets(cfg), engine,
                build_data_gaps_asset(timeframes), universe, effective_config, config_revisions,
                shadow_performance, threshold_recommendations, build_labels_asset(cfg), candidate_model,
                champion_model, daily_performance, trading_report, html_report, data_export],
        asset_checks=[*health_checks, *freshness, *engine_checks, *build_pipeline_checks(timeframes),
                      revisions_consistent, performance_valid],
        jobs=[
            *[build_ohlc_job(tf) for tf in timeframes],
            build_main_job(timeframes),
            paper_engine_job,
            features_job,
            build_data_health_job(timeframes, freshness),
            gap_healing_job,
            config_job,
            retention_job,
            approve_proposal_job,
            rollback_monitor_job,
            shadow_analysis_job,
            shadow_daily_job,
            training_labels_job,
            models_training_job,
            reports_job,
        ],
        schedules=[*[build_ohlc_schedule(tf, cfg) for tf in scheduled], *build_maintenance_schedules(cfg),
                   build_rollback_monitor_schedule(cfg), *build_shadow_schedules(cfg),
                   *build_report_schedules(cfg)],
        sensors=[
            make_new_bars_sensor(paper_engine_job, dg.AssetKey(ohlc_asset_name(cfg.engine.base_timeframe)),
                                 "paper_engine_sensor", dg.AssetKey("engine_state"), cfg.engine.cycle_min,
                                 minimum_interval_seconds=env.sensor_interval_s),
            make_outbox_sensor(),
            make_run_failure_sensor(cfg),
            make_check_alert_sensor(cfg, alerting_checks(timeframes, freshness)),
            *make_retraining_sensors(shadow_daily_job, training_labels_job, models_training_job),
        ],
        resources={
            # the config with its version (SPEC §0.3): every run records a new effective config in the warehouse
            "project_config": ProjectConfigResource(user_config_path=env.config_path, warehouse=warehouse),
            "market_data": market_source(env),
            "warehouse": warehouse,
            "model_store": ModelStoreResource(root=env.models_dir),
            "report_store": ReportStoreResource(folder=env.reports_dir),
            "bars_io_manager": BarsIOManager(warehouse=warehouse),
            "table_io_manager": TableIOManager(warehouse=warehouse),
            "notifier": notifier_for(env, cfg),
        },
        executor=dg.in_process_executor,
    )


defs = build_definitions(os.environ)
