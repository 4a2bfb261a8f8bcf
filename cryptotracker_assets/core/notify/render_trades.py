"""Drafts of the engine's notes (``_note`` in :mod:`..engine.fold`) and of TAKE signals, per SPEC §12.2:
opened, closed, no-data close, PANIC, strategy disabled / re-enabled, manual close ignored, daily loss gate,
loss-streak pause, signal. Payload fields are the notes' own (fractions, USD, ISO UTC times); a missing one shows
``n/a``. Never imports dagster."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..exits import ExitReason
from .blocks import Draft
from .numbers import (NA, escape, fmt_hours, fmt_number, fmt_pct, fmt_price, fmt_time, fmt_usd, number,
                      plain_label)

STRATEGY_EMOJI = {"DCA": "💰", "SWING": "🚀", "CHANNEL": "📊"}
EXIT_LABELS = {
    ExitReason.STOP_LOSS: "Stop Loss",
    ExitReason.TRAILING_STOP: "Trailing Stop",
    ExitReason.TAKE_PROFIT: "Take Profit",
    ExitReason.TIME_EXIT: "Time Exit",
    ExitReason.STRATEGY_SHIFT_BIG_LOSS: "Strategy Shift (big loss)",
    ExitReason.STRATEGY_SHIFT_MODERATE_LOSS: "Strategy Shift (moderate loss)",
    ExitReason.STRATEGY_SHIFT_FLAT: "Strategy Shift (flat)",
    ExitReason.STRATEGY_SHIFT_STALE_WIN: "Strategy Shift (stale win)",
    ExitReason.MANUAL: "Manual Close",
    ExitReason.END_OF_DATA: "End of Data",
}
_MEASURE = re.compile(r"^(?:btc_)?(ret|vol|decline)_(\d+)(min|h|d)$")
_UNIT_MIN = {"min": 1, "h": 60, "d": 1440}


def field(p: Mapping[str, Any], key: str) -> str:
    """A text field of the payload, escaped; ``n/a`` when missing."""
    v = p.get(key)
    return NA if v is None or v == "" else escape(v)


def strategy_tag(p: Mapping[str, Any]) -> str:
    """``🚀 SWING`` (the emoji of SPEC §12.2; none for an unknown strategy)."""
    s = str(p.get("strategy") or "")
    emoji = STRATEGY_EMOJI.get(s.upper())
    return f"{emoji} {s}" if emoji else (s or "?")


def tier_text(p: Mapping[str, Any]) -> str:
    t = p.get("tier")
    return NA if not t else escape(str(t).replace("_", " "))


def confidence_text(p: Mapping[str, Any]) -> str:
    """``72.00% (model)``; ``n/a`` without a confidence."""
    c = fmt_pct(p.get("confidence"), signed=False)
    src = p.get("confidence_source")
    return f"{c} ({escape(src)})" if src and c != NA else c


def stop_pct(x: Any) -> str:
    """A stop distance (a positive fraction below the entry) as a drop: ``0.04 → -4.00%``."""
    v = number(x)
    return fmt_pct(None if v is None else -abs(v))


def exit_label(p: Mapping[str, Any]) -> str:
    """The exit reason for people (mrkdwn): ``Time Exit (max hold 48 h)``, ``Time Exit (no data)``,
    ``Manual Close (by alice: why)``; an unknown value is shown as it is, escaped."""
    raw = p.get("exit_reason")
    try:
        reason = ExitReason(str(raw))
    except ValueError:
        return field(p, "exit_reason")
    label = EXIT_LABELS[reason]
    if reason is ExitReason.TIME_EXIT:
        hold = number(p.get("max_hold_h"))
        if p.get("no_data"):
            return f"{label} (no data)"
        return f"{label} (max hold {hold:g} h)" if hold is not None else label
    if reason is ExitReason.MANUAL:
        who, why = p.get("who"), p.get("why")
        if who or why:
            return f"{label} (by {field(p, 'who')}: {field(p, 'why')})"
    return label


def trade_footer(p: Mapping[str, Any], *times: tuple[str, str]) -> list[str]:
    out = [f"trade `{field(p, 'trade_group_id')}`"] if p.get("trade_group_id") else []
    return out + [f"{label} {fmt_time(p.get(key))}" for label, key in times if p.get(key) is not None]


def opened(p: Mapping[str, Any]) -> Draft:
    sym = field(p, "symbol")
    trail = number(p.get("trail"))
    act = number(p.get("trail_activation"))
    if trail is None:
        trail_text = NA
    elif trail == 0:
        trail_text = "off"
    else:
        arms = "from entry" if act == 0 else f"arms at {fmt_pct(act)}"
        trail_text = f"{fmt_pct(trail, signed=False)} ({arms})"
    rr = number(p.get("risk_reward"))
    lines = [
        f"*Symbol:* {sym} · *Tier:* {tier_text(p)}",
        f"*Entry fill:* {fmt_price(p.get('entry_fill'))} · *Size:* {fmt_usd(p.get('size_usd'))}",
        f"*Stop:* {fmt_price(p.get('stop_price'))} ({stop_pct(p.get('stop_loss'))}) · "
        f"*Take profit:* {fmt_price(p.get('take_profit_price'))} ({fmt_pct(p.get('take_profit'))})",
        f"*Trail:* {trail_text}",
        f"*Risk/reward:* {NA if rr is None else f'{rr:.2f}'}",
        f"*Regime:* {field(p, 'regime')} · *Confidence:* {confidence_text(p)}",
    ]
    levels = number(p.get("levels"))
    if str(p.get("strategy")).upper() == "DCA" or (levels is not None and levels > 1):
        lines.append(f"*DCA grid:* {fmt_number(p.get('levels'))} levels, spacing "
                     f"{fmt_pct(p.get('spacing'), signed=False)}")
    tag = strategy_tag(p)
    d = Draft(title=f"{tag} opened: {plain_label(p.get('symbol'))}",
              summary=f"{escape(tag)} opened {sym} at {fmt_price(p.get('entry_fill'))} — "
                      f"{fmt_usd(p.get('size_usd'))}",
              footer=trade_footer(p, ("entered", "entry_time")))
    if p.get("scan_id"):
        d.footer.append(f"scan `{field(p, 'scan_id')}`")
    return d.add("\n".join(lines))


def is_win(p: Mapping[str, Any]) -> bool:
    """Net P&L > 0 (SPEC §5.2 outcome); without a P&L, the payload's outcome."""
    v = number(p.get("pnl_usd"))
    return v > 0 if v is not None else str(p.get("outcome")).upper() == "WIN"


