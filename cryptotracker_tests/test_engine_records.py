"""What a tick records and what it reads (issue 10, items 1, 4 and 6), against a warehouse prepared once:

- an operator event whose insert waits on the DuckDB file across a cycle point is stamped after the lock was
  obtained and applied from the first cycle point after its stamp (SPEC §0.2); a stamp taken before the lock (the
  old ``record``) would have been lost; ``cryptotracker status`` shows what the engine applied, and from which cycle
  point, and a pending event as pending;
- after an engine-state reset the engine re-runs committed cycle points: identical rows are no-ops, a different row
  under a stored key is refused (nothing of the tick is stored), realised P&L is never counted twice;
- one tick record per committed tick (tick id, cycle points, bar watermark, config version, commit time), shown by
  ``cryptotracker status``;
- a ledger value that cannot be read as its column's type stops the tick naming the row and the field.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
import time

import pandas as pd
import pytest

from cryptotracker_assets.cli import main as cli
from cryptotracker_assets.services.engine_runner import run_tick
from cryptotracker_assets.services.operator import OperatorError, applied_operator, load_status, read_ledger
from cryptotracker_assets.storage.warehouse import Warehouse, WarehouseError
from cryptotracker_tests.engine_support import DAYS, at, engine_config, prepared_world, tick_holding_lock

STEP = pd.Timedelta(minutes=5)
SPAWN = mp.get_context("spawn")
TABLES = ("paper_trades", "scan_history", "portfolio_snapshots", "engine_state", "engine_ticks", "limiter_state",
          "notification_outbox", "operator_events")


@pytest.fixture(scope="module")
def base_world(tmp_path_factory):
    return prepared_world(tmp_path_factory.mktemp("records"))


@pytest.fixture()
def world(base_world, tmp_path, monkeypatch):
    w = base_world.copy(tmp_path / "w")
    monkeypatch.setenv("CRYPTOTRACKER_CONFIG", str(w.config))  # for the CLI
    return w


def stored(wh: Warehouse) -> dict[str, pd.DataFrame]:
    """Every table a tick writes (and the events), sorted, for before / after comparisons."""
    out = {}
    for t in TABLES:
        df = wh.read_sql(f"SELECT * FROM {t}")
        out[t] = df.sort_values(list(df.columns[:4])).reset_index(drop=True)
    return out


def assert_unchanged(a: dict, b: dict, skip: tuple[str, ...] = (), recommitted: bool = False) -> None:
    """Every table equal; ``recommitted``: the state rows were written again (their commit time and tick count
    are new, the state the same)."""
    for t in TABLES:
        if t in skip:
            continue
        x, y = a[t], b[t]
        if recommitted and t == "engine_state":
            x, y = x.drop(columns=["committed_at", "ticks"]), y.drop(columns=["committed_at", "ticks"])
        pd.testing.assert_frame_equal(x, y, check_exact=True, obj=t)


def status_text(wh: Warehouse, capsys) -> str:
    capsys.readouterr()
    assert cli(["status", "--warehouse", str(wh.path)]) == 0
    return capsys.readouterr().out


# --- item 1: the pause race ------------------------------------------------------------------------------------

T1 = at(1, "15:45")  # the cycle point the lock holder processes; entries were decided at 15:50 when not paused
ASKED = T1 - pd.Timedelta(seconds=30)  # when the operator typed `cryptotracker pause`
PASSED = T1 + pd.Timedelta(seconds=30)  # the clock once the tick of T1 committed and released the file


def pause_across_a_cycle_point(world, stamp_first: bool) -> tuple[pd.Timestamp, list]:
    """The engine is at 15:40. Another process holds the warehouse file and, while a pause is asked at 15:44:30,
    processes the cycle point 15:45 (reading the events: none yet), commits, and releases the file at 15:45:30.
    Returns the event's stamp and the clock readings taken while the insert waited for the file."""
    wh = Warehouse(world.warehouse, lock_timeout_s=120, lock_retry_s=0.02)
    cfg = engine_config(world.warehouse, world.config)
    run_tick(wh, cfg, until=T1)
    clock_ns = SPAWN.Value("q", ASKED.value)
    held, go = SPAWN.Event(), SPAWN.Event()
    holder = SPAWN.Process(target=tick_holding_lock, args=(str(world.warehouse), str(world.config),
                                                           str(T1 + STEP), PASSED.value, clock_ns, held, go))
    holder.start()
    readings: list[pd.Timestamp] = []

    def clock() -> pd.Timestamp:
        readings.append(pd.Timestamp(clock_ns.value, tz="UTC"))
        return readings[-1]

    if stamp_first:  # the old `record`: stamp now, then wait for the file to insert
        stamp = clock()
        insert = lambda: wh.record_operator_event("pause", None, "alice", "race", lambda: stamp)  # noqa: E731
    else:
        insert = lambda: wh.record_operator_event("pause", None, "alice", "race", clock)  # noqa: E731
    try:
        assert held.wait(60)
        done: list[pd.Timestamp] = []
        waiter = threading.Thread(target=lambda: done.append(insert()))
        waiter.start()
        time.sleep(0.5)
        assert waiter.is_alive(), "the insert did not wait for the file"
        while_waiting = list(readings)
        go.set()
        holder.join(120)
        assert holder.exitcode == 0
        waiter.join(120)
        assert done, "the insert never happened"
    finally:
        go.set()
        if holder.is_alive():
            holder.kill()
    assert wh.engine_state()["cursor"] == T1  # the holder processed 15:45 before the event was stored
    return done[0], while_waiting


