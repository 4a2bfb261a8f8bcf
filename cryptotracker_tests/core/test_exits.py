"""Golden bar-by-bar cases of the exit rules (SPEC §5.2, §6) and the DCA grid (§4).

Each single-level case runs through the batch simulator (default block and block=1, so the coarse block pass is
exercised on tiny inputs) and through the per-bar stepper, and is checked against numbers computed by hand. Prices
and rates are binary fractions (64, 0.125, 1/32, …) so the hand-computed values are exact in float64.
"""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cryptotracker_assets.core.exits import (
    Bar,
    BarArrays,
    ExitReason,
    ExitRule,
    PositionState,
    SimulationInputError,
    close_position,
    entry_fee,
    entry_fill,
    exit_fee,
    exit_fill,
    net_pnl,
    pnl_ratio,
    simulate_exits,
    slippage_cost,
    step,
)

ROOT = Path(__file__).resolve().parents[2]
T0 = pd.Timestamp("2024-01-01T00:00:00Z")
MIN = pd.Timedelta(minutes=1)
ENGINES = ["batch", "batch_block1", "stepper"]


def t(minute: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(minutes=minute)


def make_bars(rows, symbol: str = "X") -> pd.DataFrame:
    """rows: (minute, open, high, low, close)."""
    return pd.DataFrame(
        {
            "symbol": symbol,
            "timestamp": [t(r[0]) for r in rows],
            "open": [float(r[1]) for r in rows],
            "high": [float(r[2]) for r in rows],
            "low": [float(r[3]) for r in rows],
            "close": [float(r[4]) for r in rows],
            "volume": 1.0,
        }
    )


def make_entry(**kw) -> dict:
    e = dict(
        entry_id="e1",
        symbol="X",
        entry_time=T0,
        size_usd=1000.0,
        take_profit=0.0,
        stop_loss=0.0,
        trailing=0.0,
        trail_activation=0.0,
        max_hold_minutes=0.0,
        fee=0.0,
        slippage=0.0,
    )
    e.update(kw)
    return e


def run(engine: str, bars: pd.DataFrame, entries: list[dict], bar_minutes: float = 1.0) -> list[dict]:
    """Trades as dicts (entry order) from one of the engines."""
    edf = pd.DataFrame(entries)
    if engine != "stepper":
        block = 1 if engine == "batch_block1" else 64
        return simulate_exits(bars, edf, bar_minutes, block=block).to_dict("records")
    out = []
    for e in entries:
        sb = bars[bars["symbol"] == e["symbol"]].sort_values("timestamp")
        sb = sb[sb["timestamp"] >= e["entry_time"]]
        if sb.empty:
            continue
        rows = list(sb.itertuples(index=False))
        rule = ExitRule(e["take_profit"], e["stop_loss"], e["trailing"], e["trail_activation"], e["max_hold_minutes"])
        st = PositionState.open(
            rows[0].timestamp, rows[0].open, e["size_usd"], rule, e["fee"], e["slippage"], bar_minutes
        )
        ev = None
        for r in rows:
            ev = step(st, Bar(r.timestamp, r.open, r.high, r.low, r.close))
            if ev is not None:
                break
        if ev is None:
            last = bars[bars["symbol"] == e["symbol"]].sort_values("timestamp").iloc[-1]
            ev = close_position(st, last.timestamp, last.close, ExitReason.END_OF_DATA)
        out.append(
            dict(
                entry_id=e["entry_id"],
                symbol=e["symbol"],
                entry_time=st.entry_time,
                entry_price=st.avg_entry,
                exit_time=ev.time,
                exit_price=ev.fill_price,
                exit_reason=ev.reason.value,
                quantity=ev.quantity,
                fees_usd=ev.fees_usd,
                pnl_usd=ev.pnl_usd,
                pnl_ratio=ev.pnl_ratio,
            )
        )
    return out


def one(engine, bars, bar_minutes=1.0, **entry_kw) -> dict:
    trades = run(engine, bars, [make_entry(**entry_kw)], bar_minutes)
    assert len(trades) == 1
    return trades[0]


def check(tr: dict, reason: str, minute: float, price: float, pnl: float, qty: float = 15.625, fees: float = 0.0):
    assert tr["exit_reason"] == reason
    assert tr["exit_time"] == t(minute)
    assert tr["exit_price"] == price
    assert tr["quantity"] == qty
    assert tr["fees_usd"] == fees
    assert tr["pnl_usd"] == pnl
    assert tr["pnl_ratio"] == pnl / 1000.0


# A = 64 (no slippage), qty = 1000 / 64 = 15.625; static stop sl 0.125 → 56; take profit 0.25 → 80.
STATIC = dict(take_profit=0.25, stop_loss=0.125)
FLAT = (64, 66, 63, 65)


@pytest.mark.parametrize("engine", ENGINES)
class TestGolden:
    def test_gap_below_stop_fills_at_open(self, engine):
        tr = one(engine, make_bars([(0, *FLAT), (1, 52, 58, 50, 55)]), **STATIC)
        check(tr, "stop_loss", 1, 52.0, 15.625 * 52 - 1000)  # -187.5

    def test_stop_touched_fills_at_stop(self, engine):
        tr = one(engine, make_bars([(0, *FLAT), (1, 60, 61, 55, 57)]), **STATIC)
        check(tr, "stop_loss", 1, 56.0, -125.0)

    def test_stop_touched_at_equality(self, engine):
        tr = one(engine, make_bars([(0, *FLAT), (1, 60, 61, 56, 57), (2, 60, 61, 59, 60)]), **STATIC)
        check(tr, "stop_loss", 1, 56.0, -125.0)

    def test_low_just_above_stop_does_not_fire(self, engine):
        tr = one(engine, make_bars([(0, *FLAT), (1, 60, 61, 56.0000001, 57), (2, 60, 61, 59, 60)]), **STATIC)
        check(tr, "end_of_data", 2, 60.0, -62.5)

    def test_open_equal_to_stop_fills_at_open(self, engine):
        tr = one(engine, make_bars([(0, *FLAT), (1, 56, 60, 54, 57)]), **STATIC)
        check(tr, "stop_loss", 1, 56.0, -125.0)

    def test_stop_and_tp_in_one_bar_stop_wins(self, engine):
        tr = one(engine, make_bars([(0, *FLAT), (1, 64, 81, 55, 70)]), **STATIC)
        check(tr, "stop_loss", 1, 56.0, -125.0)

    def test_gap_above_tp_fills_at_open(self, engine):
        tr = one(engine, make_bars([(0, *FLAT), (1, 84, 90, 83, 85)]), **STATIC)
        check(tr, "take_profit", 1, 84.0, 312.5)

    def test_tp_touched_at_equality_fills_at_tp(self, engine):
        tr = one(engine, make_bars([(0, *FLAT), (1, 66, 80, 65, 79)]), **STATIC)
        check(tr, "take_profit", 1, 80.0, 250.0)

    def test_high_just_below_tp_does_not_fire(self, engine):
        tr = one(engine, make_bars([(0, *FLAT), (1, 66, 79.99999, 65, 79)]), **STATIC)
        check(tr, "end_of_data", 1, 79.0, 15.625 * 79 - 1000)

    def test_exits_checked_on_the_entry_bar(self, engine):
        tr = one(engine, make_bars([(0, 64, 65, 55, 60), (1, *FLAT)]), **STATIC)
        check(tr, "stop_loss", 0, 56.0, -125.0)

    # Trail: sl 0.25 → S = 48, trailing 0.125, activation 0.125 → arms when H >= 72.
    def test_trail_arms_exactly_at_activation_level(self, engine):
        bars = make_bars([(0, 64, 72, 63, 70), (1, 70, 71, 62, 65)])
        tr = one(engine, bars, stop_loss=0.25, trailing=0.125, trail_activation=0.125)
        # H = 72 ≥ 72 armed; L = 72 × 0.875 = 63 > 48; low 62 ≤ 63 → fill at 63.
        check(tr, "trailing_stop", 1, 63.0, 15.625 * 63 - 1000)  # -15.625

    def test_trail_not_armed_just_below_activation(self, engine):
        bars = make_bars([(0, 64, 71.99999, 63, 70), (1, 70, 71, 62, 65)])
        tr = one(engine, bars, stop_loss=0.25, trailing=0.125, trail_activation=0.125)
        check(tr, "end_of_data", 1, 65.0, 15.625 * 65 - 1000)

    def test_trail_fires_on_the_bar_after_the_peak_never_on_the_peak_bar(self, engine):
        # activation 0: armed from the entry bar with H = A = 64 → L = 56. The entry bar's own high 80 would give
        # L = 70 ≥ its low 64, but a bar's high enters H only after that bar's checks.
        bars = make_bars([(0, 64, 80, 64, 75), (1, 75, 76, 69, 72)])
        tr = one(engine, bars, stop_loss=0.25, trailing=0.125, trail_activation=0.0)
        check(tr, "trailing_stop", 1, 70.0, 93.75)

    def test_trail_with_zero_activation_is_armed_on_the_entry_bar(self, engine):
        tr = one(engine, make_bars([(0, 64, 64, 55, 60), (1, *FLAT)]), stop_loss=0.25, trailing=0.125)
        check(tr, "trailing_stop", 0, 56.0, -125.0)

    def test_armed_trail_gap_fills_at_open(self, engine):
        bars = make_bars([(0, 64, 80, 64, 75), (1, 66, 67, 60, 61)])
        tr = one(engine, bars, stop_loss=0.25, trailing=0.125, trail_activation=0.0)
        check(tr, "trailing_stop", 1, 66.0, 15.625 * 66 - 1000)  # 31.25

    def test_armed_trail_below_static_stop_is_labelled_stop_loss(self, engine):
        # trailing 0.25 → L = 48 < S = 56: the effective stop is the static stop.
        tr = one(engine, make_bars([(0, *FLAT), (1, 60, 61, 55, 57)]), stop_loss=0.125, trailing=0.25)
        check(tr, "stop_loss", 1, 56.0, -125.0)

    def test_armed_trail_equal_to_static_stop_is_labelled_stop_loss(self, engine):
        # entry bar high 64 → H = 64, L = 64 × 0.875 = 56 = S: not above the static stop
        tr = one(engine, make_bars([(0, 64, 64, 63, 64), (1, 60, 61, 55, 57)]), stop_loss=0.125, trailing=0.125)
        check(tr, "stop_loss", 1, 56.0, -125.0)

    def test_armed_trail_just_above_static_stop_is_labelled_trailing_stop(self, engine):
        # entry bar high 66 → L = 66 × 0.875 = 57.75 > 56 → the trail is the effective stop
        tr = one(engine, make_bars([(0, *FLAT), (1, 60, 61, 55, 57)]), stop_loss=0.125, trailing=0.125)
        check(tr, "trailing_stop", 1, 57.75, 15.625 * 57.75 - 1000)

    def test_trail_without_static_stop(self, engine):
        bars = make_bars([(0, 64, 80, 64, 75), (1, 75, 76, 69, 72)])
        tr = one(engine, bars, trailing=0.125, trail_activation=0.0)
        check(tr, "trailing_stop", 1, 70.0, 93.75)

    # Time exit: max hold 3 min with 1m bars → first bar whose open + 1 min ≥ E + 3 min is the 00:02 bar.
    def test_time_exit_at_the_boundary_bar(self, engine):
        bars = make_bars([(0, *FLAT), (1, *FLAT), (2, 64, 67, 63, 66), (3, 64, 80, 40, 70)])
        tr = one(engine, bars, max_hold_minutes=3.0, **STATIC)
        check(tr, "time_exit", 2, 66.0, 31.25)

    def test_stop_beats_time_exit_on_the_boundary_bar(self, engine):
        bars = make_bars([(0, *FLAT), (1, *FLAT), (2, 64, 67, 50, 66)])
        tr = one(engine, bars, max_hold_minutes=3.0, **STATIC)
        check(tr, "stop_loss", 2, 56.0, -125.0)

    def test_time_exit_on_the_entry_bar_when_hold_equals_bar_length(self, engine):
        tr = one(engine, make_bars([(0, *FLAT), (1, *FLAT)]), max_hold_minutes=1.0)
        check(tr, "time_exit", 0, 65.0, 15.625)

    def test_time_exit_uses_the_bar_length(self, engine):
        # 5m bars, hold 10 min: the 00:05 bar ends at E + 10 min.
        bars = make_bars([(0, *FLAT), (5, 64, 66, 62, 62), (10, *FLAT)])
        tr = one(engine, bars, bar_minutes=5.0, max_hold_minutes=10.0)
        check(tr, "time_exit", 5, 62.0, -31.25)

    def test_end_of_data_at_the_last_close(self, engine):
        bars = make_bars([(0, *FLAT), (1, 65, 70, 60, 68), (2, 68, 70, 66, 67)])
        tr = one(engine, bars, max_hold_minutes=60.0, **STATIC)
        check(tr, "end_of_data", 2, 67.0, 46.875)

    def test_missing_bars_next_real_open_decides_the_stop(self, engine):
        bars = make_bars([(0, *FLAT), (1, *FLAT), (10, 52, 53, 50, 51)])
        tr = one(engine, bars, **STATIC)
        check(tr, "stop_loss", 10, 52.0, -187.5)

    def test_missing_bars_next_real_open_decides_the_take_profit(self, engine):
        bars = make_bars([(0, *FLAT), (10, 84, 85, 83, 84)])
        tr = one(engine, bars, **STATIC)
        check(tr, "take_profit", 10, 84.0, 312.5)

    def test_missing_bars_are_not_synthesised_for_the_time_exit(self, engine):
        # hold 3: bars 00:02–00:05 are missing; the time exit is at the close of the next real bar (00:06),
        # not at a synthetic flat bar carrying the 00:01 close.
        bars = make_bars([(0, *FLAT), (1, 64, 66, 60, 60), (6, 66, 68, 65, 67)])
        tr = one(engine, bars, max_hold_minutes=3.0, **STATIC)
        check(tr, "time_exit", 6, 67.0, 46.875)

    def test_trail_over_a_gap_uses_the_high_before_the_gap(self, engine):
        bars = make_bars([(0, 64, 80, 64, 75), (30, 71, 72, 69.5, 70)])
        tr = one(engine, bars, trailing=0.125, trail_activation=0.125)
        # H = 80 ≥ 72 armed, L = 70; the 00:30 bar's open 71 > 70, low 69.5 ≤ 70 → 70.
        check(tr, "trailing_stop", 30, 70.0, 93.75)

    def test_zero_fee_and_slippage(self, engine):
        tr = one(engine, make_bars([(0, *FLAT), (1, 66, 80, 65, 79)]), **STATIC)
        assert tr["entry_price"] == 64.0
        assert tr["fees_usd"] == 0.0
        assert tr["pnl_usd"] == tr["quantity"] * (80.0 - 64.0)

    def test_fee_and_slippage(self, engine):
        # slip 1/32 → A = 64 × 1.03125 = 66; size 1056 → qty 16; TP 0.25 → 82.5; exit fill 82.5 × 0.96875.
        bars = make_bars([(0, *FLAT), (1, 70, 83, 69, 80)])
        tr = one(engine, bars, size_usd=1056.0, take_profit=0.25, fee=1 / 64, slippage=1 / 32)
        assert tr["entry_price"] == 66.0
        assert tr["exit_reason"] == "take_profit"
        assert tr["exit_price"] == 79.921875
        assert tr["quantity"] == 16.0
        # entry fee 1056/64 = 16.5; exit fee 16 × 79.921875 / 64 = 19.98046875
        assert tr["fees_usd"] == 36.48046875
        assert tr["pnl_usd"] == 1278.75 - 1056 - 16.5 - 19.98046875  # 186.26953125
        assert tr["pnl_ratio"] == 186.26953125 / 1056

    def test_slippage_moves_the_levels(self, engine):
        # A = 66 with slip 1/32: stop 0.125 → 57.75 (not 56); a low of 57 fires at 57.75 → fill 57.75 × 0.96875.
        bars = make_bars([(0, *FLAT), (1, 60, 61, 57, 58)])
        tr = one(engine, bars, size_usd=1056.0, stop_loss=0.125, slippage=1 / 32)
        assert (tr["exit_reason"], tr["exit_price"]) == ("stop_loss", 55.9453125)
        assert tr["pnl_usd"] == 16 * 55.9453125 - 1056

    def test_all_exits_disabled(self, engine):
        bars = make_bars([(0, *FLAT), (1, 1, 1000, 0.5, 500), (2, 900, 1000, 1, 2), (3, 3, 32, 2, 32)])
        tr = one(engine, bars)
        check(tr, "end_of_data", 3, 32.0, -500.0)

    def test_realistic_decimal_rates(self, engine, cfg):
        # SWING large cap with the tier's costs; expectations are the SPEC formulas written out.
        rule = ExitRule.from_config(cfg, "SWING", "large_cap")
        fee, slip = cfg.costs.taker_fee, cfg.costs.slippage.large_cap
        a = 100.0 * (1 + slip)
        tp = a * (1 + rule.take_profit)
        bars = make_bars([(0, 100, 101, 99.5, 100.5), (1, 100.5, tp, 100, 104)])
        tr = one(
            engine,
            bars,
            take_profit=rule.take_profit,
            stop_loss=rule.stop_loss,
            trailing=rule.trailing,
            trail_activation=rule.trail_activation,
            max_hold_minutes=rule.max_hold_minutes,
            fee=fee,
            slippage=slip,
        )
        qty = 1000.0 / a
        xf = tp * (1 - slip)
        assert (tr["exit_reason"], tr["exit_time"], tr["entry_price"]) == ("take_profit", t(1), a)
        assert tr["exit_price"] == xf
        assert tr["pnl_usd"] == qty * xf - 1000.0 - 1000.0 * fee - qty * xf * fee


@pytest.mark.parametrize("engine", ENGINES)
def test_entry_at_first_bar_at_or_after_entry_time(engine):
    bars = make_bars([(0, *FLAT), (5, 80, 81, 79, 80), (6, 80, 81, 79, 81)])
    trades = run(
        engine,
        bars,
        [
            make_entry(entry_id="a", entry_time=t(0.5)),
            make_entry(entry_id="b", entry_time=t(5)),
            make_entry(entry_id="late", entry_time=t(6.01)),
        ],
    )
    assert [(x["entry_id"], x["entry_time"], x["entry_price"]) for x in trades] == [
        ("a", t(5), 80.0),
        ("b", t(5), 80.0),
    ]
    assert all(x["exit_reason"] == "end_of_data" and x["exit_time"] == t(6) for x in trades)


@pytest.mark.parametrize("engine", ENGINES)
def test_symbols_do_not_leak(engine):
    bars = pd.concat(
        [
            make_bars([(0, *FLAT), (1, 64, 65, 63, 64.5)], "X"),
            make_bars([(0, 10, 11, 9, 10), (1, 10, 11, 1, 2), (9, 3, 3, 3, 3)], "Y"),
        ]
    ).sample(frac=1.0, random_state=1)  # unsorted input
    trades = run(engine, bars, [make_entry(entry_id="x", symbol="X", **STATIC), make_entry(entry_id="y", symbol="Y")])
    x, y = trades
    assert (x["exit_reason"], x["exit_time"], x["exit_price"]) == ("end_of_data", t(1), 64.5)
    assert (y["exit_reason"], y["exit_time"], y["exit_price"]) == ("end_of_data", t(9), 3.0)


@pytest.mark.parametrize("block", [1, 2, 3, 64])
def test_long_path_crosses_many_blocks(block):
    # 300 flat bars, then a touch of the stop: exercises coarse skipping and the exact high-water carry.
    rows = [(i, 64, 65 + (i == 100) * 7, 63, 64) for i in range(300)] + [(300, 64, 64, 62, 63)]
    bars = make_bars(rows)
    tr = simulate_exits(
        bars, pd.DataFrame([make_entry(stop_loss=0.25, trailing=0.125, trail_activation=0.125)]), 1, block=block
    )
    # H = 72 after bar 100 (activation 72 reached) → L = 63; bar 101 low 63 ≤ 63 fires at 63.
    r = tr.iloc[0]
    assert (r.exit_reason, r.exit_time, r.exit_price) == ("trailing_stop", t(101), 63.0)


def test_modal_bar_length_is_the_default():
    # 5m bars with one 15m gap: hold 10 min exits at the 00:05 bar (with 1m it would be 00:10 … 00:25).
    bars = make_bars([(0, *FLAT), (5, 64, 66, 62, 62), (10, *FLAT), (25, *FLAT), (30, *FLAT)])
    tr = simulate_exits(bars, pd.DataFrame([make_entry(max_hold_minutes=10.0)]))
    assert (tr.iloc[0].exit_reason, tr.iloc[0].exit_time) == ("time_exit", t(5))
    assert BarArrays.from_frame(bars).modal_spacing_ns() == 5 * 60 * 10**9


def test_output_columns_and_types():
    bars = make_bars([(0, *FLAT), (1, 66, 80, 65, 79)])
    tr = simulate_exits(bars, pd.DataFrame([make_entry(**STATIC)]), 1)
    assert list(tr.columns) == [
        "entry_id",
        "symbol",
        "entry_time",
        "entry_price",
        "exit_time",
        "exit_price",
        "exit_reason",
        "quantity",
        "fees_usd",
        "pnl_usd",
        "pnl_ratio",
    ]
    assert str(tr["entry_time"].dt.tz) == "UTC" and str(tr["exit_time"].dt.tz) == "UTC"


@pytest.mark.parametrize(
    "change, column, row",
    [
        (lambda b, e: (b.drop(columns="low"), e), "low", None),
        (lambda b, e: (b, e.drop(columns="trailing")), "trailing", None),
        (lambda b, e: (b, e.assign(symbol=["X", "Z"])), "symbol", 2),
        (lambda b, e: (b, e.assign(size_usd=[10.0, -1.0])), "size_usd", 2),
        (lambda b, e: (b, e.assign(stop_loss=[0.1, -0.1])), "stop_loss", 2),
        (lambda b, e: (b, e.assign(entry_id=["a", "a"])), "entry_id", 2),
        (lambda b, e: (b.assign(timestamp=b["timestamp"].dt.tz_localize(None)), e), "timestamp", 1),
        (lambda b, e: (b.assign(timestamp=b["timestamp"].dt.tz_convert("Europe/London")), e), "timestamp", 1),
        (lambda b, e: (b, e.assign(entry_time=e["entry_time"].dt.tz_convert("Asia/Tokyo"))), "entry_time", 1),
        (lambda b, e: (b.assign(open=[64.0, float("nan")]), e), "open", 2),
        (lambda b, e: (pd.concat([b, b.iloc[[0]]]), e), "timestamp", 3),
    ],
)
def test_bad_input_names_row_and_column(change, column, row):
    bars = make_bars([(0, *FLAT), (1, *FLAT)])
    entries = pd.DataFrame([make_entry(entry_id="a"), make_entry(entry_id="b")])
    b, e = change(bars, entries)
    with pytest.raises(SimulationInputError) as info:
        simulate_exits(b, e, 1)
    assert info.value.column == column
    assert info.value.row == row


# --- costs -------------------------------------------------------------------------------------------------------


def test_cost_functions():
    assert entry_fill(64.0, 1 / 32) == 66.0
    assert exit_fill(64.0, 1 / 32) == 62.0
    assert entry_fee(1024.0, 1 / 64) == 16.0
    assert exit_fee(16.0, 62.0, 1 / 64) == 15.5
    assert net_pnl(16.0, 62.0, 1056.0, 16.5, 15.5) == 992.0 - 1056.0 - 16.5 - 15.5
    assert pnl_ratio(-96.0, 1056.0) == -96.0 / 1056.0
    assert slippage_cost(62.0, 64.0, 16.0) == 32.0


def test_exit_reason_enum_is_complete_and_strict():
    assert [r.value for r in ExitReason] == [
        "stop_loss",
        "trailing_stop",
        "take_profit",
        "time_exit",
        "strategy_shift_big_loss",
        "strategy_shift_moderate_loss",
        "strategy_shift_flat",
        "strategy_shift_stale_win",
        "manual",
        "end_of_data",
    ]
    assert ExitReason.parse("manual") is ExitReason.MANUAL
    with pytest.raises(ValueError, match="unknown exit_reason"):
        ExitReason.parse("tp")


# --- stepper: DCA grid (SPEC §4), closes, guards --------------------------------------------------------------------


def dca(levels=3, spacing=0.25, size=3072.0, fee=0.0, slip=0.0, **rule):
    r = dict(take_profit=0.25, stop_loss=0.625, trailing=0.125, trail_activation=0.125, max_hold_minutes=0.0)
    r.update(rule)
    return PositionState.open(T0, 64.0, size, ExitRule(**r), fee, slip, 1.0, levels=levels, spacing=spacing)


def test_dca_grid_levels_and_level_zero():
    st = dca()
    assert st.level_size == 1024.0
    assert st.grid_prices == (48.0, 32.0)  # 64 × (1 − 0.25·i)
    assert [(f.level, f.fill_price, f.quantity, f.fill_kind) for f in st.fills] == [(0, 64.0, 16.0, "MARKET")]
    assert (st.avg_entry, st.take_profit_price, st.stop_price, st.activation_price) == (64.0, 80.0, 24.0, 72.0)


def test_dca_fill_at_level_price_then_levels_from_the_average():
    st = dca()
    assert step(st, Bar(t(0), 64, 66, 60, 62)) is None
    assert st.high_water == 66.0
    assert step(st, Bar(t(1), 50, 51, 47, 49)) is None  # P1 = 48 ≤ open 50 → fills at 48
    assert [(f.level, f.fill_price, f.fill_kind, f.slippage_usd) for f in st.fills][1] == (1, 48.0, "LIMIT", 0.0)
    q = 16.0 + 1024.0 / 48.0
    a = 2048.0 / q
    assert st.quantity == q and st.avg_entry == a
    assert st.take_profit_price == a * (1 + 0.25)
    assert st.stop_price == a * (1 - 0.625)
    assert st.activation_price == a * (1 + 0.125)
    assert st.high_water == a  # reset to A, the 00:01 high does not count


def test_dca_gap_fills_several_levels_at_the_open():
    st = dca()
    step(st, Bar(t(0), 64, 66, 60, 62))
    step(st, Bar(t(1), 30, 31, 29, 30))  # open 30 below P1 = 48 and P2 = 32 → both fill at 30
    assert [(f.level, f.fill_price) for f in st.fills] == [(0, 64.0), (1, 30.0), (2, 30.0)]
    q = math.fsum([16.0, 1024.0 / 30.0, 1024.0 / 30.0])
    assert st.quantity == q and st.avg_entry == 3072.0 / q


def test_dca_fill_resets_high_water_so_old_highs_never_arm_the_trail():
    # 2 levels: g = 1024, P1 = 48; trailing 0.5, activation 0.125 → armed once H ≥ 72.
    st = dca(levels=2, size=2048.0, trailing=0.5)
    assert step(st, Bar(t(0), 64, 72, 60, 70)) is None  # H = 72: armed from the next bar, L = 36
    assert step(st, Bar(t(1), 50, 51, 47, 49)) is None  # 47 > 36: no stop; P1 = 48 fills at 48
    a = 2048.0 / (16.0 + 1024.0 / 48.0)
    assert st.avg_entry == a and st.high_water == a < st.activation_price == a * 1.125
    # With the old H = 72 the trail (36) would fire on a low of 30; after the reset only S = A × 0.375 applies.
    assert step(st, Bar(t(2), 49, 50, 30, 45)) is None
    assert st.is_open and st.high_water == a  # max(A, 50) = A
    eff, static, trail = st.levels_in_force()
    assert trail is None and eff == static == a * (1 - 0.625)


def test_dca_armed_trail_closes_before_the_grid_fills():
    st = dca()  # trailing 0.125: L = 63 once H ≥ 72
    step(st, Bar(t(0), 64, 72, 60, 70))
    ev = step(st, Bar(t(1), 50, 51, 47, 49))  # open 50 ≤ 63 → trailing stop at the open; P1 never fills
    assert (ev.reason, ev.raw_price, len(st.fills)) == (ExitReason.TRAILING_STOP, 50.0, 1)
    assert ev.trail_price == 63.0 and ev.high_water == 72.0


def test_dca_exit_is_evaluated_before_fills():
    st = dca(stop_loss=0.5)  # S = 32 = P2
    ev = step(st, Bar(t(0), 32, 33, 30, 31))  # open 32 ≤ S → stop at the open; no level fills
    assert ev.reason is ExitReason.STOP_LOSS and ev.raw_price == 32.0 and len(st.fills) == 1
    assert ev.pnl_usd == 16.0 * 32.0 - 1024.0


def test_dca_take_profit_pnl_over_filled_levels():
    fee = 1 / 64
    st = dca(fee=fee, slip=1 / 32, size=3 * 1056.0, take_profit=0.125)
    # F0 = 66, g = 1056, q0 = 16; P1 = 66 × 0.75 = 49.5, P2 = 33
    assert st.grid_prices == (49.5, 33.0)
    step(st, Bar(t(0), 50, 51, 49.5, 50))  # low 49.5 ≤ P1 → fill at min(49.5, 50) = 49.5
    q = 16.0 + 1056.0 / 49.5
    a = 2112.0 / q
    tp = a * (1 + 0.125)
    ev = step(st, Bar(t(1), 55, 70, 54, 60))
    assert ev.reason is ExitReason.TAKE_PROFIT and ev.raw_price == tp
    xf = tp * (1 - 1 / 32)
    fees_in = 1056.0 * fee + 1056.0 * fee
    assert ev.fill_price == xf and ev.quantity == q and ev.size_usd == 2112.0
    assert ev.entry_fees_usd == fees_in and ev.exit_fee_usd == q * xf * fee
    assert ev.pnl_usd == q * xf - 2112.0 - fees_in - q * xf * fee
    assert ev.pnl_ratio == ev.pnl_usd / 2112.0


def test_dca_max_hold_counts_from_entry():
    st = dca(max_hold_minutes=3.0)
    step(st, Bar(t(0), 64, 66, 60, 62))
    step(st, Bar(t(1), 50, 51, 47, 49))  # a fill does not restart the clock
    ev = step(st, Bar(t(2), 49, 50, 48, 49.5))
    assert ev.reason is ExitReason.TIME_EXIT and ev.time == t(2) and ev.raw_price == 49.5


def test_manual_and_strategy_shift_closes_use_the_same_costs():
    st = PositionState.open(T0, 64.0, 1056.0, ExitRule(0.25, 0.125, 0, 0, 0), 1 / 64, 1 / 32, 1.0)
    step(st, Bar(t(0), 64, 66, 63, 65))
    ev = close_position(st, t(3), 64.0, ExitReason.STRATEGY_SHIFT_FLAT)
    assert ev.fill_price == 62.0 and ev.exit_fee_usd == 16 * 62.0 / 64
    assert ev.pnl_usd == 16 * 62.0 - 1056.0 - 16.5 - 15.5
    assert ev.time == t(3) and not st.is_open
    with pytest.raises(ValueError, match="already closed"):
        step(st, Bar(t(4), 64, 66, 63, 65))


def test_no_data_close_flag():
    st = PositionState.open(T0, 64.0, 1000.0, ExitRule(0, 0, 0, 0, 60), 0.0, 0.0, 1.0)
    ev = close_position(st, t(125), 70.0, ExitReason.TIME_EXIT, no_data=True)
    assert ev.no_data and ev.reason is ExitReason.TIME_EXIT and ev.pnl_usd == 15.625 * 70 - 1000


def test_stepper_rejects_out_of_order_and_naive_bars():
    st = PositionState.open(T0, 64.0, 1000.0, ExitRule(0, 0, 0, 0, 0), 0.0, 0.0, 1.0)
    step(st, Bar(t(1), 64, 65, 63, 64))
    with pytest.raises(ValueError, match="out of order"):
        step(st, Bar(t(1), 64, 65, 63, 64))
    with pytest.raises(ValueError, match="UTC"):
        step(st, Bar(pd.Timestamp("2024-01-01T00:05:00"), 64, 65, 63, 64))


def test_exit_rule_from_config(cfg):
    r = ExitRule.from_config(cfg, "DCA", "memecoin")
    p = cfg.exits.params("DCA", "memecoin")
    assert r.take_profit == p.take_profit * cfg.exits.tp_multiplier.dca
    assert (r.stop_loss, r.trailing, r.trail_activation) == (p.stop_loss, p.trail, p.trail_activation)
    assert r.max_hold_minutes == cfg.exits.max_hold_h * 60
    widened = dataclasses.replace(r, stop_loss=0.2)
    assert widened.stop_loss == 0.2


def test_core_module_never_imports_dagster():
    code = "import sys, cryptotracker_assets.core.exits; sys.exit(1 if any(m.split('.')[0] == 'dagster' for m in sys.modules) else 0)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0
