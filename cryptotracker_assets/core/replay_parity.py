"""Parity of two ledgers over one window (a replay against the live run, SPEC §0.5: over the same stored bars,
config versions and operator events they must be identical). Pure pandas; never imports dagster.

Rows are matched on the ledger key (``trade_group_id``, side, level, SPEC §5.3). The report lists the trade groups
with rows in one ledger only, the rows present in both whose values differ (and in which columns), and the first
difference in time order (cycle point, then key), which is where a user starts looking: usually a bar that arrived
or was revised after the live tick read it (its ``ingested_at`` is newer than that tick's watermark).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .ledger import LEDGER_COLUMNS, LEDGER_KEY

KEY = list(LEDGER_KEY)


@dataclass(frozen=True)
class LedgerParity:
    """The comparison of a live and a replayed ledger over [start, end) (cycle points of the rows)."""

    start: pd.Timestamp
    end: pd.Timestamp
    live_rows: int
    replay_rows: int
    only_live: tuple[str, ...]  # trade groups with rows only in the live ledger
    only_replay: tuple[str, ...]  # trade groups with rows only in the replay
    differing: pd.DataFrame  # key, cycle_point and the differing column names of rows in both
    first_difference: str | None
    compared_columns: tuple[str, ...]

    @property
    def differences(self) -> int:
        return len(self.only_live) + len(self.only_replay) + len(self.differing)

    @property
    def identical(self) -> bool:
        return self.differences == 0

    def summary(self) -> str:
        head = (f"parity with the live ledger over cycle points {self.start:%Y-%m-%d %H:%M} .. "
                f"{self.end:%Y-%m-%d %H:%M} UTC: {self.live_rows} live row(s), {self.replay_rows} replayed row(s); ")
        if self.identical:
            return head + "0 differences (identical, bit for bit)"
        return head + (f"{self.differences} difference(s): {len(self.only_live)} trade(s) only live, "
                       f"{len(self.only_replay)} only in the replay, {len(self.differing)} differing row(s); "
                       f"first: {self.first_difference}")


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise exact equality; two missing values (None / NaN / NaT) are equal."""
    out = np.empty(len(a), dtype=bool)
    for i, (x, y) in enumerate(zip(a, b)):
        xm = x is None or (isinstance(x, float) and math.isnan(x)) or x is pd.NaT
        ym = y is None or (isinstance(y, float) and math.isnan(y)) or y is pd.NaT
        out[i] = (xm and ym) or (not xm and not ym and bool(x == y))
    return out


def ledger_parity(live: pd.DataFrame, replay: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp,
                  columns: Sequence[str] = LEDGER_COLUMNS) -> LedgerParity:
    """Compare the rows of ``live`` and ``replay`` whose ``cycle_point`` is in [start, end) on ``columns``."""
    def window(df: pd.DataFrame) -> pd.DataFrame:
        cp = df["cycle_point"]
        return df[(cp >= start) & (cp < end)].reset_index(drop=True)

    live, replay = window(live), window(replay)
    cols = [c for c in columns if c not in KEY]
    m = live[KEY + cols].merge(replay[KEY + cols], on=KEY, how="outer", suffixes=("_live", "_replay"),
                               indicator=True, validate="one_to_one")
    events: list[tuple[pd.Timestamp, tuple, str]] = []
    only_live = m[m["_merge"] == "left_only"]
    only_replay = m[m["_merge"] == "right_only"]
    for side, frame in (("live", only_live), ("replay", only_replay)):
        for r in frame.itertuples(index=False):
            t = getattr(r, f"cycle_point_{side}")
            events.append((t, (r.trade_group_id, r.side, r.level),
                           f"{r.trade_group_id} {r.side} level {r.level} at cycle point {t:%Y-%m-%d %H:%M} UTC "
                           f"is only in the {side} ledger"))
    both = m[m["_merge"] == "both"].reset_index(drop=True)
    diff_cols = np.empty(len(both), dtype=object)
    diff_cols[:] = [[] for _ in range(len(both))]
    for c in cols:
        a = both[f"{c}_live"].to_numpy(dtype=object)
        b = both[f"{c}_replay"].to_numpy(dtype=object)
        for i in np.flatnonzero(~_same(a, b)):
            diff_cols[i].append(c)
    bad = [i for i in range(len(both)) if diff_cols[i]]
    differing = pd.DataFrame({
        "trade_group_id": both.loc[bad, "trade_group_id"].to_numpy(dtype=object),
        "side": both.loc[bad, "side"].to_numpy(dtype=object),
        "level": both.loc[bad, "level"].to_numpy(dtype="int64"),
        "cycle_point": pd.DatetimeIndex(both.loc[bad, "cycle_point_live"]),
        "columns": [", ".join(diff_cols[i]) for i in bad],
    })
    for i in bad:
        r = both.iloc[i]
        c = diff_cols[i][0]
        events.append((r["cycle_point_live"], (r["trade_group_id"], r["side"], r["level"]),
                       f"{r['trade_group_id']} {r['side']} level {r['level']} (cycle point "
                       f"{r['cycle_point_live']:%Y-%m-%d %H:%M} UTC) differs in {diff_cols[i]}: {c} live "
                       f"{r[f'{c}_live']!r} vs replay {r[f'{c}_replay']!r}"))
    events.sort(key=lambda e: (e[0].value, e[1]))
    return LedgerParity(
        start=start, end=end, live_rows=len(live), replay_rows=len(replay),
        only_live=tuple(sorted(set(only_live["trade_group_id"]))),
        only_replay=tuple(sorted(set(only_replay["trade_group_id"]))),
        differing=differing, first_difference=events[0][2] if events else None, compared_columns=tuple(cols),
    )
