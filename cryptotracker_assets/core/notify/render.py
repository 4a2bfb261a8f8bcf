"""One entry point from an outbox row to Slack messages: :func:`render` (kind + payload → :class:`~.blocks.Message`
parts). The payload is what ``notification_outbox.payload_json`` holds (the delivery adds the stored ``text``).
Never imports dagster or slack_sdk.

Every kind of SPEC §12.2 has its layout (:mod:`.render_trades`, :mod:`.render_reports`, :mod:`.render_ops`); any
other kind is rendered generically: a title from the kind, the payload's ``text`` if present, else its scalar
fields as ``key: value`` lines with numbers formatted. A payload that a layout cannot read (a field of the wrong
type) falls back to the generic rendering: a message that cannot be formatted must still be said, and an
exception here would keep it queued in the outbox forever.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from . import render_ops, render_reports, render_trades
from .blocks import Draft, Message, compose
from .numbers import escape, fmt_time, fmt_value

HIDDEN = ("kind", "channel", "identity", "text", "cycle_point")  # routing fields, not content

RENDERERS: dict[str, Callable[[Mapping[str, Any]], Draft]] = {
    **render_trades.RENDERERS, **render_reports.RENDERERS, **render_ops.RENDERERS}


def title_of(kind: str) -> str:
    """``ingest_run_failed`` → ``Ingest run failed``."""
    words = str(kind).replace("_", " ").replace("-", " ").strip()
    return (words[:1].upper() + words[1:]) or "Notification"


def generic(kind: str, payload: Mapping[str, Any]) -> Draft:
    """Any kind: title from the kind; the payload's ``text``, else its scalar fields (and lists of scalars) as
    ``key: value`` lines."""
    title = f"🔔 {title_of(kind)}"
    d = Draft(title=title, summary=escape(title))
    if payload.get("cycle_point") is not None:
        d.footer.append(f"at {fmt_time(payload.get('cycle_point'))}")
    text = payload.get("text")
    if isinstance(text, str) and text.strip():
        d.summary = escape(text.strip().split("\n")[0][:300])
        return d.add(escape(text))
    lines = []
    for k, v in payload.items():
        if k in HIDDEN or isinstance(v, Mapping):
            continue
        if isinstance(v, (list, tuple)) and any(isinstance(x, (Mapping, list, tuple)) for x in v):
            continue
        lines.append(f"*{escape(k)}:* {fmt_value(str(k), v)}")
    return d.add("\n".join(lines) or "(no fields)")


def render(kind: str, payload: Mapping[str, Any], *, message_id: str | None = None) -> list[Message]:
    """The Slack messages of one notification: usually one; several under the split rule of :mod:`.blocks` (each
    part's text then ends ``[msg {message_id} k/n]``). Never raises on a payload missing fields (``n/a``)."""
    p: Mapping[str, Any] = payload if isinstance(payload, Mapping) else {}
    kind = str(kind)
    layout = RENDERERS.get(kind)
    try:
        draft = layout(p) if layout is not None else generic(kind, p)
    except Exception as exc:  # noqa: BLE001 - see the module docstring
        draft = generic(kind, p)
        draft.footer.append(f"shown as raw fields: {escape(type(exc).__name__)}")
    return compose(draft, message_id)
