"""Config revisions as pure logic (SPEC §10.5–§10.6, I-17). Never imports dagster; no SQL.

- A **revision** sets config keys, by dotted key, to new values: an ``approval`` (an operator made a threshold
  proposal effective) or a ``rollback`` (the exact previous values of an approval restored, by the rollback monitor
  as ``system:rollback`` or by an operator). The effective config is ``config.yaml`` ⊕ the user file ⊕ every revision
  in id order (:func:`apply_revisions`); a revision applied at e is in force from the first cycle point T > e.
- The **baseline** of an approval (:func:`baseline_of`) is the win rate, trade count and mean net pnl_pct of the
  strategy's real trades closed in the ``rollback.baseline_window_h`` before approval.
- The **rollback triggers** (:func:`rollback_trigger`) judge the strategy's real trades opened after approval
  (entry_time > applied_at) and at most ``monitor_h`` later, closed by min(now, applied_at + monitor_h): (a) ≥
  ``min_trades`` closed and win rate < baseline − ``win_rate_drop``; (b) ``loss_run`` consecutive losing closes spanning
  ≤ ``loss_run_window_h``; (c) at ``monitor_h``, ≥ ``min_trades`` closed and win rate < baseline. (a) and (c) need a
  baseline of ≥ ``min_trades`` trades. Every number comes from ``threshold_manager.rollback.*``.
- A proposal's **status** is derived, never stored (:func:`proposal_status`).

Win rates are fractions of closed trades with net P&L > 0 (outcome WIN); pnl_pct is a fraction; times are UTC.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .common import StrictEnum, hours, utc, utc_or_none
from .config import Config, ConfigError, Strategy
from .engine_records import OUTBOX_COLUMNS, UTC_NS, empty_outbox, message_id

ROLLBACK_WHO = "system:rollback"  # who a monitor rollback is recorded by (SPEC §10.6)
ALERTS_CHANNEL_KEY = "alerts"  # proposals, approvals and rollbacks go to #system-alerts (SPEC §12.1)
# Equal values compare equal: a win rate of 0.45 is not below 0.6 − 0.15 (floats would say it is).
COMPARE_DIGITS = 12


class RevisionKind(StrictEnum):
    APPROVAL = "approval"
    ROLLBACK = "rollback"


class Decision(StrictEnum):
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"


class ProposalStatus(StrictEnum):
    """SPEC §0.4 proposal status, derived from the decisions, the revisions and the clock."""

    PROPOSED = "PROPOSED"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    ROLLED_BACK = "ROLLED_BACK"


class Parameter(StrictEnum):
    """The parameters the threshold manager recommends (SPEC §10.4–§10.5)."""

    CONFIDENCE_THRESHOLD = "confidence_threshold"
    DCA_DROP_THRESHOLD = "dca_drop_threshold"
    TP_MULTIPLIER = "tp_multiplier"


class Trigger(StrictEnum):
    """The rollback triggers of SPEC §10.6."""

    WIN_RATE_DROP = "a"
    LOSS_RUN = "b"
    BELOW_BASELINE_AT_END = "c"


PROPOSAL_ID_RE = re.compile(r"^(DCA|SWING|CHANNEL)_(confidence_threshold|dca_drop_threshold|tp_multiplier)_\d{12}$")
ROLLBACK_PROPOSAL_ID_RE = re.compile(r"^ROLLBACK_r\d+_\d{12}$")


def proposal_id(strategy: Strategy | str, parameter: Parameter | str, created_at: pd.Timestamp) -> str:
    """``{STRATEGY}_{parameter}_{yyyymmddHHMM}`` of the analysis time (UTC): ``DCA_tp_multiplier_202612071200``."""
    t = utc(created_at, "created_at")
    return f"{Strategy.parse(strategy).value}_{Parameter.parse(parameter).value}_{t:%Y%m%d%H%M}"


def rollback_proposal_id(revision_id: int, created_at: pd.Timestamp) -> str:
    """``ROLLBACK_r{revision}_{yyyymmddHHMM}``: the proposal to revert approval ``revision_id`` (automatic = false)."""
    return f"ROLLBACK_r{int(revision_id)}_{utc(created_at, 'created_at'):%Y%m%d%H%M}"


PROPOSAL_COLUMNS = ("proposal_id", "created_at", "strategy", "variation", "tier", "parameter", "changes_json",
                    "evidence_json", "expires_at", "blocked_reason", "config_version")


def proposal_record(*, strategy: Strategy | str, variation: str, tier: str, parameter: Parameter | str,
                    changes: Iterable[tuple[str, Any, Any, Any]], evidence: Mapping[str, Any],
                    created_at: pd.Timestamp, cfg: Config, blocked_reason: str | None = None) -> dict[str, Any]:
    """One ``threshold_recommendations`` row: ``changes`` as (dotted key, old, new, recommended); expires
    ``threshold_manager.proposal_ttl_h`` after ``created_at``; computed against ``cfg`` (its version)."""
    t = utc(created_at, "created_at")
    items = [{"key": k, "old": old, "new": new, "recommended": rec} for k, old, new, rec in changes]
    return {"proposal_id": proposal_id(strategy, parameter, t), "created_at": t,
            "strategy": Strategy.parse(strategy).value, "variation": str(variation), "tier": str(getattr(tier, "value",
                                                                                                         tier)),
            "parameter": Parameter.parse(parameter).value, "changes_json": json.dumps(items),
            "evidence_json": json.dumps(dict(evidence), sort_keys=True, default=str),
            "expires_at": t + hours(cfg.threshold_manager.proposal_ttl_h), "blocked_reason": blocked_reason,
            "config_version": int(cfg.config_version)}


def proposals_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """``threshold_recommendations`` rows (:func:`proposal_record`) typed as the table stores them."""
    df = pd.DataFrame(list(records), columns=list(PROPOSAL_COLUMNS))
    for c in ("created_at", "expires_at"):
        df[c] = pd.to_datetime(df[c], utc=True).astype(UTC_NS)
    df["config_version"] = df["config_version"].astype("int64")
    df["blocked_reason"] = df["blocked_reason"].astype(object)
    return df


# ---------------------------------------------------------------------------------------------------------------
# Key changes and revisions
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyChange:
    """One dotted config key set from ``old`` to ``new`` (values as in the config file)."""

    key: str
    old: Any
    new: Any

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "old": self.old, "new": self.new}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "KeyChange":
        missing = [k for k in ("key", "old", "new") if k not in d]
        if missing:
            raise ValueError(f"a key change lacks {missing}: {dict(d)}")
        return cls(key=str(d["key"]), old=d["old"], new=d["new"])


def changes_json(changes: Iterable[KeyChange]) -> str:
    return json.dumps([c.to_dict() for c in changes])


def parse_changes(text: str) -> tuple[KeyChange, ...]:
    """The key changes of a ``keys_json`` / ``changes_json`` text (extra fields such as ``recommended`` kept out)."""
    items = json.loads(text)
    if not isinstance(items, list) or not items:
        raise ValueError(f"expected a non-empty JSON list of key changes, got {text!r}")
    return tuple(KeyChange.from_dict(d) for d in items)


def restore_of(changes: Iterable[KeyChange]) -> tuple[KeyChange, ...]:
    """The changes that restore the exact previous values: each key from its ``new`` back to its ``old``."""
    return tuple(KeyChange(c.key, c.new, c.old) for c in changes)


@dataclass(frozen=True)
class Baseline:
    """The strategy's real trades closed in [start, end) (SPEC §10.6): count, win rate, mean net pnl_pct
    (fractions; None without trades)."""

    trades: int
    win_rate: float | None
    mean_pnl_pct: float | None
    start: pd.Timestamp
    end: pd.Timestamp

    def to_dict(self) -> dict[str, Any]:
        return {"trades": self.trades, "win_rate": self.win_rate, "mean_pnl_pct": self.mean_pnl_pct,
                "start": self.start.isoformat(), "end": self.end.isoformat()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Baseline":
        return cls(trades=int(d["trades"]), win_rate=d["win_rate"], mean_pnl_pct=d["mean_pnl_pct"],
                   start=utc(d["start"], "baseline.start"), end=utc(d["end"], "baseline.end"))


@dataclass(frozen=True)
class Revision:
    """One row of ``config_revisions``. ``config_version`` is the effective version it made (SPEC §0.3),
    ``previous_config_version`` the one in force before it."""

    revision_id: int
    config_version: int
    previous_config_version: int
    applied_at: pd.Timestamp
    kind: RevisionKind
    strategy: Strategy
    changes: tuple[KeyChange, ...]
    who: str
    why: str
    proposal_id: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    baseline: Baseline | None = None
    reverts: int | None = None
    trigger: str | None = None

    @property
    def label(self) -> str:
        """``revision 3 (approval of DCA_tp_multiplier_202612071200 by alice)`` — the origin of its version."""
        if self.kind is RevisionKind.APPROVAL:
            what = f"approval of {self.proposal_id}"
        else:
            what = f"rollback of revision {self.reverts}" + (f" ({self.proposal_id})" if self.proposal_id else "")
        return f"revision {self.revision_id} ({what} by {self.who})"

    def row(self) -> dict[str, Any]:
        """The stored row (JSON columns as text)."""
        return {"revision_id": int(self.revision_id), "config_version": int(self.config_version),
                "previous_config_version": int(self.previous_config_version), "applied_at": self.applied_at,
                "kind": self.kind.value, "strategy": self.strategy.value, "keys_json": changes_json(self.changes),
                "who": self.who, "why": self.why, "proposal_id": self.proposal_id,
                "evidence_json": json.dumps(self.evidence, sort_keys=True, default=str),
                "baseline_json": None if self.baseline is None else json.dumps(self.baseline.to_dict()),
                "reverts": None if self.reverts is None else int(self.reverts), "trigger": self.trigger}

    @classmethod
    def from_row(cls, r: Mapping[str, Any]) -> "Revision":
        def opt_int(v) -> int | None:
            return None if v is None or (not isinstance(v, str) and pd.isna(v)) else int(v)

        def opt_str(v) -> str | None:
            return None if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v)

        base = opt_str(r["baseline_json"])
        return cls(revision_id=int(r["revision_id"]), config_version=int(r["config_version"]),
                   previous_config_version=int(r["previous_config_version"]),
                   applied_at=utc(r["applied_at"], "applied_at"), kind=RevisionKind.parse(r["kind"]),
                   strategy=Strategy.parse(r["strategy"]), changes=parse_changes(r["keys_json"]), who=str(r["who"]),
                   why=str(r["why"]), proposal_id=opt_str(r["proposal_id"]),
                   evidence=json.loads(r["evidence_json"]),
                   baseline=None if base is None else Baseline.from_dict(json.loads(base)),
                   reverts=opt_int(r["reverts"]), trigger=opt_str(r["trigger"]))


REVISION_COLUMNS = ("revision_id", "config_version", "previous_config_version", "applied_at", "kind", "strategy",
                    "keys_json", "who", "why", "proposal_id", "evidence_json", "baseline_json", "reverts", "trigger")


def revisions_from_frame(df: pd.DataFrame | None) -> list[Revision]:
    """Stored ``config_revisions`` rows as revisions, in id order."""
    if df is None or df.empty:
        return []
    return [Revision.from_row(r) for r in df.sort_values("revision_id").to_dict("records")]


def reverted_ids(revisions: Iterable[Revision]) -> set[int]:
    """The revisions some rollback revision restored (each is rolled back at most once)."""
    return {r.reverts for r in revisions if r.reverts is not None}


# ---------------------------------------------------------------------------------------------------------------
# Values by dotted key
# ---------------------------------------------------------------------------------------------------------------


def value_at(raw: Mapping[str, Any], key: str) -> Any:
    """The value of dotted ``key`` in a raw config mapping; an unknown key raises :class:`ConfigError` naming it."""
    node: Any = raw
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise ConfigError(f"unknown config key `{key}`")
        node = node[part]
    if isinstance(node, Mapping):
        raise ConfigError(f"config key `{key}` is a section, not a value")
    return node


def with_changes(raw: Mapping[str, Any], changes: Iterable[KeyChange], what: str = "revision") -> dict[str, Any]:
    """A copy of ``raw`` with every change's ``new`` value at its key (``what`` names the source in errors)."""
    out = copy.deepcopy(dict(raw))
    for c in changes:
        try:
            value_at(out, c.key)
        except ConfigError as exc:
            raise ConfigError(f"{what}: {exc}") from None
        *path, leaf = c.key.split(".")
        node = out
        for part in path:
            node = node[part]
        node[leaf] = copy.deepcopy(c.new)
    return out


