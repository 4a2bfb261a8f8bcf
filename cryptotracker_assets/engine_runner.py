"""One paper-engine tick against the warehouse (no Dagster): load the committed state, fold the engine over every
unprocessed cycle point up to the data horizon, and commit ledger rows, scan history, snapshots and the new state
in ONE transaction (SPEC §0.5, §7.2 atomicity). Used by the `paper_trades` asset, the CLI and the crash tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from .core.config import Config
from .core.engine import EngineInputs, EngineOutputs, EngineState, ManualClose, next_cycle_points, run_engine
from .core.ledger import limit_violations
from .core.protection import OperatorAction, OperatorEvent
from .core.setups import setups_warmup
from .core.universe import Universe
from .operator import LEDGER_TABLE, read_ledger
from .storage.warehouse import Warehouse

SCAN_HISTORY_TABLE = "scan_history"
SNAPSHOTS_TABLE = "portfolio_snapshots"


class EngineRunError(RuntimeError):
    """The tick cannot run (e.g. no market_regime rows yet); names what is missing."""


@dataclass(frozen=True)
class TickResult:
    outputs: EngineOutputs
    state: EngineState
    previous_cursor: pd.Timestamp | None

    @property
    def processed(self) -> int:
        return len(self.outputs.cycle_points)


def _events(wh: Warehouse) -> list:
    ev = wh.operator_events()
    out: list = []
    for r in ev.itertuples(index=False):
        t = pd.Timestamp(r.event_time).tz_convert("UTC")
        if r.action == "close":
            out.append(ManualClose(time=t, trade_group_id=r.target, who=r.who, why=r.why))
        else:
            out.append(OperatorEvent(time=t, action=OperatorAction.parse(r.action), who=r.who, why=r.why))
    return out


def _ts(value) -> pd.Timestamp | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).tz_convert("UTC")


def run_tick(
    wh: Warehouse,
    cfg: Config,
    *,
    until: pd.Timestamp | None = None,
    start: pd.Timestamp | None = None,
    max_points: int | None = None,
    now: pd.Timestamp | None = None,
    before_commit: Callable[[], None] | None = None,
    _crash_in_commit: bool = False,
) -> TickResult:
    """Process the unprocessed cycle points T (after the cursor; from ``start`` on a fresh engine, default the first
    stored ``market_regime`` row) with T ≤ the newest stored regime row and T < ``until``, at most ``max_points``."""
    u = Universe.from_config(cfg)
    row = wh.engine_state()
    state = EngineState.from_json(row["state_json"]) if row else EngineState()
    prev_cursor = _ts(row["cursor"]) if row else None
    with wh.connect(read_only=True) as con:
        if not wh.table_exists(con, "market_regime"):
            raise EngineRunError("paper engine: market_regime has no rows yet (materialize market_regime first)")
        lo, hi = con.execute("SELECT min(timestamp), max(timestamp) FROM market_regime").fetchall()[0]
    if hi is None:
        raise EngineRunError("paper engine: market_regime has no rows yet")
    step = pd.Timedelta(minutes=cfg.engine.cycle_min)
    end = _ts(hi) + step
    if until is not None:
        end = min(end, until)
    first = start if start is not None else _ts(lo)
    points = next_cycle_points(state, cfg, end=end, start=first)
    if max_points is not None:
        points = points[:max_points]
    if len(points) == 0:
        return TickResult(outputs=_no_outputs(state, cfg), state=state, previous_cursor=prev_cursor)
    regime = wh.read_slice("market_regime", "timestamp", points[0], points[-1] + pd.Timedelta(microseconds=1))
    if regime is None or len(regime) != len(points):
        have = 0 if regime is None else len(regime)
        raise EngineRunError(f"paper engine: market_regime has {have} of the {len(points)} cycle points "
                             f"{points[0]} .. {points[-1]} (materialize market_regime for those days)")
    ledger = read_ledger(wh)
    open_syms = set(ledger.loc[~ledger["trade_group_id"].isin(
        ledger.loc[ledger["side"] == "SELL", "trade_group_id"]), "symbol"]) if len(ledger) else set()
    # Active symbols are scanned; open positions and pending orders (a symbol may turn inactive) keep their bars.
    symbols = sorted(set(u.active_symbols) | {u.market_symbol} | open_syms | {p.meta.symbol for p in state.positions}
                     | {o.symbol for o in state.pending_orders})
    bars_from = points[0] - setups_warmup(cfg)
    if state.positions:
        oldest = min((state.last_bars[p.meta.symbol].time for p in state.positions
                      if p.meta.symbol in state.last_bars), default=bars_from)
        bars_from = min(bars_from, oldest)
    bars = wh.read_bars(cfg.engine.base_timeframe, bars_from, points[-1], symbols)
    # The engine runs the scan itself on the bars stored now (never a preview computed from older bars).
    inputs = EngineInputs(cfg=cfg, bars=bars, market_regime=regime, ledger=ledger, events=_events(wh))
    new_state, outputs = run_engine(state, inputs, points)
    violations = limit_violations(new_state.open_counts(), cfg)
    if violations:
        raise EngineRunError(f"paper engine: limits exceeded after the tick: {violations}")
    if before_commit is not None:
        before_commit()
    wh.commit_tick(
        {LEDGER_TABLE: outputs.ledger_rows, SCAN_HISTORY_TABLE: outputs.scan_rows, SNAPSHOTS_TABLE: outputs.snapshots},
        state_json=new_state.to_json(), previous_cursor=prev_cursor, cursor=new_state.cursor,
        watermark=outputs.watermark, config_version=cfg.config_version,
        committed_at=now if now is not None else pd.Timestamp.now(tz="UTC"), _crash_before_commit=_crash_in_commit,
    )
    return TickResult(outputs=outputs, state=new_state, previous_cursor=prev_cursor)


def _no_outputs(state: EngineState, cfg: Config) -> EngineOutputs:
    """What a tick with nothing to process returns (nothing is committed)."""
    from .core.ledger import SNAPSHOT_COLUMNS, empty_ledger
    from .core.setups import SCAN_ROW_COLUMNS

    return EngineOutputs(
        ledger_rows=empty_ledger(), scan_rows=pd.DataFrame(columns=list(SCAN_ROW_COLUMNS)),
        snapshots=pd.DataFrame(columns=list(SNAPSHOT_COLUMNS)), notifications=(),
        cycle_points=pd.DatetimeIndex([], tz="UTC"), watermark=state.watermark, config_version=cfg.config_version)
