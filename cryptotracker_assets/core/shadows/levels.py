"""The open shadows' levels as arrays: one quiet-block test (:func:`..exits.quiet_through`) for every shadow of a
cycle point at once.

Thousands of shadows are open at a time (one per variation × symbol × strategy), and on most bars nothing happens to
them. The engine's quiet-block test (no stop, no take profit, no time exit, no grid fill can fire on a block of bars,
given the block's lowest open and low and highest high and open) is here evaluated with numpy over all shadows whose
symbol got new bars, with exactly the stepper's float operations; a quiet shadow only moves its high-water mark and
its last bar time (kept here, written back to its :class:`..exits.PositionState` before anything else reads it), the
others are stepped bar by bar by the stepper itself. The results are those of stepping every bar (the engine tests
compare them).
"""

from __future__ import annotations

import math

import numpy as np

from ..exits import PositionState

NO_BAR = np.iinfo("int64").min  # no bar stepped yet
NO_HOLD = np.iinfo("int64").max  # no time exit


class Levels:
    """Per slot (an open shadow): stop, take profit, activation, 1 − trail, high-water mark, hold end, highest
    unfilled grid price, entry and last bar time (ns), symbol code. Slots are reused after a close."""

    _FLOAT = ("stop", "tp", "act", "keep", "hw", "grid")
    _INT = ("hold_end", "bar_ns", "entry", "last", "code")

    def __init__(self) -> None:
        self.n = 0
        self.cap = 0
        self.free: list[int] = []
        self.active = np.zeros(0, dtype=bool)
        for f in self._FLOAT:
            setattr(self, f, np.zeros(0, dtype="float64"))
        for f in self._INT:
            setattr(self, f, np.zeros(0, dtype="int64"))

    def _grow(self) -> None:
        cap = max(64, 2 * self.cap)
        for f in (*self._FLOAT, *self._INT, "active"):
            old = getattr(self, f)
            new = np.zeros(cap, dtype=old.dtype)
            new[: self.cap] = old
            setattr(self, f, new)
        self.free.extend(range(cap - 1, self.cap - 1, -1))
        self.cap = cap

    def add(self, st: PositionState, code: int) -> int:
        if not self.free:
            self._grow()
        i = self.free.pop()
        self.active[i] = True
        self.code[i] = code
        self.load(i, st)
        return i

    def load(self, i: int, st: PositionState) -> None:
        """Take the slot's values from the position (after it was stepped or opened)."""
        self.stop[i] = st.stop_price
        self.tp[i] = st.take_profit_price
        self.act[i] = st.activation_price
        self.keep[i] = 1.0 - st.rule.trailing
        self.hw[i] = st.high_water
        hold = st.max_hold_ns
        self.hold_end[i] = NO_HOLD if hold is None else st.entry_time.value + hold
        self.bar_ns[i] = st.bar_length.value
        filled = {f.level for f in st.fills}
        unfilled = [p for k, p in enumerate(st.grid_prices, start=1) if k not in filled]
        self.grid[i] = max(unfilled) if unfilled else -math.inf
        self.entry[i] = st.entry_time.value
        self.last[i] = NO_BAR if st.last_time is None else st.last_time.value

    def remove(self, i: int) -> None:
        self.active[i] = False
        self.free.append(i)

    def quiet(self, slots: np.ndarray, open_min: np.ndarray, low_min: np.ndarray, high_max: np.ndarray,
              open_max: np.ndarray, last_ns: np.ndarray) -> np.ndarray:
        """:func:`..exits.quiet_through` for ``slots`` (each with its block's statistics), vectorised."""
        hw = np.maximum(self.hw[slots], high_max)
        stop = self.stop[slots]
        act = self.act[slots]
        armed = (act != math.inf) & (hw >= act)
        eff = np.where(armed, np.maximum(stop, hw * self.keep[slots]), stop)
        tp = self.tp[slots]
        ok = (low_min > eff) & (open_min > eff) & (high_max < tp) & (open_max < tp)
        ok &= ~(last_ns + self.bar_ns[slots] >= self.hold_end[slots])
        ok &= ~(low_min <= self.grid[slots])
        return ok
