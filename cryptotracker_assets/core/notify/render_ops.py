"""Drafts of the #system-alerts messages (SPEC §12.2 "Threshold · failure · data health"): threshold approvals,
rollbacks, rejections and proposals; failed promotion gates and champion problems; pipeline health (failed ingest
runs, long runs, engine lag); run failures and asset-check episodes. Producers that already build a ``text`` get
their fields laid out when the fields are there, and their ``text`` otherwise. Never imports dagster."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from .blocks import Draft
from .numbers import NA, clip, escape, fmt_duration, fmt_number, fmt_time, fmt_value, parse_time
from .render_trades import field, strategy_tag

ERROR_LINES = 12  # the lines of an error chain a run-failure message quotes
ERROR_CHARS = 1500
METADATA_ITEMS = 10
EVIDENCE_ITEMS = 8
_COMMAND = re.compile(r"`(cryptotracker [^`]+)`")


def _value(v: Any) -> str:
    return NA if v is None else (fmt_number(v) if isinstance(v, (int, float)) else escape(v))


def changes(p: Mapping[str, Any], key: str = "changes") -> list[Mapping[str, Any]] | None:
    """The key changes of a payload (a list of ``{key, old, new}``, or that list as JSON text); None when absent
    or unreadable."""
    v = p.get(key)
    if isinstance(v, str):
        try:
            v = json.loads(v)
        except ValueError:
            return None
    if not isinstance(v, list):
        return None
    return [c for c in v if isinstance(c, Mapping)]


def change_lines(items: list[Mapping[str, Any]]) -> list[str]:
    """``• `key`: old → new`` (with the recommended value when it differs)."""
    out = []
    for c in items:
        rec = c.get("recommended")
        extra = f" (recommended {_value(rec)})" if rec is not None and rec != c.get("new") else ""
        out.append(f"• `{field(c, 'key')}`: {_value(c.get('old'))} → {_value(c.get('new'))}{extra}")
    return out


def evidence_text(ev: Any) -> str:
    """The first scalar fields of an evidence mapping, ``key value`` (numbers formatted)."""
    if not isinstance(ev, Mapping):
        return NA
    pairs = [(k, v) for k, v in ev.items() if v is not None and not isinstance(v, (Mapping, list, tuple))]
    return ", ".join(f"{escape(k)} {fmt_value(str(k), v)}" for k, v in pairs[:EVIDENCE_ITEMS]) or NA


def parameter_of(p: Mapping[str, Any], items: list[Mapping[str, Any]]) -> str:
    """The payload's ``parameter``; else the changed keys."""
    if p.get("parameter"):
        return escape(p["parameter"])
    return ", ".join(f"`{field(c, 'key')}`" for c in items) or NA


def _strategy_title(prefix: str, p: Mapping[str, Any]) -> str:
    return f"{prefix}: {strategy_tag(p)}" if p.get("strategy") else prefix


def _text_fallback(d: Draft, p: Mapping[str, Any]) -> Draft:
    return d.add(escape(p.get("text") or NA))


def threshold_approved(p: Mapping[str, Any]) -> Draft:
    d = Draft(title=_strategy_title("✅ Threshold approved", p), summary="")
    items = changes(p)
    if items is None:
        d.summary = escape(clip(str(p.get("text") or d.title), 300))
        return _text_fallback(d, p)
    ev = p.get("evidence") if isinstance(p.get("evidence"), Mapping) else {}
    tier = p.get("tier") or ev.get("tier")
    d.summary = (f"✅ Threshold approved ({escape(p.get('strategy'))}): "
                 + "; ".join(ln[2:] for ln in change_lines(items)) + f" by {field(p, 'who')}")
    lines = [f"*Parameter:* {parameter_of(p, items)}", *change_lines(items),
             f"*Evidence tier:* {escape(tier) if tier else NA}",
             f"*Evidence:* {evidence_text(p.get('evidence'))}",
             f"*By:* {field(p, 'who')} — {field(p, 'why')}",
             "In force from the next cycle point."]
    if p.get("revision_id") is not None:
        d.footer.append(f"revision {_value(p.get('revision_id'))}")
    return d.add("\n".join(lines))


