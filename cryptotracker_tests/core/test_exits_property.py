"""Property test: the batch simulator and the stepper against a deliberately simple loop (SPEC §5.2, §6).

The reference below is written from the SPEC text alone (Python floats, pandas Timestamps, one bar at a time) and
shares no code with ``core/exits.py``. Bars are random with gaps, dojis and gap-downs on a 1/8 price grid, and many
rates are binary fractions, so levels often land exactly on bar prices (the ≤ / ≥ boundaries).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cryptotracker_assets.core.exits import (
    Bar,
    ExitReason,
    ExitRule,
    PositionState,
    close_position,
    simulate_exits,
    step,
)

T0 = pd.Timestamp("2024-03-01T00:00:00Z")
REL = 1e-12


def reference(bars: list[tuple], e: dict, bar_len: pd.Timedelta) -> dict | None:
    """bars: chronological (time, open, high, low, close) of the entry's symbol."""
    k = next((i for i, b in enumerate(bars) if b[0] >= e["entry_time"]), None)
    if k is None:
        return None
    start_time = bars[k][0]
    slip, fee, size = e["slippage"], e["fee"], e["size_usd"]
    avg = bars[k][1] * (1 + slip)
    tp = avg * (1 + e["take_profit"]) if e["take_profit"] > 0 else None
    static = avg * (1 - e["stop_loss"]) if e["stop_loss"] > 0 else None
    activation = avg * (1 + e["trail_activation"])
    hold = pd.Timedelta(minutes=e["max_hold_minutes"])
    high_water = avg
    result = None
    for when, o, h, lo, c in bars[k:]:
        trail = None
        if e["trailing"] > 0 and high_water >= activation:
            trail = high_water * (1 - e["trailing"])
        stops = [x for x in (static, trail) if x is not None]
        if stops:
            stop = max(stops)
            label = "trailing_stop" if trail is not None and (static is None or trail > static) else "stop_loss"
            if o <= stop:
                result = (when, o, label)
                break
            if lo <= stop:
                result = (when, stop, label)
                break
        if tp is not None:
            if o >= tp:
                result = (when, o, "take_profit")
                break
            if h >= tp:
                result = (when, tp, "take_profit")
                break
        if e["max_hold_minutes"] > 0 and when + bar_len >= start_time + hold:
            result = (when, c, "time_exit")
            break
        if h > high_water:
            high_water = h
    if result is None:
        result = (bars[-1][0], bars[-1][4], "end_of_data")
    when, raw, reason = result
    qty = size / avg
    sell = raw * (1 - slip)
    fees = size * fee + qty * sell * fee
    pnl = qty * sell - size - fees
    return dict(
        entry_time=start_time,
        entry_price=avg,
        exit_time=when,
        exit_price=sell,
        exit_reason=reason,
        quantity=qty,
        fees_usd=fees,
        pnl_usd=pnl,
    )


@st.composite
def bar_series(draw, symbol: str):
    n = draw(st.integers(1, 40))
    minute = draw(st.integers(0, 3))
    close = draw(st.integers(400, 600))  # eighths
    rows = []
    for _ in range(n):
        kind = draw(st.sampled_from(["walk", "walk", "walk", "doji", "gap_down", "gap_up"]))
        if kind == "gap_down":
            o = close - draw(st.integers(8, 120))
        elif kind == "gap_up":
            o = close + draw(st.integers(8, 120))
        else:
            o = close + draw(st.integers(-2, 2))
        o = max(o, 16)
        if kind == "doji":
            c = h = lo = o
        else:
            c = max(o + draw(st.integers(-40, 40)), 8)
            h = max(o, c) + draw(st.sampled_from([0, 0, 1, 4, 16, 60]))
            lo = max(min(o, c) - draw(st.sampled_from([0, 0, 1, 4, 16, 60])), 1)
        rows.append((T0 + pd.Timedelta(minutes=minute), o / 8, h / 8, lo / 8, c / 8))
        close = c
        minute += draw(st.sampled_from([1, 1, 1, 1, 1, 2, 3, 7]))
    return {"symbol": symbol, "rows": rows}


