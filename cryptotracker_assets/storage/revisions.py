"""The threshold manager's tables (SPEC §10.4–§10.6, §13.1: kept forever). Never imports dagster.

- ``threshold_recommendations``: the proposals, append-only, keyed on ``proposal_id``; written ONLY by the
  ``threshold_recommendations`` asset through :meth:`RevisionsMixin.append_proposals`.
- ``proposal_decisions``: one APPROVED / REJECTED decision per proposal (threshold or rollback proposal),
  append-only.
- ``rollback_proposals``: the rollbacks the monitor proposes instead of applying them (``rollback.automatic`` false),
  one at most per approval revision, append-only; decided like a threshold proposal.
- ``config_revisions``: every applied change of the effective config (approvals and rollbacks), append-only.

Nothing is ever updated in place: a proposal's status is derived from these rows and the clock. An approval,
rejection or rollback is ONE transaction (:meth:`RevisionsMixin.commit_revisions`): the decision, the revisions,
their config versions and the outbox alerts, after an optimistic check that nothing was decided or applied since
the caller read the tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from .base import WarehouseError, insert_frame, scalar
from .outbox import OUTBOX_TABLE, queued
from .tables import append_keyed, record_config_version

PROPOSALS_TABLE = "threshold_recommendations"
DECISIONS_TABLE = "proposal_decisions"
ROLLBACK_PROPOSALS_TABLE = "rollback_proposals"
REVISIONS_TABLE = "config_revisions"

PROPOSALS_DDL = """
CREATE TABLE IF NOT EXISTS threshold_recommendations (
    proposal_id    VARCHAR     PRIMARY KEY,
    created_at     TIMESTAMPTZ NOT NULL,
    strategy       VARCHAR     NOT NULL,
    variation      VARCHAR     NOT NULL,
    tier           VARCHAR     NOT NULL,
    parameter      VARCHAR     NOT NULL,
    changes_json   VARCHAR     NOT NULL,
    evidence_json  VARCHAR     NOT NULL,
    expires_at     TIMESTAMPTZ NOT NULL,
    blocked_reason VARCHAR,
    config_version BIGINT      NOT NULL
)
"""
DECISIONS_DDL = """
CREATE TABLE IF NOT EXISTS proposal_decisions (
    proposal_id VARCHAR     PRIMARY KEY,
    decision    VARCHAR     NOT NULL,
    who         VARCHAR     NOT NULL,
    why         VARCHAR     NOT NULL,
    decided_at  TIMESTAMPTZ NOT NULL,
    revision_id BIGINT
)
"""
ROLLBACK_PROPOSALS_DDL = """
CREATE TABLE IF NOT EXISTS rollback_proposals (
    proposal_id    VARCHAR     PRIMARY KEY,
    created_at     TIMESTAMPTZ NOT NULL,
    revision_id    BIGINT      NOT NULL UNIQUE,
    strategy       VARCHAR     NOT NULL,
    trigger        VARCHAR     NOT NULL,
    keys_json      VARCHAR     NOT NULL,
    evidence_json  VARCHAR     NOT NULL,
    config_version BIGINT      NOT NULL
)
"""
REVISIONS_DDL = """
CREATE TABLE IF NOT EXISTS config_revisions (
    revision_id             BIGINT      PRIMARY KEY,
    config_version          BIGINT      NOT NULL,
    previous_config_version BIGINT      NOT NULL,
    applied_at              TIMESTAMPTZ NOT NULL,
    kind                    VARCHAR     NOT NULL,
    strategy                VARCHAR     NOT NULL,
    keys_json               VARCHAR     NOT NULL,
    who                     VARCHAR     NOT NULL,
    why                     VARCHAR     NOT NULL,
    proposal_id             VARCHAR,
    evidence_json           VARCHAR     NOT NULL,
    baseline_json           VARCHAR,
    reverts                 BIGINT,
    trigger                 VARCHAR
)
"""


class RevisionConflict(WarehouseError):
    """Something was decided or applied since the caller read the tables; nothing was written."""


def create_revision_tables(con) -> None:
    for ddl in (PROPOSALS_DDL, DECISIONS_DDL, ROLLBACK_PROPOSALS_DDL, REVISIONS_DDL):
        con.execute(ddl)


@dataclass(frozen=True)
class PlannedRevision:
    """A revision to write: its row without the two version columns (assigned in the commit), and the effective
    config it makes (content hash, the origin its version records, the values)."""

    row: dict
    content_hash: str
    origin: str
    values: dict


@dataclass(frozen=True)
class RevisionWrite:
    """Everything one decision or rollback writes, in one transaction.

    ``expected_last_revision``: the newest revision id the caller saw (0 for none); the planned revisions take the
    next ids in order. ``previous_config_version``: the version in force before the first planned revision."""

    expected_last_revision: int
    previous_config_version: int
    at: pd.Timestamp
    revisions: Sequence[PlannedRevision] = ()
    decision: dict | None = None
    rollback_proposal: dict | None = None
    outbox: pd.DataFrame | None = None
    undecided: Sequence[str] = field(default_factory=tuple)  # proposal ids that must still be undecided


def _frame(row: dict, columns: Sequence[str] | None = None) -> pd.DataFrame:
    df = pd.DataFrame([row], columns=list(columns or row))
    for c in df.columns:
        if isinstance(df[c].iloc[0], pd.Timestamp):
            df[c] = pd.to_datetime(df[c], utc=True).astype("datetime64[ns, UTC]")
    return df


class RevisionsMixin:
    """The threshold manager's reads and writes of :class:`~.warehouse.Warehouse`."""

    def append_proposals(self, df: pd.DataFrame) -> int:
        """Append threshold proposals (``ProposalSchema`` rows; the ``threshold_recommendations`` asset is the only
        writer) in one transaction, idempotent on ``proposal_id``: a stored identical row is skipped, a stored id
        with other values raises naming it. Returns the rows inserted."""
        if df is None or df.empty:
            return 0
        from ..core.revision_schemas import ProposalSchema  # pandera loads only for the writer

        ProposalSchema.validate(df, lazy=True)
        with self.transaction() as con:
            return append_keyed(con, PROPOSALS_TABLE, df, ("proposal_id",))

    def threshold_proposals(self, *, con=None) -> pd.DataFrame:
        """Every proposal, oldest first."""
        return self.query(f"SELECT * FROM {PROPOSALS_TABLE} ORDER BY created_at, proposal_id", con=con)

    def rollback_proposals(self, *, con=None) -> pd.DataFrame:
        """Every rollback proposal, oldest first."""
        return self.query(f"SELECT * FROM {ROLLBACK_PROPOSALS_TABLE} ORDER BY created_at, proposal_id", con=con)

    def proposal_decisions(self, *, con=None) -> pd.DataFrame:
        """Every decision, oldest first."""
        return self.query(f"SELECT * FROM {DECISIONS_TABLE} ORDER BY decided_at, proposal_id", con=con)

    def config_revisions(self, *, con=None) -> pd.DataFrame:
        """Every revision, in id order."""
        return self.query(f"SELECT * FROM {REVISIONS_TABLE} ORDER BY revision_id", con=con)

    def regimes(self, start: pd.Timestamp, end: pd.Timestamp, *, con=None) -> pd.Series:
        """The ``market_regime`` regime by cycle point in [start, end) (empty when the table does not exist)."""
        df = self.read_slice("market_regime", "timestamp", start, end, columns=("timestamp", "regime"),
                             order_by=(), con=con)
        if df is None or df.empty:
            return pd.Series([], index=pd.DatetimeIndex([], tz="UTC"), dtype=object, name="regime")
        return pd.Series(df["regime"].to_numpy(), index=pd.DatetimeIndex(df["timestamp"]), name="regime")

    def commit_revisions(self, write: RevisionWrite) -> list[int]:
        """Write a decision, its revisions (each with the config version of the effective config it makes), a
        rollback proposal and the alerts in ONE transaction; returns the revisions' config versions.

        Refused (:class:`RevisionConflict`, nothing written) when a revision was applied since the caller read the
        tables, a proposal in ``undecided`` was decided since, a planned rollback's target was already reverted, or
        the rollback proposal's revision already has one."""
        at = pd.Timestamp(write.at)
        versions: list[int] = []
        with self.transaction() as con:
            last = int(scalar(con, f"SELECT coalesce(max(revision_id), 0) FROM {REVISIONS_TABLE}"))
            if last != write.expected_last_revision:
                raise RevisionConflict(f"{REVISIONS_TABLE}: revision {last} is the newest, the caller saw "
                                       f"{write.expected_last_revision} (another change was applied first); retry")
            for pid in write.undecided:
                if scalar(con, f"SELECT count(*) FROM {DECISIONS_TABLE} WHERE proposal_id = ?", [pid]):
                    raise RevisionConflict(f"{DECISIONS_TABLE}: {pid} was decided meanwhile")
            previous = int(write.previous_config_version)
            for i, plan in enumerate(write.revisions):
                target = plan.row.get("reverts")
                if target is not None and scalar(con, f"SELECT count(*) FROM {REVISIONS_TABLE} WHERE reverts = ?",
                                                 [int(target)]):
                    raise RevisionConflict(f"{REVISIONS_TABLE}: revision {target} was already reverted")
                version = record_config_version(con, plan.content_hash, plan.origin, plan.values, at).config_version
                row = {**plan.row, "revision_id": write.expected_last_revision + 1 + i,
                       "config_version": int(version), "previous_config_version": previous}
                insert_frame(con, REVISIONS_TABLE, _frame(row), create=False)
                versions.append(int(version))
                previous = int(version)
            if write.decision is not None:
                insert_frame(con, DECISIONS_TABLE, _frame(write.decision), create=False)
            if write.rollback_proposal is not None:
                rid = int(write.rollback_proposal["revision_id"])
                if scalar(con, f"SELECT count(*) FROM {ROLLBACK_PROPOSALS_TABLE} WHERE revision_id = ?", [rid]):
                    raise RevisionConflict(f"{ROLLBACK_PROPOSALS_TABLE}: revision {rid} already has one")
                insert_frame(con, ROLLBACK_PROPOSALS_TABLE, _frame(write.rollback_proposal), create=False)
            if write.outbox is not None and len(write.outbox):
                append_keyed(con, OUTBOX_TABLE, queued(write.outbox, at), ("message_id",), compare=False)
        return versions

    def revision_tables(self) -> dict[str, pd.DataFrame]:
        """The four tables read in one read transaction (they agree with each other)."""
        with self.snapshot() as con:
            return {"proposals": self.threshold_proposals(con=con), "rollback_proposals": self.rollback_proposals(
                con=con), "decisions": self.proposal_decisions(con=con), "revisions": self.config_revisions(con=con)}


__all__ = ["DECISIONS_TABLE", "PROPOSALS_TABLE", "REVISIONS_TABLE", "ROLLBACK_PROPOSALS_TABLE", "PlannedRevision",
           "RevisionConflict", "RevisionWrite", "RevisionsMixin", "create_revision_tables"]
