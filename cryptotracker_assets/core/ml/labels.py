"""Training labels (SPEC §11.1–§11.2, I-18, I-21): real, simulated and shadow rows with their features known at the
setup time T, outcomes from the entry bar on, weights and regression targets. Pure: frames in, a frame out.

Sources (:func:`build_labels`):

- ``real``: closed paper trades (one per ``trade_group_id``), except ``manual`` and ``strategy_shift_*`` exits
  (I-18). T is the cycle point of the trade's ``scan_id`` (SPEC §0.3: ``{STRATEGY}_{SYMBOL}_{yymmddHHMM}`` of T).
- ``simulated``: every production setup (scan row with ``setup`` true whose data step, §3.4 step 1, passed) that
  did not become a real trade, simulated by the engine's own code: entry at the open of the first base bar with
  open time in [T, T + ``engine.entry_timeout_min``) (none: no row), :func:`~..exits.opening_rule` with the
  ``market_regime`` row at T, :func:`~..ledger.grid_shape`, costs from ``costs.*``, then
  :func:`~..exits.step` bar by bar (with the engine's quiet-block shortcut) and the engine's no-data close at the
  first cycle point ≥ E + max hold + ``exits.no_data_grace_min``. Portfolio gates do not apply. Size G =
  ``portfolio.position_size_usd`` × the regime's size multiplier; under PANIC (multiplier 0: production never
  enters) the plain position size — net pnl_pct, hence label and targets, do not depend on G.
- ``shadow``: final variation takes (WIN / LOSS / TIMEOUT, not CHAMPION) that differ from the scan's production
  trade (the real trade, whatever its exit, or the simulated one): no production trade, other parameters (size,
  take profit, stop, trail, activation, max hold, grid) or, once both are closed, another exit time or reason.
  One per (scan, parameters): the highest weight, then the variation name. Per strategy, only with ≥
  ``ml.shadow_weights.min_real_rows`` real rows in this build, and at most ``max_per_real`` × those rows, highest
  weight first (ties: older setup, then label_id).

Shadow weight (``ml.shadow_weights.*``) = ``base`` + ``matched_reality`` if ``matched_real_trade`` +
``variation_win_rate`` if the variation's win rate (net P&L > 0; same strategy) over the shadows it closed in
[T − ``variation_window_h``, T) exceeds ``min_variation_win_rate`` (no closed shadow: no bonus) + ``age`` if
``as_of`` − T > ``age_min_d`` days + ``regime_match`` if the regime at T equals ``current_regime``; capped at ``cap``.
Real and simulated rows weigh 1 (the SPEC §11.1 table; no config key).

Finality: a row exists only once every value is final, i.e. ``outcome_end`` = max(exit time, E + max hold) ≤
``bars_end`` (bars with open time < ``bars_end`` are all stored): the exit is known and the target window is
complete. The label then depends only on the bars with open time in [E, outcome_end] (I-21); its features only on
data before T (:func:`.features.model_feature_frame`, ``max_feature_time`` < T ≤ E = ``first_label_bar``).

Targets over the base bars with open time in [E, E + max hold) (the position's own max hold), A = the final
average entry (the DCA average after every grid fill up to the exit; the entry fill otherwise): ``tp_target`` =
min(max high / A − 1, ``ml.targets.tp_cap``); ``sl_target`` = max(1 − min low from E through the first bar of that
max high / A, ``sl_floor``); ``hold_target_h`` = hours from E to that bar's open; ``size_mult_target`` (DCA only) =
clip(1 + net pnl_pct / sl, ``size_mult_range``), sl = the position's stop after widening. No bar in the window:
targets NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from ..common import NS_PER_DAY, NS_PER_HOUR, NS_PER_MIN, UTC_NS, ceil_ns, from_ns, to_ns
from ..config import Config, Strategy, Tier
from ..engine import BarStore
from ..exits import (DEFAULT_BLOCK, ExitEvent, ExitReason, PositionState, close_position, opening_rule, pass_quietly,
                     quiet_through, step)
from ..ledger import LEDGER_COLUMNS, SCAN_ID_RE, Side, grid_shape
from ..regime import Regime, size_multiplier, vol24h_measure
from ..setups import DecisionReason
from ..shadows.variations import CHAMPION
from ..universe import Universe
from .features import MODEL_FEATURES, feature_set_version, model_feature_frame

REAL, SIMULATED, SHADOW = "real", "simulated", "shadow"
FINAL_OUTCOMES = ("WIN", "LOSS", "TIMEOUT")
REAL_WEIGHT = 1.0  # SPEC §11.1: real and simulated rows weigh 1 (the table's value; there is no config key)
EXCLUDED_EXITS = frozenset({ExitReason.MANUAL.value} | {r.value for r in ExitReason
                                                         if r.value.startswith("strategy_shift_")})
_STEP1 = frozenset(r.value for r in DecisionReason if r.step == 1)
_PARAMS = ("size_usd", "take_profit", "stop_loss", "trail", "trail_activation", "max_hold_h", "grid_levels",
           "grid_spacing")

# (column, description) of a training label row; the MODEL_FEATURES columns follow.
LABEL_SCHEMA: tuple[tuple[str, str], ...] = (
    ("label_id", "`{scan_id}|{source}|{variation or -}`: unique and deterministic."),
    ("source", "real | simulated | shadow."),
    ("scan_id", "SPEC §0.3 scan_id (= setup_id) of the setup at T."),
    ("variation", "Shadow variation (§10.1); null for real and simulated rows."),
    ("strategy", "DCA, SWING or CHANNEL."),
    ("symbol", "Universe symbol."),
    ("tier", "tier(symbol)."),
    ("setup_time", "T: the cycle point of the setup (UTC); the features are those known at T."),
    ("entry_time", "E: open time of the entry bar (UTC)."),
    ("first_label_bar", "Open time of the first bar the outcome reads (= E)."),
    ("exit_time", "Open time of the exit bar (T of a no-data close)."),
    ("exit_reason", "SPEC §0.4 exit_reason."),
    ("outcome_end", "max(exit time, E + max hold): when every value of the row is final (UTC)."),
    ("final_day", "UTC day (00:00) of outcome_end: the partition of the row."),
    ("max_feature_time", "Open time of the latest base bar any feature may read (< T ≤ E)."),
    ("weight", "Sample weight: 1 for real and simulated rows, the §11.1 shadow weight otherwise."),
    ("label", "1 if net P&L > 0, else 0 (int64)."),
    ("pnl_pct", "Net P&L / filled size (fraction)."),
    ("tp_target", "min(max high over [E, E + max hold) / A − 1, ml.targets.tp_cap) (fraction)."),
    ("sl_target", "max(1 − min low from E through the max-high bar / A, ml.targets.sl_floor) (fraction)."),
    ("hold_target_h", "Hours from E to the (first) max-high bar."),
    ("size_mult_target", "DCA only: clip(1 + pnl_pct / widened stop, ml.targets.size_mult_range); else null."),
    ("feature_set_version", "Feature-set version of MODEL_FEATURES (the registry hash)."),
    ("regime", "Regime at T, the one the position opened with."),
)
LABEL_ROW_COLUMNS: tuple[str, ...] = tuple(c for c, _ in LABEL_SCHEMA) + MODEL_FEATURES
_TIMES = ("setup_time", "entry_time", "first_label_bar", "exit_time", "outcome_end", "final_day", "max_feature_time")
_TEXT = ("label_id", "source", "scan_id", "variation", "strategy", "symbol", "tier", "exit_reason",
         "feature_set_version", "regime")
# Per-row inputs collected from each source before targets and features are added.
_ROW_KEYS = ("source", "scan_id", "variation", "strategy", "symbol", "tier", "setup_time", "entry_time",
             "exit_time", "exit_reason", "avg_entry", "stop_loss", "max_hold_ns", "pnl_usd", "pnl_pct", "regime",
             "weight")


def setup_time_of(scan_id: str) -> pd.Timestamp:
    """T of a SPEC §0.3 scan_id (``{STRATEGY}_{SYMBOL}_{yymmddHHMM}``, UTC); a malformed id raises."""
    m = SCAN_ID_RE.match(str(scan_id))
    if m is None:
        raise ValueError(f"malformed scan_id {scan_id!r}")
    return pd.to_datetime(m.group("stamp"), format="%y%m%d%H%M").tz_localize("UTC")


def build_labels(cfg: Config, *, scan_rows: pd.DataFrame, ledger: pd.DataFrame, bars: BarStore | pd.DataFrame,
                 ml_rows: pd.DataFrame, daily_rows: pd.DataFrame, regime_rows: pd.DataFrame,
                 shadow_outcomes: pd.DataFrame | None, as_of: Any, current_regime: Regime | str,
                 bars_end: Any = None, tier_of: Callable[[str], Tier] | None = None) -> pd.DataFrame:
    """The training labels of SPEC §11.1 that are final by ``bars_end`` (see the module doc), in training order
    (setup_time, scan_id, source, variation with nulls first), columns :data:`LABEL_ROW_COLUMNS`.

    Inputs: ``scan_rows`` (scan history, :data:`~..setups.SCAN_ROW_COLUMNS`), ``ledger`` (paper_trades rows,
    :data:`~..ledger.LEDGER_COLUMNS`), ``bars`` (base bars as a :class:`~..engine.BarStore` or its frame, covering
    the entries and target windows), the feature frames of :func:`.features.model_feature_frame` (``ml_rows``,
    ``daily_rows``, ``regime_rows``: the ``market_regime`` rows, which also give each simulated setup its regime
    and BTC vol24h at T; a simulated setup without its row raises), ``shadow_outcomes`` (:func:`~..shadows.outcomes.derive_outcomes` rows, or
    None), ``as_of`` (UTC time the shadow age bonus is measured at), ``current_regime`` (the regime the shadow
    regime bonus compares with), ``bars_end`` (bars with open time < it are complete; default: the end of the
    newest bar) and ``tier_of`` (default ``Universe.tier``).
    """
    store = bars if isinstance(bars, BarStore) else BarStore.from_frame(bars)
    base_ns = cfg.engine.base_timeframe.minutes * NS_PER_MIN
    if bars_end is not None:
        end_ns = to_ns(bars_end, "bars_end")
    else:
        end_ns = int(store.ts.max()) + base_ns if len(store.ts) else np.iinfo("int64").min
    tier_of = tier_of or Universe.from_config(cfg).tier
    current = Regime.parse(current_regime)
    as_of_ns = to_ns(as_of, "as_of")
    market = _market_lookup(regime_rows, cfg)

    real, production = _real_rows(ledger, scan_rows, market)
    simulated, sim_production = _simulated_rows(cfg, scan_rows, set(production), store, market, end_ns)
    production.update(sim_production)
    rows = real + simulated
    shadows = _shadow_rows(cfg, shadow_outcomes, production, current, as_of_ns) if shadow_outcomes is not None \
        else []
    rows += shadows
    frame = _finalise(cfg, rows, store, end_ns)
    frame = _limit_shadows(cfg, frame)
    if frame.empty:
        return _empty()
    keys = frame[["symbol", "setup_time"]]
    feats = model_feature_frame(keys, scan_rows, ml_rows, daily_rows, regime_rows, tier_of, cfg=cfg)
    frame["max_feature_time"] = feats["max_feature_time"].array
    frame["feature_set_version"] = feature_set_version(cfg)
    for c in MODEL_FEATURES:
        frame[c] = feats[c].to_numpy(dtype="float64")
    frame["label_id"] = (frame["scan_id"] + "|" + frame["source"] + "|"
                         + frame["variation"].where(frame["variation"].notna(), "-"))
    if frame["label_id"].duplicated().any():
        raise ValueError(f"duplicate label ids: {frame.loc[frame['label_id'].duplicated(), 'label_id'].tolist()[:3]}")
    frame = frame.sort_values(["setup_time", "scan_id", "source", "variation"], na_position="first",
                              kind="mergesort").reset_index(drop=True)
    return _typed(frame)


# ---------------------------------------------------------------------------------------------------------------
# Inputs per source
# ---------------------------------------------------------------------------------------------------------------


def _market_lookup(regime_rows: pd.DataFrame, cfg: Config) -> dict[int, tuple[str, float]]:
    """T (ns) → (regime, BTC vol24h) of the ``market_regime`` rows."""
    vol = f"btc_{vol24h_measure(cfg)}"
    missing = [c for c in ("timestamp", "regime", vol) if c not in regime_rows.columns]
    if missing:
        raise ValueError(f"market_regime rows lack columns {missing}")
    ts = pd.DatetimeIndex(regime_rows["timestamp"]).tz_convert("UTC").as_unit("ns").asi8
    return dict(zip(ts.tolist(), zip(regime_rows["regime"].astype(str).tolist(),
                                     regime_rows[vol].to_numpy(dtype="float64").tolist())))


def _real_rows(ledger: pd.DataFrame, scan_rows: pd.DataFrame, market: dict[int, tuple[str, float]]
               ) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """The real rows (closed, allowed exits) and every trade group's production parameters / exit by scan_id."""
    missing = [c for c in LEDGER_COLUMNS if c not in ledger.columns]
    if missing:
        raise ValueError(f"ledger lacks columns {missing}")
    production: dict[str, dict[str, Any]] = {}
    buys = ledger[ledger["side"].to_numpy() == Side.BUY.value]
    sells = ledger[ledger["side"].to_numpy() == Side.SELL.value]
    if sells["trade_group_id"].duplicated().any():
        raise ValueError("ledger has several SELL rows for one trade_group_id")
    groups = buys.drop_duplicates("trade_group_id")
    for g in groups.to_dict("records"):
        production[str(g["scan_id"])] = {
            "size_usd": float(g["group_size_usd"]), "take_profit": float(g["take_profit"]),
            "stop_loss": float(g["stop_loss"]), "trail": float(g["trailing"]),
            "trail_activation": float(g["trail_activation"]), "max_hold_h": float(g["max_hold_min"]) / 60.0,
            "grid_levels": float(g["grid_levels"]), "grid_spacing": float(g["grid_spacing"]),
            "exit_time": None, "exit_reason": None}
    regime_of = dict(zip(scan_rows["scan_id"].astype(str), scan_rows["regime"])) if len(scan_rows) else {}
    rows = []
    for r in sells.to_dict("records"):
        sid = str(r["scan_id"])
        reason = ExitReason.parse(r["exit_reason"]).value
        prod = production.setdefault(sid, {})
        prod.update(exit_time=pd.Timestamp(r["bar_time"]), exit_reason=reason)
        if reason in EXCLUDED_EXITS:
            continue
        t = setup_time_of(sid)
        regime = regime_of.get(sid)
        if regime is None:
            regime = market.get(t.value, (None, math.nan))[0]
        rows.append({
            "source": REAL, "scan_id": sid, "variation": None, "strategy": Strategy.parse(r["strategy"]).value,
            "symbol": str(r["symbol"]), "tier": str(r["tier"]), "setup_time": t, "entry_time": r["entry_time"],
            "exit_time": r["bar_time"], "exit_reason": reason, "avg_entry": float(r["avg_entry"]),
            "stop_loss": float(r["stop_loss"]), "max_hold_ns": int(round(float(r["max_hold_min"]) * NS_PER_MIN)),
            "pnl_usd": float(r["pnl_usd"]), "pnl_pct": float(r["pnl_pct"]), "regime": regime,
            "weight": REAL_WEIGHT})
    return rows, production


