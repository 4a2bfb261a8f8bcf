"""The trading report's figures (SPEC §12.2) on a hand-built ledger: every expected number below was worked out by
hand from the rows written here (sums of the row values, liquidation value qty × mark × (1 − s) × (1 − fee)), not
by the code under test."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from cryptotracker_assets.core.config import Strategy
from cryptotracker_assets.core.engine import EngineState, OpenPosition
from cryptotracker_assets.core.exits import Bar, ExitRule, PositionState, step
from cryptotracker_assets.core.ledger import TradeMeta, ledger_frame, open_positions, trade_group_id
from cryptotracker_assets.core.reports import (ChampionLine, MarketView, ReportInputs, active_gates, near_levels,
                                               stops_in_force, trading_report)


def t(hhmm: str, day: str = "2026-03-01") -> pd.Timestamp:
    return pd.Timestamp(f"{day} {hhmm}", tz="UTC")


TIERS = {"BTC": "large_cap", "ETH": "large_cap", "SOL": "large_cap", "LINK": "mid_cap", "DOGE": "small_cap"}
SLIP = {"large_cap": 0.0015, "mid_cap": 0.0025, "small_cap": 0.005}


def row(side, strategy, symbol, entry, *, level, cp, bar_time, size=None, qty, fill, fee, slip, tp=None, stop=None,
        group=50.0, levels=1, pnl=None, pct=None, outcome=None, reason=None):
    tier = TIERS[symbol]
    return {
        "trade_group_id": trade_group_id(strategy, symbol, t(entry)), "side": side,
        "fill_kind": "LIMIT" if side == "BUY" and level > 0 else "MARKET", "level": level, "symbol": symbol,
        "tier": tier, "strategy": strategy, "scan_id": f"{strategy}_{symbol}_2603010000", "bar_time": t(bar_time),
        "raw_price": fill, "fill_price": fill, "qty": qty, "size_usd": size, "fee_usd": fee, "slippage_usd": slip,
        "avg_entry": fill, "take_profit_price": tp, "stop_price": stop, "trail_price": None,
        "exit_reason": reason, "pnl_usd": pnl, "pnl_pct": pct, "outcome": outcome, "high_water": None,
        "no_data": False, "config_version": 1, "cycle_point": t(cp), "entry_time": t(entry),
        "group_size_usd": group, "grid_levels": levels, "grid_spacing": 0.0 if levels == 1 else 0.02,
        "take_profit": 0.04, "stop_loss": 0.04, "trailing": 0.02, "trail_activation": 0.02, "max_hold_min": 4320.0,
        "taker_fee": 0.003, "slippage": SLIP[tier],
    }


def buy(strategy, symbol, entry, **kw):
    kw.setdefault("level", 0)
    kw.setdefault("bar_time", entry)
    return row("BUY", strategy, symbol, entry, **kw)


def sell(strategy, symbol, entry, exit_at, cp, *, pnl, pct, fee, slip, qty=1.0, reason="take_profit"):
    return row("SELL", strategy, symbol, entry, level=-1, cp=cp, bar_time=exit_at, qty=qty, fill=1.0, fee=fee,
               slip=slip, pnl=pnl, pct=pct, outcome="WIN" if pnl > 0 else "LOSS", reason=reason)


# Period [12:00, 18:00) on 2026-03-01.
ROWS = [
    # F: CHANNEL SOL, closed at 11:00, before the period: realised before it (cash), not in the period's figures
    buy("CHANNEL", "SOL", "08:00", cp="08:05", size=50.0, qty=0.5, fill=100.0, fee=0.15, slip=0.07),
    sell("CHANNEL", "SOL", "08:00", "11:00", "11:05", pnl=-3.0, pct=-0.06, fee=0.14, slip=0.07, reason="stop_loss"),
    # B: CHANNEL ETH, opened before the period, closed in it: −1.00 on 50
    buy("CHANNEL", "ETH", "09:00", cp="09:05", size=50.0, qty=0.02, fill=2500.0, fee=0.15, slip=0.06),
    sell("CHANNEL", "ETH", "09:00", "13:00", "13:05", pnl=-1.0, pct=-0.02, fee=0.147, slip=0.05, reason="stop_loss"),
    # A: SWING BTC, opened 10:00, closed 14:00: +2.00 on 50
    buy("SWING", "BTC", "10:00", cp="10:05", size=50.0, qty=0.001, fill=50000.0, fee=0.15, slip=0.075),
    sell("SWING", "BTC", "10:00", "14:00", "14:05", pnl=2.0, pct=0.04, fee=0.156, slip=0.08),
    # C: DCA SOL grid, opened 12:30 (in the period), two levels of 25, closed 15:00: +1.50 on 50
    buy("DCA", "SOL", "12:30", cp="12:35", size=25.0, qty=0.25, fill=100.0, fee=0.075, slip=0.0625, group=75.0,
        levels=3),
    buy("DCA", "SOL", "12:30", level=1, bar_time="13:10", cp="13:15", size=25.0, qty=25 / 95, fill=95.0, fee=0.075,
        slip=0.0, group=75.0, levels=3),
    sell("DCA", "SOL", "12:30", "15:00", "15:05", pnl=1.5, pct=0.03, fee=0.149, slip=0.07),
    # E: DCA DOGE, opened 11:00 (before the period), 1 of 3 levels filled, still open
    buy("DCA", "DOGE", "11:00", cp="11:05", size=10.0, qty=100.0, fill=0.1, fee=0.03, slip=0.0005, tp=0.107,
        stop=0.0925, group=30.0, levels=3),
    # D: CHANNEL LINK, opened 13:00 (in the period), still open
    buy("CHANNEL", "LINK", "13:00", cp="13:05", size=50.0, qty=2.5, fill=20.0, fee=0.15, slip=0.05, tp=20.4,
        stop=19.6),
]
MARKS = {"LINK": 20.1, "DOGE": 0.093}
D_ID = trade_group_id("CHANNEL", "LINK", t("13:00"))
E_ID = trade_group_id("DCA", "DOGE", t("11:00"))
A_ID = trade_group_id("SWING", "BTC", t("10:00"))
B_ID = trade_group_id("CHANNEL", "ETH", t("09:00"))


@pytest.fixture()
def ledger():
    return ledger_frame(ROWS)


def report(ledger, cfg, **kw):
    inputs = ReportInputs(ledger=ledger, marks=MARKS, **kw)
    return trading_report(inputs, cfg, kind="EVENING", period_start=t("12:00"), period_end=t("18:00"))


def test_the_period_figures(ledger, cfg):
    r = report(ledger, cfg)
    assert (r.trades_closed, r.trades_opened) == (3, 2)  # A, B, C closed; C, D opened
    assert r.realised_usd == pytest.approx(2.5, abs=1e-12)  # 2 − 1 + 1.5 (F's −3 is before the period)
    assert r.realised_pct == pytest.approx(2.5 / 150, abs=1e-12)  # size-weighted, not (0.04 − 0.02 + 0.03) / 3
    assert r.fees_usd == pytest.approx(0.902, abs=1e-12)  # A 0.306 + B 0.297 + C 0.299
    assert r.slippage_usd == pytest.approx(0.3975, abs=1e-12)  # A 0.155 + B 0.11 + C 0.1325
    lines = {s.strategy: s for s in r.per_strategy}
    assert [s.strategy for s in r.per_strategy] == ["DCA", "SWING", "CHANNEL"]
    assert (lines["DCA"].closed, lines["DCA"].wins, lines["DCA"].losses, lines["DCA"].win_rate) == (1, 1, 0, 1.0)
    assert lines["DCA"].realised_pct == pytest.approx(0.03, abs=1e-12)
    assert (lines["CHANNEL"].wins, lines["CHANNEL"].losses, lines["CHANNEL"].win_rate) == (0, 1, 0.0)
    assert lines["CHANNEL"].realised_usd == pytest.approx(-1.0, abs=1e-12)
    assert lines["SWING"].realised_usd == pytest.approx(2.0, abs=1e-12)
    assert (r.best_trade.trade_group_id, r.best_trade.pnl_usd, r.best_trade.pnl_pct) == (A_ID, 2.0, 0.04)
    assert (r.worst_trade.trade_group_id, r.worst_trade.symbol, r.worst_trade.strategy) == (B_ID, "ETH", "CHANNEL")


def test_the_figures_of_now(ledger, cfg):
    r = report(ledger, cfg)
    # D: 2.5 × 20.1 × 0.9975 × 0.997 = 49.974001875 − 50.15; E: 100 × 0.093 × 0.995 × 0.997 = 9.2257395 − 10.03
    assert r.unrealised_usd == pytest.approx(-0.175998125 - 0.8042605, abs=1e-12)
    assert r.unrealised_pct == pytest.approx((-0.175998125 - 0.8042605) / 60.0, abs=1e-12)
    assert r.cash == pytest.approx(10000 - 0.5 - 60.18, abs=1e-9)  # realised of all time −0.5; open cost 60.18
    assert r.book_equity == pytest.approx(9999.5, abs=1e-9)
    assert r.mark_equity == pytest.approx(9939.32 + 49.974001875 + 9.2257395, abs=1e-9)
    assert (r.open_positions, r.max_open_total) == (2, 80)
    assert [o.trade_group_id for o in r.top_open] == [D_ID, E_ID]  # −0.176 before −0.804
    assert r.top_open[0].to_tp_pct == pytest.approx(20.4 / 20.1 - 1, abs=1e-15)
    assert r.top_open[1].to_tp_pct == pytest.approx(0.107 / 0.093 - 1, abs=1e-15)
    assert (r.top_open[1].mark, r.top_open[1].take_profit_price) == (0.093, 0.107)
    # only E's stop is within 1 %: 0.0925 / 0.093 − 1 = −0.5376 %; D's levels are 1.49 % and 2.49 % away
    assert [(n.trade_group_id, n.level) for n in r.near_level] == [(E_ID, "STOP")]
    assert r.near_level[0].distance_pct == pytest.approx(0.0925 / 0.093 - 1, abs=1e-15)
    assert r.near_level_threshold == 0.01


def test_payload_is_plain_json_with_the_exact_keys(ledger, cfg):
    champions = [ChampionLine("SWING", "swing_202603010900", 0.61)]
    market = MarketView(btc_price=50500.0, btc_period_start=50000.0, btc_period_end=50500.0,
                        regime_row={"regime": "NORMAL", "btc_vol_24h": 0.031})
    p = report(ledger, cfg, market=market, champions=champions).payload()
    assert list(p) == ["report", "period_start", "period_end", "as_of", "catchup_of", "realised_usd", "realised_pct",
                       "trades_opened", "trades_closed", "per_strategy", "fees_usd", "slippage_usd", "best_trade",
                       "worst_trade", "unrealised_usd", "unrealised_pct", "book_equity", "mark_equity", "cash",
                       "open_positions", "max_open_total", "top_open", "near_level", "near_level_threshold",
                       "btc_price", "btc_change_pct", "regime", "vol24h", "ready", "gates", "champions"]
    assert json.loads(json.dumps(p, allow_nan=False)) == p
    assert (p["report"], p["as_of"], p["period_start"]) == ("EVENING", "2026-03-01T18:00:00+00:00",
                                                            "2026-03-01T12:00:00+00:00")
    assert p["btc_change_pct"] == pytest.approx(0.01, abs=1e-15)
    assert (p["regime"], p["vol24h"], p["ready"]) == ("NORMAL", 0.031, {"DCA": 0, "SWING": 0, "CHANNEL": 0})
    assert p["champions"] == [{"strategy": "DCA", "model_id": None, "composite": None},
                              {"strategy": "SWING", "model_id": "swing_202603010900", "composite": 0.61},
                              {"strategy": "CHANNEL", "model_id": None, "composite": None}]
    assert set(p["best_trade"]) == {"trade_group_id", "symbol", "strategy", "pnl_usd", "pnl_pct"}
    assert set(p["near_level"][0]) == {"trade_group_id", "symbol", "strategy", "level", "mark", "level_price",
                                       "distance_pct"}
    assert set(p["top_open"][0]) == {"trade_group_id", "symbol", "strategy", "unrealised_usd", "unrealised_pct",
                                     "mark", "take_profit_price", "to_tp_pct"}


def test_an_empty_period_and_book(cfg):
    r = trading_report(ReportInputs(ledger=ledger_frame([]), marks={}), cfg, kind="ON-DEMAND",
                       period_start=t("00:00"), period_end=t("06:00"), catchup_of=["MORNING 2026-03-01"])
    p = r.payload()
    assert (p["realised_usd"], p["realised_pct"], p["unrealised_pct"], p["best_trade"]) == (0.0, None, None, None)
    assert [s["win_rate"] for s in p["per_strategy"]] == [None, None, None]
    assert (p["cash"], p["mark_equity"], p["open_positions"]) == (10000.0, 10000.0, 0)
    assert (p["btc_price"], p["regime"], p["gates"], p["catchup_of"]) == (None, None, [], ["MORNING 2026-03-01"])


def test_the_report_refuses_rows_from_after_as_of_and_bad_inputs(ledger, cfg):
    with pytest.raises(ValueError, match="processed after"):
        trading_report(ReportInputs(ledger=ledger, marks=MARKS), cfg, kind="MIDDAY", period_start=t("09:00"),
                       period_end=t("14:00"))  # C's and D's rows were processed after 14:00
    with pytest.raises(ValueError, match="unknown report kind"):
        trading_report(ReportInputs(ledger=ledger, marks=MARKS), cfg, kind="NIGHTLY", period_start=t("12:00"),
                       period_end=t("18:00"))
    with pytest.raises(ValueError, match="no mark"):
        trading_report(ReportInputs(ledger=ledger, marks={"LINK": 20.1}), cfg, kind="EVENING",
                       period_start=t("12:00"), period_end=t("18:00"))


def test_near_level_boundaries_and_an_override_stop(ledger):
    # binary-exact prices: at a mark of 16, a TP of 16.5 is +3.125 % and a stop of 15.5 is −3.125 %
    btc = buy("SWING", "BTC", "10:00", cp="10:05", size=50.0, qty=3.125, fill=16.0, fee=0.15, slip=0.0, tp=16.5,
              stop=15.5)
    pos = open_positions(ledger_frame([btc]), {"BTC": 16.0})
    got = near_levels(pos, 0.03125)  # equal to the threshold counts
    assert [(n.level, n.level_price, n.distance_pct) for n in got] == [("STOP", 15.5, -0.03125), ("TP", 16.5, 0.03125)]
    assert near_levels(pos, 0.0312) == ()
    pos = open_positions(ledger, {"LINK": 20.0, "DOGE": 0.093})
    assert [n.trade_group_id for n in near_levels(pos, 0.01)] == [E_ID]
    # an armed trail at 19.9 (from the engine state) is the stop in force: −0.5 %
    got = near_levels(pos, 0.01, stops={D_ID: 19.9})
    assert [(n.trade_group_id, n.level, n.level_price) for n in got] == [(D_ID, "STOP", 19.9), (E_ID, "STOP", 0.0925)]
    assert got[0].distance_pct == pytest.approx(-0.005, abs=1e-15)


def test_stops_in_force_take_the_armed_trail_from_the_engine_state(cfg):
    rule = ExitRule(take_profit=0.05, stop_loss=0.04, trailing=0.025, trail_activation=0.025, max_hold_minutes=4320)
    st = PositionState.open(t("10:00"), 100.0, 50.0, rule, fee=0.003, slippage=0.0015, bar_minutes=1)
    a = 100.0 * 1.0015  # the entry fill
    assert step(st, Bar(t("10:00"), 100.0, 104.0, 100.0, 103.5)) is None  # H = 104 ≥ A × 1.025: armed
    meta = TradeMeta(trade_group_id("SWING", "BTC", t("10:00")), Strategy.SWING, "BTC", "large_cap",
                     "SWING_BTC_2603010955", 1, 50.0, 0.0)
    state = EngineState(cursor=t("10:05"), positions=(OpenPosition(meta, st),))
    ledger = ledger_frame([buy("SWING", "BTC", "10:00", cp="10:00", size=50.0, qty=50 / a, fill=a, fee=0.15,
                               slip=0.075, tp=a * 1.05, stop=a * 0.96)])
    stops = stops_in_force(state, ledger)
    assert stops == {meta.trade_group_id: pytest.approx(104.0 * 0.975, abs=1e-12)}  # 101.4 > the static 96.144
    later = ledger.assign(cycle_point=t("10:10"))  # a ledger row after the cursor: the ledger's levels rule
    assert stops_in_force(state, later) == {}
    assert stops_in_force(None, ledger) == {}


def _regime_row(**kw):
    row = {"regime": "NORMAL", "btc_vol_24h": 0.05}
    for s in ("dca", "swing", "channel"):
        row.update({f"{s}_enabled": True, f"{s}_disabled_at": pd.NaT})
    row.update(kw)
    return row


def test_gates_panic_volatility_and_config(cfg):
    empty = ledger_frame([])
    assert active_gates(empty, cfg, t("12:00"), regime_row=_regime_row()) == ()
    row = _regime_row(regime="PANIC", btc_vol_24h=0.085, channel_enabled=False, channel_disabled_at=t("11:00"))
    gates = active_gates(empty, cfg, t("12:02"), regime_row=row)
    assert gates == ("PANIC: new entries halted",
                     "CHANNEL disabled by volatility (vol24h 8.50%, disable at 8.00%) since 2026-03-01 11:00 UTC; "
                     "re-enables from 2026-03-01 13:00 UTC once vol24h ≤ 6.00%")
    off = cfg.model_copy(update={"strategies": cfg.strategies.model_copy(
        update={"swing": cfg.strategies.swing.model_copy(update={"enabled": False})})})
    row = _regime_row(swing_enabled=False, swing_disabled_at=t("09:00"), dca_enabled=False, dca_disabled_at=None)
    gates = active_gates(empty, off, t("12:00"), regime_row=row)
    assert gates == ("DCA disabled by volatility (vol24h 5.00%, disable at 20.00%); re-enables once vol24h < 20.00%",
                     "SWING disabled in the config (strategies.swing.enabled)")


def test_gates_operator_pause_acts_from_the_next_cycle_point(cfg):
    events = pd.DataFrame({"event_time": [t("12:01"), t("12:07")], "action": ["pause", "resume"],
                           "target": [None, None], "who": ["alice", "bob"], "why": ["maintenance", "done"]})
    empty = ledger_frame([])
    assert active_gates(empty, cfg, t("12:04"), operator_events=events) == ()  # last cycle point 12:00
    assert active_gates(empty, cfg, t("12:05"), operator_events=events) == (
        "operator pause by alice: maintenance since 2026-03-01 12:01 UTC",)
    assert len(active_gates(empty, cfg, t("12:09"), operator_events=events)) == 1  # the resume acts from 12:10
    assert active_gates(empty, cfg, t("12:10"), operator_events=events) == ()


def test_gates_daily_loss_latches_for_the_utc_day(cfg):
    # E₀ = 10,000 at 00:00; −3 % = 9,700 reached at 09:00 (latched), recovered after: still latched that day
    snaps = pd.DataFrame({"cycle_point": [t("00:00"), t("08:55"), t("09:00"), t("09:05")],
                          "equity": [10000.0, 9750.0, 9700.0, 9800.0]})
    empty = ledger_frame([])
    assert active_gates(empty, cfg, t("08:58"), snapshots=snaps) == ()
    assert active_gates(empty, cfg, t("09:05"), snapshots=snaps) == (
        "daily loss gate since 2026-03-01 09:00 UTC (day P&L -200.00 USD, -2.00% of E₀ 10000.00 USD); "
        "resumes 2026-03-02 00:00 UTC",)
    nxt = pd.concat([snaps, pd.DataFrame({"cycle_point": [t("00:00", "2026-03-02")], "equity": [9800.0]})])
    assert active_gates(empty, cfg, t("00:00", "2026-03-02"), snapshots=nxt) == ()


def test_gates_loss_streak_pause_from_the_ledger(cfg):
    # five LOSS closes processed at 10:05, 10:15, … 10:45: the pause runs limits.loss_streak_pause_h (12 h) from
    # the cycle point of the fifth
    rows = []
    for i, sym in enumerate(["BTC", "ETH", "SOL", "LINK", "DOGE"]):
        entry = f"0{i}:00"
        rows += [buy("SWING", sym, entry, cp=f"0{i}:05", size=50.0, qty=1.0, fill=50.0, fee=0.15, slip=0.0),
                 sell("SWING", sym, entry, f"10:{i}0", f"10:{i}5", pnl=-1.0, pct=-0.02, fee=0.15, slip=0.0,
                      reason="stop_loss")]
    ledger = ledger_frame(rows)
    assert math.isclose(cfg.limits.loss_streak_pause_h, 12) and cfg.limits.loss_streak == 5
    assert active_gates(ledger[ledger["cycle_point"] <= t("10:40")], cfg, t("10:40")) == ()  # four losses
    assert active_gates(ledger, cfg, t("10:45")) == (
        "loss-streak pause (5 losses in a row, since 2026-03-01 10:45 UTC); resumes 2026-03-01 22:45 UTC",)
    assert len(active_gates(ledger, cfg, t("22:44"))) == 1
    assert active_gates(ledger, cfg, t("22:45")) == ()
