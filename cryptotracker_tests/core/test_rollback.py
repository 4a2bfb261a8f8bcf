"""Config revisions as pure logic (SPEC §10.6, I-12, I-17): baselines, the rollback triggers (a), (b), (c) at their
boundaries on hand-built ledgers, key changes by dotted key, the derived proposal status and the alerts."""

from __future__ import annotations

import pandas as pd
import pytest

from cryptotracker_assets.core.config import ConfigError, build_config, merge, raw_dict
from cryptotracker_assets.core.engine_records import MESSAGE_ID_RE
from cryptotracker_assets.core.revisions import (Baseline, KeyChange, ProposalStatus, Revision, RevisionKind,
                                                 Trigger, alert_rows, apply_revisions, baseline_of, closed_trades,
                                                 losing_run, monitored, monitored_closes, proposal_id,
                                                 proposal_status, restore_of, revision_note, rollback_proposal_id,
                                                 rollback_trigger, stale_keys, value_at, with_changes)
from cryptotracker_assets.core.config import Strategy

A = pd.Timestamp("2026-03-10 12:02", tz="UTC")  # the approval time
H = pd.Timedelta(hours=1)
M = pd.Timedelta(minutes=1)
S = pd.Timedelta(seconds=1)


def ledger(trades, strategy: str = "DCA") -> pd.DataFrame:
    """A ledger of ``trades`` = [(entry, close, win)] (a BUY and a SELL row each, plus rows of another strategy
    that must never count)."""
    rows = []
    for i, (entry, close, win) in enumerate(trades):
        for s in (strategy, "SWING" if strategy != "SWING" else "CHANNEL"):
            tg = f"{s}_X_{i:04d}"
            rows.append({"trade_group_id": tg, "side": "BUY", "strategy": s, "entry_time": entry, "bar_time": entry,
                         "pnl_usd": None, "pnl_pct": None, "outcome": None})
            rows.append({"trade_group_id": tg, "side": "SELL", "strategy": s, "entry_time": entry, "bar_time": close,
                         "pnl_usd": 1.0 if win else -1.0, "pnl_pct": 0.02 if win else -0.01,
                         "outcome": "WIN" if win else "LOSS"})
    df = pd.DataFrame(rows)
    for c in ("entry_time", "bar_time"):
        df[c] = pd.to_datetime(df[c], utc=True)
    df["pnl_usd"] = df["pnl_usd"].astype("float64")
    df["pnl_pct"] = df["pnl_pct"].astype("float64")
    return df


def spaced(wins: list[bool], first: pd.Timestamp = A + 5 * M, every: pd.Timedelta = 2 * H,
           hold: pd.Timedelta = H) -> list:
    """Trades opened every ``every`` from ``first``, each closed ``hold`` later (2 h apart: no loss run)."""
    return [(first + i * every, first + i * every + hold, w) for i, w in enumerate(wins)]


def baseline(wins: int, n: int) -> Baseline:
    return Baseline(trades=n, win_rate=wins / n if n else None, mean_pnl_pct=0.0, start=A - 72 * H, end=A)


def judge(trades, base: Baseline | None, now: pd.Timestamp, cfg):
    closes = monitored_closes(ledger(trades), Strategy.DCA, A, now, cfg)
    return rollback_trigger(closes, base, A, now, cfg)


def with_rollback(cfg, **values):
    return build_config(merge(raw_dict(cfg), {"threshold_manager": {"rollback": values}}))


# --- baseline ---------------------------------------------------------------------------------------------------