def threshold_rollback(p: Mapping[str, Any]) -> Draft:
    d = Draft(title=_strategy_title("↩️ Threshold rollback", p), summary="")
    items = changes(p)
    if items is None:
        d.summary = escape(clip(str(p.get("text") or d.title), 300))
        return _text_fallback(d, p)
    d.summary = (f"↩️ Threshold rollback ({escape(p.get('strategy'))}): restored "
                 + "; ".join(ln[2:] for ln in change_lines(items)))
    lines = [f"*Trigger:* {field(p, 'trigger')}", "*Restored:*", *change_lines(items),
             f"*By:* {field(p, 'who')} — {field(p, 'why')}", "In force from the next cycle point."]
    if p.get("reverts") is not None:
        d.footer.append(f"reverts revision {_value(p.get('reverts'))}")
    return d.add("\n".join(lines))


def threshold_rejected(p: Mapping[str, Any]) -> Draft:
    """The producer names the proposal only in its text: the text, then who/why."""
    d = Draft(title="🚫 Proposal rejected", summary=f"🚫 Proposal rejected by {field(p, 'who')}")
    if p.get("proposal_id"):
        d.footer.append(f"proposal `{field(p, 'proposal_id')}`")
    items = changes(p)
    if items:
        d.add("\n".join([f"*Parameter:* {parameter_of(p, items)}", *change_lines(items)]))
    elif p.get("text"):
        d.add(escape(p["text"]))
    return d.add(f"*By:* {field(p, 'who')} — {field(p, 'why')}")


def rollback_proposed(p: Mapping[str, Any]) -> Draft:
    d = Draft(title=_strategy_title("⚠️ Rollback proposed", p), summary="")
    items = changes(p)
    if items is None:
        d.summary = escape(clip(str(p.get("text") or d.title), 300))
        return _text_fallback(d, p)
    d.summary = f"⚠️ Rollback proposed ({escape(p.get('strategy'))}): {field(p, 'trigger')}"
    lines = [f"*Trigger:* {field(p, 'trigger')}", "*Would restore:*", *change_lines(items),
             f"*Evidence:* {evidence_text(p.get('evidence'))}"]
    cmd = _COMMAND.search(str(p.get("text") or ""))
    if cmd:
        lines.append(f"*Approve:* `{escape(cmd.group(1))} --by … --why …`")
    return d.add("\n".join(lines))


def proposal(p: Mapping[str, Any]) -> Draft:
    items = changes(p) or []
    pid = field(p, "proposal_id")
    d = Draft(title=_strategy_title("💡 Threshold proposal", p),
              summary=f"💡 Proposal {pid}: " + ("; ".join(ln[2:] for ln in change_lines(items)) or NA),
              footer=[f"proposal `{pid}`", f"expires {fmt_time(p.get('expires_at'))}"])
    lines = [f"*Parameter:* {parameter_of(p, items)}", *change_lines(items),
             f"*Variation:* {field(p, 'variation')} · *Evidence tier:* {field(p, 'tier')}"]
    if p.get("blocked_reason"):
        lines.append(f"*Blocked:* {field(p, 'blocked_reason')}")
    else:
        lines.append(f"*Approve:* `cryptotracker approve {pid} --by … --why …` (or `reject`)")
    return d.add("\n".join(lines))


def promotion_gates_failed(p: Mapping[str, Any]) -> Draft:
    failed = p.get("failed") if isinstance(p.get("failed"), list) else []
    champ = f"`{field(p, 'champion')}` stays" if p.get("champion") else "none (rule confidence)"
    d = Draft(title=_strategy_title("🚫 Promotion gates failed", p),
              summary=f"🚫 {field(p, 'model_version')} not promoted: {len(failed)} gate(s) failed")
    d.add(f"*Candidate:* `{field(p, 'model_version')}`\n*Champion:* {champ}\n*Failed gates:*\n"
          + ("\n".join(f"• {escape(g)}" for g in failed) or NA))
    return d


