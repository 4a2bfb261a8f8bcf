"""What a market move did (``cryptotracker analyze`` and the summary of ``cryptotracker export``): BTC's path with
its drawdown and recovery, volatility, breadth, the regime timeline, and what the book did — realised and
unrealised P&L, exits by reason, positions opened into the move. Pure pandas; never imports dagster.

A window is [start, end] on the data's clock: ``end`` is the close time of the newest stored base bar (never the
wall clock). It holds the bars with open time in [start, end) and the events (exits, entries, cycle points)
stamped in [start, end]. Prices are USD per coin, returns and drawdowns fractions, money USD (float64, never
rounded here); aggregate returns are size-weighted (Σ P&L USD / Σ size USD, I-2), never summed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .common import utc
from .ledger import size_weighted_return

HOURS_PER_YEAR = 24 * 365  # annualisation of hourly returns: × √(24 × 365)
SPAN_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m|min|h|d)\s*$", re.IGNORECASE)
ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?\s*(Z|[+-]\d{2}:?\d{2})?$",
                    re.IGNORECASE)
SPAN_UNITS = {"m": "minutes", "min": "minutes", "h": "hours", "d": "days"}
EXIT_COLUMNS = ("exit_reason", "trades", "wins", "pnl_usd", "size_usd", "pnl_pct")
ENTRY_COLUMNS = ("trade_group_id", "strategy", "symbol", "entry_time", "size_usd", "state", "pnl_usd", "pnl_pct")
TIMELINE_COLUMNS = ("start", "regime", "cycle_points", "until")


# ---------------------------------------------------------------------------------------------------------------
# Spans and moments given by people
# ---------------------------------------------------------------------------------------------------------------


def parse_span(text: str) -> pd.Timedelta:
    """``24h`` / ``7d`` / ``90m`` (``min`` too) as a positive time span; anything else raises ``ValueError``."""
    m = SPAN_RE.match(str(text))
    value = float(m.group(1)) if m else 0.0
    if not value > 0:
        raise ValueError(f"{text!r}: expected a positive span such as 24h, 7d or 90m")
    return pd.Timedelta(**{SPAN_UNITS[m.group(2).lower()]: value})


def parse_since(text: str) -> pd.Timedelta | pd.Timestamp:
    """A moment given as an ISO date/time (UTC when it has no offset) or as a span before the data's end
    (:func:`since_time` resolves it); anything else raises ``ValueError``."""
    t = str(text).strip()
    if SPAN_RE.match(t):
        return parse_span(t)
    if ISO_RE.match(t):
        try:
            ts = pd.Timestamp(t)
            return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        except ValueError:  # a date that does not exist (2026-02-30)
            pass
    raise ValueError(f"{text!r}: expected an ISO date/time (2026-02-03, 2026-02-03T12:00Z) or a span before the "
                     f"newest stored bar (24h, 7d)")


def since_time(since: pd.Timedelta | pd.Timestamp, end: pd.Timestamp | None) -> pd.Timestamp:
    """The moment of a :func:`parse_since` value: a span counts back from ``end`` (the data's end)."""
    if not isinstance(since, pd.Timedelta):
        return utc(since, "since")
    if end is None:
        raise ValueError(f"a span ({since}) needs the data's end to count back from")
    return utc(end, "end") - since


def in_window(times: pd.Series, start: pd.Timestamp, end: pd.Timestamp | None) -> np.ndarray:
    """Mask of ``times`` in [start, end] (no upper bound when ``end`` is None); missing times are outside."""
    t = pd.to_datetime(times, utc=True)
    mask = (t >= start).to_numpy(dtype=bool, na_value=False)
    if end is not None:
        mask &= (t <= end).to_numpy(dtype=bool, na_value=False)
    return mask


# ---------------------------------------------------------------------------------------------------------------
# Price paths
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Drawdown:
    """The deepest fall of a price path below its running peak: ``depth`` ≤ 0 (a fraction; 0 when the path never
    fell), the peak it fell from and the trough (times, prices), and the first time the path was back at the
    peak price after the trough (None: not recovered)."""

    depth: float
    peak_time: pd.Timestamp | None
    peak_price: float
    trough_time: pd.Timestamp | None
    trough_price: float
    recovered_at: pd.Timestamp | None

    @property
    def recovery(self) -> pd.Timedelta | None:
        """Time from the trough back to the peak price (None: not recovered, or no drawdown)."""
        if self.recovered_at is None or self.trough_time is None:
            return None
        return self.recovered_at - self.trough_time


def max_drawdown(path: pd.Series) -> Drawdown:
    """The maximum drawdown of ``path`` (prices indexed by UTC time, chronological). The peak is the latest time
    the running peak price was reached before the trough; ties of the trough keep the first."""
    p = path.to_numpy(dtype="float64")
    if p.size == 0:
        raise ValueError("max_drawdown: empty price path")
    times = pd.DatetimeIndex(path.index)
    running = np.maximum.accumulate(p)
    dd = p / running - 1.0
    i = int(np.argmin(dd))
    if not dd[i] < 0:
        return Drawdown(0.0, None, float(running[-1]), None, float(running[-1]), None)
    j = int(np.flatnonzero(p[: i + 1] == running[i])[-1])
    back = np.flatnonzero(p[i + 1:] >= running[i])
    return Drawdown(depth=float(dd[i]), peak_time=times[j], peak_price=float(p[j]), trough_time=times[i],
                    trough_price=float(p[i]), recovered_at=times[i + 1 + int(back[0])] if back.size else None)


def price_path(bars: pd.DataFrame, bar: pd.Timedelta) -> pd.Series:
    """One symbol's prices over its bars (chronological ``timestamp`` = open time, ``open``, ``close``): the first
    bar's open at its open time, then each close at its bar's close time (open + ``bar``)."""
    if bars.empty:
        return pd.Series([], dtype="float64", index=pd.DatetimeIndex([], tz="UTC"))
    t = pd.DatetimeIndex(pd.to_datetime(bars["timestamp"], utc=True))
    times = t[:1].append(t + bar)
    prices = np.concatenate([bars["open"].to_numpy(dtype="float64")[:1], bars["close"].to_numpy(dtype="float64")])
    return pd.Series(prices, index=times)


@dataclass(frozen=True)
class PriceMove:
    """A symbol's move over a window: first and last price of its path and the change (fraction), the highest high
    and lowest low of its bars (with their bar open times), and the drawdown of the path."""

    symbol: str
    start_time: pd.Timestamp
    end_time: pd.Timestamp
    start: float
    end: float
    change: float
    high: float
    high_time: pd.Timestamp
    low: float
    low_time: pd.Timestamp
    drawdown: Drawdown


def price_move(bars: pd.DataFrame, bar: pd.Timedelta, symbol: str) -> PriceMove | None:
    """The :class:`PriceMove` of ``symbol`` over its rows of ``bars`` (OHLC, any symbols; None without a bar)."""
    own = bars[bars["symbol"] == symbol].sort_values("timestamp")
    if own.empty:
        return None
    path = price_path(own, bar)
    hi, lo = int(own["high"].to_numpy().argmax()), int(own["low"].to_numpy().argmin())
    t = pd.to_datetime(own["timestamp"], utc=True).reset_index(drop=True)
    return PriceMove(symbol=symbol, start_time=path.index[0], end_time=path.index[-1], start=float(path.iloc[0]),
                     end=float(path.iloc[-1]), change=float(path.iloc[-1] / path.iloc[0] - 1.0),
                     high=float(own["high"].iloc[hi]), high_time=t.iloc[hi], low=float(own["low"].iloc[lo]),
                     low_time=t.iloc[lo], drawdown=max_drawdown(path))


def hourly_volatility(path: pd.Series) -> float:
    """Standard deviation (ddof 1) of the log returns between the last prices at or before each full UTC hour
    (the last hour ends at the path's end), annualised × √(24 × 365); NaN with fewer than two returns."""
    if path.empty:
        return math.nan
    hourly = path.groupby(pd.DatetimeIndex(path.index).ceil("1h")).last()
    returns = np.diff(np.log(hourly.to_numpy(dtype="float64")))
    if returns.size < 2:
        return math.nan
    return float(np.std(returns, ddof=1) * math.sqrt(HOURS_PER_YEAR))


# ---------------------------------------------------------------------------------------------------------------
# Breadth and regimes
# ---------------------------------------------------------------------------------------------------------------


def symbol_changes(bars: pd.DataFrame) -> pd.DataFrame:
    """Per symbol: its first bar's open, its last bar's close and the change (fraction), by change descending
    then symbol."""
    if bars.empty:
        return pd.DataFrame({"symbol": pd.Series([], dtype=object), "first": pd.Series([], dtype="float64"),
                             "last": pd.Series([], dtype="float64"), "change": pd.Series([], dtype="float64")})
    ordered = bars.sort_values(["symbol", "timestamp"], kind="stable")
    g = ordered.groupby("symbol", sort=True)
    out = pd.DataFrame({"first": g["open"].first(), "last": g["close"].last()}).reset_index()
    out["change"] = out["last"] / out["first"] - 1.0
    return out.sort_values(["change", "symbol"], ascending=[False, True], kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class Breadth:
    """How many symbols rose (advancing), fell (declining) or ended where they started over the window."""

    symbols: int
    advancing: int
    declining: int
    unchanged: int

    @property
    def share_up(self) -> float:
        """Advancing / symbols (a fraction; NaN without symbols)."""
        return self.advancing / self.symbols if self.symbols else math.nan


def breadth(changes: pd.DataFrame) -> Breadth:
    """The :class:`Breadth` of :func:`symbol_changes`."""
    c = changes["change"].to_numpy(dtype="float64")
    up, down = int((c > 0).sum()), int((c < 0).sum())
    return Breadth(symbols=len(c), advancing=up, declining=down, unchanged=len(c) - up - down)


def regime_timeline(regimes: pd.DataFrame) -> pd.DataFrame:
    """The regime changes of ``market_regime`` rows (``timestamp`` = cycle point, ``regime``): one row per run of
    equal consecutive regimes with its first cycle point, its length in cycle points and ``until`` — the first
    cycle point of the next run (NaT for the last: still in force)."""
    rows = regimes.sort_values("timestamp", kind="stable")
    if rows.empty:
        return pd.DataFrame({"start": pd.Series([], dtype="datetime64[ns, UTC]"),
                             "regime": pd.Series([], dtype=object),
                             "cycle_points": pd.Series([], dtype="int64"),
                             "until": pd.Series([], dtype="datetime64[ns, UTC]")})
    t = pd.to_datetime(rows["timestamp"], utc=True).reset_index(drop=True)
    reg = rows["regime"].astype(str).reset_index(drop=True)
    run = (reg != reg.shift()).cumsum()
    firsts = run.drop_duplicates().index
    starts = t.iloc[firsts].reset_index(drop=True)
    out = pd.DataFrame({"start": starts, "regime": reg.iloc[firsts].to_numpy(),
                        "cycle_points": run.value_counts(sort=False).sort_index().to_numpy(dtype="int64")})
    out["until"] = starts.shift(-1)
    return out[list(TIMELINE_COLUMNS)]


# ---------------------------------------------------------------------------------------------------------------
# The book over a window
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WindowPnl:
    """Realised P&L of the trades closed in the window and unrealised P&L of the book open now, each with its
    size (USD) and size-weighted return (a fraction; NaN without size)."""

    closed_trades: int
    wins: int
    realised_usd: float
    realised_size_usd: float
    realised_pct: float
    open_positions: int
    unrealised_usd: float
    open_size_usd: float
    unrealised_pct: float


def window_pnl(closed: pd.DataFrame, positions: pd.DataFrame, start: pd.Timestamp,
               end: pd.Timestamp | None = None) -> WindowPnl:
    """``closed``: closed trades (``exit_time``, ``size_usd``, ``pnl_usd``, ``outcome``; as
    ``ledger.closed_trades``), those with exit time in [start, end] count; ``positions``: the open book marked now
    (``filled_usd``, ``unrealised_usd``; as ``ledger.open_positions`` with marks)."""
    c = closed[in_window(closed["exit_time"], start, end)]
    return WindowPnl(
        closed_trades=len(c), wins=int((c["outcome"] == "WIN").sum()),
        realised_usd=math.fsum(c["pnl_usd"]), realised_size_usd=math.fsum(c["size_usd"]),
        realised_pct=size_weighted_return(c["pnl_usd"], c["size_usd"]),
        open_positions=len(positions), unrealised_usd=math.fsum(positions["unrealised_usd"]),
        open_size_usd=math.fsum(positions["filled_usd"]),
        unrealised_pct=size_weighted_return(positions["unrealised_usd"], positions["filled_usd"]))


def exits_by_reason(closed: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Per exit reason of the trades closed in [start, end]: trades, wins, Σ P&L and Σ size (USD) and the
    size-weighted return; by trades descending, then reason."""
    c = closed[in_window(closed["exit_time"], start, end)]
    rows = [{"exit_reason": reason, "trades": len(g), "wins": int((g["outcome"] == "WIN").sum()),
             "pnl_usd": math.fsum(g["pnl_usd"]), "size_usd": math.fsum(g["size_usd"]),
             "pnl_pct": size_weighted_return(g["pnl_usd"], g["size_usd"])}
            for reason, g in c.groupby("exit_reason", sort=True)]
    out = pd.DataFrame(rows, columns=list(EXIT_COLUMNS))
    return out.sort_values(["trades", "exit_reason"], ascending=[False, True], kind="stable").reset_index(drop=True)


def entries_into(closed: pd.DataFrame, positions: pd.DataFrame, start: pd.Timestamp,
                 end: pd.Timestamp) -> pd.DataFrame:
    """The trade groups entered in [start, end] with their P&L now: realised (``state`` = the exit reason) for the
    closed ones, unrealised (``state`` = ``open``) for the open ones; ``pnl_pct`` = P&L / filled size. By entry
    time, then trade_group_id."""
    c = closed[in_window(closed["entry_time"], start, end)]
    p = positions[in_window(positions["entry_time"], start, end)]
    done = pd.DataFrame({"trade_group_id": c["trade_group_id"], "strategy": c["strategy"], "symbol": c["symbol"],
                         "entry_time": pd.to_datetime(c["entry_time"], utc=True), "size_usd": c["size_usd"],
                         "state": c["exit_reason"], "pnl_usd": c["pnl_usd"]})
    held = pd.DataFrame({"trade_group_id": p["trade_group_id"], "strategy": p["strategy"], "symbol": p["symbol"],
                         "entry_time": pd.to_datetime(p["entry_time"], utc=True), "size_usd": p["filled_usd"],
                         "state": "open", "pnl_usd": p["unrealised_usd"]})
    out = pd.concat([x for x in (done, held) if len(x)] or [done], ignore_index=True)
    out["pnl_pct"] = out["pnl_usd"].astype("float64") / out["size_usd"].astype("float64")
    out = out.sort_values(["entry_time", "trade_group_id"], kind="stable").reset_index(drop=True)
    return out[list(ENTRY_COLUMNS)]
