"""The outcome of every shadow, derived (SPEC §10.2): decision rows ⋈ exit rows ⋈ the real trade of the same scan.

Both stored tables are append-only; nothing is ever updated. A take that opened and has no exit row is PENDING; its
exit row makes it WIN / LOSS / TIMEOUT for good (an expired entry order has no outcome). ``matched_real_trade`` =
(shadow net > 0) == (real net > 0) when the scan became a real trade and both are closed, else null.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .book import DECISION_COLUMNS

PENDING = "PENDING"
OUTCOME_COLUMNS: tuple[str, ...] = (
    *DECISION_COLUMNS[:DECISION_COLUMNS.index("size_usd")], "order_size_usd",
    *DECISION_COLUMNS[DECISION_COLUMNS.index("size_usd") + 1:],
    "expired", "entry_time", "exit_time", "closed_at", "exit_reason", "outcome", "avg_entry", "exit_fill", "size_usd",
    "pnl_usd", "pnl_pct", "hold_h", "grid_fills", "no_data", "fees_usd", "matched_real_trade",
)
_EXIT_PART = ("expired", "entry_time", "exit_time", "closed_at", "exit_reason", "outcome", "avg_entry", "exit_fill",
              "size_usd", "pnl_usd", "pnl_pct", "hold_h", "grid_fills", "no_data", "fees_usd")


def derive_outcomes(decisions: pd.DataFrame, exits: pd.DataFrame | None,
                    real_sells: pd.DataFrame | None) -> pd.DataFrame:
    """One row per decision with its derived outcome (columns :data:`OUTCOME_COLUMNS`, decision order kept).

    ``exits``: the exit rows of (at least) these decisions; ``real_sells``: ledger SELL rows (``scan_id``,
    ``pnl_usd``) of the real trades these scans became (others are ignored)."""
    d = decisions.rename(columns={"size_usd": "order_size_usd"}).reset_index(drop=True)
    ex = exits if exits is not None else pd.DataFrame(columns=["shadow_id", *_EXIT_PART])
    ex = ex.loc[ex["shadow_id"].isin(d["shadow_id"]), ["shadow_id", *_EXIT_PART]]
    out = d.merge(ex, on="shadow_id", how="left", validate="one_to_one")
    opened = out["opened"].to_numpy(dtype=bool)
    has_exit = out["shadow_id"].isin(ex["shadow_id"]).to_numpy()
    outcome = out["outcome"].astype(object).to_numpy()
    outcome[opened & ~has_exit] = PENDING
    out["outcome"] = outcome
    out["expired"] = out["expired"].astype("boolean")
    out.loc[opened & ~has_exit, "expired"] = False
    # matched_real_trade: both closed (the shadow with an outcome, the scan's real trade sold)
    matched = pd.Series(pd.NA, index=out.index, dtype="boolean")
    if real_sells is not None and len(real_sells):
        real = real_sells.drop_duplicates("scan_id").set_index("scan_id")["pnl_usd"]
        rp = out["scan_id"].map(real).to_numpy(dtype="float64")
        closed = np.isin(outcome, ["WIN", "LOSS", "TIMEOUT"]) & ~np.isnan(rp)
        sp = out["pnl_usd"].to_numpy(dtype="float64")
        matched[closed] = (sp[closed] > 0) == (rp[closed] > 0)
    out["matched_real_trade"] = matched
    return out[list(OUTCOME_COLUMNS)]


def analyzer_input(outcomes: pd.DataFrame) -> pd.DataFrame:
    """The takes the analyzer reads (opened, entry order not expired): shadow_id, scan_id, strategy, symbol,
    variation, entry_time, exit_time, outcome, pnl_usd, pnl_pct, size_usd (filled; the order's size while
    pending), hold_h. A PENDING take's entry bar is not stored until it exits: its entry time is taken as its
    decision time T (the entry bar opens in [T, T + engine.entry_timeout_min)), which only matters for a pending
    take at a window's edge."""
    t = outcomes.loc[outcomes["opened"].to_numpy(dtype=bool) & ~outcomes["expired"].fillna(False).to_numpy(dtype=bool)]
    t = t.copy()
    t["size_usd"] = t["size_usd"].where(t["size_usd"].notna(), t["order_size_usd"])
    t["entry_time"] = t["entry_time"].where(t["entry_time"].notna(), t["timestamp"])
    return t[["shadow_id", "scan_id", "strategy", "symbol", "variation", "entry_time", "exit_time", "outcome",
              "pnl_usd", "pnl_pct", "size_usd", "hold_h"]].reset_index(drop=True)
