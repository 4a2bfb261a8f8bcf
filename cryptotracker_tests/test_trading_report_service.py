"""The trading report and ``daily_performance`` end to end on a real warehouse (two synthetic days through Dagster,
then the paper engine): every expected value is computed here straight from the stored rows with plain pandas /
SQL (ledger rows, base bars, snapshots, regime and scan rows), or read from what the engine itself stored
(``portfolio_snapshots``, its state), never from the report's own code."""

from __future__ import annotations

import json
import math
import shutil

import duckdb

import numpy as np
import pandas as pd
import pytest

from cryptotracker_assets.core.engine import EngineState
from cryptotracker_assets.services.engine_runner import run_tick
from cryptotracker_assets.services.operator import record
from cryptotracker_assets.services.trading_report import TradingReportError, daily_performance, trading_report
from cryptotracker_assets.storage.models import Swap
from cryptotracker_assets.storage.warehouse import Warehouse
from cryptotracker_tests.engine_support import at, engine_config, prepared_world

H = pd.Timedelta(hours=1)
READY = {"DCA": "READY", "SWING": "READY", "CHANNEL": "BUY_ZONE"}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return prepared_world(tmp_path_factory.mktemp("trading_report"))


def ticked(base, dest, until):
    world = base.copy(dest)
    cfg = engine_config(world.warehouse, world.config)
    run_tick(Warehouse(world.warehouse), cfg, until=until)
    return Warehouse(world.warehouse), cfg


@pytest.fixture(scope="module")
def full(base, tmp_path_factory):
    """Day 1 00:00–06:00 processed: seven CHANNEL positions opened and stopped out, a loss-streak pause; then a
    SWING champion promoted at 02:00 and an operator pause at 05:57."""
    wh, cfg = ticked(base, tmp_path_factory.mktemp("full"), at(1, "06:00"))
    wh.record_swap(Swap("SWING", "swing_202602030100", "fsv", "hash", 0.61, "promote", "test", "a champion",
                        at(1, "02:00")))
    record(wh, "pause", "alice", "maintenance", now=at(1, "05:57"))
    return wh, cfg


@pytest.fixture(scope="module")
def mid(base, tmp_path_factory):
    """Processed up to 01:35 only: the stored engine state holds the open positions at its cursor."""
    return ticked(base, tmp_path_factory.mktemp("mid"), at(1, "01:40"))


def raw(wh, sql, params=None) -> pd.DataFrame:
    return wh.read_sql(sql, params)


def ledger_rows(wh) -> pd.DataFrame:
    return raw(wh, "SELECT * FROM paper_trades")


def last_closes(wh, before: pd.Timestamp) -> pd.Series:
    bars = raw(wh, "SELECT symbol, timestamp, close FROM ohlc_1m WHERE timestamp < ?", [before.to_pydatetime()])
    return bars.sort_values("timestamp").groupby("symbol")["close"].last()


def report(wh, cfg, as_of, start=None, **kw):
    return trading_report(wh, cfg, kind="MORNING", period_start=start if start is not None else as_of - 12 * H,
                          period_end=as_of, **kw)


def test_period_figures_are_those_of_the_ledger_rows(full):
    wh, cfg = full
    start, end = at(1, "00:00"), at(1, "06:00")
    p = report(wh, cfg, end, start)
    assert json.loads(json.dumps(p, allow_nan=False)) == p
    rows = ledger_rows(wh)
    sells = rows[(rows["side"] == "SELL") & (rows["bar_time"] >= start) & (rows["bar_time"] < end)]
    groups = rows[rows["trade_group_id"].isin(sells["trade_group_id"])]
    size = groups.loc[groups["side"] == "BUY"].groupby("trade_group_id")["size_usd"].sum()
    assert len(sells) == 7 and p["trades_closed"] == 7
    assert p["trades_opened"] == rows.loc[(rows["level"] == 0) & (rows["entry_time"] >= start)
                                          & (rows["entry_time"] < end), "trade_group_id"].nunique() == 7
    assert p["realised_usd"] == pytest.approx(sells["pnl_usd"].sum(), abs=1e-9)
    assert p["realised_pct"] == pytest.approx(sells["pnl_usd"].sum() / size.sum(), abs=1e-12)
    assert p["fees_usd"] == pytest.approx(groups["fee_usd"].sum(), abs=1e-9)
    assert p["slippage_usd"] == pytest.approx(groups["slippage_usd"].sum(), abs=1e-9)
    by = {s["strategy"]: s for s in p["per_strategy"]}
    for s in ("DCA", "SWING", "CHANNEL"):
        mine = sells[sells["strategy"] == s]
        assert (by[s]["closed"], by[s]["wins"], by[s]["losses"]) == (
            len(mine), int((mine["pnl_usd"] > 0).sum()), int((mine["pnl_usd"] <= 0).sum()))
        assert by[s]["realised_usd"] == pytest.approx(mine["pnl_usd"].sum(), abs=1e-9)
    assert by["CHANNEL"]["win_rate"] == 0.0 and by["DCA"]["win_rate"] is None
    best, worst = sells.loc[sells["pnl_usd"].idxmax()], sells.loc[sells["pnl_usd"].idxmin()]
    assert p["best_trade"] == {"trade_group_id": best["trade_group_id"], "symbol": best["symbol"],
                               "strategy": "CHANNEL", "pnl_usd": best["pnl_usd"], "pnl_pct": best["pnl_pct"]}
    assert p["worst_trade"]["trade_group_id"] == worst["trade_group_id"]
    # a period before any trade: nothing closed, nothing opened
    q = report(wh, cfg, at(0, "12:00"))
    assert (q["trades_closed"], q["trades_opened"], q["realised_pct"], q["best_trade"]) == (0, 0, None, None)


