"""Steps 1–3 of SPEC §3.4 and the scan of a range of cycle points: setups, confidence and readiness per symbol ×
strategy × T."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..common import NS_PER_MIN, cycle_points, day_ns, utc_index
from ..config import Config, Strategy, Tier
from ..features import SCAN_FEATURES, bar_grid, compute_scan_features, decision_slots, rolling
from ..features.grid import cover, op_add, timestamps_ns
from ..regime import BestStrategy, Regime
from ..universe import Universe
from .board import readiness_board, readiness_markdown, strategy_setups
from .columns import SCAN_ROW_COLUMNS, empty_rows
from .confidence import ConfidenceArg, confidence_source
from .reasons import Decision, DecisionReason
from .rules import (
    SetupParams,
    channel_readiness,
    channel_setup,
    dca_readiness,
    dca_setup,
    readiness_status,
    swing_readiness,
    swing_setup,
)

# ---------------------------------------------------------------------------------------------------------------
# Steps 1–3 of SPEC §3.4 (vectorised; object arrays hold enum values or None)
# ---------------------------------------------------------------------------------------------------------------


def data_reasons(stale: np.ndarray, window_ok: np.ndarray, suspect: np.ndarray) -> np.ndarray:
    """Step 1: ``stale_data`` where ``stale`` (decision bar stale or regime UNKNOWN), else ``insufficient_history``
    where a setup window is invalid, else ``data_suspect`` where a suspect bar is c or in a setup window; None
    where the data pass."""
    return np.select([stale, ~np.asarray(window_ok, dtype=bool), suspect],
                     [DecisionReason.STALE_DATA.value, DecisionReason.INSUFFICIENT_HISTORY.value,
                      DecisionReason.DATA_SUSPECT.value], None).astype(object)


def decide(step1: np.ndarray, setup: np.ndarray, top_of_range: np.ndarray, confidence: np.ndarray,
           threshold: np.ndarray, near_miss_ratio: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(decision, reason, candidate) of steps 1–3: the first failing step gives the reason; SKIP, except
    ``ml_below_threshold`` with confidence ≥ ``near_miss_ratio`` × threshold (NEAR_MISS); candidates (all three
    passed) get decision and reason None."""
    setup = np.asarray(setup, dtype=bool)
    conf = np.asarray(confidence, dtype="float64")
    below = setup & (conf < threshold)
    near = below & (conf >= near_miss_ratio * threshold)
    step2 = np.where(setup, None, np.where(top_of_range, DecisionReason.TOP_OF_RANGE.value,
                                            DecisionReason.NO_SETUP.value)).astype(object)
    step3 = np.where(below, DecisionReason.ML_BELOW_THRESHOLD.value, None).astype(object)
    step1 = np.asarray(step1, dtype=object)
    reason = np.where(pd.isnull(step1), np.where(pd.isnull(step2), step3, step2), step1).astype(object)
    candidate = pd.isnull(reason)
    decision = np.where(candidate, None, Decision.SKIP.value).astype(object)
    decision[near & (reason == DecisionReason.ML_BELOW_THRESHOLD.value)] = Decision.NEAR_MISS.value
    return decision, reason, np.asarray(candidate, dtype=bool)


# ---------------------------------------------------------------------------------------------------------------
# The scan of a range of cycle points
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScanResult:
    """``scan_rows`` (schema ``ScanPreviewSchema``), ``setups`` (``StrategySetupSchema``), ``board`` (the latest
    cycle point, ``ReadinessBoardSchema``) and the board's Markdown top 5 per strategy."""

    scan_rows: pd.DataFrame
    setups: pd.DataFrame
    board: pd.DataFrame
    board_markdown: str


# Setup-window inputs stored beside the scan features (``features_scan``): what steps 1–3 read from the bars.
WINDOW_COLUMNS: dict[str, str] = {
    "close": "float64", "volume_filter_ratio": "float64",
    "dca_ok": "bool", "swing_ok": "bool", "channel_ok": "bool", "baseline_ok": "bool",
    "dca_suspect": "bool", "swing_suspect": "bool", "channel_suspect": "bool", "baseline_suspect": "bool",
}


