"""The threshold manager against the warehouse (SPEC §0.5, §10.5–§10.6, I-17), without Dagster.

- :func:`effective_config`: ``config.yaml`` ⊕ the user file ⊕ the revisions applied before ``at`` (all when None),
  validated again and versioned (SPEC §0.3). :func:`config_timeline`: the configs in force over a span of cycle
  points — a revision applied at e is in force from the first cycle point T > e.
- :func:`approve` / :func:`reject`: an operator's decision on a threshold proposal (``threshold_recommendations``) or a
  rollback proposal (``rollback_proposals``). Refused, with the reason and nothing written, for an unknown, blocked,
  EXPIRED or already decided proposal, and when a safety gate refuses again at approval (TTL, the daily quota of
  approvals, the same regime over ``regime_stable_h``), when the config changed since the proposal, or when the
  resulting config would not validate. An approval writes the decision and the revision — with the strategy's
  baseline and the config version it makes — and queues the alert, in ONE transaction.
- :func:`rollback_monitor`: every ``rollback.check_every_h`` for ``monitor_h``, the triggers of SPEC §10.6 on each
  approval's real trades; a trigger restores the exact previous values as a new revision by ``system:rollback`` (or
  records a rollback proposal when ``rollback.automatic`` is false) and alerts. Each revision is rolled back (or
  proposed for rollback) at most once.
- :func:`rollback_last`: ``cryptotracker rollback --last 24h``: every revision applied in the window that is not
  reverted yet, newest first, each restore a new revision, all in one transaction.

Proposal status (SPEC §0.4) is derived, never stored: APPROVED / REJECTED from ``proposal_decisions``, ROLLED_BACK when
the approval's revision was reverted by a rollback revision, EXPIRED when undecided and now ≥ ``expires_at``, else
PROPOSED (a blocked proposal stays PROPOSED and is refused at approval). Rollback proposals live in
``rollback_proposals`` (``ROLLBACK_r{revision}_{yyyymmddHHMM}``); they never expire, and one whose revision was
reverted otherwise shows EXPIRED.

Config versions: a revision records the version of the effective config it makes — a rollback a NEW number whose
content hash equals the one of the version before the approval (SPEC §0.3 counts every change; ``config_versions``
compares a new content with the latest row only). A refusal records nothing, not even the current version.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from ..core.common import hours, utc
from ..core.config import Config, ConfigError, Strategy, build_config, raw_dict
from ..core.revisions import (ROLLBACK_WHO, Decision, KeyChange, ProposalStatus, Revision, RevisionKind,
                              alert_note, alert_rows, baseline_of, changes_text, monitored, monitored_closes,
                              parse_changes, proposal_status, restore_of, revision_note, revisions_from_frame,
                              reverted_ids, rollback_proposal_id, rollback_trigger, stale_keys, with_changes)
from ..core.shadows.recommend import fresh, quota_ok, regime_stable
from ..storage.warehouse import Warehouse
from ..storage.revisions import PlannedRevision, RevisionWrite
from .config_versions import record_version, with_version
from .operator import first_cycle_point_after, read_ledger

THRESHOLD = "threshold"
ROLLBACK = "rollback"


class RevisionError(ValueError):
    """A decision or rollback that cannot be accepted; the message says why. Nothing was written."""


# ---------------------------------------------------------------------------------------------------------------
# The stored state: proposals with their derived status
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProposalView:
    """A threshold or rollback proposal with its decision and derived status."""

    proposal_id: str
    kind: str  # THRESHOLD or ROLLBACK
    strategy: Strategy
    parameter: str  # the threshold parameter, or "rollback of revision N"
    changes: tuple[KeyChange, ...]
    created_at: pd.Timestamp
    expires_at: pd.Timestamp | None  # None: a rollback proposal never expires
    status: ProposalStatus
    config_version: int
    evidence: dict[str, Any]
    tier: str | None = None
    variation: str | None = None
    recommended: dict[str, Any] = field(default_factory=dict)
    blocked_reason: str | None = None
    decision: dict[str, Any] | None = None
    reverts: int | None = None  # a rollback proposal's approval revision
    trigger: str | None = None


@dataclass(frozen=True)
class RevisionState:
    """The four tables as read in one read transaction."""

    proposals: pd.DataFrame
    rollback_proposals: pd.DataFrame
    decisions: pd.DataFrame
    revisions: list[Revision]

    @classmethod
    def read(cls, wh: Warehouse) -> "RevisionState":
        return cls.of(wh.revision_tables())

    @classmethod
    def of(cls, tables: dict[str, pd.DataFrame]) -> "RevisionState":
        """From :meth:`~..storage.warehouse.Warehouse.revision_tables`."""
        return cls(tables["proposals"], tables["rollback_proposals"], tables["decisions"],
                   revisions_from_frame(tables["revisions"]))

    @property
    def last_revision_id(self) -> int:
        return self.revisions[-1].revision_id if self.revisions else 0

    def revision(self, revision_id: int) -> Revision | None:
        return next((r for r in self.revisions if r.revision_id == revision_id), None)

    def views(self, now: pd.Timestamp) -> list[ProposalView]:
        """Every proposal (threshold ones, then rollback ones), oldest first, with its status at ``now``."""
        decided = {r["proposal_id"]: r for r in self.decisions.to_dict("records")}
        reverted = reverted_ids(self.revisions)
        out = []
        for r in self.proposals.to_dict("records"):
            d = decided.get(r["proposal_id"])
            items = json.loads(r["changes_json"])
            rolled = d is not None and not pd.isna(d["revision_id"]) and int(d["revision_id"]) in reverted
            out.append(ProposalView(
                proposal_id=r["proposal_id"], kind=THRESHOLD, strategy=Strategy.parse(r["strategy"]),
                parameter=r["parameter"], changes=parse_changes(r["changes_json"]), created_at=utc(r["created_at"],
                                                                                                 "created_at"),
                expires_at=utc(r["expires_at"], "expires_at"),
                status=proposal_status(d["decision"] if d else None, rolled, r["expires_at"], now),
                config_version=int(r["config_version"]), evidence=json.loads(r["evidence_json"]), tier=r["tier"],
                variation=r["variation"], recommended={i["key"]: i.get("recommended") for i in items},
                blocked_reason=None if pd.isna(r["blocked_reason"]) else r["blocked_reason"], decision=d))
        for r in self.rollback_proposals.to_dict("records"):
            d = decided.get(r["proposal_id"])
            status = proposal_status(d["decision"] if d else None, False, None, now)
            if d is None and int(r["revision_id"]) in reverted:
                status = ProposalStatus.EXPIRED  # its revision was reverted otherwise: nothing left to do
            out.append(ProposalView(
                proposal_id=r["proposal_id"], kind=ROLLBACK, strategy=Strategy.parse(r["strategy"]),
                parameter=f"rollback of revision {int(r['revision_id'])}", changes=parse_changes(r["keys_json"]),
                created_at=utc(r["created_at"], "created_at"), expires_at=None, status=status,
                config_version=int(r["config_version"]), evidence=json.loads(r["evidence_json"]), decision=d,
                reverts=int(r["revision_id"]), trigger=r["trigger"]))
        return out

    def view(self, proposal_id: str, now: pd.Timestamp) -> ProposalView:
        v = next((v for v in self.views(now) if v.proposal_id == proposal_id), None)
        if v is None:
            raise RevisionError(f"unknown proposal {proposal_id!r} (see `cryptotracker proposals list`)")
        return v


def proposal_views(wh: Warehouse, now: pd.Timestamp) -> list[ProposalView]:
    """Every proposal with its status at ``now`` (SPEC §0.4: derived from decisions, revisions and the clock)."""
    return RevisionState.read(wh).views(utc(now, "now"))


# ---------------------------------------------------------------------------------------------------------------
# The effective config
# ---------------------------------------------------------------------------------------------------------------


def build_effective(base_cfg: Config, applied: Sequence[Revision]) -> Config:
    """``base_cfg`` ⊕ ``applied`` validated, unversioned (reads and writes nothing); a failure names the first
    revision whose keys no longer validate."""
    if not applied:
        return base_cfg
    raw = raw_dict(base_cfg)
    try:
        return build_config(with_changes_all(raw, applied), source=f"effective config with revisions "
                                                                   f"{applied[0].revision_id}..{applied[-1].revision_id}")
    except ConfigError as exc:
        for i in range(len(applied)):  # the first revision that breaks it
            try:
                build_config(with_changes_all(raw, applied[:i + 1]), source="revisions")
            except ConfigError:
                culprit = applied[i]
                keys = ", ".join(f"`{c.key}`" for c in culprit.changes)
                raise ConfigError(f"{culprit.label} sets {keys}: the config no longer validates with it: {exc}"
                                  ) from None
        raise


def with_changes_all(raw: dict, revisions: Sequence[Revision]) -> dict:
    for r in revisions:
        raw = with_changes(raw, r.changes, r.label)
    return raw


def _version(wh: Warehouse, cfg: Config, origin: str, revisions: Sequence[Revision], applied: Sequence[Revision],
             now: pd.Timestamp | None) -> int:
    """The version of ``cfg``. After the newest revision (the config in force now): :func:`record_version` — the
    latest version when the content is the same, else a new one (the defaults or the user file changed). Between
    revisions (a cycle point before a later revision): the version the previous revision recorded, or the one in
    force before the next revision, when the content is the same, so a replayed span records nothing new."""
    prev = applied[-1] if applied else None
    nxt = revisions[len(applied)] if len(applied) < len(revisions) else None
    if nxt is not None:
        digest = cfg.fingerprint()
        for candidate in (prev.config_version if prev else None, nxt.previous_config_version):
            row = wh.config_version_row(candidate) if candidate else None
            if row is not None and row.content_hash == digest:
                return candidate
    label = f"{prev.label} over {origin}" if prev else origin
    return record_version(wh, cfg, label, now).config_version


def _effective(wh: Warehouse, base_cfg: Config, origin: str, revisions: Sequence[Revision],
               at: pd.Timestamp | None, now: pd.Timestamp | None = None) -> Config:
    applied = [r for r in revisions if at is None or r.applied_at < at]
    cfg = build_effective(base_cfg, applied)
    return with_version(cfg, _version(wh, cfg, origin, revisions, applied, now))


def effective_config(wh: Warehouse, base_cfg: Config, origin: str, at: pd.Timestamp | None = None) -> Config:
    """``base_cfg`` (config.yaml ⊕ the user file) ⊕ the revisions applied before ``at`` (all when None), validated
    and versioned. A revision whose values no longer validate raises :class:`ConfigError` naming it and its keys.
    ``origin`` names the base (the user file, or config.yaml); a new version records ``revision N (…) over
    <origin>``."""
    revisions = revisions_from_frame(wh.config_revisions())
    return _effective(wh, base_cfg, origin, revisions, None if at is None else utc(at, "at"))


def config_in_force(wh: Warehouse, base_cfg: Config) -> Config:
    """The config the engine's next tick uses — ``base_cfg`` ⊕ every applied revision — read without writing
    anything (for read-only commands: status, positions, analyze, export, report). Its version is the latest
    recorded one when its content is the same, else 0: the next run records these values as a new version (as
    :func:`record_version` does, even when an older version had the same content)."""
    cfg = build_effective(base_cfg, revisions_from_frame(wh.config_revisions()))
    versions = wh.config_versions()
    if len(versions) and versions["content_hash"].iloc[-1] == cfg.fingerprint():
        return with_version(cfg, int(versions["config_version"].iloc[-1]))
    return with_version(cfg, 0)


def config_timeline(wh: Warehouse, base_cfg: Config, origin: str, start: pd.Timestamp, end: pd.Timestamp
                    ) -> list[tuple[pd.Timestamp | None, Config]]:
    """The configs in force over the cycle points of [start, end): ``(None, config at start)``, then ``(T, config)``
    for every T in (start, end) that is the first cycle point after a revision's application time (SPEC §0.2: a
    revision applied at e acts from the first cycle point T > e; revisions sharing a T give one entry)."""
    start, end = utc(start, "start"), utc(end, "end")
    revisions = revisions_from_frame(wh.config_revisions())
    out: list[tuple[pd.Timestamp | None, Config]] = [(None, _effective(wh, base_cfg, origin, revisions, start))]
    froms = sorted({first_cycle_point_after(r.applied_at, base_cfg) for r in revisions})
    for t in froms:
        if start < t < end:
            out.append((t, _effective(wh, base_cfg, origin, revisions, t)))
    return out


# ---------------------------------------------------------------------------------------------------------------
# Decisions
# ---------------------------------------------------------------------------------------------------------------


def _require(who: str, why: str, what: str) -> None:
    if not who or not str(who).strip() or not why or not str(why).strip():
        raise RevisionError(f"{what}: who (--by) and why (--why) are required")


def _refuse_decided(view: ProposalView, what: str) -> None:
    d = view.decision
    if view.status is ProposalStatus.PROPOSED:
        return
    if d is not None:
        rev = "" if pd.isna(d["revision_id"]) else f", revision {int(d['revision_id'])}"
        raise RevisionError(f"{what} {view.proposal_id}: it is {view.status.value} (decided {d['decision']} by "
                            f"{d['who']} at {utc(d['decided_at'], 'decided_at'):%Y-%m-%d %H:%M} UTC{rev}: "
                            f"{d['why']})")
    if view.kind == ROLLBACK:
        raise RevisionError(f"{what} {view.proposal_id}: revision {view.reverts} was already reverted")
    raise RevisionError(f"{what} {view.proposal_id}: it is {view.status.value} (expired at "
                        f"{view.expires_at:%Y-%m-%d %H:%M} UTC, threshold_manager.proposal_ttl_h)")


def _gates(wh: Warehouse, view: ProposalView, state: RevisionState, cfg: Config, now: pd.Timestamp) -> None:
    """The safety gates again at approval (SPEC §10.5): TTL, the daily quota of approvals, regime stability."""
    if view.blocked_reason:
        raise RevisionError(f"approve {view.proposal_id}: blocked at proposal time ({view.blocked_reason}); a "
                            f"blocked proposal is never approved")
    if view.created_at > now:
        raise RevisionError(f"approve {view.proposal_id}: created at {view.created_at}, after now ({now})")
    approvals = [r.applied_at for r in state.revisions if r.kind is RevisionKind.APPROVAL]
    # [now − regime_stable_h, now]: the read end is exclusive and at microsecond precision
    regimes = wh.regimes(now - hours(cfg.threshold_manager.regime_stable_h), now + pd.Timedelta(microseconds=1))
    for reason in (fresh(view.created_at, now, cfg), quota_ok(approvals, now, cfg), regime_stable(regimes, now, cfg)):
        if reason is not None:
            raise RevisionError(f"approve {view.proposal_id} refused: {reason}")


def _plan(revision: Revision, cfg: Config, origin: str) -> PlannedRevision:
    return PlannedRevision(row=revision.row(), content_hash=cfg.fingerprint(), origin=f"{revision.label} over {origin}",
                           values=raw_dict(cfg))


def _next_config(current: Config, changes: Sequence[KeyChange], what: str) -> Config:
    """``current`` with ``changes`` applied, validated; refused when the keys moved since or it would not validate."""
    raw = raw_dict(current)
    stale = stale_keys(raw, changes)
    if stale:
        raise RevisionError(f"{what}: the config changed since: {'; '.join(stale)}")
    try:
        return build_config(with_changes(raw, changes, what), source=what)
    except ConfigError as exc:
        raise RevisionError(f"{what}: the config would not validate with {changes_text(changes)}: {exc}") from None


def _start(wh: Warehouse, base_cfg: Config, now: pd.Timestamp) -> tuple[RevisionState, Config]:
    """The stored state and the config in force now (unversioned: a refusal records nothing, not even a version)."""
    state = RevisionState.read(wh)
    if state.revisions and now < state.revisions[-1].applied_at:
        raise RevisionError(f"now ({now}) is before {state.revisions[-1].label} applied at "
                            f"{state.revisions[-1].applied_at}; revisions are applied in time order")
    return state, build_effective(base_cfg, state.revisions)


def _in_force(wh: Warehouse, base_cfg: Config, origin: str, state: RevisionState, now: pd.Timestamp) -> int:
    """The version of the config in force now (recorded first when its content is new), once nothing refuses."""
    return _effective(wh, base_cfg, origin, state.revisions, None, now).config_version


def approve(wh: Warehouse, base_cfg: Config, origin: str, proposal_id: str, who: str, why: str,
            now: pd.Timestamp) -> Revision:
    """Make a proposal effective (SPEC §10.6): refuse — raising :class:`RevisionError`, writing nothing — unless it
    is PROPOSED, not blocked, passes the gates again (threshold proposals; rollback proposals skip the quota and the
    regime check), its keys still hold the values it was computed against, and the resulting config validates.
    Writes the decision, the revision (with the baseline) and the alert in one transaction; returns the revision.
    The engine uses it from the first cycle point after ``now``."""
    now = utc(now, "now")
    _require(who, why, f"approve {proposal_id}")
    state, current = _start(wh, base_cfg, now)
    view = state.view(proposal_id, now)
    _refuse_decided(view, "approve")
    if view.kind == THRESHOLD:
        _gates(wh, view, state, current, now)
    new_cfg = _next_config(current, view.changes, f"approve {proposal_id}")
    previous = _in_force(wh, base_cfg, origin, state, now)
    rid = state.last_revision_id + 1
    if view.kind == THRESHOLD:
        ledger = read_ledger(wh, now - hours(current.threshold_manager.rollback.baseline_window_h))
        revision = Revision(revision_id=rid, config_version=0, previous_config_version=previous, applied_at=now,
                            kind=RevisionKind.APPROVAL, strategy=view.strategy, changes=view.changes, who=who,
                            why=why, proposal_id=proposal_id, evidence=view.evidence,
                            baseline=baseline_of(ledger, view.strategy, now, current))
        note = revision_note(revision, parameter=view.parameter, tier=view.tier)
    else:
        target = state.revision(view.reverts)
        revision = Revision(revision_id=rid, config_version=0, previous_config_version=previous, applied_at=now,
                            kind=RevisionKind.ROLLBACK, strategy=view.strategy, changes=view.changes, who=who,
                            why=why, proposal_id=proposal_id, evidence=view.evidence,
                            baseline=target.baseline if target else None, reverts=view.reverts, trigger=view.trigger)
        note = revision_note(revision)
    decision = {"proposal_id": proposal_id, "decision": Decision.APPROVED.value, "who": who, "why": why,
                "decided_at": now, "revision_id": rid}
    versions = wh.commit_revisions(RevisionWrite(
        expected_last_revision=state.last_revision_id, previous_config_version=previous, at=now,
        revisions=[_plan(revision, new_cfg, origin)], decision=decision, outbox=alert_rows([note], current),
        undecided=[proposal_id]))
    return replace(revision, config_version=versions[0])


def reject(wh: Warehouse, base_cfg: Config, origin: str, proposal_id: str, who: str, why: str,
           now: pd.Timestamp) -> ProposalView:
    """Reject a PROPOSED proposal (writes the decision and an alert in one transaction); refused otherwise. Returns
    the proposal as it is now (REJECTED)."""
    now = utc(now, "now")
    _require(who, why, f"reject {proposal_id}")
    state = RevisionState.read(wh)
    view = state.view(proposal_id, now)
    _refuse_decided(view, "reject")
    cfg = base_cfg
    note = alert_note("threshold_rejected", now,
                      f"Proposal rejected: {view.proposal_id} ({view.strategy.value} {view.parameter}: "
                      f"{changes_text(view.changes)}, tier {view.tier or '-'}) by {who} — why: {why}",
                      {"proposal_id": proposal_id}, who=who, why=why)
    decision = {"proposal_id": proposal_id, "decision": Decision.REJECTED.value, "who": who, "why": why,
                "decided_at": now, "revision_id": None}
    wh.commit_revisions(RevisionWrite(expected_last_revision=state.last_revision_id,
                                      previous_config_version=0, at=now, decision=decision,
                                      outbox=alert_rows([note], cfg), undecided=[proposal_id]))
    return RevisionState.read(wh).view(proposal_id, now)


# ---------------------------------------------------------------------------------------------------------------
# Rollbacks
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MonitorReport:
    """One rollback-monitor run: the approvals judged, the rollbacks applied, the rollback proposals recorded, and
    the triggered approvals that could not be restored (revision id → why)."""

    checked: list[int]
    revisions: list[Revision]
    proposals: list[str]
    skipped: dict[int, str]


def _rollback_revision(target: Revision, rid: int, previous_version: int, now: pd.Timestamp, who: str, why: str,
                       trigger: str, evidence: dict[str, Any], proposal_id: str | None = None) -> Revision:
    return Revision(revision_id=rid, config_version=0, previous_config_version=previous_version, applied_at=now,
                    kind=RevisionKind.ROLLBACK, strategy=target.strategy, changes=restore_of(target.changes),
                    who=who, why=why, proposal_id=proposal_id, evidence=evidence, baseline=target.baseline,
                    reverts=target.revision_id, trigger=trigger)


def run_rollback_monitor(wh: Warehouse, base_cfg: Config, origin: str, now: pd.Timestamp) -> MonitorReport:
    """The rollback monitor at ``now`` (SPEC §10.6); see :func:`rollback_monitor`."""
    now = utc(now, "now")
    state, current = _start(wh, base_cfg, now)
    done = reverted_ids(state.revisions) | {int(x) for x in state.rollback_proposals["revision_id"]}
    candidates = [r for r in state.revisions if monitored(r, now, current) and r.revision_id not in done]
    report = MonitorReport(checked=[r.revision_id for r in candidates], revisions=[], proposals=[], skipped={})
    if not candidates:
        return report
    ledger = read_ledger(wh, min(r.applied_at for r in candidates))
    automatic = current.threshold_manager.rollback.automatic
    for target in reversed(candidates):  # newest first: a later approval of the same key is restored first
        closes = monitored_closes(ledger, target.strategy, target.applied_at, now, current)
        fired = rollback_trigger(closes, target.baseline, target.applied_at, now, current)
        if fired is None:
            continue
        evidence = {"trigger": fired.trigger.value, **fired.metrics}
        state, current = _start(wh, base_cfg, now)  # the previous rollback changed them
        rid = state.last_revision_id + 1
        if automatic:
            try:
                new_cfg = _next_config(current, restore_of(target.changes),
                                       f"rollback of revision {target.revision_id}")
            except RevisionError as exc:
                report.skipped[target.revision_id] = str(exc)
                continue
            previous = _in_force(wh, base_cfg, origin, state, now)
            revision = _rollback_revision(target, rid, previous, now, ROLLBACK_WHO, fired.text, fired.text, evidence)
            versions = wh.commit_revisions(RevisionWrite(
                expected_last_revision=state.last_revision_id, previous_config_version=previous, at=now,
                revisions=[_plan(revision, new_cfg, origin)], outbox=alert_rows([revision_note(revision)], current)))
            report.revisions.append(replace(revision, config_version=versions[0]))
            continue
        previous = _in_force(wh, base_cfg, origin, state, now)
        pid = rollback_proposal_id(target.revision_id, now)
        restore = restore_of(target.changes)
        row = {"proposal_id": pid, "created_at": now, "revision_id": target.revision_id,
               "strategy": target.strategy.value, "trigger": fired.text,
               "keys_json": json.dumps([c.to_dict() for c in restore]),
               "evidence_json": json.dumps(evidence, sort_keys=True, default=str),
               "config_version": previous}
        note = alert_note("rollback_proposed", now,
                          f"Rollback proposed for {target.label} ({target.strategy.value}): trigger {fired.text}; "
                          f"would restore {changes_text(restore)}; approve with `cryptotracker approve {pid}`",
                          {"proposal_id": pid}, strategy=target.strategy.value, trigger=fired.text,
                          changes=[c.to_dict() for c in restore], evidence=evidence)
        wh.commit_revisions(RevisionWrite(expected_last_revision=state.last_revision_id,
                                          previous_config_version=previous, at=now,
                                          rollback_proposal=row, outbox=alert_rows([note], current)))
        report.proposals.append(pid)
    return report


def rollback_monitor(wh: Warehouse, base_cfg: Config, origin: str, now: pd.Timestamp) -> list[Revision]:
    """For each approval revision under monitor (applied_at < now < applied_at + monitor_h + check_every_h, not
    reverted, no rollback proposed yet), the triggers (a), (b), (c) on the strategy's real trades opened after it;
    a trigger restores the exact previous values as a new revision by ``system:rollback`` (skipping the quota and
    the regime check) — or records a rollback proposal when ``rollback.automatic`` is false — and queues an alert.
    Returns the rollback revisions applied (none when only proposals were recorded). Idempotent."""
    return run_rollback_monitor(wh, base_cfg, origin, now).revisions


def rollback_last(wh: Warehouse, base_cfg: Config, origin: str, hours: float | pd.Timedelta, who: str, why: str,
                  now: pd.Timestamp) -> list[Revision]:
    """Revert every revision applied in [now − span, now] that is not reverted yet, newest first, each restore a
    new revision (kind rollback, trigger ``operator: rollback --last …``), all in ONE transaction. A rollback whose
    reverted revision is in the window is skipped with it (the pair already cancels); a rollback of an older
    revision is reverted like any other (the config returns to what it was at the window's start). Refused when
    there is nothing to revert or a restored config would not validate."""
    now = utc(now, "now")
    span = hours if isinstance(hours, pd.Timedelta) else pd.Timedelta(hours=float(hours))
    _require(who, why, "rollback")
    state, current = _start(wh, base_cfg, now)
    window = [r for r in state.revisions if now - span <= r.applied_at <= now]
    inside = {r.revision_id for r in window}
    reverted = reverted_ids(state.revisions)
    todo = [r for r in reversed(window) if r.revision_id not in reverted
            and not (r.kind is RevisionKind.ROLLBACK and r.reverts in inside)]
    label = f"{span / pd.Timedelta(hours=1):g}h"
    if not todo:
        raise RevisionError(f"rollback --last {label}: no revision applied since {now - span:%Y-%m-%d %H:%M} UTC "
                            f"is left to revert")
    plans, revisions, cfg, notes = [], [], current, []
    for i, target in enumerate(todo):
        # previous_config_version is chained in the commit; 0 stands in until then
        revision = _rollback_revision(target, state.last_revision_id + 1 + i, 0, now, who, why,
                                      f"operator: rollback --last {label}", {"window_start": str(now - span)})
        cfg = _next_config(cfg, revision.changes, f"rollback of revision {target.revision_id}")
        plans.append(_plan(revision, cfg, origin))
        revisions.append(revision)
        notes.append(revision_note(revision))
    previous = _in_force(wh, base_cfg, origin, state, now)
    versions = wh.commit_revisions(RevisionWrite(
        expected_last_revision=state.last_revision_id, previous_config_version=previous, at=now,
        revisions=plans, outbox=alert_rows(notes, current)))
    out = []
    for r, v in zip(revisions, versions):
        out.append(replace(r, config_version=v, previous_config_version=previous))
        previous = v
    return out


def consistency_problems(base_cfg: Config, state: RevisionState) -> list[str]:
    """What breaks the revision invariants (reads and writes nothing): the effective config with every revision
    validates; a rollback restores exactly the old values of the revision it reverts, each reverted at most once; an
    approval carries a baseline and has the APPROVED decision that names it; a decision's revision exists."""
    problems: list[str] = []
    try:
        build_effective(base_cfg, state.revisions)
    except ConfigError as exc:
        problems.append(str(exc))
    by_id = {r.revision_id: r for r in state.revisions}
    seen: set[int] = set()
    approved = {d["proposal_id"]: d for d in state.decisions.to_dict("records")
                if d["decision"] == Decision.APPROVED.value}
    for r in state.revisions:
        if r.kind is RevisionKind.ROLLBACK:
            target = by_id.get(r.reverts)
            if target is None or target.revision_id >= r.revision_id:
                problems.append(f"{r.label}: reverts revision {r.reverts}, which is not an earlier revision")
            elif tuple(r.changes) != restore_of(target.changes):
                problems.append(f"{r.label}: sets {changes_text(r.changes)}, not the exact previous values "
                                f"{changes_text(restore_of(target.changes))} of revision {target.revision_id}")
            if r.reverts in seen:
                problems.append(f"revision {r.reverts} is reverted more than once")
            seen.add(r.reverts)
        elif r.baseline is None:
            problems.append(f"{r.label}: no baseline")
        if r.proposal_id is not None:
            d = approved.get(r.proposal_id)
            if d is None or pd.isna(d["revision_id"]) or int(d["revision_id"]) != r.revision_id:
                problems.append(f"{r.label}: no APPROVED decision of {r.proposal_id} names it")
    for pid, d in approved.items():
        if pd.isna(d["revision_id"]) or int(d["revision_id"]) not in by_id:
            problems.append(f"decision APPROVED on {pid}: its revision {d['revision_id']} is not stored")
    return problems