def apply_revisions(raw: Mapping[str, Any], revisions: Iterable[Revision]) -> dict[str, Any]:
    """``raw`` ⊕ ``revisions`` in id order (each sets its keys' new values)."""
    out = dict(raw)
    for r in sorted(revisions, key=lambda r: r.revision_id):
        out = with_changes(out, r.changes, r.label)
    return out


def stale_keys(raw: Mapping[str, Any], changes: Iterable[KeyChange]) -> list[str]:
    """The keys whose current value in ``raw`` is not the change's ``old`` (the change was computed against another
    config): ``key (now X, expected Y)``."""
    out = []
    for c in changes:
        now = value_at(raw, c.key)
        if now != c.old:
            out.append(f"`{c.key}` is {now!r}, expected {c.old!r}")
    return out


# ---------------------------------------------------------------------------------------------------------------
# Real trades: baseline and rollback triggers
# ---------------------------------------------------------------------------------------------------------------

CLOSE_COLUMNS = ("trade_group_id", "entry_time", "close_time", "pnl_usd", "pnl_pct", "win")


def closed_trades(ledger: pd.DataFrame, strategy: Strategy | str) -> pd.DataFrame:
    """The strategy's closed trades (its SELL rows) in close order (close time = the SELL row's ``bar_time``,
    then ``trade_group_id``): entry and close time, net pnl_usd and pnl_pct, and ``win`` (outcome WIN)."""
    s = Strategy.parse(strategy).value
    if ledger is None or ledger.empty:
        return pd.DataFrame({c: pd.Series(dtype=UTC_NS if c.endswith("_time") else ("bool" if c == "win" else
                                                                                      object if c == "trade_group_id"
                                                                                      else "float64"))
                             for c in CLOSE_COLUMNS})
    sells = ledger[(ledger["side"] == "SELL") & (ledger["strategy"] == s)]
    out = pd.DataFrame({"trade_group_id": sells["trade_group_id"].astype(object),
                        "entry_time": pd.to_datetime(sells["entry_time"], utc=True),
                        "close_time": pd.to_datetime(sells["bar_time"], utc=True),
                        "pnl_usd": sells["pnl_usd"].astype("float64"), "pnl_pct": sells["pnl_pct"].astype("float64"),
                        "win": (sells["outcome"] == "WIN").astype(bool)})
    return out.sort_values(["close_time", "trade_group_id"], kind="mergesort").reset_index(drop=True)