def scan_features(bars: pd.DataFrame, cfg: Config, *, start: Any, end: Any, symbols: Iterable[str] | None = None,
                  features: pd.DataFrame | None = None) -> pd.DataFrame:
    """The rows of ``features_scan``: the §2.1 scan features (:func:`~.features.compute_scan_features`) of every
    active symbol (or ``symbols``) × cycle point in [start, end), plus the setup-window inputs of
    :data:`WINDOW_COLUMNS` read at the decision bar c: ``close`` (of c), ``volume_filter_ratio`` (mean volume of the
    DCA window / mean volume of the baseline window, both incl. c; null if a window is invalid or the baseline mean
    is 0), and per window (dca, swing, channel, baseline) whether it has its coverage (``*_ok``) and whether it holds
    a suspect bar (``*_suspect``). False on stale rows.

    ``bars``: base bars with ``suspect``, open time in [start − :func:`setups_warmup`, end). ``features``: the scan
    features of the same bars if already computed (checked against the bars). Sorted by symbol then T.
    """
    p = SetupParams.from_config(cfg)
    syms = _scan_symbols(Universe.from_config(cfg), symbols)
    points = cycle_points(start, end, p.cycle_min).asi8
    _check_bars(bars)
    if features is None:
        features = compute_scan_features(bars, cfg, start=start, end=end, symbols=syms)
    out = features.reset_index(drop=True)
    if not syms or points.size == 0:
        out = out.iloc[:0]
        return out.assign(**{c: pd.Series([], dtype=d) for c, d in WINDOW_COLUMNS.items()})
    cells = _row_cells(out, syms, points, p.cycle_min * NS_PER_MIN, "features")
    if not cells[0].all():
        out = out.loc[cells[0]].reset_index(drop=True)
        cells = _row_cells(out, syms, points, p.cycle_min * NS_PER_MIN, "features")
    feat = _cell_arrays(out, cells, (len(syms), points.size))
    win = _window_inputs(bars, syms, points, p)
    _check_consistent(feat, win, syms, points)
    _, si, ti = cells
    return out.assign(**{c: win[c][si, ti].astype(d) for c, d in WINDOW_COLUMNS.items()})