def _simulated_rows(cfg: Config, scan_rows: pd.DataFrame, taken: set[str], store: BarStore,
                    market: dict[int, tuple[str, float]], end_ns: int
                    ) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Production setups that are not real trades, simulated with production exits (final ones become rows)."""
    if scan_rows.empty:
        return [], {}
    reason = scan_rows["reason"].astype(object).to_numpy()
    ok = (scan_rows["setup"].fillna(False).to_numpy(dtype=bool) & ~pd.Index(reason).isin(_STEP1)
          & (scan_rows["regime"].astype(str).to_numpy() != Regime.UNKNOWN.value)
          & ~scan_rows["scan_id"].astype(str).isin(taken).to_numpy())
    setups = scan_rows.loc[ok].drop_duplicates("scan_id")
    timeout_ns = cfg.engine.entry_timeout_min * NS_PER_MIN
    rows, production = [], {}
    for r in setups.to_dict("records"):
        sid, sym = str(r["scan_id"]), str(r["symbol"])
        s, tier = Strategy.parse(r["strategy"]), Tier.parse(r["tier"])
        t = pd.Timestamp(r["timestamp"]).tz_convert("UTC")
        if t.value not in market:
            raise ValueError(f"{sid}: no market_regime row at {t}")
        regime_s, vol24h = market[t.value]
        regime = Regime.parse(regime_s)
        a, b = store.range(sym, t.value - 1, min(t.value + timeout_ns, end_ns))
        if a >= b:
            continue  # no entry bar (expired, or not seen yet)
        mult = size_multiplier(regime, cfg)
        size = cfg.portfolio.position_size_usd * (mult if regime is not Regime.PANIC else 1.0)
        rule = opening_rule(cfg, s, tier, vol24h, regime)
        levels, spacing = grid_shape(cfg, s, tier)
        st = PositionState.open(from_ns(store.ts[a]), float(store.open[a]), size, rule, cfg.costs.taker_fee,
                                cfg.costs.slippage.of(tier), cfg.engine.base_timeframe.minutes, levels=int(levels),
                                spacing=float(spacing))
        ev = simulate_position(st, store, sym, cfg, end_ns)
        production[sid] = {"size_usd": size, "take_profit": rule.take_profit, "stop_loss": rule.stop_loss,
                           "trail": rule.trailing, "trail_activation": rule.trail_activation,
                           "max_hold_h": rule.max_hold_minutes / 60.0, "grid_levels": float(levels),
                           "grid_spacing": float(spacing), "exit_time": ev.time if ev else None,
                           "exit_reason": ev.reason.value if ev else None}
        if ev is None:
            continue
        rows.append({
            "source": SIMULATED, "scan_id": sid, "variation": None, "strategy": s.value, "symbol": sym,
            "tier": tier.value, "setup_time": t, "entry_time": st.entry_time, "exit_time": ev.time,
            "exit_reason": ev.reason.value, "avg_entry": ev.avg_entry, "stop_loss": rule.stop_loss,
            "max_hold_ns": st.max_hold_ns, "pnl_usd": ev.pnl_usd, "pnl_pct": ev.pnl_ratio, "regime": regime.value,
            "weight": REAL_WEIGHT})
    return rows, production


def simulate_position(st: PositionState, store: BarStore, symbol: str, cfg: Config, end_ns: int
                      ) -> ExitEvent | None:
    """Step an opened position over the symbol's bars from its entry bar on, as the engine does: :func:`step` bar
    by bar, blocks that :func:`quiet_through` clears passed quietly, and the no-data close (``time_exit``,
    ``no_data``) at the first cycle point T ≥ E + max hold + ``exits.no_data_grace_min`` at the last known close.
    Only bars with open time < ``end_ns`` are read; None while the position is still open there."""
    hold = st.max_hold_ns
    nd_ns = None
    if hold is not None:
        nd_ns = ceil_ns(st.entry_time.value + hold + cfg.exits.no_data_grace_min * NS_PER_MIN,
                        cfg.engine.cycle_min * NS_PER_MIN)
    stop_ns = min(end_ns, nd_ns) if nd_ns is not None else end_ns
    a, b = store.range(symbol, st.entry_time.value - 1, stop_ns)
    i = a
    while i < b:
        j = min(i + DEFAULT_BLOCK, b)
        high = float(store.high[i:j].max())
        if quiet_through(st, float(store.open[i:j].min()), float(store.low[i:j].min()), high,
                         float(store.open[i:j].max()), int(store.ts[j - 1])):
            pass_quietly(st, high, from_ns(store.ts[j - 1]))
        else:
            for k in range(i, j):
                ev = step(st, store.bar(k))
                if ev is not None:
                    return ev
        i = j
    if nd_ns is not None and nd_ns <= end_ns and b > a:
        return close_position(st, from_ns(nd_ns), float(store.close[b - 1]), ExitReason.TIME_EXIT, no_data=True)
    return None


def _shadow_rows(cfg: Config, outcomes: pd.DataFrame, production: dict[str, dict[str, Any]], current: Regime,
                 as_of_ns: int) -> list[dict[str, Any]]:
    """Final, differing variation takes with their weights (one per scan × parameters; the cap comes later)."""
    w = cfg.ml.shadow_weights
    o = outcomes.reset_index(drop=True)
    final = (o["opened"].fillna(False).to_numpy(dtype=bool) & ~o["expired"].fillna(False).to_numpy(dtype=bool)
             & o["outcome"].isin(FINAL_OUTCOMES).to_numpy() & (o["variation"].astype(str) != CHAMPION).to_numpy())
    wins = _win_rates(o, final, cfg)
    rows = []
    records = o.to_dict("records")
    for i in np.flatnonzero(final):
        r = records[i]
        sid = str(r["scan_id"])
        params = {"size_usd": float(r["order_size_usd"]), **{p: float(r[p]) for p in _PARAMS if p != "size_usd"}}
        if not _differs(params, pd.Timestamp(r["exit_time"]), str(r["exit_reason"]), production.get(sid)):
            continue
        t = pd.Timestamp(r["timestamp"]).tz_convert("UTC")
        weight = w.base
        matched = r["matched_real_trade"]
        if not pd.isna(matched) and bool(matched):
            weight += w.matched_reality
        if wins[i] > w.min_variation_win_rate:
            weight += w.variation_win_rate
        if as_of_ns - t.value > w.age_min_d * NS_PER_DAY:
            weight += w.age
        if str(r["regime"]) == current.value:
            weight += w.regime_match
        rows.append({
            "source": SHADOW, "scan_id": sid, "variation": str(r["variation"]),
            "strategy": Strategy.parse(r["strategy"]).value, "symbol": str(r["symbol"]), "tier": str(r["tier"]),
            "setup_time": t, "entry_time": r["entry_time"], "exit_time": r["exit_time"],
            "exit_reason": ExitReason.parse(r["exit_reason"]).value, "avg_entry": float(r["avg_entry"]),
            "stop_loss": params["stop_loss"], "max_hold_ns": int(round(params["max_hold_h"] * 60 * NS_PER_MIN)),
            "pnl_usd": float(r["pnl_usd"]), "pnl_pct": float(r["pnl_pct"]), "regime": str(r["regime"]),
            "weight": min(weight, w.cap), "_params": tuple(np.round([params[p] for p in _PARAMS], 12).tolist())})
    # one per (scan, parameters): the highest weight, then the variation name
    rows.sort(key=lambda x: (x["scan_id"], x["_params"], -x["weight"], x["variation"]))
    out, seen = [], set()
    for x in rows:
        k = (x["scan_id"], x["_params"])
        if k not in seen:
            seen.add(k)
            out.append({c: x[c] for c in _ROW_KEYS})
    return out


def _differs(params: dict[str, float], exit_time: pd.Timestamp, exit_reason: str,
             prod: dict[str, Any] | None) -> bool:
    """A shadow differs from its scan's production trade: none, other parameters, or another exit once closed."""
    if not prod or "size_usd" not in prod:
        return True
    if any(not math.isclose(params[p], prod[p], rel_tol=1e-9, abs_tol=1e-12) for p in _PARAMS):
        return True
    if prod.get("exit_time") is not None:
        return prod["exit_time"] != exit_time or prod["exit_reason"] != exit_reason
    return False


