"""Operator views and commands over the warehouse (no Dagster): status, positions, performance, pause, resume,
close. Views use the one portfolio-state function of core.ledger; commands record timestamped operator events
(who, why) that the engine applies from the first cycle point after them (SPEC §0.2, §5.2, §7.3)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..core.config import Config
from ..core.ledger import LEDGER_COLUMNS, TRADE_GROUP_ID_RE, empty_ledger, open_positions, performance
from ..storage.warehouse import LEDGER_TABLE, Warehouse

OPERATOR_ACTIONS = ("pause", "resume", "close")


class OperatorError(ValueError):
    """A command that cannot be accepted (names the trade group / action)."""


def read_ledger(wh: Warehouse, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None, *,
                con=None) -> pd.DataFrame:
    """Every ledger row (with cycle point in [start, end) if given), in commit order (cycle point, then
    trade_group_id, side, level), typed as :data:`~..core.ledger.LEDGER_COLUMNS`. A stored value that cannot be
    read as its column's type raises naming the row and column: nothing is built on a ledger that is not one."""
    df = wh.read_ledger_rows(start, end, con=con)
    if df is None:
        return empty_ledger()
    base = empty_ledger()
    missing = [c for c in LEDGER_COLUMNS if c not in df.columns]
    if missing:
        raise OperatorError(f"{LEDGER_TABLE}: stored ledger lacks column(s) {missing}")
    for c in LEDGER_COLUMNS:
        want = base[c].dtype
        if len(df) and str(df[c].dtype) != str(want):
            try:
                df[c] = df[c].astype(want)
            except (TypeError, ValueError) as exc:
                bad = next((i for i, v in enumerate(df[c]) if not _castable(v, want)), None)
                where = f"row {bad} ({df['trade_group_id'].iloc[bad]})" if bad is not None else "a row"
                raise OperatorError(f"{LEDGER_TABLE}: {where}, column {c!r} cannot be read as {want}: {exc}") from exc
    return df[list(LEDGER_COLUMNS)]


def _castable(value, dtype) -> bool:
    try:
        pd.Series([value]).astype(dtype)
        return True
    except (TypeError, ValueError):
        return False


def latest_marks(wh: Warehouse, cfg: Config, symbols: list[str]) -> tuple[dict[str, float], pd.Timestamp | None]:
    """Each symbol's latest stored base-bar close (the decision-bar close used for marks) and the newest bar time."""
    closes = wh.latest_closes(cfg.engine.base_timeframe, symbols)
    marks = {s: c for s, (c, _) in closes.items()}
    newest = max((t for _, t in closes.values()), default=None)
    return marks, newest


def first_cycle_point_after(t: pd.Timestamp, cfg: Config) -> pd.Timestamp:
    """The first cycle point T > t (SPEC §0.2: an event stamped at e acts from it)."""
    step = pd.Timedelta(minutes=cfg.engine.cycle_min)
    return pd.Timestamp(t).tz_convert("UTC").floor(step) + step


@dataclass(frozen=True)
class AppliedOperator:
    """What the engine applied (from its stored state, not the event table): paused or not, by whom, why, the
    event's stamp and the first cycle point it acted on; ``pending``: events stamped at or after the engine's
    cursor, not applied yet, each with the cycle point it will act from."""

    paused: bool
    who: str | None
    why: str | None
    since: pd.Timestamp | None
    applied_from: pd.Timestamp | None
    pending: pd.DataFrame


def applied_operator(engine_row: dict | None, events: pd.DataFrame, cfg: Config) -> AppliedOperator:
    from ..core.engine import EngineState

    op = EngineState.from_json(engine_row["state_json"]).protection.operator if engine_row else None
    cursor = pd.Timestamp(engine_row["cursor"]).tz_convert("UTC") if engine_row else None
    times = pd.to_datetime(events["event_time"], utc=True) if len(events) else pd.Series([], dtype="datetime64[ns, UTC]")
    pending = events.loc[times >= cursor].copy() if cursor is not None else events.copy()
    if len(pending):
        pending["acts_from"] = [first_cycle_point_after(t, cfg) for t in pd.to_datetime(pending["event_time"],
                                                                                          utc=True)]
    since = op.since if op is not None else None
    return AppliedOperator(paused=bool(op and op.paused), who=op.who if op else None, why=op.why if op else None,
                           since=since, applied_from=first_cycle_point_after(since, cfg) if since is not None else None,
                           pending=pending.reset_index(drop=True))


@dataclass(frozen=True)
class Status:
    ledger: pd.DataFrame
    positions: pd.DataFrame
    marks: dict[str, float]
    as_of: pd.Timestamp | None
    engine: dict | None
    operator: AppliedOperator
    ticks: pd.DataFrame  # the last tick records
    limiter: pd.DataFrame  # symbols the limiter holds now
    undelivered: int  # outbox messages not delivered yet

    @property
    def paused(self) -> bool:
        """Entries paused as the engine applied it (a pause recorded after the cursor is pending, not applied)."""
        return self.operator.paused


def load_status(wh: Warehouse, cfg: Config) -> Status:
    ledger = read_ledger(wh)
    syms = sorted(set(open_positions(ledger)["symbol"])) if len(ledger) else []
    marks, as_of = latest_marks(wh, cfg, syms)
    missing = [s for s in syms if s not in marks]
    if missing:
        raise OperatorError(f"no stored bars to mark open positions on {missing}")
    with wh.snapshot() as con:
        engine = wh.engine_state(con=con)
        events = wh.operator_events(con=con)
        ticks = wh.engine_ticks(last=5, con=con)
        limiter = wh.limiter_state(con=con)
        undelivered = wh.undelivered_count(con=con)
    return Status(ledger=ledger, positions=open_positions(ledger, marks), marks=marks, as_of=as_of, engine=engine,
                  operator=applied_operator(engine, events, cfg), ticks=ticks, limiter=limiter,
                  undelivered=undelivered)


def performance_summary(status: Status, cfg: Config):
    return performance(status.ledger, status.marks, cfg)


def record(wh: Warehouse, action: str, who: str, why: str, target: str | None = None,
           now: pd.Timestamp | None = None) -> pd.Timestamp:
    """Record an operator event, stamped inside its insert transaction (``now`` fixes the stamp, for tests); the
    engine applies it from the first cycle point after the stamp."""
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
    clock = (lambda: now) if now is not None else (lambda: pd.Timestamp.now(tz="UTC"))
    return wh.record_operator_event(action, target, who, why, clock)