def scan_from_features(features: pd.DataFrame, regime_frame: pd.DataFrame, cfg: Config, *, start: Any, end: Any,
                       symbols: Iterable[str] | None = None, confidence: ConfidenceArg = None) -> pd.DataFrame:
    """Steps 1–3 of SPEC §3.4, setups (§3.2), confidence (§3.3) and readiness (§3.6) at every cycle point T in
    [start, end) for every active symbol (or ``symbols``) × strategy, from stored ``features_scan`` rows
    (:func:`scan_features`: exactly one per symbol × T) and the ``market_regime`` rows of [start, end)
    (``timestamp``, ``regime``, ``best_strategy``, ``btc_close``); no bar is read.

    Scan rows are sorted by T, strategy (DCA, SWING, CHANNEL) then symbol, one per symbol × strategy × T, with the
    columns of :data:`SCAN_ROW_COLUMNS`: ``scan_id`` (= setup_id, SPEC §0.3), T, decision-bar open, symbol, tier,
    strategy, decision / reason (None for candidates, see the package doc), candidate, setup, confidence and its
    source (on setup rows), the threshold in use, readiness 0–100 and status, ``price`` (decision-bar close),
    ``setup_value`` (DCA ``drop``, SWING ``breakout``, CHANNEL ``channel_position``) and the ``setup_threshold`` it
    is compared with (the tier's drop threshold, breakout threshold, buy zone), the §2.1 features, the DCA
    ``volume_filter_ratio``, regime, best_strategy, btc_close, ``list_type`` (None until the engine orders
    candidates) and ``config_version``.
    """
    p = SetupParams.from_config(cfg)
    uni = Universe.from_config(cfg)
    syms = _scan_symbols(uni, symbols)
    points = cycle_points(start, end, p.cycle_min).asi8
    if not syms or points.size == 0:
        return empty_rows(SCAN_ROW_COLUMNS)
    missing = [c for c in WINDOW_COLUMNS if c not in features.columns]
    if missing:
        raise ValueError(f"features lack the setup-window columns {missing}: build them with scan_features")
    market = _market_at(regime_frame, points)
    cells = _row_cells(features, syms, points, p.cycle_min * NS_PER_MIN, "features")
    shape = (len(syms), points.size)
    feat = _cell_arrays(features, cells, shape)
    win = _cell_arrays(features, cells, shape, WINDOW_COLUMNS)

    tiers = np.asarray([uni.tier(s).value for s in syms], dtype=object)
    n_sym, n_pts = len(syms), points.size
    col_sym = lambda a: np.broadcast_to(np.asarray(a)[:, None], (n_sym, n_pts))  # noqa: E731
    regime_unknown = (market["regime"] == Regime.UNKNOWN.value)[None, :]
    stale = feat["stale"] | regime_unknown

    per: dict[Strategy, dict[str, np.ndarray]] = {}
    # DCA
    thr = col_sym([p.drop_threshold[Tier(t)] for t in tiers]).astype("float64")
    ratio = win["volume_filter_ratio"]
    if p.volume_filter_enabled:
        min_ratio = col_sym([p.volume_filter_min_ratio[Tier(t)] for t in tiers]).astype("float64")
        setup = dca_setup(feat["drop"], thr, ratio, min_ratio)
        ok, sus = win["dca_ok"] & win["baseline_ok"], win["dca_suspect"] | win["baseline_suspect"]
    else:
        setup = dca_setup(feat["drop"], thr)
        ok, sus = win["dca_ok"], win["dca_suspect"]
    score = dca_readiness(feat["drop"], thr)
    per[Strategy.DCA] = dict(setup=setup, top=np.zeros_like(setup), ok=ok, suspect=sus, value=feat["drop"],
                             threshold=thr, readiness=score)
    # SWING
    setup = swing_setup(feat["breakout"], feat["volume_surge"], p.breakout_threshold, p.min_volume_surge)
    rs = p.readiness.swing
    score = swing_readiness(feat["breakout"], feat["volume_surge"], p.breakout_threshold, p.min_volume_surge,
                            rs.breakout_weight, rs.volume_weight)
    per[Strategy.SWING] = dict(setup=setup, top=np.zeros_like(setup), ok=win["swing_ok"], suspect=win["swing_suspect"],
                               value=feat["breakout"], threshold=np.full((n_sym, n_pts), p.breakout_threshold),
                               readiness=score)
    # CHANNEL
    setup, top = channel_setup(feat["channel_position"], p.buy_zone, p.top_zone)
    flat = feat["channel_width"] == 0.0
    score = channel_readiness(feat["channel_position"], flat)
    per[Strategy.CHANNEL] = dict(setup=setup, top=top, ok=win["channel_ok"], suspect=win["channel_suspect"],
                                 value=feat["channel_position"], threshold=np.full((n_sym, n_pts), p.buy_zone),
                                 readiness=score)

    # Long layout: T-major, then strategy (enum order), then symbol.
    strategies = list(Strategy)
    k = len(strategies)

    def lay(arrays: list[np.ndarray]) -> np.ndarray:
        return np.stack([a.T for a in arrays], axis=1).reshape(-1)

    def lay_common(a: np.ndarray) -> np.ndarray:
        return np.broadcast_to(a.T[:, None, :], (n_pts, k, n_sym)).reshape(-1)

    def lay_point(a: np.ndarray) -> np.ndarray:
        return np.broadcast_to(np.asarray(a)[:, None, None], (n_pts, k, n_sym)).reshape(-1)

    def field(name: str) -> np.ndarray:
        return lay([per[s][name] for s in strategies])

    stamps = np.asarray(utc_index(points).strftime("%y%m%d%H%M"), dtype=object)
    strat = np.broadcast_to(np.asarray([s.value for s in strategies], dtype=object)[None, :, None],
                            (n_pts, k, n_sym)).reshape(-1)
    sym = lay_common(col_sym(np.asarray(syms, dtype=object)))
    rows: dict[str, Any] = {
        "scan_id": strat + "_" + sym + "_" + lay_point(stamps),
        "timestamp": utc_index(lay_point(points)),
        "bar_timestamp": utc_index(lay_common(feat["bar_ns"])),  # NaT where the symbol is stale
        "symbol": sym,
        "tier": lay_common(col_sym(tiers)),
        "strategy": strat,
    }
    setup_all = field("setup")
    step1 = data_reasons(lay_common(stale), field("ok"), field("suspect"))
    frame = pd.DataFrame({
        **rows,
        "setup": setup_all,
        "price": lay_common(win["close"]),
        "setup_value": field("value"),
        "setup_threshold": field("threshold"),
        **{name: lay_common(feat[name]) for name in SCAN_FEATURES},
        "volume_filter_ratio": lay_common(ratio),
        "regime": lay_point(market["regime"]),
        "best_strategy": lay_point(market["best_strategy"]),
        "btc_close": lay_point(market["btc_close"]),
    })

    # Step 3: confidence on the setup rows, from the source in use for the strategy.
    conf = np.full(len(frame), np.nan)
    source = np.full(len(frame), None, dtype=object)
    thresh = np.empty(len(frame))
    for s in strategies:
        src, t = confidence_source(cfg, s, confidence)
        in_s = strat == s.value
        thresh[in_s] = t
        idx = np.flatnonzero(in_s & setup_all)
        if idx.size:
            values = np.asarray(src.confidence(s, frame.iloc[idx].reset_index(drop=True)), dtype="float64")
            if values.shape != (idx.size,) or not (np.isfinite(values) & (values >= 0) & (values <= 1)).all():
                raise ValueError(f"{src.name}: confidence for {s.value} must be {idx.size} probabilities in [0, 1]")
            conf[idx] = values
            source[idx] = src.name
    decision, reason, candidate = decide(step1, setup_all, field("top"), conf, thresh, p.near_miss_ratio)
    readiness = field("readiness")
    status = lay([readiness_status(s, per[s]["readiness"], per[s]["setup"], p.readiness) for s in strategies])
    frame["decision"] = decision
    frame["reason"] = reason
    frame["candidate"] = candidate
    frame["confidence"] = conf
    frame["confidence_source"] = source
    frame["threshold"] = thresh
    frame["readiness"] = readiness
    frame["status"] = status
    frame["list_type"] = np.full(len(frame), None, dtype=object)
    frame["config_version"] = np.int64(p.config_version)
    return frame[list(SCAN_ROW_COLUMNS)].reset_index(drop=True)