@pytest.mark.parametrize("hhmm", ["00:30", "01:00", "02:40", "05:55"])
def test_now_figures_equal_the_engines_snapshot_at_that_cycle_point(full, hhmm):
    wh, cfg = full
    t = at(1, hhmm)
    p = report(wh, cfg, t)
    snap = raw(wh, "SELECT * FROM portfolio_snapshots WHERE cycle_point = ?", [t.to_pydatetime()]).iloc[0]
    assert p["mark_equity"] == pytest.approx(snap["equity"], abs=1e-9)
    assert p["cash"] == pytest.approx(snap["cash"], abs=1e-9)
    assert p["unrealised_usd"] == pytest.approx(snap["unrealised"], abs=1e-9)
    assert p["open_positions"] == snap["open_count"]
    assert p["book_equity"] == pytest.approx(10000 + snap["realised"], abs=1e-9)
    assert p["max_open_total"] == 80


def test_open_positions_valued_from_the_bars(full):
    wh, cfg = full
    t = at(1, "01:00")
    p = report(wh, cfg, t)
    rows = ledger_rows(wh)
    rows = rows[rows["cycle_point"] <= t]
    buys = rows[(rows["side"] == "BUY") & ~rows["trade_group_id"].isin(rows.loc[rows["side"] == "SELL",
                                                                                  "trade_group_id"])]
    close = last_closes(wh, t)
    pos = buys.assign(mark=buys["symbol"].map(close))
    pos = pos.assign(value=pos["qty"] * pos["mark"] * (1 - pos["slippage"]) * (1 - pos["taker_fee"]))
    pos = pos.assign(unreal=pos["value"] - pos["size_usd"] - pos["fee_usd"]).sort_values(
        ["unreal", "trade_group_id"], ascending=[False, True])
    assert len(pos) == 7 == p["open_positions"]
    assert p["unrealised_usd"] == pytest.approx(pos["unreal"].sum(), abs=1e-9)
    assert p["unrealised_pct"] == pytest.approx(pos["unreal"].sum() / pos["size_usd"].sum(), abs=1e-12)
    assert [o["trade_group_id"] for o in p["top_open"]] == list(pos["trade_group_id"].head(5))
    for o, (_, r) in zip(p["top_open"], pos.head(5).iterrows()):
        assert o["mark"] == r["mark"] and o["unrealised_usd"] == pytest.approx(r["unreal"], abs=1e-12)
        assert o["to_tp_pct"] == pytest.approx(r["take_profit_price"] / r["mark"] - 1, abs=1e-15)


def expected_near(wh, t: pd.Timestamp, threshold: float, trail: bool) -> list[tuple[str, str, float]]:
    """Open single-level positions at t within ``threshold`` of TP or stop. With ``trail``, the stop is the
    effective one of SPEC §5.2 recomputed from the bars: H = max(A, highs of the bars from E to before t); armed when
    H ≥ A(1 + activation); effective stop = max(static, H(1 − trail))."""
    rows = ledger_rows(wh)
    rows = rows[rows["cycle_point"] <= t]
    buys = rows[(rows["side"] == "BUY") & ~rows["trade_group_id"].isin(rows.loc[rows["side"] == "SELL",
                                                                                  "trade_group_id"])]
    bars = raw(wh, "SELECT symbol, timestamp, high FROM ohlc_1m WHERE timestamp < ?", [t.to_pydatetime()])
    close = last_closes(wh, t)
    out = []
    for r in buys.itertuples():
        mark, stop = close[r.symbol], r.stop_price
        if trail:
            hw = max(r.avg_entry, bars.loc[(bars["symbol"] == r.symbol) & (bars["timestamp"] >= r.entry_time),
                                           "high"].max())
            if hw >= r.avg_entry * (1 + r.trail_activation):
                stop = max(stop, hw * (1 - r.trailing))
        for level, price in (("TP", r.take_profit_price), ("STOP", stop)):
            if abs(price / mark - 1) <= threshold:
                out.append((r.trade_group_id, level, price))
    return sorted(out)


