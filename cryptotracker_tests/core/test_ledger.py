"""Ledger rows, derived positions/trades, the portfolio state and the execution checks (SPEC §0.3, §4, §5.3, §6, §7).

Positions are produced by the real stepper (``cryptotracker_assets.core.exits``); expected numbers are computed by hand
in each test from the config values (which the test pins first) with plain arithmetic, never with the code under test.
"""

from __future__ import annotations

import hashlib
import math
import re
import subprocess
import sys

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cryptotracker_assets.core.config import Strategy, build_config, merge, raw_dict
from cryptotracker_assets.core.exits import Bar, ExitReason, ExitRule, PositionState, close_position, step
from cryptotracker_assets.core.ledger import (
    LEDGER_COLUMNS,
    LEDGER_DTYPES,
    ExecutionReason,
    FillKind,
    LedgerError,
    OpenCounts,
    PendingOrder,
    PortfolioState,
    Side,
    TradeMeta,
    TradeOutcome,
    admit,
    append_rows,
    apply_order,
    check_execution,
    check_ledger,
    closed_trade_records,
    closed_trades,
    empty_ledger,
    ledger_frame,
    limit_violations,
    open_counts,
    open_positions,
    performance,
    portfolio_state,
    scan_id,
    snapshot_row,
    step_rows,
    trade_group_id,
)
from cryptotracker_assets.core.universe import Universe

E = pd.Timestamp("2024-01-01T12:00:00Z")
MIN = pd.Timedelta(minutes=1)


def variant(cfg, override):
    return build_config(merge(raw_dict(cfg), override), source="test variant")


def next_cycle_point(cfg, t: pd.Timestamp) -> pd.Timestamp:
    """First cycle point strictly after bar open t: the tick that sees the bar."""
    step_ = pd.Timedelta(minutes=cfg.engine.cycle_min)
    return t.floor(step_) + step_


def run_position(cfg, strategy, symbol, entry, bars, size=50.0, manual=None):
    """Open at the first bar's open and step the bars; rows written after every event like the engine.

    bars: (minute offset from entry, open, high, low, close). manual: (time, raw price) for an operator close.
    """
    tier = Universe.from_config(cfg).tier(symbol)
    rule = ExitRule.from_config(cfg, strategy, tier)
    levels, spacing = (1, 0.0)
    if strategy is Strategy.DCA:
        levels, spacing = cfg.strategies.dca.grid.levels.of(tier), cfg.strategies.dca.grid.spacing.of(tier)
    fee, slip = cfg.costs.taker_fee, cfg.costs.slippage.of(tier)
    state = PositionState.open(entry, bars[0][1], size, rule, fee, slip, 1.0, levels=levels, spacing=spacing)
    meta = TradeMeta.for_entry(cfg, strategy, symbol, entry, scan_id(strategy, symbol, entry - 5 * MIN), size)
    rows = step_rows(state, meta, next_cycle_point(cfg, entry), 0)
    n = len(state.fills)
    for m, o, h, lo, c in bars:
        t = entry + m * MIN
        ev = step(state, Bar(t, o, h, lo, c))
        rows += step_rows(state, meta, next_cycle_point(cfg, t), n)
        n = len(state.fills)
        if ev is not None:
            break
    if manual is not None and state.is_open:
        close_position(state, manual[0], manual[1], ExitReason.MANUAL)
        rows += step_rows(state, meta, manual[0], n)
    return state, rows, meta


# --- identifiers (SPEC §0.3, I-13) ---------------------------------------------------------------------------------


def test_trade_group_id_literal_from_sha1sum():
    # printf '%s' 'SWING|SOL|2025-08-28T12:15:00Z' | sha1sum → 0a9a390e…  (SPEC's example hash "3f9a" is illustrative)
    assert trade_group_id(Strategy.SWING, "SOL", pd.Timestamp("2025-08-28T12:15:00Z")) == "SWING_SOL_250828121500_0a9a"
    # printf '%s' 'DCA|BTC|2024-01-01T12:00:00Z' | sha1sum → 8a743137…
    assert trade_group_id("DCA", "BTC", E) == "DCA_BTC_240101120000_8a74"
    # printf '%s' 'CHANNEL|FARTCOIN|2025-12-31T23:59:00Z' | sha1sum → 6ae29f0b…
    tgid = trade_group_id(Strategy.CHANNEL, "FARTCOIN", pd.Timestamp("2025-12-31T23:59:00Z"))
    assert tgid == "CHANNEL_FARTCOIN_251231235900_6ae2" and len(tgid) == 34


def test_trade_group_id_every_universe_symbol_and_strategy(cfg):
    symbols = Universe.from_config(cfg).symbols
    assert len(symbols) == len(set(symbols)) >= 97
    t = pd.Timestamp("2026-02-28T23:59:59Z")
    for strategy in Strategy:
        for symbol in symbols:
            tgid = trade_group_id(strategy, symbol, t)
            text = f"{strategy.value}|{symbol}|2026-02-28T23:59:59Z"
            assert tgid == f"{strategy.value}_{symbol}_260228235959_{hashlib.sha1(text.encode()).hexdigest()[:4]}"
            assert len(tgid) <= 36
            assert re.fullmatch(r"(DCA|SWING|CHANNEL)_[A-Z0-9]+_\d{12}_[0-9a-f]{4}", tgid)
    longest = max(len(trade_group_id(Strategy.CHANNEL, s, t)) for s in symbols)
    assert longest == len("CHANNEL_FARTCOIN_260228235959_xxxx") == 34