def scan_cycle_points(bars: pd.DataFrame, regime_frame: pd.DataFrame, cfg: Config, *, start: Any, end: Any,
                      symbols: Iterable[str] | None = None, confidence: ConfidenceArg = None,
                      features: pd.DataFrame | None = None) -> ScanResult:
    """:func:`scan_from_features` over :func:`scan_features` of ``bars`` (base bars with ``suspect``, open time in
    [start − :func:`setups_warmup`, end); later bars are ignored), with the setups, the readiness board of the
    latest cycle point and its Markdown. ``features``: the scan features of [start, end) if already computed from
    the same bars (with or without the window columns; checked against the bars)."""
    p = SetupParams.from_config(cfg)
    syms = _scan_symbols(Universe.from_config(cfg), symbols)
    _check_bars(bars)
    if not syms or cycle_points(start, end, p.cycle_min).size == 0:
        return _result(empty_rows(SCAN_ROW_COLUMNS))
    _market_at(regime_frame, cycle_points(start, end, p.cycle_min).asi8)  # regime errors before the features
    if features is not None:
        features = features.drop(columns=[c for c in WINDOW_COLUMNS if c in features.columns])
    stored = scan_features(bars, cfg, start=start, end=end, symbols=syms, features=features)
    return _result(scan_from_features(stored, regime_frame, cfg, start=start, end=end, symbols=syms,
                                      confidence=confidence))


def scan_day(bars: pd.DataFrame, regime_frame: pd.DataFrame, day: Any, cfg: Config, *,
             symbols: Iterable[str] | None = None, confidence: ConfidenceArg = None) -> ScanResult:
    """:func:`scan_cycle_points` for the cycle points of UTC ``day`` (bars from day − :func:`setups_warmup`);
    equal to the same rows of a run over a longer range."""
    d = pd.Timestamp(day_ns(day), tz="UTC")
    return scan_cycle_points(bars, regime_frame, cfg, start=d, end=d + pd.Timedelta(days=1), symbols=symbols,
                             confidence=confidence)


def _result(rows: pd.DataFrame) -> ScanResult:
    rows = rows.reset_index(drop=True)
    board = readiness_board(rows)
    return ScanResult(rows, strategy_setups(rows), board, readiness_markdown(board))