def _win_rates(o: pd.DataFrame, final: np.ndarray, cfg: Config) -> np.ndarray:
    """Per outcome row, its variation's win rate (same strategy) over the shadows closed in [T − window, T); NaN
    without any."""
    window_ns = int(round(cfg.ml.shadow_weights.variation_window_h * NS_PER_HOUR))
    out = np.full(len(o), np.nan)
    done = o.loc[final]
    if done.empty:
        return out
    closed = pd.DatetimeIndex(done["closed_at"]).tz_convert("UTC").as_unit("ns").asi8
    won = (done["pnl_usd"].to_numpy(dtype="float64") > 0).astype("int64")
    t_all = pd.DatetimeIndex(o["timestamp"]).tz_convert("UTC").as_unit("ns").asi8
    key_all = o["strategy"].astype(str) + "|" + o["variation"].astype(str)
    key_done = key_all[final]
    for k in pd.unique(key_done):
        sel = (key_done == k).to_numpy()
        order = np.argsort(closed[sel], kind="mergesort")
        c = closed[sel][order]
        cum = np.concatenate([[0], np.cumsum(won[sel][order])])
        rows = np.flatnonzero(((key_all == k).to_numpy()) & final)
        t = t_all[rows]
        lo, hi = np.searchsorted(c, t - window_ns, "left"), np.searchsorted(c, t, "left")
        n = hi - lo
        with np.errstate(invalid="ignore", divide="ignore"):
            out[rows] = np.where(n > 0, (cum[hi] - cum[lo]) / n, np.nan)
    return out