def test_trade_group_id_length_limit_and_strict_inputs():
    ok = trade_group_id(Strategy.CHANNEL, "ABCDEFGHIJ", E)  # 10-character symbol: exactly 36
    assert len(ok) == 36
    with pytest.raises(ValueError, match="36"):
        trade_group_id(Strategy.CHANNEL, "ABCDEFGHIJK", E)
    assert len(trade_group_id(Strategy.DCA, "ABCDEFGHIJKLMN", E)) == 36  # DCA leaves room for 14
    with pytest.raises(ValueError, match="36"):
        trade_group_id(Strategy.DCA, "ABCDEFGHIJKLMNO", E)
    with pytest.raises(ValueError, match="UTC"):
        trade_group_id(Strategy.DCA, "BTC", pd.Timestamp("2024-01-01T12:00:00"))
    with pytest.raises(ValueError, match="UTC"):
        trade_group_id(Strategy.DCA, "BTC", pd.Timestamp("2024-01-01T12:00:00", tz="Europe/Paris"))
    with pytest.raises(ValueError, match="whole second"):
        trade_group_id(Strategy.DCA, "BTC", E + pd.Timedelta(milliseconds=1))
    for bad in ("dca", "LONG", ""):
        with pytest.raises(ValueError, match="unknown strategy"):
            trade_group_id(bad, "BTC", E)
    with pytest.raises(ValueError, match="invalid symbol"):
        trade_group_id(Strategy.DCA, "BT_C", E)
    # a non-UTC zone with zero offset is accepted and gives the same id
    assert trade_group_id("DCA", "BTC", E.tz_convert("Etc/UTC")) == "DCA_BTC_240101120000_8a74"


def test_scan_id_format():
    assert scan_id(Strategy.DCA, "PEPE", pd.Timestamp("2025-08-28T12:15:00Z")) == "DCA_PEPE_2508281215"
    with pytest.raises(ValueError, match="whole minute"):
        scan_id(Strategy.DCA, "PEPE", pd.Timestamp("2025-08-28T12:15:30Z"))


