"""What the HTML report shows, gathered from the warehouse, the config and the model store (no Dagster): the
operator status and the ledger views (``services.operator``), the portfolio state (the one §7.1 function of
core.ledger), ``portfolio_snapshots``, the latest scan's readiness board, ``market_regime`` and the refolded entry
gates, the latest ``shadow_performance`` leaderboard and the champions' cards.

Every read tolerates a warehouse where the table does not exist yet (an empty section says "nothing yet"); a problem
that hides part of a section (an open position without a stored bar to mark it, an unreadable model) is named in
the report's notes instead of failing it. Times are UTC; money USD; returns fractions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..core.common import utc, utc_or_none
from ..core.config import Config, ConfigError, Strategy, Timeframe
from ..core.ledger import (SNAPSHOT_COLUMNS, book_state, closed_trade_records, closed_trades,
                           open_groups, open_positions, performance, realised_pnl, size_weighted_return)
from ..core.protection import OperatorAction, OperatorEvent
from ..core.html_report import (FILL_COLUMNS, PRICE_COLUMNS, REGIME_COLUMNS, ModelCard, ReportData, active_limits,
                           default_symbol, empty_frame, fmt_time, gate_timeline)
from ..core.revisions import Revision, revisions_from_frame
from ..core.setups import readiness_board
from ..core.shadows.analyzer import leaderboard
from ..storage.base import ohlc_table
from ..storage.engine import SCAN_HISTORY_TABLE, SNAPSHOTS_TABLE
from ..storage.warehouse import Warehouse
from .config_versions import config_for_version
from .models import champion_of
from .operator import OperatorError, Status, first_cycle_point_after, latest_marks, load_status, read_ledger

SCAN_PREVIEW_TABLE = "scan_preview"
REGIME_TABLE = "market_regime"
MAX_PRICE_BARS = 2000  # the finest stored timeframe with at most this many bars over the period is charted
PRICE_SPAN_WITHOUT_ENGINE = pd.Timedelta(days=1)  # the price period before the engine's first snapshot exists
IMPORTANCE_TOP = 10
ONE_US = pd.Timedelta(microseconds=1)  # the warehouse stores microseconds


def gather_report_data(wh: Warehouse, cfg: Config, *, models_root: str | Path | None = None,
                       symbol: str | None = None, now: pd.Timestamp | None = None) -> ReportData:
    """The report's data at ``now`` (default: the clock; only the footer's "generated" time): ``symbol`` is the
    price chart's (default: the symbol with the most closed trades, else ``universe.market_symbol``)."""
    generated = utc(now, "now") if now is not None else pd.Timestamp.now(tz="UTC")
    notes: list[str] = []
    status, ledger, marks, newest_bar = operator_view(wh, cfg, notes)
    closed = closed_trades(ledger)
    engine = status.engine if status else wh.engine_state()
    cursor = utc_or_none(engine["cursor"]) if engine else None
    positions = open_positions(ledger)
    marked = set(positions["symbol"]) <= set(marks)
    positions = open_positions(ledger, marks) if marked else positions
    # cash and book equity do not depend on marks (SPEC §7.1): a missing mark only hides the marked values
    state = book_state(open_groups(ledger), realised_pnl(ledger), (),
                       marks if marked else {s: 1.0 for s in set(positions["symbol"])}, cfg)
    perf = performance(ledger, marks, cfg) if marked else None
    with wh.snapshot() as con:
        snaps = wh.read_slice(SNAPSHOTS_TABLE, "cycle_point", con=con)
        regime = wh.read_slice(REGIME_TABLE, "timestamp", columns=REGIME_COLUMNS, con=con)
        board, board_source = latest_board(wh, con)
        perf_rows = wh.performance(con=con)
        events = wh.operator_events(con=con)
        limiter = status.limiter if status else wh.limiter_state(con=con)
        ticks = wh.engine_ticks(con=con)
        revisions = revisions_from_frame(wh.config_revisions(con=con))
    snaps = (empty_frame(SNAPSHOT_COLUMNS, ("cycle_point",)) if snaps is None
             else snaps.sort_values("cycle_point", kind="stable").reset_index(drop=True))
    regime = (empty_frame(REGIME_COLUMNS, ("timestamp",)) if regime is None
              else regime.reindex(columns=list(REGIME_COLUMNS)))
    as_of = max((t for t in (cursor, newest_bar) if t is not None), default=None)
    chart_symbol = symbol or default_symbol(closed, cfg.universe.market_symbol)
    start = snaps["cycle_point"].iloc[0] if len(snaps) else None
    prices, timeframe = price_series(wh, cfg, chart_symbol, start)
    board_lb, lb_at, lb_window = shadow_leaderboard(perf_rows, cfg)
    realised_pct = size_weighted_return(closed["pnl_usd"], closed["size_usd"])
    return ReportData(
        generated_at=generated, as_of=as_of, engine_cursor=cursor, warehouse=str(wh.path),
        cycle=pd.Timedelta(minutes=cfg.engine.cycle_min), config_version=int(cfg.config_version),
        engine_config_version=int(engine["config_version"]) if engine else None,
        initial_usd=state.initial, cash_usd=state.cash, book_equity_usd=state.book_equity,
        mark_equity_usd=state.mark_equity if marked else math.nan, realised_usd=state.realised,
        realised_pct=realised_pct, unrealised_usd=perf.unrealised_usd if perf else math.nan,
        unrealised_pct=perf.unrealised_pct if perf else math.nan, max_open_total=int(cfg.limits.max_open_total),
        snapshots=snaps, closed=closed, positions=positions, symbol=chart_symbol, prices=prices,
        price_timeframe=timeframe, fills=symbol_fills(ledger, chart_symbol, start), board=board,
        board_source=board_source, regime=regime,
        gates=gate_timeline(snaps, closed_trade_records(ledger), operator_events(events), cfg,
                            tick_configs(ticks, wh, cfg, notes, revisions)),
        operator=operator_text(status), limiter=active_limits(limiter, cursor), leaderboard=board_lb,
        leaderboard_at=lb_at, leaderboard_window_h=lb_window, models=model_cards(wh, models_root, notes),
        notes=tuple(notes))