def _stats(closes: pd.DataFrame) -> tuple[int, float | None, float | None]:
    n = len(closes)
    if n == 0:
        return 0, None, None
    return n, float(closes["win"].sum()) / n, math.fsum(closes["pnl_pct"]) / n


def baseline_of(ledger: pd.DataFrame, strategy: Strategy | str, applied_at: pd.Timestamp, cfg: Config) -> Baseline:
    """SPEC §10.6 baseline: the strategy's real trades closed in [applied_at − baseline_window_h, applied_at)."""
    end = utc(applied_at, "applied_at")
    start = end - hours(cfg.threshold_manager.rollback.baseline_window_h)
    c = closed_trades(ledger, strategy)
    n, wr, mean = _stats(c[(c["close_time"] >= start) & (c["close_time"] < end)])
    return Baseline(trades=n, win_rate=wr, mean_pnl_pct=mean, start=start, end=end)


def monitor_end(applied_at: pd.Timestamp, cfg: Config) -> pd.Timestamp:
    return utc(applied_at, "applied_at") + hours(cfg.threshold_manager.rollback.monitor_h)


def monitored_closes(ledger: pd.DataFrame, strategy: Strategy | str, applied_at: pd.Timestamp, now: pd.Timestamp,
                     cfg: Config) -> pd.DataFrame:
    """The trades the monitor judges: opened after approval (applied_at < entry_time ≤ applied_at + monitor_h) and
    closed by min(now, applied_at + monitor_h), in close order."""
    start, end = utc(applied_at, "applied_at"), monitor_end(applied_at, cfg)
    until = min(utc(now, "now"), end)
    c = closed_trades(ledger, strategy)
    keep = (c["entry_time"] > start) & (c["entry_time"] <= end) & (c["close_time"] <= until)
    return c[keep].reset_index(drop=True)