def test_near_levels_with_the_stops_in_force(full, mid):
    wh, cfg = full  # at 01:35 the stored states are of 23:55 the day before: the ledger's static stops
    p = report(wh, cfg, at(1, "01:35"))
    got = sorted((n["trade_group_id"], n["level"], n["level_price"]) for n in p["near_level"])
    assert got == expected_near(wh, at(1, "01:35"), 0.01, trail=False) and len(got) == 2
    for n in p["near_level"]:
        assert n["distance_pct"] == pytest.approx(n["level_price"] / n["mark"] - 1, abs=1e-15)
    wh, cfg = mid  # the engine state at 01:35 holds the positions: armed trails are the stops in force
    p = report(wh, cfg, at(1, "01:35"))
    want = expected_near(wh, at(1, "01:35"), 0.01, trail=True)
    got = [(n["trade_group_id"], n["level"], n["level_price"]) for n in p["near_level"]]
    assert sorted(x[:2] for x in got) == [x[:2] for x in want]
    assert [x[2] for x in sorted(got)] == pytest.approx([x[2] for x in want], rel=1e-12)
    assert p["near_level_threshold"] == cfg.notifications.reports.near_level == 0.01
    # a 50 % band lists every level of the seven positions: each stop in force equals the recomputed one
    wide = cfg.model_copy(update={"notifications": cfg.notifications.model_copy(update={
        "reports": cfg.notifications.reports.model_copy(update={"near_level": 0.5})})})
    p = report(wh, wide, at(1, "01:35"))
    want = expected_near(wh, at(1, "01:35"), 0.5, trail=True)
    got = sorted((n["trade_group_id"], n["level"], n["level_price"]) for n in p["near_level"])
    assert [x[:2] for x in got] == [x[:2] for x in want] and len(got) == 14
    assert [x[2] for x in got] == pytest.approx([x[2] for x in want], rel=1e-12)


def test_market_fields_are_the_stored_rows(full):
    wh, cfg = full
    t = at(1, "06:00")
    p = report(wh, cfg, t)
    btc = lambda before: last_closes(wh, before)["BTC"]  # noqa: E731
    assert p["btc_price"] == btc(t)
    assert p["btc_change_pct"] == pytest.approx(btc(t) / btc(t - 12 * H) - 1, abs=1e-15)
    row = raw(wh, "SELECT * FROM market_regime WHERE timestamp = (SELECT max(timestamp) FROM market_regime "
                  "WHERE timestamp <= ?)", [t.to_pydatetime()]).iloc[0]
    assert row["timestamp"] == t and (p["regime"], p["vol24h"]) == (row["regime"], row["btc_vol_24h"])
    for hhmm in ("00:10", "00:50", "01:00", "03:45"):
        t = at(1, hhmm)
        scan = raw(wh, "SELECT strategy, status FROM scan_history WHERE timestamp = (SELECT max(timestamp) FROM "
                       "scan_history WHERE timestamp <= ?)", [t.to_pydatetime()])
        want = {s: int(((scan["strategy"] == s) & (scan["status"] == READY[s])).sum()) for s in READY}
        assert report(wh, cfg, t)["ready"] == want
    assert report(wh, cfg, at(1, "00:50"))["ready"] == {"DCA": 0, "SWING": 0, "CHANNEL": 7}


def test_gates_in_force(full):
    wh, cfg = full
    # the loss streak: closes in exit order, the fifth consecutive loss completes it at its cycle point
    sells = ledger_rows(wh).query("side == 'SELL'").sort_values(["cycle_point", "bar_time", "trade_group_id"])
    assert (sells["pnl_usd"].head(5) <= 0).all()
    since = sells["cycle_point"].iloc[4]
    until = since + pd.Timedelta(hours=cfg.limits.loss_streak_pause_h)
    assert (since, until) == (at(1, "03:40"), at(1, "15:40"))
    engine = EngineState.from_json(raw(wh, "SELECT state_json FROM engine_state ORDER BY day DESC").iloc[0, 0])
    assert engine.protection.loss_streak.paused_until == until  # what the engine itself folded
    streak = "loss-streak pause (5 losses in a row, since 2026-02-03 03:40 UTC); resumes 2026-02-03 15:40 UTC"
    assert report(wh, cfg, at(1, "03:35"))["gates"] == []
    assert report(wh, cfg, at(1, "05:55"))["gates"] == [streak]
    # the operator pause stamped 05:57 acts from the 06:00 cycle point
    assert report(wh, cfg, at(1, "06:00"))["gates"] == [
        "operator pause by alice: maintenance since 2026-02-03 05:57 UTC", streak]
    # 22:45: PANIC in the stored regime row; the streak pause ended at 15:40
    row = raw(wh, "SELECT regime FROM market_regime WHERE timestamp = ?", [at(1, "22:45").to_pydatetime()])
    assert row["regime"].iloc[0] == "PANIC"
    p = report(wh, cfg, at(1, "22:45"))
    assert p["regime"] == "PANIC"
    assert p["gates"] == ["operator pause by alice: maintenance since 2026-02-03 05:57 UTC",
                          "PANIC: new entries halted"]


