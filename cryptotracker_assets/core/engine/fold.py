"""The paper-trading engine: a deterministic fold over cycle points (SPEC §0.5, §3.1); never imports dagster.

``run_engine(state, inputs, cycle_points) -> (state, outputs)`` processes consecutive cycle points T (UTC multiples of
``engine.cycle_min``) after ``state.cursor``. At each T, exactly in the order of SPEC §3.1:

1. pending entry orders fill at the open of their entry bar — the first base bar with open time in [T_d, T_d +
   ``engine.entry_timeout_min``) of the order's decision point T_d, once visible (open < T) — or expire;
2. exits and DCA grid fills (the stepper of :mod:`..exits`) on each symbol's bars with open time < T newer than its
   last processed bar, in time order (a bar older than the last processed one is never used); then no-data closes
   (T ≥ E + max hold + ``exits.no_data_grace_min`` → ``time_exit`` at the last known close, ``no_data = true``);
3. the shared market state of T (the ``market_regime`` row: regime, size multiplier, volatility-disable flags, best
   strategy, BTC vol24h); manual closes (operator events stamped in [previous T, T)), then strategy-shift closes
   (§9.3), both at the decision-bar close (a stale symbol waits for a fresh decision bar);
4. the portfolio state (:func:`..ledger.book_state` on the open positions and the realised P&L, kept incrementally;
   with ``verify=True`` also rebuilt from the ledger by :func:`..ledger.portfolio_state` and compared) and the
   protection fold
   (:func:`..protection.advance_protection`: limiter, loss streak, daily loss gate on mark_equity, operator pause);
   the ``portfolio_snapshots`` row is this step-4 state;
5. the scan rows of T (steps 1–3 from :func:`..setups.scan_cycle_points`, or the caller's precomputed preview rows):
   each candidate goes through the step-4 gates, §9.2 ordering (:mod:`..prioritisation`) and the §7.2 execution
   checks in priority order (:func:`..ledger.admit`; each admitted order updates the running state); admitted rows
   become entry orders (size G = ``portfolio.position_size_usd`` × the regime's size multiplier; exit parameters
   frozen now by :func:`..exits.opening_rule`, the stop widened per §8.4 from T's vol24h and regime);
6. the resolved scan rows (one per active symbol × strategy), the snapshot and the notifications are output; after
   every T the open + pending counts are checked against ``limits.max_open_*`` and a violation raises
   :class:`EngineInvariantError`.

Inactive symbols are never scanned; their open positions keep being exited. Operator events (pause / resume and
:class:`ManualClose`) stamped at e act from the first cycle point T > e. Money in USD, rates fractions, times UTC.

Determinism: the state after T depends only on the state before T and the stored inputs, so one cycle point per
call (the state round-tripped through :meth:`EngineState.to_json`) and all cycle points in one call give identical
ledger rows, scan rows, snapshots and final state. The caller persists the new ledger rows, scan rows, snapshots and
the state JSON in one transaction and passes the ledger back in on the next call.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from ..common import NS_PER_MIN, ExactSum, ceil_ns, from_ns, utc, utc_index
from ..config import Config, Strategy
from ..exits import ExitReason, PositionState, close_position, opening_rule, pass_quietly, quiet_through, step
from ..ledger import (
    LEDGER_COLUMNS,
    SNAPSHOT_COLUMNS,
    ClosedTrade,
    OpenCounts,
    OpenGroup,
    PendingOrder,
    Side,
    TradeMeta,
    TradeOutcome,
    admit,
    book_state,
    grid_shape,
    ledger_frame,
    limit_violations,
    open_counts,
    portfolio_state,
    snapshot_row,
    step_rows,
    trade_group_id,
)
from ..prioritisation import Candidate, advance_shift, hours_between, prioritise, shift_applies, shift_exit_reason
from ..protection import OperatorAction, OperatorEvent, advance_protection, entry_gate
from ..regime import Regime, panic_triggers
from ..setups import RULE_SOURCE, DecisionReason, confidence_source, resolve_candidates
from ..shadows import ShadowBook, decision_frame, exit_frame
from ..universe import Universe
from .bars import BarCursors, BarStore
from .errors import EngineInputError, EngineInvariantError
from .market import Market, MarketRows
from .inputs import EngineInputs, cached_empty_ledger, run_scan
from .state import EngineState, EntryOrder, LastBar, ManualClose, OpenPosition

_INT64_MIN = np.iinfo("int64").min


NOTIFICATION_KINDS = ("opened", "closed", "entry_expired", "no_data_close", "panic", "strategy_disabled",
                      "strategy_enabled", "daily_loss_gate", "loss_streak_pause", "manual_close_ignored")


@dataclass(frozen=True, eq=False)
class EngineOutputs:
    """What a run produced: ``ledger_rows`` (:data:`..ledger.LEDGER_COLUMNS`, T-major, then bar time,
    trade_group_id, BUY before SELL, level), ``scan_rows`` (``ScanHistorySchema``: every row decided,
    ``list_type`` set on rows that reached §9.2 ordering), ``snapshots`` (:data:`..ledger.SNAPSHOT_COLUMNS`, one per
    T), ``notifications`` (plain dicts with ``kind`` of :data:`NOTIFICATION_KINDS`, ``channel``, ``cycle_point``),
    the processed ``cycle_points``, the bar ``watermark`` (greatest ``ingested_at`` read; None without bars), the
    ``config_version`` and the shadow rows (:mod:`..shadows.book`: ``shadow_decisions`` written at their cycle
    point, ``shadow_exits`` at the cycle point a shadow closed or its order expired)."""

    ledger_rows: pd.DataFrame
    scan_rows: pd.DataFrame
    snapshots: pd.DataFrame
    notifications: tuple[dict[str, Any], ...]
    cycle_points: pd.DatetimeIndex
    watermark: pd.Timestamp | None
    config_version: int
    shadow_decisions: pd.DataFrame = field(default_factory=lambda: decision_frame([]))
    shadow_exits: pd.DataFrame = field(default_factory=lambda: exit_frame([]))


def next_cycle_points(state: EngineState, cfg: Config, *, end: Any, start: Any = None) -> pd.DatetimeIndex:
    """The unprocessed cycle points T < ``end``: from the one after ``state.cursor`` (or from ``start`` for a fresh
    state, rounded up to a cycle point)."""
    step_ns = cfg.engine.cycle_min * NS_PER_MIN
    if state.cursor is not None:
        a = state.cursor.value + step_ns
    elif start is not None:
        a = ceil_ns(utc(start, "start", EngineInputError).value, step_ns)
    else:
        raise EngineInputError("a fresh engine state needs a start")
    b = utc(end, "end", EngineInputError).value
    return utc_index(np.arange(a, b, step_ns, dtype="int64"))


# ---------------------------------------------------------------------------------------------------------------
# One run
# ---------------------------------------------------------------------------------------------------------------


def _copy_position(st: PositionState) -> PositionState:
    return replace(st, fills=list(st.fills))


def _row_sort_key(r: Mapping[str, Any]) -> tuple:
    return (r["bar_time"].value, r["trade_group_id"], 0 if r["side"] == Side.BUY.value else 1, r["level"])


class _Run:
    """Working copies of the state while a run folds over its cycle points."""

    def __init__(self, state: EngineState, inputs: EngineInputs, points: pd.DatetimeIndex,
                 verify: bool = False) -> None:
        cfg = inputs.cfg
        self.verify = verify
        self.cfg = cfg
        self.uni = Universe.from_config(cfg)
        self.bars = inputs.bars if isinstance(inputs.bars, BarStore) else BarStore.from_frame(inputs.bars)
        self.market = MarketRows(inputs.market_regime, cfg)
        self.bar_minutes = cfg.engine.base_timeframe.minutes
        self.timeout_ns = cfg.engine.entry_timeout_min * NS_PER_MIN
        self.lag_ns = cfg.engine.max_bar_lag_min * NS_PER_MIN
        self.grace_ns = cfg.exits.no_data_grace_min * NS_PER_MIN
        self.cursor = state.cursor
        self.positions: dict[str, tuple[TradeMeta, PositionState]] = {
            p.meta.trade_group_id: (p.meta, _copy_position(p.state)) for p in state.positions
        }
        self.pending: list[EntryOrder] = list(state.pending_orders)
        self.manual: list[ManualClose] = list(state.manual_pending)
        self.last_bars: dict[str, LastBar] = dict(state.last_bars)  # as of the run's start; see _last_bar
        # Universe symbols with bars, plus any symbol holding a position (a config may have dropped it since).
        held = {p.meta.symbol for p in state.positions} | {o.symbol for o in state.pending_orders}
        self.cursors = BarCursors(
            self.bars, sorted(s for s in self.bars.spans if s in self.uni.tiers or s in held),
            {s: lb.time.value for s, lb in self.last_bars.items()}, points.asi8)
        self._bar_cache: dict[str, tuple[int, LastBar]] = {}
        self._groups: dict[str, OpenGroup] = {}
        self.protection = state.protection
        self.shift = state.shift
        self.watermark = state.watermark
        self.op_events = [e for e in inputs.events if isinstance(e, OperatorEvent)]
        self.manual_events = sorted(
            ((utc(e.time, "manual close time", EngineInputError).value, i, e) for i, e in enumerate(inputs.events)
             if isinstance(e, ManualClose)), key=lambda x: (x[0], x[1]))
        bad = [e for e in inputs.events if not isinstance(e, (OperatorEvent, ManualClose))]
        if bad:
            raise EngineInputError(f"unknown operator event {bad[0]!r}")
        for e in self.op_events:
            OperatorAction.parse(e.action)
        self.work = self._initial_work(inputs.ledger)
        sells = inputs.ledger["side"].to_numpy(dtype=object) == Side.SELL.value
        self.realised = ExactSum(inputs.ledger["pnl_usd"].to_numpy(dtype="float64")[sells])
        self.ledger_rows_out: list[dict[str, Any]] = []
        self.snapshots: list[dict[str, Any]] = []
        self.notes: list[dict[str, Any]] = []
        self.reasons: dict[int, DecisionReason] = {}
        self.list_types: dict[int, str] = {}
        scan = run_scan(inputs, self.bars, self.uni, points)
        self.scan, self.scan_bounds, self.col = scan.rows, scan.bounds, scan.col
        # a champion in use: the caller's source, or the scan rows' own (model:<version> on the strategy's setups)
        champion = {s: confidence_source(cfg, s, inputs.confidence)[0].name != RULE_SOURCE for s in Strategy}
        if len(self.scan):
            src = self.col["confidence_source"]
            by_model = pd.Series(src).fillna("").astype(str).str.startswith("model:").to_numpy()
            for s in Strategy:
                champion[s] = champion[s] or bool((by_model & (self.col["strategy"] == s.value)).any())
        self.shadow = ShadowBook(state.shadows, cfg, champion, inputs.model_scores)
        self.shadow.prepare(self.col)

    # --- setup ----------------------------------------------------------------------------------------------
    def _initial_work(self, ledger: pd.DataFrame) -> pd.DataFrame:
        """SELL rows plus the BUY rows of open groups: for the §7.1 function the same as the whole ledger."""
        if list(ledger.columns) != list(LEDGER_COLUMNS):
            raise EngineInputError("ledger must have the columns of ledger.LEDGER_COLUMNS")
        side = ledger["side"].to_numpy(dtype=object)
        tg = ledger["trade_group_id"].to_numpy(dtype=object)
        sold = set(tg[side == Side.SELL.value].tolist())
        buy_open = (side == Side.BUY.value) & ~pd.Index(tg).isin(sold)
        fills = pd.Series(tg[buy_open]).value_counts().to_dict()
        mine = {t: len(st.fills) for t, (_, st) in self.positions.items()}
        if fills != mine:
            raise EngineInvariantError(
                f"ledger and engine state disagree on open groups: ledger {sorted(fills.items())}, state "
                f"{sorted(mine.items())} (state and ledger must come from the same commit)")
        keep = (side == Side.SELL.value) | buy_open
        return ledger.loc[keep].reset_index(drop=True)

    # --- helpers --------------------------------------------------------------------------------------------
    def _fresh(self, symbol: str, t_ns: int) -> LastBar | None:
        """The symbol's decision bar at T if it is fresh (open ≥ T − engine.max_bar_lag_min), else None."""
        lb = self._last_bar(symbol)
        if lb is None or lb.time.value < t_ns - self.lag_ns:
            return None
        return lb

    def _last_bar(self, symbol: str) -> LastBar | None:
        """The symbol's latest processed bar: from this run's bars once one was processed, else the state's."""
        j = self.cursors.last_index(symbol)
        if j is None:
            return self.last_bars.get(symbol)
        cached = self._bar_cache.get(symbol)
        if cached is None or cached[0] != j:
            cached = (j, LastBar(from_ns(self.bars.ts[j]), float(self.bars.close[j])))
            self._bar_cache[symbol] = cached
        return cached[1]

    def _last_ns(self, symbol: str) -> int:
        lb = self._last_bar(symbol)
        return lb.time.value if lb is not None else _INT64_MIN

    def _production_decision(self, i: int) -> str:
        """Scan row i's decision at step 6: TAKE / SKIP for the engine-resolved candidates, else the scan's."""
        r = self.reasons.get(i)
        if r is not None:
            return "TAKE" if r is DecisionReason.ENTERED else "SKIP"
        return str(self.col["decision"][i])

    def _note(self, kind: str, channel: str | None, t: pd.Timestamp, **fields: Any) -> None:
        self.notes.append({"kind": kind, "channel": channel, "cycle_point": t, **fields})

    def _closed(self, meta: TradeMeta, st: PositionState, t: pd.Timestamp, rows: list, closes: list,
                who: str | None = None, why: str | None = None) -> None:
        ev = st.exit
        assert ev is not None
        rows.extend(step_rows(st, meta, t, len(st.fills)))
        del self.positions[meta.trade_group_id]
        self._groups.pop(meta.trade_group_id, None)
        self.realised.add(ev.pnl_usd)
        outcome = TradeOutcome.of(ev.pnl_usd)
        closes.append(ClosedTrade(meta.trade_group_id, meta.strategy, meta.symbol, meta.tier, ev.time, t,
                                  ev.reason, ev.pnl_usd, ev.pnl_ratio, st.rule.take_profit, outcome))
        ch = self.cfg.notifications.channels
        self._note("closed", ch.trades, t, trade_group_id=meta.trade_group_id, strategy=meta.strategy.value,
                   symbol=meta.symbol, tier=meta.tier.value, entry_time=st.entry_time, exit_time=ev.time,
                   avg_entry=ev.avg_entry, exit_fill=ev.fill_price, pnl_usd=ev.pnl_usd, pnl_pct=ev.pnl_ratio,
                   outcome=outcome.value, exit_reason=ev.reason.value, no_data=ev.no_data,
                   hold_h=hours_between(st.entry_time, ev.time), max_hold_h=st.rule.max_hold_minutes / 60.0,
                   fees_usd=ev.fees_usd, slippage_usd=ev.slippage_usd + math.fsum(f.slippage_usd for f in st.fills),
                   high_water=ev.high_water, drawdown_from_high=ev.fill_price / ev.high_water - 1.0,
                   levels_filled=len(st.fills), levels=len(st.grid_prices) + 1, who=who, why=why)
        if ev.no_data:
            self._note("no_data_close", ch.alerts, t, trade_group_id=meta.trade_group_id, symbol=meta.symbol,
                       last_bar=self._last_bar(meta.symbol).time, raw_price=ev.raw_price)

    def _append_work(self, rows: list[dict[str, Any]]) -> None:
        """The ledger-derived view (``verify`` only): SELL rows plus the BUY rows of open groups."""
        new = ledger_frame(rows)
        work = new if self.work.empty else pd.concat([self.work, new], ignore_index=True)
        sold = set(new.loc[new["side"] == Side.SELL.value, "trade_group_id"].tolist())
        if sold:
            drop = (work["side"] == Side.BUY.value).to_numpy() & work["trade_group_id"].isin(sold).to_numpy()
            work = work.loc[~drop].reset_index(drop=True)
        self.work = work

    def _group(self, tgid: str, meta: TradeMeta, st: PositionState) -> OpenGroup:
        """The open group of a position as :func:`..ledger.book_state` reads it (the numbers of its ledger rows)."""
        g = self._groups.get(tgid)
        if g is None or len(g.sizes) != len(st.fills):
            g = OpenGroup(strategy=meta.strategy, symbol=meta.symbol, group_size_usd=meta.size_usd,
                          level_size_usd=st.level_size, grid_levels=len(st.grid_prices) + 1,
                          sizes=tuple(f.size_usd for f in st.fills), fees=tuple(f.fee_usd for f in st.fills),
                          quantities=tuple(f.quantity for f in st.fills), taker_fee=st.fee, slippage=st.slippage)
            self._groups[tgid] = g
        return g

    def _portfolio(self, pending: list[PendingOrder], marks: dict[str, float], t: pd.Timestamp):
        """Step 4: the portfolio state from the open positions and the realised P&L (incremental); with ``verify``
        the same state rebuilt from the ledger must be identical, field for field."""
        groups = [self._group(tgid, meta, st) for tgid, (meta, st) in self.positions.items()]
        ps = book_state(groups, self.realised.value, pending, marks, self.cfg)
        if self.verify:
            ref = portfolio_state(self.work, pending, marks, self.cfg)
            if ref != ps:
                diff = [f for f in ref.__dataclass_fields__ if getattr(ref, f) != getattr(ps, f)]
                raise EngineInvariantError(f"at {t}: the incremental portfolio state differs from the ledger's in "
                                           f"{diff}: {[(getattr(ps, f), getattr(ref, f)) for f in diff]}")
        return ps

    def _counts(self, pending: list[PendingOrder]) -> OpenCounts:
        """Open groups (from the positions; with ``verify`` checked against the ledger) plus pending orders."""
        by_strategy: dict[Strategy, int] = {}
        by_symbol: dict[str, int] = {}
        for meta, _ in self.positions.values():
            by_strategy[meta.strategy] = by_strategy.get(meta.strategy, 0) + 1
            by_symbol[meta.symbol] = by_symbol.get(meta.symbol, 0) + 1
        counts = OpenCounts(len(self.positions), by_strategy, by_symbol)
        if self.verify:
            ref = open_counts(self.work, ())
            if (ref.total, dict(ref.by_strategy), dict(ref.by_symbol)) != (counts.total, by_strategy, by_symbol):
                raise EngineInvariantError(f"open counts from the positions {counts} differ from the ledger's {ref}")
        for o in pending:
            counts = counts.plus(o.strategy, o.symbol)
        return counts

    # --- one cycle point ------------------------------------------------------------------------------------
    def tick(self, k: int, t: pd.Timestamp) -> None:
        cfg = self.cfg
        t_ns = t.value
        rows: list[dict[str, Any]] = []
        closes: list[ClosedTrade] = []
        ch = cfg.notifications.channels

        # 1. Pending entry orders: fill at the entry bar's open once visible, or expire.
        waiting: list[EntryOrder] = []
        for o in self.pending:
            last = self._last_bar(o.symbol)
            after = max(o.decided_at.value - 1, last.time.value if last is not None else _INT64_MIN)
            a, b = self.bars.range(o.symbol, after, min(o.expires_at.value, t_ns))
            if a < b:
                self._fill(o, a, t, rows)
            elif t_ns >= o.expires_at.value:
                self._note("entry_expired", None, t, strategy=o.strategy.value, symbol=o.symbol, scan_id=o.scan_id,
                           decided_at=o.decided_at)
            else:
                waiting.append(o)
        self.pending = waiting
        self.shadow.fill_orders(t, self.bars, self._last_ns)

        # 2. Exits and grid fills on each symbol's new bars (open < T, newer than its last processed bar).
        by_symbol: dict[str, list[str]] = {}
        for tgid, (meta, _) in self.positions.items():
            by_symbol.setdefault(meta.symbol, []).append(tgid)
        bars = self.bars
        blocks = self.cursors.advance(k)
        self.shadow.advance([(sym, a, b) for _, sym, a, b in blocks], bars, t)  # the same bars, the same stepper
        for _, sym, a, b in blocks:
            for tgid in sorted(by_symbol.get(sym, ())):
                meta, st = self.positions[tgid]
                # the bars from the entry bar on, after the last one stepped (sorted: one search)
                after = st.entry_time.value if st.last_time is None else max(st.entry_time.value,
                                                                              st.last_time.value + 1)
                a0 = a + int(np.searchsorted(bars.ts[a:b], after, "left"))
                if a0 < b:
                    high = float(bars.high[a0:b].max())
                    if quiet_through(st, float(bars.open[a0:b].min()), float(bars.low[a0:b].min()), high,
                                     float(bars.open[a0:b].max()), int(bars.ts[b - 1])):
                        pass_quietly(st, high, from_ns(bars.ts[b - 1]))  # the same as stepping each bar
                        continue
                for i in range(a0, b):
                    n = len(st.fills)
                    ev = step(st, self.bars.bar(i))
                    if ev is not None:
                        self._closed(meta, st, t, rows, closes)
                        break
                    if len(st.fills) != n:
                        rows.extend(step_rows(st, meta, t, n))
        # No-data closes: still open at T ≥ E + max hold + grace.
        for tgid in sorted(self.positions):
            meta, st = self.positions[tgid]
            hold = st.max_hold_ns
            if hold is not None and t_ns >= st.entry_time.value + hold + self.grace_ns:
                close_position(st, t, self._last_bar(meta.symbol).close, ExitReason.TIME_EXIT, no_data=True)
                self._closed(meta, st, t, rows, closes)
        self.shadow.no_data_closes(t, lambda sym: self._last_bar(sym).close)

        # 3. Market state; manual closes, then strategy-shift closes.
        m = self.market.at(t_ns)
        if m.entered_panic:
            self._note("panic", ch.trades, t, regime=m.regime.value, triggers=panic_triggers(m.measures, cfg),
                       **m.measures)
        for s in Strategy:
            if m.changed[s]:
                vd = getattr(cfg.protection.volatility_disable, s.key)
                self._note("strategy_enabled" if m.enabled[s] else "strategy_disabled", ch.trades, t,
                           strategy=s.value, vol24h=m.vol24h, disable_at=vd.disable_at, reenable_at=vd.reenable_at,
                           min_disabled_h=cfg.protection.volatility_disable.min_disabled_h,
                           earliest_reenable_at=None if m.enabled[s] else t + pd.Timedelta(
                               hours=cfg.protection.volatility_disable.min_disabled_h))
        self.shift = advance_shift(self.shift, t, m.best)
        prev = self.cursor.value if self.cursor is not None else None
        due = self.manual + [e for ns, _, e in self.manual_events if ns < t_ns and (prev is None or ns >= prev)]
        self.manual = []
        for e in due:
            pos = self.positions.get(e.trade_group_id)
            if pos is None:
                self._note("manual_close_ignored", ch.alerts, t, trade_group_id=e.trade_group_id, who=e.who,
                           why=e.why, requested_at=e.time)
                continue
            meta, st = pos
            bar = self._fresh(meta.symbol, t_ns)
            if bar is None:
                self.manual.append(e)  # waits for a fresh decision bar
                continue
            close_position(st, t, bar.close, ExitReason.MANUAL)
            self._closed(meta, st, t, rows, closes, who=e.who, why=e.why)
        for tgid in sorted(self.positions):
            meta, st = self.positions[tgid]
            if not shift_applies(self.shift, meta.strategy, st.entry_time):
                continue
            bar = self._fresh(meta.symbol, t_ns)
            if bar is None:
                continue
            # r of a close at the decision-bar close, priced by the one close function on a throw-away copy.
            r = close_position(copy.copy(st), t, bar.close, ExitReason.MANUAL).pnl_ratio
            reason = shift_exit_reason(r, hours_between(self.shift.shifted(meta.strategy), t),
                                       hours_between(st.entry_time, t), cfg)
            if reason is not None:
                close_position(st, t, bar.close, reason)
                self._closed(meta, st, t, rows, closes)

        # 4. Portfolio state (from the ledger) and the protection fold.
        if rows:
            rows.sort(key=_row_sort_key)
            self.ledger_rows_out.extend(rows)
            if self.verify:
                self._append_work(rows)
        pending = [o.pending() for o in self.pending]
        marks = {meta.symbol: self._last_bar(meta.symbol).close for meta, _ in self.positions.values()}
        ps = self._portfolio(pending, marks, t)
        self.protection = advance_protection(self.protection, t, closes=closes, mark_equity=ps.mark_equity,
                                             events=self.op_events, cfg=cfg)
        dl, ls = self.protection.daily_loss, self.protection.loss_streak
        if dl.latched_at == t:
            self._note("daily_loss_gate", ch.trades, t, e0=dl.e0, mark_equity=ps.mark_equity,
                       day_pnl_usd=ps.mark_equity - dl.e0, day_pnl_pct=(ps.mark_equity - dl.e0) / dl.e0,
                       resume_at=dl.day + pd.Timedelta(days=1))
        if ls.paused_at == t:
            self._note("loss_streak_pause", ch.trades, t, streak=ls.count, resume_at=ls.paused_until)
        self.snapshots.append(snapshot_row(ps, t))
        counts = self._counts(pending)

        # 5. Candidates → gates → §9.2 ordering → §7.2 checks in priority order → entry orders.
        a, b = int(self.scan_bounds[k]), int(self.scan_bounds[k + 1])
        col = self.col
        if a < b:
            if (col["regime"][a:b] != m.regime.value).any() or (col["best_strategy"][a:b] != m.best.value).any():
                raise EngineInputError(f"scan rows at {t} disagree with the market_regime row (regime / best)")
        setup = col["setup"][a:b].astype(bool)
        strat = col["strategy"][a:b]
        setups = {s: int((setup & (strat == s.value)).sum()) for s in Strategy}
        top = int(((strat == Strategy.CHANNEL.value) & (col["reason"][a:b] == DecisionReason.TOP_OF_RANGE.value)).sum())
        cands: list[Candidate] = []
        cand_idx = np.flatnonzero(col["candidate"][a:b].astype(bool)) + a
        if cand_idx.size and m.regime is Regime.UNKNOWN:
            raise EngineInputError(f"scan rows at {t} have candidates although the regime is UNKNOWN (stale_data)")
        for i in cand_idx:
            i = int(i)
            s = Strategy(col["strategy"][i])
            sym = str(col["symbol"][i])
            disabled = not (cfg.strategies.of(s).enabled and m.enabled[s])
            gate = entry_gate(self.protection, t, sym, regime_panic=m.regime is Regime.PANIC,
                              strategy_disabled=disabled)
            if gate is not None:
                self.reasons[i] = DecisionReason.of(gate)
            else:
                cands.append(Candidate(i, s, sym, float(col["confidence"][i]), float(col["setup_value"][i])))
        if cands:
            pr = prioritise(cands, m.best, setups=setups, top_of_range=top, cfg=cfg)
            for c in pr.not_prioritised:
                self.reasons[c.key] = DecisionReason.NOT_PRIORITISED
            size = cfg.portfolio.position_size_usd * m.size_multiplier
            for c, list_type in pr.ordered:
                self.list_types[c.key] = list_type.value
                order = self._order(c, t, m, size)
                reason, ps, counts = admit(ps, counts, order.pending(), cfg)
                if reason is None:
                    self.pending.append(order)
                    self.reasons[c.key] = DecisionReason.ENTERED
                    self._signal(order)
                else:
                    self.reasons[c.key] = DecisionReason.of(reason)

        # 6. Shadow decisions on the eligible scan rows (SPEC §10.2), after the production decisions.
        self.shadow.decide(t, a, b, col, self._production_decision, m.regime, m.enabled, m.size_multiplier,
                           m.vol24h)

        # Invariants after the cycle point (I-3): fail loudly.
        held = OpenCounts(0)
        for meta, _ in self.positions.values():
            held = held.plus(meta.strategy, meta.symbol)
        for o in self.pending:
            held = held.plus(o.strategy, o.symbol)
        if (held.total, dict(held.by_strategy), dict(held.by_symbol)) != (
                counts.total, dict(counts.by_strategy), dict(counts.by_symbol)):
            raise EngineInvariantError(f"at {t}: ledger counts {counts} and engine state counts {held} disagree")
        violations = limit_violations(counts, cfg)
        if violations:
            raise EngineInvariantError(f"limits exceeded after {t}: " + "; ".join(violations))
        self.cursor = t

    def _fill(self, o: EntryOrder, i: int, t: pd.Timestamp, rows: list) -> None:
        e = from_ns(self.bars.ts[i])
        st = PositionState.open(e, float(self.bars.open[i]), o.size_usd, o.rule, o.fee, o.slippage, self.bar_minutes,
                                levels=o.levels, spacing=o.spacing)
        meta = TradeMeta(trade_group_id(o.strategy, o.symbol, e), o.strategy, o.symbol, o.tier, o.scan_id,
                         o.config_version, o.size_usd, o.spacing)
        if meta.trade_group_id in self.positions:
            raise EngineInvariantError(f"{meta.trade_group_id} is already open")
        rows.extend(step_rows(st, meta, t, 0))
        self.positions[meta.trade_group_id] = (meta, st)
        r = o.rule
        self._note("opened", self.cfg.notifications.channels.trades, t, trade_group_id=meta.trade_group_id,
                   strategy=o.strategy.value, symbol=o.symbol, tier=o.tier.value, entry_time=e,
                   entry_fill=st.avg_entry, size_usd=o.size_usd, stop_price=st.stop_price, stop_loss=r.stop_loss,
                   take_profit_price=st.take_profit_price, take_profit=r.take_profit, trail=r.trailing,
                   trail_activation=r.trail_activation, risk_reward=r.take_profit / r.stop_loss, regime=o.regime,
                   confidence=o.confidence, confidence_source=o.confidence_source, levels=o.levels,
                   spacing=o.spacing, scan_id=o.scan_id)

    def _signal(self, o: EntryOrder) -> None:
        """The TAKE signal of an order (#ml-signals, when ``notifications.signals_enabled``)."""
        lb = self._last_bar(o.symbol)
        self._note("signal", self.cfg.notifications.channels.signals, o.decided_at, strategy=o.strategy.value,
                   symbol=o.symbol, tier=o.tier.value, price=lb.close if lb is not None else None,
                   size_usd=o.size_usd, take_profit=o.rule.take_profit, stop_loss=o.rule.stop_loss,
                   confidence=o.confidence, confidence_source=o.confidence_source, regime=o.regime,
                   scan_id=o.scan_id)

    def _order(self, c: Candidate, t: pd.Timestamp, m: Market, size: float) -> EntryOrder:
        cfg = self.cfg
        tier = self.uni.tier(c.symbol)
        rule = opening_rule(cfg, c.strategy, tier, m.vol24h, m.regime)
        levels, spacing = grid_shape(cfg, c.strategy, tier)
        i = int(c.key)
        return EntryOrder(
            strategy=c.strategy, symbol=c.symbol, tier=tier, scan_id=str(self.col["scan_id"][i]), decided_at=t,
            expires_at=from_ns(t.value + self.timeout_ns), size_usd=float(size), rule=rule, fee=cfg.costs.taker_fee,
            slippage=cfg.costs.slippage.of(tier), levels=int(levels), spacing=float(spacing),
            config_version=cfg.config_version, regime=m.regime.value, confidence=c.confidence,
            confidence_source=str(self.col["confidence_source"][i]),
        )

    # --- results --------------------------------------------------------------------------------------------
    def state(self) -> EngineState:
        return EngineState(
            cursor=self.cursor,
            positions=tuple(OpenPosition(meta, st) for _, (meta, st) in sorted(self.positions.items())),
            pending_orders=tuple(self.pending),
            manual_pending=tuple(self.manual),
            last_bars=dict(sorted({**self.last_bars, **{s: lb for s in self.cursors.symbols
                                                         if (lb := self._last_bar(s)) is not None}}.items())),
            protection=self.protection,
            shift=self.shift,
            watermark=self.watermark,
            config_version=self.cfg.config_version,
            shadows=self.shadow.state(),
        )

    def scan_history(self) -> pd.DataFrame:
        rows = resolve_candidates(self.scan, pd.Series({k: r.value for k, r in self.reasons.items()}, dtype=object))
        lt = np.full(len(rows), None, dtype=object)
        for k, v in self.list_types.items():
            lt[k] = v
        rows["list_type"] = lt
        return rows

    def ledger_rows(self) -> pd.DataFrame:
        if not self.ledger_rows_out:
            return cached_empty_ledger()
        return ledger_frame(self.ledger_rows_out)


