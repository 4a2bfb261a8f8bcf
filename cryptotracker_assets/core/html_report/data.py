"""What the HTML report shows (:class:`ReportData`), the derivations it needs and the number formats for people
(SPEC §0.1, §7.1, §7.3, §12.2). Pure pandas/numpy; never imports dagster.

Money is USD float64, rounded only by the ``fmt_*`` functions; returns and drawdowns are fractions (a ``%`` sign
appears only in formatted text); aggregate returns are size-weighted (Σ P&L USD / Σ size USD). Times are UTC.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..common import UTC_NS, utc
from ..config import Config, Strategy
from ..exits import ExitReason
from ..ledger import ClosedTrade, TradeOutcome, size_weighted_return
from ..notify.numbers import fmt_price as price_text
from ..protection import (DailyLossState, LossStreakState, OperatorEvent, OperatorState, advance_daily_loss,
                          advance_loss_streak, advance_operator, daily_loss_gate, loss_streak_gate)

PRICE_COLUMNS = ("timestamp", "close")
FILL_COLUMNS = ("time", "side", "price", "trade_group_id", "strategy")
REGIME_COLUMNS = ("timestamp", "regime", "btc_close", "btc_vol_24h", "dca_enabled", "swing_enabled",
                  "channel_enabled")
GATE_COLUMNS = ("cycle_point", "operator_pause", "daily_loss_gate", "loss_streak_pause")
BREAKDOWN_COLUMNS = ("key", "trades", "wins", "win_rate", "pnl_usd", "size_usd", "return")
NO_VALUE = "–"


def empty_frame(columns: Iterable[str], times: Iterable[str] = ()) -> pd.DataFrame:
    """A frame without rows with ``columns`` (``times``: tz-aware UTC columns)."""
    times = set(times)
    return pd.DataFrame({c: pd.Series([], dtype=UTC_NS if c in times else object) for c in columns})


@dataclass(frozen=True)
class ModelCard:
    """A strategy's champion as the registry, ``model_metrics`` and the model store know it. ``calibration``:
    bin, rows, mean_probability, win_rate (test split); ``importance``: feature, gain (largest first); ``problem``:
    why part of the card is missing (store not given, version unreadable)."""

    strategy: str
    model_version: str | None
    swapped_at: pd.Timestamp | None = None
    who: str | None = None
    why: str | None = None
    composite: float | None = None
    metrics: pd.DataFrame = field(default_factory=pd.DataFrame)
    calibration: pd.DataFrame = field(default_factory=pd.DataFrame)
    importance: pd.DataFrame = field(default_factory=pd.DataFrame)
    problem: str | None = None


@dataclass(frozen=True)
class ReportData:
    """Everything one report shows: header scalars (USD; returns as fractions) and one frame per section."""

    generated_at: pd.Timestamp
    as_of: pd.Timestamp | None  # newest of the engine cursor and the bars that mark the open positions
    engine_cursor: pd.Timestamp | None
    warehouse: str
    cycle: pd.Timedelta  # engine.cycle_min: how long the state of a cycle point holds
    config_version: int
    engine_config_version: int | None
    initial_usd: float
    cash_usd: float
    book_equity_usd: float
    mark_equity_usd: float  # NaN when an open position has no mark
    realised_usd: float
    realised_pct: float  # size-weighted over the closed trades
    unrealised_usd: float
    unrealised_pct: float  # size-weighted over the open positions' filled size
    max_open_total: int
    snapshots: pd.DataFrame  # portfolio_snapshots (ledger.SNAPSHOT_COLUMNS)
    closed: pd.DataFrame  # ledger.CLOSED_TRADE_COLUMNS, exit order
    positions: pd.DataFrame  # ledger.OPEN_POSITION_COLUMNS (+ MARK_COLUMNS when every position has a mark)
    symbol: str  # the symbol of the price chart
    prices: pd.DataFrame  # PRICE_COLUMNS of ``symbol``
    price_timeframe: str | None
    fills: pd.DataFrame  # FILL_COLUMNS: the ledger's fills of ``symbol``
    board: pd.DataFrame  # setups.BOARD_COLUMNS of the latest scan
    board_source: str | None  # the table the board comes from
    regime: pd.DataFrame  # REGIME_COLUMNS, one row per cycle point
    gates: pd.DataFrame  # GATE_COLUMNS, one row per snapshot cycle point
    operator: str  # the operator pause as the engine applied it, for people
    limiter: pd.DataFrame  # symbols in cooldown or banned at the engine cursor
    leaderboard: pd.DataFrame  # shadows.LEADERBOARD_COLUMNS of one window
    leaderboard_at: pd.Timestamp | None
    leaderboard_window_h: float | None
    models: tuple[ModelCard, ...]
    notes: tuple[str, ...] = ()  # what could not be read, for people

    @property
    def max_drawdown(self) -> float:
        """Largest fall of mark equity from its running peak, a positive fraction (0 without a fall, NaN without
        snapshots)."""
        return max_drawdown(self.snapshots["equity"]) if len(self.snapshots) else math.nan

    def summary(self) -> dict[str, Any]:
        """A few scalars for asset metadata (USD; ``max_drawdown_pct`` a fraction)."""
        return {"as_of": None if self.as_of is None else self.as_of.isoformat(),
                "realised_usd": float(self.realised_usd), "unrealised_usd": float(self.unrealised_usd),
                "mark_equity": float(self.mark_equity_usd), "open_positions": int(len(self.positions)),
                "closed_trades": int(len(self.closed)), "max_drawdown_pct": float(self.max_drawdown),
                "symbol": self.symbol}


# --- formats for people (SPEC §0.1, §12.2) ----------------------------------------------------------------------


def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, (float, np.floating)) and not math.isfinite(x))


def fmt_price(x: Any) -> str:
    """A price with 6 significant digits, never in exponent form, all six kept for table columns (68,595.3;
    1.00000; 0.0000123457): the notifications' formatter."""
    return NO_VALUE if _missing(x) else price_text(x, trailing_zeros=True)


