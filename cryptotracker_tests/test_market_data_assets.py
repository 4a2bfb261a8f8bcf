"""OHLC assets through Dagster: materialize() on a temp DAGSTER_HOME and DuckDB file, real resources."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

import dagster as dg
from cryptotracker_assets import checks as C
from cryptotracker_assets.assets.market_data import build_ohlc_asset
from cryptotracker_assets.core.config import Timeframe
from cryptotracker_assets.definitions import build_definitions
from cryptotracker_assets.storage.warehouse import Warehouse
from cryptotracker_tests.conftest import five_minute_base, write_user_config
from cryptotracker_tests.fakes.polygon import FakePolygon
from resources import LogNotifier, MarketDataSource, ProjectConfigResource, SyntheticMarketData, WarehouseResource
from resources.warehouse import BarsIOManager

DAYS = ["2026-04-01", "2026-04-02", "2026-04-03"]
SYMBOLS = ["BTC", "ETH", "PEPE"]


def symbols_config(asset: str, symbols, **extra) -> dict:
    return {"ops": {asset: {"config": {"symbols": list(symbols), **extra}}}}


def resources_for(env: dict, source: MarketDataSource, user_config: str | None = None) -> dict:
    return {
        "project_config": ProjectConfigResource(user_config_path=user_config),
        "market_data": source,
        "warehouse": (wh := WarehouseResource(path=env["CRYPTOTRACKER_WAREHOUSE"])),
        "bars_io_manager": BarsIOManager(warehouse=wh),
        "notifier": LogNotifier(),
    }


class ScriptedSource(MarketDataSource):
    """Synthetic bars, optionally shifted in price and with broken rows injected (for the bad-input tests)."""

    offset: float = 0.0
    broken: bool = False
    naive: bool = False
    eth_tail_missing_h: int = 0  # ETH's bars of the last N hours of every UTC day never arrive


    def fetch_bars(self, symbol, timeframe, start, end, cfg):
        df = SyntheticMarketData().fetch_bars(symbol, timeframe, start, end, cfg).copy()
        df[["open", "high", "low", "close"]] += self.offset
        if self.broken and symbol == "ETH":
            df.loc[10, "high"] = df.loc[10, "low"] - 1  # high < low
            df.loc[11, "volume"] = -5.0
            df.loc[12, "close"] = np.nan
            dup = df.iloc[[20]].assign(close=df.loc[20, "close"] * 1.01, high=df.loc[20, "high"] * 1.02)
            mis = df.iloc[[30]].assign(timestamp=df.loc[30, "timestamp"] + pd.Timedelta(seconds=30))
            df = pd.concat([df, dup, mis], ignore_index=True)
        if self.eth_tail_missing_h and symbol == "ETH":
            df = df[df["timestamp"].dt.hour < 24 - self.eth_tail_missing_h].reset_index(drop=True)
        if self.naive and symbol == "PEPE":
            df["timestamp"] = df["timestamp"].dt.tz_localize(None)  # naive timestamps: the whole frame rejected
        return df

    @property
    def source_name(self) -> str:
        return "scripted"


def materialize_days(env, instance, source, days, symbols=SYMBOLS, tf=Timeframe.M1, user_config=None, **cfg):
    asset = build_ohlc_asset(tf, 1)
    results = []
    for day in days:
        results.append(
            dg.materialize([asset], partition_key=day, instance=instance, resources=resources_for(env, source, user_config),
                           run_config=symbols_config(f"ohlc_{tf.value}", symbols, **cfg), raise_on_error=False)
        )
    return results


def checks_by_name(result) -> dict:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_three_days_three_symbols_then_rematerialize_one_day(tmp_env, instance):
    wh = Warehouse(tmp_env["CRYPTOTRACKER_WAREHOUSE"])
    results = materialize_days(tmp_env, instance, ScriptedSource(), DAYS)
    assert all(r.success for r in results)
    stored = wh.read_bars("1m")
    assert sorted(stored["symbol"].unique()) == sorted(SYMBOLS)
    per_day = stored.groupby(stored["timestamp"].dt.strftime("%Y-%m-%d")).size()
    assert per_day.index.tolist() == DAYS
    assert (per_day >= 3 * 1440 * 0.99).all() and (per_day <= 3 * 1440).all()  # PEPE may miss a few minutes
    assert wh.duplicate_keys("1m") == 0
    assert set(instance.get_materialized_partitions(dg.AssetKey("ohlc_1m"))) == set(DAYS)
    evals = checks_by_name(results[0])
    assert evals[C.OHLC_INTEGRITY].passed and evals[C.OHLC_INTEGRITY].severity == dg.AssetCheckSeverity.ERROR

    # Same source again: nothing changes, not even ingested_at (no duplicates either).
    again = materialize_days(tmp_env, instance, ScriptedSource(), [DAYS[1]])[0]
    assert again.success
    pd.testing.assert_frame_equal(wh.read_bars("1m"), stored)
    mat = again.asset_materializations_for_node("ohlc_1m")[0]
    assert mat.metadata["unchanged_rows"].value == mat.metadata["stored_rows"].value

    # A revised source for day 2 only: day 2 replaced, days 1 and 3 untouched bit for bit.
    revised = materialize_days(tmp_env, instance, ScriptedSource(offset=1.0), [DAYS[1]])[0]
    assert revised.success
    after = wh.read_bars("1m")
    day = after["timestamp"].dt.strftime("%Y-%m-%d")
    old_day = stored["timestamp"].dt.strftime("%Y-%m-%d")
    pd.testing.assert_frame_equal(after[day != DAYS[1]].reset_index(drop=True),
                                  stored[old_day != DAYS[1]].reset_index(drop=True))
    d2_new, d2_old = after[day == DAYS[1]].reset_index(drop=True), stored[old_day == DAYS[1]].reset_index(drop=True)
    assert len(d2_new) == len(d2_old) and np.allclose(d2_new["open"], d2_old["open"] + 1.0)
    assert (d2_new["ingested_at"] > d2_old["ingested_at"]).all()
    assert wh.duplicate_keys("1m") == 0


def test_broken_rows_land_in_rejects_and_good_rows_are_stored(tmp_env, instance):
    wh = Warehouse(tmp_env["CRYPTOTRACKER_WAREHOUSE"])
    result = materialize_days(tmp_env, instance, ScriptedSource(broken=True), [DAYS[0]])[0]
    assert result.success
    rej = wh.read_rejects("1m", DAYS[0])
    eth = rej[rej["symbol"] == "ETH"]
    assert sorted(eth["field"]) == ["close", "high", "timestamp", "timestamp", "timestamp", "volume"]
    reasons = " | ".join(eth["reason"])
    for needle in ("high below max(open, close)", "volume must be >= 0", "close is NaN",
                   "duplicate (symbol, timestamp) with conflicting values", "not aligned to the 1m grid"):
        assert needle in reasons
    stored = wh.read_bars("1m")
    counts = stored.groupby("symbol").size().to_dict()
    assert counts["BTC"] == 1440 and counts["ETH"] == 1440 - 4 and counts["PEPE"] > 1400
    evals = checks_by_name(result)
    assert not evals[C.OHLC_INTEGRITY].passed
    assert evals[C.OHLC_INTEGRITY].metadata["rejected_rows"].value == len(rej)
    # A clean re-run of the partition clears its rejects.
    materialize_days(tmp_env, instance, ScriptedSource(), [DAYS[0]])
    assert wh.read_rejects("1m", DAYS[0]).empty


def test_a_slice_mostly_rejected_fails_and_leaves_the_stored_day_untouched(tmp_env, instance):
    wh = Warehouse(tmp_env["CRYPTOTRACKER_WAREHOUSE"])
    assert materialize_days(tmp_env, instance, ScriptedSource(), [DAYS[0]])[0].success
    before = wh.read_bars("1m")
    # Every PEPE row has a naive timestamp: more than data.validation.max_reject_share (0.5) of the slice.
    bad = materialize_days(tmp_env, instance, ScriptedSource(naive=True, offset=1.0), [DAYS[0]])[0]
    assert not bad.success
    err = str(bad.get_step_failure_events()[0].event_specific_data.error)
    assert "PEPE 1m partition 2026-04-01" in err and "naive timestamp" in err and "max_reject_share 0.5" in err
    pd.testing.assert_frame_equal(wh.read_bars("1m"), before)


def test_unknown_symbol_fails_naming_it(tmp_env, instance):
    r = materialize_days(tmp_env, instance, ScriptedSource(), [DAYS[0]], symbols=["BTC", "NOPE"])[0]
    assert not r.success
    assert "unknown symbol 'NOPE'" in str(r.get_step_failure_events()[0].event_specific_data.error)


FAST_RETRIES = "data:\n  ingest: {retry_delays_s: [0.01, 0.01, 0.01, 0.01, 0.01], min_call_interval_s: 0.0}\n"


def polygon_bars(day: str, n: int = 30) -> pd.DataFrame:
    ts = pd.date_range(day, periods=n, freq="1min", tz="UTC")
    c = 42000 + np.arange(n, dtype=float)
    return pd.DataFrame({"timestamp": ts, "open": c, "high": c + 5, "low": c - 5, "close": c + 1, "volume": 2.0})


def test_polygon_through_definitions_then_500_forever_keeps_stored_rows(tmp_env, instance, tmp_path):
    user = write_user_config(tmp_path, FAST_RETRIES)
    wh = Warehouse(tmp_env["CRYPTOTRACKER_WAREHOUSE"])
    key = "pk_live_DO_NOT_LEAK_42"
    with FakePolygon({"X:BTCUSD": polygon_bars(DAYS[0]), "X:ETHUSD": polygon_bars(DAYS[0], 10)}, page_size=7) as fake:
        env = {**tmp_env, "POLYGON_API_KEY": key, "CRYPTOTRACKER_POLYGON_BASE_URL": fake.base_url,
               "CRYPTOTRACKER_CONFIG": str(user)}
        defs = build_definitions(env)
        assert defs.resources["market_data"].source_name == "polygon"
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("POLYGON_API_KEY", key)  # EnvVar is resolved from the process environment at run time
            job = defs.resolve_job_def("ohlc_1m_job")
            ok = job.execute_in_process(partition_key=DAYS[0], instance=instance,
                                        run_config=symbols_config("ohlc_1m", ["BTC", "ETH", "SOL"]))
            assert ok.success
            before = wh.read_bars("1m")
            assert before.groupby("symbol").size().to_dict() == {"BTC": 30, "ETH": 10}  # SOL: empty, a warning
            mat = ok.asset_materializations_for_node("ohlc_1m")[0]
            assert mat.metadata["empty_symbols"].value == ["SOL"]
            assert all(r["auth"] == f"Bearer {key}" for r in fake.requests)
            fake.fail_always = 500
            bad = job.execute_in_process(partition_key=DAYS[0], instance=instance, raise_on_error=False,
                                         run_config=symbols_config("ohlc_1m", ["BTC", "ETH"]))
    assert not bad.success
    err = str(bad.get_step_failure_events()[0].event_specific_data.error)
    assert "BTC" in err and "X:BTCUSD" in err and "after 5 retries" in err and "2026-04-01" in err
    pd.testing.assert_frame_equal(wh.read_bars("1m"), before)
    logs = "\n".join(str(e.message) for e in instance.all_logs(bad.run_id))
    assert key not in logs and key not in err


def test_incremental_refetches_from_newest_bar_minus_overlap(tmp_env, instance):
    wh = Warehouse(tmp_env["CRYPTOTRACKER_WAREHOUSE"])
    materialize_days(tmp_env, instance, ScriptedSource(), [DAYS[0]], symbols=["BTC"], as_of=f"{DAYS[0]}T12:00:30Z")
    first = wh.read_bars("1m")
    assert first["timestamp"].max() == pd.Timestamp(f"{DAYS[0]} 11:59", tz="UTC")  # only closed bars
    r = materialize_days(tmp_env, instance, ScriptedSource(), [DAYS[0]], symbols=["BTC"], incremental=True,
                         as_of=f"{DAYS[0]}T18:00:00Z")[0]
    after = wh.read_bars("1m")
    assert len(after) == 18 * 60 and after["timestamp"].max() == pd.Timestamp(f"{DAYS[0]} 17:59", tz="UTC")
    # 12:00 − 10 min overlap: 11:50 onwards re-fetched (identical, so ingested_at kept); 720 bars were stored
    assert r.asset_materializations_for_node("ohlc_1m")[0].metadata["fetched_rows"].value == 18 * 60 - 710
    kept = after[after["timestamp"] < pd.Timestamp(f"{DAYS[0]} 12:00", tz="UTC")]
    pd.testing.assert_frame_equal(kept.reset_index(drop=True), first.reset_index(drop=True))


def test_higher_timeframes_equal_aggregates_of_stored_1m(tmp_env, instance):
    from cryptotracker_assets.assets.market_data import compare_with_aggregate

    wh = Warehouse(tmp_env["CRYPTOTRACKER_WAREHOUSE"])
    for tf in (Timeframe.M1, Timeframe.M15, Timeframe.H1):
        assert all(r.success for r in materialize_days(tmp_env, instance, ScriptedSource(), [DAYS[0]],
                                                       symbols=["SOL", "WIF"], tf=tf))
    m1, m15, h1 = (wh.read_bars(tf) for tf in ("1m", "15m", "1h"))
    assert len(m15) == 2 * 96 and len(h1) == 2 * 24
    assert compare_with_aggregate(m15, m1, Timeframe.M15, 1e-12).empty
    assert compare_with_aggregate(h1, m1, Timeframe.H1, 1e-12).empty
    tampered = h1.copy()
    tampered.loc[3, "close"] *= 1.001
    assert compare_with_aggregate(tampered, m1, Timeframe.H1, 1e-6)["field"].tolist() == ["close"]


def test_files_source_on_real_pairs_with_user_config(tmp_env, instance, tmp_path, shared_data):
    folder = shared_data / "binance_altbtc_2018-01_5m"
    pairs = sorted(p.stem for p in folder.glob("*.parquet"))
    user = write_user_config(tmp_path, real_pairs_config(pairs))
    env = {**tmp_env, "CRYPTOTRACKER_CONFIG": str(user), "CRYPTOTRACKER_MARKET_SOURCE": "files",
           "CRYPTOTRACKER_FILES_DIR": str(folder)}
    defs = build_definitions(env)
    assert "ohlc_5m" in {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    wh = Warehouse(env["CRYPTOTRACKER_WAREHOUSE"])
    for job_name in ("ohlc_5m_job", "ohlc_1h_job"):
        r = defs.resolve_job_def(job_name).execute_in_process(partition_key="2018-01-16", instance=instance)
        assert r.success
    m5 = wh.read_bars("5m")
    assert sorted(m5["symbol"].unique()) == pairs
    raw = pd.read_parquet(folder / "ETH-BTC.parquet")
    day = raw[(raw["timestamp"] >= "2018-01-16") & (raw["timestamp"] < "2018-01-17")]
    eth = m5[m5["symbol"] == "ETH-BTC"]
    assert np.array_equal(eth["close"].to_numpy(), day["close"].to_numpy())
    assert len(wh.read_bars("1h")) == 24 * len(pairs)


def real_pairs_config(pairs: list[str]) -> str:
    """A user config for the BTC-quoted 5m pairs: universe = the pairs, market symbol ETH-BTC, base 5m (with the 5m
    keys of the per-timeframe maps)."""
    return yaml.safe_dump(five_minute_base(), sort_keys=False) + f"""
