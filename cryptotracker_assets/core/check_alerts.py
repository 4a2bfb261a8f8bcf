"""Asset-check alerts, once per failure episode (SPEC §12.1, §13.2; never imports dagster).

An evaluation of a check that *alerts* (severity ERROR, or one of the data-health and pipeline checks, whatever its
severity) opens an episode for its (asset, check, partition) at its first failure and says so once; later failures
of the same episode say nothing; the first passing evaluation closes it and says "resolved" once. A check that
queued its own detailed alert (its metadata carries a non-empty ``alert_message_id``) opens the episode silently —
its own message is the "failed" one — and still gets the "resolved" one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

OPEN_COLUMNS = ("asset", "check_name", "partition", "first_failed_at", "run_id", "message_id")
RESOLVED_COLUMNS = ("asset", "check_name", "partition", "resolved_at", "resolved_message_id")


@dataclass(frozen=True)
class CheckEvaluation:
    """One asset-check evaluation as the instance recorded it."""

    asset: str
    check: str
    partition: str | None
    passed: bool
    severity: str  # "ERROR" | "WARN"
    at: pd.Timestamp
    run_id: str | None = None
    description: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str]:
        return self.asset, self.check, self.partition or ""

    @property
    def check_key(self) -> str:
        return f"{self.asset}:{self.check}"


@dataclass
class Transitions:
    """What a batch of evaluations changes: episodes opened and closed, and the notes to say."""

    opened: list[dict[str, Any]] = field(default_factory=list)
    resolved: list[dict[str, Any]] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        return (pd.DataFrame(self.opened, columns=list(OPEN_COLUMNS)),
                pd.DataFrame(self.resolved, columns=list(RESOLVED_COLUMNS)))


def alerts(ev: CheckEvaluation, always: set[str]) -> bool:
    """Whether a failure of this check alerts: ERROR severity, or a check of ``always`` (``asset:check`` keys)."""
    return ev.severity.upper() == "ERROR" or ev.check_key in always


def transitions(open_episodes: Mapping[tuple[str, str, str], pd.Timestamp], evaluations: Iterable[CheckEvaluation],
                always: set[str], run_url: str) -> Transitions:
    """The episodes opened and closed by ``evaluations`` (in event order) given the ``open_episodes`` (key → first
    failure time), with one ``check_failed`` / ``check_resolved`` note each. ``run_url``: the webserver's base
    address; a note links its run."""
    state = dict(open_episodes)
    out = Transitions()
    for ev in evaluations:
        at = pd.Timestamp(ev.at).tz_convert("UTC")
        link = f"{run_url.rstrip('/')}/runs/{ev.run_id}" if ev.run_id else None
        if not ev.passed and ev.key not in state and alerts(ev, always):
            own = str(ev.metadata.get("alert_message_id") or "")
            note = None if own else {
                "kind": "check_failed", "cycle_point": at, "asset": ev.asset, "check": ev.check,
                "partition": ev.partition, "severity": ev.severity.upper(), "description": ev.description,
                "metadata": {k: v for k, v in list(ev.metadata.items())[:10]}, "run_id": ev.run_id,
                "run_url": link, "failed_at": at.isoformat(),
                "identity": {"asset": ev.asset, "check": ev.check, "partition": ev.partition or "",
                             "first_failed_at": at.isoformat()}}
            state[ev.key] = at
            out.opened.append({"asset": ev.asset, "check_name": ev.check, "partition": ev.partition or "",
                               "first_failed_at": at, "run_id": ev.run_id, "message_id": own or None})
            if note is not None:
                out.notes.append(note)
        elif ev.passed and ev.key in state:
            since = state.pop(ev.key)
            out.resolved.append({"asset": ev.asset, "check_name": ev.check, "partition": ev.partition or "",
                                 "resolved_at": at, "resolved_message_id": None})
            out.notes.append({
                "kind": "check_resolved", "cycle_point": at, "asset": ev.asset, "check": ev.check,
                "partition": ev.partition, "failed_since": pd.Timestamp(since).tz_convert("UTC").isoformat(),
                "resolved_at": at.isoformat(), "run_id": ev.run_id, "run_url": link,
                "identity": {"asset": ev.asset, "check": ev.check, "partition": ev.partition or "",
                             "resolved_at": at.isoformat()}})
    return out
