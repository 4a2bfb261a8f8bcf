"""The #system-alerts messages (SPEC §12.2 "Threshold · failure · data health"): threshold approvals and
rollbacks built by the real producer (``revision_note``), proposals, model alerts, pipeline health, run failures
and check episodes. Expected strings are written out by hand."""

from __future__ import annotations

import json

import pandas as pd

from cryptotracker_assets.core.config import Strategy
from cryptotracker_assets.core.notify import render
from cryptotracker_assets.core.revisions import KeyChange, Revision, RevisionKind, revision_note

from .test_notify import EVIL, EVIL_ESCAPED, check_block_kit, context_text, headers, section_text, strings

RUN_ID = "0123abcd-4567-89ef-0123-456789abcdef"


def stored(note: dict) -> dict:
    """A note as the outbox stores its payload: JSON, without the routing identity."""
    return json.loads(json.dumps({k: v for k, v in note.items() if k != "identity"}, default=str))


def revision(kind: RevisionKind, **over) -> Revision:
    base = dict(revision_id=7, config_version=18, previous_config_version=17,
                applied_at=pd.Timestamp("2026-03-08T12:00:00Z"), kind=kind, strategy=Strategy.DCA,
                changes=(KeyChange("exits.dca.memecoin.take_profit", 0.15, 0.165),), who="alice", why=EVIL,
                evidence={"tier": "HIGH", "trades": 120, "outperformance": 0.12})
    return Revision(**{**base, **over})


def test_threshold_approved_from_the_producer():
    note = revision_note(revision(RevisionKind.APPROVAL), parameter="tp_multiplier", tier="HIGH")
    [m] = render(note["kind"], stored(note))
    check_block_kit(m)
    assert headers([m]) == ["✅ Threshold approved: 💰 DCA"]
    lines = section_text([m]).split("\n")
    assert lines == ["*Parameter:* `exits.dca.memecoin.take_profit`",  # the payload has no `parameter` field
                     "• `exits.dca.memecoin.take_profit`: 0.15 → 0.165",
                     "*Evidence tier:* HIGH",
                     "*Evidence:* tier HIGH, trades 120, outperformance 0.12",
                     f"*By:* alice — {EVIL_ESCAPED}",
                     "In force from the next cycle point."]
    for s in strings(m):
        assert "<!" not in s and "<http" not in s


def test_threshold_approved_with_parameter_and_tier_fields():
    note = stored(revision_note(revision(RevisionKind.APPROVAL, evidence={"trades": 55})))
    [m] = render("threshold_approved", {**note, "parameter": "tp_multiplier", "tier": "MEDIUM", "revision_id": 7})
    lines = section_text([m]).split("\n")
    assert lines[0] == "*Parameter:* tp_multiplier" and "*Evidence tier:* MEDIUM" in lines
    assert "revision 7" in context_text([m])


def test_threshold_rollback_from_the_producer():
    rev = revision(RevisionKind.ROLLBACK, changes=(KeyChange("exits.dca.memecoin.take_profit", 0.165, 0.15),),
                   who="rollback-monitor", why="win rate fell", reverts=6, trigger="win rate -12.0 pp over 30 trades")
    note = revision_note(rev)
    [m] = render(note["kind"], stored(note))
    check_block_kit(m)
    assert headers([m]) == ["↩️ Threshold rollback: 💰 DCA"]
    assert section_text([m]).split("\n") == ["*Trigger:* win rate -12.0 pp over 30 trades", "*Restored:*",
                                             "• `exits.dca.memecoin.take_profit`: 0.165 → 0.15",
                                             "*By:* rollback-monitor — win rate fell",
                                             "In force from the next cycle point."]


def test_threshold_alert_without_fields_falls_back_to_its_text():
    [m] = render("threshold_approved", {"text": "Threshold approved: DCA <b> & more"})
    assert section_text([m]) == "Threshold approved: DCA &lt;b&gt; &amp; more"


def test_rejected_and_rollback_proposed():
    [m] = render("threshold_rejected", {"text": "Proposal rejected: DCA_tp_multiplier_202603081000 (DCA ...)",
                                        "who": "bob", "why": "not enough data"})
    check_block_kit(m)
    assert section_text([m]).split("\n") == ["Proposal rejected: DCA_tp_multiplier_202603081000 (DCA ...)",
                                             "*By:* bob — not enough data"]
    text = ("Rollback proposed for revision 7 (DCA): trigger win rate -12.0 pp; would restore x 1 → 2; approve with "
            "`cryptotracker approve rollback_7_202603081200`")
    [m] = render("rollback_proposed", {"text": text, "strategy": "DCA", "trigger": "win rate -12.0 pp",
                                       "changes": [{"key": "strategies.dca.confidence", "old": 0.6, "new": 0.55}],
                                       "evidence": {"trades": 30, "win_rate": 0.4}})
    check_block_kit(m)
    assert section_text([m]).split("\n") == [
        "*Trigger:* win rate -12.0 pp", "*Would restore:*", "• `strategies.dca.confidence`: 0.6 → 0.55",
        "*Evidence:* trades 30, win_rate 0.4",
        "*Approve:* `cryptotracker approve rollback_7_202603081200 --by … --why …`"]


