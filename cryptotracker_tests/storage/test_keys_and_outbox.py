"""The tick commit's keys and the outbox table (SPEC §5.3; issue 10, items 3 and 4), on small frames: rows are
idempotent on their key — an identical row committed again (after an engine-state reset) is a no-op, a different
row under a stored key refuses the whole commit — so realised P&L is never counted twice; the outbox keeps a
message once, records failed attempts and delivered marks."""

from __future__ import annotations

import pandas as pd
import pytest

from cryptotracker_assets.core.engine_records import OUTBOX_COLUMNS, TickRecord
from cryptotracker_assets.storage.warehouse import DayState, Warehouse, WarehouseError

UTC_NS = "datetime64[ns, UTC]"
D = pd.Timestamp("2026-02-03", tz="UTC")
M = pd.Timedelta(minutes=1)
TABLES = ("paper_trades", "scan_history", "portfolio_snapshots", "engine_state", "engine_ticks", "limiter_state",
          "notification_outbox")


@pytest.fixture()
def wh(warehouse_location):
    return Warehouse(warehouse_location)  # DuckDB and PostgreSQL alike


def times(*ts) -> pd.Series:
    return pd.Series(list(ts), dtype=UTC_NS)


def ledger(pnl: float = -1.25, size: float = 50.0) -> pd.DataFrame:
    """One closed trade: its BUY (no P&L: NaN) and its SELL."""
    return pd.DataFrame({"trade_group_id": ["SWING_ETH_260203001000_abcd"] * 2, "side": ["BUY", "SELL"],
                         "level": [0, -1], "cycle_point": times(D + 10 * M, D + 40 * M),
                         "size_usd": [size, float("nan")], "pnl_usd": [float("nan"), pnl]})


def scans(decision: str = "SKIP") -> pd.DataFrame:
    return pd.DataFrame({"scan_id": ["SWING_ETH_2602030010", "SWING_BTC_2602030010"],
                         "timestamp": times(D + 10 * M, D + 10 * M), "decision": [decision, "SKIP"],
                         "reason": [None, "rsi"], "price": [2500.5, 70000.25]})


def snapshots(realised: float = -1.25) -> pd.DataFrame:
    return pd.DataFrame({"cycle_point": times(D + 40 * M), "realised": [realised], "equity": [10000 + realised]})


def outbox(*kinds: str) -> pd.DataFrame:
    rows = [{"message_id": f"{k}_2602030040_{i:010x}", "cycle_point": D + 40 * M, "kind": k, "channel_key": "trades",
             "channel": "#trades", "text": f"{k}: trade", "payload_json": "{}"} for i, k in enumerate(kinds)]
    df = pd.DataFrame(rows, columns=list(OUTBOX_COLUMNS))
    df["cycle_point"] = df["cycle_point"].astype(UTC_NS)
    return df


def state(cursor: pd.Timestamp, text: str = '{"s": 1}') -> DayState:
    limiter = pd.DataFrame({"day": times(D), "cursor": times(cursor), "symbol": ["ETH"], "stops": [1],
                            "cooldown_until": times(D + 4 * 60 * M), "banned_until": times(pd.NaT)})
    return DayState(day=D, cursor=cursor, state_json=text, watermark=D + 39 * M, config_version=3, limiter=limiter)


def commit(wh: Warehouse, previous, *, led=None, scan=None, snaps=None, box=None, cursor=D + 40 * M,
           at=D + 41 * M):
    tick = TickRecord(first_cycle_point=D, last_cycle_point=cursor, cycle_points=9, watermark=D + 39 * M,
                      config_version=3, ledger_rows=2, scan_rows=2, messages=len(box) if box is not None else 0)
    return wh.commit_tick({"paper_trades": ledger() if led is None else led, "scan_history": scans() if scan is None
                           else scan, "portfolio_snapshots": snapshots() if snaps is None else snaps},
                          states=[state(cursor)], previous_cursor=previous, committed_at=at, tick=tick,
                          outbox=outbox("closed") if box is None else box)


def everything(wh: Warehouse) -> dict[str, pd.DataFrame]:
    return {t: wh.read_sql(f"SELECT * FROM {t}") for t in TABLES}


def realised(wh: Warehouse) -> float:
    return float(wh.read_sql("SELECT sum(pnl_usd) AS p FROM paper_trades WHERE side = 'SELL'")["p"].iloc[0])


def reset(wh: Warehouse) -> None:
    with wh.connect() as con:
        con.execute("DELETE FROM engine_state")


