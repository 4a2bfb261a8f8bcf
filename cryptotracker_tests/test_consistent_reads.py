"""Issue 10, item 8: a tick reads state, regime, scan rows, ledger, events and bars in ONE read transaction, so a
writer that commits while the tick is reading can never give it a torn view (some inputs from before the write,
others from after).

The write lands between the tick's ledger read and its events read (a hook on the ledger read commits an operator
pause through a second connection). The tick must decide as if the pause did not exist — the control run, with the
same pause committed before the tick starts, shows that the engine would otherwise have paused its entries."""

from __future__ import annotations

import pandas as pd
import pytest

from cryptotracker_assets.services.engine_runner import run_tick
from cryptotracker_assets.storage.warehouse import Warehouse
from cryptotracker_tests.engine_support import DAYS, engine_config, prepared_world


FROM = pd.Timestamp(DAYS[1], tz="UTC")  # the first day has no 24 h of BTC history: regime UNKNOWN, no entries
UNTIL = FROM + pd.Timedelta(hours=12)
PAUSE_AT = FROM + pd.Timedelta(hours=2, seconds=30)  # inside the tick's window


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    world = prepared_world(tmp_path_factory.mktemp("consistent"))
    run_tick(Warehouse(world.warehouse), engine_config(world.warehouse, world.config), until=FROM)
    return world


def paused_rows(wh: Warehouse) -> int:
    return int(wh.read_sql("SELECT count(*) AS n FROM scan_history WHERE reason = 'paused'")["n"].iloc[0])


def test_a_write_committed_while_the_tick_reads_is_not_half_seen(base, tmp_path, monkeypatch):
    control = base.copy(tmp_path / "control")
    raced = base.copy(tmp_path / "raced")
    cfg = engine_config(control.warehouse, control.config)

    # control: the pause exists before the tick reads anything -> entries are paused from 02:05
    Warehouse(control.warehouse).record_operator_event("pause", None, "alice", "control", lambda: PAUSE_AT)
    run_tick(Warehouse(control.warehouse), cfg, until=UNTIL)
    assert paused_rows(Warehouse(control.warehouse)) > 0

    # raced: the same pause is committed by another connection after the tick read the ledger, before it read
    # the events
    original = Warehouse.read_ledger_rows
    committed = []

    def ledger_then_concurrent_write(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        if not committed:
            other = Warehouse(raced.warehouse)
            other.record_operator_event("pause", None, "alice", "raced", lambda: PAUSE_AT)
            committed.append(len(other.operator_events()))
        return out

    monkeypatch.setattr(Warehouse, "read_ledger_rows", ledger_then_concurrent_write)
    wh = Warehouse(raced.warehouse)
    result = run_tick(wh, engine_config(raced.warehouse, raced.config), until=UNTIL)
    monkeypatch.undo()
    assert committed == [1]  # the write was committed, in the middle of the tick's reads
    assert result.processed == 144
    assert paused_rows(wh) == 0  # the tick saw the warehouse as it was when its reads began
    assert len(wh.operator_events()) == 1  # and the event is stored for the next tick's view