# ---------------------------------------------------------------------------------------------------------------
# Finality, targets, the shadow cap, types
# ---------------------------------------------------------------------------------------------------------------


def _finalise(cfg: Config, rows: list[dict[str, Any]], store: BarStore, end_ns: int) -> pd.DataFrame:
    """Rows with outcome_end ≤ end_ns, with label, outcome_end, final_day and the targets."""
    if not rows:
        return pd.DataFrame(columns=list(_ROW_KEYS))
    f = pd.DataFrame(rows, columns=list(_ROW_KEYS))
    for c in ("setup_time", "entry_time", "exit_time"):
        f[c] = pd.to_datetime(f[c], utc=True).astype(UTC_NS)
    e = pd.DatetimeIndex(f["entry_time"]).asi8
    x = pd.DatetimeIndex(f["exit_time"]).asi8
    hold = f["max_hold_ns"].to_numpy(dtype="float64")
    if not (np.isfinite(hold) & (hold > 0)).all():
        raise ValueError("every labelled position needs a max hold > 0 (its target window)")
    hold = hold.astype("int64")
    end = np.maximum(x, e + hold)
    f = f.loc[end <= end_ns].reset_index(drop=True)
    end, e, hold = end[end <= end_ns], e[end <= end_ns], hold[end <= end_ns]
    f["outcome_end"] = pd.DatetimeIndex(end.view("datetime64[ns]")).tz_localize("UTC")
    f["final_day"] = pd.DatetimeIndex((end - end % NS_PER_DAY).view("datetime64[ns]")).tz_localize("UTC")
    f["first_label_bar"] = f["entry_time"]
    f["label"] = (f["pnl_usd"].to_numpy(dtype="float64") > 0).astype("int64")
    t = cfg.ml.targets
    lo_mult, hi_mult = t.size_mult_range
    tgt = np.full((len(f), 4), np.nan)
    sym = f["symbol"].tolist()
    a_entry = f["avg_entry"].to_numpy(dtype="float64")
    sl = f["stop_loss"].to_numpy(dtype="float64")
    pnl = f["pnl_pct"].to_numpy(dtype="float64")
    dca = (f["strategy"] == Strategy.DCA.value).to_numpy()
    for i in range(len(f)):
        a, b = store.range(sym[i], int(e[i]) - 1, int(e[i] + hold[i]))
        if a >= b:
            continue
        k = int(np.argmax(store.high[a:b]))  # the first bar of the max high
        tgt[i, 0] = min(float(store.high[a + k]) / a_entry[i] - 1.0, t.tp_cap)
        tgt[i, 1] = max(1.0 - float(store.low[a:a + k + 1].min()) / a_entry[i], t.sl_floor)
        tgt[i, 2] = (int(store.ts[a + k]) - int(e[i])) / NS_PER_HOUR
        if dca[i]:
            tgt[i, 3] = min(max(1.0 + pnl[i] / sl[i], lo_mult), hi_mult)
    for j, c in enumerate(("tp_target", "sl_target", "hold_target_h", "size_mult_target")):
        f[c] = tgt[:, j]
    return f