def champion_unavailable(p: Mapping[str, Any]) -> Draft:
    d = Draft(title=_strategy_title("⚠️ Champion unavailable", p),
              summary=f"⚠️ {escape(strategy_tag(p))} champion unavailable: {field(p, 'problem')}")
    return d.add(f"*Problem:* {field(p, 'problem')}\n*Fallback:* {field(p, 'fallback')}")


def champion_retired(p: Mapping[str, Any]) -> Draft:
    d = Draft(title=_strategy_title("📤 Champion retired", p),
              summary=f"📤 {escape(strategy_tag(p))} champion {field(p, 'model_id')} retired: {field(p, 'reason')}")
    by = f"`{field(p, 'replaced_by')}`" if p.get("replaced_by") else "none (rule confidence until a new champion)"
    return d.add(f"*Model:* `{field(p, 'model_id')}`\n*Replaced by:* {by}\n*Reason:* {field(p, 'reason')}")


def _listing(text: str) -> str:
    """A producer's ``head — item; item`` text as a head line and bullets (each item escaped)."""
    head, sep, tail = text.partition(" — ")
    if not sep:
        return escape(text)
    return escape(head) + "\n" + "\n".join(f"• {escape(x.strip())}" for x in tail.split("; ") if x.strip())


def ingest_run_failed(p: Mapping[str, Any]) -> Draft:
    runs = p.get("runs") if isinstance(p.get("runs"), list) else []
    d = Draft(title=f"🔥 Ingest run failed: {p.get('job') or '?'}",
              summary=f"🔥 {field(p, 'job')}: {len(runs) or NA} failed ingest run(s) in 24 h")
    return d.add(_listing(str(p.get("text") or "")) if p.get("text") else
                 f"*Job:* {field(p, 'job')}\n*Runs:* " + (", ".join(f"`{escape(r)}`" for r in runs) or NA))


def long_run(p: Mapping[str, Any]) -> Draft:
    runs = p.get("runs") if isinstance(p.get("runs"), list) else []
    d = Draft(title="🐢 Long-running run(s)", summary=f"🐢 {len(runs) or NA} run(s) in progress for too long")
    return d.add(_listing(str(p.get("text") or "")) if p.get("text") else
                 "*Runs:* " + (", ".join(f"`{escape(r)}`" for r in runs) or NA))


def engine_lag(p: Mapping[str, Any]) -> Draft:
    lag = _value(p.get("lag_cycle_points"))
    d = Draft(title="⏳ Paper engine behind", summary=f"⏳ Paper engine behind by {lag} cycle points")
    lines = [f"*Behind by:* {lag} cycle points",
             f"*Last processed:* {fmt_time(p.get('cursor'))} · *Bars allow:* {fmt_time(p.get('newest_cycle_point'))}"]
    if p.get("reason"):
        lines.append(f"*Why:* {field(p, 'reason')}")
    return d.add("\n".join(lines))


def run_link(p: Mapping[str, Any]) -> str:
    """``<url|Open run abcd1234>``: the url is ours (the webserver's), made safe anyway; the label escaped."""
    url = p.get("run_url")
    if not url:
        return NA
    safe = str(url).replace(" ", "%20").replace("|", "%7C").replace("<", "%3C").replace(">", "%3E")
    rid = str(p.get("run_id") or "")
    return f"<{safe}|Open run {escape(rid[:8])}>" if rid else f"<{safe}|Open run>"


def error_summary(error: Any) -> str:
    """The first :data:`ERROR_LINES` lines of an error chain, at most :data:`ERROR_CHARS` characters, escaped."""
    lines = str(error or "").strip("\n").split("\n")
    head = "\n".join(lines[:ERROR_LINES])
    more = len(lines) - ERROR_LINES
    text = clip(head, ERROR_CHARS) + (f"\n… {more} more line(s)" if more > 0 else "")
    return escape(text)


def partition_text(p: Mapping[str, Any]) -> str:
    return field(p, "partition") if p.get("partition") else "none"


