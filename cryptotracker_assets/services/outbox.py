"""Deliver the notification outbox (no Dagster): every queued message is rendered (Block Kit and plain text, from
its kind and payload) and sent through the notifier, then marked delivered in a transaction of its own. At least
once: a crash between a send and its mark re-sends that one message after a restart; a notifier that fails leaves
the message queued (its error and attempt count recorded) and never touches the ticks that queued it.

Slack's rate limit (about one message per second per channel; HTTP 429 with Retry-After) is honoured: posts to one
channel are spaced ``min_interval_s`` apart, a 429 holds that channel for its Retry-After (capped at
``max_retry_after_s``) without counting as a failed attempt, and a pass stops taking new messages after
``budget_s`` — what it did not reach stays queued for the next pass, in order. A burst (a PANIC closing twenty
positions) therefore queues instead of failing."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from ..core.notify import Message, render
from ..storage.warehouse import Warehouse

Send = Callable[[str, Message, str], None]  # (channel_key, message, channel)


def rendered(kind: str, payload_json: str, text: str, message_id: str) -> list[Message]:
    """The messages of one outbox row: its kind rendered from its payload (each text ends with ``[msg <id>]``, so a
    duplicate after a crash is recognisable); the stored text when the payload is not readable."""
    try:
        payload = json.loads(payload_json) if payload_json else {}
    except ValueError:
        payload = {}
    if not isinstance(payload, dict) or not payload:
        payload = {"text": text}
    return render(kind, payload, message_id=message_id)


@dataclass
class Pacing:
    """Per-channel spacing of posts and Retry-After holds (seconds on ``clock``)."""

    min_interval_s: float = 1.1
    max_retry_after_s: float = 900.0  # a Retry-After beyond 15 min is taken as 15 min
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    free_at: dict[str, float] = field(default_factory=dict)

    def wait_for(self, channel: str, deadline: float) -> bool:
        """Sleep until ``channel`` may take a post; False (no sleep) when that is after ``deadline``."""
        at = self.free_at.get(channel, 0.0)
        now = self.clock()
        if at > deadline:
            return False
        if at > now:
            self.sleep(at - now)
        return True

    def posted(self, channel: str) -> None:
        self.free_at[channel] = self.clock() + self.min_interval_s

    def hold(self, channel: str, retry_after_s: float) -> None:
        self.free_at[channel] = self.clock() + min(max(retry_after_s, self.min_interval_s), self.max_retry_after_s)


# The holds of the process the sensors run in (the daemon's code server): a Retry-After outlives the pass that met
# it, for the delivery sensor and the alert sensors alike.
SHARED_PACING = Pacing()


@dataclass
class Delivery:
    delivered: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # message id -> error
    deferred: list[str] = field(default_factory=list)  # rate limited or out of time: next pass
    pending: int = 0  # still undelivered after this pass

    def summary(self) -> str:
        return (f"{len(self.delivered)} delivered, {len(self.failed)} failed, {self.pending} still pending, "
                f"{len(self.deferred)} deferred (rate limit / time budget)"
                + (f"; first error: {next(iter(self.failed.values()))}" if self.failed else ""))


def deliver(wh: Warehouse, send: Send, *, limit: int = 100,
            now: Callable[[], pd.Timestamp] = lambda: pd.Timestamp.now(tz="UTC"),
            marks: Warehouse | None = None, pacing: Pacing | None = None, budget_s: float = 40.0,
            only: set[str] | None = None) -> Delivery:
    """One delivery pass over at most ``limit`` undelivered messages, oldest first (``only``: just these ids).

    A failing send is recorded (``mark_failed``) and the pass goes on with the next message; it is tried again on
    the next pass. A rate-limited send (an exception with ``retry_after_s``) holds its channel and is not a
    failure. ``marks``: the warehouse the marks are written through (default ``wh``). Give it the full lock wait
    when ``wh`` has a short one: a busy warehouse then skips the pass before anything is sent, while a message once
    sent is marked — waiting for the file if another process holds it — instead of being sent again."""
    marks = marks if marks is not None else wh
    pacing = pacing if pacing is not None else Pacing()
    deadline = pacing.clock() + budget_s
    result = Delivery()
    blocked: set[str] = set()  # channels held past the deadline: their later messages wait too (order kept)
    for m in wh.pending_messages(limit).itertuples(index=False):
        if only is not None and m.message_id not in only:
            continue
        if m.channel in blocked or not pacing.wait_for(m.channel, deadline):
            blocked.add(m.channel)
            result.deferred.append(m.message_id)
            continue
        try:
            parts = rendered(m.kind, m.payload_json, m.text, m.message_id)
            for i, part in enumerate(parts):
                if i and not pacing.wait_for(m.channel, deadline + 30.0):  # a started message finishes
                    raise TimeoutError("out of time between the parts of a split message")
                send(m.channel_key, part, m.channel)
                pacing.posted(m.channel)
        except Exception as exc:  # the notifier's failure is the outbox's business, never the tick's
            retry_after = getattr(exc, "retry_after_s", None)
            if retry_after is not None:
                pacing.hold(m.channel, float(retry_after))
                result.deferred.append(m.message_id)
                continue
            error = f"{type(exc).__name__}: {exc}"
            marks.mark_failed(m.message_id, error)
            result.failed[m.message_id] = error
            continue
        marks.mark_delivered(m.message_id, now())
        result.delivered.append(m.message_id)
    result.pending = marks.undelivered_count()
    return result