RATES_TP = [0.0, 0.0625, 0.125, 0.25, 0.05, 0.02]
RATES_SL = [0.0, 0.0625, 0.125, 0.25, 0.5, 0.04]
RATES_TRAIL = [0.0, 0.0625, 0.125, 0.25, 0.025]
RATES_ACT = [0.0, 0.0625, 0.125, 0.025, 0.25]


@st.composite
def scenario(draw):
    series = [draw(bar_series("A"))]
    if draw(st.booleans()):
        series.append(draw(bar_series("B")))
    n_entries = draw(st.integers(1, 6))
    entries = []
    for i in range(n_entries):
        s = draw(st.sampled_from(series))
        last = (s["rows"][-1][0] - T0) // pd.Timedelta(seconds=1)
        sec = draw(st.integers(-120, int(last) + 120))
        entries.append(
            dict(
                entry_id=f"e{i}",
                symbol=s["symbol"],
                entry_time=T0 + pd.Timedelta(seconds=sec - sec % draw(st.sampled_from([60, 60, 1]))),
                size_usd=draw(st.sampled_from([1000.0, 100.0, 12.5])),
                take_profit=draw(st.sampled_from(RATES_TP)),
                stop_loss=draw(st.sampled_from(RATES_SL)),
                trailing=draw(st.sampled_from(RATES_TRAIL)),
                trail_activation=draw(st.sampled_from(RATES_ACT)),
                max_hold_minutes=float(draw(st.sampled_from([0, 1, 2, 3, 5, 10, 30]))),
                fee=draw(st.sampled_from([0.0, 0.003])),
                slippage=draw(st.sampled_from([0.0, 0.0, 0.0015, 1 / 32])),
            )
        )
    bar_minutes = draw(st.sampled_from([1.0, 1.0, 2.0]))
    return series, entries, bar_minutes


def close_rel(a: float, b: float, scale: float) -> bool:
    return abs(a - b) <= REL * max(abs(a), abs(b), scale)


def frame(series) -> pd.DataFrame:
    recs = [(s["symbol"], *r) for s in series for r in s["rows"]]
    df = pd.DataFrame(recs, columns=["symbol", "timestamp", "open", "high", "low", "close"])
    df["volume"] = 1.0
    return df


def run_stepper(rows, e, bar_minutes):
    k = next((i for i, b in enumerate(rows) if b[0] >= e["entry_time"]), None)
    if k is None:
        return None
    rule = ExitRule(e["take_profit"], e["stop_loss"], e["trailing"], e["trail_activation"], e["max_hold_minutes"])
    state = PositionState.open(rows[k][0], rows[k][1], e["size_usd"], rule, e["fee"], e["slippage"], bar_minutes)
    for r in rows[k:]:
        ev = step(state, Bar(*r))
        if ev is not None:
            return ev
    return close_position(state, rows[-1][0], rows[-1][4], ExitReason.END_OF_DATA)