def test_baseline_counts_the_strategys_real_closes_in_the_window_before_approval(cfg):
    trades = [(A - 80 * H, A - 72 * H, True),  # closed exactly at the window start: in
              (A - 80 * H, A - 72 * H - S, True),  # just before: out
              (A - 10 * H, A - 9 * H, False), (A - 5 * H, A - 4 * H, True),
              (A - 2 * H, A, False)]  # closed at the approval time: out (the window is [A − 72 h, A))
    b = baseline_of(ledger(trades), "DCA", A, cfg)
    assert (b.trades, b.win_rate, b.start, b.end) == (3, 2 / 3, A - 72 * H, A)
    assert b.mean_pnl_pct == pytest.approx((0.02 - 0.01 + 0.02) / 3)
    assert baseline_of(ledger(trades).iloc[0:0], "DCA", A, cfg) == Baseline(0, None, None, A - 72 * H, A)
    # the window is threshold_manager.rollback.baseline_window_h
    assert baseline_of(ledger(trades), "DCA", A, with_rollback(cfg, baseline_window_h=12)).trades == 2
    assert Baseline.from_dict(b.to_dict()) == b


def test_monitored_trades_are_opened_after_approval_within_monitor_h_and_closed_by_now(cfg):
    trades = [(A, A + H, False),  # opened at the approval time: not after it
              (A + S, A + H, True), (A + 48 * H, A + 49 * H, True),  # opened at the end: in, once closed
              (A + 48 * H + S, A + 49 * H, True),  # opened after monitor_h: out
              (A + 2 * H, A + 10 * H, True)]  # closed after now: out
    c = monitored_closes(ledger(trades), "DCA", A, A + 5 * H, cfg)
    assert list(c["entry_time"]) == [A + S]
    # past the monitor's end only closes up to applied_at + monitor_h count
    c = monitored_closes(ledger(trades), "DCA", A, A + 60 * H, cfg)
    assert list(c["entry_time"]) == [A + S, A + 2 * H]
    assert closed_trades(ledger(trades), "SWING")["trade_group_id"].str.startswith("SWING").all()


# --- trigger (a) --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("base_wins, base_n, wins, n", [(6, 10, 9, 20), (1, 5, 1, 20)])
def test_trigger_a_at_its_boundary(cfg, base_wins, base_n, wins, n):
    # win rate == baseline − win_rate_drop (0.6 − 0.15 = 0.45; 0.2 − 0.15 = 0.05, above 0.05 in floats): no trigger
    now = A + 47 * H
    equal = spaced([i < wins for i in range(n)])
    assert judge(equal, baseline(base_wins, base_n), now, cfg) is None
    below = spaced([i < wins - 1 for i in range(n)])
    fired = judge(below, baseline(base_wins, base_n), now, cfg)
    assert fired.trigger is Trigger.WIN_RATE_DROP and fired.metrics["closed"] == n
    assert fired.text.startswith("(a) win rate")
    above = spaced([i <= wins for i in range(n)])
    assert judge(above, baseline(base_wins, base_n), now, cfg) is None


def test_trigger_a_needs_min_trades_closed_and_a_baseline_of_min_trades(cfg):
    now = A + 47 * H
    assert judge(spaced([False] * 4), baseline(5, 5), now, cfg) is None  # 4 < min_trades closed
    assert judge(spaced([False] * 5), baseline(5, 5), now, cfg).trigger is Trigger.WIN_RATE_DROP
    assert judge(spaced([False] * 20), baseline(4, 4), now, cfg) is None  # baseline of 4 < min_trades
    assert judge(spaced([False] * 20), None, now, cfg) is None
    assert judge(spaced([False] * 20), baseline(0, 0), now, cfg) is None
    # min_trades and win_rate_drop come from the config
    assert judge(spaced([False] * 4), baseline(5, 5), now, with_rollback(cfg, min_trades=4)) is not None
    half = spaced([False, True] * 5)  # win rate 0.5 against a baseline of 0.6
    assert judge(half, baseline(6, 10), now, cfg) is None  # 0.5 ≥ 0.6 − 0.15
    assert judge(half, baseline(6, 10), now, with_rollback(cfg, win_rate_drop=0.1)) is None  # equal
    assert judge(half, baseline(6, 10), now, with_rollback(cfg, win_rate_drop=0.05)).trigger is Trigger.WIN_RATE_DROP


# --- trigger (b) --------------------------------------------------------------------------------------------------


