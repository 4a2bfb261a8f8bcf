"""The flow candles → features_scan → scan_preview → the paper engine (issue 9): the engine on the STORED scan rows
equals the engine that computes its own scan, bit for bit; scan rows older than their bars are never used; the
per-cycle-point tables are incremental; a past engine day re-materialized audits and never rewrites, and its audit
fails naming the first differing row after a bar of that day is revised."""

from __future__ import annotations

import pandas as pd
import pytest

from cryptotracker_assets.core.engine import EngineInputs, EngineState, run_engine
from cryptotracker_assets.services.engine_runner import EngineRunError, run_tick
from cryptotracker_assets.storage.warehouse import Warehouse
from cryptotracker_tests.test_paper_engine import DAYS, prepared, snapshot, subset_job  # noqa: F401 (fixture)

CHAIN = ("market_regime", "features_scan", "scan_preview", "paper_trades", "scan_history", "portfolio_snapshots",
         "engine_state", "limiter_state", "engine_ticks", "notification_outbox", "shadow_outcomes", "shadow_exits")


def own_scan_run(wh: Warehouse, cfg, points: pd.DatetimeIndex):
    """The core engine over the stored bars, computing its scan itself (no scan_preview row read)."""
    bars = wh.read_bars(cfg.engine.base_timeframe)
    regime = wh.read_slice("market_regime", "timestamp")
    return run_engine(EngineState(), EngineInputs(cfg=cfg, bars=bars, market_regime=regime), points)


def assert_outputs_equal(stored_scan, own) -> None:
    a, b = stored_scan, own
    for name in ("ledger_rows", "scan_rows", "snapshots"):
        pd.testing.assert_frame_equal(getattr(a, name).reset_index(drop=True), getattr(b, name).reset_index(drop=True),
                                      check_exact=True)
    assert list(a.cycle_points) == list(b.cycle_points)


def revise_bar(wh: Warehouse, symbol: str, at: pd.Timestamp, factor: float) -> None:
    """A late correction from the exchange: one stored base bar gets other prices (and a new ingested_at)."""
    one = wh.read_bars("1m", at, at + pd.Timedelta(minutes=1), [symbol])
    assert len(one) == 1
    for c in ("open", "high", "low", "close"):
        one[c] = one[c] * factor
    one["ingested_at"] = pd.Timestamp.now(tz="UTC")
    wh.replace_bars("1m", one, at, at + pd.Timedelta(minutes=1), [symbol])


def test_engine_on_stored_scan_rows_equals_the_engine_scanning_itself(prepared):  # noqa: F811
    env, defs, cfg = prepared
    wh = Warehouse(env["CRYPTOTRACKER_WAREHOUSE"])
    tick = run_tick(wh, cfg)  # reads scan_preview, never computes a feature
    assert tick.processed == 2 * 288
    state, own = own_scan_run(wh, cfg, tick.outputs.cycle_points)
    assert_outputs_equal(tick.outputs, own)
    assert state.to_json() == tick.state.to_json()
    assert (own.ledger_rows["side"] == "SELL").any()  # trades opened and closed: the comparison has content


def test_scan_rows_older_than_their_bars_are_refused_and_the_chain_refreshes_them(prepared, instance):  # noqa: F811
    env, defs, cfg = prepared
    wh = Warehouse(env["CRYPTOTRACKER_WAREHOUSE"])
    revise_bar(wh, "ETH", pd.Timestamp(DAYS[1], tz="UTC") + pd.Timedelta(hours=3), 1.05)
    with pytest.raises(EngineRunError, match=r"scan_preview rows for 2026-02-03 03:0.* older bars .* materialize "
                                             r"scan_preview for 2026-02-03 first"):
        run_tick(wh, cfg)
    assert wh.engine_state() is None  # nothing committed
    # The engine's own job refreshes the stale rows first (same run), then ticks.
    job = defs.resolve_job_def("paper_engine_job")
    for d in DAYS:
        r = job.execute_in_process(partition_key=d, instance=instance)
        assert r.success
        mats = {m.asset_key.to_user_string(): m for m in r.asset_materializations_for_node("scan_preview")}
        # the bar opening 03:00 is first seen at 03:05: the 251 cycle points from there are recomputed
        assert mats["scan_preview"].metadata["cycle_points"].value == (0 if d == DAYS[0] else 288 - 37)
        assert mats["scan_preview"].metadata["stale_rows_recomputed"].value == (0 if d == DAYS[0] else 288 - 37)
    assert wh.engine_state()["cursor"] == pd.Timestamp(DAYS[1], tz="UTC") + pd.Timedelta(hours=23, minutes=55)
    # …and what it traded on is what the bars stored now give.
    _, own = own_scan_run(wh, cfg, pd.date_range(DAYS[0], periods=2 * 288, freq="5min", tz="UTC"))
    stored = snapshot(wh)
    assert len(stored["scan_history"]) == len(own.scan_rows)
    eth = own.scan_rows[(own.scan_rows.symbol == "ETH") & (own.scan_rows.strategy == "DCA")].set_index("scan_id")
    got = stored["scan_history"].set_index("scan_id").loc[eth.index, "price"]
    pd.testing.assert_series_equal(got, eth["price"], check_exact=True, check_names=False)


