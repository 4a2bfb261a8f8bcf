"""Per-day-partition completeness (SPEC §13.2): stored / expected bars of each symbol and UTC day of a slice, with
where the missing bars are. Bar open times are tz-aware UTC; a bar covers [t, t + length)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .config import Timeframe

PARTITION_COMPLETENESS_COLUMNS = ["partition", "symbol", "stored", "expected", "completeness", "missing_share",
                                  "missing_runs", "longest_missing_start", "longest_missing_end", "incomplete"]
DAY = pd.Timedelta(days=1)


def missing_runs(present: np.ndarray) -> tuple[int, int, int]:
    """Runs of ``False`` in ``present`` (one flag per expected bar, chronological): (number of runs, index of the
    first bar of the longest run, its length in bars); (0, -1, 0) when nothing is missing. Ties go to the earlier."""
    missing = np.concatenate(([False], ~present.astype(bool), [False]))
    edges = np.flatnonzero(np.diff(missing.astype(np.int8)))
    starts, stops = edges[0::2], edges[1::2]
    if len(starts) == 0:
        return 0, -1, 0
    lengths = stops - starts
    k = int(np.argmax(lengths))
    return len(starts), int(starts[k]), int(lengths[k])


def partition_completeness(bars: pd.DataFrame, timeframe: Timeframe | str, start: pd.Timestamp, end: pd.Timestamp,
                           symbols: Sequence[str], min_completeness: float) -> pd.DataFrame:
    """One row per UTC day partition in [start, end) × symbol (days in order, symbols as given).

    ``end`` is the exclusive bound on open times of the bars that could exist (for a partition still filling: the
    end of the newest closed bar), so a day's ``expected`` counts only its bars with open time in [day, min(day + 1 d,
    end)); a day with none expected is left out. ``stored`` counts distinct open times on that grid. ``completeness``
    = stored / expected and ``missing_share`` = (expected − stored) / expected are fractions; ``missing_runs`` counts runs of
    consecutive missing bars and ``longest_missing_start`` / ``_end`` bound the longest one as [first missing open,
    open after it) (NaT when complete). ``incomplete`` is completeness < ``min_completeness``
    (``data.health.min_completeness.<tf>``; equal passes)."""
    tf = Timeframe(timeframe)
    step = pd.Timedelta(minutes=tf.minutes)
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    n = max(int((end - start) // step), 0)
    present = {s: np.zeros(n, dtype=bool) for s in symbols}
    if len(bars):
        offset_ns = (bars["timestamp"] - start).to_numpy(dtype="timedelta64[ns]").astype("int64")
        idx = offset_ns // step.value
        on_grid = (offset_ns % step.value == 0) & (idx >= 0) & (idx < n)
        sym = bars["symbol"].astype(str).to_numpy()
        for s in symbols:
            present[s][idx[on_grid & (sym == s)]] = True
    rows = []
    day = start.floor("D")
    while day < end:
        a = max(int((max(day, start) - start) // step), 0)
        b = min(int((min(day + DAY, end) - start) // step), n)
        expected = b - a
        if expected > 0:
            for s in symbols:
                window = present[s][a:b]
                stored = int(window.sum())
                runs, first, length = missing_runs(window)
                ratio = stored / expected
                rows.append({
                    "partition": day.strftime("%Y-%m-%d"), "symbol": s, "stored": stored, "expected": expected,
                    "completeness": ratio, "missing_share": (expected - stored) / expected, "missing_runs": runs,
                    "longest_missing_start": start + (a + first) * step if runs else pd.NaT,
                    "longest_missing_end": start + (a + first + length) * step if runs else pd.NaT,
                    "incomplete": ratio < min_completeness,
                })
        day += DAY
    out = pd.DataFrame(rows, columns=PARTITION_COMPLETENESS_COLUMNS)
    for c in ("longest_missing_start", "longest_missing_end"):
        out[c] = pd.to_datetime(out[c], utc=True).astype("datetime64[ns, UTC]")
    return out.astype({"stored": "int64", "expected": "int64", "missing_runs": "int64", "incomplete": "bool",
                       "completeness": "float64", "missing_share": "float64"})