def closed(p: Mapping[str, Any]) -> Draft:
    sym = field(p, "symbol")
    emoji = "✅" if is_win(p) else "❌"
    pnl = f"{fmt_usd(p.get('pnl_usd'), signed=True)} ({fmt_pct(p.get('pnl_pct'))})"
    reason = exit_label(p)
    lines = [
        f"*Net P&amp;L:* {pnl}",
        f"*Exit:* {reason}",
        f"*Avg entry:* {fmt_price(p.get('avg_entry'))} · *Exit fill:* {fmt_price(p.get('exit_fill'))}",
        f"*Hold:* {fmt_hours(p.get('hold_h'))}",
        f"*Fees:* {fmt_usd(p.get('fees_usd'))} · *Slippage:* {fmt_usd(p.get('slippage_usd'))}",
    ]
    if p.get("exit_reason") == ExitReason.TRAILING_STOP.value:
        lines.append(f"*High-water mark:* {fmt_price(p.get('high_water'))} · *Drawdown from it:* "
                     f"{fmt_pct(p.get('drawdown_from_high'))}")
    levels = number(p.get("levels"))
    if str(p.get("strategy")).upper() == "DCA" or (levels is not None and levels > 1):
        lines.append(f"*DCA levels filled:* {fmt_number(p.get('levels_filled'))} of {fmt_number(p.get('levels'))}")
    tag = strategy_tag(p)
    d = Draft(title=f"{emoji} {tag} closed: {plain_label(p.get('symbol'))}",
              summary=f"{emoji} {escape(tag)} closed {sym}: {pnl} — {reason}",
              footer=trade_footer(p, ("entered", "entry_time"), ("exited", "exit_time")))
    return d.add("\n".join(lines))