def test_the_scan_of_a_partition_is_incremental_and_equals_one_computation(tmp_env, tmp_path, instance):
    from cryptotracker_assets.definitions import build_definitions
    from cryptotracker_tests.conftest import write_user_config
    from cryptotracker_tests.test_feature_assets import SMALL_UNIVERSE

    import dagster as dg

    def run(home, path, stops):
        env = {**tmp_env, "CRYPTOTRACKER_CONFIG": str(write_user_config(tmp_path, SMALL_UNIVERSE)),
               "CRYPTOTRACKER_WAREHOUSE": str(path)}
        defs = build_definitions(env)
        ingest = defs.resolve_job_def("ohlc_1m_job")
        job = subset_job(defs, "market_regime", "features_scan", "scan_preview")
        with dg.instance_for_test(temp_dir=str(home)) as inst:
            assert ingest.execute_in_process(partition_key=DAYS[0], instance=inst).success
            results = []
            for stop in stops:
                assert ingest.execute_in_process(partition_key=DAYS[1], instance=inst, run_config={
                    "ops": {"ohlc_1m": {"config": {"as_of": f"{DAYS[1]}T{stop}Z"}}}}).success
                results.append(job.execute_in_process(partition_key=DAYS[1], instance=inst))
        return Warehouse(path), results

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    wa, steps = run(tmp_path / "a", tmp_path / "a.duckdb", ["10:07:30", "18:07:30", "23:59:30"])
    wb, once = run(tmp_path / "b", tmp_path / "b.duckdb", ["23:59:30"])
    points = []
    for r in steps:
        meta = {m.asset_key.to_user_string(): m.metadata for n in ("features_scan", "scan_preview", "market_regime")
                for m in r.asset_materializations_for_node(n)}
        points.append({k: (v["cycle_points"].value, v["stale_rows_recomputed"].value) for k, v in meta.items()})
    # 10:05 is the last cycle point the 10:06 bar serves; then only the new cycle points, none recomputed
    new = [10 * 12 + 2, (18 - 10) * 12, 288 - 18 * 12 - 2]
    for tbl in ("features_scan", "scan_preview", "market_regime"):
        assert [p[tbl] for p in points] == [(n, 0) for n in new], tbl
    for tbl in ("features_scan", "scan_preview", "market_regime"):
        a = wa.read_slice(tbl, "timestamp").drop(columns=["bars_watermark"])
        b = wb.read_slice(tbl, "timestamp").drop(columns=["bars_watermark"])
        pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_a_past_engine_day_audits_never_rewrites_and_names_a_revised_bar(prepared, instance):  # noqa: F811
    env, defs, cfg = prepared
    wh = Warehouse(env["CRYPTOTRACKER_WAREHOUSE"])
    tick = defs.resolve_job_def("paper_engine_job")
    for d in DAYS:
        assert tick.execute_in_process(partition_key=d, instance=instance).success
    before = snapshot(wh)
    audit = subset_job(defs, *CHAIN, audit=True)
    r = audit.execute_in_process(partition_key=DAYS[0], instance=instance)
    checks = {e.check_name: e for e in r.get_asset_check_evaluations()}
    assert checks["replay_matches_ledger"].passed, checks["replay_matches_ledger"].metadata["first_difference"]
    assert checks["replay_matches_ledger"].metadata["cycle_points"].value == 288
    mats = {m.asset_key.to_user_string(): m for m in r.asset_materializations_for_node("paper_engine")}
    assert mats["paper_trades"].metadata["new_rows"].value == 0
    after = snapshot(wh)
    for t in ("paper_trades", "scan_history", "portfolio_snapshots"):
        pd.testing.assert_frame_equal(before[t], after[t], check_exact=True)
    # A bar of day 1 is revised after the engine traded on it: the day's audit fails and names the first row.
    revise_bar(wh, "SOL", pd.Timestamp(DAYS[0], tz="UTC") + pd.Timedelta(hours=6, minutes=2), 0.9)
    r = audit.execute_in_process(partition_key=DAYS[0], instance=instance, raise_on_error=False)
    check = {e.check_name: e for e in r.get_asset_check_evaluations()}["replay_matches_ledger"]
    assert not check.passed
    text = check.metadata["first_difference"].value
    assert "row" in text and ("scan_id=" in text or "trade_group_id=" in text or "cycle_point=" in text), text
    assert "2026-02-02 06:0" in text or "SOL_260202060" in text, text
    after = snapshot(wh)
    for t in ("paper_trades", "scan_history", "portfolio_snapshots"):  # history is append-only: nothing rewritten
        pd.testing.assert_frame_equal(before[t], after[t], check_exact=True)
