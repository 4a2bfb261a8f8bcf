"""Approval and rollback of threshold proposals against a warehouse (SPEC §0.5, §10.5–§10.6, I-17): the effective
config with its revisions and versions, the safety gates at approval, refusals that change nothing, the rollback
monitor, ``rollback --last``, the CLI and the Dagster jobs."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import dagster as dg
from cryptotracker_assets.core.config import ConfigError, load_config, raw_dict
from cryptotracker_assets.core.ledger import ledger_frame
from cryptotracker_assets.core.revision_schemas import (DecisionSchema, ProposalSchema, RevisionSchema,
                                                        RollbackProposalSchema)
from cryptotracker_assets.core.revisions import ProposalStatus, proposal_record, proposals_frame
from cryptotracker_assets.services.revisions import (RevisionError, RevisionState, approve, config_in_force,
                                                     config_timeline, consistency_problems, effective_config,
                                                     proposal_views, reject, rollback_last, rollback_monitor,
                                                     run_rollback_monitor)
from cryptotracker_assets.storage.tables import append_keyed
from cryptotracker_assets.storage.warehouse import LEDGER_TABLE, Warehouse
from cryptotracker_tests.conftest import write_user_config

NOW = pd.Timestamp("2026-03-10 12:02:30", tz="UTC")
ORIGIN = "config.yaml"
H = pd.Timedelta(hours=1)
M = pd.Timedelta(minutes=1)
S = pd.Timedelta(seconds=1)
TP_DCA = "exits.tp_multiplier.dca"


@pytest.fixture()
def wh(tmp_path) -> Warehouse:
    return Warehouse(tmp_path / "w.duckdb")


def regimes(wh: Warehouse, end: pd.Timestamp, span: pd.Timedelta = 14 * H, regime: str = "NORMAL",
            other: dict | None = None) -> None:
    """``market_regime`` rows at every cycle point of the ``span`` up to ``end`` (``other``: {time: regime})."""
    points = pd.date_range((end - span).floor("5min"), end.floor("5min"), freq="5min")
    df = pd.DataFrame({"timestamp": points, "regime": [(other or {}).get(t, regime) for t in points]})
    wh.replace_slice("market_regime", df, "timestamp", points[0], points[-1] + S)


def propose(wh: Warehouse, cfg, key: str = TP_DCA, old=1.0, new=1.1, *, strategy: str = "DCA",
            parameter: str = "tp_multiplier", created: pd.Timestamp = NOW - H, blocked: str | None = None) -> str:
    rec = proposal_record(strategy=strategy, variation="QUICK_EXITS", tier="HIGH", parameter=parameter,
                          changes=[(key, old, new, new)], evidence={"outperformance": 0.12, "trades": 140},
                          created_at=created, cfg=cfg, blocked_reason=blocked)
    assert wh.append_proposals(proposals_frame([rec])) == 1
    return rec["proposal_id"]


def closes(wh: Warehouse, trades, strategy: str = "DCA") -> None:
    """Real trades ``[(entry, close, win)]`` in the ledger (a BUY and a SELL row each)."""
    rows = []
    for i, (entry, close, win) in enumerate(trades):
        tg = f"{strategy}_BTC_{entry:%y%m%d%H%M%S}_{i:04x}"
        common = {"trade_group_id": tg, "fill_kind": "MARKET", "symbol": "BTC", "tier": "large_cap",
                  "strategy": strategy, "scan_id": f"{strategy}_BTC_{entry:%y%m%d%H%M}", "raw_price": 100.0,
                  "fill_price": 100.0, "qty": 0.5, "fee_usd": 0.15, "slippage_usd": 0.0, "avg_entry": 100.0,
                  "take_profit_price": None, "stop_price": None, "trail_price": None, "high_water": None,
                  "no_data": False, "config_version": 1, "entry_time": entry, "group_size_usd": 50.0,
                  "grid_levels": 1, "grid_spacing": 0.0, "take_profit": 0.04, "stop_loss": 0.06, "trailing": 0.02,
                  "trail_activation": 0.02, "max_hold_min": 4320.0, "taker_fee": 0.003, "slippage": 0.0015}
        rows.append({**common, "side": "BUY", "level": 0, "bar_time": entry, "size_usd": 50.0, "exit_reason": None,
                     "pnl_usd": None, "pnl_pct": None, "outcome": None, "cycle_point": entry.ceil("5min")})
        rows.append({**common, "side": "SELL", "level": -1, "bar_time": close, "size_usd": None,
                     "exit_reason": "take_profit" if win else "stop_loss", "pnl_usd": 1.0 if win else -1.0,
                     "pnl_pct": 0.02 if win else -0.01, "outcome": "WIN" if win else "LOSS",
                     "cycle_point": close.floor("5min") + 5 * M})
    with wh.transaction() as con:
        append_keyed(con, LEDGER_TABLE, ledger_frame(rows), ("trade_group_id", "side", "level"))


def counts(wh: Warehouse) -> dict[str, int]:
    t = wh.revision_tables()
    return {**{k: len(v) for k, v in t.items()}, "outbox": len(wh.outbox()), "versions": len(wh.config_versions())}


def refused(wh: Warehouse, cfg, match: str, fn, *args) -> None:
    """``fn(*args)`` is refused with ``match`` and changes nothing: rows, versions, effective config."""
    eff = effective_config(wh, cfg, ORIGIN)  # the current config's version is recorded first
    before = counts(wh), eff
    with pytest.raises(RevisionError, match=match):
        fn(*args)
    after = counts(wh), effective_config(wh, cfg, ORIGIN)
    assert before[0] == after[0]
    assert (before[1].fingerprint(), before[1].config_version) == (after[1].fingerprint(), after[1].config_version)


def schemas_hold(wh: Warehouse) -> None:
    """The stored rows follow their Pandera schemas."""
    t = wh.revision_tables()
    for name, schema in (("proposals", ProposalSchema), ("revisions", RevisionSchema), ("decisions", DecisionSchema),
                         ("rollback_proposals", RollbackProposalSchema)):
        if len(t[name]):
            schema.validate(t[name], lazy=True)


def status(wh: Warehouse, pid: str, now: pd.Timestamp = NOW) -> ProposalStatus:
    return next(v.status for v in proposal_views(wh, now) if v.proposal_id == pid)


# --- approval, effective config, rollback ------------------------------------------------------------------------


def test_approve_then_rollback_restores_the_exact_previous_config(wh, cfg):
    regimes(wh, NOW)
    before = effective_config(wh, cfg, ORIGIN)
    assert before.config_version == 1
    closes(wh, [(NOW - 70 * H + i * H, NOW - 69 * H + i * H, i < 4) for i in range(6)]  # 4 of 6 won
           + [(NOW - 80 * H, NOW - 72 * H - S, False)])  # closed before the baseline window
    closes(wh, [(NOW - 10 * H, NOW - 9 * H, False)], strategy="SWING")  # another strategy
    pid = propose(wh, cfg)
    assert status(wh, pid) is ProposalStatus.PROPOSED

    r = approve(wh, cfg, ORIGIN, pid, "alice", "shadows agree", NOW)
    assert (r.revision_id, r.config_version, r.previous_config_version, r.applied_at) == (1, 2, 1, NOW)
    assert (r.baseline.trades, r.baseline.win_rate) == (6, 4 / 6)  # I-17: the baseline is stored
    stored = wh.config_revisions().iloc[0]
    assert json.loads(stored["baseline_json"])["trades"] == 6 and stored["who"] == "alice"
    assert json.loads(stored["keys_json"]) == [{"key": TP_DCA, "old": 1.0, "new": 1.1}]
    assert json.loads(stored["evidence_json"]) == {"outperformance": 0.12, "trades": 140}
    d = wh.proposal_decisions().iloc[0]
    assert (d["decision"], d["who"], d["why"], int(d["revision_id"])) == ("APPROVED", "alice", "shadows agree", 1)
    msg = wh.outbox().iloc[0]
    assert msg["kind"] == "threshold_approved" and msg["channel"] == "#system-alerts" and "1 → 1.1" in msg["text"]
    after = effective_config(wh, cfg, ORIGIN)
    assert (after.exits.tp_multiplier.dca, after.config_version) == (1.1, 2)
    assert wh.config_version_row(2).origin == f"revision 1 (approval of {pid} by alice) over config.yaml"
    assert status(wh, pid) is ProposalStatus.APPROVED

    (rb,) = rollback_last(wh, cfg, ORIGIN, 24, "bob", "bad day", NOW + H)
    assert (rb.revision_id, rb.reverts, rb.kind.value, rb.who) == (2, 1, "rollback", "bob")
    assert [(c.key, c.old, c.new) for c in rb.changes] == [(TP_DCA, 1.1, 1.0)]
    restored = effective_config(wh, cfg, ORIGIN)
    # the exact previous values: the same content hash as before the approval, under a new version number
    assert raw_dict(restored) == raw_dict(before) and restored.fingerprint() == before.fingerprint()
    assert restored.config_version == rb.config_version == 3
    versions = wh.config_versions()
    assert versions["content_hash"].tolist() == [before.fingerprint(), after.fingerprint(), before.fingerprint()]
    assert effective_config(wh, cfg, ORIGIN).config_version == 3 and len(wh.config_versions()) == 3
    assert status(wh, pid) is ProposalStatus.ROLLED_BACK
    assert consistency_problems(cfg, RevisionState.read(wh)) == []
    schemas_hold(wh)


def test_the_config_in_force_is_read_without_recording_anything(wh, cfg, tmp_path):
    regimes(wh, NOW)
    assert config_in_force(wh, cfg).config_version == 0 and wh.config_versions().empty  # never recorded: 0
    before = effective_config(wh, cfg, ORIGIN)  # a run records version 1
    assert config_in_force(wh, cfg).config_version == 1
    approve(wh, cfg, ORIGIN, propose(wh, cfg), "alice", "shadows agree", NOW)
    stored = (tmp_path / "w.duckdb").read_bytes()
    now = config_in_force(wh, cfg)
    assert (now.exits.tp_multiplier.dca, now.config_version) == (1.1, 2)
    assert now.fingerprint() == effective_config(wh, cfg, ORIGIN).fingerprint() != before.fingerprint()
    # a user-file edit not yet seen by a run: the values in force, under no recorded version yet
    edited = load_config(write_user_config(tmp_path, "exits: {tp_multiplier: {swing: 1.3}}\n"))
    unseen = config_in_force(wh, edited)
    assert (unseen.exits.tp_multiplier.swing, unseen.exits.tp_multiplier.dca, unseen.config_version) == (1.3, 1.1, 0)
    assert (tmp_path / "w.duckdb").read_bytes() == stored  # read only: the file is byte for byte unchanged
    # values equal to an older version but not to the latest: a run would record them anew, so not "version 1"
    back = effective_config(wh, edited, ORIGIN)  # a run under the edit records version 3
    assert back.config_version == 3 and config_in_force(wh, edited).config_version == 3
    assert config_in_force(wh, cfg).config_version == 0  # the same values as version 2, which is not the latest
    assert effective_config(wh, cfg, ORIGIN).config_version == 4  # … and a run records them as version 4


def test_an_approved_revision_is_in_force_from_the_first_cycle_point_after_it(wh, cfg, tmp_path):
    regimes(wh, NOW + H)
    v1 = effective_config(wh, cfg, ORIGIN)
    approve(wh, cfg, ORIGIN, propose(wh, cfg), "alice", "ok", NOW)  # 12:02:30
    t = pd.Timestamp("2026-03-10 12:00", tz="UTC")
    timeline = config_timeline(wh, cfg, ORIGIN, t, t + 20 * M)
    assert [(f, c.exits.tp_multiplier.dca, c.config_version) for f, c in timeline] == [
        (None, 1.0, 1), (t + 5 * M, 1.1, 2)]
    assert timeline[0][1].fingerprint() == v1.fingerprint()
    assert effective_config(wh, cfg, ORIGIN, at=NOW).exits.tp_multiplier.dca == 1.0  # applied at, not before
    assert effective_config(wh, cfg, ORIGIN, at=NOW + S).exits.tp_multiplier.dca == 1.1
    assert [f for f, _ in config_timeline(wh, cfg, ORIGIN, t + 5 * M, t + 20 * M)] == [None]
    # approved exactly at a cycle point: in force from the next one
    at = pd.Timestamp("2026-03-10 12:10", tz="UTC")
    approve(wh, cfg, ORIGIN, propose(wh, cfg, "exits.tp_multiplier.swing", strategy="SWING", created=at - H),
            "alice", "ok", at)
    timeline = config_timeline(wh, cfg, ORIGIN, t, t + 30 * M)
    assert [(f, c.exits.tp_multiplier.swing, c.config_version) for f, c in timeline] == [
        (None, 1.0, 1), (t + 5 * M, 1.0, 2), (t + 15 * M, 1.1, 3)]
    assert len(wh.config_versions()) == 3  # the timeline records nothing new
    # the project config resource (every run) loads the effective config with its revisions and version
    from resources.config import ProjectConfigResource
    from resources.warehouse import WarehouseResource

    loaded = ProjectConfigResource(warehouse=WarehouseResource(path=wh.path)).load()
    assert (loaded.exits.tp_multiplier.dca, loaded.exits.tp_multiplier.swing, loaded.config_version) == (1.1, 1.1, 3)


def test_a_user_file_edit_after_an_approval_is_a_new_version_over_the_revision(wh, cfg, tmp_path):
    regimes(wh, NOW)
    pid = propose(wh, cfg)
    approve(wh, cfg, ORIGIN, pid, "alice", "ok", NOW)
    user = write_user_config(tmp_path, "limits: {loss_streak: 6}\n")
    edited = effective_config(wh, load_config(str(user)), str(user))
    assert (edited.exits.tp_multiplier.dca, edited.limits.loss_streak, edited.config_version) == (1.1, 6, 3)
    assert wh.config_version_row(3).origin == f"revision 1 (approval of {pid} by alice) over {user}"
    assert effective_config(wh, load_config(str(user)), str(user)).config_version == 3
    # back to the file of the approval: a change seen at load, so the next integer (as without revisions)
    back = effective_config(wh, cfg, ORIGIN)
    assert back.config_version == 4 and wh.config_version_row(4).content_hash == wh.config_version_row(2).content_hash


def test_a_revision_that_no_longer_validates_fails_the_load_naming_it(wh, cfg, tmp_path):
    regimes(wh, NOW)
    approve(wh, cfg, ORIGIN, propose(wh, cfg, "exits.tp_multiplier.channel", 1.0, 0.75, strategy="CHANNEL"),
            "alice", "ok", NOW)
    # a later edit of the user file raises the small-cap round trip to 0.023 > 0.03 × 0.75
    user = write_user_config(tmp_path, "costs: {slippage: {small_cap: 0.0085}}\n")
    base = load_config(str(user))
    with pytest.raises(ConfigError, match=r"revision 1 \(approval of .*\) sets `exits.tp_multiplier.channel`: .*"
                                          r"`exits.channel.small_cap.take_profit`"):
        effective_config(wh, base, str(user))


# --- refusals ----------------------------------------------------------------------------------------------------


def test_the_gates_refuse_again_at_approval_with_their_reason(wh, cfg):
    regimes(wh, NOW + 13 * H, span=30 * H)
    keys = ["exits.tp_multiplier.dca", "exits.tp_multiplier.swing", "exits.tp_multiplier.channel"]
    for key, s in zip(keys, ("DCA", "SWING", "CHANNEL")):
        approve(wh, cfg, ORIGIN, propose(wh, cfg, key, strategy=s), "alice", "ok", NOW)
    fourth = propose(wh, cfg, "ml.confidence_threshold.dca", 0.6, 0.62, parameter="confidence_threshold")
    refused(wh, cfg, "daily quota reached: 3 revisions already applied on 2026-03-10", approve, wh, cfg, ORIGIN,
            fourth, "alice", "ok", NOW)
    # a rollback does not count towards the quota, and the next UTC day has a quota of its own
    tomorrow = pd.Timestamp("2026-03-11 00:10", tz="UTC")
    assert approve(wh, cfg, ORIGIN, fourth, "alice", "ok", tomorrow).revision_id == 4


def test_ttl_gate_and_expired_proposals(wh, cfg):
    regimes(wh, NOW)
    old = propose(wh, cfg, created=NOW - 24 * H)  # exactly proposal_ttl_h old at NOW
    assert status(wh, old) is ProposalStatus.EXPIRED
    refused(wh, cfg, "it is EXPIRED", approve, wh, cfg, ORIGIN, old, "alice", "ok", NOW)
    refused(wh, cfg, "it is EXPIRED", reject, wh, cfg, ORIGIN, old, "alice", "no", NOW)
    young = propose(wh, cfg, "exits.tp_multiplier.swing", strategy="SWING", created=NOW - 24 * H + S)
    assert approve(wh, cfg, ORIGIN, young, "alice", "ok", NOW).revision_id == 1


def test_regime_gate(wh, cfg):
    pid = propose(wh, cfg)
    refused(wh, cfg, "regime history incomplete", approve, wh, cfg, ORIGIN, pid, "alice", "ok", NOW)
    regimes(wh, NOW, other={pd.Timestamp("2026-03-10 10:00", tz="UTC"): "CAUTION"})
    refused(wh, cfg, "regime not stable over the last 12 h", approve, wh, cfg, ORIGIN, pid, "alice", "ok", NOW)
    regimes(wh, NOW)
    assert approve(wh, cfg, ORIGIN, pid, "alice", "ok", NOW).revision_id == 1


def test_decided_blocked_stale_invalid_and_unknown_proposals_are_refused(wh, cfg):
    regimes(wh, NOW + H)
    pid = propose(wh, cfg)
    approve(wh, cfg, ORIGIN, pid, "alice", "ok", NOW)
    refused(wh, cfg, f"approve {pid}: it is APPROVED .* revision 1", approve, wh, cfg, ORIGIN, pid, "bob", "again",
            NOW + M)
    refused(wh, cfg, "it is APPROVED", reject, wh, cfg, ORIGIN, pid, "bob", "no", NOW + M)
    other = propose(wh, cfg, "exits.tp_multiplier.swing", strategy="SWING")
    v = reject(wh, cfg, ORIGIN, other, "bob", "not now", NOW + M)
    assert v.status is ProposalStatus.REJECTED and wh.outbox()["kind"].tolist()[-1] == "threshold_rejected"
    refused(wh, cfg, "it is REJECTED .* by bob", approve, wh, cfg, ORIGIN, other, "alice", "ok", NOW + 2 * M)
    blocked = propose(wh, cfg, "exits.tp_multiplier.channel", strategy="CHANNEL", blocked="regime not stable")
    refused(wh, cfg, "blocked at proposal time \\(regime not stable\\)", approve, wh, cfg, ORIGIN, blocked, "a", "b",
            NOW + 2 * M)
    refused(wh, cfg, "unknown proposal 'DCA_tp_multiplier_209901010000'", approve, wh, cfg, ORIGIN,
            "DCA_tp_multiplier_209901010000", "a", "b", NOW + 2 * M)
    stale = propose(wh, cfg, "ml.confidence_threshold.swing", 0.6, 0.62, strategy="SWING",
                    parameter="confidence_threshold")  # the live value is 0.65
    refused(wh, cfg, "the config changed since: `ml.confidence_threshold.swing` is 0.65, expected 0.6", approve, wh,
            cfg, ORIGIN, stale, "a", "b", NOW + 2 * M)
    invalid = propose(wh, cfg, "exits.tp_multiplier.channel", 1.0, 0.5, strategy="CHANNEL", created=NOW - 30 * M)
    refused(wh, cfg, "would not validate .*`exits.channel.small_cap.take_profit`", approve, wh, cfg, ORIGIN, invalid,
            "a", "b", NOW + 2 * M)
    refused(wh, cfg, "who \\(--by\\) and why \\(--why\\) are required", approve, wh, cfg, ORIGIN, invalid, "a", " ",
            NOW + 2 * M)


# --- the rollback monitor ----------------------------------------------------------------------------------------


def test_monitor_rolls_back_on_a_loss_run_once(wh, cfg):
    regimes(wh, NOW)
    before = effective_config(wh, cfg, ORIGIN)
    pid = propose(wh, cfg)
    approve(wh, cfg, ORIGIN, pid, "alice", "ok", NOW)
    assert rollback_monitor(wh, cfg, ORIGIN, NOW + H) == []
    t = NOW + 2 * H
    closes(wh, [(NOW + 5 * M, t, False), (NOW + 10 * M, t + 20 * M, False), (NOW + 15 * M, t + H, False)])
    (rb,) = rollback_monitor(wh, cfg, ORIGIN, NOW + 4 * H)
    assert (rb.who, rb.reverts, rb.kind.value) == ("system:rollback", 1, "rollback")
    assert rb.trigger.startswith("(b) 3 consecutive losing closes within 1.00 h")
    assert effective_config(wh, cfg, ORIGIN).fingerprint() == before.fingerprint()
    assert wh.outbox()["kind"].tolist() == ["threshold_approved", "threshold_rollback"]
    assert status(wh, pid, NOW + 4 * H) is ProposalStatus.ROLLED_BACK
    n = counts(wh)
    assert rollback_monitor(wh, cfg, ORIGIN, NOW + 5 * H) == [] and counts(wh) == n  # at most once


def test_monitor_judges_the_win_rate_against_the_stored_baseline(wh, cfg):
    regimes(wh, NOW)
    closes(wh, [(NOW - 60 * H + 2 * i * H, NOW - 59 * H + 2 * i * H, i < 6) for i in range(10)])  # baseline 0.6
    approve(wh, cfg, ORIGIN, propose(wh, cfg), "alice", "ok", NOW)
    after = [(NOW + H + 2 * i * H, NOW + 2 * H + 2 * i * H, i % 2 == 1) for i in range(20)]  # 2 h apart: no run
    closes(wh, after[:18] + [(NOW + 37 * H, NOW + 38 * H, False), (NOW + 39 * H, NOW + 40 * H, False)])
    # by NOW + 20 h: 10 closed, 5 won = 0.5 ≥ 0.6 − 0.15; by NOW + 41 h: 20 closed, 9 won = 0.45, equal: no trigger
    assert rollback_monitor(wh, cfg, ORIGIN, NOW + 20 * H) == []
    assert rollback_monitor(wh, cfg, ORIGIN, NOW + 41 * H) == []
    # at monitor_h 48: 0.45 < the baseline 0.6 → (c)
    (rb,) = rollback_monitor(wh, cfg, ORIGIN, NOW + 48 * H)
    assert rb.trigger.startswith("(c) at monitor_h 48: win rate 0.450 over 20 closed trade(s) < baseline 0.600")
    assert rb.evidence["baseline_trades"] == 10


def test_without_automatic_rollback_the_monitor_records_a_proposal(wh, tmp_path):
    user = write_user_config(tmp_path, "threshold_manager: {rollback: {automatic: false}}\n")
    cfg, origin = load_config(str(user)), str(user)
    regimes(wh, NOW)
    pid = propose(wh, cfg)
    approve(wh, cfg, origin, pid, "alice", "ok", NOW)
    t = NOW + 2 * H
    closes(wh, [(NOW + 5 * M, t, False), (NOW + 10 * M, t + 20 * M, False), (NOW + 15 * M, t + H, False)])
    report = run_rollback_monitor(wh, cfg, origin, NOW + 4 * H)
    assert report.revisions == [] and report.proposals == ["ROLLBACK_r1_202603101602"]
    assert len(wh.config_revisions()) == 1 and effective_config(wh, cfg, origin).exits.tp_multiplier.dca == 1.1
    assert wh.outbox()["kind"].tolist()[-1] == "rollback_proposed"
    n = counts(wh)
    assert run_rollback_monitor(wh, cfg, origin, NOW + 5 * H).proposals == [] and counts(wh) == n
    rp = "ROLLBACK_r1_202603101602"
    assert status(wh, rp, NOW + 5 * H) is ProposalStatus.PROPOSED
    # approving it restores the values; rollbacks skip the regime check (no regime rows after NOW) and the quota
    r = approve(wh, cfg, origin, rp, "carol", "agree", NOW + 5 * H)
    assert (r.kind.value, r.reverts, r.who, r.proposal_id) == ("rollback", 1, "carol", rp)
    assert r.trigger.startswith("(b)")
    assert effective_config(wh, cfg, origin).exits.tp_multiplier.dca == 1.0
    assert status(wh, pid, NOW + 5 * H) is ProposalStatus.ROLLED_BACK
    assert status(wh, rp, NOW + 5 * H) is ProposalStatus.APPROVED
    assert consistency_problems(cfg, RevisionState.read(wh)) == []
    schemas_hold(wh)
    # a rollback that does not restore the exact previous values breaks the invariant the check reports
    with wh.transaction() as con:
        append_keyed(con, "config_revisions", wh.config_revisions().iloc[[1]].assign(
            revision_id=3, reverts=1, keys_json=json.dumps([{"key": TP_DCA, "old": 1.0, "new": 0.9}])),
            ("revision_id",))
    problems = consistency_problems(cfg, RevisionState.read(wh))
    assert any("not the exact previous values" in p for p in problems)
    assert any("revision 1 is reverted more than once" in p for p in problems)


def test_rollback_last_24h_reverts_every_revision_of_the_window(wh, cfg):
    regimes(wh, NOW, span=50 * H)
    first, second, third = NOW - 30 * H, NOW - 5 * H, NOW - H
    for key, s, at in (("exits.tp_multiplier.dca", "DCA", first), ("exits.tp_multiplier.swing", "SWING", second),
                       ("exits.tp_multiplier.channel", "CHANNEL", third)):
        approve(wh, cfg, ORIGIN, propose(wh, cfg, key, strategy=s, created=at - H), "alice", "ok", at)
    done = rollback_last(wh, cfg, ORIGIN, 24, "bob", "revert the day", NOW)
    assert [(r.revision_id, r.reverts) for r in done] == [(4, 3), (5, 2)]  # newest first
    eff = effective_config(wh, cfg, ORIGIN)
    assert (eff.exits.tp_multiplier.dca, eff.exits.tp_multiplier.swing, eff.exits.tp_multiplier.channel) == (
        1.1, 1.0, 1.0)
    assert [r.config_version for r in done] == [5, 6] and eff.config_version == 6
    refused(wh, cfg, "rollback --last 24h: no revision applied since .* is left to revert", rollback_last, wh, cfg,
            ORIGIN, 24, "bob", "again", NOW + M)
    assert consistency_problems(cfg, RevisionState.read(wh)) == []


# --- CLI and Dagster ---------------------------------------------------------------------------------------------


def test_cli_approve_reject_proposals_and_rollback(tmp_env, monkeypatch, capsys, cfg):
    from cryptotracker_assets.cli import main

    for k, v in tmp_env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("CRYPTOTRACKER_CONFIG", raising=False)
    path = tmp_env["CRYPTOTRACKER_WAREHOUSE"]
    wh = Warehouse(path)
    now = pd.Timestamp.now(tz="UTC")
    regimes(wh, now)
    pid = propose(wh, cfg, created=now - H)
    other = propose(wh, cfg, "exits.tp_multiplier.swing", strategy="SWING", created=now - H)

    assert main(["proposals", "list"]) == 0
    out = capsys.readouterr().out
    assert pid in out and "exits.tp_multiplier.dca 1 → 1.1" in out and "PROPOSED" in out and "HIGH" in out
    assert main(["proposals", "show", pid]) == 0
    out = capsys.readouterr().out
    assert "outperformance" in out and "(recommended 1.1)" in out and "PROPOSED" in out

    assert main(["approve", pid, "--by", "alice", "--why", "shadows agree", "--warehouse", path]) == 0
    out = capsys.readouterr().out
    assert f"approved {pid} by alice: revision 1" in out and "baseline" in out
    assert main(["approve", pid, "--by", "alice", "--why", "again"]) == 2
    assert "approve refused:" in capsys.readouterr().err
    assert main(["reject", other, "--by", "bob", "--why", "no"]) == 0
    assert main(["approve", other, "--by", "alice", "--why", "ok"]) == 2
    assert "it is REJECTED" in capsys.readouterr().err
    assert main(["proposals", "list", "--pending"]) == 0
    assert "no proposals waiting for a decision" in capsys.readouterr().out

    # the read-only commands use the config in force (the approved revision applied) and record nothing
    versions = len(wh.config_versions())
    assert main(["status"]) == 0
    assert f"config in force: version 2 (revision 1 (approval of {pid} by alice) over config.yaml)" in \
        capsys.readouterr().out
    assert len(wh.config_versions()) == versions

    assert main(["rollback", "--last", "24h", "--by", "carol", "--why", "undo"]) == 0
    assert "revision 2: reverted revision 1" in capsys.readouterr().out
    assert effective_config(wh, cfg, ORIGIN).exits.tp_multiplier.dca == 1.0
    assert main(["rollback", "--last", "24x"]) == 2
    assert "expected a positive span" in capsys.readouterr().err
    # each change is mirrored in the Dagster instance as a runless materialization of config_revisions
    with dg.DagsterInstance.get() as instance:
        records = instance.fetch_materializations(dg.AssetKey("config_revisions"), limit=10).records
    assert len(records) == 3


def test_approval_job_monitor_job_and_a_check_that_changes_nothing(tmp_env, tmp_path, instance):
    from cryptotracker_assets.definitions import build_definitions

    user = write_user_config(tmp_path, "limits: {loss_streak: 6}\n")
    defs = build_definitions({**tmp_env, "CRYPTOTRACKER_CONFIG": str(user)})
    wh = Warehouse(tmp_env["CRYPTOTRACKER_WAREHOUSE"])
    cfg = load_config(str(user))
    now = pd.Timestamp.now(tz="UTC")
    regimes(wh, now)
    pid = propose(wh, cfg, created=now - H)

    def run(job: str, **config):
        run_config = {"ops": {"config_revisions": {"config": config}}} if config else None
        return defs.resolve_job_def(job).execute_in_process(instance=instance, run_config=run_config,
                                                            raise_on_error=False)

    bad = run("approve_proposal_job", action="approve", proposal_id="DCA_tp_multiplier_209901010000", who="a",
              why="b")
    assert not bad.success and len(wh.config_revisions()) == 0
    ok = run("approve_proposal_job", action="approve", proposal_id=pid, who="alice", why="ok")
    assert ok.success
    meta = ok.asset_materializations_for_node("config_revisions")[0].metadata
    assert meta["revision_id"].value == 1 and meta["revisions"].value == 1
    check = {e.check_name: e for e in ok.get_asset_check_evaluations()}["revisions_consistent"]
    assert check.passed
    monitor = run("rollback_monitor_job")
    assert monitor.success
    assert monitor.asset_materializations_for_node("config_revisions")[0].metadata["monitored"].value == [1]
    # the check reads only: with an edited user file it records no config version and changes no revision
    user.write_text("limits: {loss_streak: 7}\n")
    graph = defs.resolve_asset_graph()
    sel = dg.AssetSelection.checks(dg.AssetCheckKey(dg.AssetKey("config_revisions"), "revisions_consistent"))
    job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection=set(),
                                                                  asset_check_selection=sel.resolve_checks(graph))
    n = counts(wh)
    result = job.execute_in_process(instance=instance)
    assert result.success and result.get_asset_check_evaluations()[0].passed
    assert counts(wh) == n
