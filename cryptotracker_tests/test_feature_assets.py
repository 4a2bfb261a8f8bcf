"""Feature and regime assets through Dagster: partition by partition equals one continuous run, the regime state
continues across days, only cycle points that have happened get rows, the sensor triggers, real data runs."""

from __future__ import annotations

import numpy as np
import pandas as pd

import dagster as dg
from cryptotracker_assets.core.features import compute_ml_features
from cryptotracker_assets.core.setups import scan_features
from cryptotracker_assets.core.regime import build_market_regime
from cryptotracker_assets.definitions import build_definitions
from cryptotracker_assets.storage.warehouse import Warehouse
from cryptotracker_tests.conftest import write_user_config
from cryptotracker_tests.test_market_data_assets import real_pairs_config

DAYS = ["2026-03-10", "2026-03-11", "2026-03-12", "2026-03-13", "2026-03-14", "2026-03-15", "2026-03-16",
        "2026-03-17"]
SMALL_UNIVERSE = """
universe:
  large_cap: [BTC, ETH, SOL]
  mid_cap: [LINK, AVAX]
  small_cap: [DOGE]
  memecoin: [PEPE]
  inactive: []
prioritisation: {symbols: [BTC, ETH, SOL, LINK, AVAX, DOGE, PEPE]}
"""
TABLES = {"features_15m": "timestamp", "features_scan": "timestamp", "market_regime": "timestamp"}


def setup_defs(tmp_env, tmp_path):
    user = write_user_config(tmp_path, SMALL_UNIVERSE)
    env = {**tmp_env, "CRYPTOTRACKER_CONFIG": str(user)}
    return env, build_definitions(env)


def ingest(defs, instance, days):
    job = defs.resolve_job_def("ohlc_1m_job")
    for d in days:
        assert job.execute_in_process(partition_key=d, instance=instance).success


STORED_ONLY = ["bars_watermark", "config_version"]  # what the tables add to the core frames


def features_runner(defs) -> dg.JobDefinition:
    """The three per-day feature tables without the engine (a subset of the asset graph's job)."""
    sel = dg.AssetSelection.assets(*TABLES).resolve(defs.resolve_asset_graph())
    return defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection=sel)


def read_all(wh: Warehouse, table: str) -> pd.DataFrame:
    df = wh.read_slice(table, "timestamp")
    return df.reset_index(drop=True)


def test_day_by_day_equals_one_run_over_the_range_and_equals_the_core(tmp_env, tmp_path, instance):
    env, defs = setup_defs(tmp_env, tmp_path)
    ingest(defs, instance, DAYS)
    features = features_runner(defs)
    # Day by day, out of order for the stateless features; the regime needs its previous day first.
    for d in DAYS[5:]:
        assert features.execute_in_process(partition_key=d, instance=instance).success
    wh = Warehouse(env["CRYPTOTRACKER_WAREHOUSE"])
    by_day = {t: read_all(wh, t) for t in TABLES}
    # The same three days in ONE run over the range, into a fresh warehouse with the same bars.
    env2 = {**env, "CRYPTOTRACKER_WAREHOUSE": str(tmp_path / "w2.duckdb")}
    defs2 = build_definitions(env2)
    (tmp_path / "home2").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home2")) as inst2:
        ingest(defs2, inst2, DAYS)
        r = features_runner(defs2).execute_in_process(
            instance=inst2, tags={"dagster/asset_partition_range_start": DAYS[5],
                                  "dagster/asset_partition_range_end": DAYS[7]})
        assert r.success
    wh2 = Warehouse(env2["CRYPTOTRACKER_WAREHOUSE"])
    # (the watermarks differ: the second warehouse ingested the same bars later)
    for table in ("features_15m", "features_scan"):
        a, b = by_day[table], read_all(wh2, table)
        drop = [c for c in STORED_ONLY[:1] if c in a.columns]
        pd.testing.assert_frame_equal(a.drop(columns=drop), b.drop(columns=drop), check_exact=True)
    # The regime of day 6 ran day by day without day 5 stored: only its continuity check differs — so compare
    # days 7-8 (continued from day 6 in both) exactly.
    reg1, reg2 = by_day["market_regime"], read_all(wh2, "market_regime")
    later = pd.Timestamp(DAYS[6], tz="UTC")
    pd.testing.assert_frame_equal(reg1[reg1.timestamp >= later].drop(columns=STORED_ONLY[:1]).reset_index(drop=True),
                                  reg2[reg2.timestamp >= later].drop(columns=STORED_ONLY[:1]).reset_index(drop=True),
                                  check_exact=True)
    # Independent of Dagster: the core on the continuous bar series gives the same stored values.
    bars = wh.read_bars("1m")
    start, end = pd.Timestamp(DAYS[5], tz="UTC"), pd.Timestamp(DAYS[7], tz="UTC") + pd.Timedelta(days=1)
    core_ml = compute_ml_features(bars, defs.resources["project_config"].load(), start=start, end=end)
    pd.testing.assert_frame_equal(by_day["features_15m"], core_ml.reset_index(drop=True), check_exact=True)
    core_scan = scan_features(bars, defs.resources["project_config"].load(), start=start, end=end,
                              symbols=defs.resources["project_config"].universe().active_symbols)
    pd.testing.assert_frame_equal(by_day["features_scan"].drop(columns=STORED_ONLY), core_scan.reset_index(drop=True),
                                  check_exact=True)
    # Every row carries W(T): the newest ingested_at of the bars of its span, never later than the run.
    assert by_day["features_scan"]["bars_watermark"].notna().all()