@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(scenario(), st.sampled_from([1, 2, 3, 64]))
def test_batch_and_stepper_match_the_simple_loop(case, block):
    series, entries, bar_minutes = case
    bars = frame(series)
    by_symbol = {s["symbol"]: s["rows"] for s in series}
    got = simulate_exits(bars.sample(frac=1.0, random_state=0), pd.DataFrame(entries), bar_minutes, block=block)
    got = {r["entry_id"]: r for r in got.to_dict("records")}
    bar_len = pd.Timedelta(minutes=bar_minutes)
    for e in entries:
        want = reference(by_symbol[e["symbol"]], e, bar_len)
        if want is None:
            assert e["entry_id"] not in got
            continue
        g = got[e["entry_id"]]
        assert (g["exit_reason"], g["entry_time"], g["exit_time"]) == (
            want["exit_reason"],
            want["entry_time"],
            want["exit_time"],
        ), e
        for col in ("entry_price", "exit_price", "quantity"):
            assert close_rel(g[col], want[col], 0.0), (col, e)
        for col in ("fees_usd", "pnl_usd"):
            assert close_rel(g[col], want[col], e["size_usd"]), (col, e)
        # The stepper agrees with the batch simulator exactly on single-level positions.
        ev = run_stepper(by_symbol[e["symbol"]], e, bar_minutes)
        assert (ev.reason.value, ev.time) == (g["exit_reason"], g["exit_time"])
        assert (ev.fill_price, ev.quantity, ev.fees_usd, ev.pnl_usd, ev.pnl_ratio) == (
            g["exit_price"],
            g["quantity"],
            g["fees_usd"],
            g["pnl_usd"],
            g["pnl_ratio"],
        )


def test_long_random_walk_matches_the_simple_loop():
    """Production block size on long paths (coarse skipping over many blocks), seeded."""
    rng = np.random.default_rng(7)
    series = []
    for sym, sigma in (("A", 0.0008), ("B", 0.002), ("C", 0.004)):
        n = 6000
        minutes = np.cumsum(rng.choice([1, 1, 1, 1, 1, 1, 2, 5], n))
        close = 100 * np.exp(np.cumsum(rng.normal(0, sigma, n)))
        opens = np.r_[100.0, close[:-1]] * np.where(rng.random(n) < 0.01, np.exp(rng.normal(0, 10 * sigma, n)), 1.0)
        high = np.maximum(opens, close) * np.exp(np.abs(rng.normal(0, sigma, n)))
        low = np.minimum(opens, close) * np.exp(-np.abs(rng.normal(0, sigma, n)))
        rows = [
            (T0 + pd.Timedelta(minutes=int(m)), float(o), float(h), float(lo), float(c))
            for m, o, h, lo, c in zip(minutes, opens, high, low, close, strict=True)
        ]
        series.append({"symbol": sym, "rows": rows})
    entries = []
    for i in range(240):
        s = series[i % 3]
        entries.append(
            dict(
                entry_id=f"e{i}",
                symbol=s["symbol"],
                entry_time=s["rows"][int(rng.integers(0, 5500))][0] - pd.Timedelta(seconds=int(rng.integers(0, 90))),
                size_usd=100.0,
                take_profit=float(rng.choice([0.0, 0.02, 0.05, 0.15])),
                stop_loss=float(rng.choice([0.0, 0.02, 0.04, 0.11])),
                trailing=float(rng.choice([0.0, 0.005, 0.025, 0.06])),
                trail_activation=float(rng.choice([0.0, 0.01, 0.025, 0.05])),
                max_hold_minutes=float(rng.choice([0, 60, 1440, 4320])),
                fee=0.003,
                slippage=float(rng.choice([0.0015, 0.0075])),
            )
        )
    got = simulate_exits(frame(series), pd.DataFrame(entries), 1.0)
    got = {r["entry_id"]: r for r in got.to_dict("records")}
    by_symbol = {s["symbol"]: s["rows"] for s in series}
    reasons = set()
    for e in entries:
        want = reference(by_symbol[e["symbol"]], e, pd.Timedelta(minutes=1))
        g = got[e["entry_id"]]
        reasons.add(want["exit_reason"])
        assert (g["exit_reason"], g["exit_time"]) == (want["exit_reason"], want["exit_time"]), e
        assert close_rel(g["exit_price"], want["exit_price"], 0.0)
        assert close_rel(g["pnl_usd"], want["pnl_usd"], e["size_usd"])
    assert reasons == {"stop_loss", "trailing_stop", "take_profit", "time_exit", "end_of_data"}
    assert math.isfinite(sum(g["pnl_usd"] for g in got.values()))