def test_champions_in_force_and_unloadable(full, tmp_path):
    wh, cfg = full
    none = {"DCA": None, "SWING": None, "CHANNEL": None}
    p = report(wh, cfg, at(1, "01:00"))
    assert {c["strategy"]: c["model_id"] for c in p["champions"]} == none
    p = report(wh, cfg, at(1, "06:00"))
    assert p["champions"] == [{"strategy": "DCA", "model_id": None, "composite": None},
                              {"strategy": "SWING", "model_id": "swing_202602030100", "composite": 0.61},
                              {"strategy": "CHANNEL", "model_id": None, "composite": None}]
    # with the model store at hand, a champion whose files are not there counts as none (SPEC §3.3)
    p = report(wh, cfg, at(1, "06:00"), models_root=tmp_path / "models")
    assert {c["strategy"]: c["model_id"] for c in p["champions"]} == none


def test_daily_performance_rows(full):
    wh, cfg = full
    day = at(1, "00:00")
    df = daily_performance(wh, cfg, day)
    scans = raw(wh, "SELECT strategy, setup, decision FROM scan_history WHERE timestamp >= ? AND timestamp < ?",
                [day.to_pydatetime(), (day + 24 * H).to_pydatetime()])
    rows = ledger_rows(wh)
    sells = rows[(rows["side"] == "SELL") & (rows["bar_time"] >= day)]
    by = df.set_index("strategy")
    for s in ("DCA", "SWING", "CHANNEL"):
        mine = scans[scans["strategy"] == s]
        assert by.loc[s, "setups_detected"] == int(mine["setup"].sum())
        assert by.loc[s, "setups_taken"] == int((mine["decision"] == "TAKE").sum())
        closed = sells[sells["strategy"] == s]
        assert by.loc[s, "trades"] == len(closed)
        assert by.loc[s, "net_pnl_usd"] == pytest.approx(closed["pnl_usd"].sum(), abs=1e-9)
    ch = rows[rows["trade_group_id"].isin(sells["trade_group_id"])]
    assert by.loc["CHANNEL", ["setups_taken", "trades", "wins", "losses"]].tolist() == [7, 7, 0, 7]
    assert by.loc["CHANNEL", "net_pnl_pct"] == pytest.approx(
        sells["pnl_usd"].sum() / ch.loc[ch["side"] == "BUY", "size_usd"].sum(), abs=1e-12)
    assert by.loc["CHANNEL", "fees_usd"] == pytest.approx(ch["fee_usd"].sum(), abs=1e-9)
    assert math.isnan(by.loc["DCA", "net_pnl_pct"]) and by.loc["SWING", "champion_composite"] == 0.61
    assert np.isnan(by.loc["DCA", "champion_composite"]) and (df["config_version"] == 1).all()
    before = daily_performance(wh, cfg, at(0, "00:00"))
    assert before["trades"].sum() == 0 and before["champion_composite"].isna().all()  # promoted on day 1


def test_an_empty_warehouse_and_a_position_without_bars(tmp_path, full):
    wh, cfg = full
    empty = Warehouse(tmp_path / "empty.duckdb")
    p = report(empty, cfg, at(1, "06:00"))
    assert (p["trades_closed"], p["open_positions"], p["btc_price"], p["regime"], p["gates"]) == (0, 0, None, None,
                                                                                                  [])
    assert p["ready"] == {"DCA": 0, "SWING": 0, "CHANNEL": 0} and p["mark_equity"] == 10000.0
    assert p["cash"] == p["book_equity"] == 10000.0 and p["unrealised_pct"] is None
    assert len(daily_performance(empty, cfg, at(1, "00:00"))) == 3
    # a copy whose ETH bars are gone: the open ETH position cannot be marked, the report says so
    shutil.copy(wh.path, tmp_path / "no_eth.duckdb")
    con = duckdb.connect(str(tmp_path / "no_eth.duckdb"))
    con.execute("DELETE FROM ohlc_1m WHERE symbol = 'ETH'")
    con.close()
    with pytest.raises(TradingReportError, match=r"no stored 1m bar .* \['ETH'\]"):
        report(Warehouse(tmp_path / "no_eth.duckdb"), cfg, at(1, "01:00"))
