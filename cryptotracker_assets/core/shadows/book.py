"""Shadow trades inside the engine fold (SPEC §10.2): the engine steps shadow positions as it steps real ones.

At step 6 of a cycle point T, every **eligible** scan row (step 1 of §3.4 passed, and a setup fires under production
or a variation, re-evaluated from the row's stored features) gets one decision row per applicable variation with
``would_take``: the variation's setup fires, the confidence reaches its threshold (the rule threshold for every
variation without a champion in use), regime ≠ PANIC and the strategy is not volatility-disabled. Portfolio gates do
not apply. A take opens an entry order unless the same variation × symbol × strategy still has an open shadow
(``shadow_open``), except CHAMPION on a production TAKE. Orders fill like real ones (the open of the first base bar in
[T, T + ``engine.entry_timeout_min``) once visible, with slippage) or expire; positions are stepped by the engine's
stepper (:func:`..exits.step`, with its quiet-block fast path) on the same bars as real positions, so a CHAMPION
shadow of a TAKE is the real trade unless a strategy shift, a manual or a no-data close ended the real one. No-data
closes (SPEC §5.2) of shadows happen only at cycle points on the ``shadow.evaluate_every_min`` UTC grid.

Rows: :data:`DECISION_COLUMNS` (table ``shadow_outcomes``, one per eligible scan row × variation, written at T) and
:data:`EXIT_COLUMNS` (table ``shadow_exits``, one per take when it closes or its order expires). The outcome of a
shadow — PENDING until its exit row exists — is derived from the two (:mod:`.outcomes`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from ..common import NS_PER_MIN, from_ns
from ..config import Config, Strategy, Tier
from ..exits import ExitReason, ExitRule, PositionState, close_position, pass_quietly, quiet_through, step
from ..ledger import grid_shape
from ..regime import Regime
from ..setups import DecisionReason
from .levels import NO_BAR, NO_HOLD, Levels
from .variations import CHAMPION, Variation, applicable

# Why a variation did not open (null when it opened).
NO_SETUP = "no_setup"
BELOW_THRESHOLD = "ml_below_threshold"
NO_CONFIDENCE = "no_confidence"  # a champion in use, but no confidence stored for a variation-only setup
NO_TARGETS = "no_model_targets"  # ML_TRUST without the champion's regressor targets
REGIME_PANIC = "regime_panic"
STRATEGY_DISABLED = "strategy_disabled"
SHADOW_OPEN = "shadow_open"
SKIP_REASONS = (NO_SETUP, NO_CONFIDENCE, BELOW_THRESHOLD, NO_TARGETS, REGIME_PANIC, STRATEGY_DISABLED, SHADOW_OPEN)

DECISION_COLUMNS: tuple[str, ...] = (
    "shadow_id", "scan_id", "timestamp", "symbol", "tier", "strategy", "variation", "would_take", "opened",
    "skip_reason", "production_decision", "production_take", "confidence", "threshold", "setup_value",
    "setup_threshold", "regime", "size_usd", "take_profit", "stop_loss", "trail", "trail_activation", "max_hold_h",
    "grid_levels", "grid_spacing", "config_version",
)
EXIT_COLUMNS: tuple[str, ...] = (
    "shadow_id", "scan_id", "variation", "strategy", "symbol", "tier", "decided_at", "closed_at", "expired",
    "entry_time", "exit_time", "exit_reason", "outcome", "avg_entry", "exit_fill", "size_usd", "pnl_usd", "pnl_pct",
    "hold_h", "grid_fills", "no_data", "fees_usd", "high_water",
)
_STEP1 = frozenset(r.value for r in DecisionReason if r.step == 1)
_STRATEGY = {s.value: s for s in Strategy}
_NS_PER_H = 60 * NS_PER_MIN


def shadow_outcome(reason: ExitReason, pnl_usd: float) -> str:
    """TIMEOUT for a ``time_exit``, else WIN if net P&L > 0, else LOSS (SPEC §0.4, §10.2)."""
    if reason is ExitReason.TIME_EXIT:
        return "TIMEOUT"
    return "WIN" if pnl_usd > 0 else "LOSS"


@dataclass(frozen=True)
class ShadowMeta:
    """What a shadow take carries besides its stepper state."""

    shadow_id: str
    scan_id: str
    variation: str
    strategy: Strategy
    symbol: str
    tier: Tier
    decided_at: pd.Timestamp
    size_usd: float  # G × the variation's size multiplier (the whole grid for DCA)
    levels: int
    spacing: float
    config_version: int
    production_take: bool

    @property
    def key(self) -> tuple[str, str, Strategy]:
        return self.variation, self.symbol, self.strategy


@dataclass(frozen=True)
class ShadowOrder:
    """A shadow take waiting for its entry bar (decided at ``meta.decided_at``, expiring at ``expires_at``)."""

    meta: ShadowMeta
    expires_at: pd.Timestamp
    rule: ExitRule
    fee: float
    slippage: float


@dataclass(frozen=True)
class ShadowState:
    """The shadows the engine carries between cycle points: orders in decision order, open positions by id."""

    orders: tuple[ShadowOrder, ...] = ()
    positions: tuple[tuple[ShadowMeta, PositionState], ...] = ()


def _copy(st: PositionState) -> PositionState:
    return replace(st, fills=list(st.fills))


class ShadowBook:
    """The working copy of the shadows while a run folds over its cycle points (see the module doc)."""

    def __init__(self, state: ShadowState, cfg: Config, champion: Mapping[Strategy, bool],
                 scores: pd.DataFrame | None = None) -> None:
        self.cfg = cfg
        self.enabled = cfg.shadow.enabled
        self.champion = {s: bool(champion.get(s, False)) for s in Strategy}
        self.grid_ns = cfg.shadow.evaluate_every_min * NS_PER_MIN
        self.grace_ns = cfg.exits.no_data_grace_min * NS_PER_MIN
        self.timeout_ns = cfg.engine.entry_timeout_min * NS_PER_MIN
        self.bar_minutes = cfg.engine.base_timeframe.minutes
        self.orders: list[ShadowOrder] = list(state.orders)
        self.positions: dict[str, tuple[ShadowMeta, PositionState]] = {
            m.shadow_id: (m, _copy(st)) for m, st in state.positions}
        self.by_symbol: dict[str, set[str]] = {}
        self.open_keys: dict[tuple, int] = {}
        self.levels = Levels()
        self.codes: dict[str, int] = {}
        self.slot: dict[str, int] = {}
        self.sid_of: dict[int, str] = {}
        for m, st in self.positions.values():
            self._track(m, st)
            self._hold(m.key, 1)
        for o in self.orders:
            self._hold(o.meta.key, 1)
        # the champions' outputs per scan_id: (P(WIN), tp, sl, hold h) — the ML_TRUST targets, and the confidence
        # of rows where only a variation's setup fires
        self.scores: dict[str, tuple[float, float, float, float]] = {}
        if scores is not None and len(scores):
            cols = [scores[c].to_numpy(dtype="float64") for c in ("confidence", "tp_target", "sl_target",
                                                                  "hold_target_h")]
            self.scores = {str(k): (float(a), float(b), float(c), float(d))
                           for k, a, b, c, d in zip(scores.index, *cols)}
        self.decisions: list[dict[str, Any]] = []
        self.exits: list[dict[str, Any]] = []
        self.variations = {s: applicable(cfg, s, self.champion[s]) for s in Strategy}
        self._thresholds = {s: [(v, v.threshold(cfg, s, self.champion[s])) for v in vs]
                            for s, vs in self.variations.items()}
        self._fires: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._eligible: np.ndarray = np.zeros(0, dtype=bool)

    def _track(self, m: ShadowMeta, st: PositionState) -> None:
        self.by_symbol.setdefault(m.symbol, set()).add(m.shadow_id)
        code = self.codes.setdefault(m.symbol, len(self.codes))
        i = self.levels.add(st, code)
        self.slot[m.shadow_id] = i
        self.sid_of[i] = m.shadow_id

    def _sync(self, sid: str) -> PositionState:
        """The position with the high-water mark and last bar time the level arrays moved it to."""
        st = self.positions[sid][1]
        i = self.slot[sid]
        st.high_water = float(self.levels.hw[i])
        last = int(self.levels.last[i])
        st.last_time = None if last == NO_BAR else from_ns(last)
        return st

    def _hold(self, key: tuple, n: int) -> None:
        v = self.open_keys.get(key, 0) + n
        if v:
            self.open_keys[key] = v
        else:
            self.open_keys.pop(key, None)

    # --- the run's scan rows, once ------------------------------------------------------------------------------
    def prepare(self, col: Mapping[str, np.ndarray]) -> None:
        """Re-evaluate every variation's setup over the run's scan rows (vectorised) and mark the eligible rows."""
        n = len(col["strategy"]) if col else 0
        self._eligible = np.zeros(n, dtype=bool)
        if not self.enabled or n == 0:
            return
        strat = col["strategy"]
        step1 = ~pd.Index(col["reason"]).isin(_STEP1)
        any_fire = col["setup"].astype(bool).copy()
        for s in Strategy:
            idx = np.flatnonzero((strat == s.value) & step1)
            for v in self.variations[s]:
                fires, thr = self._fires.setdefault(v.name, (np.zeros(n, dtype=bool), np.full(n, np.nan)))
                if idx.size:
                    f, th = v.setup(self.cfg, s, col["tier"][idx], col["setup_value"][idx], col["volume_surge"][idx],
                                    col["volume_filter_ratio"][idx])
                    if v.name == CHAMPION:  # production's own setup: the same thresholds, decided by the scan
                        f = col["setup"][idx].astype(bool)
                    fires[idx], thr[idx] = f, th
                    any_fire[idx] |= f
        self._eligible = step1 & any_fire

    # --- step 1: entry orders ------------------------------------------------------------------------------------
    def fill_orders(self, t: pd.Timestamp, bars, last_time_ns: Callable[[str], int]) -> None:
        """Fill each order at its entry bar's open once visible (open < T), or expire it at its timeout."""
        waiting = []
        for o in self.orders:
            after = max(o.meta.decided_at.value - 1, last_time_ns(o.meta.symbol))
            a, b = bars.range(o.meta.symbol, after, min(o.expires_at.value, t.value))
            m = o.meta
            if a < b:
                st = PositionState.open(from_ns(bars.ts[a]), float(bars.open[a]), m.size_usd, o.rule, o.fee,
                                        o.slippage, self.bar_minutes, levels=m.levels, spacing=m.spacing)
                self.positions[m.shadow_id] = (m, st)
                self._track(m, st)
            elif t.value >= o.expires_at.value:
                self._hold(m.key, -1)
                self.exits.append(self._exit_row(m, t, None))
            else:
                waiting.append(o)
        self.orders = waiting

    # --- step 2: exits on the symbol's new bars ----------------------------------------------------------------------
    def advance(self, blocks: list[tuple[str, int, int]], bars, t: pd.Timestamp) -> None:
        """Step the open shadows over their symbols' new bars (``blocks``: symbol, first, end — the blocks the engine
        steps real positions on): one vectorised quiet-block test for all of them, the stepper bar by bar for the
        others (in shadow_id order)."""
        lv = self.levels
        mine = [(self.codes[s], a, b) for s, a, b in blocks if a < b and self.by_symbol.get(s)]
        if not mine:
            return
        codes = np.fromiter((c for c, _, _ in mine), dtype="int64", count=len(mine))
        starts = np.fromiter((a for _, a, _ in mine), dtype="int64", count=len(mine))
        ends = np.fromiter((b for _, _, b in mine), dtype="int64", count=len(mine))
        lens = ends - starts
        offs = np.cumsum(lens) - lens
        idx = np.arange(int(lens.sum()), dtype="int64") - np.repeat(offs - starts, lens)
        stats = (np.minimum.reduceat(bars.open[idx], offs), np.minimum.reduceat(bars.low[idx], offs),
                 np.maximum.reduceat(bars.high[idx], offs), np.maximum.reduceat(bars.open[idx], offs))
        first_ts, last_ts = bars.ts[starts], bars.ts[ends - 1]
        block = np.full(len(self.codes), -1, dtype="int64")
        block[codes] = np.arange(len(mine))
        slots = np.flatnonzero(lv.active)
        g = block[lv.code[slots]]
        slots, g = slots[g >= 0], g[g >= 0]
        last = lv.last[slots]
        after = np.where(last == NO_BAR, lv.entry[slots], np.maximum(lv.entry[slots], last + 1))
        shared = after <= first_ts[g]  # the whole block is new to the shadow
        quiet = np.zeros(len(slots), dtype=bool)
        quiet[shared] = lv.quiet(slots[shared], *(x[g[shared]] for x in stats), last_ts[g[shared]])
        qs, qg = slots[quiet], g[quiet]
        lv.hw[qs] = np.maximum(lv.hw[qs], stats[2][qg])
        lv.last[qs] = last_ts[qg]
        rest = sorted((self.sid_of[int(i)], int(k)) for i, k in zip(slots[~quiet], g[~quiet]))
        for sid, k in rest:
            a, b = int(starts[k]), int(ends[k])
            meta = self.positions[sid][0]
            st = self._sync(sid)
            after_i = st.entry_time.value if st.last_time is None else max(st.entry_time.value,
                                                                           st.last_time.value + 1)
            a0 = a + int(np.searchsorted(bars.ts[a:b], after_i, "left"))
            if a0 >= b:
                continue
            if a0 > a:  # entered inside the block: its own statistics, the stepper's own quiet test
                high = float(bars.high[a0:b].max())
                if quiet_through(st, float(bars.open[a0:b].min()), float(bars.low[a0:b].min()), high,
                                 float(bars.open[a0:b].max()), int(bars.ts[b - 1])):
                    pass_quietly(st, high, from_ns(bars.ts[b - 1]))
                    lv.load(self.slot[sid], st)
                    continue
            for i in range(a0, b):
                if step(st, bars.bar(i)) is not None:
                    self._close(meta, st, t)
                    break
            else:
                lv.load(self.slot[sid], st)

    def no_data_closes(self, t: pd.Timestamp, last_close: Callable[[str], float]) -> None:
        """On the evaluation grid: close shadows still open at T ≥ E + max hold + grace at the last known close."""
        if t.value % self.grid_ns or not self.positions:
            return
        lv = self.levels
        due = np.flatnonzero(lv.active & (lv.hold_end != NO_HOLD) & (lv.hold_end <= t.value - self.grace_ns))
        for sid in sorted(self.sid_of[int(i)] for i in due):
            meta = self.positions[sid][0]
            st = self._sync(sid)
            close_position(st, t, last_close(meta.symbol), ExitReason.TIME_EXIT, no_data=True)
            self._close(meta, st, t)

    def _close(self, meta: ShadowMeta, st: PositionState, t: pd.Timestamp) -> None:
        i = self.slot.pop(meta.shadow_id)
        self.levels.remove(i)
        del self.sid_of[i]
        del self.positions[meta.shadow_id]
        self.by_symbol[meta.symbol].discard(meta.shadow_id)
        self._hold(meta.key, -1)
        self.exits.append(self._exit_row(meta, t, st))

    @staticmethod
    def _exit_row(m: ShadowMeta, t: pd.Timestamp, st: PositionState | None) -> dict[str, Any]:
        row = {"shadow_id": m.shadow_id, "scan_id": m.scan_id, "variation": m.variation, "strategy": m.strategy.value,
               "symbol": m.symbol, "tier": m.tier.value, "decided_at": m.decided_at, "closed_at": t}
        if st is None:  # the entry order expired without an entry bar
            return {**row, "expired": True, **{c: None for c in EXIT_COLUMNS if c not in row and c != "expired"}}
        ev = st.exit
        return {**row, "expired": False, "entry_time": st.entry_time, "exit_time": ev.time,
                "exit_reason": ev.reason.value, "outcome": shadow_outcome(ev.reason, ev.pnl_usd),
                "avg_entry": ev.avg_entry, "exit_fill": ev.fill_price, "size_usd": ev.size_usd,
                "pnl_usd": ev.pnl_usd, "pnl_pct": ev.pnl_ratio,
                "hold_h": (ev.time.value - st.entry_time.value) / _NS_PER_H, "grid_fills": len(st.fills),
                "no_data": bool(ev.no_data), "fees_usd": ev.fees_usd, "high_water": ev.high_water}

    # --- step 6: decisions -------------------------------------------------------------------------------------------
    def decide(self, t: pd.Timestamp, a: int, b: int, col: Mapping[str, np.ndarray],
               production: Callable[[int], str], regime: Regime, enabled: Mapping[Strategy, bool],
               size_multiplier: float, vol24h: float) -> None:
        """Decision rows for the eligible scan rows [a, b) of cycle point T, and entry orders for the takes;
        ``production(i)`` is row i's resolved production decision (TAKE / SKIP / NEAR_MISS)."""
        if not self.enabled:
            return
        cfg = self.cfg
        g = cfg.portfolio.position_size_usd * size_multiplier
        for i in np.flatnonzero(self._eligible[a:b]) + a:
            i = int(i)
            s = _STRATEGY[col["strategy"][i]]
            sym, tier = str(col["symbol"][i]), Tier(col["tier"][i])
            conf = float(col["confidence"][i])
            score = self.scores.get(str(col["scan_id"][i])) if self.champion[s] else None
            if not math.isfinite(conf):
                if not self.champion[s]:
                    conf = cfg.ml.rule.confidence  # the rule confidence: the same for every row
                elif score is not None:
                    conf = score[0]  # the champion's P(WIN) of a row only a variation set up
            targets = score[1:] if score is not None and all(math.isfinite(x) for x in score[1:]) else None
            decision = production(i)
            take_i = decision == "TAKE"
            for v, thr in self._thresholds[s]:
                fires, thr_setup = self._fires[v.name]
                reason = None
                if not fires[i]:
                    reason = NO_SETUP
                elif not math.isfinite(conf):
                    reason = NO_CONFIDENCE
                elif conf < thr:
                    reason = BELOW_THRESHOLD
                elif v.ml_trust and targets is None:
                    reason = NO_TARGETS  # no champion regressor outputs for this row
                elif regime is Regime.PANIC:
                    reason = REGIME_PANIC
                elif not enabled[s]:
                    reason = STRATEGY_DISABLED
                would = reason is None
                order = None
                if would:
                    key = (v.name, sym, s)
                    if key in self.open_keys and not (v.name == CHAMPION and take_i):
                        reason = SHADOW_OPEN
                    else:
                        order = self._order(v, s, sym, tier, str(col["scan_id"][i]), t, g, col, i, regime, vol24h,
                                            take_i, targets if v.ml_trust else None)
                        self.orders.append(order)
                        self._hold(key, 1)
                self.decisions.append(self._decision_row(v, i, col, t, would, order, reason, decision, conf, thr,
                                                         float(thr_setup[i])))

    def _order(self, v: Variation, s: Strategy, sym: str, tier: Tier, scan_id: str, t: pd.Timestamp, g: float,
               col: Mapping[str, np.ndarray], i: int, regime: Regime, vol24h: float, take: bool,
               targets: tuple[float, float, float] | None = None) -> ShadowOrder:
        cfg = self.cfg
        levels, spacing = grid_shape(cfg, s, tier)
        meta = ShadowMeta(shadow_id=f"{scan_id}_{v.name}", scan_id=scan_id, variation=v.name, strategy=s, symbol=sym,
                          tier=tier, decided_at=t, size_usd=g * v.size_factor(cfg, float(col["vol_24h"][i])),
                          levels=int(levels), spacing=float(spacing), config_version=cfg.config_version,
                          production_take=take)
        return ShadowOrder(meta, from_ns(t.value + self.timeout_ns),
                           v.exit_rule(cfg, s, tier, vol24h, regime, targets=targets),
                           cfg.costs.taker_fee, cfg.costs.slippage.of(tier))

    def _decision_row(self, v: Variation, i: int, col, t, would: bool, order: ShadowOrder | None, reason,
                      decision: str, conf: float, thr: float, setup_thr: float) -> dict[str, Any]:
        r = order.rule if order is not None else None
        m = order.meta if order is not None else None
        return {
            "shadow_id": f"{col['scan_id'][i]}_{v.name}", "scan_id": str(col["scan_id"][i]), "timestamp": t,
            "symbol": str(col["symbol"][i]), "tier": str(col["tier"][i]), "strategy": str(col["strategy"][i]),
            "variation": v.name, "would_take": would, "opened": order is not None, "skip_reason": reason,
            "production_decision": decision, "production_take": decision == "TAKE",
            "confidence": conf if math.isfinite(conf) else None, "threshold": thr,
            "setup_value": float(col["setup_value"][i]), "setup_threshold": setup_thr, "regime": str(col["regime"][i]),
            "size_usd": m.size_usd if m else None, "take_profit": r.take_profit if r else None,
            "stop_loss": r.stop_loss if r else None, "trail": r.trailing if r else None,
            "trail_activation": r.trail_activation if r else None,
            "max_hold_h": r.max_hold_minutes / 60.0 if r else None, "grid_levels": m.levels if m else None,
            "grid_spacing": m.spacing if m else None, "config_version": self.cfg.config_version,
        }

    # --- results -------------------------------------------------------------------------------------------------------
    def state(self) -> ShadowState:
        return ShadowState(tuple(self.orders),
                           tuple((m, self._sync(sid)) for sid, (m, _) in sorted(self.positions.items())))

    def decision_frame(self) -> pd.DataFrame:
        return decision_frame(self.decisions)

    def exit_frame(self) -> pd.DataFrame:
        return exit_frame(self.exits)