def _below(x: float, limit: float) -> bool:
    return round(x, COMPARE_DIGITS) < round(limit, COMPARE_DIGITS)


def losing_run(closes: pd.DataFrame, run: int, window: pd.Timedelta) -> tuple[int, int] | None:
    """The first ``run`` consecutive losing closes (in close order) whose first and last close are ≤ ``window``
    apart, as (first, last) positions; None when there is none."""
    streak: list[int] = []
    for i, (win, t) in enumerate(zip(closes["win"], closes["close_time"])):
        if win:
            streak = []
            continue
        streak.append(i)
        if len(streak) >= run and t - closes["close_time"].iloc[streak[-run]] <= window:
            return streak[-run], i
    return None


@dataclass(frozen=True)
class TriggerResult:
    """A rollback trigger that fired: which, a sentence for people, and its numbers."""

    trigger: Trigger
    text: str
    metrics: dict[str, Any]


def rollback_trigger(closes: pd.DataFrame, baseline: Baseline | None, applied_at: pd.Timestamp, now: pd.Timestamp,
                     cfg: Config) -> TriggerResult | None:
    """The first of SPEC §10.6 triggers (a), (b), (c) that fires on ``closes`` (:func:`monitored_closes`), or None.

    (a) ≥ min_trades closed and win rate < baseline − win_rate_drop; (b) loss_run consecutive losing closes spanning
    ≤ loss_run_window_h; (c) once now ≥ applied_at + monitor_h: ≥ min_trades closed and win rate < baseline. (a) and
    (c) need a baseline of ≥ min_trades trades. Equal values never trigger (a) or (c); a run spanning exactly
    loss_run_window_h triggers (b)."""
    rb = cfg.threshold_manager.rollback
    n, wr, mean = _stats(closes)
    metrics = {"closed": n, "win_rate": wr, "mean_pnl_pct": mean,
               "baseline_trades": baseline.trades if baseline else 0,
               "baseline_win_rate": baseline.win_rate if baseline else None}
    has_baseline = baseline is not None and baseline.trades >= rb.min_trades and baseline.win_rate is not None
    if has_baseline and n >= rb.min_trades and _below(wr, baseline.win_rate - rb.win_rate_drop):
        return TriggerResult(Trigger.WIN_RATE_DROP,
                             f"(a) win rate {wr:.3f} over {n} closed trade(s) since approval < baseline "
                             f"{baseline.win_rate:.3f} − win_rate_drop {rb.win_rate_drop:g}", metrics)
    found = losing_run(closes, rb.loss_run, hours(rb.loss_run_window_h))
    if found is not None:
        a, b = found
        span = closes["close_time"].iloc[b] - closes["close_time"].iloc[a]
        ids = list(closes["trade_group_id"].iloc[a:b + 1])
        return TriggerResult(Trigger.LOSS_RUN,
                             f"(b) {rb.loss_run} consecutive losing closes within {span / pd.Timedelta(hours=1):.2f} h "
                             f"(≤ loss_run_window_h {rb.loss_run_window_h:g}): {', '.join(ids)}",
                             {**metrics, "loss_run": ids})
    if (has_baseline and utc(now, "now") >= monitor_end(applied_at, cfg) and n >= rb.min_trades
            and _below(wr, baseline.win_rate)):
        return TriggerResult(Trigger.BELOW_BASELINE_AT_END,
                             f"(c) at monitor_h {rb.monitor_h:g}: win rate {wr:.3f} over {n} closed trade(s) < "
                             f"baseline {baseline.win_rate:.3f}", metrics)
    return None


