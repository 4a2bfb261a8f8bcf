"""The SPEC §13.2 pipeline checks (issue 10, item 7): a failed ingest run in 24 h, a run over
``data.health.max_run_min`` and the engine behind the stored bars by more than ``data.health.max_engine_lag_cycles``
cycle points. The rules at their boundaries on constructed runs; then each check through Dagster on a real
situation — a failed ingest run, a run record started long ago, an engine whose cursor is far behind the stored bars
(with BTC's bars stopping) — fails, passes otherwise, and queues its alert in the outbox exactly once."""

from __future__ import annotations

import json
import logging
import uuid

import pandas as pd
import pytest

import dagster as dg
from cryptotracker_assets.core.config import load_config
from cryptotracker_assets.core.pipeline_health import (RunInfo, alert_rows, engine_lag, failed_ingest_runs,
                                                       long_runs)
from cryptotracker_assets.definitions import build_definitions, timeframes_for
from cryptotracker_assets.jobs import pipeline_check_keys
from cryptotracker_assets.services.outbox import deliver
from cryptotracker_assets.storage.warehouse import Warehouse
from cryptotracker_tests.test_paper_engine import DAYS, prepared  # noqa: F401 (fixture)

NOW = pd.Timestamp("2026-03-01 12:00", tz="UTC")
MIN = pd.Timedelta(minutes=1)
ALERTS = "#system-alerts"
INGEST, LONG, LAG = ("ohlc_1m", "ingest_run_failures"), ("engine_state", "long_runs"), ("engine_state", "engine_lag")


@pytest.fixture(scope="module")
def cfg():
    return load_config()


def run(run_id: str, job: str = "ohlc_1m_job", status: str = "FAILURE", *, created: pd.Timestamp,
        started: pd.Timestamp | None = None, ended: pd.Timestamp | None = None, partition: str | None = "2026-03-01"):
    return RunInfo(run_id=run_id, job_name=job, status=status, partition=partition, created=created,
                   started=started, ended=ended)


# --- the rules -------------------------------------------------------------------------------------------------


def test_failed_ingest_runs_within_24_h_fail_and_one_alert_names_them(cfg):
    old = run("r-old", created=NOW - pd.Timedelta(hours=26), ended=NOW - pd.Timedelta(hours=24) - MIN)
    edge = run("r-edge", created=NOW - pd.Timedelta(hours=25), ended=NOW - pd.Timedelta(hours=24))
    ok = run("r-ok", status="SUCCESS", created=NOW - pd.Timedelta(hours=1), ended=NOW - 50 * MIN)
    other = run("r-15m", job="ohlc_15m_job", created=NOW - pd.Timedelta(hours=1), ended=NOW - 50 * MIN)
    assert failed_ingest_runs([old, ok, other], "ohlc_1m_job", NOW, cfg).passed  # 24 h + 1 min ago: outside
    f = failed_ingest_runs([old, edge, ok, other], "ohlc_1m_job", NOW, cfg)
    assert not f.passed and f.metadata["failed_runs"] == 1 and f.metadata["runs"][0]["run_id"] == "r-edge"
    assert f.metadata["runs"][0]["link"] == "http://127.0.0.1:3000/runs/r-edge"
    new = run("r-new", created=NOW - pd.Timedelta(hours=2), ended=NOW - pd.Timedelta(hours=1))
    g = failed_ingest_runs([edge, new], "ohlc_1m_job", NOW, cfg)
    assert [r["run_id"] for r in g.metadata["runs"]] == ["r-edge", "r-new"]
    a, b = alert_rows([f]), alert_rows([g])
    assert len(a) == len(b) == 1 and a["message_id"].iloc[0] != b["message_id"].iloc[0]  # a new failure: new alert
    assert b["channel"].iloc[0] == ALERTS and b["channel_key"].iloc[0] == "alerts"
    assert "r-new" in b["text"].iloc[0] and "r-edge" in b["text"].iloc[0]
    # the same newest failure later (the older one aged out, the clock moved): the same message, no duplicate
    later = failed_ingest_runs([new], "ohlc_1m_job", NOW + pd.Timedelta(hours=3), cfg)
    assert alert_rows([later])["message_id"].iloc[0] == b["message_id"].iloc[0]


