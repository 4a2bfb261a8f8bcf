"""``cryptotracker approve | reject | proposals | rollback``: the threshold manager's operator commands (SPEC §10.6),
thin over :mod:`.services.revisions`.

    cryptotracker proposals list [--pending]
    cryptotracker proposals show DCA_tp_multiplier_202612071200
    cryptotracker approve DCA_tp_multiplier_202612071200 --by alice --why "shadows agree for 3 days"
    cryptotracker reject DCA_tp_multiplier_202612071200 --by alice --why "regime about to change"
    cryptotracker rollback --last 24h [--by alice --why "bad day"]

A refusal exits 2 with the reason on stderr and writes nothing. After a change the ``config_revisions`` asset is
reported to the Dagster instance (a runless materialization) when one exists in ``$DAGSTER_HOME``.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys

import pandas as pd


def _context(args: argparse.Namespace):
    """(warehouse, base config, origin) of a command; the warehouse must exist."""
    from .core.config import load_config
    from .services.config_versions import origin_of
    from .storage.warehouse import Warehouse

    path = getattr(args, "warehouse", None) or args.env.warehouse
    return Warehouse(path, create=False), load_config(args.env.config_path), origin_of(args.env.config_path)


def _now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC")


def _refused(command: str, exc: Exception) -> int:
    print(f"{command} refused: {exc}", file=sys.stderr)
    return 2


def _errors():
    from .core.config import ConfigError
    from .services.revisions import RevisionError
    from .storage.warehouse import WarehouseError

    return RevisionError, ConfigError, WarehouseError


def _report_materialization(args: argparse.Namespace, description: str, metadata: dict) -> None:
    """A runless materialization of ``config_revisions`` (see :mod:`.instance_events`)."""
    from .assets.revisions import CONFIG_REVISIONS
    from .instance_events import report_materialization

    report_materialization(args.env.dagster_home, CONFIG_REVISIONS, metadata, description=description)


def cmd_decide(args: argparse.Namespace) -> int:
    from .services.revisions import approve, reject

    try:
        wh, base, origin = _context(args)
        if args.command == "approve":
            r = approve(wh, base, origin, args.proposal_id, args.by, args.why, _now())
        else:
            v = reject(wh, base, origin, args.proposal_id, args.by, args.why, _now())
    except _errors() as exc:
        return _refused(args.command, exc)
    if args.command == "approve":
        print(f"approved {args.proposal_id} by {args.by}: revision {r.revision_id} "
              f"({_change(r.changes)}), config_version "
              f"{r.config_version}, applied {r.applied_at:%Y-%m-%d %H:%M:%S} UTC; the engine uses it from the next "
              f"cycle point.")
        if r.baseline is not None:
            b = r.baseline
            print(f"baseline ({r.strategy.value}, real trades closed {b.start:%Y-%m-%d %H:%M} .. "
                  f"{b.end:%Y-%m-%d %H:%M} UTC): {b.trades} trade(s), win rate {_pct(b.win_rate)}, mean net "
                  f"pnl {_pct(b.mean_pnl_pct)}")
        _report_materialization(args, f"approval of {args.proposal_id} by {args.by}",
                                {"revision_id": r.revision_id, "proposal_id": args.proposal_id,
                                 "config_version": r.config_version, "who": args.by, "why": args.why})
    else:
        print(f"rejected {v.proposal_id} by {args.by} (why: {args.why}); status {v.status.value}.")
        _report_materialization(args, f"rejection of {args.proposal_id} by {args.by}",
                                {"proposal_id": args.proposal_id, "who": args.by, "why": args.why})
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from .services.revisions import parse_span, rollback_last

    who = args.by or getpass.getuser()
    why = args.why or f"rollback --last {args.last}"
    try:
        span = parse_span(args.last)
        wh, base, origin = _context(args)
        done = rollback_last(wh, base, origin, span, who, why, _now())
    except _errors() as exc:
        return _refused("rollback", exc)
    for r in done:
        print(f"revision {r.revision_id}: reverted revision {r.reverts} — restored "
              f"{_change(r.changes)} (config_version {r.config_version})")
    print(f"{len(done)} revision(s) reverted by {who} (why: {why}); in force from the next cycle point.")
    _report_materialization(args, f"rollback --last {args.last} by {who}",
                            {"reverted": json.dumps([r.reverts for r in done]), "who": who, "why": why})
    return 0


def _pct(x) -> str:
    return "n/a" if x is None else f"{x * 100:.2f} %"


def _v(x) -> str:
    """A value for people: floats to 6 significant digits (the stored values are exact)."""
    return f"{x:.6g}" if isinstance(x, float) else str(x)


def _change(changes, short: bool = False) -> str:
    """``key old → new``; ``short``: a proposal over several keys of one map (the DCA tiers) names the last part."""
    many = short and len(changes) > 1
    return "; ".join(f"{c.key.rsplit('.', 1)[-1] if many else c.key} {_v(c.old)} → {_v(c.new)}" for c in changes)


def cmd_proposals_list(args: argparse.Namespace) -> int:
    from .services.revisions import proposal_views

    try:
        wh, _, _ = _context(args)
        views = proposal_views(wh, _now())
    except _errors() as exc:
        return _refused("proposals list", exc)
    if args.pending:
        views = [v for v in views if v.status.value == "PROPOSED"]
    if not views:
        print("no proposals" + (" waiting for a decision" if args.pending else ""))
        return 0
    rows = [{"id": v.proposal_id, "strategy": v.strategy.value, "parameter": v.parameter,
             "old → new": _change(v.changes, short=True), "tier": v.tier or "-",
             "status": v.status.value + (" (blocked)" if v.blocked_reason else ""),
             "expires (UTC)": "-" if v.expires_at is None else f"{v.expires_at:%Y-%m-%d %H:%M}"} for v in views]
    print(pd.DataFrame(rows).to_string(index=False))
    return 0


def cmd_proposals_show(args: argparse.Namespace) -> int:
    from .services.revisions import RevisionState

    try:
        wh, _, _ = _context(args)
        now = _now()
        v = RevisionState.read(wh).view(args.proposal_id, now)
    except _errors() as exc:
        return _refused("proposals show", exc)
    print(f"proposal {v.proposal_id}: {v.status.value}")
    print(f"  strategy {v.strategy.value}, {v.parameter}" + (f", variation {v.variation}, tier {v.tier}"
                                                            if v.variation else ""))
    print(f"  created {v.created_at:%Y-%m-%d %H:%M} UTC, expires "
          + ("never" if v.expires_at is None else f"{v.expires_at:%Y-%m-%d %H:%M} UTC")
          + f", computed under config_version {v.config_version}")
    if v.blocked_reason:
        print(f"  blocked at proposal time: {v.blocked_reason}")
    if v.trigger:
        print(f"  trigger: {v.trigger}")
    print("  changes:")
    for c in v.changes:
        rec = v.recommended.get(c.key)
        print(f"    {c.key}: {_v(c.old)} → {_v(c.new)}" + ("" if rec is None else f" (recommended {_v(rec)})"))
    print("  evidence:")
    for line in json.dumps(v.evidence, indent=2, sort_keys=True, default=str).splitlines():
        print(f"    {line}")
    if v.decision is not None:
        d = v.decision
        rev = "" if pd.isna(d["revision_id"]) else f", revision {int(d['revision_id'])}"
        print(f"  decision: {d['decision']} by {d['who']} at {pd.Timestamp(d['decided_at']):%Y-%m-%d %H:%M} UTC"
              f"{rev} (why: {d['why']})")
    return 0


def add_revisions_parser(sub) -> None:
    for name, hlp in (("approve", "make a threshold or rollback proposal effective (SPEC §10.6)"),
                      ("reject", "reject a threshold or rollback proposal")):
        p = sub.add_parser(name, help=hlp, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("proposal_id")
        p.add_argument("--by", required=True, help="who decides")
        p.add_argument("--why", required=True, help="why")
        p.add_argument("--warehouse", help="DuckDB file (default: $CRYPTOTRACKER_WAREHOUSE)")
        p.set_defaults(func=cmd_decide)

    p = sub.add_parser("proposals", help="threshold and rollback proposals with their status")
    psub = p.add_subparsers(dest="proposals_command", required=True)
    c = psub.add_parser("list", help="id, strategy, parameter, old → new, tier, status, expiry")
    c.add_argument("--pending", action="store_true", help="only the proposals waiting for a decision")
    c.add_argument("--warehouse")
    c.set_defaults(func=cmd_proposals_list)
    c = psub.add_parser("show", help="a proposal's changes, evidence, status and decision")
    c.add_argument("proposal_id")
    c.add_argument("--warehouse")
    c.set_defaults(func=cmd_proposals_show)

    p = sub.add_parser("rollback", help="revert every config revision applied in the last span (e.g. 24h)")
    p.add_argument("--last", required=True, help="the span: 24h, 2d, 90m")
    p.add_argument("--by", help="default: the current user")
    p.add_argument("--why", help="default: the command")
    p.add_argument("--warehouse")
    p.set_defaults(func=cmd_rollback)
