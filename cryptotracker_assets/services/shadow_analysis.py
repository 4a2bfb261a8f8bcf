"""The shadow analyzer and the threshold manager's proposals against the warehouse (SPEC §10.3–§10.5), no Dagster.

**Analysis time** t is the engine's cursor: every shadow outcome up to t is known (the engine steps shadows at every
tick), so the analysis of a given t is the same whenever it runs; exits after t are treated as PENDING. Each
analysis is appended to ``shadow_performance`` (history kept; the same t again is a no-op).

**Proposals**: the recommendations of the latest analysis (§10.4), each stepped by the threshold manager (§10.5) and
checked against its safety gates at proposal time (regime stable for ``regime_stable_h``, ≤
``max_applied_per_utc_day`` approvals applied in t's UTC day): a refused one is stored with its ``blocked_reason``
(shown, never approvable). A strategy × parameter that still has an open (PROPOSED) proposal gets no second one.
Messages (a proposal alert, the shadow daily summary) go through the notification outbox.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core.common import hours, utc
from ..core.config import Config, Strategy
from ..core.engine_records import outbox_rows
from ..core.revisions import ProposalStatus, proposal_record, proposals_frame
from ..core.setups import RULE_SOURCE, confidence_source
from ..core.shadow_schemas import ShadowPerformanceSchema
from ..core.shadows.analyzer import ALL, analyze, leaderboard
from ..core.shadows.outcomes import analyzer_input, derive_outcomes
from ..core.shadows.recommend import propose, quota_ok, recommend, regime_stable
from ..storage.warehouse import Warehouse
from .revisions import RevisionState


class ShadowAnalysisError(RuntimeError):
    """The analysis cannot run (no engine tick yet); names what to materialize."""


def analysis_time(wh: Warehouse) -> pd.Timestamp:
    """The engine's cursor (the last processed cycle point)."""
    row = wh.engine_state()
    if row is None:
        raise ShadowAnalysisError("shadow analysis: the paper engine has not ticked yet (materialize paper_engine)")
    return utc(row["cursor"], "cursor")


def shadow_takes(wh: Warehouse, cfg: Config, t: pd.Timestamp, span: pd.Timedelta) -> pd.DataFrame:
    """The takes decided in [t − span − entry timeout, t] with their outcomes as of t (analyzer input)."""
    start = t - span - pd.Timedelta(minutes=cfg.engine.entry_timeout_min)
    rows = wh.shadow_rows(start, t + pd.Timedelta(microseconds=1))
    if rows.decisions is None or rows.decisions.empty:
        return analyzer_input(derive_outcomes(_no_decisions(), None, None))
    exits = rows.exits
    if exits is not None and len(exits):
        exits = exits.loc[pd.DatetimeIndex(exits["closed_at"]) <= t]  # later exits: still PENDING at t
    return analyzer_input(derive_outcomes(rows.decisions, exits, rows.real_sells))


def _no_decisions() -> pd.DataFrame:
    from ..core.shadows import decision_frame

    return decision_frame([])


def run_analysis(wh: Warehouse, cfg: Config, t: pd.Timestamp | None = None) -> pd.DataFrame:
    """Analyze the shadows at t (default: the engine's cursor), store the rows and return them."""
    t = analysis_time(wh) if t is None else utc(t, "t")
    span = hours(cfg.exits.max_hold_h + max(cfg.shadow.windows_h))
    perf = analyze(shadow_takes(wh, cfg, t, span), t, cfg)
    perf = perf.astype({"trades": "int64", "pending": "int64"})
    if len(perf):
        ShadowPerformanceSchema.validate(perf, lazy=True)
    wh.append_performance(perf)
    return perf


def empty_performance(cfg: Config) -> pd.DataFrame:
    """An analysis without rows (no window holds a take whose max hold has elapsed yet)."""
    return analyze(analyzer_input(derive_outcomes(_no_decisions(), None, None)), pd.Timestamp(0, tz="UTC"), cfg)


def champion_strategies(cfg: Config) -> set[str]:
    """Strategies whose confidence comes from a champion model in use (none until the models capability)."""
    return {s.value for s in Strategy if confidence_source(cfg, s, None)[0].name != RULE_SOURCE}


@dataclass(frozen=True)
class ProposalRun:
    rows: pd.DataFrame  # the proposals stored by this run (blocked ones included)
    skipped_open: tuple[str, ...]  # strategy/parameter pairs that still have an open proposal
    recommendations: int