def _limit_shadows(cfg: Config, f: pd.DataFrame) -> pd.DataFrame:
    """Per strategy: no shadow rows under ``min_real_rows`` real rows, at most ``max_per_real`` × real rows of
    them, highest weight first (ties: older setup, then scan_id and variation)."""
    if f.empty:
        return f
    w = cfg.ml.shadow_weights
    keep = f["source"] != SHADOW
    for s in f["strategy"].unique():
        n_real = int(((f["source"] == REAL) & (f["strategy"] == s)).sum())
        if n_real < w.min_real_rows:
            continue
        sh = f[(f["source"] == SHADOW) & (f["strategy"] == s)]
        sh = sh.assign(_w=-sh["weight"]).sort_values(["_w", "setup_time", "scan_id", "variation"], kind="mergesort")
        keep[sh.index[: w.max_per_real * n_real]] = True
    return f.loc[keep].reset_index(drop=True)


def _empty() -> pd.DataFrame:
    return _typed(pd.DataFrame({c: [] for c in LABEL_ROW_COLUMNS}))


def _typed(f: pd.DataFrame) -> pd.DataFrame:
    out = {}
    for c in LABEL_ROW_COLUMNS:
        if c in _TIMES:
            out[c] = pd.to_datetime(f[c], utc=True).astype(UTC_NS)
        elif c in _TEXT:
            out[c] = f[c].astype(object).where(f[c].notna(), None)
        elif c == "label":
            out[c] = f[c].astype("int64")
        else:
            out[c] = f[c].astype("float64")
    return pd.DataFrame(out, columns=list(LABEL_ROW_COLUMNS))
