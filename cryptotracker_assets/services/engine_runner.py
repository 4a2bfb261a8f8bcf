"""The paper engine against the warehouse (no Dagster): one tick, and the audit replay of a processed day.

A **tick** reads, in one read transaction, the committed state, the ledger, the operator events, the stored
``scan_preview`` and ``market_regime`` rows of the unprocessed cycle points and the base bars the exits need; it
refuses scan / regime rows older than the bars they were computed from; it folds the engine over the cycle points
day by day and commits ledger rows (``paper_trades``), ``scan_history``, ``portfolio_snapshots`` and the state of
every UTC day it touched — with its limiter state, the messages it wants to send (the outbox, delivered later by a
sensor of its own) and a record of the tick — in ONE write transaction (SPEC §0.5, §7.2). Ledger, scan and snapshot
rows are idempotent on their keys: a replay of committed cycle points after an engine-state reset stores nothing
twice, and a different row under a stored key fails the commit.

An **audit** replays one UTC day from the state stored at the end of the day before, on the bars, scan rows and
events stored now, and compares the replay with the rows the live ticks stored (SPEC §16: re-materializing a past
engine day audits, never rewrites). Used by the paper-engine assets, the CLI and the crash tests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core.common import utc_days, utc_or_none
from ..core.config import Config
from ..core.engine import (BarStore, EngineInputError, EngineInputs, EngineOutputs, EngineState, ManualClose,
                           next_cycle_points, run_engine)
from ..core.engine_audit import AuditReport, compare_replay, concat_outputs, no_outputs
from ..core.engine_records import TickRecord, limiter_rows, outbox_rows
from ..core.ledger import limit_violations
from ..core.protection import OperatorAction, OperatorEvent
from ..core.record_schemas import validate_records
from ..core.universe import Universe
from ..core.watermarks import derived_span, watermarks_from_frame
from ..storage.warehouse import (DayState, LEDGER_TABLE, SCAN_HISTORY_TABLE, SHADOW_EXITS_TABLE, SHADOW_OUTCOMES_TABLE,
                                 SNAPSHOTS_TABLE, Warehouse)
from .config_versions import Timeline, segments
from .incremental import StaleInputError, require_fresh
from .operator import read_ledger

SCAN_PREVIEW_TABLE = "scan_preview"
REGIME_TABLE = "market_regime"


class EngineRunError(RuntimeError):
    """The tick cannot run (inputs missing or stale, another partition first); names what to materialize."""


@dataclass(frozen=True)
class TickResult:
    outputs: EngineOutputs  # every row the tick committed (all days)
    state: EngineState  # after the last processed cycle point
    previous_cursor: pd.Timestamp | None
    days: tuple[DayState, ...]  # the state rows committed, one per UTC day touched
    tick_id: int | None = None  # the tick record's id (None: nothing to process, nothing committed)
    log_only: tuple = ()  # the notes that go to the run's log only (no channel, or trade events switched off)
    messages: int = 0  # messages queued in the outbox

    @property
    def processed(self) -> int:
        return len(self.outputs.cycle_points)


@dataclass(frozen=True)
class _Inputs:
    state: EngineState
    cursor: pd.Timestamp | None
    ledger: pd.DataFrame
    events: list
    scan: pd.DataFrame
    regime: pd.DataFrame
    bars: pd.DataFrame


def events_from(frame: pd.DataFrame) -> list:
    """Operator events as the engine takes them (pause / resume, manual closes)."""
    out: list = []
    for r in frame.itertuples(index=False):
        t = pd.Timestamp(r.event_time).tz_convert("UTC")
        if r.action == "close":
            out.append(ManualClose(time=t, trade_group_id=r.target, who=r.who, why=r.why))
        else:
            out.append(OperatorEvent(time=t, action=OperatorAction.parse(r.action), who=r.who, why=r.why))
    return out


def _state_of(row: dict | None) -> tuple[EngineState, pd.Timestamp | None]:
    if row is None:
        return EngineState(), None
    return EngineState.from_json(row["state_json"]), utc_or_none(row["cursor"])


def _exit_bars(wh: Warehouse, cfg: Config, state: EngineState, first: pd.Timestamp, last: pd.Timestamp,
               con) -> pd.DataFrame:
    """The base bars the fold needs: per symbol the bars after its last processed bar (every universe symbol
    with bars, and any symbol holding a position or order); from ``first − derived_span`` for a symbol the
    engine has not seen yet (its decision bar may be old)."""
    u = Universe.from_config(cfg)
    symbols = sorted(set(u.tiers) | {p.meta.symbol for p in state.positions} | {o.symbol for o in state.pending_orders})
    after = {s: state.last_bars[s].time for s in symbols if s in state.last_bars}
    return wh.read_bars_after(cfg.engine.base_timeframe, after, first - derived_span(cfg), last, symbols, con=con)


def _read_inputs(wh: Warehouse, cfg: Config, points: pd.DatetimeIndex, state: EngineState,
                 cursor: pd.Timestamp | None, con) -> _Inputs:
    end = points[-1] + pd.Timedelta(microseconds=1)
    scan = wh.read_slice(SCAN_PREVIEW_TABLE, "timestamp", points[0], end, con=con)
    regime = wh.read_slice(REGIME_TABLE, "timestamp", points[0], end, con=con)
    marks = wh.bar_watermarks(cfg.engine.base_timeframe, points[0] - derived_span(cfg), points[-1], con=con)
    # The ledger as of the state: rows of cycle points up to the cursor. Rows after it exist only after an
    # engine-state reset; the re-run recomputes them (stored again as no-ops, or refused when they differ) and
    # never counts their realised P&L twice.
    ledger = read_ledger(wh, None, points[0], con=con)
    events = events_from(wh.operator_events(con=con))
    bars = _exit_bars(wh, cfg, state, points[0], points[-1], con)
    current = watermarks_from_frame(points, marks, derived_span(cfg))
    for name, frame in ((SCAN_PREVIEW_TABLE, scan), (REGIME_TABLE, regime)):
        try:
            require_fresh(name, frame, points, current)
        except StaleInputError as exc:  # the run that ticks the engine refreshes them first
            raise EngineRunError(f"paper engine: {exc}") from None
    return _Inputs(state, cursor, ledger, events, scan, regime, bars)


def day_slices(frame: pd.DataFrame) -> Callable[[pd.Timestamp], pd.DataFrame]:
    """The rows of one UTC day of a frame sorted by ``timestamp`` (a view by position, no scan of the whole)."""
    ns = frame["timestamp"].to_numpy(dtype="datetime64[ns]").view("int64")
    if len(ns) > 1 and (ns[1:] < ns[:-1]).any():
        order = np.argsort(ns, kind="stable")
        frame, ns = frame.iloc[order].reset_index(drop=True), ns[order]
    day_ns = pd.Timedelta(days=1).value

    def rows(day: pd.Timestamp) -> pd.DataFrame:
        a, b = np.searchsorted(ns, [day.value, day.value + day_ns])
        return frame.iloc[a:b]

    return rows


def fold_day(state: EngineState, ledger: pd.DataFrame, cfg: Config, bars: BarStore, regime: pd.DataFrame,
             scan: pd.DataFrame, events: Sequence, points: pd.DatetimeIndex, day: pd.Timestamp,
             model_scores: pd.DataFrame | None = None) -> tuple[EngineState, EngineOutputs, pd.DataFrame, DayState]:
    """The engine over ``points`` (cycle points of UTC ``day``) on the day's regime and scan rows: the new state,
    the outputs, the ledger grown by the day's rows and the day's state row (with its limiter state). The one day
    step of a tick, the day audit and the replay."""
    state, out = run_engine(state, EngineInputs(cfg=cfg, bars=bars, market_regime=regime, ledger=ledger,
                                                events=events, scan_rows=scan, model_scores=model_scores), points)
    if len(out.ledger_rows):
        ledger = pd.concat([ledger, out.ledger_rows], ignore_index=True) if len(ledger) else out.ledger_rows
    row = DayState(day=day, cursor=state.cursor, state_json=state.to_json(), watermark=state.watermark,
                   config_version=cfg.config_version, limiter=limiter_rows(day, state.cursor, state.protection.limiter))
    return state, out, ledger, row


Configs = Callable[[pd.Timestamp, pd.Timestamp], Timeline]  # the configs in force over [start, end)


Scores = Callable[[pd.DataFrame], pd.DataFrame]  # scan rows → the champions' outputs per scan_id (EngineInputs)


def _fold_days(inputs: _Inputs, timeline: Timeline, points: pd.DatetimeIndex, scores: Scores | None = None
               ) -> tuple[EngineState, list, list[DayState]]:
    """Fold day by day (the state of each UTC day is stored), each part of a day under the config in force there;
    the ledger grows with each day's rows."""
    state, ledger, outs, days = inputs.state, inputs.ledger, [], []
    scan_at = day_slices(inputs.scan)
    regime_at = day_slices(inputs.regime)
    bars = BarStore.from_frame(inputs.bars)  # built once for all days
    model_scores = scores(inputs.scan) if scores is not None and len(inputs.scan) else None
    for day in utc_days(points[0], points[-1] + pd.Timedelta(microseconds=1)):
        pts = points[(points >= day) & (points < day + pd.Timedelta(days=1))]
        row = None
        for cfg, part in segments(timeline, pts):
            try:
                state, out, ledger, row = fold_day(state, ledger, cfg, bars, regime_at(day), scan_at(day),
                                                   inputs.events, part, day, model_scores)
            except EngineInputError as exc:
                if "another config_version" not in str(exc):
                    raise
                raise EngineRunError(
                    f"paper engine: the scan rows of {part[0]:%Y-%m-%d %H:%M}.. were computed under another config "
                    f"version than config_version {cfg.config_version}, in force there (a revision was applied "
                    f"since they were computed); the next run of scan_preview recomputes them") from None
            outs.append(out)
        days.append(row)
    return state, outs, days


