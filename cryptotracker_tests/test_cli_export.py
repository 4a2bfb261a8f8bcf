"""``cryptotracker analyze``, ``performance --since``, ``export`` and ``report`` end to end on a real warehouse (two
synthetic days through Dagster, the engine run to day 1 18:00): every number is checked against an independent
read of the stored rows (SQL and a plain loop), the CSV row counts against direct counts, and the CSV floats
read back bit for bit."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import dagster as dg
from cryptotracker_assets.assets.reports import DATA_EXPORT, HTML_REPORT, REPORT_FILE
from cryptotracker_assets.cli import main as cli
from cryptotracker_assets.services.engine_runner import run_tick
from cryptotracker_assets.storage.warehouse import Warehouse
from cryptotracker_tests.engine_support import at, engine_config, prepared_world

UNTIL = at(1, "18:00")  # seven trades closed on day 1, six positions open
DAY = pd.Timedelta(hours=24)


@pytest.fixture(scope="module")
def base_world(tmp_path_factory):
    world = prepared_world(tmp_path_factory.mktemp("analysis"))
    run_tick(Warehouse(world.warehouse), engine_config(world.warehouse, world.config), until=UNTIL)
    return world


@pytest.fixture()
def world(base_world, tmp_path, monkeypatch):
    w = base_world.copy(tmp_path / "w")
    for k, v in w.env().items():
        monkeypatch.setenv(k, v)
    return w


def sql(world, query: str, *params) -> pd.DataFrame:
    return Warehouse(world.warehouse).read_sql(query, [pd.Timestamp(p).to_pydatetime() for p in params])


def window_of(world) -> tuple[pd.Timestamp, pd.Timestamp]:
    newest = pd.Timestamp(sql(world, "SELECT max(timestamp) AS t FROM ohlc_1m")["t"].iloc[0]).tz_convert("UTC")
    end = newest + pd.Timedelta(minutes=1)  # the close of the newest bar
    return end - DAY, end


def realised(world, start, end) -> tuple[int, float, float]:
    """(trades, Σ pnl, Σ filled size) of the groups whose SELL fill bar is in [start, end]."""
    df = sql(world, "SELECT s.trade_group_id, s.pnl_usd, sum(b.size_usd) AS size FROM paper_trades s "
                    "JOIN paper_trades b ON b.trade_group_id = s.trade_group_id AND b.side = 'BUY' "
                    "WHERE s.side = 'SELL' AND s.bar_time >= ? AND s.bar_time <= ? GROUP BY 1, 2", start, end)
    return len(df), math.fsum(df["pnl_usd"]), math.fsum(df["size"])


def unrealised(world) -> tuple[int, float, float]:
    """(open groups, Σ unrealised, Σ filled) with the SPEC §6 liquidation value at each symbol's latest close."""
    df = sql(world, "SELECT b.trade_group_id, any_value(b.symbol) AS symbol, sum(b.qty) AS qty, "
                    "sum(b.size_usd) AS filled, sum(b.fee_usd) AS fees, any_value(b.slippage) AS s, "
                    "any_value(b.taker_fee) AS f FROM paper_trades b WHERE b.side = 'BUY' AND b.trade_group_id NOT IN "
                    "(SELECT trade_group_id FROM paper_trades WHERE side = 'SELL') GROUP BY 1")
    closes = sql(world, "SELECT symbol, arg_max(close, timestamp) AS c FROM ohlc_1m GROUP BY 1").set_index("symbol")
    total = 0.0
    for r in df.itertuples(index=False):
        fill = closes.loc[r.symbol, "c"] * (1 - r.s)
        total += r.qty * fill - r.qty * fill * r.f - (r.filled + r.fees)
    return len(df), total, math.fsum(df["filled"])


