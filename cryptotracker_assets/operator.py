"""Operator views and commands over the warehouse (no Dagster): status, positions, performance, pause, resume,
close. Views use the one portfolio-state function of core.ledger; commands record timestamped operator events
(who, why) that the engine applies from the first cycle point after them (SPEC §0.2, §5.2, §7.3)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .core.config import Config
from .core.ledger import LEDGER_COLUMNS, TRADE_GROUP_ID_RE, empty_ledger, open_positions, performance
from .storage.warehouse import Warehouse

LEDGER_TABLE = "paper_trades"
OPERATOR_ACTIONS = ("pause", "resume", "close")


class OperatorError(ValueError):
    """A command that cannot be accepted (names the trade group / action)."""


def read_ledger(wh: Warehouse) -> pd.DataFrame:
    """Every ledger row, in commit order (cycle point, then trade_group_id, side, level)."""
    with wh.connect(read_only=True) as con:
        if not wh.table_exists(con, LEDGER_TABLE):
            return empty_ledger()
        df = wh.query_df(con, f"SELECT * FROM {LEDGER_TABLE} ORDER BY cycle_point, trade_group_id, side, level")
    base = empty_ledger()
    for c in LEDGER_COLUMNS:
        if c in df.columns and str(df[c].dtype) != str(base[c].dtype) and len(df):
            try:
                df[c] = df[c].astype(base[c].dtype)
            except (TypeError, ValueError):
                pass
    return df[list(LEDGER_COLUMNS)]


def latest_marks(wh: Warehouse, cfg: Config, symbols: list[str]) -> tuple[dict[str, float], pd.Timestamp | None]:
    """Each symbol's latest stored base-bar close (the decision-bar close used for marks) and the newest bar time."""
    if not symbols:
        return {}, None
    base = cfg.engine.base_timeframe
    with wh.connect(read_only=True) as con:
        table = f"ohlc_{base.value}"
        if not wh.table_exists(con, table):
            return {}, None
        rows = con.execute(
            f"SELECT symbol, arg_max(close, timestamp), max(timestamp) FROM {table} "
            f"WHERE list_contains(?, symbol) GROUP BY symbol", [symbols]).fetchall()
    marks = {s: float(c) for s, c, _ in rows}
    newest = max((pd.Timestamp(t).tz_convert("UTC") for _, _, t in rows), default=None)
    return marks, newest


@dataclass(frozen=True)
class Status:
    ledger: pd.DataFrame
    positions: pd.DataFrame
    marks: dict[str, float]
    as_of: pd.Timestamp | None
    engine: dict | None
    paused: bool


def load_status(wh: Warehouse, cfg: Config) -> Status:
    ledger = read_ledger(wh)
    syms = sorted(set(open_positions(ledger)["symbol"])) if len(ledger) else []
    marks, as_of = latest_marks(wh, cfg, syms)
    missing = [s for s in syms if s not in marks]
    if missing:
        raise OperatorError(f"no stored bars to mark open positions on {missing}")
    events = wh.operator_events()
    pauses = events[events["action"].isin(["pause", "resume"])]
    paused = bool(len(pauses)) and pauses.iloc[-1]["action"] == "pause"
    return Status(ledger=ledger, positions=open_positions(ledger, marks), marks=marks, as_of=as_of,
                  engine=wh.engine_state(), paused=paused)


def performance_summary(status: Status, cfg: Config):
    return performance(status.ledger, status.marks, cfg)


def record(wh: Warehouse, action: str, who: str, why: str, target: str | None = None,
           now: pd.Timestamp | None = None) -> pd.Timestamp:
    """Record an operator event; the engine applies it from the first cycle point after ``now``."""
    if action not in OPERATOR_ACTIONS:
        raise OperatorError(f"unknown operator action {action!r}")
    if not who or not why:
        raise OperatorError(f"{action}: who and why are required")
    if action == "close":
        if not target or not TRADE_GROUP_ID_RE.match(target):
            raise OperatorError(f"close: {target!r} is not a trade_group_id")
        ledger = read_ledger(wh)
        groups = set(ledger["trade_group_id"])
        if target not in groups:
            raise OperatorError(f"close: trade group {target} is not in the ledger")
        if target not in set(open_positions(ledger)["trade_group_id"]):
            raise OperatorError(f"close: trade group {target} is already closed")
    t = now if now is not None else pd.Timestamp.now(tz="UTC")
    wh.record_operator_event(t, action, target, who, why)
    return t