def tick_configs(ticks: pd.DataFrame | None, wh: Warehouse, cfg: Config, notes: list[str],
                 revisions: Sequence[Revision] = ()) -> list[tuple[pd.Timestamp, Config]]:
    """``(cycle point, the config the engine applied from it)`` wherever that changes, so the protection timeline
    is refolded under the limits the engine applied: each tick's recorded version from its first cycle point, and
    within a tick that crossed an approved revision (a catch-up tick folds each part under its own config, SPEC
    §0.2) the revision's versions from the first cycle point after its application. ``cfg`` stands for its own
    version and for version 0; a version that cannot be rebuilt any more is named in the notes and shown under
    ``cfg``."""
    if ticks is None or ticks.empty:
        return []
    known: dict[int, Config] = {int(cfg.config_version): cfg, 0: cfg}

    def config_of(version: int, at: pd.Timestamp) -> Config:
        if version not in known:
            try:
                known[version] = config_for_version(wh, version)
            except ConfigError as exc:
                notes.append(f"Gates from {fmt_time(at)} shown under config version {cfg.config_version}: {exc}.")
                known[version] = cfg
        return known[version]

    switches = sorted(((first_cycle_point_after(r.applied_at, cfg), r) for r in revisions),
                      key=lambda x: (x[0], x[1].revision_id))
    out, previous = [], None
    for first, last, version in zip(ticks["first_cycle_point"], ticks["last_cycle_point"],
                                    ticks["config_version"].astype(int)):
        first, last = utc(first, "tick first cycle point"), utc(last, "tick last cycle point")
        inside = [(t, r) for t, r in switches if first < t <= last]
        segments = [(first, version)]
        if inside:  # before the first switch: the version that revision replaced; the tick's own from the last
            segments = ([(first, inside[0][1].previous_config_version)]
                        + [(t, r.config_version) for t, r in inside[:-1]] + [(inside[-1][0], version)])
        for at, v in segments:
            if v != previous:
                previous = v
                out.append((at, config_of(int(v), at)))
    return out