def test_a_pause_waiting_for_the_lock_across_a_cycle_point_is_stamped_after_it_and_applied(world, capsys):
    stamp, while_waiting = pause_across_a_cycle_point(world, stamp_first=False)
    assert while_waiting == []  # no stamp while the insert waited for the file
    assert stamp == PASSED  # stamped after the lock was obtained, so after the tick that read the events
    wh = Warehouse(world.warehouse)
    cfg = engine_config(world.warehouse, world.config)
    # Not applied yet: the engine is at 15:45; status says so and shows the event as pending from 15:50.
    st = load_status(wh, cfg)
    assert not st.paused and st.operator.since is None
    pending = st.operator.pending
    assert list(pending["action"]) == ["pause"] and list(pending["acts_from"]) == [T1 + STEP]
    out = status_text(wh, capsys)
    assert "ENTRIES PAUSED" not in out
    assert ("pending operator event: pause by alice stamped 2026-02-03 15:45:30 UTC — acts from cycle point "
            "2026-02-03 15:50:00 UTC (not applied yet)") in out
    # The next ticks apply it from 15:50, the first cycle point after its stamp.
    run_tick(wh, cfg, until=at(1, "16:30"))
    op = applied_operator(wh.engine_state(), wh.operator_events(), cfg)
    assert op.paused and (op.who, op.why, op.since, op.applied_from) == ("alice", "race", PASSED, T1 + STEP)
    assert op.pending.empty
    scans = wh.read_sql("SELECT * FROM scan_history WHERE timestamp >= ?", [(T1 + STEP).to_pydatetime()])
    assert not (scans["decision"] == "TAKE").any() and (scans["reason"] == "paused").any()
    ledger = read_ledger(wh)
    assert not ((ledger["side"] == "BUY") & (ledger["bar_time"] >= T1 + STEP)).any()
    out = status_text(wh, capsys)
    assert "ENTRIES PAUSED" in out and "pending operator event" not in out
    assert ("operator (as applied by the engine): entries paused by alice (why: race), event stamped "
            "2026-02-03 15:45:30 UTC, applied from cycle point 2026-02-03 15:50:00 UTC") in out