def monitored(revision: Revision, now: pd.Timestamp, cfg: Config) -> bool:
    """An approval is monitored from its application until its final check (trigger (c)) has had one run:
    applied_at < now < applied_at + monitor_h + check_every_h."""
    rb = cfg.threshold_manager.rollback
    return (revision.kind is RevisionKind.APPROVAL
            and revision.applied_at < now < monitor_end(revision.applied_at, cfg) + hours(rb.check_every_h))


# ---------------------------------------------------------------------------------------------------------------
# Proposal status
# ---------------------------------------------------------------------------------------------------------------


def proposal_status(decision: Decision | str | None, rolled_back: bool, expires_at: Any, now: pd.Timestamp
                    ) -> ProposalStatus:
    """APPROVED / REJECTED from the decision (ROLLED_BACK when the approval's revision was reverted); undecided:
    EXPIRED when now ≥ expires_at (a proposal without expiry never expires), else PROPOSED."""
    if decision is not None and not (not isinstance(decision, str) and pd.isna(decision)):
        d = Decision.parse(decision)
        if d is Decision.REJECTED:
            return ProposalStatus.REJECTED
        return ProposalStatus.ROLLED_BACK if rolled_back else ProposalStatus.APPROVED
    exp = utc_or_none(expires_at)
    if exp is not None and utc(now, "now") >= exp:
        return ProposalStatus.EXPIRED
    return ProposalStatus.PROPOSED


