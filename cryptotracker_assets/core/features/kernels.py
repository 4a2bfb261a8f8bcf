"""Indicator kernels: EMA, Wilder RSI, MACD, SMA and Bollinger bands on rows of series, and the Kind-X lanes
that run the recursive ones under the start rule of SPEC §2."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.signal import lfilter

from ..common import NS_PER_DAY, NS_PER_MIN, floor_ns
from .grid import op_add, rolling
from .parallel import by_rows, scratch

# ---------------------------------------------------------------------------------------------------------------
# Recursive indicators on rows of NaN-free series that all start at column 0 (the caller applies the start rule)
# ---------------------------------------------------------------------------------------------------------------


def ema_into(x: np.ndarray, n: int, alpha: float, out: np.ndarray, first: int = 0) -> np.ndarray:
    """out = y with y = alpha·x + (1 − alpha)·y_prev along axis 1 from column ``first``, seeded at column
    first + n − 1 with the mean of columns first … first + n − 1 (summed in order, so a row's result never depends on
    other rows); NaN before. ``out`` may be ``x``."""
    rows, length = x.shape
    if n < 1:
        raise ValueError("EMA period must be >= 1")
    if length - first < n:
        out.fill(np.nan)
        return out
    seed = x[:, first].copy()
    for j in range(first + 1, first + n):
        seed += x[:, j]
    seed /= n
    tail = None
    if length > first + n:
        decay = 1.0 - alpha
        tail = lfilter([alpha], [1.0, -decay], x[:, first + n:], axis=1, zi=(decay * seed)[:, None])[0]
    out[:, : first + n - 1] = np.nan
    out[:, first + n - 1] = seed
    if tail is not None:
        out[:, first + n:] = tail
    return out


def rsi_into(c: np.ndarray, n: int, out: np.ndarray) -> np.ndarray:
    """Wilder RSI aligned with the closes (first value at column n) into ``out``."""
    rows, length = c.shape
    if length <= n:
        out.fill(np.nan)
        return out
    d = scratch("rsi_d", c.shape)
    d[:, 0] = 0.0  # placeholder before the first change; never read (the averages start at column 1)
    np.subtract(c[:, 1:], c[:, :-1], out=d[:, 1:])
    gain = scratch("rsi_g", c.shape)
    np.maximum(d, 0.0, out=gain)
    np.negative(d, out=d)
    np.maximum(d, 0.0, out=d)
    ema_into(gain, n, 1.0 / n, out, first=1)
    total = ema_into(d, n, 1.0 / n, d, first=1)
    total += out
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(out, total, out=out)  # no movement at all: 0 / 0 = NaN (null)
    out *= 100.0
    return out


def _macd_into(c: np.ndarray, fast: int, slow: int, signal: int, line: np.ndarray, sig: np.ndarray,
               hist: np.ndarray, ema_fast: np.ndarray | None = None, ema_slow: np.ndarray | None = None) -> None:
    ef = ema_into(c, fast, 2.0 / (fast + 1), scratch("macd_f", c.shape) if ema_fast is None else ema_fast)
    es = ema_into(c, slow, 2.0 / (slow + 1), hist if ema_slow is None else ema_slow)
    np.subtract(ef, es, out=line)
    ema_into(line, signal, 2.0 / (signal + 1), sig, first=max(fast, slow) - 1)
    np.subtract(line, sig, out=hist)


def _bollinger_into(x: np.ndarray, n: int, k: float, upper: np.ndarray, mid: np.ndarray,
                    lower: np.ndarray) -> None:
    rolling(x, n, op_add, out=mid)
    sq = scratch("bb_sq", x.shape)
    np.multiply(x, x, out=sq)
    var = rolling(sq, n, op_add, out=lower)
    mid /= n
    var /= n
    np.multiply(mid, mid, out=sq)
    var -= sq
    np.maximum(var, 0.0, out=var)
    band = np.sqrt(var, out=var)
    band *= k
    np.add(mid, band, out=upper)
    np.subtract(mid, band, out=lower)
    for a in (upper, mid, lower):
        a[:, : n - 1] = np.nan


def _as_rows(values: np.ndarray) -> tuple[np.ndarray, bool]:
    arr = np.ascontiguousarray(values, dtype="float64")
    if arr.ndim == 1:
        return arr[None, :], True
    if arr.ndim != 2:
        raise ValueError("expected a 1-D series or a 2-D array of rows")
    return arr, False


def _unrow(out: tuple[np.ndarray, ...], one: bool) -> Any:
    res = tuple(a[0] for a in out) if one else out
    return res[0] if len(res) == 1 else res


def ema(values: np.ndarray, n: int) -> np.ndarray:
    """EMA with alpha = 2/(n+1), seeded with the SMA of the first n values (NaN before). Rows are series."""
    x, one = _as_rows(values)
    return _unrow(by_rows(lambda c, o: ema_into(c, n, 2.0 / (n + 1), o), 1, x), one)


def wilder_rsi(close: np.ndarray, n: int) -> np.ndarray:
    """Wilder RSI (0–100) of each row: averages of gains/losses seeded with the SMA of the first n changes, then
    avg = (avg·(n − 1) + x)/n; first value at index n; null where there was no movement at all."""
    x, one = _as_rows(close)
    return _unrow(by_rows(lambda c, o: rsi_into(c, n, o), 1, x), one)


def macd(close: np.ndarray, fast: int, slow: int, signal: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(macd, signal, macd − signal): EMA(fast) − EMA(slow) of close, signal = EMA(signal) of macd seeded with the
    SMA of its first ``signal`` values. Each EMA is seeded with the SMA of its own first n inputs."""
    x, one = _as_rows(close)
    return _unrow(by_rows(lambda c, a, b, h: _macd_into(c, fast, slow, signal, a, b, h), 3, x), one)


