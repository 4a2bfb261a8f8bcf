"""The parity report of a replay against the live ledger (core.replay_parity): rows matched on the ledger key,
trades only in one ledger, differing columns, the first difference in time order; missing values equal."""

from __future__ import annotations

import math

import pandas as pd

from cryptotracker_assets.core.ledger import LEDGER_COLUMNS, empty_ledger
from cryptotracker_assets.core.replay_parity import ledger_parity

T0 = pd.Timestamp("2026-01-05", tz="UTC")
MIN = pd.Timedelta(minutes=1)


def rows(*specs) -> pd.DataFrame:
    """(trade_group_id, side, level, cycle point minute, fill_price, pnl_usd) rows on an empty-ledger template."""
    base = empty_ledger()
    recs = []
    for tg, side, level, minute, fill, pnl in specs:
        r = {c: None for c in LEDGER_COLUMNS}
        r.update(trade_group_id=tg, side=side, level=level, cycle_point=T0 + minute * MIN, fill_price=fill,
                 pnl_usd=pnl, no_data=False)
        recs.append(r)
    df = pd.DataFrame(recs, columns=list(LEDGER_COLUMNS))
    for c in ("cycle_point",):
        df[c] = pd.DatetimeIndex(df[c]).as_unit("ns")
    return df.astype({c: base[c].dtype for c in ("level", "fill_price", "pnl_usd", "no_data")})


def test_identical_ledgers_have_no_difference_and_nan_equals_nan():
    live = rows(("A", "BUY", 0, 5, 10.0, math.nan), ("A", "SELL", -1, 60, 11.0, 0.5))
    p = ledger_parity(live, live.copy(), T0, T0 + pd.Timedelta(days=1))
    assert p.identical and p.differences == 0 and p.first_difference is None
    assert p.summary().endswith("0 differences (identical, bit for bit)")


def test_differences_are_listed_and_the_first_in_time_is_named():
    live = rows(("A", "BUY", 0, 5, 10.0, math.nan), ("A", "SELL", -1, 60, 11.0, 0.5),
                ("B", "BUY", 0, 30, 20.0, math.nan), ("C", "BUY", 0, 90, 5.0, math.nan))
    replay = rows(("A", "BUY", 0, 5, 10.0, math.nan), ("A", "SELL", -1, 60, 11.0, 0.5000000001),
                  ("C", "BUY", 0, 90, 5.0, math.nan), ("D", "BUY", 0, 95, 7.0, math.nan))
    p = ledger_parity(live, replay, T0, T0 + pd.Timedelta(days=1))
    assert p.only_live == ("B",) and p.only_replay == ("D",)
    assert list(p.differing["trade_group_id"]) == ["A"] and list(p.differing["columns"]) == ["pnl_usd"]
    assert p.differences == 3 and not p.identical
    # B (cycle point 00:30) comes before A's SELL (01:00) and D (01:35)
    assert p.first_difference.startswith("B BUY level 0 at cycle point 2026-01-05 00:30 UTC is only in the live")
    # outside the window nothing counts; the columns compared can leave one out
    assert ledger_parity(live, replay, T0, T0 + 10 * MIN).identical
    assert ledger_parity(live[live.trade_group_id == "A"], replay[replay.trade_group_id == "A"], T0,
                         T0 + pd.Timedelta(days=1), [c for c in LEDGER_COLUMNS if c != "pnl_usd"]).identical
