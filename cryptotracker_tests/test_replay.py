"""``cryptotracker replay`` (issue 10): the backtest is the engine replayed over stored bars into its own warehouse.

Over the bars the live run read it reproduces the live ledger bit for bit (parity 0); a bar revised after the live
tick read it makes the parity report name the first differing row; an interrupted replay resumes; the live
warehouse is never written.
"""

from __future__ import annotations

import pandas as pd

from cryptotracker_assets.cli import main as cli
from cryptotracker_assets.services.operator import read_ledger
from cryptotracker_assets.storage.warehouse import Warehouse
from cryptotracker_tests.test_paper_engine import DAYS, prepared, subset_job  # noqa: F401 (fixture)


def live_run(env, defs, instance) -> Warehouse:
    """The live chain (regime, scan, engine) over both days, with an operator pause in between."""
    job = defs.resolve_job_def("paper_engine_job")
    assert job.execute_in_process(partition_key=DAYS[0], instance=instance).success
    wh = Warehouse(env["CRYPTOTRACKER_WAREHOUSE"])
    stamp = pd.Timestamp(DAYS[1], tz="UTC") + pd.Timedelta(hours=3, minutes=2)
    wh.record_operator_event("pause", None, "alice", "replay test", lambda: stamp)
    wh.record_operator_event("resume", None, "alice", "replay test", lambda: stamp + pd.Timedelta(hours=2))
    assert job.execute_in_process(partition_key=DAYS[1], instance=instance).success
    return wh


def replay_args(env, out, *extra, to=DAYS[1]):
    return ["replay", "--from", DAYS[0], "--to", to, "--out", str(out), "--warehouse",
            env["CRYPTOTRACKER_WAREHOUSE"], "--quiet", *extra]


def test_replay_reproduces_the_live_ledger_and_names_a_revised_bar(prepared, instance, tmp_path, capsys,
                                                                   monkeypatch):
    env, defs, cfg = prepared
    monkeypatch.setenv("CRYPTOTRACKER_CONFIG", env["CRYPTOTRACKER_CONFIG"])
    wh = live_run(env, defs, instance)
    live = read_ledger(wh)
    assert (live["side"] == "SELL").sum() >= 3
    paused = wh.read_sql("SELECT count(*) AS n FROM scan_history WHERE reason = 'paused'")["n"].iloc[0]
    assert paused > 0  # the operator events mattered
    before = {t: wh.read_sql(f"SELECT count(*) AS n FROM {t}")["n"].iloc[0] for t in ("paper_trades", "scan_history")}

    # 1. over the same stored bars: identical, bit for bit, and the live warehouse untouched
    out = tmp_path / "bt.duckdb"
    assert cli(replay_args(env, out, "--require-parity")) == 0
    text = capsys.readouterr().out
    assert "0 differences (identical, bit for bit)" in text and "under the config versions in force" in text
    bt = Warehouse(out)
    pd.testing.assert_frame_equal(read_ledger(bt), live, check_exact=True)
    for t, keys in (("scan_history", "timestamp, strategy, symbol"), ("portfolio_snapshots", "cycle_point"),
                    ("shadow_outcomes", "shadow_id"), ("shadow_exits", "shadow_id")):  # shadows too (issue 11)
        a, b = (w.read_sql(f"SELECT * FROM {t} ORDER BY {keys}") for w in (wh, bt))
        assert set(a.columns) == set(b.columns)
        pd.testing.assert_frame_equal(a, b[list(a.columns)], check_exact=True)
    assert bt.engine_state()["state_json"] == wh.engine_state()["state_json"]
    assert before == {t: wh.read_sql(f"SELECT count(*) AS n FROM {t}")["n"].iloc[0]
                      for t in ("paper_trades", "scan_history")}

    # 2. a bar revised after the live tick read it: the replay differs and names the first differing row
    sell = live[live["side"] == "SELL"].sort_values("cycle_point").iloc[0]
    bars = wh.read_bars("1m", sell["bar_time"], sell["bar_time"] + pd.Timedelta(minutes=1), [sell["symbol"]])
    flat = bars.assign(high=bars["open"], low=bars["open"], close=bars["open"],
                       ingested_at=pd.Timestamp.now(tz="UTC"))  # the exit bar now moves nowhere
    wh.upsert_bars("1m", flat)
    assert cli(replay_args(env, tmp_path / "bt2.duckdb", "--require-parity")) == 1
    text = capsys.readouterr().out
    assert "difference(s)" in text and "first: " in text
    first = text.split("first: ", 1)[1].splitlines()[0]
    assert sell["trade_group_id"] in first or "only in the" in first, first


def test_replay_resumes_refuses_the_live_file_and_runs_a_what_if_config(prepared, instance, tmp_path, capsys,
                                                                       monkeypatch):
    env, defs, cfg = prepared
    monkeypatch.setenv("CRYPTOTRACKER_CONFIG", env["CRYPTOTRACKER_CONFIG"])
    wh = live_run(env, defs, instance)
    assert cli(replay_args(env, env["CRYPTOTRACKER_WAREHOUSE"])) == 2
    assert "is the live warehouse" in capsys.readouterr().err
    out = tmp_path / "bt.duckdb"
    assert cli(replay_args(env, out, "--chunk-days", "1", to=DAYS[0])) == 0  # the first day only
    assert Warehouse(out).engine_state()["cursor"] == pd.Timestamp(DAYS[0], tz="UTC") + pd.Timedelta(hours=23,
                                                                                                      minutes=55)
    capsys.readouterr()
    assert cli(replay_args(env, out, "--require-parity", "--chunk-days", "1")) == 0  # resumes with the second day
    text = capsys.readouterr().out
    assert f"resumed from {DAYS[1]} 00:00" in text and "0 differences" in text
    pd.testing.assert_frame_equal(read_ledger(Warehouse(out)), read_ledger(wh), check_exact=True)
    assert Warehouse(out).engine_state()["state_json"] == wh.engine_state()["state_json"]
    # one chunk a day (each day's bars read with its own warm-up, in the worker process) equals one chunk
    assert cli(replay_args(env, tmp_path / "daily.duckdb", "--require-parity", "--chunk-days", "1")) == 0
    assert Warehouse(tmp_path / "daily.duckdb").engine_state()["state_json"] == wh.engine_state()["state_json"]
    capsys.readouterr()
    # a what-if: the whole window under another config; recorded as the output's own version
    what_if = tmp_path / "what_if.yaml"
    what_if.write_text(open(env["CRYPTOTRACKER_CONFIG"]).read()
                       + "exits: {channel: {large_cap: {take_profit: 0.03}}}\n")
    assert cli(replay_args(env, tmp_path / "bt3.duckdb", "--config", str(what_if))) == 0
    text = capsys.readouterr().out
    assert "under the given config" in text and "parity with the live ledger" in text
    rows = read_ledger(Warehouse(tmp_path / "bt3.duckdb"))
    assert (rows["config_version"] == 1).all()
    assert Warehouse(tmp_path / "bt3.duckdb").read_sql("SELECT * FROM config_versions")["origin"].tolist() == [
        str(what_if)]
