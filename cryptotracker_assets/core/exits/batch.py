"""The batch exit simulator (SPEC §5.2, §6) for single-level positions: offline research, shadows and labels.

Input checking names the 1-based data row and the column of a bad value; bars are laid out as flat arrays per
symbol (:class:`BarArrays`); entries are prepared into arrays and run through :func:`.kernel.run_kernel`. The
results equal the per-bar stepper of :mod:`.stepper` exactly (same cost functions, same comparisons).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..common import NS_PER_MIN, is_utc
from .costs import entry_fee, entry_fill, entry_quantity, exit_fee, exit_fill, net_pnl, pnl_ratio
from .kernel import REASON_BY_CODE, Entries, run_kernel
from .rules import ENTRY_RANGES

# Bars per block of the batch simulator's coarse pass (a tuning knob, not a trading rule).
DEFAULT_BLOCK = 64


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


def _check_bar_ranges(op: np.ndarray, hi: np.ndarray, lo: np.ndarray, cl: np.ndarray, table: str) -> None:
    """SPEC §13.2 integrity: high >= low and [low, high] brackets open and close; names the first broken row."""
    low_side = np.minimum(op, cl)
    high_side = np.maximum(op, cl)
    bad = np.flatnonzero((hi < lo) | (hi < high_side) | (lo > low_side))
    if not bad.size:
        return
    r = int(bad[0])
    o, h, lw, c = (float(a[r]) for a in (op, hi, lo, cl))
    if h < lw:
        message, column = f"high {h!r} is below low {lw!r}", "high"
    elif h < max(o, c):
        message, column = f"high {h!r} is below open {o!r} or close {c!r}", "high"
    else:
        message, column = f"low {lw!r} is above open {o!r} or close {c!r}", "low"
    raise SimulationInputError(f"broken bar: {message}", column=column, row=r + 1, table=table)


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
        non-finite prices, a high below the low, open or close, a low above the open or close (SPEC §13.2) and
        duplicate (symbol, timestamp) rows, naming the 1-based row and the column.
        """
        _require_columns(bars, BAR_COLUMNS, table)
        codes, symbols = _symbol_codes(bars["symbol"], table)
        ts = _utc_ns(bars["timestamp"], "timestamp", table)
        prices = [_float_column(bars, c, table) for c in ("open", "high", "low", "close")]
        _check_bar_ranges(*prices, table)
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
# Batch simulator: entries → kernel arrays → trades
# ---------------------------------------------------------------------------------------------------------------


def _prepare_entries(bars: BarArrays, entries: pd.DataFrame, bar_ns: int, table: str) -> Entries:
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
    for col, lo, hi in ENTRY_RANGES:
        v = _float_column(entries, col, table)
        bad = np.flatnonzero((v < lo) | ((v >= hi) if hi is not None else False))
        if bad.size:
            rng = f"in [{lo:g}, {hi:g})" if hi is not None else f">= {lo:g}"
            unit = "minutes" if col == "max_hold_minutes" else "(a fraction)"
            raise SimulationInputError(
                f"must be {rng} {unit}, got {float(v[bad[0]])!r}", column=col, row=int(bad[0]) + 1, table=table
            )
        vals[col] = v
    hold_ns = np.rint(vals["max_hold_minutes"] * NS_PER_MIN).astype(np.int64)

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
    return Entries(keep_rows, start, horizon, has_time, size, fee, slip, avg, tp, stop, act, keep)


def resolve_bar_ns(bars: BarArrays, bar_minutes: float | None) -> int:
    """Bar length in ns: ``bar_minutes`` (> 0) or the modal spacing of the bars."""
    if bar_minutes is None:
        return bars.modal_spacing_ns()
    if not (isinstance(bar_minutes, (int, float)) and math.isfinite(bar_minutes) and bar_minutes > 0):
        raise ValueError(f"bar_minutes must be a positive number of minutes, got {bar_minutes!r}")
    return int(round(bar_minutes * NS_PER_MIN))


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
    xi, raw, code = run_kernel(arrays, en, block)
    qty = entry_quantity(en.size, en.avg)
    fee_in = entry_fee(en.size, en.fee)
    xfill = exit_fill(raw, en.slip)
    fee_out = exit_fee(qty, xfill, en.fee)
    pnl = net_pnl(qty, xfill, en.size, fee_in, fee_out)
    reasons = np.array([r.value if r is not None else "" for r in REASON_BY_CODE], dtype=object)[code]
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
