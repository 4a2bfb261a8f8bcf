"""Pandera schemas of the threshold manager's tables (SPEC §10.4–§10.6): the proposals
(``threshold_recommendations``), the decisions on them (``proposal_decisions``), the rollback proposals
(``rollback_proposals``) and the revisions (``config_revisions``). Never imports dagster."""

from __future__ import annotations

import json
from typing import Annotated

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from .config import Strategy
from .revisions import (PROPOSAL_ID_RE, ROLLBACK_PROPOSAL_ID_RE, Decision, Parameter, RevisionKind, parse_changes,
                        proposal_id)

UtcTime = Series[Annotated[pd.DatetimeTZDtype, "ns", "UTC"]]
STRATEGIES = [s.value for s in Strategy]
EVIDENCE_TIERS = ["HIGH", "MEDIUM", "LOW"]  # SPEC §10.4: INSUFFICIENT never recommends


def _json_ok(col: pd.Series) -> pd.Series:
    def ok(text) -> bool:
        try:
            json.loads(text)
            return True
        except (TypeError, ValueError):
            return False

    return col.map(ok)


def _changes_ok(col: pd.Series) -> pd.Series:
    def ok(text) -> bool:
        try:
            parse_changes(text)
            return True
        except (TypeError, ValueError):
            return False

    return col.map(ok)


class ProposalSchema(pa.DataFrameModel):
    """``threshold_recommendations``: one row per proposal of the threshold manager, append-only (only the
    ``threshold_recommendations`` asset writes it); its status is derived, never stored."""

    proposal_id: Series[str] = pa.Field(unique=True, str_matches=PROPOSAL_ID_RE.pattern,
                                        description="{STRATEGY}_{parameter}_{yyyymmddHHMM} of created_at (UTC).")
    created_at: UtcTime = pa.Field(description="The analysis time the proposal was computed at (UTC).")
    strategy: Series[str] = pa.Field(isin=STRATEGIES, description="DCA, SWING or CHANNEL.")
    variation: Series[str] = pa.Field(description="The shadow variation whose evidence recommends it (SPEC §10.4).")
    tier: Series[str] = pa.Field(isin=EVIDENCE_TIERS, description="The evidence tier (SPEC §10.3).")
    parameter: Series[str] = pa.Field(isin=[p.value for p in Parameter],
                                      description="confidence_threshold, dca_drop_threshold or tp_multiplier.")
    changes_json: Series[str] = pa.Field(description="JSON list of {key, old, new, recommended}: the dotted config "
                                                     "keys, their values at created_at, the stepped new values "
                                                     "(SPEC §10.5) and the variation's recommended values.")
    evidence_json: Series[str] = pa.Field(description="JSON of the evidence (window, trades, win rates, p-values).")
    expires_at: UtcTime = pa.Field(description="created_at + threshold_manager.proposal_ttl_h (UTC).")
    blocked_reason: Series[str] = pa.Field(nullable=True, description="The safety gate that refused at proposal "
                                                                      "time (such a proposal is never approved); "
                                                                      "null when none did.")
    config_version: Series["int64"] = pa.Field(ge=0, description="The config version it was computed against.")

    class Config:
        strict = True
        coerce = False

    @pa.dataframe_check(description="proposal_id names the strategy, the parameter and created_at")
    def id_matches(cls, df: pd.DataFrame) -> Series[bool]:
        return pd.Series([pid == proposal_id(s, p, t) for pid, s, p, t in
                          zip(df["proposal_id"], df["strategy"], df["parameter"], df["created_at"])], index=df.index)

    @pa.dataframe_check(description="expires_at > created_at")
    def expires_later(cls, df: pd.DataFrame) -> Series[bool]:
        return df["expires_at"] > df["created_at"]

    @pa.dataframe_check(description="changes_json is a non-empty list of {key, old, new}; evidence_json is JSON")
    def json_ok(cls, df: pd.DataFrame) -> Series[bool]:
        return _changes_ok(df["changes_json"]) & _json_ok(df["evidence_json"])