def test_proposal_with_changes_as_json_text():
    p = {"kind": "proposal", "proposal_id": "DCA_tp_multiplier_202603081000", "strategy": "DCA",
         "parameter": "tp_multiplier", "variation": "QUICK_EXITS", "tier": "MEDIUM",
         "changes": json.dumps([{"key": "exits.tp_multiplier.dca", "old": 1.0, "new": 0.9, "recommended": 0.8}]),
         "blocked_reason": None, "expires_at": "2026-03-11T10:00:00+00:00"}
    [m] = render("proposal", p)
    check_block_kit(m)
    assert headers([m]) == ["💡 Threshold proposal: 💰 DCA"]
    assert section_text([m]).split("\n") == [
        "*Parameter:* tp_multiplier", "• `exits.tp_multiplier.dca`: 1 → 0.9 (recommended 0.8)",
        "*Variation:* QUICK_EXITS · *Evidence tier:* MEDIUM",
        "*Approve:* `cryptotracker approve DCA_tp_multiplier_202603081000 --by … --why …` (or `reject`)"]
    assert "expires 2026-03-11 10:00 UTC" in context_text([m])
    [m] = render("proposal", {**p, "blocked_reason": "quota: 1 change per day"})
    assert section_text([m]).split("\n")[-1] == "*Blocked:* quota: 1 change per day"


def test_model_alerts():
    [m] = render("promotion_gates_failed", {"strategy": "SWING", "model_version": "swing_202603080200",
                                            "failed": ["auc: 0.52 < 0.55", "brier: 0.31 > 0.25"],
                                            "champion": "swing_202603010200"})
    check_block_kit(m)
    assert headers([m]) == ["🚫 Promotion gates failed: 🚀 SWING"]
    assert section_text([m]).split("\n") == ["*Candidate:* `swing_202603080200`",
                                             "*Champion:* `swing_202603010200` stays", "*Failed gates:*",
                                             "• auc: 0.52 &lt; 0.55", "• brier: 0.31 &gt; 0.25"]
    [m] = render("champion_retired", {"strategy": "CHANNEL", "model_id": "channel_202603010200", "replaced_by": None,
                                      "reason": "feature set changed"})
    assert headers([m]) == ["📤 Champion retired: 📊 CHANNEL"]
    assert section_text([m]).split("\n") == ["*Model:* `channel_202603010200`",
                                             "*Replaced by:* none (rule confidence until a new champion)",
                                             "*Reason:* feature set changed"]
    [m] = render("champion_unavailable", {"strategy": "DCA", "problem": "file missing", "fallback": "rule confidence"})
    assert section_text([m]).split("\n") == ["*Problem:* file missing", "*Fallback:* rule confidence"]


def test_pipeline_health_alerts():
    text = ("ohlc_1m_job: 2 failed ingest run(s) in the last 24 h — run 0123abcd (partition 2026-03-08, failed "
            "2026-03-08 10:00:00 UTC) http://localhost:3000/runs/0123abcd; run 89abcdef (partition -, failed "
            "2026-03-08 11:00:00 UTC) http://localhost:3000/runs/89abcdef")
    [m] = render("ingest_run_failed", {"text": text, "job": "ohlc_1m_job", "runs": ["0123abcd", "89abcdef"],
                                       "identity": {"job": "ohlc_1m_job"}, "cycle_point": "2026-03-08 11:00:00 UTC"})
    check_block_kit(m)
    assert headers([m]) == ["🔥 Ingest run failed: ohlc_1m_job"]
    assert section_text([m]).split("\n") == [
        "ohlc_1m_job: 2 failed ingest run(s) in the last 24 h",
        "• run 0123abcd (partition 2026-03-08, failed 2026-03-08 10:00:00 UTC) http://localhost:3000/runs/0123abcd",
        "• run 89abcdef (partition -, failed 2026-03-08 11:00:00 UTC) http://localhost:3000/runs/89abcdef"]
    [m] = render("engine_lag", {"text": "paper engine behind ...", "cursor": "2026-03-08 10:00:00 UTC",
                                "newest_cycle_point": "2026-03-08 11:00:00 UTC", "lag_cycle_points": 12,
                                "reason": "BTC bars stopped arriving"})
    assert section_text([m]).split("\n") == [
        "*Behind by:* 12 cycle points",
        "*Last processed:* 2026-03-08 10:00 UTC · *Bars allow:* 2026-03-08 11:00 UTC",
        "*Why:* BTC bars stopped arriving"]