_DECISION_DTYPES = {"timestamp": "datetime64[ns, UTC]", "would_take": "bool", "opened": "bool",
                    "production_take": "bool", "config_version": "int64", "grid_levels": "Int64",
                    **{c: "float64" for c in ("confidence", "threshold", "setup_value", "setup_threshold", "size_usd",
                                              "take_profit", "stop_loss", "trail", "trail_activation", "max_hold_h",
                                              "grid_spacing")}}
_EXIT_DTYPES = {"decided_at": "datetime64[ns, UTC]", "closed_at": "datetime64[ns, UTC]",
                "entry_time": "datetime64[ns, UTC]", "exit_time": "datetime64[ns, UTC]", "expired": "bool",
                "grid_fills": "Int64", "no_data": "boolean",
                **{c: "float64" for c in ("avg_entry", "exit_fill", "size_usd", "pnl_usd", "pnl_pct", "hold_h",
                                          "fees_usd", "high_water")}}


def _typed(rows: list[dict[str, Any]], columns: tuple[str, ...], dtypes: Mapping[str, str]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=list(columns))
    for c, d in dtypes.items():
        if d.startswith("datetime64"):
            df[c] = pd.to_datetime(df[c], utc=True).astype(d)
        else:
            df[c] = df[c].astype(d)
    for c in columns:
        if c not in dtypes:
            df[c] = df[c].astype(object)
    return df


def decision_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Decision rows as a typed frame (:data:`DECISION_COLUMNS`)."""
    return _typed(rows, DECISION_COLUMNS, _DECISION_DTYPES)


def exit_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Exit rows as a typed frame (:data:`EXIT_COLUMNS`)."""
    return _typed(rows, EXIT_COLUMNS, _EXIT_DTYPES)