def operator_view(wh: Warehouse, cfg: Config, notes: list[str]
                  ) -> tuple[Status | None, pd.DataFrame, dict[str, float], pd.Timestamp | None]:
    """(status, ledger, marks, newest marking bar): :func:`~.operator.load_status`; when an open position has no
    stored bar to mark it, the ledger and the marks there are (the note says which symbol lacks one)."""
    try:
        status = load_status(wh, cfg)
        return status, status.ledger, status.marks, status.as_of
    except OperatorError as exc:
        notes.append(f"Unrealised P&L and mark equity not shown: {exc}.")
        ledger = read_ledger(wh)
        syms = sorted(set(open_positions(ledger)["symbol"]))
        marks, newest = latest_marks(wh, cfg, syms)
        return None, ledger, marks, newest


def latest_board(wh: Warehouse, con) -> tuple[pd.DataFrame, str | None]:
    """The readiness board of the latest scan: the newer of ``scan_history`` (the engine's decisions) and
    ``scan_preview`` (steps 1–3 of cycle points the engine has not processed yet); scan_history on a tie."""
    latest = {t: wh.time_bounds(t, "timestamp", con=con)[1] for t in (SCAN_HISTORY_TABLE, SCAN_PREVIEW_TABLE)}
    found = [(t, at) for t, at in latest.items() if at is not None]
    if not found:
        return readiness_board(pd.DataFrame()), None
    table, at = max(found, key=lambda x: (x[1], x[0] == SCAN_HISTORY_TABLE))
    rows = wh.read_slice(table, "timestamp", at, at + ONE_US, con=con)
    return readiness_board(rows), table


def price_series(wh: Warehouse, cfg: Config, symbol: str, start: pd.Timestamp | None
                 ) -> tuple[pd.DataFrame, str | None]:
    """Closes of ``symbol`` from ``start`` (default: the last :data:`PRICE_SPAN_WITHOUT_ENGINE` of its bars) in the
    finest stored timeframe (from the base one up) with at most :data:`MAX_PRICE_BARS` bars over the period; when
    no coarser table holds its bars, the base bars (the chart keeps their shape)."""
    base = Timeframe(cfg.engine.base_timeframe)
    last = wh.latest_bar_times(base, [symbol]).get(symbol) if wh.table_exists(ohlc_table(base)) else None
    if last is None:
        return empty_frame(PRICE_COLUMNS, ("timestamp",)), None
    start = start if start is not None else last - PRICE_SPAN_WITHOUT_ENGINE
    span_min = max((last - start) / pd.Timedelta(minutes=1), 0.0)
    for tf in sorted((t for t in Timeframe if t.minutes >= base.minutes), key=lambda t: t.minutes):
        if span_min / tf.minutes > MAX_PRICE_BARS:
            continue
        bars = wh.read_bars(tf, start, None, [symbol])
        if len(bars):
            return bars[list(PRICE_COLUMNS)].reset_index(drop=True), tf.value
    return wh.read_bars(base, start, None, [symbol])[list(PRICE_COLUMNS)].reset_index(drop=True), base.value


def symbol_fills(ledger: pd.DataFrame, symbol: str, start: pd.Timestamp | None) -> pd.DataFrame:
    """The ledger's fills of ``symbol`` (BUY and SELL rows at their bar time and fill price) from ``start``."""
    rows = ledger.loc[ledger["symbol"] == symbol]
    if start is not None:
        rows = rows.loc[pd.DatetimeIndex(rows["bar_time"]) >= start]
    if rows.empty:
        return empty_frame(FILL_COLUMNS, ("time",))
    return pd.DataFrame({"time": rows["bar_time"].to_numpy(), "side": rows["side"].to_numpy(),
                         "price": rows["fill_price"].to_numpy(dtype="float64"),
                         "trade_group_id": rows["trade_group_id"].to_numpy(),
                         "strategy": rows["strategy"].to_numpy()}, columns=list(FILL_COLUMNS))