# ---------------------------------------------------------------------------------------------------------------
# Alerts (SPEC §12.2 "Threshold")
# ---------------------------------------------------------------------------------------------------------------


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def changes_text(changes: Iterable[KeyChange]) -> str:
    return "; ".join(f"{c.key} {_fmt(c.old)} → {_fmt(c.new)}" for c in changes)


def evidence_text(evidence: Mapping[str, Any], limit: int = 6) -> str:
    """The first ``limit`` scalar fields of an evidence mapping, ``key=value`` (numbers in short form)."""
    items = [(k, v) for k, v in evidence.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)]
    return ", ".join(f"{k}={_fmt(v)}" for k, v in items[:limit]) or "-"


def alert_note(kind: str, at: pd.Timestamp, text: str, identity: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
    """A note for the alerts channel; its message id derives from ``kind``, ``at`` and ``identity``."""
    return {"kind": kind, "cycle_point": utc(at, "at"), "text": text, "identity": dict(identity), **fields}


def revision_note(revision: Revision, *, parameter: str | None = None, tier: str | None = None,
                  evidence: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The alert of an applied revision: parameter, old → new, tier, evidence, who/why; for a rollback its trigger
    and the restored values."""
    if revision.kind is RevisionKind.APPROVAL:
        text = (f"Threshold approved: {revision.strategy.value} {parameter or ''} {changes_text(revision.changes)}"
                f" (tier {tier or '-'}; evidence {evidence_text(evidence or revision.evidence)}) by {revision.who} — "
                f"why: {revision.why}; revision {revision.revision_id}, in force from the next cycle point")
        kind = "threshold_approved"
    else:
        text = (f"Threshold rollback of revision {revision.reverts} ({revision.strategy.value}): restored "
                f"{changes_text(revision.changes)} by {revision.who} — trigger: {revision.trigger or '-'}; why: "
                f"{revision.why}; revision {revision.revision_id}, in force from the next cycle point")
        kind = "threshold_rollback"
    return alert_note(kind, revision.applied_at, text, {"revision_id": revision.revision_id},
                      strategy=revision.strategy.value, who=revision.who, why=revision.why,
                      changes=[c.to_dict() for c in revision.changes], evidence=dict(evidence or revision.evidence),
                      trigger=revision.trigger)


def alert_rows(notes: Iterable[Mapping[str, Any]], cfg: Config) -> pd.DataFrame:
    """Outbox rows (the columns of the engine's outbox) of ``notes`` for ``notifications.channels.alerts``."""
    rows = []
    channel = getattr(cfg.notifications.channels, ALERTS_CHANNEL_KEY)
    for n in notes:
        mid = message_id({"kind": n["kind"], "cycle_point": n["cycle_point"], **n["identity"]})
        payload = {k: v for k, v in n.items() if k not in ("cycle_point", "identity")}
        rows.append({"message_id": mid, "cycle_point": n["cycle_point"], "kind": n["kind"],
                     "channel_key": ALERTS_CHANNEL_KEY, "channel": channel, "text": n["text"],
                     "payload_json": json.dumps({**payload, "cycle_point": n["cycle_point"].isoformat()},
                                                sort_keys=True, default=str)})
    if not rows:
        return empty_outbox()
    frame = pd.DataFrame(rows, columns=list(OUTBOX_COLUMNS))
    frame["cycle_point"] = pd.to_datetime(frame["cycle_point"], utc=True).astype(UTC_NS)
    return frame