def test_a_run_in_progress_longer_than_max_run_min_fails(cfg):
    limit = pd.Timedelta(minutes=cfg.data.health.max_run_min)
    at_limit = run("r1", status="STARTED", created=NOW - limit - 5 * MIN, started=NOW - limit)
    assert long_runs([at_limit], NOW, cfg).passed  # exactly the limit: not longer
    over = run("r2", job="paper_engine_job", status="STARTED", created=NOW - limit - MIN, started=NOW - limit - MIN)
    queued_long = run("r3", status="STARTING", created=NOW - limit - 2 * MIN)  # not started: counted from creation
    f = long_runs([at_limit, over, queued_long], NOW, cfg)
    assert not f.passed and [r["run_id"] for r in f.metadata["runs"]] == ["r3", "r2"]
    assert f.metadata["runs"][1]["running_min"] == cfg.data.health.max_run_min + 1
    assert long_runs([over], NOW, cfg, exclude=["r2"]).passed  # the checking run itself
    # still running at the next check (r1 has ended): the same alert id; another run becoming long: a new one
    again = long_runs([over, queued_long], NOW + 30 * MIN, cfg)
    assert alert_rows([again])["message_id"].iloc[0] == alert_rows([f])["message_id"].iloc[0]
    more = long_runs([at_limit, over, queued_long], NOW + 10 * MIN, cfg)  # r1 is now over the limit too
    assert alert_rows([more])["message_id"].iloc[0] != alert_rows([f])["message_id"].iloc[0]


def test_engine_lag_at_its_boundaries_and_the_market_symbol_reason(cfg):
    step = pd.Timedelta(minutes=cfg.engine.cycle_min)
    limit = cfg.data.health.max_engine_lag_cycles
    horizon_bar = pd.Timestamp("2026-03-01 10:59", tz="UTC")  # closes 11:00: the newest cycle point it allows
    bars = {"BTC": horizon_bar, "ETH": horizon_bar}
    target = pd.Timestamp("2026-03-01 11:00", tz="UTC")
    assert engine_lag(None, bars, NOW, cfg).passed  # the engine has not started
    assert engine_lag(target, {}, NOW, cfg).passed  # no bars
    ok = engine_lag(target - limit * step, bars, NOW, cfg)
    assert ok.passed and ok.metadata["lag_cycle_points"] == limit
    bad = engine_lag(target - (limit + 1) * step, bars, NOW, cfg)
    assert not bad.passed and bad.metadata["lag_cycle_points"] == limit + 1 and "reason" not in bad.metadata
    assert bad.metadata["newest_cycle_point"] == "2026-03-01 11:00:00 UTC"
    # now bounds the target too (bars never lie in the future, but a clock between cycle points does)
    assert engine_lag(target - 3 * step, bars, target + 4 * MIN, cfg).metadata["lag_cycle_points"] == 3
    # BTC's bars stop at 09:00 while the others go on: the alert says so, and since when
    stopped = engine_lag(target - pd.Timedelta(hours=2), {"BTC": target - pd.Timedelta(hours=2), "ETH": horizon_bar},
                         NOW, cfg)
    assert not stopped.passed and stopped.metadata["lag_cycle_points"] == 24
    assert "BTC bars stopped arriving" in stopped.description and "2026-03-01 09:00:00 UTC" in stopped.description
    # BTC within engine.max_bar_lag_min of the target is not stale
    fresh = engine_lag(target - pd.Timedelta(hours=2),
                       {"BTC": target - pd.Timedelta(minutes=cfg.engine.max_bar_lag_min), "ETH": horizon_bar}, NOW, cfg)
    assert "reason" not in fresh.metadata
    # still stuck at the same cursor an hour later: the same alert id
    later = engine_lag(target - pd.Timedelta(hours=2), {"BTC": target - pd.Timedelta(hours=2),
                                                        "ETH": horizon_bar + pd.Timedelta(hours=1)},
                       NOW + pd.Timedelta(hours=1), cfg)
    assert later.metadata["lag_cycle_points"] == 36
    assert alert_rows([later])["message_id"].iloc[0] == alert_rows([stopped])["message_id"].iloc[0]


# --- through Dagster -------------------------------------------------------------------------------------------


def evaluate(defs, instance, *only: tuple[str, str]) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    """Run the pipeline checks of data_health_job (``only`` these if given) in a run of their own."""
    keys = {k for k in pipeline_check_keys(timeframes_for(defs.resources["project_config"].load()))
            if not only or (k.asset_key.to_user_string(), k.name) in only}
    job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection=set(), asset_check_selection=keys)
    r = job.execute_in_process(instance=instance)
    assert r.success
    out = {(e.asset_key.to_user_string(), e.check_name): e for e in r.get_asset_check_evaluations()}
    assert len(out) == len(keys)
    return out


