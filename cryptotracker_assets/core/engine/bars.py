"""Base bars laid out per symbol for the engine (:class:`BarStore`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..common import from_ns, ns_column
from ..exits import Bar
from .errors import EngineInputError

BAR_COLUMNS = ("symbol", "timestamp", "open", "high", "low", "close", "ingested_at")


@dataclass(frozen=True, eq=False)
class BarStore:
    """Base bars laid out per symbol for the engine: int64 ns open times (sorted, unique) and float64 prices, with
    ``ingested_at`` (ns). ``frame`` is the input frame (the scan reads it). Build it once and reuse it across calls."""

    frame: pd.DataFrame
    spans: Mapping[str, tuple[int, int]]
    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    ingested: np.ndarray

    @classmethod
    def from_frame(cls, bars: pd.DataFrame) -> "BarStore":
        """Check and lay out ``symbol, timestamp, open, high, low, close, ingested_at`` (UTC; unique per symbol and
        open time; every bar carries its ``ingested_at``, SPEC §13.1)."""
        missing = [c for c in BAR_COLUMNS if c not in bars.columns]
        if missing:
            raise EngineInputError(f"bars lack columns {missing}")
        ts = ns_column(bars["timestamp"], "bars.timestamp", EngineInputError)
        ing = ns_column(bars["ingested_at"], "bars.ingested_at", EngineInputError)
        sym = bars["symbol"].astype(str).to_numpy()
        codes, names = pd.factorize(sym, sort=True)
        order = np.lexsort((ts, codes))
        codes, ts, ing = codes[order], ts[order], ing[order]
        prices = {c: bars[c].to_numpy(dtype="float64")[order] for c in ("open", "high", "low", "close")}
        if len(ts) > 1:
            dup = np.flatnonzero((np.diff(codes) == 0) & (np.diff(ts) == 0))
            if dup.size:
                raise EngineInputError(f"duplicate bar {names[codes[dup[0]]]} at {from_ns(ts[dup[0]])}")
        bounds = np.searchsorted(codes, np.arange(len(names) + 1), side="left")
        spans = {str(n): (int(bounds[i]), int(bounds[i + 1])) for i, n in enumerate(names)}
        return cls(bars, spans, ts, prices["open"], prices["high"], prices["low"], prices["close"], ing)

    def range(self, symbol: str, after_ns: int, before_ns: int) -> tuple[int, int]:
        """Index range of the symbol's bars with after_ns < open < before_ns."""
        span = self.spans.get(symbol)
        if span is None:
            return 0, 0
        a, b = span
        seg = self.ts[a:b]
        return a + int(np.searchsorted(seg, after_ns, "right")), a + int(np.searchsorted(seg, before_ns, "left"))

    def bar(self, i: int) -> Bar:
        return Bar(from_ns(self.ts[i]), float(self.open[i]), float(self.high[i]), float(self.low[i]),
                   float(self.close[i]))

    def watermark(self, before_ns: int) -> int | None:
        """Greatest ``ingested_at`` (ns) of the bars with open time < ``before_ns`` (the bars a run can read)."""
        sel = self.ingested[self.ts < before_ns]
        return int(sel.max()) if sel.size else None


class BarCursors:
    """Per symbol, the position after its last processed bar in a :class:`BarStore`, advanced one cycle point at a
    time for all symbols at once (SPEC §3.1 step 2: at T the bars with open time < T newer than the last processed
    one). ``symbols`` are sorted; ``after`` maps a symbol to the open time (ns) of its last bar processed before the
    run (absent: none). ``upto[i, k]`` is the index of symbol i's first bar opening at or after ``points[k]``."""

    def __init__(self, store: BarStore, symbols: Sequence[str], after: Mapping[str, int], points: np.ndarray) -> None:
        self.store = store
        self.symbols = list(symbols)
        self.index = {s: i for i, s in enumerate(self.symbols)}
        n = len(self.symbols)
        self.pos = np.zeros(n, dtype="int64")
        self.upto = np.zeros((n, len(points)), dtype="int64")
        for i, s in enumerate(self.symbols):
            a, b = store.spans[s]
            seg = store.ts[a:b]
            self.pos[i] = a + (int(np.searchsorted(seg, after[s], "right")) if s in after else 0)
            self.upto[i] = a + np.searchsorted(seg, points, "left")
        self.start = self.pos.copy()  # before the run: a symbol whose pos moved has a new last bar

    def advance(self, k: int) -> list[tuple[int, str, int, int]]:
        """The symbols with new bars at cycle point ``k``: (i, symbol, first, end) index ranges into the store, in
        symbol order; the cursors move to ``end``."""
        end = self.upto[:, k]
        new = np.flatnonzero(end > self.pos)
        out = [(int(i), self.symbols[i], int(self.pos[i]), int(end[i])) for i in new]
        self.pos[new] = end[new]
        return out

    def last_index(self, symbol: str) -> int | None:
        """Store index of the symbol's last bar processed in this run (None: none yet)."""
        i = self.index.get(symbol)
        if i is None or self.pos[i] == self.start[i]:
            return None
        return int(self.pos[i]) - 1