def sma(values: np.ndarray, n: int) -> np.ndarray:
    """Simple moving average over the last n values (NaN before the n-th)."""
    x, one = _as_rows(values)

    def chunk(c: np.ndarray, o: np.ndarray) -> None:
        rolling(c, n, op_add, out=o)
        o /= n
        o[:, : n - 1] = np.nan

    return _unrow(by_rows(chunk, 1, x), one)


def bollinger(close: np.ndarray, n: int, k: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(upper, middle, lower) = SMA ± k·σ over the last n closes, σ the population std (ddof 0)."""
    x, one = _as_rows(close)
    return _unrow(by_rows(lambda c, u, m, lo: _bollinger_into(c, n, k, u, m, lo), 3, x), one)


# ---------------------------------------------------------------------------------------------------------------
# Kind-X lanes: one compressed series per (symbol, start day), left-justified, computed in batches
# ---------------------------------------------------------------------------------------------------------------

_LANE_BATCH_CELLS = 4_000_000


def kind_x_start(t_ns: Any, min_history_min: int) -> Any:
    """Start of the recursion for a value used at T (ns): 00:00 UTC of the day containing T − min_history_min."""
    return floor_ns(t_ns - min_history_min * NS_PER_MIN, NS_PER_DAY)


def run_lanes(values: np.ndarray, present: np.ndarray, groups: list[tuple[int, np.ndarray]],
              fn: Callable[..., None], names: tuple[str, ...]) -> list[dict[str, np.ndarray]]:
    """For each group (start slot s, targets J (symbols × m), −1 = none), compute ``names`` on the lanes of the
    present values from s to the last target with ``fn(lanes, *outputs)`` (row-independent, see :func:`by_rows`)
    and return the lane values at the targets, (symbols × m) per name."""
    n_sym = values.shape[0]
    results: list[dict[str, np.ndarray]] = [{} for _ in groups]
    batch: list[int] = []
    cells = 0

    def flush() -> None:
        spans = [int(groups[g][1].max()) - groups[g][0] + 1 for g in batch]
        length = max(spans)
        lanes = np.zeros((n_sym * len(batch), length))
        positions = []
        for b, g in enumerate(batch):
            s, _ = groups[g]
            e = s + spans[b]
            sub_p = present[:, s:e]
            pos = np.cumsum(sub_p, axis=1) - 1
            rows = np.broadcast_to((np.arange(n_sym) + b * n_sym)[:, None], sub_p.shape)
            lanes[rows[sub_p], pos[sub_p]] = values[:, s:e][sub_p]  # padding after a lane's end stays 0
            positions.append(pos)
        out = dict(zip(names, by_rows(fn, len(names), lanes)))
        for b, g in enumerate(batch):
            s, targets = groups[g]
            ok = targets >= s
            rel = np.where(ok, targets - s, 0)
            p = np.take_along_axis(positions[b], rel, axis=1)
            ok &= p >= 0
            rows = (np.arange(n_sym) + b * n_sym)[:, None]
            for name, arr in out.items():
                v = arr[rows, np.maximum(p, 0)]
                v[~ok] = np.nan
                results[g][name] = v

    for g, (s, targets) in enumerate(groups):
        if targets.size == 0 or targets.max() < s:
            continue
        span = int(targets.max()) - s + 1
        if batch and cells + n_sym * span > _LANE_BATCH_CELLS:
            flush()
            batch, cells = [], 0
        batch.append(g)
        cells += n_sym * span
    if batch:
        flush()
    return results


def history_short(present: np.ndarray, t0: int, step: int, use_times: np.ndarray, min_history_min: int,
                  history_bars: int, slots: np.ndarray | None = None) -> np.ndarray:
    """True where no bar lies in [min(Kind-X start, slot − history), slot − history]: the symbol's history since
    the start rule's start is shorter than its windows need (the documented warm-up).

    ``slots`` (symbols × m) are the rows' slots (default: every slot, one row per slot); ``use_times`` the T of
    each row (its Kind-X start is derived from it)."""
    n_sym, n_slots = present.shape
    csum = np.concatenate([np.zeros((n_sym, 1), dtype="int64"), np.cumsum(present, axis=1)], axis=1)
    if slots is None:
        slots = np.broadcast_to(np.arange(n_slots)[None, :], (n_sym, n_slots))
    start_slot = ((kind_x_start(use_times, min_history_min) - t0) // step)[None, :]
    hi = slots - history_bars
    lo = np.clip(np.minimum(start_slot, hi), 0, None)
    hi_c = np.clip(hi, -1, n_slots - 1)
    rows = np.arange(n_sym)[:, None]
    count = csum[rows, hi_c + 1] - csum[rows, np.minimum(lo, hi_c + 1)]
    return (count <= 0) | (hi < 0)
