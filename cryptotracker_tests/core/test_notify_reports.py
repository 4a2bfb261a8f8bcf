"""The #reports messages (SPEC §12.2): the trading report shows every payload field (expected strings written out
by hand), its variants differ only in title, a long one splits under Slack's limits; retraining results and the
shadow daily summary."""

from __future__ import annotations

import re

from cryptotracker_assets.core.notify import render

from .test_notify import check_block_kit, context_text, headers, section_text

REPORT_ID = "trading_report_2603081500_abcdef0123"
T1 = "SWING_SOL_260308010000_ab12"
T2 = "DCA_PEPE_260307220000_cd34"
T3 = "CHANNEL_ETH_260308033000_ef56"

REPORT = {
    "report": "MORNING",
    "period_start": "2026-03-07T19:00:00+00:00",
    "period_end": "2026-03-08T07:00:00+00:00",
    "as_of": "2026-03-08T07:02:00+00:00",
    "catchup_of": ["MORNING 07:00 PST 2026-03-08", "MIDDAY 12:00 PST 2026-03-08"],
    "realised_usd": 123.45,
    "realised_pct": 0.01234,
    "trades_opened": 5,
    "trades_closed": 4,
    "per_strategy": [
        {"strategy": "DCA", "closed": 2, "wins": 1, "losses": 1, "win_rate": 0.5, "realised_usd": 10.0,
         "realised_pct": 0.005},
        {"strategy": "SWING", "closed": 2, "wins": 2, "losses": 0, "win_rate": 1.0, "realised_usd": 113.45,
         "realised_pct": 0.0227},
        {"strategy": "CHANNEL", "closed": 0, "wins": 0, "losses": 0, "win_rate": None, "realised_usd": 0.0,
         "realised_pct": None},
    ],
    "fees_usd": 3.2,
    "slippage_usd": 1.1,
    "best_trade": {"trade_group_id": T1, "symbol": "SOL", "strategy": "SWING", "pnl_usd": 80.0, "pnl_pct": 0.04},
    "worst_trade": {"trade_group_id": T2, "symbol": "PEPE", "strategy": "DCA", "pnl_usd": -25.5, "pnl_pct": -0.051},
    "unrealised_usd": -4.5,
    "unrealised_pct": -0.0015,
    "book_equity": 10123.45,
    "mark_equity": 10118.95,
    "cash": 7500.0,
    "open_positions": 3,
    "max_open_total": 10,
    "top_open": [
        {"trade_group_id": T3, "symbol": "ETH", "strategy": "CHANNEL", "unrealised_usd": 6.0, "unrealised_pct": 0.006,
         "mark": 3012.5, "take_profit_price": 3050.0, "to_tp_pct": 0.012448},
        {"trade_group_id": T1, "symbol": "SOL", "strategy": "SWING", "unrealised_usd": -10.5,
         "unrealised_pct": -0.0105, "mark": 140.2, "take_profit_price": 149.625, "to_tp_pct": 0.067225},
    ],
    "near_level": [
        {"trade_group_id": T1, "symbol": "SOL", "strategy": "SWING", "level": "STOP", "mark": 140.2,
         "level_price": 139.5, "distance_pct": -0.004993},
    ],
    "near_level_threshold": 0.01,
    "btc_price": 67123.456,
    "btc_change_pct": 0.0123,
    "regime": "CAUTION",
    "vol24h": 0.0845,
    "ready": {"DCA": 2, "SWING": 0, "CHANNEL": 5},
    "gates": ["SWING disabled (volatility)", "daily loss gate until 2026-03-09 00:00 UTC"],
    "champions": [{"strategy": "DCA", "model_id": "dca_202603070200", "composite": 0.6123},
                  {"strategy": "SWING", "model_id": None, "composite": None},
                  {"strategy": "CHANNEL", "model_id": "channel_202603070200", "composite": None}],
}

