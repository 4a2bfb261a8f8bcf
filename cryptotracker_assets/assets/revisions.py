"""Approval and rollback of threshold proposals in Dagster (SPEC §10.6): the ``config_revisions`` asset, its jobs
and the rollback monitor's schedule. Thin over :mod:`..services.revisions`.

- ``approve_proposal_job``: an operator's decision from the launchpad — run config ``action`` (approve | reject),
  ``proposal_id``, ``who``, ``why``; a refusal fails the run with the reason and writes nothing.
- ``rollback_monitor_job`` (``rollback_monitor_schedule``, every ``threshold_manager.rollback.check_every_h``, UTC):
  the same asset in monitor mode.
- ``revisions_consistent`` (ERROR): reads only — it never records a config version or changes the config.
"""


from enum import Enum

import dagster as dg
import pandas as pd
from pydantic import Field

from resources.config import ProjectConfigResource
from resources.warehouse import WarehouseResource

from ..core.config import Config, ConfigError, load_config
from ..core.revision_schemas import DecisionSchema, RevisionSchema, RollbackProposalSchema
from ..services.ingest import utc_now
from ..services.revisions import (RevisionError, RevisionState, approve, consistency_problems, reject,
                                  run_rollback_monitor)
from ..storage.revisions import REVISIONS_TABLE
from .common import OWNERS, WAREHOUSE_POOL, markdown_table, table_schema

GROUP = "config"
CONFIG_REVISIONS = REVISIONS_TABLE
REVISIONS_CONSISTENT = "revisions_consistent"  # ERROR: a revision breaks SPEC §10.6 / I-17 or the schema
APPROVE_PROPOSAL_JOB = "approve_proposal_job"
ROLLBACK_MONITOR_JOB = "rollback_monitor_job"
ROLLBACK_MONITOR_SCHEDULE = "rollback_monitor_schedule"


class RevisionAction(Enum):
    APPROVE = "approve"
    REJECT = "reject"
    MONITOR = "monitor"


class RevisionRunConfig(dg.Config):
    """What a ``config_revisions`` run does."""

    action: str = Field(description="approve | reject a proposal (approve_proposal_job), or monitor "
                                    "(rollback_monitor_job)")
    proposal_id: str = Field(default="", description="The proposal to decide (`cryptotracker proposals list`)")
    who: str = Field(default="", description="The operator deciding")
    why: str = Field(default="", description="Why")


def _base(project_config: ProjectConfigResource) -> Config:
    """config.yaml ⊕ the user file, without revisions and unversioned (the services add both)."""
    return load_config(project_config.user_config_path or None)


def _revisions_table(state: RevisionState) -> pd.DataFrame:
    return pd.DataFrame([{"id": r.revision_id, "kind": r.kind.value, "applied_at": f"{r.applied_at:%Y-%m-%d %H:%M}",
                          "strategy": r.strategy.value, "keys": "; ".join(f"{c.key} {c.old} → {c.new}"
                                                                         for c in r.changes),
                          "who": r.who, "version": r.config_version, "reverts": r.reverts or ""}
                         for r in reversed(state.revisions)])


@dg.asset(name=CONFIG_REVISIONS, group_name=GROUP, pool=WAREHOUSE_POOL, kinds={"duckdb"}, owners=OWNERS,
          deps=[dg.AssetKey("paper_trades"), dg.AssetKey("market_regime"), dg.AssetKey("threshold_recommendations")],
          metadata={"table": CONFIG_REVISIONS, "dagster/column_schema": table_schema(RevisionSchema)},
          description="Applied config revisions (SPEC §10.6): operator approvals of threshold proposals with their "
                      "baseline, and rollbacks restoring the exact previous values; the engine uses each from the "
                      "next cycle point. Kept forever.")
