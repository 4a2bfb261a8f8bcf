"""Drafts of the #reports messages (SPEC §12.2): the trading report (MORNING / MIDDAY / EVENING / WEEKLY /
CATCH-UP / ON-DEMAND, one layout, the title differs), the retraining results and the shadow daily summary.
Percentages in the payloads are size-weighted fractions computed by the producer; nothing is summed here. Never
imports dagster."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .blocks import Draft
from .numbers import NA, escape, fmt_number, fmt_pct, fmt_price, fmt_score, fmt_time, fmt_usd, number
from .render_trades import field, strategy_tag

REPORT_TITLES = {
    "MORNING": "☀️ Morning report",
    "MIDDAY": "🌤️ Midday report",
    "EVENING": "🌙 Evening report",
    "WEEKLY": "📅 Weekly report",
    "CATCH-UP": "⏰ Catch-up report",
    "ON-DEMAND": "📋 On-demand report",
}
_LABEL = re.compile(r"^([A-Za-z][\w ()/.,-]{0,60}):(\s)")


def items(p: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    """The mappings of a list field (anything else in it is skipped)."""
    v = p.get(key)
    return [x for x in v if isinstance(x, Mapping)] if isinstance(v, list) else []


def pnl(usd: Any, pct: Any) -> str:
    """``+$12.30 (+1.23%)``."""
    return f"{fmt_usd(usd, signed=True)} ({fmt_pct(pct)})"


def trade_line(t: Any) -> str:
    """A best / worst trade: ``🚀 SWING SOL +$20.00 (+2.00%) · `id` ``; ``n/a`` for none."""
    if not isinstance(t, Mapping):
        return NA
    return (f"{escape(strategy_tag(t))} {field(t, 'symbol')} {pnl(t.get('pnl_usd'), t.get('pnl_pct'))} · "
            f"`{field(t, 'trade_group_id')}`")


def count(x: Any) -> str:
    return NA if number(x) is None else fmt_number(x)


def trading_report(p: Mapping[str, Any]) -> Draft:
    kind = str(p.get("report") or "")
    title = REPORT_TITLES.get(kind.upper(), f"📋 {kind or 'Trading'} report")
    d = Draft(title=title,
              summary=f"{escape(title)}: realised {pnl(p.get('realised_usd'), p.get('realised_pct'))}, "
                      f"unrealised {pnl(p.get('unrealised_usd'), p.get('unrealised_pct'))}",
              footer=[f"as of {fmt_time(p.get('as_of'))}"])
    head = [f"*Period:* {fmt_time(p.get('period_start'))} → {fmt_time(p.get('period_end'))} · "
            f"as of {fmt_time(p.get('as_of'))}"]
    catchup = p.get("catchup_of")
    if isinstance(catchup, list) and catchup:
        head.append("*Catch-up of:* " + ", ".join(escape(c) for c in catchup))
    d.add("\n".join(head))

    # the period
    d.add(f"*Realised P&amp;L:* {pnl(p.get('realised_usd'), p.get('realised_pct'))}\n"
          f"*Trades:* {count(p.get('trades_opened'))} opened · {count(p.get('trades_closed'))} closed\n"
          f"*Fees:* {fmt_usd(p.get('fees_usd'))} · *Slippage:* {fmt_usd(p.get('slippage_usd'))}")
    per = [f"{escape(strategy_tag(s))}: {count(s.get('closed'))} closed ({count(s.get('wins'))} W / "
           f"{count(s.get('losses'))} L, win rate {fmt_pct(s.get('win_rate'), signed=False)}) · "
           f"{pnl(s.get('realised_usd'), s.get('realised_pct'))}" for s in items(p, "per_strategy")]
    d.add("*By strategy*\n" + ("\n".join(per) or "none"))
    d.add(f"*Best trade:* {trade_line(p.get('best_trade'))}\n*Worst trade:* {trade_line(p.get('worst_trade'))}")
    d.divider()

    # now
    d.add(f"*Unrealised P&amp;L:* {pnl(p.get('unrealised_usd'), p.get('unrealised_pct'))}\n"
          f"*Equity:* book {fmt_usd(p.get('book_equity'))} · mark {fmt_usd(p.get('mark_equity'))} · "
          f"*Cash:* {fmt_usd(p.get('cash'))}\n"
          f"*Open positions:* {count(p.get('open_positions'))} / {count(p.get('max_open_total'))}")
    top = items(p, "top_open")
    d.add("*Top open by unrealised P&amp;L*" + ("" if top else "\nnone"))
    for i, t in enumerate(top, start=1):  # one section per position: a card each
        d.add(f"{i}. {escape(strategy_tag(t))} *{field(t, 'symbol')}* "
              f"{pnl(t.get('unrealised_usd'), t.get('unrealised_pct'))}\n"
              f"mark {fmt_price(t.get('mark'))} · TP {fmt_price(t.get('take_profit_price'))} "
              f"({fmt_pct(t.get('to_tp_pct'))} to TP) · `{field(t, 'trade_group_id')}`")
    near = [f"{escape(strategy_tag(t))} *{field(t, 'symbol')}* near {field(t, 'level')}: mark "
            f"{fmt_price(t.get('mark'))} · {field(t, 'level')} {fmt_price(t.get('level_price'))} "
            f"({fmt_pct(t.get('distance_pct'))}) · `{field(t, 'trade_group_id')}`" for t in items(p, "near_level")]
    d.add(f"*Near TP or stop (within {fmt_pct(p.get('near_level_threshold'), signed=False)})*\n"
          + ("\n".join(near) or "none"))
    d.divider()

    # the market
    ready = p.get("ready")
    ready_text = (" · ".join(f"{escape(k)} {count(v)}" for k, v in ready.items()) or "none"
                  if isinstance(ready, Mapping) else NA)
    gates = p.get("gates")
    gates_text = ("; ".join(escape(g) for g in gates) or "none") if isinstance(gates, list) else NA
    champs = [f"{escape(strategy_tag(c))} " + (f"`{field(c, 'model_id')}` (composite {fmt_score(c.get('composite'))})"
                                               if c.get("model_id") else "none")
              for c in items(p, "champions")]
    btc = fmt_price(p.get("btc_price"))
    d.add(f"*BTC:* {'$' + btc if btc != NA else NA} ({fmt_pct(p.get('btc_change_pct'))} over the period)\n"
          f"*Regime:* {field(p, 'regime')} · *Vol 24h:* {fmt_pct(p.get('vol24h'), signed=False)}\n"
          f"*Ready:* {ready_text}\n"
          f"*Active gates:* {gates_text}\n"
          f"*Champions:* {' · '.join(champs) or 'none'}")
    return d


def gate_line(g: Mapping[str, Any]) -> str:
    ok = g.get("passed")
    mark = "✅" if ok is True else ("❌" if ok is False else "❔")
    return (f"{mark} {field(g, 'name')}: {fmt_number(g.get('value')) if g.get('value') is not None else NA} "
            f"(threshold {fmt_number(g.get('threshold')) if g.get('threshold') is not None else NA})")


def retraining_result(p: Mapping[str, Any]) -> Draft:
    strategies = items(p, "strategies")
    trained = [s for s in strategies if s.get("trained")]
    promoted = [escape(s.get("strategy")) for s in strategies if s.get("promoted")]
    d = Draft(title="🧠 Retraining results",
              summary=f"🧠 Retraining: {len(trained)} of {len(strategies)} trained, "
                      f"promoted: {', '.join(promoted) or 'none'}")
    if p.get("cycle_point"):
        d.footer.append(f"run {fmt_time(p.get('cycle_point'))}")
    for s in strategies:  # one section per strategy
        tag = escape(strategy_tag(s))
        if not s.get("trained"):
            head = f"*{tag}* — not trained: {field(s, 'why_not')}"
        elif s.get("promoted"):
            head = f"*{tag}* — trained · *promoted* ✅ `{field(s, 'model_id')}`"
        else:
            model = f" (candidate `{field(s, 'model_id')}`)" if s.get("model_id") else ""
            head = f"*{tag}* — trained · not promoted{model}"
        lines = [head,
                 f"Rows: {count(s.get('rows_real'))} real · {count(s.get('rows_simulated'))} simulated · "
                 f"{count(s.get('rows_shadow'))} shadow",
                 f"Composite: {fmt_score(s.get('composite'))} vs champion {fmt_score(s.get('champion_composite'))}"]
        gates = items(s, "gates")
        lines += [gate_line(g) for g in gates] if gates else ["Gates: none evaluated"]
        d.add("\n".join(lines))
    if not strategies:
        d.add("No strategy in this run.")
    return d


def _tabular(paragraph: str) -> bool:
    """A paragraph laid out in columns (the leaderboard): it needs a fixed-width font."""
    lines = paragraph.split("\n")
    return len(lines) > 1 and sum("   " in ln.strip() for ln in lines) >= len(lines) // 2


def shadow_daily_summary(p: Mapping[str, Any]) -> Draft:
    """The producer's summary text (``summary``, else ``text``) laid out: the leaderboard in a code block, a
    leading ``label:`` in bold."""
    text = str(p.get("summary") or p.get("text") or "")
    d = Draft(title="🧪 Shadow daily summary", summary="🧪 Shadow daily summary")
    paragraphs = [x for x in text.split("\n\n") if x.strip()]
    if paragraphs and paragraphs[0].startswith("Shadow daily summary"):
        first, _, rest = paragraphs[0].partition("\n")
        d.footer.append(escape(first))
        d.summary = f"🧪 {escape(first)}"
        paragraphs = ([rest] if rest.strip() else []) + paragraphs[1:]
    for para in paragraphs:
        if _tabular(para):
            d.add_code(escape(para))
        else:
            d.add("\n".join(_LABEL.sub(lambda m: f"*{m.group(1)}:*{m.group(2)}", escape(ln))
                            for ln in para.split("\n")))
    if not paragraphs:
        d.add(NA)
    return d


RENDERERS = {
    "trading_report": trading_report,
    "retraining_result": retraining_result,
    "shadow_daily_summary": shadow_daily_summary,
}
