"""The paper-trading engine: a deterministic fold over cycle points (SPEC §0.5, §3.1); never imports dagster.

``run_engine(state, inputs, cycle_points) -> (state, outputs)`` processes consecutive cycle points T (UTC multiples of
``engine.cycle_min``) after ``state.cursor``. At each T, exactly in the order of SPEC §3.1:

1. pending entry orders fill at the open of their entry bar — the first base bar with open time in [T_d, T_d +
   ``engine.entry_timeout_min``) of the order's decision point T_d, once visible (open < T) — or expire;
2. exits and DCA grid fills (the stepper of :mod:`.exits`) on each symbol's bars with open time < T newer than its
   last processed bar, in time order (a bar older than the last processed one is never used); then no-data closes
   (T ≥ E + max hold + ``exits.no_data_grace_min`` → ``time_exit`` at the last known close, ``no_data = true``);
3. the shared market state of T (the ``market_regime`` row: regime, size multiplier, volatility-disable flags, best
   strategy, BTC vol24h); manual closes (operator events stamped in [previous T, T)), then strategy-shift closes
   (§9.3), both at the decision-bar close (a stale symbol waits for a fresh decision bar);
4. the portfolio state (:func:`.ledger.portfolio_state` on the ledger) and the protection fold
   (:func:`.protection.advance_protection`: limiter, loss streak, daily loss gate on mark_equity, operator pause);
   the ``portfolio_snapshots`` row is this step-4 state;
5. the scan rows of T (steps 1–3 from :func:`.setups.scan_cycle_points`, or the caller's precomputed preview rows):
   each candidate goes through the step-4 gates, §9.2 ordering (:mod:`.prioritisation`) and the §7.2 execution
   checks in priority order (:func:`.ledger.admit`; each admitted order updates the running state); admitted rows
   become entry orders (size G = ``portfolio.position_size_usd`` × the regime's size multiplier; exit parameters
   frozen now, stop widened per §8.4 from T's vol24h and regime);
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
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from .config import Config, Strategy, Tier
from .exits import (
    Bar,
    ExitReason,
    ExitRule,
    GridFill,
    PositionState,
    close_position,
    is_utc,
    step,
)
from .features import NS_PER_MIN
from .ledger import (
    LEDGER_COLUMNS,
    SNAPSHOT_COLUMNS,
    ClosedTrade,
    OpenCounts,
    PendingOrder,
    Side,
    TradeMeta,
    TradeOutcome,
    admit,
    empty_ledger,
    grid_shape,
    ledger_frame,
    limit_violations,
    open_counts,
    portfolio_state,
    snapshot_row,
    step_rows,
    trade_group_id,
)
from .prioritisation import (
    Candidate,
    ShiftState,
    advance_shift,
    hours_between,
    prioritise,
    shift_applies,
    shift_exit_reason,
)
from .protection import (
    DailyLossState,
    LimiterState,
    LossStreakState,
    OperatorAction,
    OperatorEvent,
    OperatorState,
    ProtectionState,
    SymbolLimit,
    advance_protection,
    entry_gate,
)
from .regime import BestStrategy, Regime, size_multiplier, vol24h_measure, widen_stop
from .setups import SCAN_ROW_COLUMNS, ConfidenceArg, DecisionReason, resolve_candidates, scan_cycle_points
from .universe import Universe

STATE_VERSION = 1
NS_PER_HOUR = 60 * NS_PER_MIN
BAR_COLUMNS = ("symbol", "timestamp", "open", "high", "low", "close", "ingested_at")
_INT64_MIN = np.iinfo("int64").min


class EngineInvariantError(RuntimeError):
    """A broken invariant after a cycle point (limits exceeded, ledger and state disagree): fail loudly."""


class EngineInputError(ValueError):
    """Inputs the engine cannot process (missing regime row, scan rows that do not cover T, bad cycle points)."""


def _utc(value: Any, what: str) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    if ts.tzinfo is None or not is_utc(ts.tzinfo):
        raise EngineInputError(f"{what} must be a tz-aware UTC time, got {value!r}")
    return ts.tz_convert("UTC")


def _ts(ns: int) -> pd.Timestamp:
    return pd.Timestamp(int(ns), tz="UTC")


# ---------------------------------------------------------------------------------------------------------------
# Events, orders, positions and the state
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ManualClose:
    """Operator event ``cryptotracker close <trade_group_id>`` stamped at ``time`` (UTC) with who and why."""

    time: pd.Timestamp
    trade_group_id: str
    who: str
    why: str


@dataclass(frozen=True)
class EntryOrder:
    """An entry order decided at cycle point ``decided_at`` (a TAKE), waiting for its entry bar.

    The exit parameters are frozen here: ``rule`` has the effective tp and the stop after widening (§8.4); ``fee``
    and ``slippage`` are ``costs.taker_fee`` and the tier's slippage; ``levels``/``spacing`` the DCA grid (1 / 0
    otherwise); ``size_usd`` is G.
    """

    strategy: Strategy
    symbol: str
    tier: Tier
    scan_id: str
    decided_at: pd.Timestamp
    expires_at: pd.Timestamp  # decided_at + engine.entry_timeout_min (exclusive end of the entry-bar window)
    size_usd: float
    rule: ExitRule
    fee: float
    slippage: float
    levels: int
    spacing: float
    config_version: int
    regime: str
    confidence: float
    confidence_source: str

    def pending(self) -> PendingOrder:
        """The order as :func:`.ledger.portfolio_state` and :func:`.ledger.admit` see it."""
        return PendingOrder(self.strategy, self.symbol, self.size_usd, self.decided_at, self.scan_id)


@dataclass(frozen=True)
class OpenPosition:
    """An open trade group: its ledger meta and the stepper state (treated as read-only; the engine steps copies)."""

    meta: TradeMeta
    state: PositionState

    @property
    def trade_group_id(self) -> str:
        return self.meta.trade_group_id


@dataclass(frozen=True)
class LastBar:
    """A symbol's latest processed base bar: open time (UTC) and close (its mark and decision-bar close)."""

    time: pd.Timestamp
    close: float