def outbox(wh: Warehouse) -> pd.DataFrame:
    return wh.outbox()


def test_a_failed_ingest_run_fails_its_check_and_alerts_once(tmp_env, instance):
    defs = build_definitions(tmp_env)
    wh = Warehouse(tmp_env["CRYPTOTRACKER_WAREHOUSE"])
    ev = evaluate(defs, instance)
    assert all(e.passed for e in ev.values()) and outbox(wh).empty
    ingest = defs.resolve_job_def("ohlc_1m_job")
    bad = {"ops": {"ohlc_1m": {"config": {"symbols": ["NOPE"]}}}}  # not in the universe: the run fails
    failed = ingest.execute_in_process(partition_key="2026-03-01", instance=instance, run_config=bad,
                                       raise_on_error=False)
    assert not failed.success
    # a failed run of another job is not an ingest failure
    other = _add_run(instance, "main_job", pd.Timestamp.now(tz="UTC") - 10 * MIN, {"cryptotracker/kind": "main"})
    _event(instance, other, "main_job", "PIPELINE_FAILURE", pd.Timestamp.now(tz="UTC") - 5 * MIN)
    assert instance.get_run_by_id(other).status == dg.DagsterRunStatus.FAILURE
    ev = evaluate(defs, instance)
    check = ev[INGEST]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["failed_runs"].value == 1
    assert check.metadata["runs"].value[0]["run_id"] == failed.run_id
    assert check.metadata["runs"].value[0]["partition"] == "2026-03-01"
    assert all(e.passed for k, e in ev.items() if k != INGEST)
    box = outbox(wh)
    assert len(box) == 1 and box["kind"].iloc[0] == "ingest_run_failed" and box["channel"].iloc[0] == ALERTS
    assert failed.run_id in box["text"].iloc[0] and f"/runs/{failed.run_id}" in box["text"].iloc[0]
    assert check.metadata["alert_message_id"].value == box["message_id"].iloc[0]
    assert json.loads(box["payload_json"].iloc[0])["runs"] == [failed.run_id]
    # the check runs again (every 30 min): the same failure queues nothing new
    again = evaluate(defs, instance, INGEST)[INGEST]
    assert not again.passed and again.metadata["alert_queued"].value == 0 and len(outbox(wh)) == 1
    # the existing outbox delivery sends it, once
    sent = []
    assert deliver(wh, lambda key, text, channel: sent.append((key, text, channel))).delivered == [
        box["message_id"].iloc[0]]
    assert len(sent) == 1 and sent[0][0] == "alerts" and sent[0][2] == ALERTS and failed.run_id in sent[0][1].text
    assert deliver(wh, lambda *a: sent.append(a)).delivered == [] and len(sent) == 1
    # a second failure is news: one more message naming both runs
    second = ingest.execute_in_process(partition_key="2026-03-01", instance=instance, run_config=bad,
                                       raise_on_error=False)
    check = evaluate(defs, instance, INGEST)[INGEST]
    assert check.metadata["failed_runs"].value == 2 and check.metadata["alert_queued"].value == 1
    box = outbox(wh)
    assert len(box) == 2 and second.run_id in box["text"].iloc[-1] and failed.run_id in box["text"].iloc[-1]


def _add_run(instance, job: str, started: pd.Timestamp, tags: dict[str, str]) -> str:
    """A run record of ``job`` that started at ``started`` (its start event carries that time)."""
    rid = str(uuid.uuid4())
    instance.add_run(dg.DagsterRun(job_name=job, run_id=rid, status=dg.DagsterRunStatus.NOT_STARTED, tags=tags))
    _event(instance, rid, job, "PIPELINE_START", started)
    return rid


def _event(instance, rid: str, job: str, kind: str, at: pd.Timestamp) -> None:
    instance.handle_new_event(dg.EventLogEntry(
        error_info=None, level=logging.DEBUG, user_message="", run_id=rid, timestamp=at.timestamp(),
        dagster_event=dg.DagsterEvent(event_type_value=kind, job_name=job)))