def no_data_close(p: Mapping[str, Any]) -> Draft:
    sym = field(p, "symbol")
    d = Draft(title=f"⚠️ No-data close: {plain_label(p.get('symbol'))}",
              summary=f"⚠️ {sym} closed without data at {fmt_price(p.get('raw_price'))} (Time Exit (no data))",
              footer=trade_footer(p))
    return d.add(f"*Symbol:* {sym}\n"
                 f"*Closed at the last known close:* {fmt_price(p.get('raw_price'))} "
                 f"(last bar {fmt_time(p.get('last_bar'))})\n"
                 "No bar reached the max hold within the grace period: closed as *Time Exit (no data)*.")


def measures(p: Mapping[str, Any]) -> dict[str, list[tuple[int, str, Any]]]:
    """The regime measures of a payload by kind (``ret`` / ``vol`` / ``decline``): (minutes, label, value)."""
    out: dict[str, list[tuple[int, str, Any]]] = {"ret": [], "vol": [], "decline": []}
    for k, v in p.items():
        m = _MEASURE.match(str(k))
        if m:
            out[m.group(1)].append((int(m.group(2)) * _UNIT_MIN[m.group(3)], f"{m.group(2)}{m.group(3)}", v))
    return {k: sorted(v, key=lambda x: x[0]) for k, v in out.items()}


def panic(p: Mapping[str, Any]) -> Draft:
    m = measures(p)

    def row(kind: str) -> str:
        return " · ".join(f"{label} {fmt_pct(v)}" for _, label, v in m[kind]) or NA

    vol = " · ".join(f"{label} {fmt_pct(v, signed=False)}" for _, label, v in m["vol"]) or NA
    lines = [f"*BTC:* {row('ret')}", f"*Vol:* {vol}", f"*Declines:* {row('decline')}"]
    trig = p.get("triggers")
    if trig:
        lines.insert(0, f"*Triggers:* {escape(', '.join(map(str, trig)) if isinstance(trig, list) else trig)}")
    lines.append("*New entries halted* while the regime is PANIC; exits keep running.")
    ret = {label: v for _, label, v in m["ret"]}
    d = Draft(title="🚨 PANIC — new entries halted",
              summary=f"🚨 PANIC: BTC {' · '.join(f'{k} {fmt_pct(v)}' for k, v in ret.items()) or NA}; "
                      "new entries halted",
              footer=[f"cycle point {fmt_time(p.get('cycle_point'))}"] if p.get("cycle_point") else [])
    return d.add("\n".join(lines))


def strategy_state(p: Mapping[str, Any], enabled: bool) -> Draft:
    """Strategy disabled / re-enabled by the §8.2 volatility state machine: what the payload has of vol24h, the
    limit, the re-enable rule and the earliest re-enable time."""
    tag = strategy_tag(p)
    lines = [f"*Strategy:* {escape(tag)}", f"*BTC vol 24h:* {fmt_pct(p.get('vol24h'), signed=False)}"]
    limit = p.get("limit", p.get("disable_at"))
    if limit is not None:
        lines.append(f"*Limit:* {fmt_pct(limit, signed=False)}")
    rule = p.get("reenable_rule")
    if rule:
        lines.append(f"*Re-enable rule:* {escape(rule)}")
    elif not enabled and (p.get("reenable_at") is not None or p.get("min_disabled_h") is not None):
        after = f"after {fmt_number(p.get('min_disabled_h'))} h" if p.get("min_disabled_h") is not None else None
        below = (f"vol 24h ≤ {fmt_pct(p.get('reenable_at'), signed=False)}" if p.get("reenable_at") is not None
                 else None)
        lines.append("*Re-enable rule:* " + " and ".join(x for x in (after, below) if x))
    if p.get("earliest_reenable_at") is not None:
        lines.append(f"*Earliest re-enable:* {fmt_time(p.get('earliest_reenable_at'))}")
    lines.append("New entries allowed again." if enabled else
                 "*New entries of this strategy halted*; open positions keep their exits.")
    title = f"▶️ {tag} re-enabled" if enabled else f"⏸️ {tag} disabled (volatility)"
    foot = [f"cycle point {fmt_time(p.get('cycle_point'))}"] if p.get("cycle_point") else []
    return Draft(title=title, summary=escape(title) + f": BTC vol 24h {fmt_pct(p.get('vol24h'), signed=False)}",
                 footer=foot).add("\n".join(lines))