def operator_events(events: pd.DataFrame) -> list[OperatorEvent]:
    """The pause / resume events (a ``close`` is a manual exit, not a gate)."""
    actions = {a.value for a in OperatorAction}
    return [OperatorEvent(utc(r["event_time"], "event time"), OperatorAction.parse(r["action"]), r["who"], r["why"])
            for r in events.to_dict("records") if r["action"] in actions]


def operator_text(status: Status | None) -> str:
    """The operator pause as the engine applied it, and pending events, for people."""
    if status is None:
        return "unknown (no status)"
    op = status.operator
    text = (f"PAUSED by {op.who} since {fmt_time(op.since)} ({op.why})" if op.paused else
            "not paused")
    if len(op.pending):
        text += f"; {len(op.pending)} event(s) pending, acting from {fmt_time(op.pending['acts_from'].iloc[0])}"
    return text


def shadow_leaderboard(perf: pd.DataFrame | None, cfg: Config
                       ) -> tuple[pd.DataFrame, pd.Timestamp | None, float | None]:
    """The latest analysis's leaderboard (ALL, then each strategy) in ``shadow.recommendation_window_h``, or in the
    shortest window with rows when that one has none."""
    if perf is None or perf.empty:
        return leaderboard(pd.DataFrame({"window_h": [], "strategy": []}), 0.0), None, None
    windows = sorted(set(perf["window_h"].astype(float)))
    want = float(cfg.shadow.recommendation_window_h)
    window = want if want in windows else windows[0]
    return leaderboard(perf, window), utc(perf["analyzed_at"].iloc[0], "analyzed_at"), window


def model_cards(wh: Warehouse, models_root: str | Path | None, notes: list[str]) -> tuple[ModelCard, ...]:
    """Each strategy's champion (registry pointer) with its ``model_metrics`` rows and, from the model store
    (every file verified), the test calibration and the top feature importances."""
    metrics = wh.model_metrics()
    cards = []
    for s in Strategy:
        ch = champion_of(wh, s)
        if ch.model_version is None:
            cards.append(ModelCard(s.value, None))
            continue
        row = wh.champion(s.value) or {}
        mine = (metrics.loc[metrics["model_version"] == ch.model_version] if metrics is not None
                else pd.DataFrame(columns=["part"]))
        mine = mine.assign(_o=mine["part"].map(part_order)).sort_values("_o", kind="stable").drop(columns="_o")
        calibration, importance, problem = store_card(models_root, s, ch.model_version)
        if problem:
            notes.append(f"Model card {s.value}: {problem}")
        cards.append(ModelCard(s.value, ch.model_version, ch.swapped_at, row.get("who"), row.get("why"),
                               ch.composite, mine.reset_index(drop=True), calibration, importance, problem))
    return tuple(cards)


def part_order(part: str) -> tuple[int, int]:
    """validation, test, then the walk-forward windows from the current one (0, −1, −2, …)."""
    if part in ("validation", "test"):
        return (0 if part == "validation" else 1, 0)
    try:
        return (2, abs(int(part.rsplit("_", 1)[-1])))
    except ValueError:
        return (3, 0)


def store_card(root: str | Path | None, strategy: Strategy, version: str
               ) -> tuple[pd.DataFrame, pd.DataFrame, str | None]:
    """(calibration, importance, problem) of a stored version; the problem names why they are missing."""
    empty = pd.DataFrame()
    if root is None:
        return empty, empty, "model store not given: calibration and importance not shown"
    from ..core.ml import ModelStoreError, load

    try:
        m = load(Path(root), strategy, version, regressors=False).metrics
    except ModelStoreError as exc:
        return empty, empty, f"{version} cannot be read from the model store: {exc}"
    bins = m.get("test", {}).get("calibration", [])
    calibration = pd.DataFrame([{"bin": i + 1, "rows": b["rows"], "mean_probability": b["mean_probability"],
                                 "win_rate": b["win_rate"]} for i, b in enumerate(bins)],
                               columns=["bin", "rows", "mean_probability", "win_rate"])
    gain = sorted(m.get("feature_importance_gain", {}).items(), key=lambda kv: (-kv[1], kv[0]))[:IMPORTANCE_TOP]
    importance = pd.DataFrame(gain, columns=["feature", "gain"])
    return calibration, importance, None
