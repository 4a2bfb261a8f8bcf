"""Bars on a regular time grid (symbols × slots), aggregation to a feature timeframe, window coverage and the
start-independent rolling reductions (SPEC §0.2), and the conversion of grids back to long-format rows."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..common import NS_PER_MIN, ceil_ns, utc_index
from ..config import Timeframe
from ..ohlc import aggregate_bars
from .parallel import scratch

# ---------------------------------------------------------------------------------------------------------------
# Bars on a regular grid (symbols × slots); a missing bar is NaN
# ---------------------------------------------------------------------------------------------------------------

OHLCV = ("open", "high", "low", "close", "volume")


@dataclass
class BarGrid:
    """Bars of several symbols on one regular time grid: arrays (symbols × slots), NaN where no bar."""

    symbols: list[str]
    t0: int  # ns, open time of slot 0
    step: int  # ns
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    @property
    def present(self) -> np.ndarray:
        return ~np.isnan(self.close)

    @property
    def n_slots(self) -> int:
        return self.close.shape[1]

    def slot_times(self) -> np.ndarray:
        return self.t0 + self.step * np.arange(self.n_slots, dtype="int64")

    def row(self, symbol: str) -> int | None:
        try:
            return self.symbols.index(symbol)
        except ValueError:
            return None


def timestamps_ns(col: pd.Series) -> np.ndarray:
    dtype = col.dtype
    if not isinstance(dtype, pd.DatetimeTZDtype) or str(dtype.tz) not in ("UTC", "utc"):
        raise ValueError(f"bars.timestamp must be datetime64[ns, UTC], got {dtype}")
    return col.dt.as_unit("ns").array.asi8


def check_columns(bars: pd.DataFrame) -> None:
    missing = [c for c in ("symbol", "timestamp", *OHLCV) if c not in bars.columns]
    if missing:
        raise ValueError(f"bars lack columns {missing}")


def aggregate(bars: pd.DataFrame, to: Timeframe, end_ns: int) -> pd.DataFrame:
    """SPEC §13.1 aggregation of closed buckets (core.ohlc), after the checks the grid would have made."""
    dup = bars.duplicated(["symbol", "timestamp"])
    if dup.any():
        row = bars[dup].iloc[0]
        raise ValueError(f"duplicate bar {row['symbol']} at {row['timestamp']}")
    values = bars[list(OHLCV)].to_numpy(dtype="float64")
    if not np.isfinite(values).all():
        raise ValueError("bars hold NaN or inf in open/high/low/close/volume (rejected rows must not reach features)")
    return aggregate_bars(bars, to, closed_by=pd.Timestamp(end_ns, tz="UTC"))


def bar_grid(bars: pd.DataFrame, step_min: int, t0: int, t1: int, symbols: list[str] | None = None) -> BarGrid:
    """Place long-format ``bars`` with open time in [t0, t1) on a grid of ``step_min`` slots from ``t0`` (ns).

    Raises on a timestamp that is not on the grid or on a duplicate (symbol, timestamp).
    """
    check_columns(bars)
    step = step_min * NS_PER_MIN
    n = max(0, ceil_ns(t1 - t0, step) // step)
    ts = timestamps_ns(bars["timestamp"])
    keep = (ts >= t0) & (ts < t1)
    sub = bars.loc[keep]
    ts = ts[keep]
    if symbols is None:
        symbols = sorted(sub["symbol"].astype(str).unique().tolist())
    codes = pd.Categorical(sub["symbol"].astype(str), categories=symbols).codes.astype("int64")
    ok = codes >= 0
    off = ts - t0
    if (off % step).any():
        bad = pd.Timestamp(int(ts[(off % step) != 0][0]), tz="UTC")
        raise ValueError(f"bar timestamp {bad} is not on the {step_min}-minute grid")
    slot = off // step
    key = codes[ok] * max(n, 1) + slot[ok]
    seen = np.zeros(len(symbols) * max(n, 1), dtype=bool)
    seen[key] = True
    if int(np.count_nonzero(seen)) != len(key):
        dup = pd.Series(key).duplicated()
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise ValueError(f"duplicate bar {sub['symbol'].iloc[np.flatnonzero(ok)[i]]} at "
                         f"{pd.Timestamp(int(ts[ok][i]), tz='UTC')}")
    arrays = {}
    for name in OHLCV:
        values = sub[name].to_numpy(dtype="float64")[ok]
        if not np.isfinite(values).all():
            raise ValueError(f"bars hold NaN or inf in {name} (rejected rows must not reach features)")
        a = np.full((len(symbols), n), np.nan)
        a[codes[ok], slot[ok]] = values
        arrays[name] = a
    return BarGrid(list(symbols), t0, step, **arrays)


def to_long(grid_symbols: list[str], times: np.ndarray, mask: np.ndarray, columns: Mapping[str, np.ndarray],
            leading: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Rows (symbol, time) where ``mask``; sorted by symbol then time (symbols in grid order)."""
    si, gi = np.nonzero(mask)
    out: dict[str, Any] = {
        "symbol": np.asarray(grid_symbols, dtype=object)[si],
        "timestamp": utc_index(times[gi]),
    }
    for name, fn in (leading or {}).items():
        out[name] = fn(si, gi)
    for name, arr in columns.items():
        out[name] = arr[si, gi]
    return pd.DataFrame(out)