# Each payload field → the exact line(s) it shows as (hand-written).
EXPECTED = {
    "report": None,  # the header, checked separately
    "period_start": "*Period:* 2026-03-07 19:00 UTC → 2026-03-08 07:00 UTC · as of 2026-03-08 07:02 UTC",
    "period_end": "*Period:* 2026-03-07 19:00 UTC → 2026-03-08 07:00 UTC · as of 2026-03-08 07:02 UTC",
    "as_of": "*Period:* 2026-03-07 19:00 UTC → 2026-03-08 07:00 UTC · as of 2026-03-08 07:02 UTC",
    "catchup_of": "*Catch-up of:* MORNING 07:00 PST 2026-03-08, MIDDAY 12:00 PST 2026-03-08",
    "realised_usd": "*Realised P&amp;L:* +$123.45 (+1.23%)",
    "realised_pct": "*Realised P&amp;L:* +$123.45 (+1.23%)",
    "trades_opened": "*Trades:* 5 opened · 4 closed",
    "trades_closed": "*Trades:* 5 opened · 4 closed",
    "per_strategy": ["💰 DCA: 2 closed (1 W / 1 L, win rate 50.00%) · +$10.00 (+0.50%)",
                     "🚀 SWING: 2 closed (2 W / 0 L, win rate 100.00%) · +$113.45 (+2.27%)",
                     "📊 CHANNEL: 0 closed (0 W / 0 L, win rate n/a) · $0.00 (n/a)"],
    "fees_usd": "*Fees:* $3.20 · *Slippage:* $1.10",
    "slippage_usd": "*Fees:* $3.20 · *Slippage:* $1.10",
    "best_trade": f"*Best trade:* 🚀 SWING SOL +$80.00 (+4.00%) · `{T1}`",
    "worst_trade": f"*Worst trade:* 💰 DCA PEPE -$25.50 (-5.10%) · `{T2}`",
    "unrealised_usd": "*Unrealised P&amp;L:* -$4.50 (-0.15%)",
    "unrealised_pct": "*Unrealised P&amp;L:* -$4.50 (-0.15%)",
    "book_equity": "*Equity:* book $10,123.45 · mark $10,118.95 · *Cash:* $7,500.00",
    "mark_equity": "*Equity:* book $10,123.45 · mark $10,118.95 · *Cash:* $7,500.00",
    "cash": "*Equity:* book $10,123.45 · mark $10,118.95 · *Cash:* $7,500.00",
    "open_positions": "*Open positions:* 3 / 10",
    "max_open_total": "*Open positions:* 3 / 10",
    "top_open": ["1. 📊 CHANNEL *ETH* +$6.00 (+0.60%)",
                 f"mark 3,012.5 · TP 3,050 (+1.24% to TP) · `{T3}`",
                 "2. 🚀 SWING *SOL* -$10.50 (-1.05%)",
                 f"mark 140.2 · TP 149.625 (+6.72% to TP) · `{T1}`"],
    "near_level": f"🚀 SWING *SOL* near STOP: mark 140.2 · STOP 139.5 (-0.50%) · `{T1}`",
    "near_level_threshold": "*Near TP or stop (within 1.00%)*",
    "btc_price": "*BTC:* $67,123.5 (+1.23% over the period)",
    "btc_change_pct": "*BTC:* $67,123.5 (+1.23% over the period)",
    "regime": "*Regime:* CAUTION · *Vol 24h:* 8.45%",
    "vol24h": "*Regime:* CAUTION · *Vol 24h:* 8.45%",
    "ready": "*Ready:* DCA 2 · SWING 0 · CHANNEL 5",
    "gates": "*Active gates:* SWING disabled (volatility); daily loss gate until 2026-03-09 00:00 UTC",
    "champions": "*Champions:* 💰 DCA `dca_202603070200` (composite 0.612) · 🚀 SWING none · 📊 CHANNEL "
                 "`channel_202603070200` (composite n/a)",
}