def run_engine(state: EngineState, inputs: EngineInputs, cycle_points: Iterable[Any], *, verify: bool = False
               ) -> tuple[EngineState, EngineOutputs]:
    """Fold the engine over ``cycle_points`` (consecutive cycle points, the first right after ``state.cursor``).

    Returns the new state and the outputs to commit with it (see the module doc and :class:`EngineOutputs`). The
    input state is never modified. ``verify``: at every cycle point also rebuild the portfolio state and the open
    counts from the ledger (the slow, independent path) and raise if they differ from the incremental ones. Raises :class:`EngineInputError` for inputs that do not cover the cycle points
    and :class:`EngineInvariantError` when a limit or the ledger/state agreement breaks.
    """
    cfg = inputs.cfg
    step_ns = cfg.engine.cycle_min * NS_PER_MIN
    pts = [utc(t, "cycle point", EngineInputError) for t in cycle_points]
    points = pd.DatetimeIndex(pts, dtype="datetime64[ns, UTC]") if pts else pd.DatetimeIndex([], tz="UTC")
    for i, t in enumerate(points):
        if t.value % step_ns:
            raise EngineInputError(f"{t} is not a cycle point (multiple of engine.cycle_min)")
        prev = points[i - 1].value if i else (state.cursor.value if state.cursor is not None else None)
        if prev is not None and t.value != prev + step_ns:
            raise EngineInputError(f"cycle point {t} does not follow {from_ns(prev)}: cycle points are processed "
                                   f"consecutively after the cursor")
    run = _Run(state, inputs, points, verify=verify)
    for k, t in enumerate(points):
        run.tick(k, t)
    if len(points):
        mark = run.bars.watermark(points[-1].value)
        if mark is not None:
            mark_ts = from_ns(mark)
            run.watermark = mark_ts if run.watermark is None else max(run.watermark, mark_ts)
    new_state = run.state() if len(points) else state
    snaps = pd.DataFrame(run.snapshots, columns=list(SNAPSHOT_COLUMNS))
    snaps = snaps.astype({"cycle_point": "datetime64[ns, UTC]", "open_count": "int64",
                          **{c: "float64" for c in SNAPSHOT_COLUMNS if c not in ("cycle_point", "open_count")}})
    return new_state, EngineOutputs(
        ledger_rows=run.ledger_rows(),
        scan_rows=run.scan_history(),
        snapshots=snaps,
        notifications=tuple(run.notes),
        cycle_points=points,
        watermark=new_state.watermark,
        config_version=cfg.config_version,
        shadow_decisions=run.shadow.decision_frame(),
        shadow_exits=run.shadow.exit_frame(),
    )