class RevisionSchema(pa.DataFrameModel):
    """``config_revisions`` (kept forever, SPEC §13.1): every applied change of the effective config."""

    revision_id: Series["int64"] = pa.Field(ge=1, unique=True, description="1, 2, … in application order.")
    config_version: Series["int64"] = pa.Field(ge=1, description="The effective config_version it made (§0.3).")
    previous_config_version: Series["int64"] = pa.Field(ge=0, description="The config_version in force before it.")
    applied_at: UtcTime = pa.Field(description="When it was applied (UTC); in force from the first cycle point "
                                               "after it (SPEC §0.2).")
    kind: Series[str] = pa.Field(isin=[k.value for k in RevisionKind],
                                 description="approval (an operator approved a proposal) or rollback (the exact "
                                             "previous values of an approval restored).")
    strategy: Series[str] = pa.Field(isin=STRATEGIES, description="The strategy whose parameter it changes.")
    keys_json: Series[str] = pa.Field(description="JSON list of {key, old, new}: dotted config keys and values.")
    who: Series[str] = pa.Field(str_length={"min_value": 1},
                                description="The operator, or system:rollback for the monitor.")
    why: Series[str] = pa.Field(str_length={"min_value": 1}, description="The operator's reason or the trigger.")
    proposal_id: Series[str] = pa.Field(nullable=True, description="The proposal (threshold or rollback proposal) "
                                                                   "it made effective; null for a direct rollback.")
    evidence_json: Series[str] = pa.Field(description="JSON evidence: the proposal's, or the monitor's numbers.")
    baseline_json: Series[str] = pa.Field(nullable=True, description="JSON baseline of an approval: trades, win "
                                                                     "rate and mean net pnl_pct of the strategy's "
                                                                     "real trades closed in "
                                                                     "rollback.baseline_window_h before it.")
    reverts: Series[pd.Int64Dtype] = pa.Field(nullable=True, coerce=True,
                                              description="The revision a rollback restores; null for an approval.")
    trigger: Series[str] = pa.Field(nullable=True, description="The rollback trigger ((a), (b), (c) or the "
                                                               "operator's command); null for an approval.")

    class Config:
        strict = True
        coerce = False

    @pa.dataframe_check(description="an approval has a proposal and a baseline and reverts nothing; a rollback "
                                    "reverts a revision")
    def kinds_consistent(cls, df: pd.DataFrame) -> Series[bool]:
        approval = df["kind"] == RevisionKind.APPROVAL.value
        ok_approval = df["proposal_id"].notna() & df["baseline_json"].notna() & df["reverts"].isna()
        return (approval & ok_approval) | (~approval & df["reverts"].notna())

    @pa.dataframe_check(description="keys_json is a non-empty list of {key, old, new}; evidence_json is JSON")
    def json_ok(cls, df: pd.DataFrame) -> Series[bool]:
        return _changes_ok(df["keys_json"]) & _json_ok(df["evidence_json"])


class DecisionSchema(pa.DataFrameModel):
    """``proposal_decisions``: one decision per proposal, append-only."""

    proposal_id: Series[str] = pa.Field(unique=True, description="The threshold or rollback proposal decided.")
    decision: Series[str] = pa.Field(isin=[d.value for d in Decision], description="APPROVED or REJECTED.")
    who: Series[str] = pa.Field(str_length={"min_value": 1}, description="The operator.")
    why: Series[str] = pa.Field(str_length={"min_value": 1}, description="The operator's reason.")
    decided_at: UtcTime = pa.Field(description="When (UTC).")
    revision_id: Series[pd.Int64Dtype] = pa.Field(nullable=True, coerce=True,
                                                  description="The revision an approval wrote; null for REJECTED.")

    class Config:
        strict = True
        coerce = False


class RollbackProposalSchema(pa.DataFrameModel):
    """``rollback_proposals``: a rollback the monitor proposes instead of applying (rollback.automatic = false),
    one at most per approval revision; approved or rejected like a threshold proposal, never expiring."""

    proposal_id: Series[str] = pa.Field(unique=True, str_matches=ROLLBACK_PROPOSAL_ID_RE.pattern,
                                        description="ROLLBACK_r{revision}_{yyyymmddHHMM} of created_at.")
    created_at: UtcTime = pa.Field(description="The monitor run that found the trigger (UTC).")
    revision_id: Series["int64"] = pa.Field(ge=1, unique=True, description="The approval revision to revert.")
    strategy: Series[str] = pa.Field(isin=STRATEGIES, description="Its strategy.")
    trigger: Series[str] = pa.Field(description="The trigger that fired ((a), (b) or (c) with its numbers).")
    keys_json: Series[str] = pa.Field(description="JSON list of {key, old, new}: the restore (new = the values "
                                                  "before the approval).")
    evidence_json: Series[str] = pa.Field(description="JSON of the monitor's numbers.")
    config_version: Series["int64"] = pa.Field(ge=0, description="The config_version in force when proposed.")

    class Config:
        strict = True
        coerce = False
