"""Deliver the notification outbox (no Dagster): every queued message is sent through the notifier, then marked
delivered in a transaction of its own. At least once: a crash between a send and its mark re-sends that one
message after a restart; a notifier that fails leaves the message queued (its error and attempt count recorded)
and never touches the ticks that queued it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from ..storage.warehouse import Warehouse

Send = Callable[[str, str, str], None]  # (channel_key, text, channel)


def with_id(text: str, message_id: str) -> str:
    """The text as sent: it carries its message id, so a duplicate after a crash is recognisable."""
    return f"{text} [msg {message_id}]"


@dataclass
class Delivery:
    delivered: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # message id -> error
    pending: int = 0  # still undelivered after this pass

    def summary(self) -> str:
        return (f"{len(self.delivered)} delivered, {len(self.failed)} failed, {self.pending} still pending"
                + (f"; first error: {next(iter(self.failed.values()))}" if self.failed else ""))


def deliver(wh: Warehouse, send: Send, *, limit: int = 100,
            now: Callable[[], pd.Timestamp] = lambda: pd.Timestamp.now(tz="UTC"),
            marks: Warehouse | None = None) -> Delivery:
    """One delivery pass over at most ``limit`` undelivered messages, oldest first. A failing send is recorded
    (``mark_failed``) and the pass goes on with the next message; it is tried again on the next pass.

    ``marks``: the warehouse the marks are written through (default ``wh``). Give it the full lock wait when ``wh``
    has a short one: a busy warehouse then skips the pass before anything is sent, while a message once sent is
    marked — waiting for the file if another process holds it — instead of being sent again on the next pass."""
    marks = marks if marks is not None else wh
    result = Delivery()
    for m in wh.pending_messages(limit).itertuples(index=False):
        try:
            send(m.channel_key, with_id(m.text, m.message_id), m.channel)
        except Exception as exc:  # the notifier's failure is the outbox's business, never the tick's
            error = f"{type(exc).__name__}: {exc}"
            marks.mark_failed(m.message_id, error)
            result.failed[m.message_id] = error
            continue
        marks.mark_delivered(m.message_id, now())
        result.delivered.append(m.message_id)
    result.pending = marks.undelivered_count()
    return result
