"""The report's SVG charts and derivations against hand-computed values: a series on a known scale lands on known
coordinates, the drawdown of a known equity path and its shaded panel, bar heights and signs from the zero line,
entry / exit markers at their fills, timeline bands per run of states, round ticks, number formats for people,
P&L breakdowns (size-weighted) and the entry gates refolded over cycle points.

Geometry (core.html_report.svg): the plot area of a chart W × H is x ∈ [80, W − 20], y ∈ [36, H − 48]."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from cryptotracker_assets.core.config import Strategy, Tier
from cryptotracker_assets.core.exits import ExitReason
from cryptotracker_assets.core.ledger import ClosedTrade, TradeOutcome
from cryptotracker_assets.core.protection import OperatorAction, OperatorEvent
from cryptotracker_assets.core.html_report import (Scale, Series, bar_chart, default_symbol, drawdown, fmt_pct, fmt_price,
                                              fmt_usd, gate_timeline, line_chart, max_drawdown, pnl_breakdown,
                                              price_chart, timeline_chart)
from cryptotracker_assets.core.html_report.svg import nice_ticks, thin, time_ticks

T0 = pd.Timestamp("2026-02-02 00:00", tz="UTC")


def attr(svg: str, tag: str, cls: str, name: str) -> list[str]:
    """The ``name`` attribute of every ``<tag class="cls…">`` in document order."""
    return [m.group(1) for el in re.findall(rf'<{tag} class="{cls}[^"]*"[^>]*>', svg)
            for m in [re.search(rf' {name}="([^"]*)"', el)] if m]


def test_a_three_point_series_maps_to_hand_computed_coordinates():
    assert Scale(0, 10, 80, 940)(5) == 510.0
    assert Scale(10, 20, 272, 36)(15) == 154.0  # y grows downwards: the domain's top is the area's top
    svg = line_chart([Series("s", [0, 1, 2], [10, 20, 15])], title="t", x_label="x", y_label="y",
                     x_domain=(0, 2), y_domain=(10, 20), width=960, height=320)
    # x: 80 + v/2 × 860; y: 272 − (v − 10)/10 × 236
    assert attr(svg, "path", "series", "d") == ["M80.00 272.00 L510.00 36.00 L940.00 154.00"]
    # the same hours as UTC times, with the default x domain (first to last time)
    times = [T0, T0 + pd.Timedelta(hours=1), T0 + pd.Timedelta(hours=2)]
    svg_t = line_chart([Series("s", times, [10, 20, 15])], title="t", x_label="x", y_label="y", y_domain=(10, 20))
    assert attr(svg_t, "path", "series", "d") == ["M80.00 272.00 L510.00 36.00 L940.00 154.00"]


def test_a_missing_value_breaks_the_line_and_every_chart_is_labelled():
    svg = line_chart([Series("a", [0, 1, 2, 3], [10, np.nan, 15, 20]), Series("b", [0, 3], [12, 12])],
                     title="Equity <USD> & co", x_label="cycle point", y_label="equity (USD)", x_domain=(0, 3),
                     y_domain=(10, 20))
    d = attr(svg, "path", "series", "d")
    assert d[0] == "M80.00 272.00 M653.33 154.00 L940.00 36.00"  # a new M after the gap
    assert d[1] == "M80.00 224.80 L940.00 224.80"
    assert '<title>Equity &lt;USD&gt; &amp; co</title>' in svg and 'aria-label="Equity &lt;USD&gt; &amp; co"' in svg
    assert 'viewBox="0 0 960.00 320.00"' in svg and 'role="img"' in svg
    assert ">cycle point</text>" in svg and ">equity (USD)</text>" in svg
    assert "http" not in svg.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_drawdown_of_a_known_equity_path_and_its_shaded_panel():
    equity = [100.0, 120.0, 90.0, 108.0, 130.0]
    np.testing.assert_allclose(drawdown(equity), [0.0, 0.0, -0.25, -0.1, 0.0])
    assert max_drawdown(equity) == pytest.approx(0.25)
    assert max_drawdown([100.0, 101.0, 102.0]) == 0.0
    svg = line_chart([Series("mark", [0, 1, 2, 3, 4], equity)], title="t", x_label="x", y_label="y",
                     x_domain=(0, 4), height=320, drawdown=Series("dd", [0, 1, 2, 3, 4], drawdown(equity)))
    # the panel: y ∈ [320 + 12, 320 + 130 − 48] = [332, 402] for drawdown [0, −0.25]; −0.1 → 332 + 0.4 × 70
    assert attr(svg, "path", "drawdown", "d") == [
        "M80.00 332.00 L80.00 332.00 L295.00 332.00 L510.00 402.00 L725.00 360.00 L940.00 332.00 L940.00 332.00 Z"]
    assert 'viewBox="0 0 960.00 450.00"' in svg and ">drawdown</text>" in svg


def test_bars_rise_and_fall_from_the_zero_line():
    svg = bar_chart(["A", "B"], [30.0, -10.0], title="P&L", x_label="strategy", y_label="USD", y_domain=(-10, 30),
                    height=300)
    # y ∈ [36, 252]: zero at 252 − 10/40 × 216 = 198; 30 → 36; −10 → 252. Two bands of 430, bars 120 wide (cap)
    assert attr(svg, "rect", "bar", "class") == ["bar pos", "bar neg"]
    assert attr(svg, "rect", "bar", "y") == ["36.00", "198.00"]
    assert attr(svg, "rect", "bar", "height") == ["162.00", "54.00"]
    assert attr(svg, "rect", "bar", "x") == ["235.00", "665.00"]
    assert attr(svg, "rect", "bar", "width") == ["120.00", "120.00"]
    # default domain [−10, 30] widened by 10 % of 40 on both sides: [−14, 34] → zero at 252 − 14/48 × 216 = 189
    auto = bar_chart(["A", "B"], [30.0, -10.0], title="P&L", x_label="s", y_label="USD", height=300)
    assert attr(auto, "rect", "bar", "y") == ["54.00", "189.00"]
    assert attr(auto, "rect", "bar", "height") == ["135.00", "45.00"]
    many = bar_chart([f"k{i}" for i in range(10)], list(range(1, 11)), title="t", x_label="x", y_label="y")
    assert attr(many, "rect", "bar", "width") == ["51.60"] * 10  # 60 % of 860 / 10


def test_entries_and_exits_are_marked_at_their_fills():
    svg = price_chart([0, 1, 2], [100.0, 110.0, 105.0], entries=([1], [110.0]), exits=([2], [105.0]), title="BTC",
                      x_label="time", y_label="USD", x_domain=(0, 2), y_domain=(100, 110), height=340)
    # y ∈ [36, 292]: 110 → 36, 105 → 164; ▲ tip at the fill, base 9.6 below; ▼ tip at the fill, base 9.6 above
    assert attr(svg, "polygon", "marker entry", "points") == ["510.00,36.00 504.00,45.60 516.00,45.60"]
    assert attr(svg, "polygon", "marker exit", "points") == ["940.00,164.00 934.00,154.40 946.00,154.40"]
    assert attr(svg, "path", "series", "d") == ["M80.00 292.00 L510.00 36.00 L940.00 164.00"]


def test_the_timeline_draws_one_band_per_run_of_states():
    svg = timeline_chart([0, 10, 20, 30], [("regime", ["A", "A", "B", "A"]), ("gate", ["OFF"] * 4)], 40,
                         title="protection", x_label="time", colors={"A": "#111111", "B": "#222222"},
                         x_domain=(0, 40))
    # x ∈ [150, 940] for [0, 40]: 19.75 px per unit
    assert attr(svg, "rect", "band", "data-state") == ["A", "B", "A", "OFF"]
    assert attr(svg, "rect", "band", "x") == ["150.00", "545.00", "742.50", "150.00"]
    assert attr(svg, "rect", "band", "width") == ["395.00", "197.50", "197.50", "790.00"]
    assert attr(svg, "rect", "band", "y") == ["39.00", "39.00", "39.00", "65.00"]
    assert attr(svg, "rect", "band", "fill") == ["#111111", "#222222", "#111111", "#bdc3c7"]


def test_ticks_are_round_and_long_series_keep_their_extremes():
    assert nice_ticks(0, 1, 5) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(9978, 10001, 5) == [9980, 9985, 9990, 9995, 10000]
    lo = T0.timestamp()
    ticks, fmt = time_ticks(lo + 60, lo + 2 * 86400)
    assert ticks == [lo + k * 43200 for k in (1, 2, 3, 4)] and fmt == "%m-%d %H:%M"
    x = np.arange(10_000, dtype="float64")
    y = np.sin(x / 50.0)
    y[7_777], y[1_234] = 5.0, -5.0
    tx, ty = thin(x, y, 1500)
    assert len(tx) <= 1500 and ty.max() == 5.0 and ty.min() == -5.0 and np.all(np.diff(tx) > 0)


def test_numbers_are_formatted_for_people():
    assert fmt_price(68595.326918) == "68,595.3"
    assert fmt_price(0.0000123456789) == "0.0000123457"
    assert fmt_price(34.529383) == "34.5294"
    assert fmt_price(9.9999996) == "10.0000"
    assert fmt_price(1234567.8) == "1,234,570"
    assert fmt_price(float("nan")) == "–"
    assert fmt_usd(10000) == "$10,000.00" and fmt_usd(-21.342347, signed=True) == "-$21.34"
    assert fmt_pct(-0.0251) == "-2.51 %" and fmt_pct(0.0125) == "+1.25 %" and fmt_pct(0.5, signed=False) == "50.00 %"


def closed_row(strategy: str, symbol: str, reason: str, pnl: float, size: float) -> dict:
    return {"strategy": strategy, "symbol": symbol, "exit_reason": reason, "pnl_usd": pnl, "size_usd": size,
            "outcome": "WIN" if pnl > 0 else "LOSS"}


def test_pnl_breakdown_is_size_weighted_and_the_default_symbol_has_most_closes():
    closed = pd.DataFrame([closed_row("SWING", "ETH", "stop_loss", -3.0, 50.0),
                           closed_row("DCA", "SOL", "take_profit", 2.0, 50.0),
                           closed_row("DCA", "ETH", "stop_loss", -1.0, 100.0)])
    b = pnl_breakdown(closed, "strategy", ("DCA", "SWING", "CHANNEL"))
    assert b["key"].tolist() == ["DCA", "SWING"]
    assert b["trades"].tolist() == [2, 1] and b["wins"].tolist() == [1, 0]
    assert b["pnl_usd"].tolist() == [1.0, -3.0] and b["size_usd"].tolist() == [150.0, 50.0]
    assert b["return"].tolist() == pytest.approx([1.0 / 150.0, -0.06])  # never the mean of +4 % and −1 %
    r = pnl_breakdown(closed, "exit_reason", ("stop_loss", "take_profit"))
    assert r["key"].tolist() == ["stop_loss", "take_profit"] and r["pnl_usd"].tolist() == [-4.0, 2.0]
    assert default_symbol(closed, "BTC") == "ETH"
    tie = pd.DataFrame([closed_row("DCA", "SOL", "stop_loss", -1, 50), closed_row("DCA", "AVAX", "stop_loss", -1, 50)])
    assert default_symbol(tie, "BTC") == "AVAX"  # ties: alphabetical
    assert default_symbol(closed.iloc[0:0], "BTC") == "BTC"


def loss(i: int, cp: pd.Timestamp) -> ClosedTrade:
    return ClosedTrade(trade_group_id=f"DCA_S{i}_x", strategy=Strategy.DCA, symbol=f"S{i}", tier=Tier.LARGE_CAP,
                       exit_time=cp - pd.Timedelta(minutes=1), cycle_point=cp, exit_reason=ExitReason.STOP_LOSS,
                       pnl_usd=-1.0, pnl_pct=-0.02, take_profit=0.03, outcome=TradeOutcome.LOSS)


def test_entry_gates_are_refolded_over_the_cycle_points(cfg):
    """limits: daily_loss_limit 0.03, loss_streak 5, loss_streak_pause_h 12 (config.yaml)."""
    assert (cfg.limits.daily_loss_limit, cfg.limits.loss_streak, cfg.limits.loss_streak_pause_h) == (0.03, 5, 12)
    step = pd.Timedelta(minutes=5)
    points = [T0, T0 + step, T0 + 2 * step, T0 + pd.Timedelta(hours=12), T0 + pd.Timedelta(hours=12) + step,
              T0 + pd.Timedelta(days=1)]
    # E₀ = 10,000 at 00:00; 9,690 is −3.1 % ≤ −3 %: latched from 00:10 until the next UTC day
    snaps = pd.DataFrame({"cycle_point": points, "equity": [10_000.0, 9_800.0, 9_690.0, 9_900.0, 9_900.0, 9_690.0]})
    closes = [loss(i, T0 + step) for i in range(5)]  # the 5th loss at 00:05: pause until 12:05
    events = [OperatorEvent(T0 + pd.Timedelta(minutes=7), OperatorAction.PAUSE, "ops", "test"),
              OperatorEvent(T0 + pd.Timedelta(hours=12, minutes=1), OperatorAction.RESUME, "ops", "over")]
    g = gate_timeline(snaps, closes, events, cfg)
    assert g["cycle_point"].tolist() == points
    assert g["daily_loss_gate"].tolist() == [False, False, True, True, True, False]
    assert g["loss_streak_pause"].tolist() == [False, True, True, True, False, False]
    assert g["operator_pause"].tolist() == [False, False, True, True, False, False]  # acts from the next point
    assert gate_timeline(snaps.iloc[0:0], [], [], cfg).empty
    # from 00:10 the engine's ticks ran a config with a 5 % daily limit (and a streak of 6): −3.1 % latches nothing
    # after that, while the streak state folded so far (5 losses at 00:05, paused under the old config) carries on
    wider = with_limits(cfg, daily_loss_limit=0.05, loss_streak=6)
    g2 = gate_timeline(snaps, closes, events, cfg, [(T0 + 2 * step, wider)])
    assert g2["daily_loss_gate"].tolist() == [False] * 6
    assert g2["loss_streak_pause"].tolist() == [False, True, True, True, False, False]
    assert g2["operator_pause"].tolist() == g["operator_pause"].tolist()
    # a change before the first point applies from the start; one after the last changes nothing
    assert gate_timeline(snaps, closes, events, cfg, [(T0 - step, wider)])["loss_streak_pause"].tolist() == [False] * 6
    assert gate_timeline(snaps, closes, events, cfg, [(T0 + pd.Timedelta(days=2), wider)]).equals(g)


def with_limits(cfg, **limits):
    from cryptotracker_assets.core.config import build_config, raw_dict

    raw = raw_dict(cfg)
    raw["limits"].update(limits)
    return build_config(raw, source="test")


def test_a_missing_value_never_breaks_the_formats():
    assert fmt_price(None) == fmt_usd(math.nan) == fmt_pct(None) == "–"