@dataclass(frozen=True)
class EngineState:
    """Everything the engine carries from one cycle point to the next; persist it with :meth:`to_json`.

    ``cursor``: the last processed cycle point (None before the first). ``positions``: open groups by
    trade_group_id order. ``pending_orders``: in decision order. ``manual_pending``: manual closes waiting for a
    fresh decision bar. ``last_bars``: per symbol the latest processed bar. ``protection``: limiter, loss streak,
    daily loss (E₀) and operator state. ``shift``: §9.3 state. ``watermark``: greatest ``ingested_at`` of the bars
    read so far. ``config_version``: of the last tick.
    """

    cursor: pd.Timestamp | None = None
    positions: tuple[OpenPosition, ...] = ()
    pending_orders: tuple[EntryOrder, ...] = ()
    manual_pending: tuple[ManualClose, ...] = ()
    last_bars: Mapping[str, LastBar] = field(default_factory=dict)
    protection: ProtectionState = field(default_factory=ProtectionState)
    shift: ShiftState = field(default_factory=ShiftState)
    watermark: pd.Timestamp | None = None
    config_version: int | None = None

    def to_json(self) -> str:
        """The state as one JSON document (sorted keys; floats exact; ±inf as strings; times ISO-8601 UTC)."""
        return json.dumps(_state_to_obj(self), sort_keys=True, allow_nan=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "EngineState":
        """Inverse of :meth:`to_json` (raises on another state version)."""
        return _state_from_obj(json.loads(text))

    def open_counts(self) -> OpenCounts:
        """Open groups plus pending orders (the §7.2 / I-3 counts) as held by the state."""
        counts = OpenCounts(0)
        for p in self.positions:
            counts = counts.plus(p.meta.strategy, p.meta.symbol)
        for o in self.pending_orders:
            counts = counts.plus(o.strategy, o.symbol)
        return counts


# ---------------------------------------------------------------------------------------------------------------
# Inputs and outputs
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class BarStore:
    """Base bars laid out per symbol for the engine: int64 ns open times (sorted, unique) and float64 prices, with
    ``ingested_at`` (ns). ``frame`` is the input frame (the scan reads it). Build it once and reuse it across calls."""

    frame: pd.DataFrame
    spans: Mapping[str, tuple[int, int]]
    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    ingested: np.ndarray

    @classmethod
    def from_frame(cls, bars: pd.DataFrame) -> "BarStore":
        """Check and lay out ``symbol, timestamp, open, high, low, close, ingested_at`` (UTC; unique per symbol and
        open time; every bar carries its ``ingested_at``, SPEC §13.1)."""
        missing = [c for c in BAR_COLUMNS if c not in bars.columns]
        if missing:
            raise EngineInputError(f"bars lack columns {missing}")
        ts = _ns_column(bars["timestamp"], "bars.timestamp")
        ing = _ns_column(bars["ingested_at"], "bars.ingested_at")
        sym = bars["symbol"].astype(str).to_numpy()
        codes, names = pd.factorize(sym, sort=True)
        order = np.lexsort((ts, codes))
        codes, ts, ing = codes[order], ts[order], ing[order]
        prices = {c: bars[c].to_numpy(dtype="float64")[order] for c in ("open", "high", "low", "close")}
        if len(ts) > 1:
            dup = np.flatnonzero((np.diff(codes) == 0) & (np.diff(ts) == 0))
            if dup.size:
                raise EngineInputError(f"duplicate bar {names[codes[dup[0]]]} at {_ts(ts[dup[0]])}")
        bounds = np.searchsorted(codes, np.arange(len(names) + 1), side="left")
        spans = {str(n): (int(bounds[i]), int(bounds[i + 1])) for i, n in enumerate(names)}
        return cls(bars, spans, ts, prices["open"], prices["high"], prices["low"], prices["close"], ing)

    def range(self, symbol: str, after_ns: int, before_ns: int) -> tuple[int, int]:
        """Index range of the symbol's bars with after_ns < open < before_ns."""
        span = self.spans.get(symbol)
        if span is None:
            return 0, 0
        a, b = span
        seg = self.ts[a:b]
        return a + int(np.searchsorted(seg, after_ns, "right")), a + int(np.searchsorted(seg, before_ns, "left"))

    def bar(self, i: int) -> Bar:
        return Bar(_ts(self.ts[i]), float(self.open[i]), float(self.high[i]), float(self.low[i]), float(self.close[i]))

    def watermark(self, before_ns: int) -> int | None:
        """Greatest ``ingested_at`` (ns) of the bars with open time < ``before_ns`` (the bars a run can read)."""
        sel = self.ingested[self.ts < before_ns]
        return int(sel.max()) if sel.size else None


@lru_cache(maxsize=1)
def _empty_ledger_template() -> pd.DataFrame:
    return empty_ledger()


def _empty_ledger() -> pd.DataFrame:
    """:func:`.ledger.empty_ledger` (built once; a copy per call)."""
    return _empty_ledger_template().copy()


def _ns_column(col: pd.Series, what: str) -> np.ndarray:
    if not isinstance(col.dtype, pd.DatetimeTZDtype) or not is_utc(col.dtype.tz):
        raise EngineInputError(f"{what} must be tz-aware UTC, got {col.dtype}")
    idx = pd.DatetimeIndex(col).as_unit("ns")
    if idx.isna().any():
        raise EngineInputError(f"{what} has missing values")
    return idx.asi8.copy()


@dataclass(frozen=True, eq=False)
class EngineInputs:
    """What a run reads besides its state.

    ``cfg``: the effective config of the run (split runs at config revisions). ``bars``: stored base bars (frame
    with ``ingested_at``, and ``suspect`` when the engine scans; or a :class:`BarStore`): at least every bar newer
    than its symbol's last processed bar (``EngineState.last_bars``) with open time before the last cycle point,
    and from ``start − setups_warmup(cfg)`` when the engine computes the scan itself. ``market_regime``: the rows of the run's cycle points
    (:func:`.regime.build_market_regime`). ``ledger``: the ledger as committed before the run. ``events``:
    operator events (:class:`~.protection.OperatorEvent` pause / resume, :class:`ManualClose`), any span (each
    acts once, from the first cycle point after it). ``confidence``: the champion plug-in of
    :func:`.setups.confidence_source` (None = rule). ``scan_rows``: precomputed steps 1–3 rows (the
    ``scan_preview`` layout) covering the run's cycle points, else the engine runs the scan.
    """

    cfg: Config
    bars: pd.DataFrame | BarStore
    market_regime: pd.DataFrame
    ledger: pd.DataFrame = field(default_factory=lambda: _empty_ledger())
    events: Sequence[OperatorEvent | ManualClose] = ()
    confidence: ConfidenceArg = None
    scan_rows: pd.DataFrame | None = None


NOTIFICATION_KINDS = ("opened", "closed", "entry_expired", "no_data_close", "panic", "strategy_disabled",
                      "strategy_enabled", "daily_loss_gate", "loss_streak_pause", "manual_close_ignored")


@dataclass(frozen=True, eq=False)
class EngineOutputs:
    """What a run produced: ``ledger_rows`` (:data:`.ledger.LEDGER_COLUMNS`, T-major, then bar time,
    trade_group_id, BUY before SELL, level), ``scan_rows`` (``ScanHistorySchema``: every row decided,
    ``list_type`` set on rows that reached §9.2 ordering), ``snapshots`` (:data:`.ledger.SNAPSHOT_COLUMNS`, one per
    T), ``notifications`` (plain dicts with ``kind`` of :data:`NOTIFICATION_KINDS`, ``channel``, ``cycle_point``),
    the processed ``cycle_points``, the bar ``watermark`` (greatest ``ingested_at`` read; None without bars) and
    the ``config_version``."""

    ledger_rows: pd.DataFrame
    scan_rows: pd.DataFrame
    snapshots: pd.DataFrame
    notifications: tuple[dict[str, Any], ...]
    cycle_points: pd.DatetimeIndex
    watermark: pd.Timestamp | None
    config_version: int


def next_cycle_points(state: EngineState, cfg: Config, *, end: Any, start: Any = None) -> pd.DatetimeIndex:
    """The unprocessed cycle points T < ``end``: from the one after ``state.cursor`` (or from ``start`` for a fresh
    state, rounded up to a cycle point)."""
    step_ns = cfg.engine.cycle_min * NS_PER_MIN
    if state.cursor is not None:
        a = state.cursor.value + step_ns
    elif start is not None:
        s = _utc(start, "start").value
        a = -(-s // step_ns) * step_ns
    else:
        raise EngineInputError("a fresh engine state needs a start")
    b = _utc(end, "end").value
    return pd.DatetimeIndex(np.arange(a, b, step_ns, dtype="int64").view("datetime64[ns]")).tz_localize("UTC")


# ---------------------------------------------------------------------------------------------------------------
# The market state of one cycle point (a market_regime row)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Market:
    regime: Regime
    size_multiplier: float
    best: BestStrategy
    vol24h: float
    enabled: Mapping[Strategy, bool]
    changed: Mapping[Strategy, bool]
    entered_panic: bool
    btc_close: float
    measures: Mapping[str, float]


class _MarketRows:
    def __init__(self, frame: pd.DataFrame, cfg: Config) -> None:
        self.cfg = cfg
        self.vol_col = f"btc_{vol24h_measure(cfg)}"
        need = ["timestamp", "regime", "size_multiplier", "best_strategy", "btc_close", self.vol_col,
                "entered_panic", *[f"{s.key}_{x}" for s in Strategy for x in ("enabled", "changed")]]
        missing = [c for c in need if c not in frame.columns]
        if missing:
            raise EngineInputError(f"market_regime lacks columns {missing}")
        ts = _ns_column(frame["timestamp"], "market_regime.timestamp")
        if pd.Index(ts).has_duplicates:
            raise EngineInputError("market_regime has more than one row per cycle point")
        self.pos = {int(t): i for i, t in enumerate(ts)}
        self.frame = frame.reset_index(drop=True)
        self.measures = [c for c in self.frame.columns if c.startswith("btc_") and c != "btc_close"]
        self._cache: dict[int, _Market] = {}

    def at(self, t_ns: int) -> _Market:
        if t_ns in self._cache:
            return self._cache[t_ns]
        i = self.pos.get(t_ns)
        if i is None:
            raise EngineInputError(f"market_regime has no row for cycle point {_ts(t_ns)}")
        row = self.frame.iloc[i]
        regime = Regime(row["regime"])
        mult = float(row["size_multiplier"])
        if mult != size_multiplier(regime, self.cfg):
            raise EngineInputError(f"market_regime at {_ts(t_ns)}: size_multiplier {mult} is not the config's "
                                   f"{size_multiplier(regime, self.cfg)} for {regime.value} (another config?)")
        m = _Market(
            regime=regime,
            size_multiplier=mult,
            best=BestStrategy(row["best_strategy"]),
            vol24h=float(row[self.vol_col]),
            enabled={s: bool(row[f"{s.key}_enabled"]) for s in Strategy},
            changed={s: bool(row[f"{s.key}_changed"]) for s in Strategy},
            entered_panic=bool(row["entered_panic"]),
            btc_close=float(row["btc_close"]),
            measures={c: float(row[c]) for c in self.measures},
        )
        self._cache[t_ns] = m
        return m


# ---------------------------------------------------------------------------------------------------------------
# One run
# ---------------------------------------------------------------------------------------------------------------


def _copy_position(st: PositionState) -> PositionState:
    return replace(st, fills=list(st.fills))


def _row_sort_key(r: Mapping[str, Any]) -> tuple:
    return (r["bar_time"].value, r["trade_group_id"], 0 if r["side"] == Side.BUY.value else 1, r["level"])


class _Run:
    """Working copies of the state while a run folds over its cycle points."""

    def __init__(self, state: EngineState, inputs: EngineInputs, points: pd.DatetimeIndex) -> None:
        cfg = inputs.cfg
        self.cfg = cfg
        self.uni = Universe.from_config(cfg)
        self.bars = inputs.bars if isinstance(inputs.bars, BarStore) else BarStore.from_frame(inputs.bars)
        self.symbols = sorted(s for s in self.bars.spans if s in self.uni.tiers)
        self.market = _MarketRows(inputs.market_regime, cfg)
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
        self.last_bars: dict[str, LastBar] = dict(state.last_bars)
        self.protection = state.protection
        self.shift = state.shift
        self.watermark = state.watermark
        self.op_events = [e for e in inputs.events if isinstance(e, OperatorEvent)]
        self.manual_events = sorted(
            ((_utc(e.time, "manual close time").value, i, e) for i, e in enumerate(inputs.events)
             if isinstance(e, ManualClose)), key=lambda x: (x[0], x[1]))
        bad = [e for e in inputs.events if not isinstance(e, (OperatorEvent, ManualClose))]
        if bad:
            raise EngineInputError(f"unknown operator event {bad[0]!r}")
        for e in self.op_events:
            OperatorAction.parse(e.action)
        self.work = self._initial_work(inputs.ledger)
        self._base_counts: OpenCounts | None = None
        self.ledger_frames: list[pd.DataFrame] = []
        self.snapshots: list[dict[str, Any]] = []
        self.notes: list[dict[str, Any]] = []
        self.reasons: dict[int, DecisionReason] = {}
        self.list_types: dict[int, str] = {}
        self.scan = self._scan_rows(inputs, points)

    # --- setup ----------------------------------------------------------------------------------------------
    def _initial_work(self, ledger: pd.DataFrame) -> pd.DataFrame:
        """SELL rows plus the BUY rows of open groups: for the §7.1 function the same as the whole ledger."""
        if list(ledger.columns) != list(LEDGER_COLUMNS):
            raise EngineInputError("ledger must have the columns of ledger.LEDGER_COLUMNS")
        side = ledger["side"].to_numpy(dtype=object)
        tg = ledger["trade_group_id"].to_numpy(dtype=object)
        sold = set(tg[side == Side.SELL.value].tolist())
        buy_open = (side == Side.BUY.value) & ~np.isin(tg, list(sold))
        fills = pd.Series(tg[buy_open]).value_counts().to_dict()
        mine = {t: len(st.fills) for t, (_, st) in self.positions.items()}
        if fills != mine:
            raise EngineInvariantError(
                f"ledger and engine state disagree on open groups: ledger {sorted(fills.items())}, state "
                f"{sorted(mine.items())} (state and ledger must come from the same commit)")
        keep = (side == Side.SELL.value) | buy_open
        return ledger.loc[keep].reset_index(drop=True)

    def _scan_rows(self, inputs: EngineInputs, points: pd.DatetimeIndex) -> pd.DataFrame:
        cfg = self.cfg
        if len(points) == 0:
            return pd.DataFrame(columns=list(SCAN_ROW_COLUMNS))
        step_ns = cfg.engine.cycle_min * NS_PER_MIN
        if inputs.scan_rows is None:
            frame = self.bars.frame
            rows = scan_cycle_points(frame, inputs.market_regime, cfg, start=points[0],
                                     end=_ts(points[-1].value + step_ns), confidence=inputs.confidence).scan_rows
        else:
            src = inputs.scan_rows
            missing = [c for c in SCAN_ROW_COLUMNS if c not in src.columns]
            if missing:
                raise EngineInputError(f"scan_rows lack columns {missing}")
            ts = _ns_column(src["timestamp"], "scan_rows.timestamp")
            keep = (ts >= points[0].value) & (ts <= points[-1].value)
            rows = src if keep.all() and list(src.columns) == list(SCAN_ROW_COLUMNS) else src.loc[
                keep, list(SCAN_ROW_COLUMNS)]
        # T, then strategy (DCA, SWING, CHANNEL), then symbol: the order of scan_cycle_points (kept if already so).
        order = {s.value: i for i, s in enumerate(Strategy)}
        ts = _ns_column(rows["timestamp"], "scan_rows.timestamp")
        strat = rows["strategy"].map(order).to_numpy()
        if pd.isna(strat).any():
            raise EngineInputError("scan rows with an unknown strategy")
        strat = strat.astype("int64")
        sym = rows["symbol"].astype(str).to_numpy()
        idx = np.lexsort((sym, strat, ts))
        if not (idx == np.arange(len(idx))).all():
            rows, ts, strat, sym = rows.iloc[idx], ts[idx], strat[idx], sym[idx]
        rows = rows.reset_index(drop=True)
        self.scan_ts = ts
        self.scan_bounds = np.searchsorted(ts, np.append(points.asi8, points[-1].value + 1), side="left")
        active = sorted(self.uni.active_symbols)
        n_expected = len(active) * len(Strategy)
        for i, t in enumerate(points):
            a, b = int(self.scan_bounds[i]), int(self.scan_bounds[i + 1])
            if b - a != n_expected:
                raise EngineInputError(f"scan rows at {t}: {b - a} rows, expected one per active symbol × strategy "
                                       f"({n_expected})")
        if len(rows):
            same = (ts[1:] == ts[:-1]) & (strat[1:] == strat[:-1]) & (sym[1:] == sym[:-1])
            if same.any() or not np.isin(sym, active).all():
                raise EngineInputError("scan rows must be one per active symbol × strategy × cycle point")
            if (rows["config_version"].to_numpy() != cfg.config_version).any():
                raise EngineInputError("scan rows were computed under another config_version")
            cand = rows["candidate"].to_numpy(dtype=bool)
            if pd.notna(rows["reason"].to_numpy()[cand]).any():
                raise EngineInputError("scan rows' candidates must be undecided (steps 1–3 only)")
        self.col = {c: rows[c].to_numpy() for c in ("strategy", "symbol", "candidate", "setup", "reason",
                                                   "confidence", "confidence_source", "setup_value", "scan_id",
                                                   "regime", "best_strategy")}
        return rows

    # --- helpers --------------------------------------------------------------------------------------------
    def _fresh(self, symbol: str, t_ns: int) -> LastBar | None:
        """The symbol's decision bar at T if it is fresh (open ≥ T − engine.max_bar_lag_min), else None."""
        lb = self.last_bars.get(symbol)
        if lb is None or lb.time.value < t_ns - self.lag_ns:
            return None
        return lb

    def _note(self, kind: str, channel: str | None, t: pd.Timestamp, **fields: Any) -> None:
        self.notes.append({"kind": kind, "channel": channel, "cycle_point": t, **fields})

    def _closed(self, meta: TradeMeta, st: PositionState, t: pd.Timestamp, rows: list, closes: list,
                who: str | None = None, why: str | None = None) -> None:
        ev = st.exit
        assert ev is not None
        rows.extend(step_rows(st, meta, t, len(st.fills)))
        del self.positions[meta.trade_group_id]
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
                       last_bar=self.last_bars[meta.symbol].time, raw_price=ev.raw_price)

    def _append_work(self, rows: list[dict[str, Any]]) -> pd.DataFrame:
        new = ledger_frame(rows)
        self.ledger_frames.append(new)
        work = new if self.work.empty else pd.concat([self.work, new], ignore_index=True)
        sold = set(new.loc[new["side"] == Side.SELL.value, "trade_group_id"].tolist())
        if sold:
            drop = (work["side"] == Side.BUY.value).to_numpy() & work["trade_group_id"].isin(sold).to_numpy()
            work = work.loc[~drop].reset_index(drop=True)
        self.work = work
        self._base_counts = None
        return new

    def _counts(self, pending: list[PendingOrder]) -> OpenCounts:
        if self._base_counts is None:
            self._base_counts = open_counts(self.work, ())
        counts = self._base_counts
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
            last = self.last_bars.get(o.symbol)
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

        # 2. Exits and grid fills on each symbol's new bars (open < T, newer than its last processed bar).
        by_symbol: dict[str, list[str]] = {}
        for tgid, (meta, _) in self.positions.items():
            by_symbol.setdefault(meta.symbol, []).append(tgid)
        # Universe symbols with bars, plus any symbol holding a position (a config may have dropped it since).
        for sym in sorted(set(self.symbols).union(by_symbol)):
            last = self.last_bars.get(sym)
            a, b = self.bars.range(sym, last.time.value if last is not None else _INT64_MIN, t_ns)
            if a == b:
                continue
            for tgid in sorted(by_symbol.get(sym, ())):
                meta, st = self.positions[tgid]
                for i in range(a, b):
                    if self.bars.ts[i] < st.entry_time.value or (
                            st.last_time is not None and self.bars.ts[i] <= st.last_time.value):
                        continue
                    n = len(st.fills)
                    ev = step(st, self.bars.bar(i))
                    if ev is not None:
                        self._closed(meta, st, t, rows, closes)
                        break
                    if len(st.fills) != n:
                        rows.extend(step_rows(st, meta, t, n))
            self.last_bars[sym] = LastBar(_ts(self.bars.ts[b - 1]), float(self.bars.close[b - 1]))
        # No-data closes: still open at T ≥ E + max hold + grace.
        for tgid in sorted(self.positions):
            meta, st = self.positions[tgid]
            hold = st.max_hold
            if hold is not None and t_ns >= (st.entry_time + hold).value + self.grace_ns:
                close_position(st, t, self.last_bars[meta.symbol].close, ExitReason.TIME_EXIT, no_data=True)
                self._closed(meta, st, t, rows, closes)

        # 3. Market state; manual closes, then strategy-shift closes.
        m = self.market.at(t_ns)
        if m.entered_panic:
            self._note("panic", ch.trades, t, regime=m.regime.value, **m.measures)
        for s in Strategy:
            if m.changed[s]:
                self._note("strategy_enabled" if m.enabled[s] else "strategy_disabled", ch.trades, t,
                           strategy=s.value, vol24h=m.vol24h)
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
            self._append_work(rows)
        pending = [o.pending() for o in self.pending]
        marks = {meta.symbol: self.last_bars[meta.symbol].close for meta, _ in self.positions.values()}
        ps = portfolio_state(self.work, pending, marks, cfg)
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
                else:
                    self.reasons[c.key] = DecisionReason.of(reason)

        # 6. Invariants after the cycle point (I-3): fail loudly.
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
        e = _ts(self.bars.ts[i])
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

    def _order(self, c: Candidate, t: pd.Timestamp, m: _Market, size: float) -> EntryOrder:
        cfg = self.cfg
        tier = self.uni.tier(c.symbol)
        base = ExitRule.from_config(cfg, c.strategy, tier)
        rule = replace(base, stop_loss=widen_stop(base.stop_loss, m.vol24h, m.regime, tier, cfg))
        levels, spacing = grid_shape(cfg, c.strategy, tier)
        i = int(c.key)
        return EntryOrder(
            strategy=c.strategy, symbol=c.symbol, tier=tier, scan_id=str(self.col["scan_id"][i]), decided_at=t,
            expires_at=_ts(t.value + self.timeout_ns), size_usd=float(size), rule=rule, fee=cfg.costs.taker_fee,
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
            last_bars=dict(sorted(self.last_bars.items())),
            protection=self.protection,
            shift=self.shift,
            watermark=self.watermark,
            config_version=self.cfg.config_version,
        )

    def scan_history(self) -> pd.DataFrame:
        rows = resolve_candidates(self.scan, pd.Series({k: r.value for k, r in self.reasons.items()}, dtype=object))
        lt = np.full(len(rows), None, dtype=object)
        for k, v in self.list_types.items():
            lt[k] = v
        rows["list_type"] = lt
        return rows

    def ledger_rows(self) -> pd.DataFrame:
        if not self.ledger_frames:
            return _empty_ledger()
        return pd.concat(self.ledger_frames, ignore_index=True)


def run_engine(state: EngineState, inputs: EngineInputs, cycle_points: Iterable[Any]
               ) -> tuple[EngineState, EngineOutputs]:
    """Fold the engine over ``cycle_points`` (consecutive cycle points, the first right after ``state.cursor``).

    Returns the new state and the outputs to commit with it (see the module doc and :class:`EngineOutputs`). The
    input state is never modified. Raises :class:`EngineInputError` for inputs that do not cover the cycle points
    and :class:`EngineInvariantError` when a limit or the ledger/state agreement breaks.
    """
    cfg = inputs.cfg
    step_ns = cfg.engine.cycle_min * NS_PER_MIN
    pts = [_utc(t, "cycle point") for t in cycle_points]
    points = pd.DatetimeIndex(pts, dtype="datetime64[ns, UTC]") if pts else pd.DatetimeIndex([], tz="UTC")
    for i, t in enumerate(points):
        if t.value % step_ns:
            raise EngineInputError(f"{t} is not a cycle point (multiple of engine.cycle_min)")
        prev = points[i - 1].value if i else (state.cursor.value if state.cursor is not None else None)
        if prev is not None and t.value != prev + step_ns:
            raise EngineInputError(f"cycle point {t} does not follow {_ts(prev)}: cycle points are processed "
                                   f"consecutively after the cursor")
    run = _Run(state, inputs, points)
    for k, t in enumerate(points):
        run.tick(k, t)
    if len(points):
        mark = run.bars.watermark(points[-1].value)
        if mark is not None:
            mark_ts = _ts(mark)
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
    )