def empty_frame(columns: Iterable[str], dtypes: Mapping[str, str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=dtypes.get(c, "float64")) for c in columns})


KEY_DTYPES = {"symbol": "object", "timestamp": "datetime64[ns, UTC]", "available_at": "datetime64[ns, UTC]",
              "bar_timestamp": "datetime64[ns, UTC]", "warmup": "bool", "stale": "bool", "btc_trend": "object",
              "trend_bull": "int8", "trend_bear": "int8"}


# ---------------------------------------------------------------------------------------------------------------
# Window reductions: a fixed binary tree over the window's own slots (start-independent, bit for bit)
# ---------------------------------------------------------------------------------------------------------------


def op_add(older: np.ndarray, newer: np.ndarray, out: np.ndarray) -> None:
    np.add(older, newer, out=out)


def op_max(older: np.ndarray, newer: np.ndarray, out: np.ndarray) -> None:
    np.fmax(older, newer, out=out)


def op_min(older: np.ndarray, newer: np.ndarray, out: np.ndarray) -> None:
    np.fmin(older, newer, out=out)


def op_first(older: np.ndarray, newer: np.ndarray, out: np.ndarray) -> None:
    """The oldest non-NaN value."""
    if out is not newer:
        np.copyto(out, newer)
    np.copyto(out, older, where=~np.isnan(older))


Op = Callable[[np.ndarray, np.ndarray, np.ndarray], None]


def rolling(x: np.ndarray, n: int, op: Op, out: np.ndarray | None = None) -> np.ndarray:
    """Reduce the last ``n`` slots (including the current one) along the last axis with ``op``.

    The value at slot i is a fixed expression over slots i − n + 1 … i (powers-of-two blocks combined from the
    newest), so it depends only on those slots. Slots before the array start are absent: use NaN-free input with
    ``op_add`` (absent = 0) and NaN-aware ops (fmax/fmin/first) otherwise. ``out`` must not be ``x``.
    """
    if n < 1:
        raise ValueError("window must hold at least one bar")
    g = x.shape[-1]
    res = np.empty_like(x) if out is None else out
    levels = (scratch("roll_a", x.shape), scratch("roll_b", x.shape))
    have = False
    off = 0
    level = x
    k = 1
    flip = 0
    while True:
        if n & k:
            if not have:
                np.copyto(res, level)
                off = k
                have = True
            else:
                if off < g:
                    op(level[..., : g - off], res[..., off:], res[..., off:])
                off += k
        if (k << 1) > n:
            break
        nxt = levels[flip]
        flip ^= 1
        nxt[..., :k] = level[..., :k]
        if k < g:
            op(level[..., : g - k], level[..., k:], nxt[..., k:])
        level = nxt
        k <<= 1
    return res


def shift(x: np.ndarray, n: int, fill: float = np.nan) -> np.ndarray:
    """x shifted n slots later along the last axis (out[i] = x[i − n])."""
    out = np.full_like(x, fill)
    if n < x.shape[-1]:
        out[..., n:] = x[..., : x.shape[-1] - n]
    return out


def cover(count: np.ndarray, n: int, coverage: float) -> np.ndarray:
    """Window validity (SPEC §0.2): at least ``coverage`` of the ``n`` expected bars are present."""
    return count + 1e-9 >= coverage * n


class Windows:
    """Rolling reductions with a memo: the same (series, window) is often shared by several features."""

    def __init__(self, coverage: float) -> None:
        self.coverage = coverage
        self._memo: dict[tuple[str, str, int], np.ndarray] = {}
        self._src: dict[str, np.ndarray] = {}

    def source(self, name: str, x: np.ndarray) -> None:
        self._src[name] = x

    def get(self, name: str, n: int, op: Op) -> np.ndarray:
        key = (name, op.__name__, n)
        if key not in self._memo:
            self._memo[key] = rolling(self._src[name], n, op)
        return self._memo[key]

    def sum(self, name: str, n: int) -> np.ndarray:
        return self.get(name, n, op_add)

    def max(self, name: str, n: int) -> np.ndarray:
        return self.get(name, n, op_max)

    def min(self, name: str, n: int) -> np.ndarray:
        return self.get(name, n, op_min)

    def first(self, name: str, n: int) -> np.ndarray:
        return self.get(name, n, op_first)

    def valid(self, count_name: str, n: int) -> np.ndarray:
        return cover(self.sum(count_name, n), n, self.coverage)


def safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN where den is 0 or NaN."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = num / den
    out[~(den != 0)] = np.nan
    return out