def test_a_stamp_taken_before_the_lock_would_have_been_lost(world, capsys):
    """The old order (stamp, then wait for the file): the event lands in [15:40, 15:45) after 15:45 was processed,
    and no later cycle point ever applies it — entries go on while the event table holds a pause."""
    stamp, while_waiting = pause_across_a_cycle_point(world, stamp_first=True)
    assert while_waiting == [ASKED] and stamp == ASKED
    wh = Warehouse(world.warehouse)
    cfg = engine_config(world.warehouse, world.config)
    run_tick(wh, cfg, until=at(1, "16:30"))
    assert list(wh.operator_events()["action"]) == ["pause"]
    op = applied_operator(wh.engine_state(), wh.operator_events(), cfg)
    assert not op.paused and op.since is None and op.pending.empty  # lost: neither applied nor pending
    scans = wh.read_sql("SELECT * FROM scan_history WHERE timestamp = ?", [(T1 + STEP).to_pydatetime()])
    assert (scans["decision"] == "TAKE").any()
    ledger = read_ledger(wh)
    assert ((ledger["side"] == "BUY") & (ledger["bar_time"] == T1 + STEP)).sum() >= 1
    assert "ENTRIES PAUSED" not in status_text(wh, capsys)  # status tells what the engine did, not the table


# --- item 4: keys, engine-state reset, tick records ------------------------------------------------------------

DAY1 = pd.Timestamp(DAYS[1], tz="UTC")
UNTIL = at(1, "06:00")  # day 1 00:00–05:55: seven positions opened and stopped out


def reset_engine_state(wh: Warehouse, from_day: pd.Timestamp | None = None) -> None:
    """An engine-state reset: the state rows of ``from_day`` on (all of them if None) are deleted, so the engine
    re-runs cycle points whose rows are committed."""
    with wh.connect() as con:
        if from_day is None:
            con.execute("DELETE FROM engine_state")
        else:
            con.execute("DELETE FROM engine_state WHERE day >= ?", [from_day.to_pydatetime()])


def realised(wh: Warehouse) -> tuple[int, float]:
    sells = wh.read_sql("SELECT pnl_usd FROM paper_trades WHERE side = 'SELL' ORDER BY trade_group_id")
    return len(sells), float(sells["pnl_usd"].sum())


def test_after_an_engine_state_reset_identical_rows_are_no_ops_and_a_different_row_is_refused(world):
    wh = Warehouse(world.warehouse)
    cfg = engine_config(world.warehouse, world.config)
    run_tick(wh, cfg, until=DAY1)
    day1 = run_tick(wh, cfg, until=UNTIL)
    assert (day1.outputs.ledger_rows["side"] == "SELL").sum() >= 5  # the re-run cycle points hold closed trades
    before = stored(wh)
    sells, pnl = realised(wh)
    assert sells >= 5 and pnl < 0
    # 1) The state of day 1 is lost: the engine re-runs day 1 from the end of day 0 — every row identical.
    reset_engine_state(wh, DAY1)
    again = run_tick(wh, cfg, until=UNTIL)
    assert again.processed == 72 and len(again.outputs.ledger_rows) == len(day1.outputs.ledger_rows)
    after = stored(wh)
    assert_unchanged(before, after, skip=("engine_ticks",), recommitted=True)  # the same rows again
    assert list(after["engine_ticks"]["tick_id"]) == [1, 2, 3]
    assert realised(wh) == (sells, pnl)
    # 2) All state lost: the engine re-runs both days from nothing — still no row stored twice.
    reset_engine_state(wh)
    assert run_tick(wh, cfg, until=UNTIL).processed == 288 + 72
    assert_unchanged(before, stored(wh), skip=("engine_ticks",), recommitted=True)
    assert realised(wh) == (sells, pnl)
    # 3) Reset again, and the inputs of committed cycle points changed since (a pause stamped in the past): the
    #    re-run computes other rows under stored keys; the commit is refused and nothing of the tick is stored.
    wh.record_operator_event("pause", None, "ops", "late", lambda: at(1, "00:07"))
    reset_engine_state(wh, DAY1)
    before = stored(wh)
    with pytest.raises(WarehouseError, match=r"a stored row has the key .* with other values in \[.*'reason'"):
        run_tick(wh, cfg, until=UNTIL)
    assert_unchanged(before, stored(wh))
    assert wh.engine_state()["cursor"] == DAY1 - STEP
    assert realised(wh) == (sells, pnl)
    ledger = read_ledger(wh)
    assert not ledger.duplicated(["trade_group_id", "side", "level"]).any()