def test_trading_report_shows_every_field():
    assert set(EXPECTED) == set(REPORT)  # a new payload field needs its expected line here
    msgs = render("trading_report", REPORT, message_id=REPORT_ID)
    assert len(msgs) == 1
    [m] = msgs
    check_block_kit(m)
    assert headers(msgs) == ["☀️ Morning report"]
    lines = section_text(msgs).split("\n")
    for key, want in EXPECTED.items():
        for line in [want] if isinstance(want, str) else (want or []):
            assert line in lines, (key, line)
    assert m.text.startswith("☀️ Morning report: realised +$123.45 (+1.23%), unrealised -$4.50 (-0.15%)\n")
    assert m.text.endswith(f" [msg {REPORT_ID}]")
    assert "as of 2026-03-08 07:02 UTC" in context_text(msgs)
    assert sum(b["type"] == "divider" for b in m.blocks) == 2  # period | now | market


def test_report_variants_differ_only_in_title():
    base = section_text(render("trading_report", REPORT))
    for kind, title in (("MIDDAY", "🌤️ Midday report"), ("EVENING", "🌙 Evening report"),
                        ("WEEKLY", "📅 Weekly report"), ("CATCH-UP", "⏰ Catch-up report"),
                        ("ON-DEMAND", "📋 On-demand report")):
        msgs = render("trading_report", {**REPORT, "report": kind})
        assert headers(msgs) == [title]
        assert section_text(msgs) == base


def test_report_without_catchups_and_with_null_percentages():
    nulls = {k: None for k in REPORT if k.endswith("_pct") or k in ("best_trade", "worst_trade")}
    msgs = render("trading_report", {**REPORT, **nulls, "catchup_of": [], "near_level": [], "gates": []})
    check_block_kit(msgs[0])
    lines = section_text(msgs).split("\n")
    assert not any(ln.startswith("*Catch-up of:*") for ln in lines)
    assert "*Realised P&amp;L:* +$123.45 (n/a)" in lines
    assert "*Best trade:* n/a" in lines and "*Worst trade:* n/a" in lines
    assert "*BTC:* $67,123.5 (n/a over the period)" in lines
    assert "*Active gates:* none" in lines
    assert lines[lines.index("*Near TP or stop (within 1.00%)*") + 1] == "none"


def test_a_report_with_200_open_lines_splits_under_the_limits():
    top = [{"trade_group_id": f"SWING_S{i:03d}_260308010000_ab12", "symbol": f"S{i:03d}", "strategy": "SWING",
            "unrealised_usd": 1.0, "unrealised_pct": 0.001, "mark": 1.0, "take_profit_price": 1.05,
            "to_tp_pct": 0.05} for i in range(200)]
    msgs = render("trading_report", {**REPORT, "top_open": top}, message_id=REPORT_ID)
    # body by hand: period, realised, by strategy, best/worst, divider, now, top heading, 200 cards, near level,
    # divider, market = 210 blocks; 48 per part (50 − header − footer) → 5 parts
    assert len(msgs) == 5
    for k, m in enumerate(msgs, start=1):
        check_block_kit(m)
        assert len(m.blocks) <= 50
        assert m.blocks[0]["text"]["text"] == f"☀️ Morning report ({k}/5)"
        assert m.text.endswith(f" [msg {REPORT_ID} {k}/5]")
        assert len(m.text) <= 3000
        assert f"msg `{REPORT_ID}` · part {k}/5" in context_text([m])
    ids = re.findall(r"`(SWING_S\d{3}_260308010000_ab12)`", section_text(msgs))
    assert ids == [t["trade_group_id"] for t in top]  # every line once, in order
    assert [len(m.blocks) for m in msgs] == [50, 50, 50, 50, 20]


