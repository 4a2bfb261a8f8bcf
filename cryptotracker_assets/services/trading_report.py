"""The trading report and the ``daily_performance`` rows from the warehouse (SPEC §12.2), without Dagster.

Every figure of one report is read in ONE read transaction and cut at the report's time ``as_of``: the ledger rows
processed by then, each open symbol's latest base bar opening before it (its decision-bar close, the mark), the
newest ``market_regime`` and ``scan_history`` cycle point ≤ as_of, the day's ``portfolio_snapshots``, the operator
events, the engine state with the newest cursor ≤ as_of (for the stops in force) and the champion pointers in
force. The figures themselves are :mod:`..core.reports`'; the portfolio state is the ledger's one function.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from ..core import reports
from ..core.common import day_ns, from_ns, utc
from ..core.config import Config, Strategy
from ..core.engine import EngineState
from ..core.ledger import open_positions
from ..core.ml import ModelStoreError, load
from ..core.ml.features import feature_set_version
from ..core.report_schemas import DailyPerformanceSchema
from ..storage.engine import SCAN_HISTORY_TABLE, SNAPSHOTS_TABLE
from ..storage.report_queries import closes_before, engine_state_at, latest_time_at
from ..storage.warehouse import Warehouse
from .operator import read_ledger

REGIME_TABLE = "market_regime"
BOARD_COLUMNS = ("timestamp", "symbol", "strategy", "setup", "status")
SCAN_COUNT_COLUMNS = ("timestamp", "strategy", "setup", "decision")
# [t, t + 1 µs): the rows of one time; [.., t + 1 µs): the rows up to t included (the warehouse stores µs)
US = pd.Timedelta(microseconds=1)


class TradingReportError(ValueError):
    """The report cannot be built from what is stored (names what is missing)."""


def _champion(row: dict | None, strategy: Strategy, cfg: Config, models_root: str | Path | None
              ) -> reports.ChampionLine:
    """The pointer in force as a line; with ``models_root`` a champion that cannot be loaded or was trained on
    another feature set counts as none (SPEC §3.3, I-18)."""
    if row is None or row["model_version"] is None or pd.isna(row["model_version"]):
        return reports.ChampionLine(strategy.value, None, None)
    version = str(row["model_version"])
    if models_root is not None:
        try:
            model = load(Path(models_root), strategy, version, regressors=False)
        except ModelStoreError:
            return reports.ChampionLine(strategy.value, None, None)
        if model.feature_set_version != feature_set_version(cfg):
            return reports.ChampionLine(strategy.value, None, None)
    composite = row["composite"]
    return reports.ChampionLine(strategy.value, version, None if pd.isna(composite) else float(composite))


def _rows_at(wh: Warehouse, con, table: str, column: str, at: pd.Timestamp, columns=None) -> pd.DataFrame | None:
    t = latest_time_at(con, table, column, at)
    return None if t is None else wh.read_slice(table, column, t, t + US, columns=columns, order_by=(), con=con)


def trading_report(wh: Warehouse, cfg: Config, *, kind: str, period_start: Any, period_end: Any, as_of: Any = None,
                   catchup_of: Iterable[str] = (), models_root: str | Path | None = None) -> dict:
    """The trading report of [period_start, period_end) as of ``as_of`` (default: period_end) as a JSON-ready dict
    (:meth:`..core.reports.TradingReport.payload`). ``models_root``: the model store, to count an unloadable
    champion as none. Raises :class:`TradingReportError` when an open position has no stored bar to mark it."""
    start, end = utc(period_start, "period_start"), utc(period_end, "period_end")
    now = end if as_of is None else utc(as_of, "as_of")
    tf = cfg.engine.base_timeframe
    btc = cfg.universe.market_symbol
    with wh.snapshot() as con:
        ledger = read_ledger(wh, None, now + US, con=con)
        symbols = sorted(set(open_positions(ledger)["symbol"]))
        marks = closes_before(con, tf, now, symbols)
        btc_at = [closes_before(con, tf, t, [btc]).get(btc) for t in (now, start, end)]
        regime = _rows_at(wh, con, REGIME_TABLE, "timestamp", now)
        board = _rows_at(wh, con, SCAN_HISTORY_TABLE, "timestamp", now, columns=BOARD_COLUMNS)
        snapshots = wh.read_slice(SNAPSHOTS_TABLE, "cycle_point", now.floor("D"), now + US, order_by=(), con=con)
        events = wh.operator_events(con=con)
        state_row = engine_state_at(con, now)
        pointers = {s: wh.champion(s.value, now, con=con) for s in Strategy}
    missing = [s for s in symbols if s not in marks]
    if missing:
        raise TradingReportError(f"trading report as of {now}: no stored {tf.value} bar before it to mark open "
                                 f"position(s) on {missing}")
    market = reports.MarketView(*btc_at, regime.iloc[0].to_dict() if regime is not None and len(regime) else None)
    state = EngineState.from_json(state_row["state_json"]) if state_row is not None else None
    inputs = reports.ReportInputs(
        ledger=ledger, marks=marks, market=market, board=board, snapshots=snapshots, operator_events=events,
        stops=reports.stops_in_force(state, ledger),
        champions=[_champion(pointers[s], s, cfg, models_root) for s in Strategy])
    report = reports.trading_report(inputs, cfg, kind=kind, period_start=start, period_end=end, as_of=now,
                                    catchup_of=catchup_of)
    return report.payload()


def daily_performance(wh: Warehouse, cfg: Config, day: pd.Timestamp, *,
                      models_root: str | Path | None = None) -> pd.DataFrame:
    """The ``daily_performance`` rows of one UTC ``day`` (00:00; another time raises), validated by
    :class:`..core.report_schemas.DailyPerformanceSchema`. The champion is the one in force at the end of the day;
    the config version that of the day's stored engine state (the config's own when the engine has not run that
    day)."""
    start = from_ns(day_ns(day))
    end = start + pd.Timedelta(days=1)
    with wh.snapshot() as con:
        scans = wh.read_slice(SCAN_HISTORY_TABLE, "timestamp", start, end, columns=SCAN_COUNT_COLUMNS, order_by=(),
                              con=con)
        ledger = read_ledger(wh, con=con)
        states = wh.engine_states(start, end, con=con)
        pointers = {s: wh.champion(s.value, end, con=con) for s in Strategy}
    version = int(states["config_version"].iloc[-1]) if states is not None and len(states) else cfg.config_version
    composites = {s.value: _champion(pointers[s], s, cfg, models_root).composite for s in Strategy}
    df = reports.daily_performance(start, scan_rows=scans, ledger=ledger, champion_composites=composites,
                                   config_version=version)
    return DailyPerformanceSchema.validate(df, lazy=True)
