"""``cryptotracker analyze`` and ``performance --since`` over the warehouse (no Dagster): the window on the data's
clock, its reads (bars, regime rows, the ledger marked at the latest closes) and :mod:`..core.analysis` on them.

The window ends at the close of the newest stored base bar, never at the wall clock: a warehouse that stopped
updating is analysed up to its last bar (SPEC §0.2: a bar named by its open time covers [t, t + length))."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..core.analysis import (Breadth, PriceMove, WindowPnl, breadth, entries_into, exits_by_reason,
                             hourly_volatility, price_move, price_path, regime_timeline, since_time, symbol_changes,
                             window_pnl)
from ..core.config import Config
from ..core.ledger import closed_trades, open_positions
from ..core.regime import vol24h_measure
from ..storage.warehouse import Warehouse, ohlc_table
from .engine_runner import REGIME_TABLE
from .operator import latest_marks, read_ledger

# The exclusive end just after an inclusive one ([start, end] → [start, end + 1 µs)): stored times are microseconds.
JUST_AFTER = pd.Timedelta(microseconds=1)


class AnalysisError(ValueError):
    """Nothing to analyse (no stored base bar), or a window the data cannot give (names what is missing)."""


@dataclass(frozen=True)
class Window:
    """[start, end] with ``end`` = the close of the newest stored base bar."""

    start: pd.Timestamp
    end: pd.Timestamp

    @property
    def span(self) -> pd.Timedelta:
        return self.end - self.start


def bar_length(cfg: Config) -> pd.Timedelta:
    return pd.Timedelta(minutes=cfg.engine.base_timeframe.minutes)


def data_end(wh: Warehouse, cfg: Config) -> pd.Timestamp:
    """The close time of the newest stored base bar (any symbol): the end of every window."""
    _, newest = wh.time_bounds(ohlc_table(cfg.engine.base_timeframe), "timestamp")
    if newest is None:
        raise AnalysisError(f"no stored {cfg.engine.base_timeframe.value} bars in {wh.path} (run `make run`)")
    return newest + bar_length(cfg)


def window(wh: Warehouse, cfg: Config, span: pd.Timedelta) -> Window:
    end = data_end(wh, cfg)
    return Window(end - span, end)


@dataclass(frozen=True)
class Book:
    """The ledger's closed trades and its open positions marked at each symbol's latest stored close."""

    closed: pd.DataFrame
    positions: pd.DataFrame


def read_book(wh: Warehouse, cfg: Config) -> Book:
    ledger = read_ledger(wh)
    held = sorted(set(open_positions(ledger)["symbol"]))
    marks, _ = latest_marks(wh, cfg, held)
    missing = [s for s in held if s not in marks]
    if missing:
        raise AnalysisError(f"no stored bars to mark open positions on {missing}")
    return Book(closed=closed_trades(ledger), positions=open_positions(ledger, marks))


@dataclass(frozen=True)
class Analysis:
    """Everything ``cryptotracker analyze`` prints for one window (see :mod:`..core.analysis` for each part).

    ``volatility_1h``: std of BTC's 1h log returns over the window, annualised (√(24 × 365)); ``vol24h``: the
    regime table's ``btc_vol_24h`` at the window's last cycle point ((high − low) / first open over 24 h, SPEC
    §8.1), None without regime rows."""

    window: Window
    market_symbol: str
    btc: PriceMove | None
    volatility_1h: float
    vol24h: float | None
    changes: pd.DataFrame
    breadth: Breadth
    timeline: pd.DataFrame
    pnl: WindowPnl
    exits: pd.DataFrame
    entries: pd.DataFrame
    bars: int


def window_bars(wh: Warehouse, cfg: Config, w: Window) -> pd.DataFrame:
    """The base bars with open time in [start, end) (every symbol), by symbol then time."""
    return wh.read_bars(cfg.engine.base_timeframe, w.start, w.end)


def analyze(wh: Warehouse, cfg: Config, span: pd.Timedelta) -> Analysis:
    w = window(wh, cfg, span)
    bars = window_bars(wh, cfg, w)
    sym = cfg.universe.market_symbol
    move = price_move(bars, bar_length(cfg), sym)
    path = price_path(bars[bars["symbol"] == sym], bar_length(cfg))
    vol_col = f"btc_{vol24h_measure(cfg)}"
    regimes = wh.read_slice(REGIME_TABLE, "timestamp", w.start, w.end + JUST_AFTER, columns=("timestamp", "regime", vol_col))
    if regimes is None:
        regimes = pd.DataFrame({"timestamp": pd.Series([], dtype="datetime64[ns, UTC]"),
                                "regime": pd.Series([], dtype=object)})
    vol24h = None
    if vol_col in regimes.columns and regimes[vol_col].notna().any():
        vol24h = float(regimes[vol_col].dropna().iloc[-1])
    book = read_book(wh, cfg)
    changes = symbol_changes(bars)
    return Analysis(window=w, market_symbol=sym, btc=move, volatility_1h=hourly_volatility(path), vol24h=vol24h,
                    changes=changes, breadth=breadth(changes), timeline=regime_timeline(regimes),
                    pnl=window_pnl(book.closed, book.positions, w.start, w.end),
                    exits=exits_by_reason(book.closed, w.start, w.end),
                    entries=entries_into(book.closed, book.positions, w.start, w.end), bars=len(bars))


def performance_since(wh: Warehouse, cfg: Config, since: pd.Timedelta | pd.Timestamp
                      ) -> tuple[pd.Timestamp, WindowPnl]:
    """(the moment, the P&L): realised of the trades closed at or after it, unrealised of the book now. A span
    counts back from the close of the newest stored base bar."""
    t = since_time(since, data_end(wh, cfg) if isinstance(since, pd.Timedelta) else None)
    book = read_book(wh, cfg)
    return t, window_pnl(book.closed, book.positions, t)