universe:
  market_symbol: ETH-BTC
  inactive: []
  large_cap: [{", ".join(pairs[:3])}]
  mid_cap: [{", ".join(pairs[3:7])}]
  small_cap: [{", ".join(pairs[7:])}]
  memecoin: []
strategies:
  swing: {{lookback_min: 10}}
scan: {{windows_min: {{rsi: 15}}}}
prioritisation: {{symbols: [{", ".join(pairs)}]}}
"""


@pytest.mark.parametrize("fault, page", [("html", 1), ("truncated", 3), ("no_results_next", 2)])
def test_polygon_broken_page_fails_the_partition_and_keeps_the_stored_day(tmp_env, instance, tmp_path, fault, page):
    # A 200 answer that is not a whole page must never store a partial day as complete (issue 10, item 10).
    user = write_user_config(tmp_path, FAST_RETRIES)
    wh = Warehouse(tmp_env["CRYPTOTRACKER_WAREHOUSE"])
    key = "pk_live_DO_NOT_LEAK_42"
    with FakePolygon({"X:BTCUSD": polygon_bars(DAYS[0], 30)}, page_size=7) as fake:
        env = {**tmp_env, "POLYGON_API_KEY": key, "CRYPTOTRACKER_POLYGON_BASE_URL": fake.base_url,
               "CRYPTOTRACKER_CONFIG": str(user)}
        defs = build_definitions(env)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("POLYGON_API_KEY", key)
            job = defs.resolve_job_def("ohlc_1m_job")
            run = symbols_config("ohlc_1m", ["BTC"])
            assert job.execute_in_process(partition_key=DAYS[0], instance=instance, run_config=run).success
            before = wh.read_bars("1m")
            assert len(before) == 30
            fake.faults = {page: fault}
            bad = job.execute_in_process(partition_key=DAYS[0], instance=instance, raise_on_error=False,
                                         run_config=run)
    assert not bad.success
    err = str(bad.get_step_failure_events()[0].event_specific_data.error)
    assert "BTC" in err and "X:BTCUSD" in err and f"page {page}" in err and "after 5 retries" in err
    assert key not in err
    pd.testing.assert_frame_equal(wh.read_bars("1m"), before)


def test_partition_completeness_warns_for_a_past_day_missing_its_tail_and_passes_a_whole_day(tmp_env, instance,
                                                                                             tmp_path):
    # SPEC §13.2: the ratio of every day partition when it is materialized; 1m floor 0.95 (data.health.*), a warning
    tail = materialize_days(tmp_env, instance, ScriptedSource(eth_tail_missing_h=4), [DAYS[0]])[0]
    whole = materialize_days(tmp_env, instance, ScriptedSource(), [DAYS[1]])[0]
    assert tail.success and whole.success  # a warning never fails the run
    bad = checks_by_name(tail)[C.OHLC_PARTITION_COMPLETENESS]
    assert not bad.passed and bad.severity == dg.AssetCheckSeverity.WARN and bad.partition == DAYS[0]
    # ETH: 20 of 24 hours stored = 1200 / 1440 bars; 240 missing from 20:00 to midnight
    assert bad.metadata["incomplete"].value == 1 and bad.metadata["min_completeness"].value == 0.95
    eth = bad.metadata["incomplete_by_symbol"].value
    assert list(eth) == ["ETH"] and list(eth["ETH"]) == [DAYS[0]]
    day = eth["ETH"][DAYS[0]]
    assert day["completeness"] == 1200 / 1440 and day["missing_share"] == 240 / 1440 and day["missing_runs"] == 1
    assert day["longest_gap"] == "2026-04-01 20:00–2026-04-02 00:00 UTC"
    assert bad.description.startswith("1 symbol-day(s) below data.health.min_completeness.1m = 95.00 %: ")
    assert "ETH 2026-04-01: 1200/1440 1m bars (83.33 %), missing 16.67 %, longest gap 2026-04-01 20:00–" in (
        bad.description)
    good = checks_by_name(whole)[C.OHLC_PARTITION_COMPLETENESS]
    assert good.passed and good.partition == DAYS[1] and good.metadata["incomplete"].value == 0
    assert good.metadata["checked"].value == len(SYMBOLS)
    # the floor is the config's: at 0.8 the same 1200 / 1440 day passes
    user = write_user_config(tmp_path, "data:\n  health: {min_completeness: {1m: 0.8}}\n")
    lenient = materialize_days(tmp_env, instance, ScriptedSource(eth_tail_missing_h=4), [DAYS[0]],
                               user_config=str(user))[0]
    assert checks_by_name(lenient)[C.OHLC_PARTITION_COMPLETENESS].passed


def test_partition_completeness_of_a_backfill_range_names_each_day(tmp_env, instance):
    # a multi-partition backfill run (1h: 31 days per run) checks each of its days against the 1h floor 0.99
    asset = build_ohlc_asset(Timeframe.H1, 31)
    tags = {"dagster/asset_partition_range_start": DAYS[0], "dagster/asset_partition_range_end": DAYS[2]}
    r = dg.materialize([asset], instance=instance, tags=tags, resources=resources_for(tmp_env,
                       ScriptedSource(eth_tail_missing_h=1)), run_config=symbols_config("ohlc_1h", SYMBOLS))
    assert r.success
    ev = checks_by_name(r)[C.OHLC_PARTITION_COMPLETENESS]
    assert not ev.passed and ev.metadata["checked"].value == 3 * len(SYMBOLS)
    eth = ev.metadata["incomplete_by_symbol"].value
    assert list(eth) == ["ETH"] and list(eth["ETH"]) == DAYS  # 23 / 24 = 0.958 < 0.99 on each day
    assert all(v["completeness"] == 23 / 24 for v in eth["ETH"].values())
    assert eth["ETH"][DAYS[2]]["longest_gap"] == "2026-04-03 23:00–2026-04-04 00:00 UTC"
