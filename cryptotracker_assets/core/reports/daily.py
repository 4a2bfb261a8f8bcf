"""The ``daily_performance`` rows: one UTC day × strategy (DCA, SWING, CHANNEL, a row each even on a quiet day).
Pure pandas; never imports dagster.

Setups are the day's scan rows (cycle point T in the day) whose setup fires; taken are those decided TAKE. Trades
are the groups closed that day (exit time in the day, as in the trading report), with their net P&L, its
size-weighted fraction (Σ P&L USD / Σ filled size USD, I-2; NaN without a trade) and their fees (entry fees + exit
fee). Money is USD float64, never rounded here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..common import UTC_NS, day_ns, from_ns
from ..config import Strategy
from ..ledger import TradeOutcome, size_weighted_return
from ..setups import Decision
from .trading import DAY, period_closed_trades

DAILY_PERFORMANCE_COLUMNS = ("day", "strategy", "setups_detected", "setups_taken", "trades", "wins", "losses",
                             "net_pnl_usd", "net_pnl_pct", "fees_usd", "champion_composite", "config_version")
_COUNTS = ("setups_detected", "setups_taken", "trades", "wins", "losses")


def daily_performance(day: Any, *, scan_rows: pd.DataFrame | None, ledger: pd.DataFrame,
                      champion_composites: Mapping[str, float | None], config_version: int) -> pd.DataFrame:
    """The three ``daily_performance`` rows of ``day`` (00:00 UTC; another time raises).

    ``scan_rows``: ``scan_history`` rows (``timestamp``, ``strategy``, ``setup``, ``decision``; rows outside the
    day are ignored, None = no scan yet). ``ledger``: ledger rows holding every group closed that day (its BUY
    rows too, so the filled size is known). ``champion_composites``: strategy → composite of the champion in force
    at the end of the day (a missing or None entry: no champion, NaN). ``config_version``: of the day's last tick.
    """
    start = from_ns(day_ns(day))
    end = start + DAY
    closed = period_closed_trades(ledger, start, end)
    scans = scan_rows if scan_rows is not None else pd.DataFrame(columns=["timestamp", "strategy", "setup",
                                                                           "decision"])
    if len(scans):
        ts = pd.DatetimeIndex(scans["timestamp"])
        scans = scans.loc[((ts >= start) & (ts < end))]
    rows = []
    for s in Strategy:
        sc = scans.loc[(scans["strategy"] == s.value).to_numpy()]
        tr = closed.loc[(closed["strategy"] == s.value).to_numpy()]
        wins = int((tr["outcome"] == TradeOutcome.WIN.value).sum())
        composite = champion_composites.get(s.value)
        rows.append({
            "day": start, "strategy": s.value,
            "setups_detected": int(sc["setup"].astype(bool).sum()),
            "setups_taken": int((sc["decision"] == Decision.TAKE.value).sum()),
            "trades": len(tr), "wins": wins, "losses": int((tr["outcome"] == TradeOutcome.LOSS.value).sum()),
            "net_pnl_usd": math.fsum(tr["pnl_usd"]),
            "net_pnl_pct": size_weighted_return(tr["pnl_usd"], tr["size_usd"]),
            "fees_usd": math.fsum(tr["fees_usd"]),
            "champion_composite": np.nan if composite is None else float(composite),
            "config_version": int(config_version),
        })
    out = pd.DataFrame(rows, columns=list(DAILY_PERFORMANCE_COLUMNS))
    out["day"] = pd.to_datetime(out["day"], utc=True).astype(UTC_NS)
    types = {c: "int64" for c in (*_COUNTS, "config_version")}
    types.update({c: "float64" for c in ("net_pnl_usd", "net_pnl_pct", "fees_usd", "champion_composite")})
    return out.astype(types)