RETRAIN = {"strategies": [
    {"strategy": "DCA", "trained": True, "why_not": None, "rows_real": 1234, "rows_simulated": 5000, "rows_shadow": 800,
     "composite": 0.6123, "champion_composite": 0.5981,
     "gates": [{"name": "auc", "passed": True, "value": 0.61, "threshold": 0.55},
               {"name": "brier", "passed": True, "value": 0.21, "threshold": 0.25}],
     "promoted": True, "model_id": "dca_202603080200"},
    {"strategy": "SWING", "trained": True, "why_not": None, "rows_real": 400, "rows_simulated": 0, "rows_shadow": 90,
     "composite": 0.48, "champion_composite": None,
     "gates": [{"name": "auc", "passed": False, "value": 0.52, "threshold": 0.55}],
     "promoted": False, "model_id": "swing_202603080200"},
    {"strategy": "CHANNEL", "trained": False, "why_not": "too few rows <1000>", "rows_real": 12, "rows_simulated": 0,
     "rows_shadow": 0, "composite": None, "champion_composite": None, "gates": [], "promoted": False,
     "model_id": None},
]}


def test_retraining_result():
    [m] = render("retraining_result", RETRAIN)
    check_block_kit(m)
    assert headers([m]) == ["🧠 Retraining results"]
    secs = [b["text"]["text"] for b in m.blocks if b["type"] == "section"]
    assert secs == [
        "*💰 DCA* — trained · *promoted* ✅ `dca_202603080200`\n"
        "Rows: 1,234 real · 5,000 simulated · 800 shadow\n"
        "Composite: 0.612 vs champion 0.598\n"
        "✅ auc: 0.61 (threshold 0.55)\n"
        "✅ brier: 0.21 (threshold 0.25)",
        "*🚀 SWING* — trained · not promoted (candidate `swing_202603080200`)\n"
        "Rows: 400 real · 0 simulated · 90 shadow\n"
        "Composite: 0.480 vs champion n/a\n"
        "❌ auc: 0.52 (threshold 0.55)",
        "*📊 CHANNEL* — not trained: too few rows &lt;1000&gt;\n"
        "Rows: 12 real · 0 simulated · 0 shadow\n"
        "Composite: n/a vs champion n/a\n"
        "Gates: none evaluated",
    ]
    assert m.text.startswith("🧠 Retraining: 2 of 3 trained, promoted: DCA\n")


SUMMARY = "\n".join([
    "Shadow daily summary at 2026-03-08 10:00 UTC (window 72 h, all strategies)",
    "CHAMPION win rate: 55.0 %; shadow trades completed: 340",
    "best challenger: QUICK_EXITS (+4.2 pp, MEDIUM)",
    "",
    " # variation              trades  win rate vs CHAMPION size-wtd ret tier         p (Holm)",
    " 1 QUICK_EXITS                120    59.2 %     +4.2 pp     +0.81 % MEDIUM          0.031",
    " 2 BEAR_MARKET                 95    51.0 %     -4.0 pp     -0.20 % INSUFFICIENT    0.400",
    "",
    "top 3 (24 h window, size-weighted return): QUICK_EXITS +1.10 %, CHAMPION +0.40 %",
    "recommendations: 1; new proposals: 1 (DCA_tp_multiplier_202603081000)",
    "pending proposals: none",
    "revisions in the last 24 h: none",
])


def test_shadow_daily_summary_lays_out_the_producer_text():
    [m] = render("shadow_daily_summary", {"kind": "shadow_daily_summary", "summary": SUMMARY})
    check_block_kit(m)
    assert headers([m]) == ["🧪 Shadow daily summary"]
    secs = [b["text"]["text"] for b in m.blocks if b["type"] == "section"]
    assert secs[0] == ("*CHAMPION win rate:* 55.0 %; shadow trades completed: 340\n"
                       "*best challenger:* QUICK_EXITS (+4.2 pp, MEDIUM)")
    assert secs[1] == "```\n" + "\n".join(SUMMARY.split("\n")[4:7]) + "\n```"  # the leaderboard, fixed width
    assert secs[2].startswith("*top 3 (24 h window, size-weighted return):* QUICK_EXITS +1.10 %")
    assert "Shadow daily summary at 2026-03-08 10:00 UTC (window 72 h, all strategies)" in context_text([m])