def make_proposals(wh: Warehouse, cfg: Config, perf: pd.DataFrame, t: pd.Timestamp) -> ProposalRun:
    """Recommendations of ``perf`` → bounded proposals, gated at proposal time, stored; alert per new proposal."""
    t = utc(t, "t")
    recs = recommend(perf, cfg, champion_strategies(cfg))
    state = RevisionState.read(wh)
    open_pairs = {(v.strategy.value, v.parameter) for v in state.views(t)
                  if v.kind == "THRESHOLD" and v.status is ProposalStatus.PROPOSED and v.blocked_reason is None}
    applied = [r.applied_at for r in state.revisions if r.kind.value == "approval"]
    regimes = wh.regimes(t - hours(cfg.threshold_manager.regime_stable_h) - pd.Timedelta(minutes=cfg.engine.cycle_min),
                         t + pd.Timedelta(microseconds=1))
    gate = regime_stable(regimes, t, cfg) or quota_ok(applied, t, cfg)
    records, skipped = [], []
    for rec in recs:
        p = propose(rec, cfg)
        if p is None:
            continue
        if (p.strategy, p.parameter) in open_pairs:
            skipped.append(f"{p.strategy}/{p.parameter}")
            continue
        records.append(proposal_record(strategy=p.strategy, variation=p.variation, tier=p.tier.value,
                                       parameter=p.parameter, changes=p.changes, evidence=p.evidence, created_at=t,
                                       cfg=cfg, blocked_reason=gate))
    frame = proposals_frame(records)
    wh.append_proposals(frame)
    notes = [{"kind": "proposal", "channel": cfg.notifications.channels.alerts, "cycle_point": t,
              "proposal_id": r["proposal_id"], "strategy": r["strategy"], "parameter": r["parameter"],
              "variation": r["variation"], "tier": r["tier"], "changes": r["changes_json"],
              "blocked_reason": r["blocked_reason"], "expires_at": r["expires_at"]} for r in records]
    if notes:
        wh.queue_messages(outbox_rows(notes, cfg)[0], t)
    return ProposalRun(frame, tuple(skipped), len(recs))


def leaderboard_text(perf: pd.DataFrame, window_h: float, strategy: str = ALL) -> str:
    """The leaderboard of one window as plain text: variations by outperformance with their size-weighted return,
    trades, win rate, tier and Holm p (percentages for people, SPEC §0.1)."""
    board = leaderboard(perf, window_h, (strategy,))
    if board.empty:
        return f"(no shadow takes in the {window_h:g} h window)"

    def pct(x: float) -> str:
        return "" if pd.isna(x) else f"{100 * x:+.2f} %"

    def pp(x: float) -> str:
        return "" if pd.isna(x) else f"{100 * x:+.1f} pp"

    lines = [f"{'#':>2} {'variation':<22} {'trades':>6} {'win rate':>9} {'vs CHAMPION':>11} {'size-wtd ret':>12} "
             f"{'tier':<12} {'p (Holm)':>8}"]
    for r in board.itertuples(index=False):
        wr = "" if pd.isna(r.win_rate) else f"{100 * r.win_rate:.1f} %"
        lines.append(f"{r.rank:>2} {r.variation:<22} {r.trades:>6} {wr:>9} {pp(r.outperformance):>11} "
                     f"{pct(r.size_weighted_return):>12} {r.tier:<12} {r.p_z_holm:>8.3f}")
    return "\n".join(lines)


def daily_summary(wh: Warehouse, cfg: Config, perf: pd.DataFrame, run: ProposalRun, t: pd.Timestamp) -> str:
    """The shadow daily summary (SPEC §12.2) as text: CHAMPION win rate, best challenger, shadow trades, the
    leaderboard, top 3 of the last 24 h, recommendations, pending proposals and recent revisions."""
    w = cfg.shadow.recommendation_window_h
    rows = perf[(perf["window_h"] == w) & (perf["strategy"] == ALL)]
    champ = rows[rows["variation"] == "CHAMPION"]
    challengers = rows[(rows["variation"] != "CHAMPION") & rows["outperformance"].notna()]
    best = challengers.sort_values(["outperformance", "variation"], ascending=[False, True]).head(1)
    day = perf[(perf["window_h"] == min(cfg.shadow.windows_h)) & (perf["strategy"] == ALL)]
    top = day.dropna(subset=["size_weighted_return"]).sort_values(["size_weighted_return", "variation"],
                                                                  ascending=[False, True]).head(3)
    state = RevisionState.read(wh)
    pending = [v for v in state.views(t) if v.status is ProposalStatus.PROPOSED]
    recent = [r for r in state.revisions if r.applied_at >= t - pd.Timedelta(days=1)]
    wr = champ["win_rate"].iloc[0] if len(champ) and pd.notna(champ["win_rate"].iloc[0]) else np.nan
    lines = [f"Shadow daily summary at {t:%Y-%m-%d %H:%M} UTC (window {w:g} h, all strategies)",
             f"CHAMPION win rate: {'n/a' if np.isnan(wr) else f'{100 * wr:.1f} %'}; shadow trades completed: "
             f"{int(rows['trades'].sum()) if len(rows) else 0}",
             "best challenger: " + (f"{best['variation'].iloc[0]} ({100 * best['outperformance'].iloc[0]:+.1f} pp, "
                                    f"{best['tier'].iloc[0]})" if len(best) else "none"),
             "", leaderboard_text(perf, w), "",
             f"top 3 ({min(cfg.shadow.windows_h):g} h window, size-weighted return): "
             + (", ".join(f"{r.variation} {100 * r.size_weighted_return:+.2f} %" for r in top.itertuples())
                or "none"),
             f"recommendations: {run.recommendations}; new proposals: {len(run.rows)}"
             + (f" ({', '.join(run.rows['proposal_id'])})" if len(run.rows) else ""),
             f"pending proposals: {', '.join(v.proposal_id for v in pending) or 'none'}",
             f"revisions in the last 24 h: {', '.join(f'#{r.revision_id} {r.kind.value}' for r in recent) or 'none'}"]
    return "\n".join(lines)


def queue_daily_summary(wh: Warehouse, cfg: Config, text: str, t: pd.Timestamp) -> int:
    """Queue the daily summary for #reports (through the outbox; the operators' capability formats it)."""
    note = {"kind": "shadow_daily_summary", "channel": cfg.notifications.channels.reports, "cycle_point": t,
            "summary": text}
    return wh.queue_messages(outbox_rows([note], cfg)[0], t)