def test_trigger_b_loss_run_spanning_exactly_the_window(cfg):
    now = A + 10 * H
    t0 = A + 2 * H
    run = [(A + M, t0, False), (A + M, t0 + 30 * M, False), (A + M, t0 + H, False)]  # spans exactly 1 h
    fired = judge(run, None, now, cfg)  # (b) needs no baseline
    assert fired.trigger is Trigger.LOSS_RUN and fired.text.startswith("(b) 3 consecutive losing closes")
    assert len(fired.metrics["loss_run"]) == 3
    longer = run[:2] + [(A + M, t0 + H + S, False)]
    assert judge(longer, None, now, cfg) is None
    broken = run[:2] + [(A + M, t0 + 40 * M, True)] + run[2:]
    assert judge(broken, None, now, cfg) is None
    # a longer losing streak: the last three span ≤ 1 h although the first three do not
    streak = [(A + M, t0 - 2 * H, False)] + run
    assert judge(streak, None, now, cfg).trigger is Trigger.LOSS_RUN
    assert judge(run[:2], None, now, cfg) is None  # two losses are no run of 3
    assert judge(run[:2], None, now, with_rollback(cfg, loss_run=2)).trigger is Trigger.LOSS_RUN
    assert judge(longer, None, now, with_rollback(cfg, loss_run_window_h=2)).trigger is Trigger.LOSS_RUN


def test_losing_run_positions():
    c = pd.DataFrame({"win": [False, True, False, False, False],
                      "close_time": pd.to_datetime(["2026-01-01 00:00", "2026-01-01 00:10", "2026-01-01 00:20",
                                                    "2026-01-01 00:30", "2026-01-01 01:20"], utc=True)})
    assert losing_run(c, 3, H) == (2, 4)
    assert losing_run(c, 3, 59 * M) is None


# --- trigger (c) --------------------------------------------------------------------------------------------------


def test_trigger_c_only_at_monitor_h_and_below_the_baseline(cfg):
    trades = spaced([True] * 5 + [False] * 5)  # win rate 0.5: below 0.6 but not below 0.6 − 0.15
    base = baseline(6, 10)
    assert judge(trades, base, A + 48 * H - S, cfg) is None
    fired = judge(trades, base, A + 48 * H, cfg)
    assert fired.trigger is Trigger.BELOW_BASELINE_AT_END and fired.text.startswith("(c) at monitor_h 48")
    assert judge(spaced([True] * 6 + [False] * 4), base, A + 48 * H, cfg) is None  # equal to the baseline
    assert judge(trades, baseline(4, 4), A + 48 * H, cfg) is None  # baseline of 4 < min_trades
    assert judge(trades[:4], base, A + 48 * H, cfg) is None  # 4 closed < min_trades
    assert judge(trades, base, A + 24 * H, with_rollback(cfg, monitor_h=24)) is not None


def test_monitored_window(cfg):
    r = Revision(1, 2, 1, A, RevisionKind.APPROVAL, Strategy.DCA, (KeyChange("exits.tp_multiplier.dca", 1.0, 1.1),),
                 "alice", "why", "DCA_tp_multiplier_202603101200", baseline=baseline(3, 5))
    assert not monitored(r, A, cfg) and monitored(r, A + S, cfg)
    assert monitored(r, A + 49 * H - S, cfg) and not monitored(r, A + 49 * H, cfg)  # monitor_h + check_every_h
    rb = Revision(2, 3, 2, A + H, RevisionKind.ROLLBACK, Strategy.DCA, restore_of(r.changes), "x", "y", reverts=1)
    assert not monitored(rb, A + 2 * H, cfg)


# --- key changes, revisions, status, alerts ----------------------------------------------------------------------