# ---------------------------------------------------------------------------------------------------------------
# JSON codec of the state (one warehouse row)
# ---------------------------------------------------------------------------------------------------------------


def _et(t: pd.Timestamp | None) -> str | None:
    return None if t is None else pd.Timestamp(t).tz_convert("UTC").isoformat()


def _dt(s: str | None) -> pd.Timestamp | None:
    return None if s is None else pd.Timestamp(s).tz_convert("UTC")


def _ef(x: float | None) -> float | str | None:
    if x is None:
        return None
    x = float(x)
    if math.isfinite(x):
        return x
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def _df(v: float | str | None) -> float | None:
    return None if v is None else float(v)


def _rule_obj(r: ExitRule) -> dict[str, Any]:
    return {"take_profit": _ef(r.take_profit), "stop_loss": _ef(r.stop_loss), "trailing": _ef(r.trailing),
            "trail_activation": _ef(r.trail_activation), "max_hold_minutes": _ef(r.max_hold_minutes)}


def _rule_from(o: Mapping[str, Any]) -> ExitRule:
    return ExitRule(**{k: _df(v) for k, v in o.items()})


def _position_obj(p: OpenPosition) -> dict[str, Any]:
    m, st = p.meta, p.state
    if st.exit is not None:
        raise EngineInvariantError(f"{m.trade_group_id}: a closed position in the state")
    return {
        "meta": {"trade_group_id": m.trade_group_id, "strategy": m.strategy.value, "symbol": m.symbol,
                 "tier": m.tier.value, "scan_id": m.scan_id, "config_version": int(m.config_version),
                 "size_usd": _ef(m.size_usd), "grid_spacing": _ef(m.grid_spacing)},
        "rule": _rule_obj(st.rule),
        "fee": _ef(st.fee),
        "slippage": _ef(st.slippage),
        "entry_time": _et(st.entry_time),
        "bar_length_ns": int(st.bar_length.value),
        "level_size": _ef(st.level_size),
        "grid_prices": [_ef(x) for x in st.grid_prices],
        "fills": [{"level": f.level, "time": _et(f.time), "raw_price": _ef(f.raw_price),
                   "fill_price": _ef(f.fill_price), "quantity": _ef(f.quantity), "size_usd": _ef(f.size_usd),
                   "fee_usd": _ef(f.fee_usd), "slippage_usd": _ef(f.slippage_usd), "fill_kind": f.fill_kind}
                  for f in st.fills],
        "avg_entry": _ef(st.avg_entry),
        "take_profit_price": _ef(st.take_profit_price),
        "stop_price": _ef(st.stop_price),
        "activation_price": _ef(st.activation_price),
        "high_water": _ef(st.high_water),
        "last_time": _et(st.last_time),
    }


