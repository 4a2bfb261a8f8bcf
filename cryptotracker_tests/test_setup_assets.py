"""Setups, scan preview and readiness board through Dagster (materialize on a temp DAGSTER_HOME and DuckDB)."""

from __future__ import annotations

import pandas as pd

from cryptotracker_assets.definitions import build_definitions
from cryptotracker_assets.storage.warehouse import Warehouse
from cryptotracker_tests.conftest import write_user_config
from cryptotracker_tests.test_feature_assets import SMALL_UNIVERSE
from cryptotracker_tests.test_market_data_assets import real_pairs_config

DAYS = ["2026-05-01", "2026-05-02", "2026-05-03"]
RANGE_TAGS = {"dagster/asset_partition_range_start": DAYS[0], "dagster/asset_partition_range_end": DAYS[-1]}


def run_pipeline(env, instance):
    defs = build_definitions(env)
    for d in DAYS:
        assert defs.resolve_job_def("ohlc_1m_job").execute_in_process(partition_key=d, instance=instance).success
    r = defs.resolve_job_def("paper_engine_job").execute_in_process(instance=instance, tags=RANGE_TAGS)
    assert r.success
    return defs, r


def test_scan_rows_setups_and_board(tmp_env, tmp_path, instance):
    env = {**tmp_env, "CRYPTOTRACKER_CONFIG": str(write_user_config(tmp_path, SMALL_UNIVERSE))}
    defs, result = run_pipeline(env, instance)
    wh = Warehouse(env["CRYPTOTRACKER_WAREHOUSE"])
    rows = wh.read_slice("scan_preview", "timestamp")
    symbols = defs.resources["project_config"].universe().active_symbols
    assert len(symbols) == 7
    # exactly one row per active symbol × strategy × cycle point (288 a day)
    assert len(rows) == 3 * 288 * 7 * 3
    assert not rows.duplicated(["symbol", "strategy", "timestamp"]).any()
    assert set(rows["reason"].dropna()) <= {"stale_data", "insufficient_history", "data_suspect", "no_setup",
                                            "top_of_range", "ml_below_threshold"}
    assert rows.loc[rows["candidate"], "reason"].isna().all()  # steps 4-6 belong to the engine
    setups = wh.read_slice("strategy_setups", "detected_at")
    assert setups["setup_id"].is_unique and setups["strategy"].nunique() >= 2
    # setup_id = scan_id of the cycle point: {STRATEGY}_{SYMBOL}_{yymmddHHMM}
    first = setups.iloc[0]
    assert first["setup_id"] == f"{first['strategy']}_{first['symbol']}_{first['detected_at']:%y%m%d%H%M}"
    assert set(setups["setup_id"]) <= set(rows["scan_id"])
    # CHANNEL top of range is never a long setup
    top = rows[rows["reason"] == "top_of_range"]
    assert (top["strategy"] == "CHANNEL").all() and not top["setup"].any()
    evals = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert evals["scan_rows_complete"].passed and evals["setup_ids_unique"].passed
    board_mat = result.asset_materializations_for_node("readiness_board")[0]
    assert "Readiness at 2026-05-03 23:55" in board_mat.metadata["top_5"].value
    board = wh.read_sql("SELECT * FROM readiness_board")
    assert len(board) == 7 * 3 and (board["timestamp"] == pd.Timestamp("2026-05-03 23:55", tz="UTC")).all()
    assert board["readiness"].between(0, 100).all()


def test_a_threshold_in_the_user_config_changes_the_setups(tmp_env, tmp_path, instance):
    base_env = {**tmp_env, "CRYPTOTRACKER_CONFIG": str(write_user_config(tmp_path, SMALL_UNIVERSE))}
    run_pipeline(base_env, instance)
    n_default = Warehouse(base_env["CRYPTOTRACKER_WAREHOUSE"]).read_sql(
        "SELECT count(*) AS n FROM strategy_setups WHERE strategy = 'SWING'")["n"].iloc[0]
    loose = SMALL_UNIVERSE + "strategies: {swing: {breakout_threshold: 0.002, min_volume_surge: 1.0}}\n"
    (tmp_path / "b").mkdir()
    env = {**tmp_env, "CRYPTOTRACKER_CONFIG": str(write_user_config(tmp_path / "b", loose)),
           "CRYPTOTRACKER_WAREHOUSE": str(tmp_path / "b" / "w.duckdb")}
    import dagster as dg

    (tmp_path / "b" / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "b" / "home")) as inst:
        run_pipeline(env, inst)
    n_loose = Warehouse(env["CRYPTOTRACKER_WAREHOUSE"]).read_sql(
        "SELECT count(*) AS n FROM strategy_setups WHERE strategy = 'SWING'")["n"].iloc[0]
    assert n_loose > 2 * n_default > 0


def test_real_pairs_produce_setups_for_two_strategies(tmp_env, tmp_path, instance, shared_data):
    folder = shared_data / "binance_altbtc_2018-01_5m"
    pairs = sorted(p.stem for p in folder.glob("*.parquet"))
    user = write_user_config(tmp_path, real_pairs_config(pairs) + "scan: {windows_min: {rsi: 15, btc_corr: 300}}\n")
    env = {**tmp_env, "CRYPTOTRACKER_CONFIG": str(user), "CRYPTOTRACKER_MARKET_SOURCE": "files",
           "CRYPTOTRACKER_FILES_DIR": str(folder)}
    defs = build_definitions(env)
    days = [d.strftime("%Y-%m-%d") for d in pd.date_range("2018-01-10", "2018-01-29", freq="1D")]
    for d in days:
        assert defs.resolve_job_def("ohlc_5m_job").execute_in_process(partition_key=d, instance=instance).success
    r = defs.resolve_job_def("paper_engine_job").execute_in_process(
        instance=instance, tags={"dagster/asset_partition_range_start": days[0],
                                 "dagster/asset_partition_range_end": days[-1]})
    assert r.success
    setups = Warehouse(env["CRYPTOTRACKER_WAREHOUSE"]).read_slice("strategy_setups", "detected_at")
    counts = setups["strategy"].value_counts()
    assert (counts > 0).sum() >= 2, counts