def test_an_identical_row_committed_again_after_a_reset_is_a_no_op(wh):
    assert commit(wh, None) == 1
    first = everything(wh)
    reset(wh)  # the engine forgets it processed these cycle points and commits the same rows again
    assert commit(wh, None, at=D + 50 * M) == 2
    again = everything(wh)
    for t in ("paper_trades", "scan_history", "portfolio_snapshots", "limiter_state", "notification_outbox"):
        pd.testing.assert_frame_equal(first[t], again[t], check_exact=True, obj=t)  # NaN P&L of a BUY included
    assert len(again["engine_state"]) == 1 and list(again["engine_ticks"]["tick_id"]) == [1, 2]
    assert realised(wh) == -1.25  # not -2.50


@pytest.mark.parametrize("what, kwargs, key, column", [
    ("a SELL with another P&L", {"led": ledger(pnl=-0.75)}, "trade_group_id", "pnl_usd"),
    ("a BUY of another size", {"led": ledger(size=60.0)}, "trade_group_id", "size_usd"),
    ("a scan row with another decision", {"scan": scans("TAKE")}, "scan_id", "decision"),
    ("a snapshot with other P&L", {"snaps": snapshots(-2.5)}, "cycle_point", "realised"),
])
def test_a_different_row_under_a_stored_key_refuses_the_whole_commit(wh, what, kwargs, key, column):
    commit(wh, None)
    reset(wh)
    before = everything(wh)
    # the refused tick also carries rows under new keys and a new message: none of them may be stored
    extra = {"led": pd.concat([kwargs.get("led", ledger()), ledger().assign(
        trade_group_id="SWING_SOL_260203001000_ef01")], ignore_index=True),
        "scan": pd.concat([kwargs.get("scan", scans()), scans().assign(scan_id=["DCA_ETH_2602030010",
                                                                               "DCA_BTC_2602030010"])],
                          ignore_index=True),
        "snaps": kwargs.get("snaps", snapshots()), "box": outbox("closed", "opened")}
    with pytest.raises(WarehouseError, match=rf"a stored row has the key \{{'{key}': .* other values in "
                                             rf"\[.*'{column}'.*\].*refusing to store a second version"):
        commit(wh, None, at=D + 50 * M, **extra)
    after = everything(wh)
    for t in TABLES:
        pd.testing.assert_frame_equal(before[t], after[t], check_exact=True, obj=t)
    assert realised(wh) == -1.25


def test_rows_repeating_a_key_and_a_stale_cursor_are_refused(wh):
    commit(wh, None)
    before = everything(wh)
    with pytest.raises(WarehouseError, match="repeat the key"):
        commit(wh, D + 40 * M, led=pd.concat([ledger(), ledger()], ignore_index=True), cursor=D + 45 * M)
    with pytest.raises(WarehouseError, match="cursor is 2026-02-03 00:40.*started from None"):
        commit(wh, None, cursor=D + 45 * M)  # computed from an older state: another tick committed first
    after = everything(wh)
    for t in TABLES:
        pd.testing.assert_frame_equal(before[t], after[t], check_exact=True, obj=t)


def test_the_outbox_keeps_a_message_once_and_records_attempts(wh):
    commit(wh, None, box=outbox("closed", "panic"))
    ids = list(outbox("closed", "panic")["message_id"])
    box = wh.outbox()
    assert list(box["message_id"]) == ids and (box["attempts"] == 0).all() and box["delivered_at"].isna().all()
    assert list(box["created_at"]) == [D + 41 * M] * 2  # queued in the tick's commit
    wh.mark_failed(ids[0], "RuntimeError: slack down")
    wh.mark_failed(ids[0], "RuntimeError: slack still down")
    wh.mark_delivered(ids[1], D + 42 * M)
    pending = wh.pending_messages(10)
    assert list(pending["message_id"]) == [ids[0]]
    assert (pending["attempts"].iloc[0], pending["last_error"].iloc[0]) == (2, "RuntimeError: slack still down")
    # queued again (a replay of the same cycle point, a health check repeating itself): kept once, marks kept
    assert wh.queue_messages(outbox("closed", "panic"), D + 50 * M) == 0
    wh.mark_delivered(ids[0], D + 51 * M)
    wh.mark_delivered(ids[0], D + 59 * M)  # a second mark of a delivered message changes nothing
    box = wh.outbox().set_index("message_id")
    assert list(box["attempts"]) == [3, 1] and box["last_error"].isna().all()
    assert list(box["delivered_at"]) == [D + 51 * M, D + 42 * M] and wh.undelivered_count() == 0
