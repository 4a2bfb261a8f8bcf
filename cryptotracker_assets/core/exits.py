"""Exit reasons, costs, the batch exit simulator and the per-bar position stepper (SPEC §4, §5, §6).

Pure numpy/pandas; never imports dagster. Conventions:

- Rates (take profit, stop loss, trail, activation, fee, slippage) are **fractions** (0.025 = 2.5 %); 0 disables
  an exit (``trail_activation`` 0 = trail armed from the entry bar).
- Times are timezone-aware UTC; a bar is named by its open time. Money in USD, prices in USD per coin.
- Levels are float64 computed exactly as written: ``A × (1 + take_profit)``, ``A × (1 − stop_loss)``,
  ``A × (1 + trail_activation)``, ``H × (1 − trailing)``, and compared with ``≤``/``≥`` exactly as SPEC §5.2
  states, so an independent implementation matches at equality boundaries.

Per-bar order (SPEC §5.2), levels using data up to the previous bar only: stop (open ≤ stop → open, low ≤ stop →
stop), then take profit (open ≥ TP → open, high ≥ TP → TP), then time exit (close of the first bar whose
open + bar length ≥ E + max hold), then DCA grid fills and the high-water mark update. Missing bars are never
synthesised: the next real bar's open decides.

:func:`simulate_exits` is the fast batch simulator (single-level positions, offline research, shadows, labels);
:class:`PositionState` / :func:`step` is the incremental stepper with DCA grid fills for the paper engine. Both use
the cost functions of this module and agree exactly on single-level positions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

NS_PER_MINUTE = 60_000_000_000
# Longest accepted max hold (100 years): keeps E + max hold inside int64 nanoseconds.
MAX_HOLD_LIMIT_MIN = 100 * 365 * 24 * 60
# Bars per block of the batch simulator's coarse pass (a tuning knob, not a trading rule).
DEFAULT_BLOCK = 64
# Blocks examined per entry and coarse step.
_COARSE_SPAN = 16


class ExitReason(str, Enum):
    """Why a position closed (SPEC §0.4); the one exit-reason enum of the project."""

    STOP_LOSS = "stop_loss"
    TRAILING_STOP = "trailing_stop"
    TAKE_PROFIT = "take_profit"
    TIME_EXIT = "time_exit"
    STRATEGY_SHIFT_BIG_LOSS = "strategy_shift_big_loss"
    STRATEGY_SHIFT_MODERATE_LOSS = "strategy_shift_moderate_loss"
    STRATEGY_SHIFT_FLAT = "strategy_shift_flat"
    STRATEGY_SHIFT_STALE_WIN = "strategy_shift_stale_win"
    MANUAL = "manual"
    END_OF_DATA = "end_of_data"  # offline simulation only

    @classmethod
    def parse(cls, value: str) -> "ExitReason":
        """Strict parse; an unknown value raises ``ValueError`` naming the allowed values."""
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"unknown exit_reason {value!r}; expected one of {[r.value for r in cls]}") from None


# Reasons the batch simulator can produce, by code (the kernel's int8 encoding).
_REASON_BY_CODE = (
    None,
    ExitReason.STOP_LOSS,
    ExitReason.TRAILING_STOP,
    ExitReason.TAKE_PROFIT,
    ExitReason.TIME_EXIT,
    ExitReason.END_OF_DATA,
)
_STOP, _TRAIL, _TP, _TIME, _EOD = 1, 2, 3, 4, 5


# ---------------------------------------------------------------------------------------------------------------
# Costs (SPEC §6): the one set of cost functions for engine, shadows, labels and offline simulation.
# Each works on floats and on numpy arrays alike.
# ---------------------------------------------------------------------------------------------------------------


def entry_fill(price, slippage):
    """Market buy fill: ``price × (1 + slippage)``; slippage a fraction."""
    return price * (1.0 + slippage)


def exit_fill(price, slippage):
    """Market sell fill: ``price × (1 − slippage)``; slippage a fraction."""
    return price * (1.0 - slippage)


def entry_quantity(size_usd, fill_price):
    """Coins bought for ``size_usd`` at ``fill_price``."""
    return size_usd / fill_price


def entry_fee(size_usd, fee):
    """Fee of a buy: ``size_usd × fee`` (USD; fee a fraction)."""
    return size_usd * fee


def exit_fee(quantity, fill_price, fee):
    """Fee of a sell: ``quantity × fill_price × fee`` (USD; fee a fraction)."""
    return quantity * fill_price * fee


def net_pnl(quantity, exit_fill_price, size_usd, entry_fee_usd, exit_fee_usd):
    """Net P&L in USD: ``quantity × exit fill − size_usd − entry fee − exit fee``."""
    return quantity * exit_fill_price - size_usd - entry_fee_usd - exit_fee_usd


def pnl_ratio(pnl_usd, size_usd):
    """Net P&L as a fraction of the invested size (``pnl_pct`` of the ledger)."""
    return pnl_usd / size_usd


def slippage_cost(fill_price, price, quantity):
    """Slippage of one fill in USD: ``|fill − price| × quantity``."""
    return abs(fill_price - price) * quantity


# ---------------------------------------------------------------------------------------------------------------
# Input checking
# ---------------------------------------------------------------------------------------------------------------

BAR_COLUMNS = ("symbol", "timestamp", "open", "high", "low", "close", "volume")
ENTRY_COLUMNS = (
    "entry_id",
    "symbol",
    "entry_time",
    "size_usd",
    "take_profit",
    "stop_loss",
    "trailing",
    "trail_activation",
    "max_hold_minutes",
    "fee",
    "slippage",
)
TRADE_COLUMNS = (
    "entry_id",
    "symbol",
    "entry_time",
    "entry_price",
    "exit_time",
    "exit_price",
    "exit_reason",
    "quantity",
    "fees_usd",
    "pnl_usd",
    "pnl_ratio",
)
# (column, lowest allowed, highest allowed or None, highest is exclusive)
_ENTRY_RANGES = (
    ("take_profit", 0.0, None),
    ("stop_loss", 0.0, 1.0),
    ("trailing", 0.0, 1.0),
    ("trail_activation", 0.0, None),
    ("max_hold_minutes", 0.0, float(MAX_HOLD_LIMIT_MIN)),
    ("fee", 0.0, 1.0),
    ("slippage", 0.0, 1.0),
)


class SimulationInputError(ValueError):
    """Bad simulator input; names the 1-based data row (header excluded) and the column."""

    def __init__(self, message: str, column: str | None = None, row: int | None = None, table: str = "") -> None:
        self.message = message
        self.column = column
        self.row = row
        self.table = table
        super().__init__(str(self))

    def __str__(self) -> str:
        where = []
        if self.table:
            where.append(self.table)
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        return (", ".join(where) + ": " if where else "") + self.message


def is_utc(tz: Any) -> bool:
    """True for UTC and zero fixed offsets; False for region zones (even Europe/London in winter)."""
    if tz is None:
        return False
    if str(tz) in {"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Universal", "Universal", "Zulu", "Etc/Zulu"}:
        return True
    try:
        return tz.utcoffset(None) == timedelta(0)
    except Exception:  # tz objects that need a datetime are region zones
        return False


def _require_columns(df: pd.DataFrame, columns: tuple[str, ...], table: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise SimulationInputError(
            f"missing column(s) {missing}; expected {list(columns)}", column=missing[0], table=table
        )


def _utc_ns(series: pd.Series, column: str, table: str) -> np.ndarray:
    """int64 nanoseconds since the epoch of a tz-aware UTC datetime column."""
    dtype = series.dtype
    if not isinstance(dtype, pd.DatetimeTZDtype):
        if pd.api.types.is_datetime64_dtype(dtype):
            raise SimulationInputError(
                "timestamps are timezone-naive; they must be UTC", column=column, row=1, table=table
            )
        raise SimulationInputError(f"not a UTC datetime column (dtype {dtype})", column=column, row=1, table=table)
    if not is_utc(dtype.tz):
        raise SimulationInputError(f"timestamps are in {dtype.tz}, not UTC", column=column, row=1, table=table)
    values = pd.DatetimeIndex(series).as_unit("ns")
    bad = np.flatnonzero(values.isna())
    if bad.size:
        raise SimulationInputError("missing timestamp", column=column, row=int(bad[0]) + 1, table=table)
    return values.asi8


def _float_column(df: pd.DataFrame, column: str, table: str) -> np.ndarray:
    series = df[column]
    if not (pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype)):
        numeric = pd.to_numeric(series, errors="coerce")
        bad = np.flatnonzero(numeric.isna().to_numpy() & series.notna().to_numpy())
        if bad.size:
            raise SimulationInputError(
                f"not a number: {series.iloc[bad[0]]!r}", column=column, row=int(bad[0]) + 1, table=table
            )
        series = numeric
    values = np.asarray(series, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        v = float(values[bad[0]])
        what = "missing value" if math.isnan(v) else f"non-finite value {v!r}"
        raise SimulationInputError(what, column=column, row=int(bad[0]) + 1, table=table)
    return values


def _symbol_codes(series: pd.Series, table: str) -> tuple[np.ndarray, pd.Index]:
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy()
        uniques = pd.Index(series.cat.categories.astype(str))
    else:
        codes, uniques = pd.factorize(series.to_numpy(), use_na_sentinel=True)
        uniques = pd.Index(np.asarray(uniques, dtype=object).astype(str))
    bad = np.flatnonzero(codes < 0)
    if bad.size:
        raise SimulationInputError("missing symbol", column="symbol", row=int(bad[0]) + 1, table=table)
    return codes.astype(np.int64, copy=False), uniques


# ---------------------------------------------------------------------------------------------------------------
# Bar layout: flat arrays sorted by (symbol, timestamp) with per-symbol offsets
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class BarArrays:
    """Bars as flat float64/int64 arrays sorted by (symbol, open time); symbol s owns ``offsets[s]:offsets[s+1]``.

    ``ts`` is the bar open time in int64 nanoseconds since the epoch, UTC.
    """

    symbols: pd.Index
    offsets: np.ndarray
    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    _blocks: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_frame(cls, bars: pd.DataFrame, table: str = "bars") -> "BarArrays":
        """Check and lay out a long bar frame (``symbol, timestamp, open, high, low, close, volume``).

        Raises :class:`SimulationInputError` for missing columns, naive/non-UTC/missing timestamps, non-numeric or
        non-finite prices and duplicate (symbol, timestamp) rows, naming the 1-based row and the column.
        """
        _require_columns(bars, BAR_COLUMNS, table)
        codes, symbols = _symbol_codes(bars["symbol"], table)
        ts = _utc_ns(bars["timestamp"], "timestamp", table)
        prices = [_float_column(bars, c, table) for c in ("open", "high", "low", "close")]
        n = len(codes)
        if n > 1:
            dc = np.diff(codes)
            in_order = bool((dc >= 0).all()) and bool(((dc > 0) | (np.diff(ts) > 0)).all())
            if not in_order:
                order = np.lexsort((ts, codes))  # stable: duplicates keep file order
                codes, ts = codes[order], ts[order]
                prices = [p[order] for p in prices]
                dup = np.flatnonzero((np.diff(codes) == 0) & (np.diff(ts) == 0))
                if dup.size:
                    row = int(order[dup[0] + 1]) + 1
                    raise SimulationInputError(
                        f"duplicate bar for symbol {symbols[codes[dup[0]]]!r} at this timestamp",
                        column="timestamp",
                        row=row,
                        table=table,
                    )
        offsets = np.searchsorted(codes, np.arange(len(symbols) + 1), side="left").astype(np.int64)
        op, hi, lo, cl = (np.ascontiguousarray(p) for p in prices)
        return cls(symbols=symbols, offsets=offsets, ts=np.ascontiguousarray(ts), open=op, high=hi, low=lo, close=cl)

    def __len__(self) -> int:
        return len(self.ts)

    def modal_spacing_ns(self) -> int:
        """The most frequent spacing of consecutive bars over all symbols (the smallest on a tie), in ns."""
        d = np.diff(self.ts)
        same = np.ones(len(d), dtype=bool)
        inner = self.offsets[1:-1]
        inner = inner[(inner > 0) & (inner < len(self.ts))]
        same[inner - 1] = False
        d = d[same]
        if d.size == 0:
            raise SimulationInputError(
                "cannot infer the bar length: no symbol has two bars (pass --bar-minutes / bar_minutes)",
                column="timestamp",
                table="bars",
            )
        counts = pd.Series(d).value_counts(sort=False)
        best = counts.max()
        return int(counts.index[counts.to_numpy() == best].min())

    def block_stats(self, block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per block of ``block`` bars: max high, max(open, high), min(open, low) (cached)."""
        got = self._blocks.get(block)
        if got is None:
            n = len(self.ts)
            nb = -(-n // block) if n else 0
            pad = nb * block - n

            def padded(a: np.ndarray, fill: float) -> np.ndarray:
                return np.concatenate([a, np.full(pad, fill)]).reshape(nb, block) if pad else a.reshape(nb, block)

            max_h = padded(self.high, -np.inf).max(axis=1)
            max_oh = np.maximum(max_h, padded(self.open, -np.inf).max(axis=1))
            min_ol = np.minimum(padded(self.low, np.inf).min(axis=1), padded(self.open, np.inf).min(axis=1))
            got = (max_h, max_oh, min_ol)
            self._blocks[block] = got
        return got


# ---------------------------------------------------------------------------------------------------------------
# Batch simulator
# ---------------------------------------------------------------------------------------------------------------


class _Entries(NamedTuple):
    pos: np.ndarray  # row positions in the input frame that have an entry bar
    start: np.ndarray  # global index of the entry bar
    horizon: np.ndarray  # last global bar index checked for stop / take profit
    has_time: np.ndarray  # the horizon bar is the time-exit bar
    size: np.ndarray
    fee: np.ndarray
    slip: np.ndarray
    avg: np.ndarray  # A = entry fill
    tp: np.ndarray  # TP level, +inf when disabled
    stop: np.ndarray  # static stop level, -inf when disabled
    act: np.ndarray  # activation level, +inf when the trail is disabled
    keep: np.ndarray  # 1 - trailing


def _prepare_entries(bars: BarArrays, entries: pd.DataFrame, bar_ns: int, table: str) -> _Entries:
    _require_columns(entries, ENTRY_COLUMNS, table)
    ids = entries["entry_id"]
    bad = np.flatnonzero(ids.isna().to_numpy() | (ids.astype(str).str.strip() == "").to_numpy())
    if bad.size:
        raise SimulationInputError("missing entry_id", column="entry_id", row=int(bad[0]) + 1, table=table)
    dup = np.flatnonzero(ids.astype(str).duplicated().to_numpy())
    if dup.size:
        raise SimulationInputError(
            f"duplicate entry_id {ids.iloc[dup[0]]!r}", column="entry_id", row=int(dup[0]) + 1, table=table
        )
    sym = entries["symbol"]
    bad = np.flatnonzero(sym.isna().to_numpy())
    if bad.size:
        raise SimulationInputError("missing symbol", column="symbol", row=int(bad[0]) + 1, table=table)
    code = bars.symbols.get_indexer(sym.astype(str).to_numpy())
    counts = np.diff(bars.offsets)
    no_bars = np.flatnonzero((code < 0) | (counts[np.maximum(code, 0)] == 0))
    if no_bars.size:
        r = int(no_bars[0])
        raise SimulationInputError(f"symbol {sym.iloc[r]!r} has no bars", column="symbol", row=r + 1, table=table)
    et = _utc_ns(entries["entry_time"], "entry_time", table)
    size = _float_column(entries, "size_usd", table)
    bad = np.flatnonzero(size <= 0)
    if bad.size:
        raise SimulationInputError(
            f"size_usd must be > 0, got {float(size[bad[0]])!r}", column="size_usd", row=int(bad[0]) + 1, table=table
        )
    vals = {}
    for col, lo, hi in _ENTRY_RANGES:
        v = _float_column(entries, col, table)
        bad = np.flatnonzero((v < lo) | ((v >= hi) if hi is not None else False))
        if bad.size:
            rng = f"in [{lo:g}, {hi:g})" if hi is not None else f">= {lo:g}"
            unit = "minutes" if col == "max_hold_minutes" else "(a fraction)"
            raise SimulationInputError(
                f"must be {rng} {unit}, got {float(v[bad[0]])!r}", column=col, row=int(bad[0]) + 1, table=table
            )
        vals[col] = v
    hold_ns = np.rint(vals["max_hold_minutes"] * NS_PER_MINUTE).astype(np.int64)

    n = len(entries)
    start = np.empty(n, dtype=np.int64)
    tbar = np.empty(n, dtype=np.int64)
    end = bars.offsets[code + 1]
    for c in np.unique(code):
        sel = np.flatnonzero(code == c)
        s, e = bars.offsets[c], bars.offsets[c + 1]
        seg = bars.ts[s:e]
        i0 = s + np.searchsorted(seg, et[sel], side="left")
        start[sel] = i0
        ok = i0 < e
        big_e = np.where(ok, bars.ts[np.minimum(i0, e - 1)], 0)
        # Time exit at the first bar with open + bar length >= E + max hold, i.e. open >= E + max hold - bar length.
        boundary = big_e + hold_ns[sel] - bar_ns
        jt = s + np.searchsorted(seg, boundary, side="left")
        jt = np.maximum(jt, i0)
        tbar[sel] = np.where(hold_ns[sel] > 0, jt, e)
    has_bar = start < end
    keep_rows = np.flatnonzero(has_bar)
    start, tbar, end = start[keep_rows], tbar[keep_rows], end[keep_rows]
    has_time = tbar < end
    horizon = np.minimum(tbar, end - 1)
    pick = {k: v[keep_rows] for k, v in vals.items()}
    size, slip, fee = size[keep_rows], pick["slippage"], pick["fee"]
    avg = entry_fill(bars.open[start], slip)
    tp_rate, sl_rate, trail, act_rate = (
        pick["take_profit"],
        pick["stop_loss"],
        pick["trailing"],
        pick["trail_activation"],
    )
    tp = np.where(tp_rate > 0, avg * (1.0 + tp_rate), np.inf)
    stop = np.where(sl_rate > 0, avg * (1.0 - sl_rate), -np.inf)
    act = np.where(trail > 0, avg * (1.0 + act_rate), np.inf)
    keep = 1.0 - trail
    return _Entries(keep_rows, start, horizon, has_time, size, fee, slip, avg, tp, stop, act, keep)


# The batch kernel advances all open entries together, vectorised over entries. A "fine" step scans one block of
# bars exactly (2-D gather, running max for the high-water mark) and is the only place an exit is decided. A
# "coarse" step skips whole blocks that provably hold no stop or take-profit hit: within a block H can only rise up
# to the block's max high, so the effective stop is bounded above by max(S, max-high × (1 − r)); a block whose
# min(open, low) stays above that bound and whose max(open, high) stays below TP is skipped with H updated exactly.
# Pruning is conservative, so it never changes a result (the tests run block sizes 1…64 against a plain loop). The
# time exit and end of data need no scan: the time-exit bar is found by binary search and caps the horizon.


def _fine_step(bars: BarArrays, en: _Entries, idx, pos, hw, block, out_i, out_raw, out_code):
    """Scan each entry from ``pos`` to the end of its block (or its horizon), exactly.

    Returns (still-open mask, next position, high-water mark before the next position).
    """
    k = np.arange(block)[:, None]
    limit = np.minimum((pos // block + 1) * block, en.horizon[idx] + 1)
    width = limit - pos
    gi = np.minimum(pos[None, :] + k, len(bars.ts) - 1)
    o, h, lo = bars.open[gi], bars.high[gi], bars.low[gi]
    run = np.maximum.accumulate(h, axis=0)
    hb = np.empty_like(run)
    hb[0] = hw
    np.maximum(run[:-1], hw[None, :], out=hb[1:])
    stop = en.stop[idx][None, :]
    tp = en.tp[idx][None, :]
    lvl = hb * en.keep[idx][None, :]
    trail_on = (hb >= en.act[idx][None, :]) & (lvl > stop)
    eff = np.where(trail_on, lvl, stop)
    gap = o <= eff
    hit_stop = gap | (lo <= eff)
    gap_tp = o >= tp
    hit = (hit_stop | gap_tp | (h >= tp)) & (k < width[None, :])
    first = hit.argmax(axis=0)
    done = hit[first, np.arange(len(idx))]
    if done.any():
        d = np.flatnonzero(done)
        f = first[d]
        is_stop = hit_stop[f, d]
        stop_raw = np.where(gap[f, d], o[f, d], eff[f, d])
        tp_raw = np.where(gap_tp[f, d], o[f, d], en.tp[idx[d]])
        code = np.where(is_stop, np.where(trail_on[f, d], _TRAIL, _STOP), _TP)
        sel = idx[d]
        out_i[sel] = pos[d] + f
        out_raw[sel] = np.where(is_stop, stop_raw, tp_raw)
        out_code[sel] = code
    openm = ~done
    last = np.maximum(width - 1, 0)
    new_hw = np.maximum(hw, run[last, np.arange(len(idx))])
    return openm, limit, new_hw


def _coarse_step(en: _Entries, blocks, idx, pos, hw, block):
    """From block-aligned ``pos``, skip blocks where no stop or take profit can fire (conservative bounds).

    Returns (candidate found, reached horizon without candidate, next position, high-water mark there).
    """
    max_h, max_oh, min_ol = blocks
    b0 = pos // block
    nbk = en.horizon[idx] // block - b0 + 1
    span = int(min(_COARSE_SPAN, nbk.max()))
    k = np.arange(span)[:, None]
    bi = np.minimum(b0[None, :] + k, len(max_h) - 1)
    hu = np.maximum(np.maximum.accumulate(max_h[bi], axis=0), hw[None, :])  # H bound within / after each block
    hs = np.empty_like(hu)  # exact H before each block (only blocks before the horizon block are used)
    hs[0] = hw
    hs[1:] = hu[:-1]
    keep = en.keep[idx][None, :]
    stop = en.stop[idx][None, :]
    lvl_hi = np.maximum(hu * keep, hs * keep)  # H × (1 − r) is monotone in H, either sign of (1 − r)
    eff_hi = np.where(hu >= en.act[idx][None, :], np.maximum(stop, lvl_hi), stop)
    cand = ((min_ol[bi] <= eff_hi) | (max_oh[bi] >= en.tp[idx][None, :])) & (k < nbk[None, :])
    first = cand.argmax(axis=0)
    cols = np.arange(len(idx))
    found = cand[first, cols]
    exhausted = ~found & (span >= nbk)
    nxt = np.where(found, (b0 + first) * block, (b0 + span) * block)
    new_hw = np.where(found, hs[first, cols], hu[span - 1, cols])
    return found, exhausted, nxt, new_hw


def _run_kernel(bars: BarArrays, en: _Entries, block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(en.start)
    out_i = np.full(n, -1, dtype=np.int64)
    out_raw = np.full(n, np.nan)
    out_code = np.zeros(n, dtype=np.int8)
    if n == 0:
        return out_i, out_raw, out_code
    blocks = bars.block_stats(block)
    idx = np.arange(n)
    pos = en.start.copy()
    hw = en.avg.copy()
    fine = np.ones(n, dtype=bool)
    while idx.size:
        # Exact scan of one (partial) block for entries in fine mode.
        f = np.flatnonzero(fine)
        if f.size:
            openm, nxt, nhw = _fine_step(bars, en, idx[f], pos[f], hw[f], block, out_i, out_raw, out_code)
            pos[f], hw[f] = nxt, nhw
            alive = np.ones(idx.size, dtype=bool)
            alive[f[~openm]] = False
            alive[f[openm & (nxt > en.horizon[idx[f]])]] = False  # horizon reached: no stop / take profit
            fine[f] = False
            idx, pos, hw, fine = idx[alive], pos[alive], hw[alive], fine[alive]
        # Coarse skip for the others.
        c = np.flatnonzero(~fine)
        if c.size:
            found, exhausted, nxt, nhw = _coarse_step(en, blocks, idx[c], pos[c], hw[c], block)
            pos[c], hw[c] = nxt, nhw
            fine[c] = found
            alive = np.ones(idx.size, dtype=bool)
            alive[c[exhausted]] = False
            idx, pos, hw, fine = idx[alive], pos[alive], hw[alive], fine[alive]
    rest = out_code == 0
    tm = rest & en.has_time
    eod = rest & ~en.has_time
    out_i[rest] = en.horizon[rest]
    out_raw[rest] = bars.close[en.horizon[rest]]
    out_code[tm] = _TIME
    out_code[eod] = _EOD
    return out_i, out_raw, out_code


def resolve_bar_ns(bars: BarArrays, bar_minutes: float | None) -> int:
    """Bar length in ns: ``bar_minutes`` (> 0) or the modal spacing of the bars."""
    if bar_minutes is None:
        return bars.modal_spacing_ns()
    if not (isinstance(bar_minutes, (int, float)) and math.isfinite(bar_minutes) and bar_minutes > 0):
        raise ValueError(f"bar_minutes must be a positive number of minutes, got {bar_minutes!r}")
    return int(round(bar_minutes * NS_PER_MINUTE))


def simulate_exits(
    bars: pd.DataFrame | BarArrays,
    entries: pd.DataFrame,
    bar_minutes: float | None = None,
    *,
    block: int = DEFAULT_BLOCK,
) -> pd.DataFrame:
    """Simulate each entry's exit per SPEC §5.2/§6 (single-level positions) and return one row per trade.

    ``bars``: long frame ``symbol, timestamp, open, high, low, close, volume`` (timestamp = bar open, tz-aware UTC;
    gaps allowed) or a prepared :class:`BarArrays`. ``entries``: ``entry_id, symbol, entry_time, size_usd,
    take_profit, stop_loss, trailing, trail_activation, max_hold_minutes, fee, slippage`` (rates are fractions; 0
    disables an exit; ``entry_time`` tz-aware UTC). ``bar_minutes``: bar length; ``None`` = modal spacing.

    A position enters at the open of the first bar with open time ≥ ``entry_time`` (an entry without one gives no
    row). Returns the columns of :data:`TRADE_COLUMNS` in entry order: ``entry_time``/``exit_time`` are the open
    times of the entry and exit bars (UTC), prices include slippage, ``fees_usd`` = entry fee + exit fee,
    ``pnl_ratio`` = ``pnl_usd / size_usd``. Raises :class:`SimulationInputError` on bad input.
    """
    if block < 1:
        raise ValueError("block must be >= 1")
    arrays = bars if isinstance(bars, BarArrays) else BarArrays.from_frame(bars)
    bar_ns = resolve_bar_ns(arrays, bar_minutes)
    en = _prepare_entries(arrays, entries, bar_ns, "entries")
    xi, raw, code = _run_kernel(arrays, en, block)
    qty = entry_quantity(en.size, en.avg)
    fee_in = entry_fee(en.size, en.fee)
    xfill = exit_fill(raw, en.slip)
    fee_out = exit_fee(qty, xfill, en.fee)
    pnl = net_pnl(qty, xfill, en.size, fee_in, fee_out)
    reasons = np.array([r.value if r is not None else "" for r in _REASON_BY_CODE], dtype=object)[code]
    rows = en.pos
    utc = "UTC"
    return pd.DataFrame(
        {
            "entry_id": entries["entry_id"].to_numpy()[rows],
            "symbol": entries["symbol"].astype(str).to_numpy()[rows],
            "entry_time": pd.DatetimeIndex(arrays.ts[en.start].view("datetime64[ns]")).tz_localize(utc),
            "entry_price": en.avg,
            "exit_time": pd.DatetimeIndex(arrays.ts[xi].view("datetime64[ns]")).tz_localize(utc),
            "exit_price": xfill,
            "exit_reason": reasons,
            "quantity": qty,
            "fees_usd": fee_in + fee_out,
            "pnl_usd": pnl,
            "pnl_ratio": pnl_ratio(pnl, en.size),
        },
        columns=list(TRADE_COLUMNS),
    )


# ---------------------------------------------------------------------------------------------------------------
# Per-bar stepper (SPEC §5.2 with the DCA grid of §4) for the paper engine
# ---------------------------------------------------------------------------------------------------------------


def _utc_timestamp(value: Any, what: str) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    if ts.tzinfo is None or not is_utc(ts.tzinfo):
        raise ValueError(f"{what} must be a tz-aware UTC time, got {value!r}")
    return ts.tz_convert("UTC")


@dataclass(frozen=True)
class ExitRule:
    """Exit parameters frozen at entry (fractions of the average entry A; 0 disables; minutes for the hold)."""

    take_profit: float
    stop_loss: float
    trailing: float
    trail_activation: float
    max_hold_minutes: float

    def __post_init__(self) -> None:
        for name, lo, hi in _ENTRY_RANGES:
            if name in ("fee", "slippage"):
                continue
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= lo and (hi is None or v < hi)):
                raise ValueError(f"ExitRule.{name}: invalid value {v!r}")

    @classmethod
    def from_config(cls, cfg: Any, strategy: Any, tier: Any) -> "ExitRule":
        """The rule of ``exits.<strategy>.<tier>`` with the effective tp (× ``exits.tp_multiplier``) and max hold.

        Stop widening (§8.4) is the engine's: apply it with ``dataclasses.replace(rule, stop_loss=...)``.
        """
        p = cfg.exits.params(strategy, tier)
        return cls(
            take_profit=p.take_profit * cfg.exits.tp_multiplier.of(strategy),
            stop_loss=p.stop_loss,
            trailing=p.trail,
            trail_activation=p.trail_activation,
            max_hold_minutes=cfg.exits.max_hold_h * 60.0,
        )


@dataclass(frozen=True)
class Bar:
    """One base bar: open time (tz-aware UTC) and OHLC prices."""

    time: pd.Timestamp
    open: float
    high: float
    low: float
    close: float


@dataclass(frozen=True)
class GridFill:
    """One buy of a position: level 0 is the market entry, levels ≥ 1 are DCA limit fills (no slippage)."""

    level: int
    time: pd.Timestamp
    raw_price: float
    fill_price: float
    quantity: float
    size_usd: float
    fee_usd: float
    slippage_usd: float
    fill_kind: str  # MARKET | LIMIT


@dataclass(frozen=True)
class ExitEvent:
    """The closing sell of a position with its costs (USD) and the levels in force on the exit bar."""

    reason: ExitReason
    time: pd.Timestamp
    raw_price: float
    fill_price: float
    quantity: float
    size_usd: float  # Σ g over filled levels
    entry_fees_usd: float
    exit_fee_usd: float
    fees_usd: float  # entry fees + exit fee
    slippage_usd: float  # of the sell
    pnl_usd: float
    pnl_ratio: float
    high_water: float
    avg_entry: float
    take_profit_price: float | None
    stop_price: float | None
    trail_price: float | None  # the armed trailing level L, else None
    no_data: bool = False


@dataclass
class PositionState:
    """An open position evolving bar by bar; create it with :meth:`open` and advance it with :func:`step`."""

    rule: ExitRule
    fee: float
    slippage: float
    entry_time: pd.Timestamp
    bar_length: pd.Timedelta
    level_size: float
    grid_prices: tuple[float, ...]  # P_1 … P_{n-1}
    fills: list[GridFill]
    avg_entry: float
    take_profit_price: float  # +inf when disabled
    stop_price: float  # -inf when disabled
    activation_price: float  # +inf when the trail is disabled
    high_water: float
    last_time: pd.Timestamp | None = None
    exit: ExitEvent | None = None

    @classmethod
    def open(
        cls,
        time: Any,
        open_price: float,
        size_usd: float,
        rule: ExitRule,
        fee: float,
        slippage: float,
        bar_minutes: float,
        levels: int = 1,
        spacing: float = 0.0,
    ) -> "PositionState":
        """Open at the entry bar's open: level 0 market buy of ``size_usd / levels`` at open × (1 + slippage).

        ``levels``/``spacing`` describe the DCA grid (§4; 1 level = a plain position): P_i = F₀ × (1 − spacing·i).
        ``size_usd`` is the whole grid G; fee and slippage are fractions. Then call :func:`step` on the entry bar.
        """
        if not (isinstance(levels, int) and levels >= 1):
            raise ValueError(f"levels must be an integer >= 1, got {levels!r}")
        if not (math.isfinite(spacing) and spacing >= 0 and spacing * (levels - 1) < 1):
            raise ValueError(f"spacing must be >= 0 with spacing × (levels − 1) < 1, got {spacing!r}")
        if not (math.isfinite(size_usd) and size_usd > 0):
            raise ValueError(f"size_usd must be > 0, got {size_usd!r}")
        for name, v in (("fee", fee), ("slippage", slippage)):
            if not (math.isfinite(v) and 0 <= v < 1):
                raise ValueError(f"{name} must be a fraction in [0, 1), got {v!r}")
        if not (math.isfinite(bar_minutes) and bar_minutes > 0):
            raise ValueError(f"bar_minutes must be > 0, got {bar_minutes!r}")
        t = _utc_timestamp(time, "entry time")
        g = size_usd / levels
        f0 = entry_fill(float(open_price), slippage)
        q0 = entry_quantity(g, f0)
        first = GridFill(
            0, t, float(open_price), f0, q0, g, entry_fee(g, fee), slippage_cost(f0, float(open_price), q0), "MARKET"
        )
        state = cls(
            rule=rule,
            fee=fee,
            slippage=slippage,
            entry_time=t,
            bar_length=pd.Timedelta(int(round(bar_minutes * NS_PER_MINUTE)), unit="ns"),
            level_size=g,
            grid_prices=tuple(f0 * (1.0 - spacing * i) for i in range(1, levels)),
            fills=[first],
            avg_entry=f0,
            take_profit_price=math.inf,
            stop_price=-math.inf,
            activation_price=math.inf,
            high_water=f0,
        )
        state._set_levels(f0)
        return state

    def _set_levels(self, avg: float) -> None:
        r = self.rule
        self.avg_entry = avg
        self.take_profit_price = avg * (1.0 + r.take_profit) if r.take_profit > 0 else math.inf
        self.stop_price = avg * (1.0 - r.stop_loss) if r.stop_loss > 0 else -math.inf
        self.activation_price = avg * (1.0 + r.trail_activation) if r.trailing > 0 else math.inf
        self.high_water = avg

    # --- aggregates over fills (exact-rounded sums, so any summation order gives the same value) ---------------
    @property
    def quantity(self) -> float:
        return math.fsum(f.quantity for f in self.fills)

    @property
    def filled_usd(self) -> float:
        return self.level_size * len(self.fills)

    @property
    def entry_fees_usd(self) -> float:
        return math.fsum(f.fee_usd for f in self.fills)

    @property
    def is_open(self) -> bool:
        return self.exit is None

    @property
    def max_hold(self) -> pd.Timedelta | None:
        m = self.rule.max_hold_minutes
        return pd.Timedelta(int(round(m * NS_PER_MINUTE)), unit="ns") if m > 0 else None

    def levels_in_force(self) -> tuple[float, float, float | None]:
        """(effective stop, static stop, armed trailing level L or None) for the next bar; ±inf = disabled."""
        armed = self.high_water >= self.activation_price
        trail = self.high_water * (1.0 - self.rule.trailing) if armed else None
        eff = self.stop_price if trail is None else max(self.stop_price, trail)
        return eff, self.stop_price, trail


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def close_position(
    state: PositionState, time: Any, raw_price: float, reason: ExitReason, *, no_data: bool = False
) -> ExitEvent:
    """Close ``state`` at ``raw_price`` (a MARKET sell at raw × (1 − slippage) plus the fee, SPEC §5.2/§6).

    Used by :func:`step` and directly for strategy-shift, manual, no-data and end-of-data closes.
    """
    if state.exit is not None:
        raise ValueError("position already closed")
    reason = ExitReason(reason)
    t = _utc_timestamp(time, "exit time")
    raw = float(raw_price)
    xf = exit_fill(raw, state.slippage)
    q = state.quantity
    size = state.filled_usd
    fee_in = state.entry_fees_usd
    fee_out = exit_fee(q, xf, state.fee)
    pnl = net_pnl(q, xf, size, fee_in, fee_out)
    _, _, trail = state.levels_in_force()
    ev = ExitEvent(
        reason=reason,
        time=t,
        raw_price=raw,
        fill_price=xf,
        quantity=q,
        size_usd=size,
        entry_fees_usd=fee_in,
        exit_fee_usd=fee_out,
        fees_usd=fee_in + fee_out,
        slippage_usd=slippage_cost(xf, raw, q),
        pnl_usd=pnl,
        pnl_ratio=pnl_ratio(pnl, size),
        high_water=state.high_water,
        avg_entry=state.avg_entry,
        take_profit_price=_finite_or_none(state.take_profit_price),
        stop_price=_finite_or_none(state.stop_price),
        trail_price=trail,
        no_data=no_data,
    )
    state.exit = ev
    return ev


def step(state: PositionState, bar: Bar) -> ExitEvent | None:
    """Advance ``state`` by one base bar (SPEC §5.2 steps 1–5); returns the exit if the position closed on it.

    Bars must come in time order, from the entry bar on; a missing bar is simply not stepped (never synthesised).
    """
    if state.exit is not None:
        raise ValueError("position already closed")
    t = _utc_timestamp(bar.time, "bar time")
    if t < state.entry_time or (state.last_time is not None and t <= state.last_time):
        raise ValueError(f"bar at {t} is out of order (entry {state.entry_time}, last bar {state.last_time})")
    state.last_time = t
    o, h, lo, c = float(bar.open), float(bar.high), float(bar.low), float(bar.close)
    # 1. levels from data up to the previous bar
    hw = state.high_water
    armed = hw >= state.activation_price
    trail = hw * (1.0 - state.rule.trailing)
    trail_wins = armed and trail > state.stop_price
    eff = trail if trail_wins else state.stop_price
    reason = ExitReason.TRAILING_STOP if trail_wins else ExitReason.STOP_LOSS
    # 2. stop
    if o <= eff:
        return close_position(state, t, o, reason)
    if lo <= eff:
        return close_position(state, t, eff, reason)
    # 3. take profit
    tp = state.take_profit_price
    if o >= tp:
        return close_position(state, t, o, ExitReason.TAKE_PROFIT)
    if h >= tp:
        return close_position(state, t, tp, ExitReason.TAKE_PROFIT)
    # 4. time exit
    hold = state.max_hold
    if hold is not None and t + state.bar_length >= state.entry_time + hold:
        return close_position(state, t, c, ExitReason.TIME_EXIT)
    # 5. DCA grid fills, then the high-water mark
    filled_levels = {f.level for f in state.fills}
    new = False
    for i, p in enumerate(state.grid_prices, start=1):
        if i not in filled_levels and lo <= p:
            fill = min(p, o)
            q = entry_quantity(state.level_size, fill)
            state.fills.append(
                GridFill(i, t, fill, fill, q, state.level_size, entry_fee(state.level_size, state.fee), 0.0, "LIMIT")
            )
            new = True
    if new:
        state._set_levels(state.filled_usd / state.quantity)
    else:
        state.high_water = max(hw, h)
    return None
