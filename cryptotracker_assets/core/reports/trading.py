"""The figures of the scheduled trading report (SPEC §12.2 "Trading report"): frames in, a :class:`TradingReport`
out. Pure python/pandas; never imports dagster.

- **Period** [``period_start``, ``period_end``) UTC. A trade is *closed in the period* when its exit time (the exit
  bar's open, SPEC §5.2) lies in it and *opened in the period* when its entry time E does. Fees and slippage are
  those of the period's closed trades (entry fees + exit fee, and the slippage of every fill of those groups): the
  costs inside the period's realised P&L.
- **Now** = ``as_of``: the ledger rows processed by then (``cycle_point`` ≤ as_of) and each open symbol's
  decision-bar close at as_of (its latest base bar opening before as_of) go through THE portfolio-state function
  (:func:`..ledger.portfolio_state`, SPEC §7.1); per-position figures come from :func:`..ledger.open_positions`
  with the same marks, so they add up to the portfolio's unrealised P&L.
- Gates are those in force at the last cycle point T ≤ as_of, each derived by the fold :mod:`..protection` defines
  (so a report for a past time is exact whatever the engine has processed since).
- Aggregate percentages are size-weighted (Σ P&L USD / Σ size USD, I-2); money is USD float64, never rounded here;
  rates are fractions (0.01 = 1 %), never percent, except inside the ``gates`` texts written for people.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..common import StrictEnum, hours, utc
from ..config import Config, Strategy
from ..ledger import Side, TradeOutcome, closed_trades, open_positions, portfolio_state, size_weighted_return
from ..protection import (OperatorAction, OperatorEvent, OperatorState, advance_operator, daily_loss_from_snapshots,
                          daily_loss_gate, loss_streak_from_ledger, loss_streak_gate)
from ..regime import Regime, vol24h_measure
from ..setups import STATUSES

TOP_OPEN = 5  # SPEC §12.2: "top 5 open by unrealised"
DAY = pd.Timedelta(days=1)


class ReportKind(StrictEnum):
    """What triggered the report: a schedule (SPEC §12.1), a collapsed catch-up, or an operator asking."""

    MORNING = "MORNING"
    MIDDAY = "MIDDAY"
    EVENING = "EVENING"
    WEEKLY = "WEEKLY"
    CATCH_UP = "CATCH-UP"
    ON_DEMAND = "ON-DEMAND"


class LevelKind(StrictEnum):
    TP = "TP"
    STOP = "STOP"


@dataclass(frozen=True)
class StrategyLine:
    """One strategy's closed trades of the period (win_rate None without a close; realised_pct size-weighted)."""

    strategy: str
    closed: int
    wins: int
    losses: int
    win_rate: float | None
    realised_usd: float
    realised_pct: float | None


@dataclass(frozen=True)
class TradeLine:
    """A closed trade: net P&L in USD and as a fraction of its filled size."""

    trade_group_id: str
    symbol: str
    strategy: str
    pnl_usd: float
    pnl_pct: float


@dataclass(frozen=True)
class OpenLine:
    """An open position now; ``to_tp_pct`` = take_profit_price / mark − 1 (None when the position has no TP)."""

    trade_group_id: str
    symbol: str
    strategy: str
    unrealised_usd: float
    unrealised_pct: float
    mark: float
    take_profit_price: float | None
    to_tp_pct: float | None


@dataclass(frozen=True)
class NearLevel:
    """An open position whose mark is within the threshold of a level: distance_pct = level_price / mark − 1."""

    trade_group_id: str
    symbol: str
    strategy: str
    level: str  # TP | STOP
    mark: float
    level_price: float
    distance_pct: float


@dataclass(frozen=True)
class ChampionLine:
    """The champion in force for a strategy (None: no usable champion) and its test composite (SPEC §11.2)."""

    strategy: str
    model_id: str | None
    composite: float | None


