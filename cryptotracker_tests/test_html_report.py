"""The self-contained HTML report, end to end: a real warehouse (two synthetic days of bars and scans, the paper
engine ticked to 19:00 of the second day so some positions are open, a shadow analysis, a trained and promoted DCA
champion) is written to one HTML file and opened in headless Chromium.

- ``--dump-dom``: the open-positions table lists exactly the open groups of the stored ledger rows, with the
  unrealised P&L recomputed here from the rows and the latest stored close (SPEC §7.1 formula); the P&L-by-strategy
  table and the header's realised P&L match sums over the SELL rows (size-weighted); the leaderboard lists the
  stored ALL variations by outperformance; every section heading is there; the charts rendered (their count, the
  equity line with one point per snapshot, one bar per strategy, a marker per fill of the charted symbol, a band
  per timeline row);
- ``--screenshot``: a PNG of the page (> 20 kB), also copied to ``cryptotracker_tests/artifacts/report.png``;
- the file references nothing on the network (no ``src`` / ``href`` / ``url(`` to http(s)), has no script, and
  escapes what it shows; an empty warehouse and one without the engine's tables give a report that says "nothing
  yet" where there is nothing; the file is replaced atomically.

Without Chromium the test skips, except in CI (``CI=true``) where a missing browser is a failure.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from html import escape
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from cryptotracker_assets.core.config import Strategy, load_config
from cryptotracker_assets.services.engine_runner import run_tick
from cryptotracker_assets.services.html_report import write_html_report
from cryptotracker_assets.services.models import promote, train_candidate
from cryptotracker_assets.services.shadow_analysis import analysis_time, run_analysis
from cryptotracker_assets.storage.warehouse import Warehouse
from cryptotracker_tests.engine_support import World, at, engine_config, prepared_world
from cryptotracker_tests.test_models_service import labels_with_model_features

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
BROWSER_TIMEOUT_S = 120
NOW = pd.Timestamp("2026-02-04 08:00", tz="UTC")
SECTIONS = ["Equity and drawdown", "P&L of closed trades", "Open positions", "Readiness board", "Market protection",
            "Shadow leaderboard", "Model cards"]
UNIVERSE = {"BTC", "ETH", "SOL", "LINK", "AVAX", "DOGE", "PEPE"}  # engine_support's user config
NETWORK = re.compile(r"https?://|^//", re.I)


@dataclass(frozen=True)
class Book:
    world: World
    before_engine: World  # the same bars and scans, the engine never ran
    models: Path


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> Book:
    world = prepared_world(tmp_path_factory.mktemp("report"))
    before = world.copy(tmp_path_factory.mktemp("report_before_engine"))
    wh, cfg = Warehouse(world.warehouse), engine_config(world.warehouse, world.config)
    run_tick(wh, cfg, until=at(1, "19:00"))
    run_analysis(wh, cfg, analysis_time(wh) + pd.Timedelta(hours=72))  # every window's max hold has elapsed
    models = world.warehouse.parent / "models"
    wh.append_labels(labels_with_model_features(1000, 1))
    run = train_candidate(wh, cfg, Strategy.DCA, models, pd.Timestamp("2026-02-01 09:00", tz="UTC"))
    promote(wh, run, cfg, models, who="system:training", why="gates passed",
            now=pd.Timestamp("2026-02-01 09:05", tz="UTC"))
    return Book(world, before, models)


@pytest.fixture(scope="module")
def browser() -> str:
    """Debian's chromium (checked before the warehouse is built: a missing browser skips, or fails in CI)."""
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("chromium is not installed (a headless browser is required in CI)")
        pytest.skip("chromium not found on PATH (install Debian's chromium to open the report headless)")
    return path


