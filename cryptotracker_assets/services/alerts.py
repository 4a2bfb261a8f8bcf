"""Run-failure and check alerts over the warehouse (no Dagster): the Dagster sensors hand over what the instance
recorded; this queues the messages in the outbox (durable, at least once) and tries to deliver them at once.

If the warehouse cannot take the message (it is the thing that failed: locked for longer than its lock wait, disk
full), the message goes straight to the notifier instead — an alert about a broken warehouse must not depend on it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..core.check_alerts import CheckEvaluation, transitions
from ..core.config import Config
from ..core.notices import notice_rows
from ..core.notify import render
from ..storage.warehouse import Warehouse
from .outbox import SHARED_PACING, Delivery, Send, deliver

ERROR_LINES = 12  # the lines of an error chain a failure message quotes


WRAPPERS = ("DagsterExecutionStepExecutionError",)  # Dagster's "Error occurred while executing op": its cause counts


def error_line(e: Any) -> str:
    """``Class: message`` of one error (Dagster's message often starts with the class already)."""
    cls = getattr(e, "cls_name", None) or "Error"
    msg = str(getattr(e, "message", e)).strip()
    first = msg.split(":", 1)[0]
    return msg if first == cls or first.endswith("." + cls) else f"{cls}: {msg}"


def error_chain(errors: Iterable[Any]) -> str:
    """The text of Dagster ``SerializableErrorInfo`` chains: each error ``Class: message``, then its causes
    (``caused by``) — never the stack; Dagster's own step wrapper is skipped when it has a cause. Duck-typed:
    anything with ``message``, ``cls_name``, ``cause``."""
    lines: list[str] = []
    for err in errors:
        depth, e = 0, err
        while e is not None and depth < 6:
            nxt = getattr(e, "cause", None) or getattr(e, "context", None)
            if not (getattr(e, "cls_name", None) in WRAPPERS and nxt is not None):
                lines.append(f"{'caused by ' if lines and depth else ''}{error_line(e)}")
            e = nxt
            depth += 1
    return "\n".join(lines)


def run_failure_note(*, job: str, run_id: str, partition: str | None, steps: list[str], error: str,
                     failed_at: pd.Timestamp, webserver_url: str) -> dict[str, Any]:
    at = pd.Timestamp(failed_at).tz_convert("UTC")
    return {"kind": "run_failure", "cycle_point": at, "identity": {"run_id": run_id}, "job": job, "run_id": run_id,
            "partition": partition, "steps": list(steps),
            "error": "\n".join(error.splitlines()[:ERROR_LINES * 4]), "run_url":
                f"{webserver_url.rstrip('/')}/runs/{run_id}", "failed_at": at.isoformat()}


@dataclass(frozen=True)
class Said:
    queued: list[str]  # message ids queued in the outbox by this call
    delivery: Delivery | None  # the immediate delivery pass (None when the warehouse could not take them)
    direct: int = 0  # messages sent straight to the notifier because the warehouse failed


def say(wh: Warehouse, rows: pd.DataFrame, send: Send, now: pd.Timestamp) -> Said:
    """Queue ``rows``, then deliver those ids now; when the warehouse fails, send them directly (not durable,
    never lost silently)."""
    ids = [str(i) for i in rows["message_id"]]
    try:
        wh.queue_messages(rows, now)
    except Exception:
        for r in rows.itertuples(index=False):
            for part in render(r.kind, {**json.loads(r.payload_json), "text": r.text},
                               message_id=r.message_id):
                send(r.channel_key, part, r.channel)
        return Said([], None, len(rows))
    return Said(ids, deliver(wh, send, only=set(ids), budget_s=20.0, pacing=SHARED_PACING) if ids else None)


def alert_run_failure(wh: Warehouse, cfg: Config, send: Send, note: Mapping[str, Any]) -> Said:
    rows = notice_rows([note], cfg, "alerts")
    return say(wh, rows, send, pd.Timestamp.now(tz="UTC"))


def alert_checks(wh: Warehouse, cfg: Config, send: Send, evaluations: list[CheckEvaluation],
                 always: set[str]) -> Said:
    """Open / close the failure episodes ``evaluations`` imply and say each once (one transaction for the episode
    rows and their messages)."""
    open_df = wh.open_check_alerts()
    episodes = {(r.asset, r.check_name, r.partition): r.first_failed_at for r in open_df.itertuples(index=False)}
    tr = transitions(episodes, evaluations, always, cfg.notifications.webserver_url)
    if not tr.opened and not tr.resolved:
        return Said([], None)
    rows = notice_rows(tr.notes, cfg, "alerts")
    opened, resolved = tr.frames()
    now = pd.Timestamp.now(tz="UTC")
    # No direct fallback here: if the episodes cannot be recorded this raises, the sensor's cursor stays and the
    # next evaluation tries the same evaluations again (a direct send would be repeated and "resolved" lost).
    wh.record_check_alerts(opened, resolved, rows, now)
    ids = [str(i) for i in rows["message_id"]]
    return Said(ids, deliver(wh, send, only=set(ids), budget_s=20.0, pacing=SHARED_PACING) if ids else None)


def queue_data_health(wh: Warehouse, cfg: Config, *, source: str, at: pd.Timestamp, text: str,
                      identity: Mapping[str, Any], symbols: list[str] | None = None,
                      counts: Mapping[str, int] | None = None, partition: str | None = None) -> str:
    """Queue a data-health notice (#system-alerts: failing checks with symbols and counts) in the outbox: its id
    derives from ``source``, ``at`` (the time the finding is about, not the time it was found) and ``identity``, so
    the same finding is queued once. Returns its message id."""
    note = {"kind": "data_health", "cycle_point": pd.Timestamp(at).tz_convert("UTC"),
            "identity": {"source": source, **identity}, "source": source, "partition": partition, "text": text,
            "symbols": list(symbols or [])[:50], "counts": dict(counts or {})}
    rows = notice_rows([note], cfg, "alerts")
    wh.queue_messages(rows, pd.Timestamp.now(tz="UTC"))
    return str(rows["message_id"].iloc[0])
