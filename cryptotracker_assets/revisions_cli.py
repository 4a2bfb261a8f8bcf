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

import getpass
import json

import click
import pandas as pd

from .cli_common import SPAN, echo_table, session, span_text, warehouse_option


def _context(warehouse: str | None):
    """(warehouse, base config, origin) of a command; the warehouse must exist."""
    from .core.config import load_config
    from .services.config_versions import origin_of

    s = session(warehouse)
    return s.warehouse(create=False), load_config(s.env.config_path), origin_of(s.env.config_path), s


def _now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC")


def _refused(command: str, exc: Exception) -> int:
    click.echo(f"{command} refused: {exc}", err=True)
    return 2


def _errors():
    from .core.config import ConfigError
    from .services.revisions import RevisionError
    from .storage.warehouse import WarehouseError

    return RevisionError, ConfigError, WarehouseError


def _report_materialization(dagster_home: str, description: str, metadata: dict) -> None:
    """A runless materialization of ``config_revisions`` (see :mod:`.instance_events`)."""
    from .assets.revisions import CONFIG_REVISIONS
    from .instance_events import report_materialization

    report_materialization(dagster_home, CONFIG_REVISIONS, metadata, description=description)


def decide(command: str, proposal_id: str, by: str, why: str, warehouse: str | None) -> int:
    from .services.revisions import approve, reject

    try:
        wh, base, origin, s = _context(warehouse)
        if command == "approve":
            r = approve(wh, base, origin, proposal_id, by, why, _now())
        else:
            v = reject(wh, base, origin, proposal_id, by, why, _now())
    except _errors() as exc:
        return _refused(command, exc)
    if command == "approve":
        click.echo(f"approved {proposal_id} by {by}: revision {r.revision_id} ({_change(r.changes)}), config_version "
                   f"{r.config_version}, applied {r.applied_at:%Y-%m-%d %H:%M:%S} UTC; the engine uses it from the "
                   f"next cycle point.")
        if r.baseline is not None:
            b = r.baseline
            click.echo(f"baseline ({r.strategy.value}, real trades closed {b.start:%Y-%m-%d %H:%M} .. "
                       f"{b.end:%Y-%m-%d %H:%M} UTC): {b.trades} trade(s), win rate {_pct(b.win_rate)}, mean net "
                       f"pnl {_pct(b.mean_pnl_pct)}")
        _report_materialization(s.dagster_home, f"approval of {proposal_id} by {by}",
                                {"revision_id": r.revision_id, "proposal_id": proposal_id,
                                 "config_version": r.config_version, "who": by, "why": why})
    else:
        click.echo(f"rejected {v.proposal_id} by {by} (why: {why}); status {v.status.value}.")
        _report_materialization(s.dagster_home, f"rejection of {proposal_id} by {by}",
                                {"proposal_id": proposal_id, "who": by, "why": why})
    return 0


def decision_options(f):
    f = warehouse_option(f)
    f = click.option("--why", required=True, help="why")(f)
    f = click.option("--by", required=True, help="who decides")(f)
    return click.argument("proposal_id")(f)


@click.command("approve")
@decision_options
def approve_command(proposal_id: str, by: str, why: str, warehouse: str | None) -> int:
    """Make a threshold or rollback proposal effective from the next cycle point (SPEC §10.6)."""
    return decide("approve", proposal_id, by, why, warehouse)


@click.command("reject")
@decision_options
def reject_command(proposal_id: str, by: str, why: str, warehouse: str | None) -> int:
    """Reject a threshold or rollback proposal."""
    return decide("reject", proposal_id, by, why, warehouse)


