"""The JSON codec of :class:`EngineState` (one warehouse row): floats exact (±inf/nan as strings), times ISO-8601
UTC, versioned by :data:`STATE_VERSION`."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from ..common import from_ns
from ..config import Strategy, Tier
from ..exits import ExitRule, GridFill, PositionState
from ..ledger import TradeMeta
from ..prioritisation import ShiftState
from ..protection import DailyLossState, LimiterState, LossStreakState, OperatorState, ProtectionState, SymbolLimit
from ..regime import BestStrategy
from ..shadows import ShadowMeta, ShadowOrder, ShadowState
from .errors import EngineInputError, EngineInvariantError
from .state import EngineState, EntryOrder, LastBar, ManualClose, OpenPosition

STATE_VERSION = 1


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


def _pstate_obj(st: PositionState) -> dict[str, Any]:
    return {
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


def _pstate_from(o: Mapping[str, Any]) -> PositionState:
    return PositionState(
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


def _position_obj(p: OpenPosition) -> dict[str, Any]:
    m, st = p.meta, p.state
    if st.exit is not None:
        raise EngineInvariantError(f"{m.trade_group_id}: a closed position in the state")
    return {
        "meta": {"trade_group_id": m.trade_group_id, "strategy": m.strategy.value, "symbol": m.symbol,
                 "tier": m.tier.value, "scan_id": m.scan_id, "config_version": int(m.config_version),
                 "size_usd": _ef(m.size_usd), "grid_spacing": _ef(m.grid_spacing)},
        **_pstate_obj(st),
    }


def _position_from(o: Mapping[str, Any]) -> OpenPosition:
    m = o["meta"]
    meta = TradeMeta(m["trade_group_id"], Strategy(m["strategy"]), m["symbol"], Tier(m["tier"]), m["scan_id"],
                     int(m["config_version"]), _df(m["size_usd"]), _df(m["grid_spacing"]))
    return OpenPosition(meta, _pstate_from(o))


# Shadows are many (one open per variation × symbol × strategy): compact rows, times as int ns.


def _ns(t: pd.Timestamp | None) -> int | None:
    return None if t is None else int(t.value)


def _shadow_meta_row(m: ShadowMeta) -> list:
    return [m.shadow_id, m.scan_id, m.variation, m.strategy.value, m.symbol, m.tier.value, _ns(m.decided_at),
            m.size_usd, int(m.levels), m.spacing, int(m.config_version), bool(m.production_take)]


def _shadow_meta_from(r: list) -> ShadowMeta:
    return ShadowMeta(r[0], r[1], r[2], Strategy(r[3]), r[4], Tier(r[5]), from_ns(r[6]), float(r[7]), int(r[8]),
                      float(r[9]), int(r[10]), bool(r[11]))


def _rule_row(r: ExitRule) -> list:
    return [_ef(r.take_profit), _ef(r.stop_loss), _ef(r.trailing), _ef(r.trail_activation), _ef(r.max_hold_minutes)]


def _rule_of(r: list) -> ExitRule:
    return ExitRule(*(float(x) for x in r))


def _pstate_row(st: PositionState) -> list:
    return [_rule_row(st.rule), st.fee, st.slippage, _ns(st.entry_time), int(st.bar_length.value), st.level_size,
            list(st.grid_prices),
            [[f.level, _ns(f.time), f.raw_price, f.fill_price, f.quantity, f.size_usd, f.fee_usd, f.slippage_usd,
              f.fill_kind] for f in st.fills],
            st.avg_entry, _ef(st.take_profit_price), _ef(st.stop_price), _ef(st.activation_price), st.high_water,
            _ns(st.last_time)]


def _pstate_of(r: list) -> PositionState:
    return PositionState(
        rule=_rule_of(r[0]), fee=float(r[1]), slippage=float(r[2]), entry_time=from_ns(r[3]),
        bar_length=pd.Timedelta(int(r[4]), unit="ns"), level_size=float(r[5]), grid_prices=tuple(map(float, r[6])),
        fills=[GridFill(int(f[0]), from_ns(f[1]), float(f[2]), float(f[3]), float(f[4]), float(f[5]), float(f[6]),
                        float(f[7]), f[8]) for f in r[7]],
        avg_entry=float(r[8]), take_profit_price=float(r[9]), stop_price=float(r[10]),
        activation_price=float(r[11]), high_water=float(r[12]), last_time=None if r[13] is None else from_ns(r[13]),
        exit=None)


def _shadows_obj(s: ShadowState) -> dict[str, Any]:
    for m, st in s.positions:
        if st.exit is not None:
            raise EngineInvariantError(f"{m.shadow_id}: a closed shadow in the state")
    return {"orders": [[_shadow_meta_row(o.meta), _ns(o.expires_at), _rule_row(o.rule), o.fee, o.slippage]
                       for o in s.orders],
            "positions": [[_shadow_meta_row(m), _pstate_row(st)] for m, st in s.positions]}


def _shadows_from(o: Mapping[str, Any] | None) -> ShadowState:
    if o is None:  # a state written before shadows were stepped by the engine
        return ShadowState()
    return ShadowState(
        tuple(ShadowOrder(_shadow_meta_from(m), from_ns(exp), _rule_of(r), float(fee), float(slip))
              for m, exp, r, fee, slip in o["orders"]),
        tuple((_shadow_meta_from(m), _pstate_of(p)) for m, p in o["positions"]))


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
        "shadows": _shadows_obj(s.shadows),
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
        shadows=_shadows_from(o.get("shadows")),
    )


def state_to_json(state: EngineState) -> str:
    """The state as one JSON document (sorted keys; floats exact; ±inf as strings; times ISO-8601 UTC)."""
    return json.dumps(_state_to_obj(state), sort_keys=True, allow_nan=False, separators=(",", ":"))


def state_from_json(text: str) -> EngineState:
    """Inverse of :func:`state_to_json` (raises :class:`EngineInputError` on another state version)."""
    return _state_from_obj(json.loads(text))
