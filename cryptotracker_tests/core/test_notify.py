"""Slack messages for people (SPEC §12.2): number formatting, mrkdwn escaping, the engine notes' layouts, the
message-id suffix, the split rule and the Block Kit shape. Expected strings are written out by hand."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

import pytest

from cryptotracker_assets.core.exits import ExitReason
from cryptotracker_assets.core.notify import (
    RENDERERS,
    Message,
    escape,
    exit_label,
    fmt_pct,
    fmt_price,
    fmt_time,
    fmt_usd,
    render,
)

MSG_ID = "opened_2603081205_0123456789"
ID_RE = re.compile(r" \[msg ([a-z_]+_\d{10}_[0-9a-f]{10})\]$")  # the form the outbox tests match
EVIL = "<!channel> & <http://evil|click>"
EVIL_ESCAPED = "&lt;!channel&gt; &amp; &lt;http://evil|click&gt;"


# --- helpers (independent of the code under test) ------------------------------------------------------------


def check_block_kit(msg: Message) -> None:
    """Slack's Block Kit shape for the four block types we use, and the split rule's limits."""
    payload = msg.payload()
    assert set(payload) == {"text", "blocks"}
    assert isinstance(payload["text"], str) and 0 < len(payload["text"]) <= 3000
    blocks = payload["blocks"]
    assert isinstance(blocks, list) and 1 <= len(blocks) <= 50
    assert blocks[0]["type"] == "header"
    for b in blocks:
        t = b["type"]
        assert t in {"header", "section", "context", "divider"}, t
        if t == "header":
            assert set(b) == {"type", "text"}
            assert b["text"]["type"] == "plain_text"
            assert 0 < len(b["text"]["text"]) <= 150
        elif t == "section":
            assert set(b) == {"type", "text"}
            assert b["text"]["type"] == "mrkdwn"
            assert 0 < len(b["text"]["text"]) <= 3000 and b["text"]["text"].strip()
        elif t == "context":
            assert set(b) == {"type", "elements"}
            assert 1 <= len(b["elements"]) <= 10
            for e in b["elements"]:
                assert e["type"] == "mrkdwn" and 0 < len(e["text"]) <= 3000
        else:
            assert b == {"type": "divider"}
    json.dumps(payload)  # what chat.postMessage sends


def strings(msg: Message) -> list[str]:
    """Every text of a message: the fallback and every text in its blocks."""
    out = [msg.text]

    def walk(x) -> None:
        if isinstance(x, dict):
            for k, v in x.items():
                if k == "text" and isinstance(v, str):
                    out.append(v)
                else:
                    walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(list(msg.blocks))
    return out


def section_text(msgs: Iterable[Message]) -> str:
    return "\n".join(b["text"]["text"] for m in msgs for b in m.blocks if b["type"] == "section")


def headers(msgs: Iterable[Message]) -> list[str]:
    return [m.blocks[0]["text"]["text"] for m in msgs]


def context_text(msgs: Iterable[Message]) -> str:
    return "\n".join(e["text"] for m in msgs for b in m.blocks if b["type"] == "context" for e in b["elements"])


# --- numbers ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("x, want", [
    (0, "0"), (0.0, "0"), (-0.0, "0"),
    (67123.456, "67,123.5"),  # BTC: 6 significant digits, thousands separated
    (104250.0, "104,250"),
    (0.0000123456789, "0.0000123457"),  # PEPE: positional, never 1.23457e-05
    (1e-12, "0.000000000001"),
    (1.5, "1.5"), (142.5, "142.5"), (3050.0, "3,050"),
    (-42.1234567, "-42.1235"),
    (123456789, "123,457,000"),
    (999999.5, "1,000,000"),
    (None, "n/a"), (float("nan"), "n/a"), (float("inf"), "n/a"), ("abc", "n/a"), (True, "n/a"),
])
def test_fmt_price(x, want):
    assert fmt_price(x) == want


@pytest.mark.parametrize("x, signed, want", [
    (0.01234, True, "+1.23%"), (0.01234, False, "1.23%"),
    (-0.015, True, "-1.50%"), (-0.015, False, "-1.50%"),
    (0, True, "0.00%"), (-0.00001, True, "0.00%"),  # rounds to zero: no sign
    (1.23456, True, "+123.46%"), (123.456, True, "+12,345.60%"),
    (None, True, "n/a"), (float("nan"), False, "n/a"),
])
def test_fmt_pct(x, signed, want):
    assert fmt_pct(x, signed=signed) == want


@pytest.mark.parametrize("x, signed, want", [
    (1234.5, False, "$1,234.50"), (-3, False, "-$3.00"), (12.3, True, "+$12.30"), (-12.3, True, "-$12.30"),
    (0, True, "$0.00"), (-0.004, True, "$0.00"), (1e6, False, "$1,000,000.00"), (0.456, False, "$0.46"),
    (None, True, "n/a"), (float("nan"), False, "n/a"),
])
def test_fmt_usd(x, signed, want):
    assert fmt_usd(x, signed=signed) == want


@pytest.mark.parametrize("x, want", [
    ("2026-03-08T12:05:00+00:00", "2026-03-08 12:05 UTC"),
    ("2026-03-08T04:05:00-08:00", "2026-03-08 12:05 UTC"),  # shown in UTC
    ("2026-03-08T12:05:59Z", "2026-03-08 12:05 UTC"),
    ("2026-03-08 12:05:00 UTC", "2026-03-08 12:05 UTC"),  # the pipeline-health payloads' form
    ("2026-03-08T12:05:00", "2026-03-08 12:05 UTC"),  # naive = UTC
    (None, "n/a"), ("soon <!here>", "soon &lt;!here&gt;"),
])
def test_fmt_time(x, want):
    assert fmt_time(x) == want


def test_escape_makes_mentions_and_links_inert():
    assert escape(EVIL) == EVIL_ESCAPED
    assert escape("a && b") == "a &amp;&amp; b"
    assert escape(None) == "n/a"


# --- engine notes ------------------------------------------------------------------------------------------------

OPENED_SWING = {
    "kind": "opened", "channel": "#trades", "cycle_point": "2026-03-08T12:05:00+00:00",
    "trade_group_id": "SWING_SOL_260308120500_3f9a", "strategy": "SWING", "symbol": "SOL", "tier": "large_cap",
    "entry_time": "2026-03-08T12:05:00+00:00", "entry_fill": 142.5, "size_usd": 1000.0, "stop_price": 136.8,
    "stop_loss": 0.04, "take_profit_price": 149.625, "take_profit": 0.05, "trail": 0.025, "trail_activation": 0.025,
    "risk_reward": 1.25, "regime": "NORMAL", "confidence": 0.72, "confidence_source": "model", "levels": 1,
    "spacing": 0.0, "scan_id": "SWING_SOL_2603081205",
}
OPENED_DCA = {
    "kind": "opened", "channel": "#trades", "cycle_point": "2026-03-08T12:05:00+00:00",
    "trade_group_id": "DCA_PEPE_260308120500_aa01", "strategy": "DCA", "symbol": "PEPE", "tier": "memecoin",
    "entry_time": "2026-03-08T12:05:00+00:00", "entry_fill": 0.0000123456789, "size_usd": 250.0,
    "stop_price": 0.000010493827065, "stop_loss": 0.15, "take_profit_price": 0.0000141975307, "take_profit": 0.15,
    "trail": 0.0, "trail_activation": 0.06, "risk_reward": 1.0, "regime": "CAUTION", "confidence": None,
    "confidence_source": None, "levels": 5, "spacing": 0.04, "scan_id": "DCA_PEPE_2603081205",
}


def test_opened_swing_shows_every_field():
    [m] = render("opened", OPENED_SWING, message_id=MSG_ID)
    check_block_kit(m)
    assert headers([m]) == ["🚀 SWING opened: SOL"]
    body = section_text([m])
    for line in ("*Symbol:* SOL · *Tier:* large cap",
                 "*Entry fill:* 142.5 · *Size:* $1,000.00",
                 "*Stop:* 136.8 (-4.00%) · *Take profit:* 149.625 (+5.00%)",
                 "*Trail:* 2.50% (arms at +2.50%)",
                 "*Risk/reward:* 1.25",
                 "*Regime:* NORMAL · *Confidence:* 72.00% (model)"):
        assert line in body.split("\n"), line
    assert "DCA" not in body  # one level: no grid line
    assert m.text.startswith("🚀 SWING opened SOL at 142.5 — $1,000.00\n")
    ctx = context_text([m])
    assert "trade `SWING_SOL_260308120500_3f9a`" in ctx and "entered 2026-03-08 12:05 UTC" in ctx
    assert "scan `SWING_SOL_2603081205`" in ctx


def test_opened_dca_pepe_prices_and_grid():
    [m] = render("opened", OPENED_DCA)
    check_block_kit(m)
    assert headers([m]) == ["💰 DCA opened: PEPE"]
    lines = section_text([m]).split("\n")
    assert "*Entry fill:* 0.0000123457 · *Size:* $250.00" in lines
    assert "*Stop:* 0.0000104938 (-15.00%) · *Take profit:* 0.0000141975 (+15.00%)" in lines
    assert "*Trail:* off" in lines
    assert "*Regime:* CAUTION · *Confidence:* n/a" in lines
    assert "*DCA grid:* 5 levels, spacing 4.00%" in lines
    assert "[msg" not in m.text  # no id given


CLOSED_BASE = {
    "kind": "closed", "channel": "#trades", "cycle_point": "2026-03-08T19:35:00+00:00",
    "trade_group_id": "SWING_SOL_260308120500_3f9a", "strategy": "SWING", "symbol": "SOL", "tier": "large_cap",
    "entry_time": "2026-03-08T12:05:00+00:00", "exit_time": "2026-03-08T19:35:00+00:00", "avg_entry": 142.5,
    "exit_fill": 149.5, "pnl_usd": 45.67, "pnl_pct": 0.04567, "outcome": "WIN", "exit_reason": "trailing_stop",
    "no_data": False, "hold_h": 7.5, "max_hold_h": 72.0, "fees_usd": 2.1, "slippage_usd": 0.456,
    "high_water": 153.2, "drawdown_from_high": -0.0241514, "levels_filled": 1, "levels": 1, "who": None,
    "why": None,
}


def closed(**over) -> list[Message]:
    msgs = render("closed", {**CLOSED_BASE, **over}, message_id="closed_2603081935_00000000ff")
    for m in msgs:
        check_block_kit(m)
    return msgs


def test_closed_trailing_win():
    [m] = closed()
    assert headers([m]) == ["✅ 🚀 SWING closed: SOL"]
    lines = section_text([m]).split("\n")
    for line in ("*Net P&amp;L:* +$45.67 (+4.57%)",
                 "*Exit:* Trailing Stop",
                 "*Avg entry:* 142.5 · *Exit fill:* 149.5",
                 "*Hold:* 7.5 h",
                 "*Fees:* $2.10 · *Slippage:* $0.46",
                 "*High-water mark:* 153.2 · *Drawdown from it:* -2.42%"):
        assert line in lines, line
    assert not any("DCA" in ln for ln in lines)
    assert m.text.startswith("✅ 🚀 SWING closed SOL: +$45.67 (+4.57%) — Trailing Stop\n")
    assert "exited 2026-03-08 19:35 UTC" in context_text([m])


def test_closed_dca_stop_loss_loss():
    [m] = closed(strategy="DCA", symbol="PEPE", exit_reason="stop_loss", pnl_usd=-80.0, pnl_pct=-0.08,
                 outcome="LOSS", levels_filled=3, levels=4)
    assert headers([m]) == ["❌ 💰 DCA closed: PEPE"]
    lines = section_text([m]).split("\n")
    assert "*Net P&amp;L:* -$80.00 (-8.00%)" in lines
    assert "*Exit:* Stop Loss" in lines
    assert "*DCA levels filled:* 3 of 4" in lines
    assert not any("High-water" in ln for ln in lines)  # only for a trailing stop


def test_closed_at_zero_net_is_a_loss():
    [m] = closed(pnl_usd=0.0, pnl_pct=0.0, exit_reason="take_profit")
    assert headers([m])[0].startswith("❌")  # ✅ only when net > 0
    assert "*Net P&amp;L:* $0.00 (0.00%)" in section_text([m]).split("\n")


def test_closed_time_exits():
    [m] = closed(exit_reason="time_exit", max_hold_h=48.0, pnl_usd=-1.0)
    assert "*Exit:* Time Exit (max hold 48 h)" in section_text([m])
    [m] = closed(exit_reason="time_exit", max_hold_h=48.0, no_data=True, pnl_usd=-1.0)
    assert "*Exit:* Time Exit (no data)" in section_text([m])


def test_closed_manual_is_escaped_everywhere():
    [m] = closed(exit_reason="manual", who="alice", why=EVIL)
    assert f"*Exit:* Manual Close (by alice: {EVIL_ESCAPED})" in section_text([m]).split("\n")
    for s in strings(m):
        assert "<!" not in s and "<http" not in s, s
    assert EVIL_ESCAPED in m.text


def test_every_exit_reason_has_a_label():
    want = {
        "stop_loss": "Stop Loss", "trailing_stop": "Trailing Stop", "take_profit": "Take Profit",
        "time_exit": "Time Exit (max hold 72 h)", "strategy_shift_big_loss": "Strategy Shift (big loss)",
        "strategy_shift_moderate_loss": "Strategy Shift (moderate loss)",
        "strategy_shift_flat": "Strategy Shift (flat)",
        "strategy_shift_stale_win": "Strategy Shift (stale win)", "manual": "Manual Close (by bob: cut risk)",
        "end_of_data": "End of Data",
    }
    assert {r.value for r in ExitReason} == set(want)
    for r in ExitReason:
        assert exit_label({"exit_reason": r.value, "max_hold_h": 72, "who": "bob", "why": "cut risk"}) == want[r.value]
    assert exit_label({"exit_reason": "<weird>"}) == "&lt;weird&gt;"


def test_no_data_close():
    [m] = render("no_data_close", {"kind": "no_data_close", "trade_group_id": "DCA_PEPE_260308120500_aa01",
                                   "symbol": "PEPE", "last_bar": "2026-03-10T11:58:00+00:00",
                                   "raw_price": 0.0000098765432})
    check_block_kit(m)
    assert headers([m]) == ["⚠️ No-data close: PEPE"]
    assert ("*Closed at the last known close:* 0.00000987654 (last bar 2026-03-10 11:58 UTC)"
            in section_text([m]).split("\n"))


def test_panic():
    p = {"kind": "panic", "channel": "#trades", "cycle_point": "2026-03-08T12:05:00+00:00", "regime": "PANIC",
         "btc_ret_1h": -0.035, "btc_ret_4h": -0.041, "btc_ret_24h": -0.062, "btc_vol_24h": 0.125,
         "btc_decline_24h": -0.072, "btc_decline_48h": -0.101}
    [m] = render("panic", p)
    check_block_kit(m)
    assert headers([m]) == ["🚨 PANIC — new entries halted"]
    lines = section_text([m]).split("\n")
    assert "*BTC:* 1h -3.50% · 4h -4.10% · 24h -6.20%" in lines
    assert "*Vol:* 24h 12.50%" in lines
    assert "*Declines:* 24h -7.20% · 48h -10.10%" in lines
    assert "*New entries halted* while the regime is PANIC; exits keep running." in lines
    assert not any(ln.startswith("*Triggers:*") for ln in lines)  # not in the engine's payload
    [m] = render("panic", {**p, "triggers": ["ret_1h ≤ -3.00%", "vol_24h ≥ 12.00%"]})
    assert "*Triggers:* ret_1h ≤ -3.00%, vol_24h ≥ 12.00%" in section_text([m]).split("\n")


def test_strategy_state():
    [m] = render("strategy_disabled", {"strategy": "CHANNEL", "vol24h": 0.085})
    check_block_kit(m)
    assert headers([m]) == ["⏸️ 📊 CHANNEL disabled (volatility)"]
    lines = section_text([m]).split("\n")
    assert "*BTC vol 24h:* 8.50%" in lines
    assert "*New entries of this strategy halted*; open positions keep their exits." in lines
    [m] = render("strategy_disabled", {"strategy": "CHANNEL", "vol24h": 0.085, "limit": 0.08, "reenable_at": 0.06,
                                       "min_disabled_h": 2, "earliest_reenable_at": "2026-03-08T14:05:00+00:00"})
    lines = section_text([m]).split("\n")
    assert {"*Limit:* 8.00%", "*Re-enable rule:* after 2 h and vol 24h ≤ 6.00%",
            "*Earliest re-enable:* 2026-03-08 14:05 UTC"} <= set(lines)
    [m] = render("strategy_enabled", {"strategy": "SWING", "vol24h": 0.12})
    assert headers([m]) == ["▶️ 🚀 SWING re-enabled"]
    assert "New entries allowed again." in section_text([m])


def test_risk_gates():
    [m] = render("daily_loss_gate", {"e0": 10000.0, "mark_equity": 9487.7, "day_pnl_usd": -512.3,
                                     "day_pnl_pct": -0.05123, "resume_at": "2026-03-09T00:00:00+00:00"})
    check_block_kit(m)
    lines = section_text([m]).split("\n")
    assert "*Day P&amp;L:* -$512.30 (-5.12% of E₀ $10,000.00)" in lines
    assert "*Mark equity:* $9,487.70" in lines
    assert "*Resumes:* 2026-03-09 00:00 UTC" in lines
    [m] = render("loss_streak_pause", {"streak": 4, "resume_at": "2026-03-08T18:00:00+00:00"})
    lines = section_text([m]).split("\n")
    assert headers([m]) == ["🛑 Loss-streak pause — new entries halted"]
    assert "*Streak:* 4 losing trades in a row" in lines and "*Resumes:* 2026-03-08 18:00 UTC" in lines


def test_manual_close_ignored_is_escaped():
    [m] = render("manual_close_ignored", {"trade_group_id": "SWING_SOL_260308120500_3f9a", "who": "mallory",
                                          "why": EVIL, "requested_at": "2026-03-08T12:01:00+00:00"})
    check_block_kit(m)
    assert f"*Requested by:* mallory — {EVIL_ESCAPED}" in section_text([m]).split("\n")
    for s in strings(m):
        assert "<!" not in s and "<http" not in s, s


def test_signal():
    [m] = render("signal", {"strategy": "CHANNEL", "symbol": "ETH", "tier": "large_cap", "price": 3012.5,
                            "size_usd": 800.0, "take_profit": 0.02, "stop_loss": 0.02, "confidence": 0.615,
                            "confidence_source": "rules", "regime": "NORMAL", "scan_id": "CHANNEL_ETH_2603081205",
                            "cycle_point": "2026-03-08T12:05:00+00:00"})
    check_block_kit(m)
    assert headers([m]) == ["📡 TAKE 📊 CHANNEL ETH"]
    lines = section_text([m]).split("\n")
    assert "*Price:* 3,012.5 · *Size:* $800.00" in lines
    assert "*Take profit:* +2.00% · *Stop:* -2.00%" in lines
    assert "*Confidence:* 61.50% (rules) · *Regime:* NORMAL" in lines
    assert "scan `CHANNEL_ETH_2603081205`" in context_text([m])


# --- the message id, the split rule, robustness -----------------------------------------------------------------


def test_message_id_suffix_and_context():
    [m] = render("opened", OPENED_SWING, message_id=MSG_ID)
    assert m.text.endswith(f" [msg {MSG_ID}]")
    assert ID_RE.search(m.text).group(1) == MSG_ID
    assert m.blocks[-1]["type"] == "context" and f"msg `{MSG_ID}`" in m.blocks[-1]["elements"][-1]["text"]
    assert m.payload()["text"] == m.text and m.payload()["blocks"] == list(m.blocks)
    m.payload()["blocks"][0]["type"] = "changed"  # a copy: the message stays as built
    assert m.blocks[0]["type"] == "header"


def test_long_text_splits_into_sections_at_lines_and_hard_cuts_a_long_line():
    lines = [f"line {i:04d} " + "x" * 90 for i in range(100)]  # 100 lines of 100 chars
    long_line = "&" * 700  # escaped: 3,500 characters of entities on one line
    text = "\n".join(lines[:50] + [long_line] + lines[50:])
    [m] = render("some_new_alert", {"text": text}, message_id="some_new_alert_2603081205_abcdefabcd")
    check_block_kit(m)
    secs = [b["text"]["text"] for b in m.blocks if b["type"] == "section"]
    assert all(len(s) <= 3000 for s in secs)
    # whole lines per section (29 lines of 100 chars + 28 newlines = 2,928 ≤ 3,000; 30 would be 3,029)
    assert secs[0].split("\n") == lines[:29]
    # the long line is cut hard but never inside an entity: the pieces put together give it back
    pieces = [ln for s in secs for ln in s.split("\n") if ln.startswith("&")]
    assert "".join(pieces) == "&amp;" * 700
    assert all(re.fullmatch(r"(&amp;)+", p) for p in pieces)
    assert [ln for s in secs for ln in s.split("\n") if ln.startswith("line")] == lines
    assert len(m.text) <= 3000 and m.text.endswith("… [msg some_new_alert_2603081205_abcdefabcd]")


def test_long_header_is_cut():
    [m] = render("x" * 300, {"text": "hello"})
    check_block_kit(m)
    assert len(headers([m])[0]) == 150 and headers([m])[0].endswith("…")


def test_render_never_raises_on_missing_or_mistyped_fields():
    junk = {"strategies": "x", "top_open": 5, "changes": 3, "steps": "abc", "metadata": [1], "per_strategy": None,
            "ready": [1], "gates": {"a": 1}, "champions": "none", "failed": 7, "runs": None, "pnl_usd": "lots",
            "levels": "many", "max_hold_h": "long", "exit_reason": "time_exit", "confidence": "high",
            "best_trade": [1], "catchup_of": 3, "error": 42}
    for kind in [*RENDERERS, "never_heard_of_it"]:
        for payload in ({}, junk, {"text": None}):
            msgs = render(kind, payload, message_id="x_2603081205_0000000000")
            assert msgs, kind
            for m in msgs:
                check_block_kit(m)
                assert m.text.endswith(" [msg x_2603081205_0000000000]")
    [m] = render("opened", {})
    assert "*Entry fill:* n/a · *Size:* n/a" in section_text([m]).split("\n")


def test_unknown_kind_renders_generically():
    [m] = render("fee_schedule_changed", {"kind": "fee_schedule_changed", "channel": "#system-alerts",
                                          "cycle_point": "2026-03-08T12:00:00+00:00", "size_usd": 1234.5,
                                          "pnl_pct": -0.015, "count": 1234, "at": "2026-03-08T12:00:00+00:00",
                                          "symbols": ["BTC", "ETH"], "note": EVIL, "nested": {"a": 1}})
    check_block_kit(m)
    assert headers([m]) == ["🔔 Fee schedule changed"]
    lines = section_text([m]).split("\n")
    assert lines == ["*size_usd:* $1,234.50", "*pnl_pct:* -1.50%", "*count:* 1,234", "*at:* 2026-03-08 12:00 UTC",
                     "*symbols:* BTC, ETH", f"*note:* {EVIL_ESCAPED}"]
    [m] = render("fee_schedule_changed", {"text": f"fees up\nwhy: {EVIL}"})
    assert section_text([m]) == f"fees up\nwhy: {EVIL_ESCAPED}"
