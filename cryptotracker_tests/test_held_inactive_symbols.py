"""A symbol deactivated while the engine holds a position on it (issue 10, item 2): its bars keep being ingested
and healed until the position is flat, so the position exits by its own rules (stop, TP, trail, time) exactly as
if the symbol had stayed active — not through the no-data rule at a stale price; once flat the symbol is no
longer ingested."""

from __future__ import annotations

import pandas as pd

from cryptotracker_assets.core.config import Timeframe
from cryptotracker_assets.core.universe import Universe
from cryptotracker_assets.services.engine_runner import run_tick
from cryptotracker_assets.services.ingest import held_symbols, ingest_symbols
from cryptotracker_assets.services.maintenance import heal_gaps
from cryptotracker_assets.services.operator import read_ledger
from cryptotracker_assets.storage.warehouse import Warehouse
from cryptotracker_tests.engine_support import (DAYS, at, engine_config, ingest_and_scan, new_world, prepared_world,
                                                user_config)
from resources import SyntheticMarketData

SYMBOL = "DOGE"  # the engine opens CHANNEL DOGE at 15:50 on day 1; it stops out at 21:58 on the stored bars
NEXT_DAY = "2026-02-04"
RULE_EXITS = {"stop_loss", "trailing_stop", "take_profit", "time_exit"}


def doge_group(ledger: pd.DataFrame) -> str:
    buys = ledger[(ledger["symbol"] == SYMBOL) & (ledger["side"] == "BUY")]
    return buys["trade_group_id"].iloc[-1]


def test_a_position_on_a_symbol_deactivated_while_open_gets_its_bars_and_exits_by_its_rules(tmp_path):
    # Reference: the symbol stays active; both days' bars are there from the start.
    ref = prepared_world(tmp_path / "ref")
    ref_wh = Warehouse(ref.warehouse)
    run_tick(ref_wh, engine_config(ref.warehouse, ref.config))
    ref_ledger = read_ledger(ref_wh)

    # Live: day 1 has arrived up to 16:00; the engine opens a DOGE position at 15:50.
    world = new_world(tmp_path / "live", user_config())
    ingest_and_scan(world, DAYS, as_of=f"{DAYS[1]}T16:00:00Z")
    wh = Warehouse(world.warehouse)
    run_tick(wh, engine_config(world.warehouse, world.config))
    assert wh.engine_state()["cursor"] == at(1, "16:00")
    group = doge_group(read_ledger(wh))
    assert group == doge_group(ref_ledger) and SYMBOL in held_symbols(wh)
    sell = ref_ledger[(ref_ledger["trade_group_id"] == group) & (ref_ledger["side"] == "SELL")]
    assert len(sell) == 1 and sell["bar_time"].iloc[0] > at(1, "16:00")  # it exits later that day

    # The user deactivates DOGE: it is no longer scanned, but it is still ingested and healed while held.
    inactive = tmp_path / "live" / "user_config_inactive.yaml"
    inactive.write_text(user_config(inactive=(SYMBOL,)))
    cfg = engine_config(world.warehouse, inactive)
    universe = Universe.from_config(cfg)
    assert SYMBOL not in universe.active_symbols
    assert ingest_symbols(wh, universe) == universe.symbols  # the active ones and DOGE, in universe order
    # gap healing re-fetches a hole in its bars
    with wh.connect() as con:
        con.execute("DELETE FROM ohlc_1m WHERE symbol = ? AND timestamp >= ? AND timestamp < ?",
                    [SYMBOL, at(1, "10:00").to_pydatetime(), at(1, "10:30").to_pydatetime()])
    fetch = lambda s, tf, a, b: SyntheticMarketData().fetch_bars(s, tf, a, b, cfg)  # noqa: E731
    gaps = heal_gaps(fetch, wh, cfg, [Timeframe.M1], ingest_symbols(wh, universe), at(1, "16:00"))
    assert list(gaps[["symbol", "status", "healed_bars"]].itertuples(index=False, name=None)) == [
        (SYMBOL, "healed", 30)]
    # the rest of day 1 arrives through the OHLC asset, whose default symbol list includes DOGE
    ingest_and_scan(world, [DAYS[1]], config=inactive)
    bars = wh.read_bars("1m", at(1, "16:00"), at(1, "23:59", 60), [SYMBOL])
    assert len(bars) == 8 * 60
    scan_syms = set(wh.read_sql("SELECT DISTINCT symbol FROM scan_preview WHERE timestamp > ?",
                                [at(1, "16:00").to_pydatetime()])["symbol"])
    assert scan_syms == set(universe.active_symbols)  # not scanned any more

    # The engine exits the position by its rules, exactly as if DOGE had stayed active.
    run_tick(wh, cfg)
    assert wh.engine_state()["cursor"] == at(1, "23:55")
    ledger = read_ledger(wh)
    got = ledger[(ledger["trade_group_id"] == group) & (ledger["side"] == "SELL")]
    assert len(got) == 1
    assert got["exit_reason"].iloc[0] in RULE_EXITS and not got["no_data"].iloc[0]
    pd.testing.assert_frame_equal(got.reset_index(drop=True), sell.reset_index(drop=True), check_exact=True)
    assert not ((ledger["symbol"] == SYMBOL) & (ledger["bar_time"] > at(1, "16:00")) & (ledger["side"] == "BUY")).any()

    # Flat: DOGE is no longer ingested.
    assert SYMBOL not in held_symbols(wh) and SYMBOL not in ingest_symbols(wh, universe)
    ingest_and_scan(world, [NEXT_DAY], config=inactive, scan=False)
    nxt = pd.Timestamp(NEXT_DAY, tz="UTC")
    stored = wh.read_bars("1m", nxt, nxt + pd.Timedelta(days=1))
    assert set(stored["symbol"]) == set(universe.active_symbols)