def run_tick(
    wh: Warehouse,
    cfg: Config,
    *,
    until: pd.Timestamp | None = None,
    start: pd.Timestamp | None = None,
    max_points: int | None = None,
    now: pd.Timestamp | None = None,
    validate: Callable[[EngineOutputs, Sequence[DayState]], None] | None = None,
    before_commit: Callable[[], None] | None = None,
    configs: Configs | None = None,
    scores: Scores | None = None,
    _crash_in_commit: bool = False,
) -> TickResult:
    """Process the unprocessed cycle points T < ``until`` that have stored scan_preview and market_regime rows, at
    most ``max_points``. ``validate(outputs, day_states)`` runs before the commit (a schema check that raises
    leaves the warehouse untouched). ``start``: the first cycle point this run may process (a partition's start); the cursor
    must not lag behind it (the earlier partition must be materialized first). A fresh engine starts at ``start``
    or at the first stored scan row. ``scores(scan rows)``: the champions' outputs for the shadows
    (``EngineInputs.model_scores``). ``configs(start, end)``: the configs in force over the cycle points (approved
    revisions act from the first cycle point after their approval); default ``cfg`` throughout."""
    step = pd.Timedelta(minutes=cfg.engine.cycle_min)
    with wh.snapshot() as con:
        state, cursor = _state_of(wh.engine_state(con=con))
        if start is not None and cursor is not None and cursor + step < start:
            raise EngineRunError(
                f"paper engine from {start:%Y-%m-%d %H:%M}: the engine's cursor is {cursor:%Y-%m-%d %H:%M} UTC; "
                f"cycle points from {cursor + step:%Y-%m-%d %H:%M} belong to partition {cursor + step:%Y-%m-%d}: "
                f"materialize it first")
        first_scan, last_scan = wh.time_bounds(SCAN_PREVIEW_TABLE, "timestamp", con=con)
        _, last_regime = wh.time_bounds(REGIME_TABLE, "timestamp", con=con)
        if last_scan is None or last_regime is None:
            raise EngineRunError("paper engine: scan_preview and market_regime have no rows yet (materialize "
                                 "features_scan, market_regime and scan_preview first)")
        end = min(last_scan, last_regime) + step
        if until is not None:
            end = min(end, until)
        points = next_cycle_points(state, cfg, end=end, start=start if start is not None else first_scan)
        if max_points is not None:
            points = points[:max_points]
        if len(points) == 0:
            return TickResult(no_outputs(state, cfg), state, cursor, ())
        inputs = _read_inputs(wh, cfg, points, state, cursor, con)
    timeline = configs(points[0], points[-1] + step) if configs is not None else [(None, cfg)]
    new_state, outs, days = _fold_days(inputs, timeline, points, scores)
    cfg = timeline[-1][1]
    out = concat_outputs(outs, new_state, cfg)
    violations = limit_violations(new_state.open_counts(), cfg)
    if violations:
        raise EngineRunError(f"paper engine: limits exceeded after the tick: {violations}")
    outbox, log_only = outbox_rows(out.notifications, cfg)
    tick = TickRecord.of(out, len(outbox))
    committed_at = now if now is not None else pd.Timestamp.now(tz="UTC")
    if validate is not None:
        validate(out, days)
        validate_records(tick.frame(1, committed_at), outbox, [d.limiter for d in days])
    if before_commit is not None:
        before_commit()
    tick_id = wh.commit_tick(
        {LEDGER_TABLE: out.ledger_rows, SCAN_HISTORY_TABLE: out.scan_rows, SNAPSHOTS_TABLE: out.snapshots,
         SHADOW_OUTCOMES_TABLE: out.shadow_decisions, SHADOW_EXITS_TABLE: out.shadow_exits},
        states=days, previous_cursor=cursor, committed_at=committed_at, tick=tick, outbox=outbox,
        _crash_before_commit=_crash_in_commit,
    )
    return TickResult(outputs=out, state=new_state, previous_cursor=cursor, days=tuple(days), tick_id=tick_id,
                      log_only=tuple(log_only), messages=len(outbox))