def browse(browser: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """One headless Chromium run with a fresh profile, bounded by :data:`BROWSER_TIMEOUT_S`."""
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    cmd = [browser, "--headless=new", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


class Page(HTMLParser):
    """What the tests read from a page: tables by id (rows of cell texts), headings, KPI texts, chart elements
    and every attribute value."""

    def __init__(self, text: str):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.h2: list[str] = []
        self.h3: list[str] = []
        self.kpis: dict[str, str] = {}
        self.svgs: list[dict] = []
        self.elements: list[tuple[str, str | None, dict]] = []  # (tag, enclosing svg id, attributes) inside svgs
        self.attributes: list[tuple[str, str, str]] = []
        self.tags: list[str] = []
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._heading: list[str] | None = None
        self._heading_tag = ""
        self._kpi: str | None = None
        self._kpi_text: list[str] = []
        self._divs = 0  # open divs; a KPI ends when its div closes
        self._kpi_depth = 0
        self._svg: str | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        self.tags.append(tag)
        self._divs += tag == "div"
        self.attributes += [(tag, k, v) for k, v in a.items()]
        if tag == "table":
            self._table = a.get("id", "")
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag in ("h2", "h3"):
            self._heading, self._heading_tag = [], tag
        elif tag == "div" and a.get("id", "").startswith("kpi-"):
            self._kpi, self._kpi_text, self._kpi_depth = a["id"][4:], [], self._divs - 1
        elif tag == "svg":
            self._svg = a.get("id")
            self.svgs.append(a)
        elif self._svg is not None:
            self.elements.append((tag, self._svg, a))

    def handle_endtag(self, tag):
        if tag == "div":
            self._divs -= 1
            if self._kpi is not None and self._divs == self._kpi_depth:
                self._kpi = None
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._table is not None and not all(c == "" for c in self._row):
                self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None
        elif tag == self._heading_tag and self._heading is not None:
            (self.h2 if tag == "h2" else self.h3).append(" ".join("".join(self._heading).split()))
            self._heading = None
        elif tag == "svg":
            self._svg = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._heading is not None:
            self._heading.append(data)
        if self._kpi is not None:
            self._kpi_text.append(data + " ")
            self.kpis[self._kpi] = " ".join("".join(self._kpi_text).split())

    def body(self, table_id: str) -> list[list[str]]:
        rows = self.tables[table_id]
        return rows[1:]  # the header row first

    def head(self, table_id: str) -> list[str]:
        return self.tables[table_id][0]

    def of(self, svg_id: str, tag: str, cls: str) -> list[dict]:
        return [a for t, s, a in self.elements if s == svg_id and t == tag and cls in a.get("class", "").split()]


def money(text: str) -> float:
    """'-$1,234.56' → -1234.56."""
    return float(text.replace("$", "").replace(",", ""))


def percent(text: str) -> float:
    """'+1.25 %' → 0.0125."""
    return float(text.replace("%", "").strip()) / 100.0


def points(d: str) -> int:
    return len(re.findall(r"[ML]-?\d", d))


# --- what the stored rows say, computed here from raw SQL ---------------------------------------------------------


def stored_open_positions(wh: Warehouse) -> dict[str, dict]:
    """Open groups (a BUY row, no SELL row) with their unrealised USD at the latest stored close:
    Σqty × close × (1 − s) × (1 − fee) − Σ(size + entry fee) (SPEC §7.1)."""
    rows = wh.read_sql("SELECT trade_group_id, side, strategy, symbol, qty, size_usd, fee_usd, slippage, taker_fee "
                       "FROM paper_trades")
    closes = wh.read_sql("SELECT symbol, arg_max(close, timestamp) AS close FROM ohlc_1m GROUP BY symbol")
    close = dict(zip(closes["symbol"], closes["close"]))
    sold = set(rows.loc[rows["side"] == "SELL", "trade_group_id"])
    out = {}
    for gid, g in rows.loc[(rows["side"] == "BUY") & ~rows["trade_group_id"].isin(sold)].groupby("trade_group_id"):
        qty, cost = g["qty"].sum(), (g["size_usd"] + g["fee_usd"]).sum()
        s, fee, sym = g["slippage"].iloc[0], g["taker_fee"].iloc[0], g["symbol"].iloc[0]
        value = qty * close[sym] * (1 - s) * (1 - fee)
        out[gid] = {"strategy": g["strategy"].iloc[0], "symbol": sym, "unrealised": value - cost,
                    "pct": (value - cost) / g["size_usd"].sum()}
    return out


def stored_pnl_by_strategy(wh: Warehouse) -> dict[str, tuple[int, float, float]]:
    """Per strategy: closed trades, Σ net P&L of the SELL rows, Σ P&L / Σ filled size of their BUY rows."""
    df = wh.read_sql("SELECT s.strategy, count(*) AS n, sum(s.pnl_usd) AS pnl, sum(b.size) AS size FROM paper_trades s "
                     "JOIN (SELECT trade_group_id, sum(size_usd) AS size FROM paper_trades WHERE side = 'BUY' "
                     "GROUP BY 1) b USING (trade_group_id) WHERE s.side = 'SELL' GROUP BY 1")
    return {r["strategy"]: (int(r["n"]), float(r["pnl"]), float(r["pnl"]) / float(r["size"]))
            for r in df.to_dict("records")}


def stored_cash(wh: Warehouse, cfg) -> float:
    """initial + Σ net P&L of the SELL rows − Σ (size + fee) of the open groups' BUY rows (SPEC §7.1)."""
    df = wh.read_sql("SELECT coalesce(sum(pnl_usd) FILTER (WHERE side = 'SELL'), 0) AS realised, "
                     "coalesce(sum(size_usd + fee_usd) FILTER (WHERE side = 'BUY' AND trade_group_id NOT IN "
                     "(SELECT trade_group_id FROM paper_trades WHERE side = 'SELL')), 0) AS open_cost "
                     "FROM paper_trades")
    return cfg.portfolio.initial_balance_usd + float(df["realised"].iloc[0]) - float(df["open_cost"].iloc[0])


def sum_open_cost(wh: Warehouse) -> float:
    df = wh.read_sql("SELECT coalesce(sum(size_usd + fee_usd), 0) AS c FROM paper_trades WHERE side = 'BUY' AND "
                     "trade_group_id NOT IN (SELECT trade_group_id FROM paper_trades WHERE side = 'SELL')")
    return float(df["c"].iloc[0])


# --- the tests ----------------------------------------------------------------------------------------------------


def test_the_report_opens_offline_in_chromium_with_every_section(browser, book, tmp_path):
    wh = Warehouse(book.world.warehouse)
    cfg = engine_config(book.world.warehouse, book.world.config)
    out = tmp_path / "report.html"
    result = write_html_report(wh, cfg, out, models_root=book.models, now=NOW)
    raw = out.read_text(encoding="utf-8")
    assert result.path == out and result.bytes == len(raw.encode("utf-8"))

    # nothing on the network: no attribute names an http(s) URL, no CSS url(), no script, no external resource
    static = Page(raw)
    assert not [x for x in static.attributes if NETWORK.search(x[2])]
    assert "url(" not in raw and "@import" not in raw
    assert not {"script", "link", "img", "iframe", "object", "embed"} & set(static.tags)

    dom = browse(browser, tmp_path, "--dump-dom", out.as_uri()).stdout
    page = Page(dom)
    assert page.h2 == SECTIONS[:2] + [f"Price of {result.summary['symbol']} with entries and exits"] + SECTIONS[2:]

    # open positions: exactly the ledger's open groups, unrealised recomputed from the rows and the latest close
    expected = stored_open_positions(wh)
    assert len(expected) == 6  # ticked to 19:00 of day 2: six groups still open
    head = page.head("open-positions")
    shown = {r[head.index("trade group")]: r for r in page.body("open-positions")}
    assert set(shown) == set(expected)
    for gid, e in expected.items():
        r = shown[gid]
        assert (r[head.index("strategy")], r[head.index("symbol")]) == (e["strategy"], e["symbol"])
        assert abs(money(r[head.index("unrealised")]) - e["unrealised"]) <= 0.005 + 1e-9
        assert abs(percent(r[head.index("unrealised %")]) - e["pct"]) <= 0.00005 + 1e-12
    assert page.kpis["open"].startswith(f"Open positions {len(expected)} / {cfg.limits.max_open_total}")

    # P&L by strategy and the header's realised P&L: sums over the stored SELL rows, size-weighted
    by_strategy = stored_pnl_by_strategy(wh)
    head = page.head("pnl-by-strategy")
    rows = {r[0]: r for r in page.body("pnl-by-strategy")}
    assert set(rows) == set(by_strategy)
    for s, (n, pnl, ret) in by_strategy.items():
        assert int(rows[s][head.index("trades")]) == n
        assert abs(money(rows[s][head.index("net P&L")]) - pnl) <= 0.005 + 1e-9
        assert abs(percent(rows[s][head.index("return (size-weighted)")]) - ret) <= 0.00005 + 1e-12
    realised = sum(p for _, p, _ in by_strategy.values())
    assert abs(money(page.kpis["realised"].split()[2]) - realised) <= 0.005 + 1e-9
    assert result.summary["closed_trades"] == sum(n for n, _, _ in by_strategy.values())
    assert abs(money(page.kpis["cash"].split()[1]) - stored_cash(wh, cfg)) <= 0.005 + 1e-9
    assert abs(money(page.kpis["book-equity"].split()[2]) - (cfg.portfolio.initial_balance_usd + realised)) <= 0.005
    unrealised = sum(e["unrealised"] for e in expected.values())
    assert abs(money(page.kpis["unrealised"].split()[2]) - unrealised) <= 0.005 + 1e-9
    assert abs(money(page.kpis["mark-equity"].split()[2]) - (stored_cash(wh, cfg) + unrealised
                                                               + sum_open_cost(wh))) <= 0.005 + 1e-9

    # the leaderboard: the stored ALL rows of the recommendation window, by outperformance (nulls last, then name)
    perf = wh.read_sql("SELECT variation, outperformance, size_weighted_return FROM shadow_performance "
                       f"WHERE strategy = 'ALL' AND window_h = {float(cfg.shadow.recommendation_window_h)}")
    perf = perf.assign(null=perf["outperformance"].isna()).sort_values(
        ["null", "outperformance", "variation"], ascending=[True, False, True])
    head = page.head("shadow-leaderboard")
    board = page.body("shadow-leaderboard")
    assert [r[head.index("variation")] for r in board] == perf["variation"].tolist() and len(board) > 3
    for r, want in zip(board, perf["size_weighted_return"]):
        cell = r[head.index("return (size-weighted)")]
        assert cell == "–" if pd.isna(want) else abs(percent(cell) - want) <= 0.00005 + 1e-12

    # the readiness board of the latest scan lists the universe; the DCA champion has its card
    assert {r[0] for r in page.body("readiness-board")} == UNIVERSE
    champion = wh.read_sql("SELECT model_version FROM model_registry WHERE strategy = 'DCA'")["model_version"].iloc[0]
    assert f"DCA: {champion}" in page.h3
    assert len(page.body("model-metrics-dca")) >= 3

    # the charts rendered, each with its data
    ids = [s.get("id") for s in page.svgs]
    assert ids == ["equity-chart", "pnl-strategy-chart", "pnl-exit-chart", "price-chart", "protection-chart",
                   "calibration-dca", "importance-dca"]
    assert dom.count("<svg") == len(ids)
    assert all(s.get("aria-label") and s.get("viewbox") for s in page.svgs)
    snapshots = int(wh.read_sql("SELECT count(*) AS n FROM portfolio_snapshots")["n"].iloc[0])
    equity = page.of("equity-chart", "path", "series")
    assert [points(p["d"]) for p in equity] == [snapshots, snapshots]  # mark and book equity, one point per snapshot
    assert points(page.of("equity-chart", "path", "drawdown")[0]["d"]) == snapshots + 2
    assert len(page.of("pnl-strategy-chart", "rect", "bar")) == len(by_strategy)
    symbol = result.summary["symbol"]
    fills = wh.read_sql(f"SELECT side, count(*) AS n FROM paper_trades WHERE symbol = '{symbol}' GROUP BY 1")
    n_fills = dict(zip(fills["side"], fills["n"]))
    assert len(page.of("price-chart", "polygon", "entry")) == n_fills.get("BUY", 0) > 0
    assert len(page.of("price-chart", "polygon", "exit")) == n_fills.get("SELL", 0)
    assert points(page.of("price-chart", "path", "series")[0]["d"]) > 100
    assert {a["data-row"] for a in page.of("protection-chart", "rect", "band")} == {
        "BTC regime", "DCA", "SWING", "CHANNEL", "operator pause", "daily loss gate", "loss-streak pause"}
    assert len(page.of("calibration-dca", "rect", "bar")) > 1

    # the default symbol: most closed trades, ties alphabetical; else BTC
    counts = wh.read_sql("SELECT symbol, count(*) AS n FROM paper_trades WHERE side = 'SELL' GROUP BY 1")
    top = counts.loc[counts["n"] == counts["n"].max(), "symbol"].min() if len(counts) else "BTC"
    assert symbol == top

    # a screenshot of the page as people see it
    shot = tmp_path / "report.png"
    browse(browser, tmp_path, f"--screenshot={shot}", "--window-size=1400,3000", out.as_uri())
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "report.png")


def test_a_report_without_data_says_nothing_yet_and_escapes_what_it_shows(book, tmp_path):
    cfg = load_config()
    empty = write_html_report(Warehouse(tmp_path / "empty.duckdb"), cfg, tmp_path / "r" / "empty.html", now=NOW)
    text = empty.path.read_text(encoding="utf-8")
    sections = dict(re.findall(r'<section id="([a-z]+)">(.*?)</section>', text, re.S))
    assert list(sections) == ["equity", "pnl", "price", "positions", "readiness", "protection", "shadows", "models"]
    assert all('<p class="empty">Nothing yet' in body for body in sections.values())
    assert sections["models"].count("Nothing yet: no champion model") == 3
    assert "Nothing yet: no stored bars of BTC" in text
    assert empty.summary["symbol"] == "BTC" and empty.summary["as_of"] is None
    assert (empty.summary["open_positions"], empty.summary["closed_trades"], empty.summary["realised_usd"]) == (0, 0,
                                                                                                             0.0)
    assert math.isnan(empty.summary["max_drawdown_pct"]) and empty.summary["mark_equity"] == 10_000.0

    # bars, scans and regimes but no engine tables: the board and the regime timeline, the rest says nothing yet
    before = Warehouse(book.before_engine.warehouse)
    assert not before.table_exists("paper_trades") and not before.table_exists("portfolio_snapshots")
    res = write_html_report(before, cfg, tmp_path / "before.html", symbol="ETH", now=NOW)
    page = Page(res.path.read_text(encoding="utf-8"))
    assert {r[0] for r in page.body("readiness-board")} == UNIVERSE
    assert [s.get("id") for s in page.svgs] == ["price-chart", "protection-chart"]
    assert res.summary["symbol"] == "ETH" and "Price of ETH with entries and exits" in page.h2

    # a string from the data is escaped, never markup
    odd = write_html_report(before, cfg, tmp_path / "odd.html", symbol="<b>X&Y</b>", now=NOW)
    text = odd.path.read_text(encoding="utf-8")
    assert "<b>X&Y</b>" not in text and "&lt;b&gt;X&amp;Y&lt;/b&gt;" in text

    # an open position without a stored bar to mark it: named in the notes, its marked values shown as a dash
    copy = tmp_path / "unmarked.duckdb"
    shutil.copy(book.world.warehouse, copy)
    gone = sorted(stored_open_positions(Warehouse(copy)).values(), key=lambda e: e["symbol"])[0]["symbol"]
    con = duckdb.connect(str(copy))
    con.execute("DELETE FROM ohlc_1m WHERE symbol = ?", [gone])
    con.close()
    res = write_html_report(Warehouse(copy), cfg, tmp_path / "unmarked" / "u.html", now=NOW)
    page = Page(res.path.read_text(encoding="utf-8"))
    assert escape(f"no stored bars to mark open positions on ['{gone}']") in res.path.read_text(encoding="utf-8")
    head = page.head("open-positions")
    shown = page.body("open-positions")
    assert len(shown) == 6 and {r[head.index("mark")] for r in shown} == {"–"}
    assert page.kpis["unrealised"].split()[2] == "–" and math.isnan(res.summary["mark_equity"])
    assert abs(money(page.kpis["cash"].split()[1]) - stored_cash(Warehouse(copy), cfg)) <= 0.005 + 1e-9

    # written atomically: the file is replaced and no temporary file stays behind
    again = write_html_report(before, cfg, tmp_path / "before.html", symbol="SOL", now=NOW)
    assert "Price of SOL" in again.path.read_text(encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix in (".html", ".tmp")) == ["before.html", "odd.html"]


def test_the_gate_timeline_uses_the_config_each_tick_ran_with(tmp_path):
    """The protection timeline is refolded under the limits the engine's ticks applied: their recorded config
    versions, rebuilt from config_versions; a version that cannot be rebuilt is named in the report's notes."""
    from cryptotracker_assets.core.config import build_config, raw_dict
    from cryptotracker_assets.core.revisions import Revision, RevisionKind
    from cryptotracker_assets.services.config_versions import versioned
    from cryptotracker_assets.services.report_data import tick_configs

    wh = Warehouse(tmp_path / "w.duckdb")
    base = load_config()
    raw = raw_dict(base)
    raw["limits"]["daily_loss_limit"] = 0.05
    v1 = versioned(wh, base, "config.yaml")
    v2 = versioned(wh, build_config(raw, source="user file"), "user.yaml")
    assert (v1.config_version, v2.config_version) == (1, 2)
    t = pd.Timestamp("2026-03-01", tz="UTC")
    step = pd.Timedelta(minutes=5)
    firsts = [t, t + step, t + 2 * step, t + 3 * step, t + 4 * step]
    ticks = pd.DataFrame({"first_cycle_point": firsts, "last_cycle_point": firsts, "config_version": [1, 1, 2, 2, 7]})
    notes: list[str] = []
    got = tick_configs(ticks, wh, v2, notes)  # v2 is the config in force now
    assert [(at, c.config_version, c.limits.daily_loss_limit) for at, c in got] == [
        (t, 1, 0.03), (t + 2 * step, 2, 0.05), (t + 4 * step, 2, 0.05)]
    assert len(notes) == 1 and "config_version 7 is not recorded" in notes[0] and "2026-03-01 00:20" in notes[0]
    assert tick_configs(ticks.iloc[0:0], wh, v2, []) == [] and tick_configs(None, wh, v2, []) == []
    # one catch-up tick over 00:00 .. 01:00 that crossed revision 1 (version 1 → 2), approved at 00:31:10: the
    # engine folded 00:00 .. 00:30 under version 1 and 00:35 .. 01:00 under version 2 (SPEC §0.2), while the tick
    # records only version 2
    catch_up = pd.DataFrame({"first_cycle_point": [t], "last_cycle_point": [t + 12 * step], "config_version": [2]})
    revision = Revision(revision_id=1, config_version=2, previous_config_version=1,
                        applied_at=t + pd.Timedelta(minutes=31, seconds=10), kind=RevisionKind.APPROVAL,
                        strategy=Strategy.DCA, changes=(), who="alice", why="test")
    got = tick_configs(catch_up, wh, v2, [], [revision])
    assert [(at, c.config_version) for at, c in got] == [(t, 1), (t + 7 * step, 2)]
    assert [(at, c.config_version) for at, c in tick_configs(ticks.iloc[2:4], wh, v2, [], [revision])] == [
        (t + 2 * step, 2)]  # a revision outside a tick's span changes nothing there
