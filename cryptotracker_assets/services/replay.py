"""The backtest: the paper engine replayed over stored bars into a warehouse of its own (no Dagster).

A backtest here is not a second implementation: it is the same chain the live pipeline runs — scan features
(:func:`..core.setups.scan_features`), the shared market state (:func:`..core.regime.build_market_regime`), steps 1–3
of the scan (:func:`..core.setups.scan_from_features`) and the engine fold (:func:`..core.engine.run_engine`) — over
the bars stored in the source warehouse, with the config versions that were in force (or a config given), the
stored operator events, and one commit per UTC day into the output warehouse (never the live ledger). So "backtest
≠ paper" cannot happen: over the same stored bars the replay reproduces the live ledger bit for bit, and the parity
report names the first row where it does not (a bar that arrived or was revised after the live tick read it).

Streaming: bars are read, and features, regime and scan computed, one chunk of ``chunk_days`` UTC days at a time
(with the warm-up the chain needs before it); the engine folds and commits day by day. Memory is bounded by one chunk
whatever the length of the window; a replay that stops (Ctrl-C, a crash) resumes from the output's cursor.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import pandas as pd

from ..core.common import utc_days
from ..core.config import Config
from ..core.engine import BarStore, EngineState
from ..core.engine_records import TickRecord
from ..core.ledger import Performance, append_rows, empty_ledger, performance
from ..core.regime import MarketState
from ..core.replay_parity import LedgerParity, ledger_parity
from ..storage.warehouse import (LEDGER_TABLE, SCAN_HISTORY_TABLE, SHADOW_EXITS_TABLE, SHADOW_OUTCOMES_TABLE,
                                 SNAPSHOTS_TABLE, Warehouse,
                                 WarehouseError)
from .engine_runner import day_slices, events_from, fold_day
from .incremental import horizon_end
from .operator import read_ledger
from .replay_chunks import ChunkPreparer, OrderedWriter, peak_rss_mb

REGIME_TABLE = "market_regime"
DAY = pd.Timedelta(days=1)


class ReplayError(RuntimeError):
    """A replay that cannot run as asked (names the window, the warehouse or the missing input)."""


@dataclass(frozen=True)
class ConfigSegment:
    """The config in force from cycle point ``start`` on (until the next segment)."""

    start: pd.Timestamp
    cfg: Config


@dataclass
class ReplayReport:
    """What a replay did: window, work, time per stage, the performance summary and the parity report."""

    source: str
    out: str
    start: pd.Timestamp
    end: pd.Timestamp  # exclusive
    cycle_points: int = 0
    days: int = 0
    resumed_from: pd.Timestamp | None = None
    continued_live_state: bool = False
    ledger_rows: int = 0
    scan_rows: int = 0
    seconds: dict[str, float] = field(default_factory=dict)  # per stage (they overlap with workers=1)
    wall_seconds: float = 0.0
    peak_mb: dict[str, float] = field(default_factory=dict)  # per process (main, worker, writer)
    performance: Performance | None = None
    parity: LedgerParity | None = None

    @property
    def ms_per_cycle_point(self) -> float:
        return 1000.0 * self.wall_seconds / self.cycle_points if self.cycle_points else float("nan")


def _segment_points(segments: Sequence[ConfigSegment], start: pd.Timestamp, end: pd.Timestamp
                    ) -> list[tuple[pd.Timestamp, pd.Timestamp, Config]]:
    """[a, b) ranges of the window, each with the config in force."""
    segs = sorted(segments, key=lambda s: s.start)
    out = []
    for i, s in enumerate(segs):
        a = max(start, s.start) if i else start
        b = min(end, segs[i + 1].start) if i + 1 < len(segs) else end
        if a < b:
            out.append((a, b, s.cfg))
    return out


def _chunks(a: pd.Timestamp, b: pd.Timestamp, days: int) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """[a, b) cut at UTC day boundaries into pieces of at most ``days`` days."""
    out, t = [], a
    while t < b:
        nxt = min(b, t.floor("1D") + days * DAY)
        out.append((t, nxt))
        t = nxt
    return out


def _initial(source: Warehouse, out: Warehouse, cfg: Config, start: pd.Timestamp, fresh: bool, report: ReplayReport
             ) -> tuple[EngineState, pd.DataFrame, pd.Timestamp, pd.Timestamp | None]:
    """(state, ledger before the first cycle point, first cycle point, the output's cursor). Resumes an output that
    holds an earlier part of this replay; continues from the live state stored before ``start`` unless ``fresh``."""
    step = pd.Timedelta(minutes=cfg.engine.cycle_min)
    row = out.engine_state() if out.exists() else None
    base_state, base_ledger = EngineState(), empty_ledger()
    live = None if fresh else source.engine_state(before_day=start)
    if live is not None:
        live_cursor = pd.Timestamp(live["cursor"]).tz_convert("UTC")
        if live_cursor + step != start:
            raise ReplayError(
                f"the live engine's state before {start:%Y-%m-%d} ends at {live_cursor:%Y-%m-%d %H:%M} UTC, not at "
                f"{start - step:%Y-%m-%d %H:%M}: replay from {live_cursor + step:%Y-%m-%d} or pass --fresh")
        base_state, base_ledger = EngineState.from_json(live["state_json"]), read_ledger(source, None, start)
        report.continued_live_state = True
    if row is None:
        return base_state, base_ledger, start, None
    cursor = pd.Timestamp(row["cursor"]).tz_convert("UTC")
    first, _ = out.time_bounds(SNAPSHOTS_TABLE, "cycle_point")
    if first is None or first != start:
        raise ReplayError(f"{out.path} already holds an engine run that does not start at {start:%Y-%m-%d %H:%M} "
                          f"UTC: write the replay to a new file")
    report.resumed_from = cursor + step
    ledger = append_rows(base_ledger, read_ledger(out))
    return EngineState.from_json(row["state_json"]), ledger, cursor + step, cursor


def replay(source: Warehouse, out: Warehouse, segments: Sequence[ConfigSegment], start: pd.Timestamp,
           end: pd.Timestamp, *, use_events: bool = True, fresh: bool = False, chunk_days: int = 5,
           workers: int = 1, parity_columns: Sequence[str] | None = None, models_root: str | None = None,
           progress: Callable[[str], None] | None = None,
           clock: Callable[[], pd.Timestamp] = lambda: pd.Timestamp.now(tz="UTC")) -> ReplayReport:
    """Replay the engine over the source's stored bars for the cycle points in [start, end) (capped at the newest
    stored bar) into ``out``; see the module doc. ``segments``: the configs in force (the first one from ``start``).
    ``workers``: 1 prepares the next chunk in a worker process and commits in a writer process while the engine
    folds (both cores); 0 does everything in order in this process (same result). ``parity_columns``: the ledger
    columns compared with the live ledger (default: all). ``models_root``: the model store, so setups are scored by
    the champions that were in force (the source's model_registry), as live."""
    if not segments:
        raise ReplayError("a replay needs a config")
    if out.path != ":memory:" and os.path.realpath(out.path) == os.path.realpath(source.path):
        raise ReplayError(f"the replay output {out.path} is the live warehouse: write the backtest to its own file")
    cfg0 = segments[0].cfg
    if len({s.cfg.engine.base_timeframe for s in segments}) != 1 or \
            len({s.cfg.engine.cycle_min for s in segments}) != 1:
        raise ReplayError("the configs of a replay must share engine.base_timeframe and engine.cycle_min")
    step = pd.Timedelta(minutes=cfg0.engine.cycle_min)
    with source.snapshot() as con:
        end = horizon_end(source, cfg0, start, end, con)
    report = ReplayReport(source=source.path, out=out.path, start=start, end=end)
    say = progress or (lambda _msg: None)
    clocks = report.seconds
    for k in ("read", "features", "regime", "scan", "engine", "commit"):
        clocks[k] = 0.0

    t0 = wall0 = time.perf_counter()
    state, ledger, first, out_cursor = _initial(source, out, cfg0, start, fresh, report)
    events = events_from(source.operator_events()) if use_events else []
    prev_rows = source.read_slice(REGIME_TABLE, "timestamp", first - step, first)
    market = MarketState.from_row(prev_rows.iloc[-1]) if prev_rows is not None and len(prev_rows) else None
    # symbols held at the start outside the universe (a config may have dropped them): read in every chunk
    extra = sorted({p.meta.symbol for p in state.positions} | {o.symbol for o in state.pending_orders})
    clocks["read"] += time.perf_counter() - t0
    if first >= end:
        say(f"nothing to replay: the output already covers [{start}, {end})")
    plan = [(c0, c1, cfg) for a, b, cfg in _segment_points(segments, first, end) for c0, c1 in _chunks(a, b, chunk_days)]
    preparer = ChunkPreparer(source, workers, models_root)
    writer = OrderedWriter(out, workers)
    try:
        seen = frozenset(state.last_bars)
        nxt = preparer.submit(plan[0][2], plan[0][0], plan[0][1], extra, market, seen) if plan else None
        for i, (c0, c1, cfg) in enumerate(plan):
            t = time.perf_counter()
            chunk = nxt.result()
            clocks["wait"] = clocks.get("wait", 0.0) + time.perf_counter() - t
            for k, v in chunk.seconds.items():
                if k == "peak_mb":
                    report.peak_mb["worker"] = max(report.peak_mb.get("worker", 0.0), v)
                else:
                    clocks[k] += v
            if i + 1 < len(plan):  # the next chunk is prepared while this one is folded
                nxt = preparer.submit(plan[i + 1][2], plan[i + 1][0], plan[i + 1][1], extra, chunk.market,
                                      chunk.seen)
            store = BarStore.from_frame(chunk.bars)
            store = replace(store, frame=store.frame.iloc[:0])  # the arrays are what the fold reads
            regime, scan = chunk.regime, chunk.scan
            regime_of, scan_of = day_slices(regime), day_slices(scan)
            writer.slice(REGIME_TABLE, regime, "timestamp", c0, c1)
            for d0 in utc_days(c0, c1):
                lo, d1 = max(c0, d0), min(c1, d0 + DAY)
                t = time.perf_counter()
                pts = pd.DatetimeIndex(pd.date_range(lo, d1 - pd.Timedelta(1, unit="ns"), freq=step, tz="UTC"))
                if not len(pts):
                    continue
                day = d0.floor("1D")
                state, o, ledger, row = fold_day(state, ledger, cfg, store, regime_of(d0), scan_of(d0), events,
                                                 pts, day, chunk.scores)
                clocks["engine"] += time.perf_counter() - t
                try:
                    writer.day({LEDGER_TABLE: o.ledger_rows, SCAN_HISTORY_TABLE: o.scan_rows,
                                SNAPSHOTS_TABLE: o.snapshots, SHADOW_OUTCOMES_TABLE: o.shadow_decisions,
                                SHADOW_EXITS_TABLE: o.shadow_exits}, [row], out_cursor, clock(), TickRecord.of(o, 0))
                except WarehouseError as exc:
                    raise ReplayError(f"replay: the output refused a day: {exc}") from exc
                out_cursor = state.cursor
                report.cycle_points += len(pts)
                report.days += 1
                report.ledger_rows += len(o.ledger_rows)
                report.scan_rows += len(o.scan_rows)
                say(f"{day:%Y-%m-%d}: {len(pts)} cycle points, {len(o.ledger_rows)} ledger row(s), "
                    f"{len(state.positions)} open")
            del chunk, store, regime, scan
        t = time.perf_counter()
        try:
            writer.close()
        except WarehouseError as exc:
            raise ReplayError(f"replay: the output refused a day: {exc}") from exc
        clocks["wait"] = clocks.get("wait", 0.0) + time.perf_counter() - t
    finally:
        preparer.close()
        if writer.pool is not None:
            writer.pool.shutdown(wait=False, cancel_futures=True)
    clocks["commit"] += writer.seconds
    report.wall_seconds = time.perf_counter() - wall0
    report.peak_mb["writer"] = writer.peak_mb
    report.peak_mb["main"] = peak_rss_mb()

    marks = {p.meta.symbol: state.last_bars[p.meta.symbol].close for p in state.positions}
    replayed = read_ledger(out) if out.exists() else empty_ledger()
    report.performance = performance(ledger, marks, segments[-1].cfg)
    live = read_ledger(source, start, end)
    live_cursor = source.engine_state()
    if live_cursor is not None and len(replayed):
        stop = min(pd.Timestamp(live_cursor["cursor"]).tz_convert("UTC"), state.cursor) + step
        columns = parity_columns if parity_columns is not None else [c for c in replayed.columns]
        report.parity = ledger_parity(live, replayed, start, stop, columns)
    return report