def test_analyze_against_independent_reads(world, capsys):
    from cryptotracker_assets.core.config import load_config
    from cryptotracker_assets.services.analysis import analyze

    start, end = window_of(world)
    a = analyze(Warehouse(world.warehouse, create=False), load_config(str(world.config)), DAY)
    assert (a.window.start, a.window.end) == (start, end)
    # BTC path: the first open, then every close; extremes of the bars
    btc = sql(world, "SELECT timestamp, open, high, low, close FROM ohlc_1m WHERE symbol = 'BTC' AND timestamp >= ? "
                     "AND timestamp < ? ORDER BY timestamp", start, end)
    prices = [btc["open"].iloc[0], *btc["close"]]
    assert (a.btc.start, a.btc.end) == (prices[0], prices[-1])
    assert (a.btc.high, a.btc.low) == (btc["high"].max(), btc["low"].min())
    peak, depth, at_peak = prices[0], 0.0, prices[0]
    for p in prices:  # a plain loop: the running peak and the deepest fall below it
        peak = max(peak, p)
        if p / peak - 1 < depth:
            depth, at_peak = p / peak - 1, peak
    assert depth < 0 and a.btc.drawdown.depth == pytest.approx(depth, rel=1e-12)
    assert a.btc.drawdown.peak_price == at_peak
    # breadth from each symbol's first open and last close
    firsts = sql(world, "SELECT symbol, arg_min(open, timestamp) AS o, arg_max(close, timestamp) AS c FROM ohlc_1m "
                        "WHERE timestamp >= ? AND timestamp < ? GROUP BY 1", start, end)
    up, down = int((firsts["c"] > firsts["o"]).sum()), int((firsts["c"] < firsts["o"]).sum())
    assert (a.breadth.symbols, a.breadth.advancing, a.breadth.declining) == (len(firsts), up, down)
    # regime runs
    reg = sql(world, "SELECT timestamp, regime FROM market_regime WHERE timestamp >= ? AND timestamp <= ? "
                     "ORDER BY timestamp", start, end)
    runs = [(t, r) for i, (t, r) in enumerate(zip(reg["timestamp"], reg["regime"]))
            if i == 0 or r != reg["regime"].iloc[i - 1]]
    assert list(zip(a.timeline["start"], a.timeline["regime"])) == runs
    # the book: realised in the window, unrealised now, both size-weighted
    n, pnl, size = realised(world, start, end)
    assert n > 0 and a.pnl.closed_trades == n
    assert a.pnl.realised_usd == pytest.approx(pnl, rel=1e-12, abs=1e-9)
    assert a.pnl.realised_pct == pytest.approx(pnl / size, rel=1e-12, abs=1e-15)
    k, upnl, filled = unrealised(world)
    assert k > 0 and a.pnl.open_positions == k
    assert a.pnl.unrealised_usd == pytest.approx(upnl, rel=1e-9, abs=1e-9)
    assert a.pnl.unrealised_pct == pytest.approx(upnl / filled, rel=1e-9, abs=1e-12)
    by_reason = sql(world, "SELECT exit_reason, count(*) AS n, sum(pnl_usd) AS p FROM paper_trades WHERE side = 'SELL' "
                           "AND bar_time >= ? AND bar_time <= ? GROUP BY 1", start, end).set_index("exit_reason")
    got = a.exits.set_index("exit_reason")
    assert dict(got["trades"]) == dict(by_reason["n"])
    for reason, p in by_reason["p"].items():
        assert got.loc[reason, "pnl_usd"] == pytest.approx(p, rel=1e-12, abs=1e-9)
    entered = sql(world, "SELECT count(DISTINCT trade_group_id) AS n FROM paper_trades WHERE entry_time >= ? "
                         "AND entry_time <= ?", start, end)["n"].iloc[0]
    assert len(a.entries) == entered > 0

    capsys.readouterr()
    assert cli(["analyze", "--window", "24h"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"warehouse: {world.warehouse} ($CRYPTOTRACKER_WAREHOUSE)")
    assert f"analysis of {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC (1 d," in out
    assert f"max drawdown {depth * 100:+.2f} %" in out
    assert f"breadth: {up} of {len(firsts)} symbol(s) up" in out
    assert f"book: realised {pnl:+,.2f} USD over {n} trade(s) closed in the window" in out
    assert f"positions opened into the move: {entered}" in out


def test_performance_since_a_span_or_a_moment(world, capsys):
    start, end = window_of(world)
    n, pnl, size = realised(world, start, end)
    k, upnl, filled = unrealised(world)
    for since in ("24h", f"{start:%Y-%m-%dT%H:%M}Z", "1440m"):
        capsys.readouterr()
        assert cli(["performance", "--since", since]) == 0
        out = capsys.readouterr().out
        assert f"since {start:%Y-%m-%d %H:%M} UTC" in out
        assert (f"realised:   {pnl:+,.2f} USD over {n} trade(s) closed since then" in out
                and f"size-weighted {pnl / size * 100:+.2f} %" in out), out
        assert f"unrealised: {upnl:+,.2f} USD over {k} open position(s) now" in out


def test_export_writes_exact_csvs_a_summary_and_a_materialization(world, tmp_path, capsys):
    start, end = window_of(world)
    out = tmp_path / "export" / "nested"
    capsys.readouterr()
    assert cli(["export", "--window", "24h", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    bars = sql(world, "SELECT * FROM ohlc_1m WHERE timestamp >= ? AND timestamp < ? ORDER BY symbol, timestamp",
               start, end)
    trades = sql(world, "SELECT * FROM paper_trades WHERE bar_time >= ? AND bar_time <= ? "
                        "ORDER BY cycle_point, trade_group_id, side, level", start, end)
    scans = sql(world, "SELECT count(*) AS n FROM scan_history WHERE timestamp >= ? AND timestamp <= ?",
                start, end)["n"].iloc[0]
    assert len(bars) > 1000 and len(trades) > 0 and scans > 0
    for name, n in (("ohlc_1m.csv", len(bars)), ("trades.csv", len(trades)), ("scans.csv", scans)):
        assert f"{out / name}  {n:,} rows" in text
        assert len(pd.read_csv(out / name)) == n
    assert str(out / "summary.md") in text

    # floats read back bit for bit, times as stored
    got = pd.read_csv(out / "ohlc_1m.csv", float_precision="round_trip")
    for c in ("open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(got[c].to_numpy(), bars[c].to_numpy())
    assert (pd.to_datetime(got["timestamp"], utc=True) == bars["timestamp"].reset_index(drop=True)).all()
    got = pd.read_csv(out / "trades.csv", float_precision="round_trip")
    assert got["trade_group_id"].tolist() == trades["trade_group_id"].tolist()
    for c in ("fill_price", "qty", "size_usd", "fee_usd", "pnl_usd", "avg_entry", "stop_price"):
        np.testing.assert_array_equal(got[c].to_numpy(dtype="float64"), trades[c].to_numpy(dtype="float64"))

    n, pnl, _ = realised(world, start, end)
    summary = (out / "summary.md").read_text()
    assert f"- window: {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC (24 h" in summary
    assert f"| ohlc_1m.csv | {len(bars):,} |" in summary and f"| trades.csv | {len(trades):,} |" in summary
    assert f"- realised: {pnl:+,.2f} USD over {n} trade(s) closed in the window" in summary
    assert "## Exits by reason" in summary and "| stop_loss |" in summary

    with dg.DagsterInstance.get() as instance:  # DAGSTER_HOME is the world's instance folder
        records = instance.fetch_materializations(dg.AssetKey(DATA_EXPORT), limit=5).records
        assert len(records) == 1
        meta = records[0].asset_materialization.metadata
        assert meta["out_dir"].value == str(out) and meta["ohlc_1m_rows"].value == len(bars)
        assert meta["trades_rows"].value == len(trades) and meta["scans_rows"].value == scans


def test_report_writes_the_html_and_a_materialization(world, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CRYPTOTRACKER_REPORTS", raising=False)
    path = tmp_path / "r" / "report.html"
    capsys.readouterr()
    assert cli(["report", "--out", str(path)]) == 0
    assert f"report: {path} ({path.stat().st_size:,} bytes)" in capsys.readouterr().out
    assert cli(["report"]) == 0  # default: $DAGSTER_HOME/reports/report.html
    default = world.home / "reports" / REPORT_FILE
    assert f"report: {default}" in capsys.readouterr().out and default.stat().st_size > 0
    n = sql(world, "SELECT count(*) AS n FROM paper_trades WHERE side = 'SELL'")["n"].iloc[0]
    with dg.DagsterInstance.get() as instance:
        records = instance.fetch_materializations(dg.AssetKey(HTML_REPORT), limit=5).records
        assert len(records) == 2
        meta = records[-1].asset_materialization.metadata  # newest first: the --out one is last
        assert meta["path"].value == str(path) and meta["bytes"].value == path.stat().st_size
        assert meta["closed_trades"].value == n  # the report's summary, one entry per value