def config_revisions(context: dg.AssetExecutionContext, config: RevisionRunConfig,
                     project_config: ProjectConfigResource, warehouse: WarehouseResource) -> dg.MaterializeResult:
    try:
        action = RevisionAction(config.action)
    except ValueError:
        raise dg.Failure(f"config_revisions: action {config.action!r} is not one of "
                         f"{[a.value for a in RevisionAction]}", allow_retries=False) from None
    wh = warehouse.get()
    base, origin, now = _base(project_config), project_config.origin, utc_now()
    meta: dict = {"action": action.value}
    try:
        if action is RevisionAction.APPROVE:
            r = approve(wh, base, origin, config.proposal_id, config.who, config.why, now)
            meta.update({"revision_id": r.revision_id, "proposal_id": config.proposal_id,
                         "config_version": r.config_version})
        elif action is RevisionAction.REJECT:
            v = reject(wh, base, origin, config.proposal_id, config.who, config.why, now)
            meta.update({"proposal_id": v.proposal_id, "status": v.status.value})
        else:
            report = run_rollback_monitor(wh, base, origin, now)
            meta.update({"monitored": dg.MetadataValue.json(report.checked),
                         "rollbacks": dg.MetadataValue.json([r.revision_id for r in report.revisions]),
                         "rollback_proposals": dg.MetadataValue.json(report.proposals)})
            if report.skipped:
                raise dg.Failure("rollback monitor: triggered rollbacks that cannot be applied: "
                                 + "; ".join(f"revision {k}: {v}" for k, v in report.skipped.items()),
                                 allow_retries=False)
    except (RevisionError, ConfigError) as exc:
        raise dg.Failure(f"{action.value} refused: {exc}", allow_retries=False) from None
    state = RevisionState.read(wh)
    context.log.info(f"config_revisions {action.value}: {meta}")
    return dg.MaterializeResult(metadata={
        **meta, "revisions": len(state.revisions),
        "pending_proposals": sum(1 for v in state.views(now) if v.status.value == "PROPOSED"),
        "latest_revisions": dg.MetadataValue.md(markdown_table(_revisions_table(state), limit=10))})


@dg.asset_check(asset=CONFIG_REVISIONS, name=REVISIONS_CONSISTENT, blocking=False, pool=WAREHOUSE_POOL,
                description="The stored revisions, decisions and rollback proposals follow their schemas; the effective config with every revision "
                            "validates; each rollback restores exactly the previous values of the revision it "
                            "reverts (at most once); each approval has its baseline and decision. Reads only.")
def revisions_consistent(project_config: ProjectConfigResource, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    tables = warehouse.get().revision_tables()
    state = RevisionState.of(tables)
    problems = consistency_problems(_base(project_config), state)
    for name, schema in (("revisions", RevisionSchema), ("decisions", DecisionSchema),
                         ("rollback_proposals", RollbackProposalSchema)):
        if len(tables[name]):
            try:
                schema.validate(tables[name], lazy=True)
            except Exception as exc:  # the check reports what is broken
                problems.append(f"{name} schema: {exc}")
    return dg.AssetCheckResult(passed=not problems, severity=dg.AssetCheckSeverity.ERROR,
                               metadata={"revisions": len(state.revisions),
                                         "problems": dg.MetadataValue.json(problems[:20])})


approve_proposal_job = dg.define_asset_job(
    APPROVE_PROPOSAL_JOB, selection=dg.AssetSelection.assets(CONFIG_REVISIONS),
    description="Approve or reject a threshold or rollback proposal (run config: action approve | reject, "
                "proposal_id, who, why); the same as `cryptotracker approve|reject <id> --by --why`.",
    tags={"cryptotracker/kind": "config"})

rollback_monitor_job = dg.define_asset_job(
    ROLLBACK_MONITOR_JOB, selection=dg.AssetSelection.assets(CONFIG_REVISIONS),
    config={"ops": {CONFIG_REVISIONS: {"config": {"action": RevisionAction.MONITOR.value}}}},
    description="The rollback monitor (SPEC §10.6): triggers (a), (b), (c) on the real trades after each recent "
                "approval; a trigger restores the previous values (or proposes it, rollback.automatic false).",
    tags={"cryptotracker/kind": "config"})


def every_cron(every_h: float) -> str:
    """The UTC cron of ``threshold_manager.rollback.check_every_h``: whole minutes dividing an hour, or whole hours
    dividing a day."""
    minutes = float(every_h) * 60
    if minutes > 0 and minutes.is_integer():
        m = int(minutes)
        if m < 60 and 60 % m == 0:
            return f"*/{m} * * * *"
        if m % 60 == 0 and 24 % (m // 60) == 0:
            return "0 * * * *" if m == 60 else f"0 */{m // 60} * * *"
    raise ConfigError(f"`threshold_manager.rollback.check_every_h`: {every_h} h is not a schedule (whole minutes "
                      f"dividing an hour, or whole hours dividing a day)")


def build_rollback_monitor_schedule(cfg: Config) -> dg.ScheduleDefinition:
    every = cfg.threshold_manager.rollback.check_every_h
    return dg.ScheduleDefinition(
        name=ROLLBACK_MONITOR_SCHEDULE, cron_schedule=every_cron(every), job=rollback_monitor_job,
        execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.STOPPED,
        description=f"The rollback monitor every {every:g} h (threshold_manager.rollback.check_every_h).")