def audit_day(wh: Warehouse, cfg: Config, day: pd.Timestamp, configs: Configs | None = None,
              scores: Scores | None = None) -> AuditReport:
    """Replay UTC ``day`` from the state stored at the end of the latest earlier day (a fresh state if there is
    none) over the cycle points the live ticks processed that day, and compare ledger rows, scan rows, snapshots
    and the day's end state with the stored ones (the first difference is named)."""
    day = pd.Timestamp(day).tz_convert("UTC").floor("1D")
    nxt = day + pd.Timedelta(days=1)
    with wh.snapshot() as con:
        stored_snaps = wh.read_slice(SNAPSHOTS_TABLE, "cycle_point", day, nxt, con=con)
        if stored_snaps is None or stored_snaps.empty:
            return AuditReport(day=day, cycle_points=0, passed=True, first_difference=None, compared={})
        points = pd.DatetimeIndex(stored_snaps["cycle_point"]).sort_values()
        before = wh.engine_state(before_day=day, con=con)
        state, cursor = _state_of(before)
        stored = {
            LEDGER_TABLE: read_ledger(wh, day, nxt, con=con),
            SCAN_HISTORY_TABLE: wh.read_slice(SCAN_HISTORY_TABLE, "timestamp", day, nxt, con=con),
            SNAPSHOTS_TABLE: stored_snaps,
            SHADOW_OUTCOMES_TABLE: wh.read_slice(SHADOW_OUTCOMES_TABLE, "timestamp", day, nxt, con=con),
            SHADOW_EXITS_TABLE: wh.read_slice(SHADOW_EXITS_TABLE, "closed_at", day, nxt, con=con),
        }
        end_row = wh.engine_states(day, nxt, con=con)
        try:
            inputs = _read_inputs(wh, cfg, points, state, cursor, con)
        except EngineRunError as exc:  # stale scan rows: the audit cannot replay what the bars now say
            return AuditReport(day=day, cycle_points=len(points), passed=False, first_difference=str(exc),
                               compared={})
        inputs = _Inputs(inputs.state, inputs.cursor, read_ledger(wh, None, day, con=con), inputs.events,
                         inputs.scan, inputs.regime, inputs.bars)
    timeline = configs(points[0], points[-1] + pd.Timedelta(minutes=cfg.engine.cycle_min)) if configs else [(None, cfg)]
    new_state, outs, _ = _fold_days(inputs, timeline, points, scores)
    replay = concat_outputs(outs, new_state, timeline[-1][1])
    stored_state = end_row["state_json"].iloc[-1] if end_row is not None and len(end_row) else None
    return compare_replay(day, points, replay, new_state, stored, stored_state)


def engine_points_per_day(result: TickResult) -> dict[str, int]:
    """Cycle points processed per UTC day (partition key → count)."""
    pts = result.outputs.cycle_points
    if len(pts) == 0:
        return {}
    keys, counts = np.unique(pts.strftime("%Y-%m-%d"), return_counts=True)
    return {str(k): int(c) for k, c in zip(keys, counts)}