@dataclass(frozen=True)
class MarketView:
    """The market as stored: BTC base-bar closes (the latest bar opening before as_of, period_start and period_end;
    None when none is stored) and the latest ``market_regime`` row with T ≤ as_of (None when none)."""

    btc_price: float | None = None
    btc_period_start: float | None = None
    btc_period_end: float | None = None
    regime_row: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ReportInputs:
    """What the report reads, already cut at as_of by the caller (see :func:`trading_report`).

    ``ledger``: ledger rows with cycle_point ≤ as_of (typed as ``LEDGER_COLUMNS``). ``marks``: symbol → decision-bar
    close at as_of for every open symbol. ``board``: the scan rows of the latest cycle point ≤ as_of (``strategy``,
    ``status``). ``snapshots``: ``portfolio_snapshots`` rows of as_of's UTC day (``cycle_point``, ``equity``).
    ``operator_events``: ``operator_events`` rows (``event_time``, ``action``, ``who``, ``why``). ``stops``: the
    effective stop (SPEC §5.2: static stop or armed trail) of open groups whose engine state is known (see
    :func:`stops_in_force`); other groups use the static stop of the ledger.
    """

    ledger: pd.DataFrame
    marks: Mapping[str, float]
    market: MarketView = field(default_factory=MarketView)
    board: pd.DataFrame | None = None
    snapshots: pd.DataFrame | None = None
    operator_events: pd.DataFrame | None = None
    stops: Mapping[str, float] = field(default_factory=dict)
    champions: Sequence[ChampionLine] = ()


@dataclass(frozen=True)
class TradingReport:
    """The trading report's figures; :meth:`payload` is the JSON-ready dict the Slack rendering reads."""

    report: str
    period_start: pd.Timestamp
    period_end: pd.Timestamp
    as_of: pd.Timestamp
    catchup_of: tuple[str, ...]
    realised_usd: float
    realised_pct: float | None
    trades_opened: int
    trades_closed: int
    per_strategy: tuple[StrategyLine, ...]
    fees_usd: float
    slippage_usd: float
    best_trade: TradeLine | None
    worst_trade: TradeLine | None
    unrealised_usd: float
    unrealised_pct: float | None
    book_equity: float
    mark_equity: float
    cash: float
    open_positions: int
    max_open_total: int
    top_open: tuple[OpenLine, ...]
    near_level: tuple[NearLevel, ...]
    near_level_threshold: float
    btc_price: float | None
    btc_change_pct: float | None
    regime: str | None
    vol24h: float | None
    ready: Mapping[str, int]
    gates: tuple[str, ...]
    champions: tuple[ChampionLine, ...]

    def payload(self) -> dict[str, Any]:
        """Floats, ints, str, None, lists and dicts only: times as ISO-8601 UTC strings, NaN as None."""
        return {k: json_value(v) for k, v in asdict(self).items()}


def json_value(value: Any) -> Any:
    """``value`` as plain JSON data: timestamps ISO-8601 UTC, NaN/inf and NaT as None, numpy scalars as python."""
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return utc(value, "report time").isoformat()
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    return value