def _position_from(o: Mapping[str, Any]) -> OpenPosition:
    m = o["meta"]
    meta = TradeMeta(m["trade_group_id"], Strategy(m["strategy"]), m["symbol"], Tier(m["tier"]), m["scan_id"],
                     int(m["config_version"]), _df(m["size_usd"]), _df(m["grid_spacing"]))
    st = PositionState(
        rule=_rule_from(o["rule"]), fee=_df(o["fee"]), slippage=_df(o["slippage"]), entry_time=_dt(o["entry_time"]),
        bar_length=pd.Timedelta(int(o["bar_length_ns"]), unit="ns"), level_size=_df(o["level_size"]),
        grid_prices=tuple(_df(x) for x in o["grid_prices"]),
        fills=[GridFill(int(f["level"]), _dt(f["time"]), _df(f["raw_price"]), _df(f["fill_price"]),
                        _df(f["quantity"]), _df(f["size_usd"]), _df(f["fee_usd"]), _df(f["slippage_usd"]),
                        f["fill_kind"]) for f in o["fills"]],
        avg_entry=_df(o["avg_entry"]), take_profit_price=_df(o["take_profit_price"]),
        stop_price=_df(o["stop_price"]), activation_price=_df(o["activation_price"]),
        high_water=_df(o["high_water"]), last_time=_dt(o["last_time"]), exit=None,
    )
    return OpenPosition(meta, st)