def test_one_tick_record_per_committed_tick_and_status_shows_the_last_ticks(world, capsys):
    wh = Warehouse(world.warehouse)
    cfg = engine_config(world.warehouse, world.config)
    commits = [pd.Timestamp("2026-02-04 09:00:01", tz="UTC"), pd.Timestamp("2026-02-04 09:00:02", tz="UTC")]
    first = run_tick(wh, cfg, until=DAY1, now=commits[0])
    second = run_tick(wh, cfg, until=UNTIL, now=commits[1])
    nothing = run_tick(wh, cfg, until=UNTIL, now=pd.Timestamp("2026-02-04 09:00:03", tz="UTC"))
    assert (first.tick_id, second.tick_id, nothing.tick_id, nothing.processed) == (1, 2, None, 0)
    ticks = wh.engine_ticks()
    assert list(ticks["tick_id"]) == [1, 2]  # the tick with nothing to process recorded nothing
    assert list(ticks["first_cycle_point"]) == [pd.Timestamp(DAYS[0], tz="UTC"), DAY1]
    assert list(ticks["last_cycle_point"]) == [DAY1 - STEP, UNTIL - STEP]
    assert list(ticks["cycle_points"]) == [288, 72]
    assert list(ticks["committed_at"]) == commits
    assert list(ticks["config_version"]) == [cfg.config_version] * 2 and cfg.config_version >= 1
    # the watermark: the newest ingested_at of the base bars the tick could read (open before its last point)
    bars = wh.read_bars("1m")
    for r in ticks.itertuples():
        assert r.watermark == bars.loc[bars["timestamp"] < r.last_cycle_point, "ingested_at"].max()
    # the row counts are those stored for the tick's cycle points
    for r in ticks.itertuples():
        span = [r.first_cycle_point.to_pydatetime(), r.last_cycle_point.to_pydatetime()]
        n = {t: int(wh.read_sql(f"SELECT count(*) AS n FROM {t} WHERE {c} BETWEEN ? AND ?", span)["n"].iloc[0])
             for t, c in (("paper_trades", "cycle_point"), ("scan_history", "timestamp"),
                          ("notification_outbox", "cycle_point"))}
        assert (r.ledger_rows, r.scan_rows, r.messages) == (n["paper_trades"], n["scan_history"],
                                                            n["notification_outbox"])
    assert ticks["ledger_rows"].iloc[1] > 0 and ticks["messages"].iloc[1] > 0
    out = status_text(wh, capsys)
    assert "last 2 tick(s):" in out
    lines = out.splitlines()
    row1 = next(ln for ln in lines if "2026-02-02 00:00 .. 23:55 (288)" in ln)
    row2 = next(ln for ln in lines if "2026-02-03 00:00 .. 05:55 (72)" in ln)
    assert row1.split()[0] == "1" and row2.split()[0] == "2"
    assert "2026-02-04 09:00:01" in row1 and "2026-02-04 09:00:02" in row2
    assert f"{ticks['watermark'].iloc[1]:%Y-%m-%d %H:%M:%S}" in row2
    assert f"outbox: {wh.undelivered_count()} message(s) not delivered yet" in out


# --- item 6: a ledger that is not one ---------------------------------------------------------------------------


def test_a_ledger_value_that_cannot_be_read_stops_the_tick_naming_row_and_field(world):
    wh = Warehouse(world.warehouse)
    cfg = engine_config(world.warehouse, world.config)
    run_tick(wh, cfg, until=UNTIL)
    ledger = read_ledger(wh)
    i = int(ledger.index[ledger["side"] == "SELL"][2])
    bad = ledger.loc[i, "trade_group_id"]
    with wh.connect() as con:  # someone edits the ledger by hand: a text in a float column
        con.execute("ALTER TABLE paper_trades ALTER COLUMN pnl_usd TYPE VARCHAR")
        con.execute("UPDATE paper_trades SET pnl_usd = 'n/a' WHERE trade_group_id = ? AND side = 'SELL'", [bad])
    before = stored(wh)
    with pytest.raises(OperatorError, match=rf"paper_trades: row {i} \({bad}\), column 'pnl_usd' cannot be read "
                                            rf"as float64: .*'n/a'"):
        run_tick(wh, cfg, until=at(1, "12:00"))
    assert_unchanged(before, stored(wh))  # nothing committed: no state, rows, tick record or message
    assert wh.engine_state()["cursor"] == UNTIL - STEP