def fmt_usd(x: Any, signed: bool = False) -> str:
    """USD with 2 decimals ($10,000.00); ``signed``: always a sign (+$1.25, -$3.10) for P&L."""
    if _missing(x):
        return NO_VALUE
    x = float(x)
    sign = "-" if x < 0 and round(x, 2) != 0 else ("+" if signed else "")
    return f"{sign}${abs(x):,.2f}"


def fmt_pct(x: Any, signed: bool = True) -> str:
    """A fraction as a percentage with 2 decimals (0.0125 → +1.25 %)."""
    if _missing(x):
        return NO_VALUE
    return f"{float(x) * 100:{'+' if signed else ''}.2f} %"


def fmt_time(t: Any) -> str:
    """A UTC time as ``YYYY-MM-DD HH:MM UTC``."""
    if t is None or pd.isna(t):
        return NO_VALUE
    return f"{utc(t, 'time'):%Y-%m-%d %H:%M} UTC"


# --- derivations --------------------------------------------------------------------------------------------------


def drawdown(equity: Sequence[float] | np.ndarray | pd.Series) -> np.ndarray:
    """equity / running peak − 1 at every point (fractions ≤ 0; the first point is its own peak)."""
    e = np.asarray(equity, dtype="float64")
    if not len(e):
        return e
    return e / np.maximum.accumulate(e) - 1.0


def max_drawdown(equity: Sequence[float] | np.ndarray | pd.Series) -> float:
    """The largest fall from a running peak as a positive fraction (0 when equity never fell)."""
    d = drawdown(equity)
    return float(-d.min()) if len(d) else math.nan


def pnl_breakdown(closed: pd.DataFrame, by: str, order: Sequence[str] = ()) -> pd.DataFrame:
    """Closed trades grouped by ``by`` (``strategy``, ``exit_reason``): count, wins, win rate, Σ P&L and Σ size
    (USD, exact sums) and the size-weighted return Σ P&L / Σ size. Keys in ``order`` first (those present), then
    the rest by name. Columns :data:`BREAKDOWN_COLUMNS`."""
    if closed.empty:
        return empty_frame(BREAKDOWN_COLUMNS)
    rank = {k: i for i, k in enumerate(order)}
    keys = sorted(set(closed[by]), key=lambda k: (rank.get(k, len(rank)), str(k)))
    rows = []
    for k in keys:
        g = closed.loc[closed[by] == k]
        pnl = g["pnl_usd"].astype("float64").tolist()
        size = g["size_usd"].astype("float64").tolist()
        wins = int((g["outcome"] == TradeOutcome.WIN.value).sum())
        rows.append({"key": k, "trades": len(g), "wins": wins, "win_rate": wins / len(g), "pnl_usd": math.fsum(pnl),
                     "size_usd": math.fsum(size), "return": size_weighted_return(pnl, size)})
    return pd.DataFrame(rows, columns=list(BREAKDOWN_COLUMNS))