def test_key_changes_by_dotted_key_and_their_exact_restore(cfg):
    raw = raw_dict(cfg)
    changes = (KeyChange("exits.tp_multiplier.dca", 1.0, 1.1),
               KeyChange("strategies.dca.drop_threshold.large_cap", -0.0175, -0.02))
    changed = with_changes(raw, changes)
    assert value_at(changed, "exits.tp_multiplier.dca") == 1.1 and value_at(raw, "exits.tp_multiplier.dca") == 1.0
    assert stale_keys(changed, changes) == ["`exits.tp_multiplier.dca` is 1.1, expected 1.0",
                                            "`strategies.dca.drop_threshold.large_cap` is -0.02, expected -0.0175"]
    assert stale_keys(raw, changes) == []
    assert with_changes(changed, restore_of(changes)) == raw
    with pytest.raises(ConfigError, match="revision 3: unknown config key `exits.tp_multiplier.doge`"):
        with_changes(raw, [KeyChange("exits.tp_multiplier.doge", 1.0, 1.1)], "revision 3")
    with pytest.raises(ConfigError, match="`exits.tp_multiplier` is a section"):
        value_at(raw, "exits.tp_multiplier")
    r1 = Revision(1, 2, 1, A, RevisionKind.APPROVAL, Strategy.DCA, changes, "alice", "ok", "P", baseline=baseline(1, 2))
    r2 = Revision(2, 3, 2, A + H, RevisionKind.ROLLBACK, Strategy.DCA, restore_of(changes), "system:rollback", "t",
                  reverts=1, trigger="(b) …")
    assert apply_revisions(raw, [r2, r1]) == raw  # applied in id order whatever the list order
    assert apply_revisions(raw, [r1]) == changed
    assert Revision.from_row(r1.row()) == r1 and Revision.from_row(r2.row()) == r2
    assert r1.label == "revision 1 (approval of P by alice)"
    assert r2.label == "revision 2 (rollback of revision 1 by system:rollback)"


def test_ids():
    t = pd.Timestamp("2026-12-07 12:00:59", tz="UTC")
    assert proposal_id("DCA", "tp_multiplier", t) == "DCA_tp_multiplier_202612071200"
    assert rollback_proposal_id(3, t) == "ROLLBACK_r3_202612071200"
    with pytest.raises(ValueError, match="unknown parameter"):
        proposal_id("DCA", "stop_loss", t)
    with pytest.raises(ValueError, match="tz-aware UTC"):
        proposal_id("DCA", "tp_multiplier", pd.Timestamp("2026-12-07 12:00"))


def test_status_is_derived():
    exp = A + 24 * H
    assert proposal_status(None, False, exp, A) is ProposalStatus.PROPOSED
    assert proposal_status(None, False, exp, exp - S) is ProposalStatus.PROPOSED
    assert proposal_status(None, False, exp, exp) is ProposalStatus.EXPIRED
    assert proposal_status("APPROVED", False, exp, exp + H) is ProposalStatus.APPROVED
    assert proposal_status("APPROVED", True, exp, A) is ProposalStatus.ROLLED_BACK
    assert proposal_status("REJECTED", False, exp, A) is ProposalStatus.REJECTED
    assert proposal_status(None, False, None, A + 1000 * H) is ProposalStatus.PROPOSED  # never expires
    with pytest.raises(ValueError, match="unknown decision"):
        proposal_status("MAYBE", False, exp, A)


def test_alerts_go_to_the_alerts_channel_with_stable_ids(cfg):
    r = Revision(1, 2, 1, A, RevisionKind.APPROVAL, Strategy.DCA, (KeyChange("exits.tp_multiplier.dca", 1.0, 1.1),),
                 "alice", "shadows agree", "DCA_tp_multiplier_202603101200", evidence={"p": 0.01},
                 baseline=baseline(3, 5))
    rows = alert_rows([revision_note(r, parameter="tp_multiplier", tier="HIGH")], cfg)
    assert len(rows) == 1 and MESSAGE_ID_RE.match(rows["message_id"].iloc[0])
    assert (rows["channel_key"].iloc[0], rows["channel"].iloc[0]) == ("alerts", "#system-alerts")
    text = rows["text"].iloc[0]
    assert "exits.tp_multiplier.dca 1 → 1.1" in text and "tier HIGH" in text and "alice" in text
    assert "shadows agree" in text
    again = alert_rows([revision_note(r, parameter="tp_multiplier", tier="HIGH")], cfg)
    assert again["message_id"].tolist() == rows["message_id"].tolist()
    assert alert_rows([], cfg).empty