def _order_obj(o: EntryOrder) -> dict[str, Any]:
    return {"strategy": o.strategy.value, "symbol": o.symbol, "tier": o.tier.value, "scan_id": o.scan_id,
            "decided_at": _et(o.decided_at), "expires_at": _et(o.expires_at), "size_usd": _ef(o.size_usd),
            "rule": _rule_obj(o.rule), "fee": _ef(o.fee), "slippage": _ef(o.slippage), "levels": int(o.levels),
            "spacing": _ef(o.spacing), "config_version": int(o.config_version), "regime": o.regime,
            "confidence": _ef(o.confidence), "confidence_source": o.confidence_source}


def _order_from(o: Mapping[str, Any]) -> EntryOrder:
    return EntryOrder(Strategy(o["strategy"]), o["symbol"], Tier(o["tier"]), o["scan_id"], _dt(o["decided_at"]),
                      _dt(o["expires_at"]), _df(o["size_usd"]), _rule_from(o["rule"]), _df(o["fee"]),
                      _df(o["slippage"]), int(o["levels"]), _df(o["spacing"]), int(o["config_version"]),
                      o["regime"], _df(o["confidence"]), o["confidence_source"])


def _protection_obj(p: ProtectionState) -> dict[str, Any]:
    lim, ls, dl, op = p.limiter, p.loss_streak, p.daily_loss, p.operator
    return {
        "limiter": {"cycle_point": _et(lim.cycle_point),
                    "symbols": {s: {"stops": int(v.stops), "cooldown_until": _et(v.cooldown_until),
                                    "banned_until": _et(v.banned_until)} for s, v in sorted(lim.symbols.items())}},
        "loss_streak": {"cycle_point": _et(ls.cycle_point), "count": int(ls.count), "paused_at": _et(ls.paused_at),
                        "paused_until": _et(ls.paused_until)},
        "daily_loss": {"cycle_point": _et(dl.cycle_point), "day": _et(dl.day), "e0": _ef(dl.e0),
                       "e0_at": _et(dl.e0_at), "latched_at": _et(dl.latched_at)},
        "operator": {"cycle_point": _et(op.cycle_point), "paused": bool(op.paused), "who": op.who, "why": op.why,
                     "since": _et(op.since)},
    }