STRATEGY_ORDER: tuple[str, ...] = tuple(s.value for s in Strategy)
EXIT_REASON_ORDER: tuple[str, ...] = tuple(r.value for r in ExitReason)


def default_symbol(closed: pd.DataFrame, fallback: str) -> str:
    """The symbol with the most closed trades (ties: alphabetical), else ``fallback``."""
    if closed.empty:
        return fallback
    counts = closed["symbol"].value_counts()
    top = counts.max()
    return sorted(s for s, n in counts.items() if n == top)[0]


def gate_timeline(snapshots: pd.DataFrame, closes: Sequence[ClosedTrade], events: Sequence[OperatorEvent],
                  cfg: Config, later: Sequence[tuple[pd.Timestamp, Config]] = ()) -> pd.DataFrame:
    """The operator pause, the daily loss gate and the loss-streak pause at every snapshot cycle point (SPEC §7.3),
    refolded with the core's protection rules from the snapshots' mark equity, the closes (by the cycle point
    that processed them) and the operator pause / resume events, under ``cfg`` — and from each ``(T, config)`` of
    ``later`` on, under that config (the versions the engine's ticks ran with). Columns :data:`GATE_COLUMNS`."""
    if snapshots.empty:
        return empty_frame(GATE_COLUMNS, times=("cycle_point",))
    snaps = snapshots.sort_values("cycle_point", kind="stable")
    ordered = sorted(closes, key=lambda c: utc(c.cycle_point, "close cycle point"))
    changes = sorted(((utc(t, "config change"), c) for t, c in later), key=lambda x: x[0])
    streak, daily, operator = LossStreakState(), DailyLossState(), OperatorState()
    rows, i, k = [], 0, 0
    for t, equity in zip(snaps["cycle_point"], snaps["equity"]):
        t = utc(t, "cycle point")
        while k < len(changes) and changes[k][0] <= t:
            cfg = changes[k][1]
            k += 1
        due = []
        while i < len(ordered) and utc(ordered[i].cycle_point, "close cycle point") <= t:
            due.append(ordered[i])  # only the new closes: the fold gives the same state (core.protection)
            i += 1
        streak = advance_loss_streak(streak, t, due, cfg)
        daily = advance_daily_loss(daily, t, float(equity), cfg)
        operator = advance_operator(operator, t, events)
        rows.append((t, bool(operator.paused), daily_loss_gate(daily, t), loss_streak_gate(streak, t)))
    out = pd.DataFrame(rows, columns=list(GATE_COLUMNS))
    out["cycle_point"] = pd.to_datetime(out["cycle_point"], utc=True).astype(UTC_NS)
    return out


def enabled_label(flag: Any) -> str:
    """ENABLED / DISABLED for a stored volatility-disable flag (UNKNOWN when missing)."""
    if flag is None or (not isinstance(flag, (bool, np.bool_)) and pd.isna(flag)):
        return "UNKNOWN"
    return "ENABLED" if bool(flag) else "DISABLED"


def on_off(flags: Iterable[Any]) -> list[str]:
    return ["ON" if bool(f) else "OFF" for f in flags]


def active_limits(limiter: pd.DataFrame, at: pd.Timestamp | None) -> pd.DataFrame:
    """The limiter rows still in cooldown or banned at ``at`` (all rows when ``at`` is None)."""
    if limiter.empty or at is None:
        return limiter
    cool = pd.to_datetime(limiter["cooldown_until"], utc=True)
    ban = pd.to_datetime(limiter["banned_until"], utc=True)
    keep = (cool > at).fillna(False) | (ban > at).fillna(False)
    return limiter.loc[keep.to_numpy(dtype=bool)].reset_index(drop=True)