def run_failure(p: Mapping[str, Any]) -> Draft:
    steps = p.get("steps") if isinstance(p.get("steps"), list) else []
    first = str(p.get("error") or "").strip().split("\n")[0]
    d = Draft(title=f"🔥 Run failed: {p.get('job') or '?'}",
              summary=f"🔥 Run of {field(p, 'job')} failed: {escape(clip(first, 200)) or NA}",
              footer=[f"failed {fmt_time(p.get('failed_at'))}"] + ([f"run `{field(p, 'run_id')}`"]
                                                                  if p.get("run_id") else []))
    d.add(f"*Job:* {field(p, 'job')} · *Partition:* {partition_text(p)}\n"
          f"*Failed steps:* {', '.join(f'`{escape(s)}`' for s in steps) or 'none recorded'}\n"
          f"*Run:* {run_link(p)}")
    if p.get("error"):
        d.add_code(error_summary(p.get("error")))
    return d


def metadata_lines(meta: Any) -> list[str]:
    if not isinstance(meta, Mapping):
        return []
    pairs = list(meta.items())
    out = [f"• {escape(k)}: {fmt_value(str(k), v)}" for k, v in pairs[:METADATA_ITEMS]]
    if len(pairs) > METADATA_ITEMS:
        out.append(f"… and {len(pairs) - METADATA_ITEMS} more")
    return out


def check_failed(p: Mapping[str, Any]) -> Draft:
    sev = str(p.get("severity") or "").upper()
    icon = "🔴" if sev == "ERROR" else "🟡"
    name = f"{p.get('asset') or '?'} · {p.get('check') or '?'}"
    d = Draft(title=f"{icon} Check failed: {name}",
              summary=f"{icon} Check {field(p, 'check')} on {field(p, 'asset')} failed ({escape(sev) or NA})",
              footer=[f"failed {fmt_time(p.get('failed_at'))}"])
    lines = [f"*Asset:* `{field(p, 'asset')}` · *Check:* `{field(p, 'check')}`",
             f"*Partition:* {partition_text(p)} · *Severity:* {escape(sev) or NA}",
             f"*Description:* {escape(clip(str(p.get('description')), 1000)) if p.get('description') else NA}"]
    meta = metadata_lines(p.get("metadata"))
    if meta:
        lines += ["*Metadata:*", *meta]
    lines.append(f"*Run:* {run_link(p)}")
    return d.add("\n".join(lines))


def check_resolved(p: Mapping[str, Any]) -> Draft:
    since, at = parse_time(p.get("failed_since")), parse_time(p.get("resolved_at"))
    span = fmt_duration((at - since).total_seconds()) if since and at else NA
    name = f"{p.get('asset') or '?'} · {p.get('check') or '?'}"
    d = Draft(title=f"✅ Check resolved: {name}",
              summary=f"✅ Check {field(p, 'check')} on {field(p, 'asset')} passes again (failing for {span})",
              footer=[f"resolved {fmt_time(p.get('resolved_at'))}"])
    return d.add(f"*Asset:* `{field(p, 'asset')}` · *Check:* `{field(p, 'check')}`\n"
                 f"*Partition:* {partition_text(p)}\n"
                 f"*Failing since:* {fmt_time(p.get('failed_since'))} · *Resolved:* {fmt_time(p.get('resolved_at'))}"
                 f" ({span})\n*Run:* {run_link(p)}")


RENDERERS = {
    "threshold_approved": threshold_approved,
    "threshold_rollback": threshold_rollback,
    "threshold_rejected": threshold_rejected,
    "rollback_proposed": rollback_proposed,
    "proposal": proposal,
    "promotion_gates_failed": promotion_gates_failed,
    "champion_unavailable": champion_unavailable,
    "champion_retired": champion_retired,
    "ingest_run_failed": ingest_run_failed,
    "long_run": long_run,
    "engine_lag": engine_lag,
    "run_failure": run_failure,
    "check_failed": check_failed,
    "check_resolved": check_resolved,
}