@click.command("rollback")
@click.option("--last", "span", type=SPAN, required=True, help="the span: 24h, 2d, 90m")
@click.option("--by", help="default: the current user")
@click.option("--why", help="default: the command")
@warehouse_option
def rollback_command(span: pd.Timedelta, by: str | None, why: str | None, warehouse: str | None) -> int:
    """Revert every config revision applied in the last span (each restore is a new revision)."""
    from .services.revisions import rollback_last

    last = span_text(span)
    who = by or getpass.getuser()
    why = why or f"rollback --last {last}"
    try:
        wh, base, origin, s = _context(warehouse)
        done = rollback_last(wh, base, origin, span, who, why, _now())
    except _errors() as exc:
        return _refused("rollback", exc)
    for r in done:
        click.echo(f"revision {r.revision_id}: reverted revision {r.reverts} — restored "
                   f"{_change(r.changes)} (config_version {r.config_version})")
    click.echo(f"{len(done)} revision(s) reverted by {who} (why: {why}); in force from the next cycle point.")
    _report_materialization(s.dagster_home, f"rollback --last {last} by {who}",
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


@click.group("proposals")
def proposals_group() -> None:
    """Threshold and rollback proposals with their status."""


@proposals_group.command("list")
@click.option("--pending", is_flag=True, help="only the proposals waiting for a decision")
@warehouse_option
def proposals_list_command(pending: bool, warehouse: str | None) -> int:
    """Id, strategy, parameter, old → new, tier, status and expiry of every proposal."""
    from .services.revisions import proposal_views

    try:
        wh, _, _, _ = _context(warehouse)
        views = proposal_views(wh, _now())
    except _errors() as exc:
        return _refused("proposals list", exc)
    if pending:
        views = [v for v in views if v.status.value == "PROPOSED"]
    if not views:
        click.echo("no proposals" + (" waiting for a decision" if pending else ""))
        return 0
    rows = [{"id": v.proposal_id, "strategy": v.strategy.value, "parameter": v.parameter,
             "old → new": _change(v.changes, short=True), "tier": v.tier or "-",
             "status": v.status.value + (" (blocked)" if v.blocked_reason else ""),
             "expires (UTC)": "-" if v.expires_at is None else f"{v.expires_at:%Y-%m-%d %H:%M}"} for v in views]
    echo_table(pd.DataFrame(rows))
    return 0


@proposals_group.command("show")
@click.argument("proposal_id")
@warehouse_option
def proposals_show_command(proposal_id: str, warehouse: str | None) -> int:
    """A proposal's changes, evidence, status and decision."""
    from .services.revisions import RevisionState

    try:
        wh, _, _, _ = _context(warehouse)
        now = _now()
        v = RevisionState.read(wh).view(proposal_id, now)
    except _errors() as exc:
        return _refused("proposals show", exc)
    click.echo(f"proposal {v.proposal_id}: {v.status.value}")
    click.echo(f"  strategy {v.strategy.value}, {v.parameter}"
               + (f", variation {v.variation}, tier {v.tier}" if v.variation else ""))
    click.echo(f"  created {v.created_at:%Y-%m-%d %H:%M} UTC, expires "
               + ("never" if v.expires_at is None else f"{v.expires_at:%Y-%m-%d %H:%M} UTC")
               + f", computed under config_version {v.config_version}")
    if v.blocked_reason:
        click.echo(f"  blocked at proposal time: {v.blocked_reason}")
    if v.trigger:
        click.echo(f"  trigger: {v.trigger}")
    click.echo("  changes:")
    for c in v.changes:
        rec = v.recommended.get(c.key)
        click.echo(f"    {c.key}: {_v(c.old)} → {_v(c.new)}"
                   + ("" if rec is None else f" (recommended {_v(rec)})"))
    click.echo("  evidence:")
    for line in json.dumps(v.evidence, indent=2, sort_keys=True, default=str).splitlines():
        click.echo(f"    {line}")
    if v.decision is not None:
        d = v.decision
        rev = "" if pd.isna(d["revision_id"]) else f", revision {int(d['revision_id'])}"
        click.echo(f"  decision: {d['decision']} by {d['who']} at {pd.Timestamp(d['decided_at']):%Y-%m-%d %H:%M} "
                   f"UTC{rev} (why: {d['why']})")
    return 0


REVISION_COMMANDS = (approve_command, reject_command, proposals_group, rollback_command)
