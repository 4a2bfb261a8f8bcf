"""The self-contained HTML page of the report: inline CSS and inline SVG charts, no script and no external URL, so
the one file opens anywhere without a network. Pure python/pandas; never imports dagster.

Every string that comes from data goes through :func:`html.escape`; numbers are formatted for people by the
``fmt_*`` functions of :mod:`.data` (prices 6 significant digits, USD 2 decimals, % with sign). Times are UTC.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from html import escape
from typing import Any

import numpy as np
import pandas as pd

from .data import (EXIT_REASON_ORDER, NO_VALUE, STRATEGY_ORDER, ModelCard, ReportData, drawdown, enabled_label,
                   fmt_pct, fmt_price, fmt_time, fmt_usd, on_off, pnl_breakdown)
from .svg import PALETTE, Series, bar_chart, line_chart, price_chart, timeline_chart

CSS = """
body{font-family:-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;margin:0;background:#f5f6f8;color:#222}
main{max-width:1180px;margin:0 auto;padding:16px 20px 40px}
h1{font-size:24px;margin:8px 0 4px}h2{font-size:19px;margin:0 0 10px;border-bottom:1px solid #dde1e6;padding-bottom:4px}
h3{font-size:15px;margin:14px 0 6px}
section{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:14px 16px;margin:14px 0}
.meta{color:#555;font-size:13px;margin:0 0 10px}.meta span{margin-right:18px}
.kpis{display:flex;flex-wrap:wrap;gap:8px}.kpi{background:#fff;border:1px solid #dde1e6;border-radius:6px;
padding:8px 12px;min-width:140px}.kpi .label{font-size:11px;color:#666;text-transform:uppercase}
.kpi .value{font-size:18px;font-weight:600}.kpi .sub{font-size:12px;color:#555}
table{border-collapse:collapse;width:100%;font-size:12.5px;margin:6px 0}
th,td{padding:4px 6px;border-bottom:1px solid #eceef1;text-align:left;white-space:nowrap}
th{background:#f0f2f5;font-weight:600}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.pos{color:#2e7d32}.neg{color:#c62828}.empty{color:#777;font-style:italic}
.notes{background:#fff8e1;border:1px solid #f0d78c;border-radius:6px;padding:8px 12px 8px 28px;font-size:13px}
svg.chart{display:block;width:100%;height:auto;margin:6px 0}
.tag{display:inline-block;border-radius:3px;padding:0 4px;font-size:11px;background:#eef1f5;margin-left:4px}
.tag.setup{background:#d4edda}.tag.take{background:#2e8540;color:#fff}
td.score{min-width:120px}details{margin:6px 0}summary{cursor:pointer;font-size:13px;color:#1f5fa8}
footer{color:#777;font-size:12px;text-align:center;margin-top:20px}
"""
REGIME_COLORS = {"PANIC": "#c0392b", "CAUTION": "#e67e22", "EUPHORIA": "#8e44ad", "NORMAL": "#2e8540",
                 "UNKNOWN": "#95a5a6", "ENABLED": "#2e8540", "DISABLED": "#c0392b", "ON": "#c0392b",
                 "OFF": "#dfe6e9"}


def esc(value: Any) -> str:
    """Any value as escaped HTML text (missing values as a dash)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NO_VALUE
    return escape(str(value))


def signed_class(x: Any) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)) or x == 0:
        return ""
    return "pos" if x > 0 else "neg"


def table(table_id: str, headers: Sequence[str], rows: Iterable[Sequence[tuple[str, str]]],
          numeric: Sequence[bool] = ()) -> str:
    """A table; each cell is (escaped html, css class). ``numeric`` right-aligns those columns' headers."""
    head = "".join(f'<th class="{"num" if i < len(numeric) and numeric[i] else ""}">{esc(h)}</th>'
                   for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f'<td class="{c}">{v}</td>' for v, c in row) + "</tr>" for row in rows)
    return f'<table id="{esc(table_id)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def num(text: str, value: Any = None) -> tuple[str, str]:
    """A right-aligned number cell (coloured by the sign of ``value`` if given)."""
    return esc(text), ("num " + signed_class(value)).strip()


def txt(value: Any) -> tuple[str, str]:
    return esc(value), ""


def nothing(what: str) -> str:
    return f'<p class="empty">Nothing yet: {esc(what)}.</p>'


def section(section_id: str, title: str, body: str) -> str:
    return f'<section id="{esc(section_id)}"><h2>{esc(title)}</h2>\n{body}\n</section>'


def kpi(kpi_id: str, label: str, value: str, sub: str = "", cls: str = "") -> str:
    sub_html = f'<div class="sub {cls}">{esc(sub)}</div>' if sub else ""
    return (f'<div class="kpi" id="kpi-{esc(kpi_id)}"><div class="label">{esc(label)}</div>'
            f'<div class="value {cls}">{esc(value)}</div>{sub_html}</div>')


# --- sections ------------------------------------------------------------------------------------------------------


def header(d: ReportData) -> str:
    ran = d.engine_config_version
    version = f"{d.config_version}" + ("" if ran in (None, d.config_version) else f" (the engine ran {ran})")
    meta = (f'<p class="meta"><span>As of <b>{esc(fmt_time(d.as_of))}</b></span>'
            f"<span>Engine cursor {esc(fmt_time(d.engine_cursor))}</span><span>Config version {esc(version)}</span>"
            f"<span>Warehouse <code>{esc(d.warehouse)}</code></span></p>")
    dd = d.max_drawdown
    cards = [
        kpi("realised", "Realised P&L", fmt_usd(d.realised_usd, signed=True),
            f"{fmt_pct(d.realised_pct)} size-weighted", signed_class(d.realised_usd)),
        kpi("unrealised", "Unrealised P&L", fmt_usd(d.unrealised_usd, signed=True),
            f"{fmt_pct(d.unrealised_pct)} size-weighted", signed_class(d.unrealised_usd)),
        kpi("book-equity", "Book equity", fmt_usd(d.book_equity_usd), f"initial {fmt_usd(d.initial_usd)}"),
        kpi("mark-equity", "Mark equity", fmt_usd(d.mark_equity_usd), "at liquidation value"),
        kpi("cash", "Cash", fmt_usd(d.cash_usd)),
        kpi("open", "Open positions", f"{len(d.positions)} / {d.max_open_total}", f"{len(d.closed)} closed trades"),
        kpi("max-drawdown", "Max drawdown", NO_VALUE if math.isnan(dd) else fmt_pct(-dd), "of mark equity",
            "neg" if dd > 0 else ""),
    ]
    notes = ""
    if d.notes:
        notes = '<ul class="notes">' + "".join(f"<li>{esc(n)}</li>" for n in d.notes) + "</ul>"
    return (f"<header><h1>cryptotracker — paper trading report</h1>{meta}"
            f'<div class="kpis">{"".join(cards)}</div>{notes}</header>')


def equity_section(d: ReportData) -> str:
    s = d.snapshots
    if s.empty:
        return section("equity", "Equity and drawdown", nothing("the paper engine has no portfolio snapshots"))
    t = s["cycle_point"]
    mark = s["equity"].to_numpy(dtype="float64")
    book = d.initial_usd + s["realised"].to_numpy(dtype="float64")
    chart = line_chart([Series("mark equity", t, mark, PALETTE[0]), Series("book equity", t, book, PALETTE[1])],
                       title="Equity (USD) and drawdown of mark equity", x_label="cycle point (UTC)",
                       y_label="equity (USD)", chart_id="equity-chart", drawdown=Series("drawdown", t, drawdown(mark)),
                       y_format=lambda v: f"{v:,.2f}")
    text = (f'<p class="meta">{len(s)} cycle points from {esc(fmt_time(t.iloc[0]))} to {esc(fmt_time(t.iloc[-1]))}; '
            f"book equity = initial + realised, mark equity = cash + positions at liquidation value.</p>")
    return section("equity", "Equity and drawdown", chart + text)


def breakdown_block(d: ReportData, by: str, order: Sequence[str], title: str, label: str, chart_id: str) -> str:
    b = pnl_breakdown(d.closed, by, order)
    chart = bar_chart([str(k) for k in b["key"]], b["pnl_usd"].tolist(), title=f"Net P&L by {label} (USD)",
                      x_label=label, y_label="net P&L (USD)", chart_id=chart_id,
                      value_format=lambda v: fmt_usd(v, signed=True), y_format=lambda v: f"{v:,.2f}")
    rows = [[txt(r["key"]), num(str(r["trades"])), num(str(r["wins"])), num(fmt_pct(r["win_rate"], signed=False)),
             num(fmt_usd(r["pnl_usd"], signed=True), r["pnl_usd"]), num(fmt_usd(r["size_usd"])),
             num(fmt_pct(r["return"]), r["return"])] for r in b.to_dict("records")]
    tbl = table(f"pnl-by-{by.replace('_', '-')}", [label, "trades", "wins", "win rate", "net P&L", "size",
                                                   "return (size-weighted)"], rows, [False] + [True] * 6)
    return f"<h3>{esc(title)}</h3>{chart}{tbl}"


def pnl_section(d: ReportData) -> str:
    if d.closed.empty:
        return section("pnl", "P&L of closed trades", nothing("no trade has closed"))
    body = (breakdown_block(d, "strategy", STRATEGY_ORDER, "By strategy", "strategy", "pnl-strategy-chart")
            + breakdown_block(d, "exit_reason", EXIT_REASON_ORDER, "By exit reason", "exit reason",
                              "pnl-exit-chart"))
    return section("pnl", "P&L of closed trades", body)


def price_section(d: ReportData) -> str:
    title = f"Price of {d.symbol} with entries and exits"
    if d.prices.empty:
        return section("price", title, nothing(f"no stored bars of {d.symbol}"))
    buys = d.fills.loc[d.fills["side"] == "BUY"]
    sells = d.fills.loc[d.fills["side"] == "SELL"]
    chart = price_chart(d.prices["timestamp"], d.prices["close"].to_numpy(dtype="float64"),
                        entries=(buys["time"], buys["price"]), exits=(sells["time"], sells["price"]),
                        title=f"{d.symbol} close (USD, {d.price_timeframe} bars) with entries ▲ and exits ▼",
                        x_label="time (UTC)", y_label=f"{d.symbol} price (USD)", chart_id="price-chart",
                        y_format=fmt_price)
    text = (f'<p class="meta">{len(buys)} entry fills and {len(sells)} exits of {esc(d.symbol)}; markers at the '
            f"fill price and the fill bar's open time.</p>")
    return section("price", title, chart + text)


def positions_section(d: ReportData) -> str:
    p = d.positions
    if p.empty:
        return section("positions", "Open positions", nothing("no open position"))
    marked = "mark" in p.columns
    rows = []
    for r in p.to_dict("records"):
        mark = r.get("mark") if marked else None
        tp_dist = r["take_profit_price"] / mark - 1 if mark else None
        sl_dist = r["stop_price"] / mark - 1 if mark else None
        rows.append([txt(r["strategy"]), txt(r["symbol"]), txt(r["trade_group_id"]), txt(fmt_time(r["entry_time"])),
                     num(fmt_usd(r["filled_usd"])), num(fmt_price(r["avg_entry"])), num(fmt_price(mark)),
                     num(fmt_usd(r.get("unrealised_usd"), signed=True), r.get("unrealised_usd")),
                     num(fmt_pct(r.get("unrealised_pct")), r.get("unrealised_pct")),
                     num(f"{fmt_price(r['take_profit_price'])} ({fmt_pct(tp_dist)})"),
                     num(f"{fmt_price(r['stop_price'])} ({fmt_pct(sl_dist)})")])
    heads = ["strategy", "symbol", "trade group", "entry time", "size", "avg entry", "mark", "unrealised",
             "unrealised %", "TP (distance)", "stop (distance)"]
    note = ('<p class="meta">Unrealised at liquidation value (fee and slippage frozen at entry) against the latest '
            "stored close; distances relative to the mark.</p>")
    return section("positions", "Open positions", table("open-positions", heads, rows, [False] * 4 + [True] * 7)
                   + note)


def readiness_section(d: ReportData) -> str:
    b = d.board
    if b.empty:
        return section("readiness", "Readiness board", nothing("no scan rows"))
    at = b["timestamp"].iloc[0]
    strategies = [s for s in STRATEGY_ORDER if s in set(b["strategy"])]
    symbols = sorted(set(b["symbol"]))
    by = {(r["symbol"], r["strategy"]): r for r in b.to_dict("records")}
    rows = []
    for sym in symbols:
        tier = next((by[(sym, s)]["tier"] for s in strategies if (sym, s) in by), None)
        cells = [txt(sym), txt(tier)]
        for s in strategies:
            r = by.get((sym, s))
            if r is None:
                cells.append(txt(None))
                continue
            score = r["readiness"]
            shade = "" if score is None or pd.isna(score) else f"hsl({int(120 * score / 100)},55%,88%)"
            tags = "".join(f'<span class="tag {c}">{esc(t)}</span>' for t, c in (
                (r["status"], ""), ("setup" if r["setup"] else None, "setup"),
                (r["decision"], "take" if r["decision"] == "TAKE" else ""), (r["reason"], "")) if isinstance(t, str))
            cells.append((f'<span style="background:{shade}">{esc("–" if pd.isna(score) else f"{score:.1f}")}'
                          f"</span>{tags}", "score"))
        rows.append(cells)
    tbl = table("readiness-board", ["symbol", "tier", *strategies], rows)
    meta = (f'<p class="meta">Readiness 0–100 at {esc(fmt_time(at))} from <code>{esc(d.board_source)}</code>, '
            "with status, setup, decision and reason.</p>")
    return section("readiness", "Readiness board", meta + tbl)


def protection_section(d: ReportData) -> str:
    r, g = d.regime, d.gates
    if r.empty and g.empty:
        return section("protection", "Market protection", nothing("no market_regime rows or snapshots"))
    parts = []
    times = r["timestamp"] if len(r) else g["cycle_point"]
    end = times.iloc[-1] + d.cycle  # the last state holds for one cycle
    rows: list[tuple[str, Sequence[str]]] = []
    if len(r):
        rows.append(("BTC regime", [str(x) for x in r["regime"]]))
        rows += [(s, [enabled_label(x) for x in r[f"{s.lower()}_enabled"]]) for s in STRATEGY_ORDER]
    if len(g):
        gt = pd.DatetimeIndex(g["cycle_point"])
        at = pd.DatetimeIndex(times)
        pos = np.searchsorted(gt.asi8, at.asi8, side="right") - 1  # gate rows on the regime's cycle points
        after = at.asi8 > gt.asi8[-1]  # cycle points the engine has not processed: no gate state yet

        def align(col: str) -> list[str]:
            flags = on_off(g[col])
            return ["UNKNOWN" if i < 0 or late else flags[i] for i, late in zip(pos, after)]

        rows += [("operator pause", align("operator_pause")), ("daily loss gate", align("daily_loss_gate")),
                 ("loss-streak pause", align("loss_streak_pause"))]
    parts.append(timeline_chart(times, rows, end, title="Market protection over time: regime, volatility "
                                "disable per strategy, entry gates", x_label="cycle point (UTC)",
                                colors=REGIME_COLORS, chart_id="protection-chart"))
    now = []
    if len(r):
        last = r.iloc[-1]
        now.append([txt("BTC regime"), txt(last["regime"]), txt(f"vol24h {fmt_pct(last['btc_vol_24h'], False)}, "
                                                                f"BTC {fmt_price(last['btc_close'])}")])
        now += [[txt(f"{s} volatility state"), txt(enabled_label(last[f"{s.lower()}_enabled"])), txt("")]
                for s in STRATEGY_ORDER]
    if len(g):
        last_g = g.iloc[-1]
        now += [[txt("daily loss gate"), txt(on_off([last_g["daily_loss_gate"]])[0]), txt("")],
                [txt("loss-streak pause"), txt(on_off([last_g["loss_streak_pause"]])[0]), txt("")]]
    now.append([txt("operator pause"), txt(d.operator), txt("as the engine applied it")])
    parts.append("<h3>Now</h3>" + table("protection-now", ["what", "state", "detail"], now))
    if len(d.limiter):
        lim = [[txt(x["symbol"]), num(str(x["stops"])), txt(fmt_time(x["cooldown_until"])),
                txt(fmt_time(x["banned_until"]))] for x in d.limiter.to_dict("records")]
        parts.append("<h3>Trade limiter</h3>" + table("limiter", ["symbol", "stops", "cooldown until", "banned until"],
                                                      lim, [False, True]))
    parts.append('<p class="meta">Gates refolded from the snapshots, closes and operator events with the current '
                 "config; the regime and volatility states as stored in <code>market_regime</code>.</p>")
    return section("protection", "Market protection", "".join(parts))


def leaderboard_table(board: pd.DataFrame, table_id: str) -> str:
    rows = [[num(str(r["rank"])), txt(r["variation"]), num(str(r["trades"])),
             num(fmt_pct(r["win_rate"], signed=False)),
             num(NO_VALUE if pd.isna(r["outperformance"]) else f"{r['outperformance'] * 100:+.1f} pp",
                 r["outperformance"]),
             num(fmt_pct(r["size_weighted_return"]), r["size_weighted_return"]),
             num(fmt_usd(r["total_pnl_usd"], signed=True), r["total_pnl_usd"]), txt(r["tier"]),
             num(NO_VALUE if pd.isna(r["p_z_holm"]) else f"{r['p_z_holm']:.3f}")] for r in board.to_dict("records")]
    return table(table_id, ["#", "variation", "trades", "win rate", "vs CHAMPION", "return (size-weighted)",
                            "net P&L", "tier", "p (Holm)"], rows, [True, False, True, True, True, True, True, False,
                                                                   True])


def shadows_section(d: ReportData) -> str:
    lb = d.leaderboard
    if lb.empty:
        return section("shadows", "Shadow leaderboard", nothing("no shadow analysis with rows"))
    parts = [f'<p class="meta">Analysis at {esc(fmt_time(d.leaderboard_at))}, entries in the '
             f"{d.leaderboard_window_h:g} h window; variations by outperformance (win rate − CHAMPION's).</p>"]
    for i, s in enumerate(dict.fromkeys(lb["strategy"])):
        mine = lb.loc[lb["strategy"] == s]
        tbl = leaderboard_table(mine, f"shadow-leaderboard-{str(s).lower()}" if i else "shadow-leaderboard")
        parts.append(f"<h3>{esc(s)}</h3>{tbl}" if i == 0 else
                     f"<details><summary>{esc(s)} ({len(mine)} variations)</summary>{tbl}</details>")
    return section("shadows", "Shadow leaderboard", "".join(parts))


def model_card(card: ModelCard) -> str:
    if card.model_version is None:
        return f"<h3>{esc(card.strategy)}</h3>" + nothing("no champion model, the rule confidence serves")
    head = (f"<h3>{esc(card.strategy)}: {esc(card.model_version)}</h3><p class=\"meta\">champion since "
            f"{esc(fmt_time(card.swapped_at))} by {esc(card.who)} ({esc(card.why)}); composite at promotion "
            f"{esc(NO_VALUE if card.composite is None else f'{card.composite:.4f}')}</p>")
    parts = [head]
    if card.problem:
        parts.append(f'<p class="empty">{esc(card.problem)}</p>')
    m = card.metrics
    if len(m):
        def f4(x: Any) -> tuple[str, str]:
            return num(NO_VALUE if x is None or pd.isna(x) else f"{x:.4f}")

        rows = [[txt(r["part"]), num(str(int(r["rows"]))), f4(r["accuracy"]), f4(r["precision"]), f4(r["recall"]),
                 f4(r["composite"]), f4(r["auc"])] for r in m.to_dict("records")]
        parts.append(table(f"model-metrics-{card.strategy.lower()}", ["part", "rows", "accuracy", "precision",
                                                                      "recall", "composite", "AUC"], rows,
                           [False] + [True] * 6))
    c = card.calibration
    if len(c):
        labels = [f"bin {int(b)} (P {p:.2f})" for b, p in zip(c["bin"], c["mean_probability"])]
        parts.append(bar_chart(labels, c["win_rate"].tolist(), title=f"{card.strategy} calibration (test): win rate "
                               "per probability bin", x_label="bin (mean predicted P(WIN))", y_label="win rate",
                               chart_id=f"calibration-{card.strategy.lower()}", y_domain=(0.0, 1.0), height=260,
                               value_format=lambda v: fmt_pct(v, signed=False),
                               y_format=lambda v: f"{v * 100:.0f} %"))
    imp = card.importance
    if len(imp):
        parts.append(bar_chart(list(imp["feature"]), imp["gain"].tolist(), title=f"{card.strategy} feature importance "
                               "(gain, top 10)", x_label="feature", y_label="gain",
                               chart_id=f"importance-{card.strategy.lower()}", height=280,
                               value_format=lambda v: f"{v:.3g}"))
    return "".join(parts)


def models_section(d: ReportData) -> str:
    if not d.models:
        return section("models", "Model cards", nothing("no model registry"))
    return section("models", "Model cards", "".join(model_card(c) for c in d.models))


SECTIONS: Sequence[Callable[[ReportData], str]] = (equity_section, pnl_section, price_section, positions_section,
                                                   readiness_section, protection_section, shadows_section,
                                                   models_section)


def render_page(d: ReportData) -> str:
    """The whole HTML document of ``d`` (UTF-8 text; no script, no external reference)."""
    body = "\n".join(f(d) for f in SECTIONS)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>cryptotracker report — {esc(fmt_time(d.as_of))}</title><style>{CSS}</style></head>\n"
            f"<body><main>\n{header(d)}\n{body}\n<footer>Generated {esc(fmt_time(d.generated_at))} from "
            f"{esc(d.warehouse)}. All times UTC; money in USD; aggregate returns are size-weighted (Σ P&L / Σ size)."
            f"</footer>\n</main></body></html>\n")

