"""core.analysis against hand-computed values: spans and moments people type, the drawdown and recovery of a
price path, hourly volatility, breadth, the regime timeline, and the book over a window (size-weighted, never a
sum or mean of percentages)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from cryptotracker_assets.core.analysis import (breadth, entries_into, exits_by_reason, hourly_volatility,
                                                max_drawdown, parse_since, parse_span, price_move, price_path,
                                                regime_timeline, since_time, symbol_changes, window_pnl)

T0 = pd.Timestamp("2026-02-03 10:00", tz="UTC")
H = pd.Timedelta(hours=1)
M = pd.Timedelta(minutes=1)


def path(*prices: float, step: pd.Timedelta = H) -> pd.Series:
    return pd.Series(prices, index=pd.DatetimeIndex([T0 + i * step for i in range(len(prices))]), dtype="float64")


# --- spans and moments ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [("24h", pd.Timedelta(hours=24)), ("7d", pd.Timedelta(days=7)),
                                            ("90m", pd.Timedelta(minutes=90)), ("90min", pd.Timedelta(minutes=90)),
                                            ("1.5h", pd.Timedelta(minutes=90)), (" 6H ", pd.Timedelta(hours=6))])
def test_parse_span(text, expected):
    assert parse_span(text) == expected


@pytest.mark.parametrize("text", ["5x", "0h", "-1h", "", "h", "24", "24 hours", "1w"])
def test_parse_span_refuses_naming_the_value(text):
    with pytest.raises(ValueError, match="expected a positive span"):
        parse_span(text)


def test_parse_since_iso_and_spans():
    assert parse_since("2026-02-03") == pd.Timestamp("2026-02-03 00:00", tz="UTC")
    assert parse_since("2026-02-03T12:30Z") == pd.Timestamp("2026-02-03 12:30", tz="UTC")
    assert parse_since("2026-02-03T13:30+01:00") == pd.Timestamp("2026-02-03 12:30", tz="UTC")
    assert parse_since("2026-02-03 12:30:15") == pd.Timestamp("2026-02-03 12:30:15", tz="UTC")
    assert parse_since("24h") == pd.Timedelta(hours=24)
    end = pd.Timestamp("2026-02-04 00:00", tz="UTC")
    assert since_time(parse_since("7d"), end) == pd.Timestamp("2026-01-28 00:00", tz="UTC")
    assert since_time(parse_since("2026-02-03"), None) == pd.Timestamp("2026-02-03", tz="UTC")
    with pytest.raises(ValueError, match="needs the data's end"):
        since_time(pd.Timedelta(hours=1), None)


@pytest.mark.parametrize("text", ["yesterdayish", "2026-02-30", "now", "today", "03/02/2026", "2026-2-3"])
def test_parse_since_refuses(text):
    with pytest.raises(ValueError, match="expected an ISO date/time"):
        parse_since(text)


# --- price paths ----------------------------------------------------------------------------------------------


def test_drawdown_of_the_brief_path_is_minus_20_percent_not_recovered():
    dd = max_drawdown(path(100, 110, 88, 105))
    assert f"{dd.depth * 100:.2f}" == "-20.00"
    assert dd.depth == pytest.approx(-0.2, abs=1e-15)
    assert (dd.peak_time, dd.peak_price) == (T0 + H, 110.0)
    assert (dd.trough_time, dd.trough_price) == (T0 + 2 * H, 88.0)
    assert dd.recovered_at is None and dd.recovery is None


def test_recovery_is_the_time_from_the_trough_back_to_the_peak_price():
    dd = max_drawdown(path(100, 110, 88, 105, 111, 50))  # 50/111 − 1 is deeper: that one is the drawdown
    assert dd.depth == pytest.approx(50 / 111 - 1)
    assert (dd.peak_time, dd.trough_time, dd.recovered_at) == (T0 + 4 * H, T0 + 5 * H, None)
    dd = max_drawdown(path(100, 110, 88, 105, 110, 109))
    assert dd.depth == pytest.approx(-0.2, abs=1e-15)
    assert dd.recovered_at == T0 + 4 * H and dd.recovery == pd.Timedelta(hours=2)


def test_the_peak_is_the_latest_touch_of_the_running_high_before_the_trough():
    dd = max_drawdown(path(100, 110, 105, 110, 99, 110))
    assert (dd.peak_time, dd.trough_time, dd.recovered_at) == (T0 + 3 * H, T0 + 4 * H, T0 + 5 * H)
    assert dd.depth == pytest.approx(-0.1)


def test_a_path_that_never_falls_has_no_drawdown():
    dd = max_drawdown(path(100, 100, 101, 120))
    assert dd.depth == 0.0 and dd.peak_time is None and dd.trough_time is None and dd.recovery is None
    with pytest.raises(ValueError, match="empty"):
        max_drawdown(path())


BARS = pd.DataFrame({
    "symbol": ["BTC", "BTC", "BTC", "ETH"],
    "timestamp": [T0, T0 + M, T0 + 2 * M, T0],
    "open": [100.0, 110.0, 88.0, 50.0],
    "high": [112.0, 111.0, 106.0, 51.0],
    "low": [99.0, 85.0, 87.0, 49.0],
    "close": [110.0, 88.0, 105.0, 50.5],
})


def test_price_path_is_the_first_open_then_each_close_at_its_bar_close():
    p = price_path(BARS[BARS["symbol"] == "BTC"], M)
    assert p.tolist() == [100.0, 110.0, 88.0, 105.0]
    assert list(p.index) == [T0, T0 + M, T0 + 2 * M, T0 + 3 * M]


def test_price_move_of_btc():
    m = price_move(BARS, M, "BTC")
    assert (m.start, m.end, m.start_time, m.end_time) == (100.0, 105.0, T0, T0 + 3 * M)
    assert m.change == pytest.approx(0.05)
    assert (m.high, m.high_time, m.low, m.low_time) == (112.0, T0, 85.0, T0 + M)  # bar extremes, not the path's
    assert m.drawdown.depth == pytest.approx(-0.2, abs=1e-15) and m.drawdown.recovered_at is None
    assert price_move(BARS, M, "SOL") is None


def test_hourly_volatility_annualised():
    # the last prices at or before 10:00, 11:00, 12:00 are 100, 110, 99 (10:30 is inside the hour ending 11:00)
    p = pd.Series([100.0, 105.0, 110.0, 99.0], index=pd.DatetimeIndex(
        [T0, T0 + pd.Timedelta(minutes=30), T0 + H, T0 + 2 * H]))
    a, b = math.log(110 / 100), math.log(99 / 110)
    expected = abs(a - b) / math.sqrt(2) * math.sqrt(8760)  # std (ddof 1) of two values = |a − b| / √2
    assert hourly_volatility(p) == pytest.approx(expected, rel=1e-12)
    assert math.isnan(hourly_volatility(path(100, 121)))  # one return
    assert math.isnan(hourly_volatility(path()))


# --- breadth and regimes --------------------------------------------------------------------------------------


def test_symbol_changes_and_breadth():
    bars = pd.DataFrame({"symbol": ["A", "B", "C", "A", "B", "C"],
                         "timestamp": [T0 + M, T0, T0, T0, T0 + M, T0 + M],  # unsorted on purpose
                         "open": [11.0, 20.0, 5.0, 10.0, 18.0, 5.5], "close": [12.0, 19.0, 5.5, 11.0, 15.0, 5.0]})
    ch = symbol_changes(bars)
    assert ch["symbol"].tolist() == ["A", "C", "B"]
    assert ch["first"].tolist() == [10.0, 5.0, 20.0] and ch["last"].tolist() == [12.0, 5.0, 15.0]
    assert ch["change"].tolist() == pytest.approx([0.2, 0.0, -0.25])
    b = breadth(ch)
    assert (b.symbols, b.advancing, b.declining, b.unchanged) == (3, 1, 1, 1)
    assert b.share_up == pytest.approx(1 / 3)
    assert math.isnan(breadth(symbol_changes(bars.iloc[:0])).share_up)


def test_regime_timeline_collapses_runs():
    step = pd.Timedelta(minutes=5)
    regs = ["NORMAL", "NORMAL", "CAUTION", "CAUTION", "CAUTION", "NORMAL", "PANIC"]
    rows = pd.DataFrame({"timestamp": [T0 + i * step for i in range(7)], "regime": regs}).iloc[::-1]
    tl = regime_timeline(rows)
    assert tl["regime"].tolist() == ["NORMAL", "CAUTION", "NORMAL", "PANIC"]
    assert tl["start"].tolist() == [T0, T0 + 2 * step, T0 + 5 * step, T0 + 6 * step]
    assert tl["cycle_points"].tolist() == [2, 3, 1, 1]
    assert tl["until"].tolist()[:3] == [T0 + 2 * step, T0 + 5 * step, T0 + 6 * step]
    assert pd.isna(tl["until"].iloc[3])
    assert regime_timeline(rows.iloc[:0]).empty


# --- the book over a window -----------------------------------------------------------------------------------

START, END = T0, T0 + 24 * H
CLOSED = pd.DataFrame({
    "trade_group_id": ["T1", "T2", "T3", "T4"],
    "strategy": ["DCA", "SWING", "DCA", "CHANNEL"],
    "symbol": ["ETH", "SOL", "BTC", "PEPE"],
    "entry_time": [START + H, START - 5 * H, START - 48 * H, START - H],
    "exit_time": [START + 2 * H, START + 3 * H, START - 24 * H, END],  # T3 closed before; T4 at the end: inside
    "exit_reason": ["take_profit", "stop_loss", "take_profit", "stop_loss"],
    "size_usd": [100.0, 300.0, 1000.0, 100.0],
    "pnl_usd": [10.0, -6.0, 500.0, -2.0],
    "outcome": ["WIN", "LOSS", "WIN", "LOSS"],
})
POSITIONS = pd.DataFrame({
    "trade_group_id": ["P1", "P2"], "strategy": ["SWING", "DCA"], "symbol": ["DOGE", "LINK"],
    "entry_time": [START + 4 * H, START - 2 * H], "filled_usd": [200.0, 50.0], "unrealised_usd": [-4.0, 1.0],
})


def test_window_pnl_is_size_weighted():
    p = window_pnl(CLOSED, POSITIONS, START, END)
    # T1, T2, T4: Σ pnl 2 over Σ size 500 = +0.4 % (the mean of their percentages would be +0.67 %)
    assert (p.closed_trades, p.wins, p.realised_usd, p.realised_size_usd) == (3, 1, 2.0, 500.0)
    assert p.realised_pct == pytest.approx(0.004, abs=1e-18)
    assert (p.open_positions, p.unrealised_usd, p.open_size_usd) == (2, -3.0, 250.0)
    assert p.unrealised_pct == pytest.approx(-0.012, abs=1e-18)
    since = window_pnl(CLOSED, POSITIONS, START - 30 * H)  # no upper bound: T3 too
    assert (since.closed_trades, since.realised_usd, since.realised_size_usd) == (4, 502.0, 1500.0)
    empty = window_pnl(CLOSED.iloc[:0], POSITIONS.iloc[:0], START, END)
    assert empty.closed_trades == 0 and math.isnan(empty.realised_pct) and math.isnan(empty.unrealised_pct)


def test_exits_by_reason():
    ex = exits_by_reason(CLOSED, START, END)
    assert ex["exit_reason"].tolist() == ["stop_loss", "take_profit"]
    assert ex["trades"].tolist() == [2, 1] and ex["wins"].tolist() == [0, 1]
    assert ex["pnl_usd"].tolist() == [-8.0, 10.0] and ex["size_usd"].tolist() == [400.0, 100.0]
    assert ex["pnl_pct"].tolist() == pytest.approx([-0.02, 0.1])


def test_entries_into_the_move_with_their_pnl_now():
    e = entries_into(CLOSED, POSITIONS, START, END)
    assert e["trade_group_id"].tolist() == ["T1", "P1"]
    assert e["state"].tolist() == ["take_profit", "open"]
    assert e["size_usd"].tolist() == [100.0, 200.0] and e["pnl_usd"].tolist() == [10.0, -4.0]
    assert e["pnl_pct"].tolist() == pytest.approx([0.1, -0.02])
    assert entries_into(CLOSED, POSITIONS, END + H, END + 2 * H).empty