def _scan_symbols(uni: Universe, symbols: Iterable[str] | None) -> list[str]:
    if symbols is None:
        return sorted(uni.active_symbols)
    out = sorted(set(uni.check(list(symbols))))
    inactive = [s for s in out if not uni.is_active(s)]
    if inactive:
        raise ValueError(f"inactive symbols are not scanned (universe.inactive): {inactive}")
    return out


def _check_bars(bars: pd.DataFrame) -> None:
    missing = [c for c in ("symbol", "timestamp", "open", "high", "low", "close", "volume", "suspect")
               if c not in bars.columns]
    if missing:
        raise ValueError(f"bars lack columns {missing} (suspect: SPEC §13.2 extreme-move flag)")
    if bars["suspect"].dtype != bool:
        raise ValueError(f"bars.suspect must be bool, got {bars['suspect'].dtype}")


def _market_at(regime_frame: pd.DataFrame, points: np.ndarray) -> dict[str, np.ndarray]:
    missing = [c for c in ("timestamp", "regime", "best_strategy", "btc_close") if c not in regime_frame.columns]
    if missing:
        raise ValueError(f"regime_frame lacks columns {missing}")
    ts = timestamps_ns(regime_frame["timestamp"])
    if pd.Index(ts).has_duplicates:
        raise ValueError("regime_frame has more than one row per cycle point")
    pos = pd.Index(ts).get_indexer(points)
    if (pos < 0).any():
        raise ValueError(f"regime_frame has no row for cycle point {pd.Timestamp(int(points[pos < 0][0]), tz='UTC')}")
    regime = regime_frame["regime"].to_numpy(dtype=object)[pos]
    best = regime_frame["best_strategy"].to_numpy(dtype=object)[pos]
    for r in set(regime):
        Regime(r)
    for b in set(best):
        BestStrategy(b)
    return {"regime": regime, "best_strategy": best,
            "btc_close": regime_frame["btc_close"].to_numpy(dtype="float64")[pos]}