def _num(x: Any) -> float | None:
    """A finite float, or None for a missing / NaN / infinite value."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _at(t: pd.Timestamp) -> str:
    return f"{t:%Y-%m-%d %H:%M} UTC"


def _pct(x: float) -> str:
    return f"{x * 100:.2f}%"


# ---------------------------------------------------------------------------------------------------------------
# The period: closed and opened trades
# ---------------------------------------------------------------------------------------------------------------


def period_closed_trades(ledger: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """:func:`..ledger.closed_trades` with exit time in [start, end), plus ``fees_usd`` (entry fees + exit fee)
    and ``slippage_usd`` (Σ over every row of the group), in exit order."""
    closed = closed_trades(ledger)
    closed = closed.loc[((closed["exit_time"] >= start) & (closed["exit_time"] < end)).to_numpy()]
    slip = {t: math.fsum(g) for t, g in ledger.groupby("trade_group_id", sort=False)["slippage_usd"]}
    closed = closed.reset_index(drop=True)
    closed["fees_usd"] = [math.fsum(p) for p in zip(closed["entry_fees_usd"], closed["exit_fee_usd"])]
    closed["slippage_usd"] = np.array([slip[t] for t in closed["trade_group_id"]], dtype="float64")
    return closed


def trades_opened(ledger: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> int:
    """Trade groups whose entry time E lies in [start, end) (their level-0 BUY rows)."""
    entries = ledger.loc[((ledger["side"] == Side.BUY.value) & (ledger["level"] == 0)).to_numpy()]
    return int(((entries["entry_time"] >= start) & (entries["entry_time"] < end)).sum())


def strategy_lines(closed: pd.DataFrame) -> tuple[StrategyLine, ...]:
    """Per strategy (DCA, SWING, CHANNEL, each even without trades): closes, wins (net > 0), losses, win rate,
    realised USD and size-weighted %."""
    out = []
    for s in Strategy:
        mine = closed.loc[(closed["strategy"] == s.value).to_numpy()]
        n = len(mine)
        wins = int((mine["outcome"] == TradeOutcome.WIN.value).sum())
        out.append(StrategyLine(strategy=s.value, closed=n, wins=wins, losses=n - wins,
                                win_rate=wins / n if n else None, realised_usd=math.fsum(mine["pnl_usd"]),
                                realised_pct=_num(size_weighted_return(mine["pnl_usd"], mine["size_usd"]))))
    return tuple(out)


def _trade_line(row: Mapping[str, Any]) -> TradeLine:
    return TradeLine(trade_group_id=str(row["trade_group_id"]), symbol=str(row["symbol"]),
                     strategy=str(row["strategy"]), pnl_usd=float(row["pnl_usd"]), pnl_pct=float(row["pnl_pct"]))


def best_and_worst(closed: pd.DataFrame) -> tuple[TradeLine | None, TradeLine | None]:
    """The closed trades with the highest and the lowest net P&L USD (ties: the smaller trade_group_id)."""
    if closed.empty:
        return None, None
    best = closed.sort_values(["pnl_usd", "trade_group_id"], ascending=[False, True], kind="stable").iloc[0]
    worst = closed.sort_values(["pnl_usd", "trade_group_id"], ascending=[True, True], kind="stable").iloc[0]
    return _trade_line(best), _trade_line(worst)


# ---------------------------------------------------------------------------------------------------------------
# Now: open positions and their levels
# ---------------------------------------------------------------------------------------------------------------


def top_open(positions: pd.DataFrame, n: int = TOP_OPEN) -> tuple[OpenLine, ...]:
    """The ``n`` open positions with the highest unrealised USD (ties: trade_group_id), each with its distance to
    TP. ``positions``: :func:`..ledger.open_positions` with marks."""
    ranked = positions.sort_values(["unrealised_usd", "trade_group_id"], ascending=[False, True], kind="stable")
    out = []
    for r in ranked.head(n).to_dict("records"):
        tp = _num(r["take_profit_price"])
        out.append(OpenLine(trade_group_id=r["trade_group_id"], symbol=r["symbol"], strategy=r["strategy"],
                            unrealised_usd=float(r["unrealised_usd"]), unrealised_pct=float(r["unrealised_pct"]),
                            mark=float(r["mark"]), take_profit_price=tp,
                            to_tp_pct=None if tp is None else tp / float(r["mark"]) - 1.0))
    return tuple(out)


def near_levels(positions: pd.DataFrame, threshold: float,
                stops: Mapping[str, float] | None = None) -> tuple[NearLevel, ...]:
    """Open positions whose mark is within ``threshold`` (relative, a fraction) of their TP or stop:
    |level / mark − 1| ≤ threshold. The stop is ``stops[trade_group_id]`` when given (the effective stop in
    force), else the ledger's static stop. A position near both levels is listed twice. Ordered by |distance|,
    then trade_group_id, then level."""
    stops = stops or {}
    out = []
    for r in positions.to_dict("records"):
        mark = float(r["mark"])
        tgid = r["trade_group_id"]
        levels = ((LevelKind.TP, _num(r["take_profit_price"])),
                  (LevelKind.STOP, _num(stops.get(tgid, r["stop_price"]))))
        for kind, price in levels:
            if price is None:
                continue
            d = price / mark - 1.0
            if abs(d) <= threshold:
                out.append(NearLevel(trade_group_id=tgid, symbol=r["symbol"], strategy=r["strategy"],
                                     level=kind.value, mark=mark, level_price=price, distance_pct=d))
    return tuple(sorted(out, key=lambda x: (abs(x.distance_pct), x.trade_group_id, x.level)))


def stops_in_force(state: Any, ledger: pd.DataFrame) -> dict[str, float]:
    """The effective stop (max of the static stop and the armed trail, SPEC §5.2) of each open group held by an
    engine state (:class:`..engine.EngineState`), as of its cursor. A group with ledger rows after the cursor
    (a DCA fill moved its levels) is left out: its levels are those of the ledger. Disabled stops are left out."""
    if state is None or state.cursor is None:
        return {}
    later = set(ledger.loc[(ledger["cycle_point"] > state.cursor).to_numpy(), "trade_group_id"])
    out = {}
    for p in state.positions:
        eff = p.state.levels_in_force()[0]
        if p.trade_group_id not in later and math.isfinite(eff):
            out[p.trade_group_id] = float(eff)
    return out


def ready_counts(board: pd.DataFrame | None) -> dict[str, int]:
    """Per strategy the scan rows of the board with its best status (READY / BUY_ZONE, which every firing setup
    shows: SPEC §3.6 "ready counts")."""
    out = {}
    for s in Strategy:
        if board is None or board.empty:
            out[s.value] = 0
            continue
        mine = (board["strategy"] == s.value) & (board["status"] == STATUSES[s][0].value)
        out[s.value] = int(mine.sum())
    return out


# ---------------------------------------------------------------------------------------------------------------
# Gates in force
# ---------------------------------------------------------------------------------------------------------------


def _operator_events(events: pd.DataFrame | None) -> list[OperatorEvent]:
    if events is None or events.empty:
        return []
    pr = {a.value for a in OperatorAction}
    rows = events.loc[events["action"].isin(pr).to_numpy()]
    return [OperatorEvent(time=utc(r["event_time"], "operator event time"), action=OperatorAction.parse(r["action"]),
                          who=str(r["who"]), why=str(r["why"])) for r in rows.to_dict("records")]


def _volatility_gate(s: Strategy, row: Mapping[str, Any], cfg: Config) -> str | None:
    enabled = row.get(f"{s.key}_enabled")
    if enabled is None or pd.isna(enabled) or bool(enabled):
        return None
    rule = getattr(cfg.protection.volatility_disable, s.key)
    vol = _num(row.get(f"btc_{vol24h_measure(cfg)}"))
    since = row.get(f"{s.key}_disabled_at")
    text = f"{s.value} disabled by volatility"
    if vol is not None:
        text += f" (vol24h {_pct(vol)}, disable at {_pct(rule.disable_at)})"
    back = (f"vol24h ≤ {_pct(rule.reenable_at)}" if rule.reenable_at is not None
            else f"vol24h < {_pct(rule.disable_at)}")
    if since is not None and not pd.isna(since):
        since = utc(since, "disabled_at")
        earliest = since + hours(cfg.protection.volatility_disable.min_disabled_h)
        return f"{text} since {_at(since)}; re-enables from {_at(earliest)} once {back}"
    return f"{text}; re-enables once {back}"


def active_gates(ledger: pd.DataFrame, cfg: Config, as_of: pd.Timestamp, *,
                 regime_row: Mapping[str, Any] | None = None, snapshots: pd.DataFrame | None = None,
                 operator_events: pd.DataFrame | None = None) -> tuple[str, ...]:
    """The entry gates in force at T, the last cycle point ≤ ``as_of``, as texts for people, in the order of
    SPEC §3.4 step 4: operator pause, PANIC (and UNKNOWN, which blocks entries as ``stale_data``), daily loss
    gate, loss-streak pause, strategies disabled (config or §8.2 volatility).

    Operator events act from the first cycle point after their stamp; the loss streak folds the ledger's closes
    (cycle_point ≤ T); the daily loss gate folds the day's ``portfolio_snapshots`` (step-4 mark equity, E₀ at
    00:00 UTC); PANIC and the volatility states come from ``regime_row``."""
    t = utc(as_of, "as_of").floor(f"{cfg.engine.cycle_min}min")
    out = []
    op = advance_operator(OperatorState(), t, _operator_events(operator_events))
    if op.paused:
        since = f" since {_at(op.since)}" if op.since is not None else ""
        out.append(f"operator pause by {op.who}: {op.why}{since}")
    regime = None if regime_row is None else Regime.parse(regime_row["regime"])
    if regime is Regime.PANIC:
        out.append("PANIC: new entries halted")
    elif regime is Regime.UNKNOWN:
        out.append("regime UNKNOWN (BTC data stale or missing): no entries")
    if snapshots is not None and len(snapshots):
        cp = pd.DatetimeIndex(snapshots["cycle_point"])
        day = snapshots.loc[(cp >= t.floor("D")) & (cp <= t)]
        dl = daily_loss_from_snapshots(day, cfg)
        if daily_loss_gate(dl, t):
            eq = float(day.sort_values("cycle_point")["equity"].iloc[-1])
            out.append(f"daily loss gate since {_at(dl.latched_at)} (day P&L {eq - dl.e0:+.2f} USD, "
                       f"{(eq - dl.e0) / dl.e0 * 100:+.2f}% of E₀ {dl.e0:.2f} USD); resumes {_at(dl.day + DAY)}")
    ls = loss_streak_from_ledger(ledger.loc[(ledger["cycle_point"] <= t).to_numpy()], t, cfg)
    if loss_streak_gate(ls, t):
        out.append(f"loss-streak pause ({cfg.limits.loss_streak} losses in a row, since {_at(ls.paused_at)}); "
                   f"resumes {_at(ls.paused_until)}")
    for s in Strategy:
        if not cfg.strategies.of(s).enabled:
            out.append(f"{s.value} disabled in the config (strategies.{s.key}.enabled)")
        elif regime_row is not None and (g := _volatility_gate(s, regime_row, cfg)) is not None:
            out.append(g)
    return tuple(out)


# ---------------------------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------------------------


def champion_lines(champions: Iterable[ChampionLine]) -> tuple[ChampionLine, ...]:
    """One line per strategy in DCA, SWING, CHANNEL order (a strategy not given has no champion)."""
    given = {Strategy.parse(c.strategy): c for c in champions}
    return tuple(given.get(s, ChampionLine(s.value, None, None)) for s in Strategy)


def trading_report(inputs: ReportInputs, cfg: Config, *, kind: ReportKind | str, period_start: Any,
                   period_end: Any, as_of: Any = None, catchup_of: Iterable[str] = ()) -> TradingReport:
    """The trading report of [period_start, period_end) as of ``as_of`` (default: period_end); see the module.

    ``inputs.ledger`` must hold only rows with cycle_point ≤ as_of (a later row raises: the report would see the
    future) and ``inputs.marks`` a close for every symbol open then (a missing one raises)."""
    kind = ReportKind.parse(kind)
    start, end = utc(period_start, "period_start"), utc(period_end, "period_end")
    now = end if as_of is None else utc(as_of, "as_of")
    if not start < end:
        raise ValueError(f"report period [{start}, {end}) is empty")
    ledger = inputs.ledger
    if len(ledger) and (ledger["cycle_point"] > now).any():
        raise ValueError(f"the report as of {now} was given ledger rows processed after it")
    closed = period_closed_trades(ledger, start, end)
    best, worst = best_and_worst(closed)
    state = portfolio_state(ledger, (), inputs.marks, cfg)  # THE portfolio state (SPEC §7.1, I-4)
    positions = open_positions(ledger, inputs.marks)
    filled = math.fsum(positions["filled_usd"])
    m = inputs.market
    row = m.regime_row
    change = None
    if m.btc_period_start is not None and m.btc_period_end is not None:
        change = m.btc_period_end / m.btc_period_start - 1.0
    return TradingReport(
        report=kind.value, period_start=start, period_end=end, as_of=now, catchup_of=tuple(str(c) for c in catchup_of),
        realised_usd=math.fsum(closed["pnl_usd"]),
        realised_pct=_num(size_weighted_return(closed["pnl_usd"], closed["size_usd"])),
        trades_opened=trades_opened(ledger, start, end), trades_closed=len(closed),
        per_strategy=strategy_lines(closed),
        fees_usd=math.fsum(closed["fees_usd"]), slippage_usd=math.fsum(closed["slippage_usd"]),
        best_trade=best, worst_trade=worst,
        unrealised_usd=state.unrealised, unrealised_pct=state.unrealised / filled if filled else None,
        book_equity=state.book_equity, mark_equity=state.mark_equity, cash=state.cash,
        open_positions=state.open_positions, max_open_total=int(cfg.limits.max_open_total),
        top_open=top_open(positions),
        near_level=near_levels(positions, cfg.notifications.reports.near_level, inputs.stops),
        near_level_threshold=float(cfg.notifications.reports.near_level),
        btc_price=_num(m.btc_price), btc_change_pct=_num(change),
        regime=None if row is None else Regime.parse(row["regime"]).value,
        vol24h=None if row is None else _num(row.get(f"btc_{vol24h_measure(cfg)}")),
        ready=ready_counts(inputs.board),
        gates=active_gates(ledger, cfg, now, regime_row=row, snapshots=inputs.snapshots,
                           operator_events=inputs.operator_events),
        champions=champion_lines(inputs.champions),
    )