def test_run_failure():
    error = "\n".join([f"DagsterExecutionStepExecutionError: step failed {EVIL}"]
                      + [f"caused by Error{i}: boom {i}" for i in range(1, 30)])
    p = {"kind": "run_failure", "cycle_point": "2026-03-08T12:00:00+00:00", "job": "paper_engine_job",
         "run_id": RUN_ID, "partition": None, "steps": ["paper_trades", "outbox"], "error": error,
         "run_url": f"http://localhost:3000/runs/{RUN_ID}", "failed_at": "2026-03-08T12:00:30+00:00"}
    [m] = render("run_failure", p, message_id="run_failure_2603081200_0123456789")
    check_block_kit(m)
    assert headers([m]) == ["🔥 Run failed: paper_engine_job"]
    secs = [b["text"]["text"] for b in m.blocks if b["type"] == "section"]
    assert secs[0].split("\n") == ["*Job:* paper_engine_job · *Partition:* none",
                                   "*Failed steps:* `paper_trades`, `outbox`",
                                   f"*Run:* <http://localhost:3000/runs/{RUN_ID}|Open run 0123abcd>"]
    code = secs[1].split("\n")
    assert code[0] == "```" and code[-1] == "```"
    assert code[1] == f"DagsterExecutionStepExecutionError: step failed {EVIL_ESCAPED}"
    assert code[2:-2] == [f"caused by Error{i}: boom {i}" for i in range(1, 12)]  # 12 lines in all
    assert code[-2] == "… 18 more line(s)"
    assert "failed 2026-03-08 12:00 UTC" in context_text([m])
    for s in strings(m):
        assert "<!" not in s and "<http://evil" not in s
    [m] = render("run_failure", {**p, "partition": "2026-03-08", "run_url": "http://x/runs/a|b>c"})
    assert "*Run:* <http://x/runs/a%7Cb%3Ec|Open run 0123abcd>" in section_text([m]).split("\n")
    assert "*Partition:* 2026-03-08" in section_text([m])


def test_check_failed_and_resolved():
    meta = {f"m{i:02d}": i * 1000 for i in range(12)}
    meta["m00"] = "BTC, ETH <x>"
    [m] = render("check_failed", {"asset": "ohlc_1m", "check": "no_gaps", "partition": "2026-03-08",
                                  "severity": "WARN", "description": "3 symbols with gaps", "metadata": meta,
                                  "run_id": RUN_ID, "run_url": f"http://localhost:3000/runs/{RUN_ID}",
                                  "failed_at": "2026-03-08T10:00:00+00:00"})
    check_block_kit(m)
    assert headers([m]) == ["🟡 Check failed: ohlc_1m · no_gaps"]
    assert section_text([m]).split("\n") == [
        "*Asset:* `ohlc_1m` · *Check:* `no_gaps`", "*Partition:* 2026-03-08 · *Severity:* WARN",
        "*Description:* 3 symbols with gaps", "*Metadata:*", "• m00: BTC, ETH &lt;x&gt;", "• m01: 1,000",
        "• m02: 2,000", "• m03: 3,000", "• m04: 4,000", "• m05: 5,000", "• m06: 6,000", "• m07: 7,000",
        "• m08: 8,000", "• m09: 9,000", "… and 2 more",
        f"*Run:* <http://localhost:3000/runs/{RUN_ID}|Open run 0123abcd>"]
    [m] = render("check_resolved", {"asset": "ohlc_1m", "check": "no_gaps", "partition": None,
                                    "failed_since": "2026-03-08T10:00:00+00:00",
                                    "resolved_at": "2026-03-08T13:20:00+00:00", "run_url": None})
    check_block_kit(m)
    assert headers([m]) == ["✅ Check resolved: ohlc_1m · no_gaps"]
    assert section_text([m]).split("\n") == [
        "*Asset:* `ohlc_1m` · *Check:* `no_gaps`", "*Partition:* none",
        "*Failing since:* 2026-03-08 10:00 UTC · *Resolved:* 2026-03-08 13:20 UTC (3 h 20 min)", "*Run:* n/a"]