def _protection_from(o: Mapping[str, Any]) -> ProtectionState:
    lim, ls, dl, op = o["limiter"], o["loss_streak"], o["daily_loss"], o["operator"]
    return ProtectionState(
        limiter=LimiterState(_dt(lim["cycle_point"]), {
            s: SymbolLimit(int(v["stops"]), _dt(v["cooldown_until"]), _dt(v["banned_until"]))
            for s, v in lim["symbols"].items()}),
        loss_streak=LossStreakState(_dt(ls["cycle_point"]), int(ls["count"]), _dt(ls["paused_at"]),
                                    _dt(ls["paused_until"])),
        daily_loss=DailyLossState(_dt(dl["cycle_point"]), _dt(dl["day"]), _df(dl["e0"]), _dt(dl["e0_at"]),
                                  _dt(dl["latched_at"])),
        operator=OperatorState(_dt(op["cycle_point"]), bool(op["paused"]), op["who"], op["why"], _dt(op["since"])),
    )


def _state_to_obj(s: EngineState) -> dict[str, Any]:
    return {
        "version": STATE_VERSION,
        "cursor": _et(s.cursor),
        "config_version": s.config_version,
        "watermark": _et(s.watermark),
        "positions": [_position_obj(p) for p in s.positions],
        "pending_orders": [_order_obj(o) for o in s.pending_orders],
        "manual_pending": [{"time": _et(e.time), "trade_group_id": e.trade_group_id, "who": e.who, "why": e.why}
                           for e in s.manual_pending],
        "last_bars": {sym: {"time": _et(b.time), "close": _ef(b.close)} for sym, b in sorted(s.last_bars.items())},
        "protection": _protection_obj(s.protection),
        "shift": {"cycle_point": _et(s.shift.cycle_point),
                  "last_best": s.shift.last_best.value if s.shift.last_best is not None else None,
                  "shifted_at": {k.value: _et(v) for k, v in sorted(s.shift.shifted_at.items(),
                                                                     key=lambda kv: kv[0].value)}},
    }