def test_regime_state_continues_and_a_rerun_reproduces_the_day(tmp_env, tmp_path, instance):
    env, defs = setup_defs(tmp_env, tmp_path)
    ingest(defs, instance, DAYS[:4])
    job = features_runner(defs)
    results = [job.execute_in_process(partition_key=d, instance=instance, raise_on_error=False) for d in DAYS[:4]]
    assert all(r.success for r in results)
    cont = [
        {e.check_name: e for e in r.get_asset_check_evaluations()}["regime_state_continuity"].passed for r in results
    ]
    assert cont == [False, True, True, True]  # the first day had no stored previous day
    wh = Warehouse(env["CRYPTOTRACKER_WAREHOUSE"])
    before = read_all(wh, "market_regime")
    assert job.execute_in_process(partition_key=DAYS[2], instance=instance).success
    pd.testing.assert_frame_equal(read_all(wh, "market_regime"), before, check_exact=True)
    # …and equals the continuous fold from the first day (state carried through the stored rows).
    cfg = defs.resources["project_config"].load()
    bars = wh.read_bars("1m")
    cont_frame, _ = build_market_regime(bars, cfg, start=pd.Timestamp(DAYS[0], tz="UTC"),
                                        end=pd.Timestamp(DAYS[3], tz="UTC") + pd.Timedelta(days=1))
    pd.testing.assert_frame_equal(before.drop(columns=STORED_ONLY), cont_frame.reset_index(drop=True),
                                  check_exact=True, check_dtype=False)
    assert len(before) == 4 * 288


def test_today_only_gets_rows_that_have_happened(tmp_env, tmp_path, instance):
    env, defs = setup_defs(tmp_env, tmp_path)
    job = defs.resolve_job_def("ohlc_1m_job")
    assert job.execute_in_process(partition_key=DAYS[0], instance=instance).success
    assert job.execute_in_process(partition_key=DAYS[1], instance=instance, run_config={
        "ops": {"ohlc_1m": {"config": {"as_of": f"{DAYS[1]}T10:07:30Z"}}}}).success  # day 2 known up to 10:07
    assert features_runner(defs).execute_in_process(partition_key=DAYS[1], instance=instance).success
    wh = Warehouse(env["CRYPTOTRACKER_WAREHOUSE"])
    reg = read_all(wh, "market_regime")
    scan = read_all(wh, "features_scan")
    ml = read_all(wh, "features_15m")
    # newest stored 1m bar opens 10:06 and closes 10:07: last cycle point 10:05, last closed 15m bar 09:45
    assert reg["timestamp"].max() == pd.Timestamp(f"{DAYS[1]} 10:05", tz="UTC")
    assert scan["timestamp"].max() == pd.Timestamp(f"{DAYS[1]} 10:05", tz="UTC")
    assert ml["timestamp"].max() == pd.Timestamp(f"{DAYS[1]} 09:45", tz="UTC")
    assert len(reg) == 10 * 12 + 2


def test_new_bars_sensor_requests_the_chain_for_the_partition(tmp_env, tmp_path, instance):
    env, defs = setup_defs(tmp_env, tmp_path)
    ingest(defs, instance, [DAYS[0]])
    # new base bars → paper_engine_job (features_scan, market_regime → scan_preview → engine outputs), once
    sensor = next(s for s in defs.sensors if s.name == "paper_engine_sensor")
    assert sensor.job_name == "paper_engine_job"
    ctx = dg.build_sensor_context(instance=instance, repository_def=defs.get_repository_def())
    tick = sensor.evaluate_tick(ctx)
    assert [r.partition_key for r in tick.run_requests] == [DAYS[0]]
    assert tick.run_requests[0].run_key.startswith(f"{DAYS[0]}:")
    # Evaluated again with the cursor it set, nothing new → no request.
    ctx2 = dg.build_sensor_context(instance=instance, repository_def=defs.get_repository_def(), cursor=tick.cursor)
    assert not list(sensor.evaluate_tick(ctx2).run_requests or [])
    # No sensor or schedule other than the engine's reacts to bars: the end-product features run on a schedule.
    assert [s.name for s in defs.sensors if "features" in s.name] == []
    assert {s.name: s.job_name for s in defs.schedules}["features_schedule"] == "features_job"


def test_real_crash_through_dagster_leaves_normal(tmp_env, tmp_path, instance, shared_data):
    folder = shared_data / "binance_altbtc_2018-01_5m"
    pairs = sorted(p.stem for p in folder.glob("*.parquet"))
    user = write_user_config(tmp_path, real_pairs_config(pairs) + "scan: {windows_min: {rsi: 15, btc_corr: 300}}\n")
    env = {**tmp_env, "CRYPTOTRACKER_CONFIG": str(user), "CRYPTOTRACKER_MARKET_SOURCE": "files",
           "CRYPTOTRACKER_FILES_DIR": str(folder)}
    defs = build_definitions(env)
    days = [f"2018-01-{d:02d}" for d in range(13, 19)]
    for d in days:
        assert defs.resolve_job_def("ohlc_5m_job").execute_in_process(partition_key=d, instance=instance).success
    for d in days[2:]:
        r = features_runner(defs).execute_in_process(partition_key=d, instance=instance)
        assert r.success
    wh = Warehouse(env["CRYPTOTRACKER_WAREHOUSE"])
    reg = read_all(wh, "market_regime")
    assert reg["market_symbol"].eq("ETH-BTC").all()
    crash = reg[(reg.timestamp >= "2018-01-16") & (reg.timestamp < "2018-01-18")]
    assert (crash["regime"] != "NORMAL").any() and (crash["regime"] == "PANIC").any()
    ml = read_all(wh, "features_15m")
    after = ml[~ml["warmup"]]
    assert len(after) and np.isfinite(after["rsi_14"]).all()