def _row_cells(features: pd.DataFrame, syms: list[str], points: np.ndarray, cycle_ns: int, name: str
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(kept-row mask, symbol index, cycle-point index) of the rows of ``features`` inside syms × points; every
    cell must have exactly one row."""
    need = ["symbol", "timestamp", "bar_timestamp", "stale", *SCAN_FEATURES]
    missing = [c for c in need if c not in features.columns]
    if missing:
        raise ValueError(f"{name} lack columns {missing}")
    ts = timestamps_ns(features["timestamp"])
    si = pd.Categorical(features["symbol"].astype(str), categories=syms).codes.astype("int64")
    keep = (si >= 0) & (ts >= points[0]) & (ts <= points[-1])
    off = ts[keep] - points[0]
    if (off % cycle_ns).any():
        raise ValueError(f"{name} hold a timestamp that is not a cycle point")
    si, ti = si[keep], off // cycle_ns
    count = np.zeros((len(syms), points.size), dtype="int64")
    np.add.at(count, (si, ti), 1)
    if (count != 1).any():
        s, t = np.argwhere(count != 1)[0]
        raise ValueError(f"{name} need exactly one row for {syms[s]} at {pd.Timestamp(int(points[t]), tz='UTC')}, "
                         f"got {count[s, t]}")
    return keep, si, ti


def _cell_arrays(features: pd.DataFrame, cells: tuple[np.ndarray, np.ndarray, np.ndarray], shape: tuple[int, int],
                 columns: dict[str, str] | None = None) -> dict[str, np.ndarray]:
    """Columns of the kept rows as (symbols × cycle points) arrays: the scan features with ``stale`` and
    ``bar_ns`` (default), or ``columns`` (name → dtype)."""
    keep, si, ti = cells
    sub = features.loc[keep]
    out: dict[str, np.ndarray] = {}
    for name, dtype in (columns or {n: "float64" for n in SCAN_FEATURES}).items():
        a = np.empty(shape, dtype=dtype)
        a[si, ti] = sub[name].to_numpy(dtype=dtype)
        out[name] = a
    if columns is None:
        stale = np.empty(shape, dtype=bool)
        stale[si, ti] = sub["stale"].to_numpy(dtype=bool)
        bar = np.empty(shape, dtype="int64")
        bar[si, ti] = sub["bar_timestamp"].dt.as_unit("ns").array.asi8
        out["stale"], out["bar_ns"] = stale, bar
    return out


def _window_inputs(bars: pd.DataFrame, syms: list[str], points: np.ndarray, p: SetupParams) -> dict[str, np.ndarray]:
    """From the base bars at each decision bar c: coverage and suspect flags of every setup window, the close of c
    and the DCA volume-filter ratio (symbols × cycle points)."""
    b = p.base.minutes * NS_PER_MIN
    lag = p.max_bar_lag_min * NS_PER_MIN
    t0 = points[0] - lag - (p.reach_bars + 1) * b
    t0 -= t0 % b
    t1 = int(points[-1])
    ts = timestamps_ns(bars["timestamp"])
    sub = bars.loc[(ts >= t0) & (ts < t1)]
    grid = bar_grid(sub, p.base.minutes, t0, t1, syms)
    present = grid.present
    suspect = np.zeros(present.shape)
    flagged = sub.loc[sub["suspect"].to_numpy(dtype=bool)]
    if not flagged.empty:
        codes = pd.Categorical(flagged["symbol"].astype(str), categories=syms).codes.astype("int64")
        slots = (timestamps_ns(flagged["timestamp"]) - t0) // b
        suspect[codes[codes >= 0], slots[codes >= 0]] = 1.0
    dec, stale = decision_slots(present, t0, b, points, p.max_bar_lag_min)
    rows = np.arange(len(syms))[:, None]
    c = np.maximum(dec, 0)
    before = np.maximum(dec - 1, 0)
    has_before = dec >= 1
    cnt = present.astype("float64")
    vol = np.where(present, grid.volume, 0.0)
    memo: dict[tuple[str, int], np.ndarray] = {}

    def roll(name: str, n: int) -> np.ndarray:
        if (name, n) not in memo:
            memo[(name, n)] = rolling({"n": cnt, "s": suspect, "v": vol}[name], n, op_add)
        return memo[(name, n)]

    def incl(name: str, n: int) -> np.ndarray:  # window (c − W, c]
        return roll(name, n)[rows, c]

    def excl(name: str, n: int) -> np.ndarray:  # reference window [c − W, c)
        return np.where(has_before, roll(name, n)[rows, before], 0.0)

    fresh = ~stale
    out: dict[str, np.ndarray] = {"stale": stale, "bar_ns": np.where(stale, np.iinfo("int64").min, t0 + dec * b)}
    out["close"] = np.where(fresh, grid.close[rows, c], np.nan)
    for name, n in (("dca", p.dca_bars), ("channel", p.channel_bars), ("baseline", p.baseline_bars)):
        out[f"{name}_ok"] = fresh & cover(incl("n", n), n, p.coverage)
        out[f"{name}_suspect"] = fresh & (incl("s", n) > 0)
    out["swing_ok"] = fresh & cover(excl("n", p.swing_bars), p.swing_bars, p.coverage)
    out["swing_suspect"] = fresh & ((suspect[rows, c] > 0) | (excl("s", p.swing_bars) > 0))
    with np.errstate(invalid="ignore", divide="ignore"):
        win_mean = incl("v", p.dca_bars) / incl("n", p.dca_bars)
        base_mean = incl("v", p.baseline_bars) / incl("n", p.baseline_bars)
        ratio = win_mean / base_mean
    valid = out["dca_ok"] & out["baseline_ok"] & (base_mean > 0)
    out["volume_filter_ratio"] = np.where(valid, ratio, np.nan)
    return out


def _check_consistent(feat: dict[str, np.ndarray], win: dict[str, np.ndarray], syms: list[str],
                      points: np.ndarray) -> None:
    """The features must come from the same bars and config as the windows read here (a mismatch raises)."""
    fresh = ~win["stale"]
    checks = [
        ("stale", feat["stale"] != win["stale"]),
        ("bar_timestamp", fresh & (feat["bar_ns"] != win["bar_ns"])),
        ("drop", fresh & (np.isnan(feat["drop"]) == win["dca_ok"])),
        ("breakout", fresh & (np.isnan(feat["breakout"]) == win["swing_ok"])),
        ("channel_width", fresh & (np.isnan(feat["channel_width"]) == win["channel_ok"])),
    ]
    for name, bad in checks:
        if bad.any():
            s, t = np.argwhere(bad)[0]
            raise ValueError(f"features do not match the bars ({name} of {syms[s]} at "
                             f"{pd.Timestamp(int(points[t]), tz='UTC')}): compute them from the same bars and config")