def manual_close_ignored(p: Mapping[str, Any]) -> Draft:
    tg = field(p, "trade_group_id")
    d = Draft(title="⚠️ Manual close ignored",
              summary=f"⚠️ Manual close of {tg} ignored: not open",
              footer=[f"requested {fmt_time(p.get('requested_at'))}"])
    return d.add(f"*Trade:* `{tg}` is not open (closed already, or unknown)\n"
                 f"*Requested by:* {field(p, 'who')} — {field(p, 'why')}")


def daily_loss_gate(p: Mapping[str, Any]) -> Draft:
    day = f"{fmt_usd(p.get('day_pnl_usd'), signed=True)} ({fmt_pct(p.get('day_pnl_pct'))} of E₀ {fmt_usd(p.get('e0'))})"
    d = Draft(title="🛑 Daily loss gate — new entries halted",
              summary=f"🛑 Daily loss gate: day P&amp;L {day}; entries resume {fmt_time(p.get('resume_at'))}")
    return d.add(f"*Day P&amp;L:* {day}\n*Mark equity:* {fmt_usd(p.get('mark_equity'))}\n"
                 f"*Resumes:* {fmt_time(p.get('resume_at'))}\n"
                 "New entries halted until the next trading day; exits keep running.")


def loss_streak_pause(p: Mapping[str, Any]) -> Draft:
    streak = fmt_number(p.get("streak")) if p.get("streak") is not None else NA
    d = Draft(title="🛑 Loss-streak pause — new entries halted",
              summary=f"🛑 Loss-streak pause after {streak} losses; entries resume {fmt_time(p.get('resume_at'))}")
    return d.add(f"*Streak:* {streak} losing trades in a row\n*Resumes:* {fmt_time(p.get('resume_at'))}\n"
                 "New entries halted until then; exits keep running.")


def signal(p: Mapping[str, Any]) -> Draft:
    """A TAKE decision for #ml-signals."""
    sym = field(p, "symbol")
    tag = strategy_tag(p)
    lines = [
        f"*Symbol:* {sym} · *Tier:* {tier_text(p)}",
        f"*Price:* {fmt_price(p.get('price'))} · *Size:* {fmt_usd(p.get('size_usd'))}",
        f"*Take profit:* {fmt_pct(p.get('take_profit'))} · *Stop:* {stop_pct(p.get('stop_loss'))}",
        f"*Confidence:* {confidence_text(p)} · *Regime:* {field(p, 'regime')}",
    ]
    foot = [f"scan `{field(p, 'scan_id')}`"] if p.get("scan_id") else []
    foot += [f"cycle point {fmt_time(p.get('cycle_point'))}"] if p.get("cycle_point") else []
    return Draft(title=f"📡 TAKE {tag} {plain_label(p.get('symbol'))}",
                 summary=f"📡 TAKE {escape(tag)} {sym} at {fmt_price(p.get('price'))} "
                         f"(confidence {confidence_text(p)})", footer=foot).add("\n".join(lines))


RENDERERS = {
    "opened": opened,
    "closed": closed,
    "no_data_close": no_data_close,
    "panic": panic,
    "strategy_enabled": lambda p: strategy_state(p, True),
    "strategy_disabled": lambda p: strategy_state(p, False),
    "manual_close_ignored": manual_close_ignored,
    "daily_loss_gate": daily_loss_gate,
    "loss_streak_pause": loss_streak_pause,
    "signal": signal,
}