def _state_from_obj(o: Mapping[str, Any]) -> EngineState:
    if o.get("version") != STATE_VERSION:
        raise EngineInputError(f"engine state version {o.get('version')!r}, expected {STATE_VERSION}")
    sh = o["shift"]
    return EngineState(
        cursor=_dt(o["cursor"]),
        positions=tuple(_position_from(p) for p in o["positions"]),
        pending_orders=tuple(_order_from(x) for x in o["pending_orders"]),
        manual_pending=tuple(ManualClose(_dt(e["time"]), e["trade_group_id"], e["who"], e["why"])
                             for e in o["manual_pending"]),
        last_bars={sym: LastBar(_dt(b["time"]), _df(b["close"])) for sym, b in o["last_bars"].items()},
        protection=_protection_from(o["protection"]),
        shift=ShiftState(_dt(sh["cycle_point"]), BestStrategy(sh["last_best"]) if sh["last_best"] else None,
                         {Strategy(k): _dt(v) for k, v in sh["shifted_at"].items()}),
        watermark=_dt(o["watermark"]),
        config_version=o["config_version"],
    )


__all__: Sequence[str] = (
    "BarStore",
    "EngineInputError",
    "EngineInputs",
    "EngineInvariantError",
    "EngineOutputs",
    "EngineState",
    "EntryOrder",
    "LastBar",
    "ManualClose",
    "NOTIFICATION_KINDS",
    "OpenPosition",
    "next_cycle_points",
    "run_engine",
)
