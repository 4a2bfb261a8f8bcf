"""Definitions load with the expected names; schedules give the expected run requests at fixed times."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pandas as pd
import pytest

import dagster as dg
from cryptotracker_assets.core.config import Timeframe
from cryptotracker_assets.definitions import EnvironmentError_, build_definitions
from cryptotracker_assets.schedules import ohlc_run_requests

OHLC = ("ohlc_1m", "ohlc_15m", "ohlc_1h", "ohlc_1d")
ENGINE = ("paper_trades", "scan_history", "portfolio_snapshots", "engine_state", "limiter_state", "engine_ticks",
          "notification_outbox", "shadow_outcomes", "shadow_exits")
# Every asset and its upstream keys: the flow ohlc_1m → features_scan → scan_preview → the engine's four outputs,
# market_regime feeding both; the engine's state of the previous day feeds the engine; boards read scan_history.
ENGINE_UPSTREAM = {"scan_preview", "market_regime", "ohlc_1m", "engine_state"}
EXPECTED_UPSTREAM = {
    **{tf: set() for tf in OHLC},
    "universe": set(), "effective_config": set(), "data_gaps": set(OHLC),
    "features_15m": {"ohlc_1m"}, "features_daily": {"ohlc_1d"},  # end products until the models capability
    "features_scan": {"ohlc_1m"}, "market_regime": {"ohlc_1m", "market_regime"},
    "scan_preview": {"features_scan", "market_regime"},
    **{name: ENGINE_UPSTREAM for name in ENGINE},
    "strategy_setups": {"scan_history"}, "readiness_board": {"scan_history"},
    # the analyzer reads the shadows the tick wrote; the threshold manager its analysis and the regime history;
    # approvals read the proposals, baselines and the rollback monitor the ledger
    "shadow_performance": {"shadow_outcomes", "shadow_exits"},
    "threshold_recommendations": {"shadow_performance", "market_regime"},
    "config_revisions": {"paper_trades", "market_regime", "threshold_recommendations"},
    # labels from the engine's history, the shadows and the stored features; models from the labels
    "training_labels": {"scan_history", "paper_trades", "shadow_outcomes", "shadow_exits", "market_regime",
                        "features_15m", "features_daily"},
    "candidate_model": {"training_labels"}, "champion_model": {"candidate_model"},
    # the operators' view: per-day performance from the ledger and scans; the report reads the ledger, equity
    # and regime; the HTML file everything people look at; exports (written by the CLI) the ledger and scans
    "daily_performance": {"paper_trades", "scan_history"},
    "trading_report": {"paper_trades", "portfolio_snapshots", "market_regime"},
    "html_report": {"paper_trades", "portfolio_snapshots", "market_regime", "readiness_board", "shadow_performance",
                    "champion_model", "trading_report"},
    "data_export": {"paper_trades", "scan_history"},
}
CHAIN = {"market_regime", "features_scan", "scan_preview", *ENGINE, "strategy_setups", "readiness_board",
         "daily_performance"}
EXPECTED_JOBS = {
    "main_job": {*OHLC, *CHAIN, "features_15m", "features_daily"},
    "paper_engine_job": CHAIN,
    "features_job": {"features_15m", "features_daily"},
    **{f"{tf}_job": {tf} for tf in OHLC},
    "config_job": {"universe", "effective_config"},
    "gap_healing_job": {"data_gaps"},
    "data_health_job": set(), "retention_job": set(),  # checks only / an op
    "approve_proposal_job": {"config_revisions"}, "rollback_monitor_job": {"config_revisions"},
    "shadow_analysis_job": {"shadow_performance"},
    "shadow_daily_job": {"shadow_performance", "threshold_recommendations"},
    "training_labels_job": {"training_labels"}, "models_training_job": {"candidate_model", "champion_model"},
    "reports_job": {"trading_report", "html_report"},
}
REPORT_SCHEDULES = {"morning_report_schedule": ("reports_job", "0 7 * * *"),
                    "midday_report_schedule": ("reports_job", "0 12 * * *"),
                    "evening_report_schedule": ("reports_job", "0 19 * * *"),
                    "weekly_report_schedule": ("reports_job", "0 19 * * 0")}  # America/Los_Angeles
EXPECTED_SCHEDULES = {"ohlc_1m_schedule": ("ohlc_1m_job", "*/5 * * * *"),
                      "ohlc_15m_schedule": ("ohlc_15m_job", "*/15 * * * *"),
                      "ohlc_1h_schedule": ("ohlc_1h_job", "5 * * * *"), "ohlc_1d_schedule": ("ohlc_1d_job", "5 0 * * *"),
                      "data_health_schedule": ("data_health_job", "*/30 * * * *"),
                      "gap_healing_schedule": ("gap_healing_job", "0 1 * * *"),
                      "retention_schedule": ("retention_job", "0 10 * * *"),
                      "features_schedule": ("features_job", "*/15 * * * *"),
                      "rollback_monitor_schedule": ("rollback_monitor_job", "0 * * * *"),
                      "shadow_analysis_schedule": ("shadow_analysis_job", "0 */3 * * *"),
                      "shadow_daily_schedule": ("shadow_daily_job", "0 2 * * *"),  # 02:00 America/Los_Angeles
                      **REPORT_SCHEDULES}
OHLC_CHECKS = {"ohlc_integrity", "ohlc_suspect_moves", "ohlc_gaps", "ohlc_partition_completeness", "ohlc_freshness",
               "ohlc_completeness",
               "ohlc_unique_keys", "freshness_check"}
EXPECTED_CHECKS = {
    *{(tf, c) for tf in OHLC for c in OHLC_CHECKS}, ("ohlc_15m", "ohlc_aggregates"), ("ohlc_1h", "ohlc_aggregates"),
    ("features_15m", "features_history"), ("features_scan", "features_history"),
    ("features_daily", "features_history"), ("market_regime", "regime_state_continuity"),
    ("scan_preview", "scan_rows_complete"), ("strategy_setups", "setup_ids_unique"),
    ("paper_trades", "ledger_invariants"), ("paper_trades", "replay_matches_ledger"),
    # the SPEC §13.2 pipeline checks (data_health_job): failed ingest runs per timeframe, long runs, engine lag
    *{(tf, "ingest_run_failures") for tf in OHLC}, ("engine_state", "long_runs"), ("engine_state", "engine_lag"),
    ("config_revisions", "revisions_consistent"),
    ("shadow_outcomes", "shadow_outcomes_valid"), ("shadow_performance", "performance_valid"),
    # the SPEC §11.3 promotion gates, blocking in the training run
    *{("candidate_model", g) for g in ("samples", "test_size", "improvement", "no_leakage", "calibration")},
}
PIPELINE_CHECKS = {*{(tf, "ingest_run_failures") for tf in OHLC}, ("engine_state", "long_runs"),
                   ("engine_state", "engine_lag")}


def test_definitions_expose_exactly_the_flow(tmp_env):
    defs = build_definitions(tmp_env)
    graph = defs.resolve_asset_graph()
    upstream = {k.to_user_string(): {p.to_user_string() for p in graph.get(k).parent_keys}
                for k in graph.get_all_asset_keys()}
    assert upstream == EXPECTED_UPSTREAM
    # Every asset has a consumer or is read by people (boards, end products, config, the engine's history).
    consumed = set().union(*upstream.values())
    assert set(upstream) - consumed == {"universe", "effective_config", "data_gaps", "config_revisions",
                                        "strategy_setups", "limiter_state", "engine_ticks", "notification_outbox",
                                        "daily_performance", "html_report", "data_export"}
    jobs = {j.name: {k.to_user_string() for k in j.asset_layer.selected_asset_keys}
            for j in defs.resolve_all_job_defs() if j.name != "__ASSET_JOB"}
    assert jobs == EXPECTED_JOBS
    schedules = {s.name: s for s in defs.schedules}
    assert {n: (s.job_name, s.cron_schedule) for n, s in schedules.items()} == EXPECTED_SCHEDULES
    assert all(s.default_status == dg.DefaultScheduleStatus.STOPPED for s in schedules.values())
    # data jobs on UTC crons; the daily shadow job for people at 02:00 America/Los_Angeles (SPEC §0.2, §10)
    assert {n: s.execution_timezone for n, s in schedules.items() if s.execution_timezone != "UTC"} == {
        n: "America/Los_Angeles" for n in ("shadow_daily_schedule", *REPORT_SCHEDULES)}
    sensors = {s.name: s for s in defs.sensors}
    assert set(sensors) == {"paper_engine_sensor", "outbox_delivery_sensor", "daily_labels_sensor",
                            "retraining_sensor", "run_failure_alert_sensor", "check_alert_sensor"}
    assert sensors["paper_engine_sensor"].job_name == "paper_engine_job"
    assert sensors["paper_engine_sensor"].default_status == dg.DefaultSensorStatus.STOPPED
    # the outbox is delivered as soon as a daemon runs; it launches no runs
    assert sensors["outbox_delivery_sensor"].default_status == dg.DefaultSensorStatus.RUNNING
    assert not sensors["outbox_delivery_sensor"].targets
    # failures and failing checks reach #system-alerts from the first daemon start (issue 13)
    for name in ("run_failure_alert_sensor", "check_alert_sensor"):
        assert sensors[name].default_status == dg.DefaultSensorStatus.RUNNING and not sensors[name].targets
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert checks == EXPECTED_CHECKS
    health = {(k.asset_key.to_user_string(), k.name)
              for k in defs.resolve_job_def("data_health_job").asset_layer.asset_graph.asset_check_keys}
    assert PIPELINE_CHECKS <= health and not PIPELINE_CHECKS & {
        (k.asset_key.to_user_string(), k.name) for j in ("main_job", "paper_engine_job", "ohlc_1m_job")
        for k in defs.resolve_job_def(j).asset_layer.asset_graph.asset_check_keys}
    # ledger_invariants blocks (ERROR) the steps after the ledger in its run; the day audit (it replays whole days)
    # runs when a person materializes a past day with its checks, never in the tick nor in main_job
    inv = dg.AssetCheckKey(dg.AssetKey("paper_trades"), "ledger_invariants")
    replay = dg.AssetCheckKey(dg.AssetKey("paper_trades"), "replay_matches_ledger")
    assert graph.get_check_spec(inv).blocking and not graph.get_check_spec(replay).blocking
    tick_checks = defs.resolve_job_def("paper_engine_job").asset_layer.asset_graph.asset_check_keys
    main_checks = defs.resolve_job_def("main_job").asset_layer.asset_graph.asset_check_keys
    assert inv in tick_checks and inv in main_checks and replay not in tick_checks | main_checks
    m1 = defs.resolve_assets_def("ohlc_1m")
    assert m1.partitions_def is not None and m1.backfill_policy.max_partitions_per_run == 1
    assert defs.resources["market_data"].source_name == "synthetic"
    # code_version from feature_set_version on the feature assets only (never on the append-only engine history)
    versions = {k.to_user_string(): graph.get(k).code_version for k in graph.get_all_asset_keys()}
    from cryptotracker_assets.core.features import feature_set_version

    fsv = feature_set_version(defs.resources["project_config"].load())
    assert {k for k, v in versions.items() if v == fsv} == {"features_15m", "features_scan", "features_daily",
                                                             "market_regime"}
    assert all(versions[k] is None for k in ENGINE)


def test_environment_switches_by_configuration_only(tmp_env):
    assert build_definitions({**tmp_env, "POLYGON_API_KEY": "k"}).resources["market_data"].source_name == "polygon"
    with pytest.raises(EnvironmentError_, match="CRYPTOTRACKER_FILES_DIR"):
        build_definitions({**tmp_env, "CRYPTOTRACKER_MARKET_SOURCE": "files"})
    with pytest.raises(EnvironmentError_, match="CRYPTOTRACKER_MARKET_SOURCE='kraken'"):
        build_definitions({**tmp_env, "CRYPTOTRACKER_MARKET_SOURCE": "kraken"})
    assert type(build_definitions({**tmp_env, "SLACK_BOT_TOKEN": "xoxb-1"}).resources["notifier"]).__name__ == "SlackNotifier"


def _requests(defs, name, tick: str, instance):
    sched = next(s for s in defs.schedules if s.name == name)
    ctx = dg.build_schedule_context(instance=instance, scheduled_execution_time=pd.Timestamp(tick).to_pydatetime(),
                                    repository_def=defs.get_repository_def())
    return list(sched.evaluate_tick(ctx).run_requests)


def test_1m_schedule_nothing_stored_catches_up_two_days(tmp_env, instance):
    defs = build_definitions(tmp_env)
    reqs = _requests(defs, "ohlc_1m_schedule", "2026-06-10T12:05:00+00:00", instance)
    # nothing materialized → max_catchup_d = 2 → days 06-08 (12:05 − 2 d is on 06-08), 06-09, 06-10, full runs
    assert [r.partition_key for r in reqs] == ["2026-06-08", "2026-06-09", "2026-06-10"]
    assert all(r.run_config["ops"]["ohlc_1m"]["config"]["incremental"] is False for r in reqs)
    assert reqs[-1].run_config["ops"]["ohlc_1m"]["config"]["as_of"] == "2026-06-10T12:05:00+00:00"
    assert reqs[-1].run_key == "ohlc_1m:2026-06-10:20260610T1205"


def test_1m_schedule_incremental_and_midnight_overlap(cfg):
    done = {"2026-06-08", "2026-06-09", "2026-06-10"}
    reqs = ohlc_run_requests(Timeframe.M1, cfg, pd.Timestamp("2026-06-10T12:05Z"), done)
    assert [(r.partition_key, r.run_config["ops"]["ohlc_1m"]["config"]["incremental"]) for r in reqs] == [
        ("2026-06-10", True)]
    # 00:05 with a 10-minute overlap reaches back into yesterday
    reqs = ohlc_run_requests(Timeframe.M1, cfg, pd.Timestamp("2026-06-11T00:05Z"), done)
    assert [(r.partition_key, r.run_config["ops"]["ohlc_1m"]["config"]["incremental"]) for r in reqs] == [
        ("2026-06-10", True), ("2026-06-11", False)]
    # the run key never repeats for another tick
    again = ohlc_run_requests(Timeframe.M1, cfg, pd.Timestamp("2026-06-11T00:10Z"), done | {"2026-06-11"})
    assert {r.run_key for r in again}.isdisjoint({r.run_key for r in reqs})


def test_1d_schedule_overlap_two_days(cfg):
    done = {f"2026-06-{d:02d}" for d in range(1, 11)}
    reqs = ohlc_run_requests(Timeframe.D1, cfg, pd.Timestamp("2026-06-11T00:05Z"), done)
    # 2880 min overlap: the days overlapping [06-09 00:05, 06-11 00:05)
    assert [r.partition_key for r in reqs] == ["2026-06-09", "2026-06-10", "2026-06-11"]


def test_schedules_see_materialized_partitions(tmp_env, instance):
    defs = build_definitions(tmp_env)
    job = defs.resolve_job_def("ohlc_1h_job")
    for day in ("2026-06-09", "2026-06-10"):
        assert job.execute_in_process(partition_key=day, instance=instance,
                                      run_config={"ops": {"ohlc_1h": {"config": {"symbols": ["BTC"]}}}}).success
    reqs = _requests(defs, "ohlc_1h_schedule", "2026-06-10T13:05:00+00:00", instance)
    # 1h catch-up is 7 days: the 5 days never materialized get full runs; today is incremental
    modes = {r.partition_key: r.run_config["ops"]["ohlc_1h"]["config"]["incremental"] for r in reqs}
    assert modes == {"2026-06-03": False, "2026-06-04": False, "2026-06-05": False, "2026-06-06": False,
                     "2026-06-07": False, "2026-06-08": False, "2026-06-10": True}


def test_core_never_imports_dagster():
    core = Path(__file__).resolve().parent.parent / "cryptotracker_assets" / "core"
    for path in core.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(n.split(".")[0].startswith("dagster") for n in names), f"{path.name} imports {names}"


def test_importing_core_loads_no_dagster():
    import subprocess

    code = ("import sys, cryptotracker_assets.core.config, cryptotracker_assets.core.ohlc, "
            "cryptotracker_assets.core.synthetic, cryptotracker_assets.core.universe, cryptotracker_assets.storage.warehouse;"
            "print(any(m.startswith('dagster') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