def test_ledger_and_protection_import_no_dagster():
    code = (
        "import sys, cryptotracker_assets.core.ledger, cryptotracker_assets.core.protection;"
        "print(any(m.startswith('dagster') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_enums_parse_strictly():
    assert Side.parse("BUY") is Side.BUY and FillKind.parse("LIMIT") is FillKind.LIMIT
    assert TradeOutcome.parse("LOSS") is TradeOutcome.LOSS
    for enum, bad in ((Side, "buy"), (FillKind, "market"), (TradeOutcome, "TIMEOUT"), (ExecutionReason, "full")):
        with pytest.raises(ValueError, match="unknown"):
            enum.parse(bad)
    assert TradeOutcome.of(0.0) is TradeOutcome.LOSS and TradeOutcome.of(1e-300) is TradeOutcome.WIN


# --- rows of a DCA grid (SPEC §4, §5.3, §6) ------------------------------------------------------------------------

DCA_BARS = [
    (0, 100.0, 100.5, 99.5, 100.0),  # entry bar: F0 = 100.15, no level reached
    (1, 99.0, 99.0, 98.0, 98.2),  # low 98 ≤ P1 = 98.147 → level 1 at 98.147
    (2, 97.0, 97.0, 96.0, 96.5),  # low 96 ≤ P2 = 96.144 → level 2 at 96.144
    (3, 98.0, 103.0, 97.5, 102.5),  # high 103 ≥ TP = 1.04 A ≈ 102.04 → take profit at TP
]


def pin_large_cap_dca(cfg):
    """The hand computations below assume these config values."""
    p = cfg.exits.params(Strategy.DCA, "large_cap")
    assert (cfg.costs.taker_fee, cfg.costs.slippage.large_cap) == (0.003, 0.0015)
    assert (cfg.strategies.dca.grid.levels.large_cap, cfg.strategies.dca.grid.spacing.large_cap) == (3, 0.02)
    assert (p.take_profit, p.stop_loss, cfg.exits.tp_multiplier.dca) == (0.04, 0.06, 1.0)
    assert cfg.portfolio.initial_balance_usd == 10000 and cfg.portfolio.reserve == 0.20


def test_dca_grid_three_fills_then_take_profit_rows(cfg):
    pin_large_cap_dca(cfg)
    state, rows, meta = run_position(cfg, Strategy.DCA, "BTC", E, DCA_BARS)
    ledger = ledger_frame(rows)
    check_ledger(ledger)
    # by hand: G = 50 over 3 levels, g = 50/3; F0 = 100 × 1.0015; P_i = F0 × (1 − 0.02 i)
    g = 50.0 / 3
    f = [100.15, 100.15 * 0.98, 100.15 * 0.96]
    q = [g / x for x in f]
    assert f[1] == pytest.approx(98.147, abs=1e-12) and f[2] == pytest.approx(96.144, abs=1e-12)
    assert list(ledger["side"]) == ["BUY", "BUY", "BUY", "SELL"]
    assert list(ledger["level"]) == [0, 1, 2, -1]
    assert list(ledger["fill_kind"]) == ["MARKET", "LIMIT", "LIMIT", "MARKET"]
    assert set(ledger["trade_group_id"]) == {"DCA_BTC_240101120000_8a74"}
    buys = ledger.iloc[:3]
    assert buys["fill_price"].tolist() == pytest.approx(f, rel=1e-15)
    assert buys["raw_price"].tolist() == pytest.approx([100.0, f[1], f[2]], rel=1e-15)
    assert buys["qty"].tolist() == pytest.approx(q, rel=1e-15)
    assert buys["size_usd"].tolist() == pytest.approx([g] * 3, rel=1e-15)
    assert buys["fee_usd"].tolist() == pytest.approx([0.05] * 3, rel=1e-12)  # g × 0.003
    assert buys["slippage_usd"].tolist() == pytest.approx([0.15 * q[0], 0.0, 0.0], rel=1e-12)
    # levels in force after each fill: A = Σ g / Σ qty, TP = 1.04 A, S = 0.94 A
    a = [100.15, 2 * g / (q[0] + q[1]), 50.0 / sum(q)]
    assert buys["avg_entry"].tolist() == pytest.approx(a, rel=1e-14)
    assert buys["take_profit_price"].tolist() == pytest.approx([x * 1.04 for x in a], rel=1e-14)
    assert buys["stop_price"].tolist() == pytest.approx([x * 0.94 for x in a], rel=1e-14)
    assert a[2] == pytest.approx(98.119745, abs=1e-6)
    # the exit: TP = 1.04 A at 12:03, sold at TP × (1 − 0.0015); proceeds Q × A × 1.04 × 0.9985 = 50 × 1.04 × 0.9985
    sell = ledger.iloc[3]
    qty = sum(q)
    tp = 1.04 * a[2]
    assert sell["exit_reason"] == "take_profit" and sell["bar_time"] == E + 3 * MIN
    assert sell["cycle_point"] == pd.Timestamp("2024-01-01T12:05:00Z")
    assert sell["raw_price"] == pytest.approx(tp, rel=1e-14)
    assert sell["fill_price"] == pytest.approx(tp * 0.9985, rel=1e-14)
    assert sell["qty"] == pytest.approx(qty, rel=1e-15)
    assert sell["fee_usd"] == pytest.approx(51.922 * 0.003, rel=1e-12)  # 50 × 1.04 × 0.9985 = 51.922
    assert sell["slippage_usd"] == pytest.approx(qty * tp * 0.0015, rel=1e-12)
    net = 51.922 * 0.997 - 50.0 - 0.15  # proceeds − Σ g − 3 × 0.05 − exit fee = 1.616234
    assert sell["pnl_usd"] == pytest.approx(1.616234, abs=1e-9) and net == pytest.approx(1.616234, abs=1e-12)
    assert sell["pnl_pct"] == pytest.approx(1.616234 / 50.0, abs=1e-11)
    assert sell["outcome"] == "WIN" and not sell["no_data"] and math.isnan(sell["size_usd"])
    # the ledger records exactly what the stepper produced
    ev = state.exit
    assert (sell["pnl_usd"], sell["pnl_pct"], sell["qty"]) == (ev.pnl_usd, ev.pnl_ratio, ev.quantity)
    # derived closed trade
    ct = closed_trades(ledger).iloc[0]
    assert ct["filled_levels"] == 3 and ct["size_usd"] == pytest.approx(50.0, rel=1e-15)
    assert ct["entry_fees_usd"] == pytest.approx(0.15, rel=1e-12) and ct["pnl_usd"] == sell["pnl_usd"]
    assert ct["pnl_pct"] == ct["pnl_usd"] / ct["size_usd"]
    # after the close: everything realised, no open cost or reservation
    ps = portfolio_state(ledger, [], {}, cfg)
    assert ps.realised == pytest.approx(1.616234, abs=1e-9)
    assert ps.cash == pytest.approx(10001.616234, abs=1e-9) and ps.open_cost == 0.0 and ps.reserved == 0.0
    assert ps.mark_equity == ps.book_equity == ps.cash
    assert ps.deployable == pytest.approx(0.8 * 10001.616234, abs=1e-9)


def test_portfolio_state_mid_grid_with_a_pending_order(cfg):
    pin_large_cap_dca(cfg)
    _, rows, _ = run_position(cfg, Strategy.DCA, "BTC", E, DCA_BARS[:2])  # level 0 and level 1 filled
    ledger = ledger_frame(rows)
    check_ledger(ledger)
    pending = [PendingOrder(Strategy.SWING, "ETH", 50.0, E, "SWING_ETH_2401011200")]
    ps = portfolio_state(ledger, pending, {"BTC": 98.2, "SOL": 1.0}, cfg)
    g = 50.0 / 3
    q = g / 100.15 + g / 98.147
    assert ps.realised == 0.0
    assert ps.open_cost == pytest.approx(2 * g + 0.1, rel=1e-14)  # filled 33.33 + 2 × 0.05 fees
    assert ps.reserved == pytest.approx(g * 1.003 + 50 * 1.003, rel=1e-14)  # unfilled level 2 + the pending G
    assert ps.cash == pytest.approx(10000 - 2 * g - 0.1, rel=1e-14)
    assert ps.available == pytest.approx(10000 - 2 * g - 0.1 - g * 1.003 - 50.15, rel=1e-14)
    pv = q * 98.2 * (1 - 0.0015) * (1 - 0.003)
    assert ps.positions_value == pytest.approx(pv, rel=1e-13)
    assert ps.unrealised == pytest.approx(pv - 2 * g - 0.1, rel=1e-12)
    assert ps.mark_equity == pytest.approx(10000 - 2 * g - 0.1 + pv, rel=1e-14)
    assert ps.book_equity == pytest.approx(10000.0, rel=1e-15)
    assert ps.deployable == pytest.approx(8000.0, rel=1e-15)
    assert ps.committed == {Strategy.DCA: 50.0, Strategy.SWING: 50.0, Strategy.CHANNEL: 0.0}
    assert (ps.open_positions, ps.pending_orders) == (1, 1)
    counts = open_counts(ledger, pending)
    assert (counts.total, counts.symbol("BTC"), counts.symbol("ETH"), counts.strategy("DCA")) == (2, 1, 1, 1)
    pos = open_positions(ledger, {"BTC": 98.2}).iloc[0]
    assert (pos["filled_levels"], pos["grid_levels"], pos["unfilled_levels"]) == (2, 3, 1)
    assert pos["qty"] == pytest.approx(q, rel=1e-15) and pos["avg_entry"] == pytest.approx(2 * g / q, rel=1e-14)
    assert pos["reserved_usd"] == pytest.approx(g * 1.003, rel=1e-14)
    assert pos["unrealised_pct"] == pytest.approx((pv - 2 * g - 0.1) / (2 * g), rel=1e-12)
    snap = snapshot_row(ps, E + 5 * MIN)
    assert snap["equity"] == ps.mark_equity and snap["open_count"] == 1
    with pytest.raises(ValueError, match="no mark"):
        portfolio_state(ledger, [], {"ETH": 1.0}, cfg)


def test_memecoin_swing_stop_loss_uses_memecoin_slippage(cfg):
    p = cfg.exits.params(Strategy.SWING, "memecoin")
    assert cfg.costs.slippage.memecoin == 0.0075 and p.stop_loss == 0.12 and p.trail_activation == 0.08
    bars = [(0, 1.0, 1.01, 0.99, 1.0), (1, 0.95, 0.96, 0.85, 0.9)]  # S = 1.0075 × 0.88 = 0.8866; low 0.85 → stop
    state, rows, _ = run_position(cfg, Strategy.SWING, "PEPE", E, bars)
    ledger = ledger_frame(rows)
    check_ledger(ledger)
    buy, sell = ledger.iloc[0], ledger.iloc[1]
    assert buy["tier"] == "memecoin" and buy["fill_price"] == pytest.approx(1.0075, rel=1e-15)
    assert buy["slippage_usd"] == pytest.approx(0.0075 * 50 / 1.0075, rel=1e-12)
    assert sell["exit_reason"] == "stop_loss" and sell["raw_price"] == pytest.approx(1.0075 * 0.88, rel=1e-15)
    assert sell["fill_price"] == pytest.approx(1.0075 * 0.88 * 0.9925, rel=1e-15)
    # proceeds = (50 / F0) × F0 × 0.88 × 0.9925 = 43.67; net = 43.67 × 0.997 − 50 − 0.15
    assert sell["pnl_usd"] == pytest.approx(43.67 * 0.997 - 50.15, abs=1e-9)
    assert sell["pnl_usd"] == pytest.approx(-6.61101, abs=1e-9)
    assert sell["outcome"] == "LOSS" and sell["stop_price"] == sell["raw_price"]


def test_manual_close_row_and_no_data_flag(cfg):
    t_close = pd.Timestamp("2024-01-01T12:10:00Z")
    bars = [(0, 10.0, 10.01, 9.99, 10.0)]
    state, rows, _ = run_position(cfg, Strategy.CHANNEL, "ETH", E, bars, manual=(t_close, 10.0))
    ledger = ledger_frame(rows)
    check_ledger(ledger)
    sell = ledger.iloc[-1]
    assert sell["exit_reason"] == "manual" and sell["bar_time"] == t_close == sell["cycle_point"]
    # ETH is large_cap (slippage 0.0015): bought at 10.015, sold flat at 10 × 0.9985, less both fees; a loss
    proceeds = 50 / 10.015 * 10 * 0.9985
    assert sell["pnl_usd"] == pytest.approx(proceeds * 0.997 - 50.15, abs=1e-9) and sell["outcome"] == "LOSS"
    st2 = PositionState.open(E, 10.0, 50.0, ExitRule.from_config(cfg, Strategy.SWING, "mid_cap"), 0.003, 0.0025, 1.0)
    meta = TradeMeta.for_entry(cfg, Strategy.SWING, "LINK", E, "SWING_LINK_2401011155", 50.0)
    n = len(st2.fills)
    r0 = step_rows(st2, meta, E + 5 * MIN, 0)
    close_position(st2, E + 80 * 60 * MIN, 11.0, ExitReason.TIME_EXIT, no_data=True)
    sell2 = step_rows(st2, meta, E + 80 * 60 * MIN, n)
    assert len(sell2) == 1 and sell2[0]["no_data"] is True and sell2[0]["exit_reason"] == "time_exit"
    check_ledger(ledger_frame(r0 + sell2))


def test_step_rows_refuses_fills_of_an_earlier_bar(cfg):
    tier = "large_cap"
    rule = ExitRule.from_config(cfg, Strategy.DCA, tier)
    state = PositionState.open(E, 100.0, 50.0, rule, 0.003, 0.0015, 1.0, levels=3, spacing=0.02)
    meta = TradeMeta.for_entry(cfg, Strategy.DCA, "BTC", E, "DCA_BTC_2401011155", 50.0)
    step(state, Bar(E + MIN, 99, 99, 98, 98.2))  # fills level 1
    step(state, Bar(E + 2 * MIN, 98.5, 99, 98.3, 98.6))  # no fill: H changes
    with pytest.raises(ValueError, match="earlier bar"):
        step_rows(state, meta, E + 5 * MIN, 0)
    wrong = TradeMeta.for_entry(cfg, Strategy.DCA, "BTC", E, "DCA_BTC_2401011155", 60.0)
    with pytest.raises(ValueError, match="level size"):
        step_rows(state, wrong, E + 5 * MIN, 3)


# --- idempotency and validation (I-13, I-14) -----------------------------------------------------------------------


def test_append_rows_is_idempotent_and_never_rewrites(cfg):
    _, rows, _ = run_position(cfg, Strategy.DCA, "BTC", E, DCA_BARS)
    once = append_rows(empty_ledger(), rows)
    twice = append_rows(once, rows)
    pd.testing.assert_frame_equal(once, twice)
    assert len(once) == 4 and list(once.columns) == list(LEDGER_COLUMNS)
    assert {c: str(d) for c, d in once.dtypes.items()} == LEDGER_DTYPES
    partial = append_rows(empty_ledger(), rows[:2])
    pd.testing.assert_frame_equal(append_rows(partial, rows), once)
    changed = dict(rows[3], pnl_usd=rows[3]["pnl_usd"] + 1.0)
    with pytest.raises(LedgerError, match="different values"):
        append_rows(once, [changed])
    with pytest.raises(LedgerError, match="different values"):
        append_rows(empty_ledger(), [rows[3], changed])


@pytest.mark.parametrize(
    "column,value,match",
    [
        ("pnl_usd", 1.0, "net P&L"),
        ("exit_reason", "stoploss", "unknown exit_reason"),
        ("outcome", "LOSS", "outcome"),
        ("side", "sell", "unknown side"),
        ("tier", "micro_cap", "unknown tier"),
        ("qty", 1.0, "qty"),
        ("trade_group_id", "DCA_BTC_240101120000_0000", "hash"),
    ],
)
def test_check_ledger_rejects_a_tampered_sell_row(cfg, column, value, match):
    _, rows, _ = run_position(cfg, Strategy.DCA, "BTC", E, DCA_BARS)
    rows = [dict(r) for r in rows]
    if column in ("tier", "trade_group_id"):
        for r in rows:
            r[column] = value
    else:
        rows[3][column] = value
    with pytest.raises(LedgerError, match=match):
        check_ledger(ledger_frame(rows))


def test_check_ledger_rejects_bad_levels(cfg):
    _, rows, _ = run_position(cfg, Strategy.DCA, "BTC", E, DCA_BARS)
    with pytest.raises(LedgerError, match="0..k"):
        check_ledger(ledger_frame([rows[0], rows[2], rows[3]]))  # level 1 missing
    with pytest.raises(LedgerError, match="level −1"):
        check_ledger(ledger_frame(rows[:3] + [dict(rows[3], level=-2)]))
    with pytest.raises(LedgerError, match="more than one SELL"):
        check_ledger(ledger_frame(rows + [dict(rows[3], level=-3)]))
    frame = ledger_frame(rows)
    frame["level"] = frame["level"].astype("float64")
    with pytest.raises(LedgerError, match="dtype"):
        check_ledger(frame)


# --- size-weighted aggregates (I-2) --------------------------------------------------------------------------------


def test_performance_is_size_weighted(cfg):
    pin_large_cap_dca(cfg)
    p = cfg.exits.params(Strategy.SWING, "large_cap")
    assert (p.take_profit, p.stop_loss) == (0.05, 0.04)
    # SWING BTC G = 100: take profit at 1.05 A → net = 100 × 1.05 × 0.9985 × 0.997 − 100.3
    tp_bars = [(0, 100, 100.1, 99.9, 100), (1, 101, 106, 100.5, 105)]
    _, r1, _ = run_position(cfg, Strategy.SWING, "BTC", E, tp_bars, 100.0)
    # SWING ETH G = 10: stop at 0.96 A → net = 10 × 0.96 × 0.9985 × 0.997 − 10.03
    _, r2, _ = run_position(cfg, Strategy.SWING, "ETH", E, [(0, 100, 100.1, 99.9, 100), (1, 99, 99, 95, 96)], 10.0)
    # an open one: SOL G = 50 at 100, marked at 101
    _, r3, _ = run_position(cfg, Strategy.SWING, "SOL", E, [(0, 100, 100.1, 99.9, 100)], 50.0)
    ledger = ledger_frame(r1 + r2 + r3)
    check_ledger(ledger)
    win = 100 * 1.05 * 0.9985 * 0.997 - 100.3
    loss = 10 * 0.96 * 0.9985 * 0.997 - 10.03
    perf = performance(ledger, {"SOL": 101.0}, cfg)
    assert (perf.closed_trades, perf.wins, perf.losses, perf.open_positions) == (2, 1, 1, 1)
    assert perf.realised_usd == pytest.approx(win + loss, abs=1e-9)
    assert perf.realised_size_usd == pytest.approx(110.0, rel=1e-15)
    assert perf.realised_pct == pytest.approx((win + loss) / 110.0, rel=1e-9)
    assert perf.realised_pct != pytest.approx((win / 100 + loss / 10) / 2, rel=1e-3)  # not a mean of percentages
    unreal = 50 / 100.15 * 101 * 0.9985 * 0.997 - 50.15
    assert perf.unrealised_usd == pytest.approx(unreal, abs=1e-9)
    assert perf.unrealised_pct == pytest.approx(unreal / 50.0, rel=1e-9)
    assert perf.win_rate == 0.5
    recs = closed_trade_records(ledger)
    assert [r.symbol for r in recs] == ["BTC", "ETH"]  # same exit time → ordered by trade_group_id
    assert recs[1].outcome is TradeOutcome.LOSS and recs[0].exit_reason is ExitReason.TAKE_PROFIT


# --- execution checks (SPEC §7.2) ----------------------------------------------------------------------------------


def hand_state(available=5000.0, deployable=8000.0, committed=None, cash=None):
    committed = {Strategy.DCA: 0.0, Strategy.SWING: 0.0, Strategy.CHANNEL: 0.0, **(committed or {})}
    cash = available if cash is None else cash
    return PortfolioState(
        initial=10000.0,
        realised=0.0,
        open_cost=0.0,
        reserved=cash - available,
        cash=cash,
        available=available,
        book_equity=deployable / 0.8,
        positions_value=0.0,
        unrealised=0.0,
        mark_equity=cash,
        deployable=deployable,
        committed=committed,
        open_positions=0,
        pending_orders=0,
    )


def counts_of(total=0, strategy=None, symbol=None):
    return OpenCounts(total, {Strategy.DCA: strategy or 0}, {"BTC": symbol or 0})


def test_execution_checks_in_priority_order(cfg):
    lim = cfg.limits
    assert (lim.max_open_per_symbol, lim.max_open_total, lim.max_open_per_strategy) == (1, 80, 40)
    worst = hand_state(available=10.0, committed={Strategy.DCA: 3200.0})
    args = ("DCA", "BTC", 50.0, cfg)
    assert check_execution(worst, counts_of(80, 40, 1), *args) is ExecutionReason.SYMBOL_OPEN
    assert check_execution(worst, counts_of(80, 40, 0), *args) is ExecutionReason.PORTFOLIO_FULL
    assert check_execution(worst, counts_of(79, 40, 0), *args) is ExecutionReason.STRATEGY_FULL
    assert check_execution(worst, counts_of(79, 39, 0), *args) is ExecutionReason.ALLOCATION_EXHAUSTED
    assert check_execution(hand_state(available=10.0), counts_of(79, 39, 0), *args) is ExecutionReason.INSUFFICIENT_CASH
    assert check_execution(hand_state(), counts_of(79, 39, 0), *args) is None
    with pytest.raises(ValueError, match="size_usd"):
        check_execution(hand_state(), counts_of(), "DCA", "BTC", 0.0, cfg)


def test_allocation_boundary_at_equality(cfg):
    assert cfg.portfolio.allocation.dca == 0.40 and 0.40 * 8000.0 == 3200.0
    at = hand_state(committed={Strategy.DCA: 3150.0})  # 3150 + 50 = 3200 = 0.40 × 8000: allowed
    assert check_execution(at, counts_of(), "DCA", "BTC", 50.0, cfg) is None
    above = hand_state(committed={Strategy.DCA: math.nextafter(3150.0, math.inf)})
    assert check_execution(above, counts_of(), "DCA", "BTC", 50.0, cfg) is ExecutionReason.ALLOCATION_EXHAUSTED
    # the SWING allocation is its own: 0.30 × 8000 = 2400
    swing_at = hand_state(committed={Strategy.SWING: 2350.0})
    assert check_execution(swing_at, counts_of(), "SWING", "BTC", 50.0, cfg) is None
    full = hand_state(committed={Strategy.SWING: 2350.5})
    assert check_execution(full, counts_of(), "SWING", "BTC", 50.0, cfg) is ExecutionReason.ALLOCATION_EXHAUSTED


def test_cash_boundaries_at_equality(cfg):
    assert cfg.limits.max_position_cash_fraction == 0.5
    # G ≤ 0.5 × available binds at available = 100 (50 × 1.003 = 50.15 fits)
    assert check_execution(hand_state(available=100.0), counts_of(), "DCA", "BTC", 50.0, cfg) is None
    low = hand_state(available=math.nextafter(100.0, 0.0))
    assert check_execution(low, counts_of(), "DCA", "BTC", 50.0, cfg) is ExecutionReason.INSUFFICIENT_CASH
    # with the fraction at 1 the fee part binds: G × (1 + 0.003) = 50.15 (in float64: 50.14999999999999)
    loose = variant(cfg, {"limits": {"max_position_cash_fraction": 1.0}})
    edge = 50.0 * 1.003
    assert check_execution(hand_state(available=edge), counts_of(), "DCA", "BTC", 50.0, loose) is None
    short = hand_state(available=math.nextafter(edge, 0.0))
    assert check_execution(short, counts_of(), "DCA", "BTC", 50.0, loose) is ExecutionReason.INSUFFICIENT_CASH


def test_apply_order_matches_recomputing_with_the_order_pending(cfg):
    _, rows, _ = run_position(cfg, Strategy.DCA, "BTC", E, DCA_BARS[:2])
    ledger = ledger_frame(rows)
    marks = {"BTC": 98.2}
    ps, counts = portfolio_state(ledger, [], marks, cfg), open_counts(ledger)
    order = PendingOrder(Strategy.CHANNEL, "ETH", 50.0, E, "CHANNEL_ETH_2401011200")
    reason, ps2, counts2 = admit(ps, counts, order, cfg)
    assert reason is None
    fresh = portfolio_state(ledger, [order], marks, cfg)
    for name in ("reserved", "available", "cash", "book_equity", "mark_equity", "deployable"):
        assert getattr(ps2, name) == pytest.approx(getattr(fresh, name), rel=1e-15, abs=1e-12), name
    assert ps2.committed == fresh.committed and ps2.pending_orders == fresh.pending_orders == 1
    assert counts2 == open_counts(ledger, [order])
    # a rejected order leaves both unchanged
    again = PendingOrder(Strategy.SWING, "ETH", 50.0, E, "SWING_ETH_2401011200")
    reason, ps3, counts3 = admit(ps2, counts2, again, cfg)
    assert reason is ExecutionReason.SYMBOL_OPEN and ps3 is ps2 and counts3 is counts2
    assert apply_order(ps, counts, order, cfg)[0] == ps2


# --- I-3: limits never exceeded when everything signals -------------------------------------------------------------


def signal_everything(cfg, ledger, pending, marks, t, strategies=tuple(Strategy)):
    """Every active symbol × strategy signals at T; candidates in strategy order, then universe order."""
    ps, counts = portfolio_state(ledger, pending, marks, cfg), open_counts(ledger, pending)
    reasons, accepted = {}, []
    for s in strategies:
        for sym in Universe.from_config(cfg).active_symbols:
            order = PendingOrder(s, sym, cfg.portfolio.position_size_usd, t, scan_id(s, sym, t))
            reason, ps, counts = admit(ps, counts, order, cfg)
            reasons[(s, sym)] = reason
            if reason is None:
                accepted.append(order)
            assert not limit_violations(counts, cfg)
    assert counts == open_counts(ledger, list(pending) + accepted)
    return reasons, accepted


def fill_orders(cfg, orders, t):
    """The pending orders fill at the entry bar open (price 100) at t: level-0 rows."""
    rows = []
    for o in orders:
        _, r, _ = run_position(cfg, o.strategy, o.symbol, t, [(0, 100.0, 100.0, 100.0, 100.0)], o.size_usd)
        rows += r
    return rows


def test_limits_never_exceeded_when_every_symbol_and_strategy_signals(cfg):
    active = Universe.from_config(cfg).active_symbols
    assert len(active) == 97 and cfg.portfolio.position_size_usd == 50
    t1 = pd.Timestamp("2024-01-01T12:00:00Z")
    reasons, accepted = signal_everything(cfg, empty_ledger(), [], {}, t1)
    # by hand: DCA takes the first 40 symbols, then strategy_full; SWING the next 40, then portfolio_full
    dca = [reasons[(Strategy.DCA, s)] for s in active]
    swing = [reasons[(Strategy.SWING, s)] for s in active]
    channel = [reasons[(Strategy.CHANNEL, s)] for s in active]
    assert dca == [None] * 40 + [ExecutionReason.STRATEGY_FULL] * 57
    assert swing == [ExecutionReason.SYMBOL_OPEN] * 40 + [None] * 40 + [ExecutionReason.PORTFOLIO_FULL] * 17
    assert channel == [ExecutionReason.SYMBOL_OPEN] * 80 + [ExecutionReason.PORTFOLIO_FULL] * 17
    assert len(accepted) == 80
    # the next cycle points: the orders have filled, everything signals again: nothing more opens
    ledger = ledger_frame(fill_orders(cfg, accepted, t1))
    marks = {s: 100.0 for s in active}
    for k in range(1, 4):
        reasons, more = signal_everything(cfg, ledger, [], marks, t1 + k * 5 * MIN)
        assert more == [] and set(reasons.values()) == {ExecutionReason.SYMBOL_OPEN, ExecutionReason.PORTFOLIO_FULL}
    # five DCA positions close manually: the freed slots go to DCA on the first free symbols, in universe order
    t2 = t1 + 20 * MIN
    rows = []
    for o in accepted[:5]:
        _, r, _ = run_position(cfg, o.strategy, o.symbol, t1, [(0, 100.0, 100.0, 100.0, 100.0)], manual=(t2, 100.0))
        rows += r
    ledger = append_rows(ledger, rows)
    reasons, more = signal_everything(cfg, ledger, [], marks, t2 + 5 * MIN)
    assert [(o.strategy, o.symbol) for o in more] == [(Strategy.DCA, s) for s in active[:5]]
    check_ledger(ledger)


def test_allocation_binds_with_a_small_balance(cfg):
    small = variant(cfg, {"portfolio": {"initial_balance_usd": 1000.0}})
    # deployable = 0.8 × 1000 = 800: DCA 0.40 × 800 = 320 → 6 × 50; SWING and CHANNEL 0.30 × 800 = 240 → 4 × 50
    reasons, accepted = signal_everything(small, empty_ledger(), [], {}, E)
    by = {s: [o for o in accepted if o.strategy is s] for s in Strategy}
    assert [len(by[s]) for s in (Strategy.DCA, Strategy.SWING, Strategy.CHANNEL)] == [6, 4, 4]
    active = Universe.from_config(small).active_symbols
    assert reasons[(Strategy.DCA, active[6])] is ExecutionReason.ALLOCATION_EXHAUSTED
    # 14 × 50.15 = 702.1 reserved of 1000; every committed(s) stays within its allocation × deployable
    ps = portfolio_state(empty_ledger(), accepted, {}, small)
    assert ps.reserved == pytest.approx(14 * 50.15, rel=1e-12)
    assert ps.available == pytest.approx(1000 - 702.1, rel=1e-12)
    for s in Strategy:
        assert ps.committed[s] <= small.portfolio.allocation.of(s) * ps.deployable


# --- I-4 over random ledgers (hypothesis) --------------------------------------------------------------------------

SYMBOLS = ["BTC", "LINK", "DOGE", "PEPE"]  # one per tier


@st.composite
def random_book(draw):
    positions, ids = [], set()
    for _ in range(draw(st.integers(0, 6))):
        strategy = draw(st.sampled_from(list(Strategy)))
        symbol = draw(st.sampled_from(SYMBOLS))
        size = draw(st.sampled_from([25.0, 50.0, 35.0]))
        start = draw(st.integers(0, 120))
        if (strategy, symbol, start) in ids:  # the same trade_group_id: one group
            continue
        ids.add((strategy, symbol, start))
        moves = draw(st.lists(st.floats(-0.06, 0.06), min_size=1, max_size=40))
        manual = draw(st.booleans())
        positions.append((strategy, symbol, size, start, moves, manual))
    pending = draw(st.lists(st.tuples(st.sampled_from(list(Strategy)), st.sampled_from(SYMBOLS)), max_size=3))
    return positions, pending


def bars_from(moves, price=100.0):
    out = []
    for m, r in enumerate(moves):
        o = price
        c = price * (1 + r)
        out.append((m, o, max(o, c) * 1.002, min(o, c) * 0.998, c))
        price = c
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_book())
def test_i4_portfolio_identities_on_random_ledgers(cfg, book):
    positions, pending_spec = book
    rows, states = [], []
    for strategy, symbol, size, start, moves, manual in positions:
        entry = E + start * MIN
        bars = bars_from(moves)
        man = (next_cycle_point(cfg, entry + len(moves) * MIN), bars[-1][4]) if manual else None
        state, r, _ = run_position(cfg, strategy, symbol, entry, bars, size, manual=man)
        rows += r
        states.append((strategy, symbol, state))
    ledger = append_rows(empty_ledger(), rows)
    check_ledger(ledger)
    marks = {s: 90.0 + 5 * i for i, s in enumerate(SYMBOLS)}
    pending = [PendingOrder(s, sym, 50.0, E, scan_id(s, sym, E)) for s, sym in pending_spec]
    ps = portfolio_state(ledger, pending, marks, cfg)
    initial = cfg.portfolio.initial_balance_usd
    # I-4 identities
    assert ps.cash + ps.open_cost == pytest.approx(initial + ps.realised, abs=1e-9)
    assert ps.book_equity == pytest.approx(initial + ps.realised, abs=1e-9)
    assert ps.mark_equity == pytest.approx(ps.cash + ps.positions_value, abs=1e-9)
    assert ps.mark_equity == pytest.approx(ps.book_equity + ps.unrealised, abs=1e-9)
    assert ps.available == pytest.approx(ps.cash - ps.reserved, abs=1e-9)
    # the same numbers straight from the stepper's states (not from the ledger)
    closed = [s for _, _, s in states if not s.is_open]
    opened = [(strategy, sym, s) for strategy, sym, s in states if s.is_open]
    assert ps.realised == math.fsum(s.exit.pnl_usd for s in closed)
    assert ps.open_cost == pytest.approx(sum(s.filled_usd + s.entry_fees_usd for _, _, s in opened), abs=1e-9)
    fee = cfg.costs.taker_fee
    reserved = sum((len(s.grid_prices) + 1 - len(s.fills)) * s.level_size * (1 + s.fee) for _, _, s in opened)
    assert ps.reserved == pytest.approx(reserved + 50.0 * (1 + fee) * len(pending), abs=1e-9)
    value = sum(s.quantity * marks[sym] * (1 - s.slippage) * (1 - s.fee) for _, sym, s in opened)
    assert ps.positions_value == pytest.approx(value, rel=1e-12, abs=1e-12)
    assert ps.deployable == pytest.approx((1 - cfg.portfolio.reserve) * (initial + ps.realised), rel=1e-12)
    assert (ps.open_positions, ps.pending_orders) == (len(opened), len(pending))
    for s in Strategy:
        g = sum(st_.level_size * (len(st_.grid_prices) + 1) for strategy, _, st_ in opened if strategy is s)
        assert ps.committed[s] == pytest.approx(g + 50.0 * sum(1 for o in pending if o.strategy is s), abs=1e-9)
    # every closed trade's outcome is the sign of its net P&L, and pnl_pct = pnl / Σ filled size
    ct = closed_trades(ledger)
    assert ((ct["pnl_usd"] > 0) == (ct["outcome"] == "WIN")).all()
    assert (ct["pnl_pct"] == ct["pnl_usd"] / ct["size_usd"]).all()

