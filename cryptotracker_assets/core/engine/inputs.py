"""What a run reads besides its state (:class:`EngineInputs`), and the scan rows it decides on (steps 1–3 of SPEC
§3.4): the engine's own scan or the caller's preview rows, checked against the run's cycle points."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd

from ..common import NS_PER_MIN, from_ns, ns_column
from ..config import Config, Strategy
from ..ledger import empty_ledger
from ..protection import OperatorEvent
from ..setups import SCAN_ROW_COLUMNS, ConfidenceArg, scan_cycle_points
from ..universe import Universe
from .bars import BarStore
from .errors import EngineInputError
from .state import ManualClose


@lru_cache(maxsize=1)
def _empty_ledger_template() -> pd.DataFrame:
    return empty_ledger()


def cached_empty_ledger() -> pd.DataFrame:
    """:func:`..ledger.empty_ledger` (built once; a copy per call)."""
    return _empty_ledger_template().copy()


@dataclass(frozen=True, eq=False)
class EngineInputs:
    """What a run reads besides its state.

    ``cfg``: the effective config of the run (split runs at config revisions). ``bars``: stored base bars (frame
    with ``ingested_at``, and ``suspect`` when the engine scans; or a :class:`BarStore`): at least every bar newer
    than its symbol's last processed bar (``EngineState.last_bars``) with open time before the last cycle point,
    and from ``start − setups_warmup(cfg)`` when the engine computes the scan itself. ``market_regime``: the rows
    of the run's cycle points (:func:`..regime.build_market_regime`). ``ledger``: the ledger as committed before the
    run. ``events``: operator events (:class:`~..protection.OperatorEvent` pause / resume, :class:`ManualClose`),
    any span (each acts once, from the first cycle point after it). ``confidence``: the champion plug-in of
    :func:`..setups.confidence_source` (None = rule). ``scan_rows``: precomputed steps 1–3 rows (the
    ``scan_preview`` layout) covering the run's cycle points, else the engine runs the scan. ``model_scores``: the
    champions' outputs per scan row (index ``scan_id``; ``confidence``, ``tp_target``, ``sl_target``,
    ``hold_target_h``) for the shadows: the confidence of a row where only a variation's setup fires, and the
    ML_TRUST targets (SPEC §10.1); None: no champion outputs.
    """

    cfg: Config
    bars: pd.DataFrame | BarStore
    market_regime: pd.DataFrame
    ledger: pd.DataFrame = field(default_factory=lambda: cached_empty_ledger())
    events: Sequence[OperatorEvent | ManualClose] = ()
    confidence: ConfidenceArg = None
    scan_rows: pd.DataFrame | None = None
    model_scores: pd.DataFrame | None = None


@dataclass(frozen=True, eq=False)
class RunScan:
    """A run's scan rows in scan order (T, then strategy DCA, SWING, CHANNEL, then symbol): ``bounds[k]`` to
    ``bounds[k + 1]`` are the rows of the k-th cycle point; ``col`` holds the columns the decisions read, as arrays."""

    rows: pd.DataFrame
    bounds: np.ndarray
    col: Mapping[str, np.ndarray]


def run_scan(inputs: EngineInputs, bars: BarStore, uni: Universe, points: pd.DatetimeIndex) -> RunScan:
    """The scan rows of ``points``: computed by :func:`..setups.scan_cycle_points` from ``bars``, or the caller's
    ``inputs.scan_rows`` (checked: one row per active symbol × strategy × T, this config version, candidates
    undecided). Raises :class:`EngineInputError` for rows that do not cover the cycle points."""
    cfg = inputs.cfg
    if len(points) == 0:
        return RunScan(pd.DataFrame(columns=list(SCAN_ROW_COLUMNS)), np.zeros(0, dtype=np.int64), {})
    step_ns = cfg.engine.cycle_min * NS_PER_MIN
    if inputs.scan_rows is None:
        frame = bars.frame
        rows = scan_cycle_points(frame, inputs.market_regime, cfg, start=points[0],
                                 end=from_ns(points[-1].value + step_ns), confidence=inputs.confidence).scan_rows
    else:
        src = inputs.scan_rows
        missing = [c for c in SCAN_ROW_COLUMNS if c not in src.columns]
        if missing:
            raise EngineInputError(f"scan_rows lack columns {missing}")
        ts = ns_column(src["timestamp"], "scan_rows.timestamp", EngineInputError)
        keep = (ts >= points[0].value) & (ts <= points[-1].value)
        rows = src if keep.all() and list(src.columns) == list(SCAN_ROW_COLUMNS) else src.loc[
            keep, list(SCAN_ROW_COLUMNS)]
    # T, then strategy (DCA, SWING, CHANNEL), then symbol: the order of scan_cycle_points (kept if already so).
    order = {s.value: i for i, s in enumerate(Strategy)}
    ts = ns_column(rows["timestamp"], "scan_rows.timestamp", EngineInputError)
    strat = rows["strategy"].map(order).to_numpy()
    if pd.isna(strat).any():
        raise EngineInputError("scan rows with an unknown strategy")
    strat = strat.astype("int64")
    sym = rows["symbol"].astype(str).to_numpy()
    idx = np.lexsort((sym, strat, ts))
    if not (idx == np.arange(len(idx))).all():
        rows, ts, strat, sym = rows.iloc[idx], ts[idx], strat[idx], sym[idx]
    rows = rows.reset_index(drop=True)
    bounds = np.searchsorted(ts, np.append(points.asi8, points[-1].value + 1), side="left")
    active = sorted(uni.active_symbols)
    n_expected = len(active) * len(Strategy)
    for i, t in enumerate(points):
        a, b = int(bounds[i]), int(bounds[i + 1])
        if b - a != n_expected:
            raise EngineInputError(f"scan rows at {t}: {b - a} rows, expected one per active symbol × strategy "
                                   f"({n_expected})")
    if len(rows):
        same = (ts[1:] == ts[:-1]) & (strat[1:] == strat[:-1]) & (sym[1:] == sym[:-1])
        if same.any() or not pd.Index(sym).isin(active).all():  # hashing: np.isin sorts object arrays
            raise EngineInputError("scan rows must be one per active symbol × strategy × cycle point")
        if (rows["config_version"].to_numpy() != cfg.config_version).any():
            raise EngineInputError("scan rows were computed under another config_version")
        cand = rows["candidate"].to_numpy(dtype=bool)
        if pd.notna(rows["reason"].to_numpy()[cand]).any():
            raise EngineInputError("scan rows' candidates must be undecided (steps 1–3 only)")
    col = {c: rows[c].to_numpy() for c in ("strategy", "symbol", "tier", "candidate", "setup", "decision", "reason",
                                           "confidence", "confidence_source", "setup_value", "volume_surge",
                                           "volume_filter_ratio", "vol_24h", "scan_id", "regime", "best_strategy")}
    return RunScan(rows, bounds, col)
