"""Setups, the readiness board (SPEC §3.5, §3.6) and the engine's resolution of candidates (steps 4–6)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from ..config import Strategy
from .columns import BOARD_COLUMNS, SETUP_COLUMNS, empty_rows
from .reasons import Decision, DecisionReason


def strategy_setups(scan_rows: pd.DataFrame) -> pd.DataFrame:
    """``strategy_setups`` (SPEC §3.5): the scan rows whose setup fires (§3.2), keyed by ``setup_id`` (= scan_id);
    ``detected_at`` = T and ``bar_timestamp`` = the decision bar's open. ``decision`` / ``reason`` / ``candidate``
    are the row's steps 1–3 outcome (a setup on stale or suspect data keeps its ``stale_data`` / ``data_suspect``
    reason). Columns :data:`SETUP_COLUMNS`."""
    if scan_rows.empty:
        return empty_rows(SETUP_COLUMNS)
    s = scan_rows.loc[scan_rows["setup"].to_numpy(dtype=bool)]
    s = s.rename(columns={"scan_id": "setup_id", "timestamp": "detected_at"})
    return s[list(SETUP_COLUMNS)].reset_index(drop=True)


def readiness_board(scan_rows: pd.DataFrame) -> pd.DataFrame:
    """The readiness board (SPEC §3.6): the latest cycle point's scan rows, one per symbol × strategy, ranked within
    each strategy (1 = best): firing setups first, then readiness descending (nulls last), then symbol."""
    if scan_rows.empty:
        return empty_rows(BOARD_COLUMNS)
    last = scan_rows["timestamp"].max()
    b = scan_rows.loc[scan_rows["timestamp"] == last].copy()
    order = {s.value: i for i, s in enumerate(Strategy)}
    b["_s"] = b["strategy"].map(order)
    b["_r"] = b["readiness"].fillna(-1.0)
    b = b.sort_values(["_s", "setup", "_r", "symbol"], ascending=[True, False, False, True], kind="stable")
    b["rank"] = b.groupby("_s").cumcount().astype("int64") + 1
    return b[list(BOARD_COLUMNS)].reset_index(drop=True)


def _pct(x: float) -> str:
    return "–" if pd.isna(x) else f"{x * 100:.2f} %"


_VALUE_LABEL = {Strategy.DCA: "drop", Strategy.SWING: "breakout", Strategy.CHANNEL: "channel position"}


def readiness_markdown(board: pd.DataFrame, top_n: int = 5) -> str:
    """Markdown for people: per strategy the ``top_n`` best rows of the board (rank, symbol, tier, readiness,
    status, setup value and threshold in %, "setup" when it fires)."""
    if board.empty:
        return "No scan rows: the readiness board is empty."
    t = pd.Timestamp(board["timestamp"].iloc[0])
    parts = [f"**Readiness at {t:%Y-%m-%d %H:%M} UTC** (top {top_n} per strategy)"]
    for s in Strategy:
        rows = board.loc[board["strategy"] == s.value].sort_values("rank").head(top_n)
        parts.append(f"\n#### {s.value}\n")
        parts.append(f"| # | symbol | tier | readiness | status | {_VALUE_LABEL[s]} | threshold | setup |")
        parts.append("|---|---|---|---|---|---|---|---|")
        for r in rows.itertuples(index=False):
            score = "–" if pd.isna(r.readiness) else f"{r.readiness:.1f}"
            parts.append(f"| {r.rank} | {r.symbol} | {r.tier} | {score} | {r.status or '–'} | {_pct(r.setup_value)} | "
                         f"{_pct(r.setup_threshold)} | {'yes' if r.setup else ''} |")
    return "\n".join(parts)


def resolve_candidates(scan_rows: pd.DataFrame, reasons: Mapping[Any, Any] | pd.Series) -> pd.DataFrame:
    """For the engine (steps 4–6): a copy of ``scan_rows`` where each candidate row named by an index label of
    ``reasons`` gets that reason (a step-4–6 code or ``entered``) and its decision (TAKE for ``entered``, else SKIP).
    Raises when a label is not a candidate, a reason is a step 1–3 code, or a candidate is left undecided."""
    out = scan_rows.copy()
    reasons = pd.Series(reasons, dtype=object)
    parsed = [DecisionReason.of(r) for r in reasons]
    early = [r.value for r in parsed if r.step <= 3]
    if early:
        raise ValueError(f"steps 1–3 decide {early} themselves; the engine gives step 4–6 reasons or entered")
    if not reasons.index.isin(out.index).all() or not out.loc[reasons.index, "candidate"].all():
        raise ValueError("reasons are given only for candidate rows (candidate = True, passed steps 1–3)")
    out.loc[reasons.index, "reason"] = [r.value for r in parsed]
    out.loc[reasons.index, "decision"] = [Decision.of(r).value for r in parsed]
    left = out["candidate"].to_numpy(dtype=bool) & out["decision"].isna().to_numpy()
    if left.any():
        raise ValueError(f"{int(left.sum())} candidates left undecided (every scan_history row has a decision)")
    return out
