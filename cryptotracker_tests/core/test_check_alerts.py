"""Check alerts once per failure episode (issue 13, item 2): first failure → one message, repeated failures →
nothing, first pass → one "resolved"; WARN checks only when they are data-health / pipeline checks; a check that
queued its own alert opens its episode silently."""

from __future__ import annotations

import pandas as pd

from cryptotracker_assets.core.check_alerts import CheckEvaluation, transitions

URL = "http://127.0.0.1:3000"


def ev(check: str, passed: bool, minute: int, partition: str | None = "2026-12-01", severity: str = "ERROR",
       **meta) -> CheckEvaluation:
    return CheckEvaluation(asset="paper_trades", check=check, partition=partition, passed=passed, severity=severity,
                           at=pd.Timestamp("2026-12-07 10:00", tz="UTC") + pd.Timedelta(minutes=minute),
                           run_id=f"run{minute}", description=f"{check} at {minute}", metadata=meta)


def test_an_episode_alerts_once_then_resolves_once():
    evs = [ev("ledger_invariants", False, 0), ev("ledger_invariants", False, 5), ev("ledger_invariants", False, 10),
           ev("ledger_invariants", True, 15), ev("ledger_invariants", True, 20), ev("ledger_invariants", False, 25)]
    tr = transitions({}, evs, set(), URL)
    assert [n["kind"] for n in tr.notes] == ["check_failed", "check_resolved", "check_failed"]
    assert tr.notes[0]["run_url"] == f"{URL}/runs/run0" and tr.notes[0]["partition"] == "2026-12-01"
    assert tr.notes[1]["failed_since"] == "2026-12-07T10:00:00+00:00"
    assert tr.notes[1]["resolved_at"] == "2026-12-07T10:15:00+00:00"
    assert len(tr.opened) == 2 and len(tr.resolved) == 1


def test_partitions_are_separate_episodes_and_state_carries_over():
    tr = transitions({}, [ev("c", False, 0, "2026-12-01"), ev("c", False, 1, "2026-12-02")], set(), URL)
    assert len(tr.notes) == 2
    open_now = {("paper_trades", "c", "2026-12-01"): pd.Timestamp("2026-12-07 10:00", tz="UTC")}
    tr = transitions(open_now, [ev("c", False, 2, "2026-12-01"), ev("c", True, 3, "2026-12-02")], set(), URL)
    assert tr.notes == []  # still failing (already said); the other partition never failed here
    tr = transitions(open_now, [ev("c", True, 4, "2026-12-01")], set(), URL)
    assert [n["kind"] for n in tr.notes] == ["check_resolved"]


def test_warn_checks_alert_only_when_listed():
    warn = [ev("ohlc_freshness", False, 0, None, severity="WARN")]
    assert transitions({}, warn, set(), URL).notes == []
    listed = transitions({}, warn, {"paper_trades:ohlc_freshness"}, URL)
    assert [n["kind"] for n in listed.notes] == ["check_failed"] and listed.notes[0]["partition"] is None


def test_a_check_with_its_own_alert_opens_silently_and_still_resolves():
    tr = transitions({}, [ev("engine_lag", False, 0, None, alert_message_id="engine_lag_2612071000_abc"),
                          ev("engine_lag", True, 30, None)], set(), URL)
    assert [n["kind"] for n in tr.notes] == ["check_resolved"]
    assert tr.opened[0]["message_id"] == "engine_lag_2612071000_abc"