def test_a_run_in_progress_for_too_long_fails_its_check_and_alerts_once(tmp_env, instance):
    defs = build_definitions(tmp_env)
    cfg = defs.resources["project_config"].load()
    wh = Warehouse(tmp_env["CRYPTOTRACKER_WAREHOUSE"])
    now = pd.Timestamp.now(tz="UTC")
    limit = pd.Timedelta(minutes=cfg.data.health.max_run_min)
    ours = {"cryptotracker/kind": "main", "dagster/partition": "2026-03-01"}
    recent = _add_run(instance, "main_job", now - limit + pd.Timedelta(minutes=5), ours)
    foreign = _add_run(instance, "someone_elses_job", now - pd.Timedelta(hours=5), {})  # another code location
    ev = evaluate(defs, instance, LONG)
    assert ev[LONG].passed and outbox(wh).empty
    stuck = _add_run(instance, "main_job", now - pd.Timedelta(hours=2), ours)
    assert instance.get_run_by_id(stuck).status == dg.DagsterRunStatus.STARTED
    check = evaluate(defs, instance, LONG)[LONG]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert [r["run_id"] for r in check.metadata["runs"].value] == [stuck]
    assert check.metadata["runs"].value[0]["running_min"] >= 120
    box = outbox(wh)
    assert len(box) == 1 and box["kind"].iloc[0] == "long_run" and stuck in box["text"].iloc[0]
    assert "data.health.max_run_min = 30 min" in box["text"].iloc[0]
    assert evaluate(defs, instance, LONG)[LONG].metadata["alert_queued"].value == 0
    assert len(outbox(wh)) == 1
    # the stuck run ends: the check passes again
    _event(instance, stuck, "main_job", "PIPELINE_SUCCESS", pd.Timestamp.now(tz="UTC"))
    _event(instance, recent, "main_job", "PIPELINE_SUCCESS", pd.Timestamp.now(tz="UTC"))
    assert evaluate(defs, instance, LONG)[LONG].passed
    assert foreign and len(outbox(wh)) == 1


def test_an_engine_behind_the_stored_bars_fails_its_check_naming_how_far_and_why(prepared, instance):  # noqa: F811
    env, defs, cfg = prepared  # two days of bars and scan inputs; the engine has not run
    wh = Warehouse(env["CRYPTOTRACKER_WAREHOUSE"])
    lag = LAG
    first = evaluate(defs, instance, lag)[lag]
    assert first.passed and first.metadata["lag_cycle_points"].value == 0 and outbox(wh).empty
    engine = defs.resolve_job_def("paper_engine_job")
    assert engine.execute_in_process(partition_key=DAYS[0], instance=instance).success
    # cursor 02-02 23:55; the bars reach 02-03 23:59, closed at 02-04 00:00: 289 cycle points behind
    check = evaluate(defs, instance, lag)[lag]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["lag_cycle_points"].value == 289
    assert check.metadata["cursor"].value == "2026-02-02 23:55:00 UTC"
    assert check.metadata["newest_cycle_point"].value == "2026-02-04 00:00:00 UTC"
    assert "reason" not in check.metadata  # BTC's bars are there
    box = outbox(wh)
    engine_msgs = box[box["kind"] == "engine_lag"]
    assert len(engine_msgs) == 1 and "behind by 289 cycle points" in engine_msgs["text"].iloc[0]
    assert engine_msgs["channel"].iloc[0] == ALERTS
    assert evaluate(defs, instance, lag)[lag].metadata["alert_queued"].value == 0
    assert len(outbox(wh)[lambda d: d["kind"] == "engine_lag"]) == 1
    # the engine catches up: within data.health.max_engine_lag_cycles (its own partition ends at 23:55)
    assert engine.execute_in_process(partition_key=DAYS[1], instance=instance).success
    check = evaluate(defs, instance, lag)[lag]
    assert check.passed and check.metadata["lag_cycle_points"].value == 1
    # BTC's bars stop arriving; the other symbols' bars of the next day are stored, the engine has not run
    others = [s for s in defs.resources["project_config"].universe().active_symbols if s != "BTC"]
    assert defs.resolve_job_def("ohlc_1m_job").execute_in_process(
        partition_key="2026-02-04", instance=instance,
        run_config={"ops": {"ohlc_1m": {"config": {"symbols": others}}}}).success
    check = evaluate(defs, instance, lag)[lag]
    assert not check.passed and check.metadata["lag_cycle_points"].value == 289
    reason = check.metadata["reason"].value
    assert "BTC bars stopped arriving" in reason and "2026-02-03 23:59:00 UTC" in reason
    msgs = outbox(wh)[lambda d: d["kind"] == "engine_lag"]
    assert len(msgs) == 2 and "BTC bars stopped arriving" in msgs["text"].iloc[-1]
    assert all(e.passed for k, e in evaluate(defs, instance).items() if k != lag)
