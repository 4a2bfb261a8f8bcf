"""Strategy setups, scan decisions (steps 1–3 of SPEC §3.4), confidence and readiness (SPEC §3); never imports dagster.

At every cycle point T (UTC multiple of ``engine.cycle_min``) and for every active symbol × strategy:

1. **data** — ``stale_data`` (decision bar stale or regime UNKNOWN), ``insufficient_history`` (a setup window has
   less than ``engine.min_window_coverage`` of its bars), ``data_suspect`` (a ``suspect`` bar, SPEC §13.2, as the
   decision bar c or in a setup window);
2. **setup** (§3.2) — ``no_setup`` or, for CHANNEL, ``top_of_range``;
3. **confidence** (§3.3) — ``ml_below_threshold`` (NEAR_MISS inside the near-miss band, else SKIP).

Steps 1–3 always run (setup, confidence and readiness are filled wherever their inputs exist); the first failing step
gives the reason. A row that passes all three is a **candidate**: ``candidate = True`` with ``decision`` and
``reason`` null. Steps 4–6 (gates, priority, execution) belong to the paper engine, which resolves every candidate
with :func:`resolve_candidates` before it writes ``scan_history``; the ``scan_preview`` asset stores the rows as they
are here (same schema, candidates undecided), because no entry order exists to justify a TAKE.

Windows are time spans from the config converted to bars of ``engine.base_timeframe``; a window *including* c holds
the bars with open time in (c − W, c], a *reference* window *excluding* c holds [c − W, c) (SPEC §0.2). Thresholds
are fractions, readiness and its cut-offs 0–100, all times tz-aware UTC.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from .config import Config, ReadinessConfig, Strategy, Tier, Timeframe
from .features import (
    NS_PER_DAY,
    NS_PER_MIN,
    SCAN_FEATURES,
    _cover,
    _op_add,
    _timestamps_ns,
    _to_ns,
    _utc,
    bar_grid,
    compute_scan_features,
    cycle_points,
    decision_slots,
    rolling,
    scan_warmup,
    window_bars,
)
from .ledger import ExecutionReason, _StrictEnum  # the ledger's strict parse (SPEC §0.4)
from .protection import GateReason
from .regime import BestStrategy, Regime
from .universe import Universe

# ---------------------------------------------------------------------------------------------------------------
# Enums (SPEC §0.4, §3.4, §3.6): parsed strictly, an unknown value raises
# ---------------------------------------------------------------------------------------------------------------


class DecisionReason(_StrictEnum):
    """The one reason-code enum of SPEC §3.4, in decision order. The step-4 gate codes are
    :class:`~.protection.GateReason`'s and the step-6 execution codes :class:`~.ledger.ExecutionReason`'s
    (same string values, taken from those enums); :meth:`of` maps a member of either onto this enum."""

    # step 1: data
    STALE_DATA = "stale_data"
    INSUFFICIENT_HISTORY = "insufficient_history"
    DATA_SUSPECT = "data_suspect"
    # step 2: setup
    NO_SETUP = "no_setup"
    TOP_OF_RANGE = "top_of_range"
    # step 3: confidence
    ML_BELOW_THRESHOLD = "ml_below_threshold"
    # step 4: gates (core.protection)
    PAUSED = GateReason.PAUSED.value
    REGIME_PANIC = GateReason.REGIME_PANIC.value
    DAILY_LOSS_GATE = GateReason.DAILY_LOSS_GATE.value
    LOSS_STREAK_PAUSE = GateReason.LOSS_STREAK_PAUSE.value
    STRATEGY_DISABLED = GateReason.STRATEGY_DISABLED.value
    BANNED = GateReason.BANNED.value
    COOLDOWN = GateReason.COOLDOWN.value
    # step 5: priority
    NOT_PRIORITISED = "not_prioritised"
    # step 6: execution (core.ledger), in priority order
    SYMBOL_OPEN = ExecutionReason.SYMBOL_OPEN.value
    PORTFOLIO_FULL = ExecutionReason.PORTFOLIO_FULL.value
    STRATEGY_FULL = ExecutionReason.STRATEGY_FULL.value
    ALLOCATION_EXHAUSTED = ExecutionReason.ALLOCATION_EXHAUSTED.value
    INSUFFICIENT_CASH = ExecutionReason.INSUFFICIENT_CASH.value
    # an entry order was created
    ENTERED = "entered"

    @classmethod
    def of(cls, value: "DecisionReason | GateReason | ExecutionReason | str") -> "DecisionReason":
        """Strict mapping of a reason of this enum, of GateReason / ExecutionReason, or an exact string value."""
        if isinstance(value, (GateReason, ExecutionReason)):
            return cls(value.value)
        return cls.parse(value)

    @property
    def step(self) -> int:
        """The §3.4 step that gives this reason (1–6); ``entered`` is 7 (after execution)."""
        return _STEP[self]


_STEP: dict[DecisionReason, int] = {
    **{r: 1 for r in (DecisionReason.STALE_DATA, DecisionReason.INSUFFICIENT_HISTORY, DecisionReason.DATA_SUSPECT)},
    DecisionReason.NO_SETUP: 2, DecisionReason.TOP_OF_RANGE: 2, DecisionReason.ML_BELOW_THRESHOLD: 3,
    **{DecisionReason(g.value): 4 for g in GateReason}, DecisionReason.NOT_PRIORITISED: 5,
    **{DecisionReason(e.value): 6 for e in ExecutionReason}, DecisionReason.ENTERED: 7,
}
SCAN_STEP_REASONS: tuple[DecisionReason, ...] = tuple(r for r in DecisionReason if r.step <= 3)
ENGINE_STEP_REASONS: tuple[DecisionReason, ...] = tuple(r for r in DecisionReason if r.step >= 4)


class Decision(_StrictEnum):
    TAKE = "TAKE"
    SKIP = "SKIP"
    NEAR_MISS = "NEAR_MISS"

    @classmethod
    def of(cls, reason: DecisionReason, near_miss: bool = False) -> "Decision":
        """TAKE for ``entered``; NEAR_MISS for ``ml_below_threshold`` inside the near-miss band; SKIP otherwise."""
        reason = DecisionReason.of(reason)
        if reason is DecisionReason.ENTERED:
            return cls.TAKE
        if near_miss and reason is not DecisionReason.ML_BELOW_THRESHOLD:
            raise ValueError(f"only ml_below_threshold can be a near miss, not {reason.value}")
        return cls.NEAR_MISS if near_miss else cls.SKIP


class ReadinessStatus(_StrictEnum):
    READY = "READY"
    CLOSE = "CLOSE"
    WAITING = "WAITING"
    BUY_ZONE = "BUY_ZONE"
    NEUTRAL = "NEUTRAL"
    SELL_ZONE = "SELL_ZONE"


# Status labels per strategy, best first (SPEC §3.6); the first one is what a firing setup shows.
STATUSES: dict[Strategy, tuple[ReadinessStatus, ReadinessStatus, ReadinessStatus]] = {
    Strategy.DCA: (ReadinessStatus.READY, ReadinessStatus.CLOSE, ReadinessStatus.WAITING),
    Strategy.SWING: (ReadinessStatus.READY, ReadinessStatus.CLOSE, ReadinessStatus.WAITING),
    Strategy.CHANNEL: (ReadinessStatus.BUY_ZONE, ReadinessStatus.NEUTRAL, ReadinessStatus.SELL_ZONE),
}


class ListType(_StrictEnum):
    """Which §9.2 list a scan row's candidate was ordered in (filled by the engine; null in the preview)."""

    RECOMMENDED = "recommended"
    FALLBACK = "fallback"


RULE_SOURCE = "rule"
_MODEL_SOURCE = re.compile(r"^model:(?P<version>(dca|swing|channel)_\d{12})$")

# ---------------------------------------------------------------------------------------------------------------
# Parameters (every value from the config; windows in bars of engine.base_timeframe)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SetupParams:
    """The §3.2/§3.3/§3.6 parameters of one effective config."""

    base: Timeframe
    cycle_min: int
    max_bar_lag_min: int
    coverage: float
    dca_bars: int
    swing_bars: int
    channel_bars: int
    baseline_bars: int
    drop_threshold: Mapping[Tier, float]
    volume_filter_enabled: bool
    volume_filter_min_ratio: Mapping[Tier, float]
    breakout_threshold: float
    min_volume_surge: float
    buy_zone: float
    top_zone: float
    readiness: ReadinessConfig
    near_miss_ratio: float
    config_version: int

    @classmethod
    def from_config(cls, cfg: Config) -> "SetupParams":
        base = cfg.engine.base_timeframe
        st = cfg.strategies

        def bars(key: str) -> int:
            return window_bars(cfg, key, base)

        return cls(
            base=base, cycle_min=cfg.engine.cycle_min, max_bar_lag_min=cfg.engine.max_bar_lag_min,
            coverage=cfg.engine.min_window_coverage, dca_bars=bars("strategies.dca.lookback_min"),
            swing_bars=bars("strategies.swing.lookback_min"), channel_bars=bars("strategies.channel.lookback_min"),
            baseline_bars=bars("strategies.dca.volume_filter.baseline_min"),
            drop_threshold={t: st.dca.drop_threshold.of(t) for t in Tier},
            volume_filter_enabled=st.dca.volume_filter.enabled,
            volume_filter_min_ratio={t: st.dca.volume_filter.min_ratio.of(t) for t in Tier},
            breakout_threshold=st.swing.breakout_threshold, min_volume_surge=st.swing.min_volume_surge,
            buy_zone=st.channel.buy_zone, top_zone=st.channel.top_zone, readiness=cfg.readiness,
            near_miss_ratio=cfg.ml.near_miss_ratio, config_version=cfg.config_version,
        )

    @property
    def reach_bars(self) -> int:
        """Bars up to and including the decision bar that a setup window (or the volume baseline) reads."""
        return max(self.dca_bars, self.swing_bars + 1, self.channel_bars, self.baseline_bars)


def setups_warmup(cfg: Config) -> pd.Timedelta:
    """Warm-up span for the scan rows of [start, end): pass base bars with open time in [start − span, end).

    The longest of :func:`~.features.scan_warmup` (the scan features, 5 days with the defaults: the Kind-X RSI start)
    and ``engine.max_bar_lag_min`` plus the DCA volume baseline (``strategies.dca.volume_filter.baseline_min``).
    The ``regime_frame`` comes from :func:`~.regime.build_market_regime` with its own (shorter) warm-up.
    """
    p = SetupParams.from_config(cfg)
    own = (p.max_bar_lag_min + p.reach_bars * p.base.minutes) * NS_PER_MIN
    return pd.Timedelta(max(int(scan_warmup(cfg).value), own), unit="ns")


# ---------------------------------------------------------------------------------------------------------------
# Detectors (SPEC §3.2): vectorised over arrays of rows; NaN inputs never fire
# ---------------------------------------------------------------------------------------------------------------


def dca_setup(drop: np.ndarray, threshold: np.ndarray, volume_filter_ratio: np.ndarray | None = None,
              min_ratio: np.ndarray | None = None) -> np.ndarray:
    """DCA fires when ``drop`` ≤ the tier's ``threshold`` (fractions, equal fires) and, when the volume filter is
    on (pass ``volume_filter_ratio`` and ``min_ratio``), the ratio ≥ the tier's ``min_ratio`` (equal fires)."""
    fire = np.asarray(drop, dtype="float64") <= threshold
    if volume_filter_ratio is not None:
        fire &= np.asarray(volume_filter_ratio, dtype="float64") >= min_ratio
    return fire


def swing_setup(breakout: np.ndarray, volume_surge: np.ndarray, threshold: float, min_surge: float) -> np.ndarray:
    """SWING fires when ``breakout`` ≥ ``threshold`` (fraction, equal fires) and ``volume_surge`` > ``min_surge``
    (ratio, strict)."""
    breakout, volume_surge = np.asarray(breakout, dtype="float64"), np.asarray(volume_surge, dtype="float64")
    return (breakout >= threshold) & (volume_surge > min_surge)


def channel_setup(channel_position: np.ndarray, buy_zone: float, top_zone: float) -> tuple[np.ndarray, np.ndarray]:
    """(long setup, top of range) of CHANNEL: position ≥ ``top_zone`` is top of range and never a long; otherwise
    position ≤ ``buy_zone`` is a long setup (equal fires). A flat window (null position) is neither."""
    cp = np.asarray(channel_position, dtype="float64")
    top = cp >= top_zone
    return (cp <= buy_zone) & ~top, top


# ---------------------------------------------------------------------------------------------------------------
# Readiness (SPEC §3.6): 0–100; null where the inputs are null
# ---------------------------------------------------------------------------------------------------------------


def dca_readiness(drop: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    """d = 100·|drop − t| (pp); drop ≤ t → min(100, 80 + 4d); else max(0, 80 − 20d)."""
    drop = np.asarray(drop, dtype="float64")
    d = 100.0 * np.abs(drop - threshold)
    with np.errstate(invalid="ignore"):
        out = np.where(drop <= threshold, np.minimum(100.0, 80.0 + 4.0 * d), np.maximum(0.0, 80.0 - 20.0 * d))
    return np.where(np.isnan(drop), np.nan, out)


def swing_readiness(breakout: np.ndarray, volume_surge: np.ndarray, breakout_threshold: float, min_surge: float,
                    breakout_weight: float, volume_weight: float) -> np.ndarray:
    """x = breakout / breakout_threshold; b = 0 (x < −2), 35(x + 2) (−2 ≤ x < 0), 70 + 20x (0 ≤ x < 1),
    min(100, 90 + 10(x − 1)) (x ≥ 1); v = min(100, 100·surge / min_surge); readiness = w_b·b + w_v·v."""
    x = np.asarray(breakout, dtype="float64") / breakout_threshold
    b = np.select([x < -2.0, x < 0.0, x < 1.0], [0.0, 35.0 * (x + 2.0), 70.0 + 20.0 * x],
                  np.minimum(100.0, 90.0 + 10.0 * (x - 1.0)))
    v = np.minimum(100.0, 100.0 * np.asarray(volume_surge, dtype="float64") / min_surge)
    out = breakout_weight * b + volume_weight * v
    return np.where(np.isnan(x) | np.isnan(v), np.nan, out)


def channel_readiness(channel_position: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """p = 100·position (50 where ``flat``); p ≤ 35 → 100 − 20p/35; else max(0, 80 − 1.6(p − 35))."""
    p = np.where(flat, 50.0, 100.0 * np.asarray(channel_position, dtype="float64"))
    out = np.where(p <= 35.0, 100.0 - 20.0 * p / 35.0, np.maximum(0.0, 80.0 - 1.6 * (p - 35.0)))
    return np.where(np.isnan(p), np.nan, out)


def readiness_cutoffs(strategy: Strategy, readiness: ReadinessConfig) -> tuple[float, float]:
    """(top, middle) status cut-offs of ``strategy`` on 0–100 (``readiness.<s>.*``)."""
    s = Strategy(strategy)
    if s is Strategy.SWING:
        return readiness.swing.ready, readiness.swing.close
    if s is Strategy.DCA:
        return readiness.dca.ready, readiness.dca.close
    return readiness.channel.buy_zone_score, readiness.channel.neutral


def readiness_status(strategy: Strategy, score: np.ndarray, setup: np.ndarray, readiness: ReadinessConfig
                     ) -> np.ndarray:
    """Status labels (object array): ≥ top cut-off → READY / BUY_ZONE, ≥ middle → CLOSE / NEUTRAL, else WAITING /
    SELL_ZONE; a firing ``setup`` is READY / BUY_ZONE whatever its score; null where the score is null."""
    top, mid = readiness_cutoffs(strategy, readiness)
    labels = [s.value for s in STATUSES[Strategy(strategy)]]
    score = np.asarray(score, dtype="float64")
    out = np.select([score >= top, score >= mid, ~np.isnan(score)], labels, None).astype(object)
    out[np.asarray(setup, dtype=bool)] = labels[0]
    return out


# ---------------------------------------------------------------------------------------------------------------
# Confidence (SPEC §3.3)
# ---------------------------------------------------------------------------------------------------------------


@runtime_checkable
class ConfidenceSource(Protocol):
    """Where a setup's confidence comes from: ``name`` is ``rule`` or ``model:<model_version>``; ``confidence``
    returns one WIN probability in [0, 1] per row of ``rows`` (the strategy's setup rows: symbol, tier, timestamp
    = T, bar_timestamp, price and the scan features; a model joins its own features by (symbol, T))."""

    name: str

    def confidence(self, strategy: Strategy, rows: pd.DataFrame) -> np.ndarray: ...


@dataclass(frozen=True)
class RuleConfidence:
    """The rule confidence without a champion: ``ml.rule.confidence`` for every setup."""

    value: float
    name: str = RULE_SOURCE

    @classmethod
    def from_config(cls, cfg: Config) -> "RuleConfidence":
        return cls(cfg.ml.rule.confidence)

    def confidence(self, strategy: Strategy, rows: pd.DataFrame) -> np.ndarray:
        return np.full(len(rows), self.value, dtype="float64")


@dataclass(frozen=True)
class ModelConfidence:
    """A champion model's WIN probability; ``predict(rows)`` returns one probability per row."""

    model_version: str
    predict: Callable[[pd.DataFrame], np.ndarray]

    def __post_init__(self) -> None:
        if not _MODEL_SOURCE.match(f"model:{self.model_version}"):
            raise ValueError(f"model_version {self.model_version!r} is not {{strategy}}_{{yyyymmddHHMM}} (SPEC §0.3)")

    @property
    def name(self) -> str:
        return f"model:{self.model_version}"

    def confidence(self, strategy: Strategy, rows: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.predict(rows), dtype="float64")


ConfidenceArg = ConfidenceSource | Mapping[Strategy | str, ConfidenceSource] | None


def confidence_source(cfg: Config, strategy: Strategy, confidence: ConfidenceArg = None
                      ) -> tuple[ConfidenceSource, float]:
    """(source, threshold) for ``strategy``: a champion (a ``model:<version>`` source) is used only with
    ``ml.use_champion_for_entries``, with threshold ``ml.confidence_threshold.<s>``; otherwise the rule source with
    ``ml.rule.threshold``. ``confidence`` is one source for every strategy, a mapping per strategy (a missing
    strategy has no champion) or None (rule)."""
    strategy = Strategy(strategy)
    src = confidence
    if isinstance(confidence, Mapping):
        by = {Strategy(k) if isinstance(k, Strategy) else Strategy(str(k).upper()): v for k, v in confidence.items()}
        src = by.get(strategy)
    if src is None:
        return RuleConfidence.from_config(cfg), cfg.ml.rule.threshold
    if not isinstance(src, ConfidenceSource):
        raise TypeError(f"{src!r} is not a ConfidenceSource (name + confidence(strategy, rows))")
    if src.name == RULE_SOURCE:
        return src, cfg.ml.rule.threshold
    m = _MODEL_SOURCE.match(src.name)
    if m is None:
        raise ValueError(f"confidence source name {src.name!r} is neither 'rule' nor 'model:<model_version>'")
    if not m.group("version").startswith(strategy.key + "_"):
        raise ValueError(f"{src.name} is not a {strategy.value} model")
    if not cfg.ml.use_champion_for_entries:
        return RuleConfidence.from_config(cfg), cfg.ml.rule.threshold
    return src, cfg.ml.confidence_threshold.of(strategy)


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
# Row layouts
# ---------------------------------------------------------------------------------------------------------------

_TS = "datetime64[ns, UTC]"
SETUP_NUMBERS = ("price", "setup_value", "setup_threshold", "volume_filter_ratio")
SCAN_ROW_COLUMNS: tuple[str, ...] = (
    "scan_id", "timestamp", "bar_timestamp", "symbol", "tier", "strategy", "decision", "reason", "candidate", "setup",
    "confidence", "confidence_source", "threshold", "readiness", "status", "price", "setup_value", "setup_threshold",
    *SCAN_FEATURES, "volume_filter_ratio", "regime", "best_strategy", "btc_close", "list_type", "config_version",
)
SETUP_COLUMNS: tuple[str, ...] = (
    "setup_id", "strategy", "symbol", "tier", "detected_at", "bar_timestamp", *SETUP_NUMBERS, "confidence",
    "confidence_source", "threshold", "decision", "reason", "candidate", "readiness", "status", *SCAN_FEATURES,
    "regime", "best_strategy", "btc_close", "config_version",
)
BOARD_COLUMNS: tuple[str, ...] = (
    "timestamp", "strategy", "rank", "symbol", "tier", "readiness", "status", "setup", "candidate", "decision",
    "reason", "price", "setup_value", "setup_threshold", "bar_timestamp",
)
_DTYPES: dict[str, str] = {
    "timestamp": _TS, "bar_timestamp": _TS, "detected_at": _TS, "candidate": "bool", "setup": "bool",
    "config_version": "int64", "rank": "int64",
    **{c: "object" for c in ("scan_id", "setup_id", "symbol", "tier", "strategy", "decision", "reason",
                             "confidence_source", "status", "regime", "best_strategy", "list_type")},
}


def _empty(columns: Iterable[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=_DTYPES.get(c, "float64")) for c in columns})


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


def scan_cycle_points(bars: pd.DataFrame, regime_frame: pd.DataFrame, cfg: Config, *, start: Any, end: Any,
                      symbols: Iterable[str] | None = None, confidence: ConfidenceArg = None,
                      features: pd.DataFrame | None = None) -> ScanResult:
    """Steps 1–3 of SPEC §3.4, setups (§3.2), confidence (§3.3) and readiness (§3.6) at every cycle point T in
    [start, end) for every symbol × strategy.

    ``bars``: ``engine.base_timeframe`` bars (symbol, timestamp = open time UTC, OHLCV, ``suspect`` bool) with open
    time in [start − :func:`setups_warmup`, end) (later bars are ignored; at T only bars opening before T count).
    ``regime_frame``: the ``market_regime`` rows of [start, end) (``timestamp``, ``regime``, ``best_strategy``,
    ``btc_close``; :func:`~.regime.build_market_regime`). ``symbols``: default the active universe (an inactive or
    unknown symbol raises). ``confidence``: see :func:`confidence_source`. ``features``: the scan features of
    [start, end) if already computed (:func:`~.features.compute_scan_features` with the same bars), else computed.

    Scan rows are sorted by T, strategy (DCA, SWING, CHANNEL) then symbol, one per symbol × strategy × T, with the
    columns of :data:`SCAN_ROW_COLUMNS`: ``scan_id`` (= setup_id, SPEC §0.3), T, decision-bar open, symbol, tier,
    strategy, decision / reason (None for candidates, see the module doc), candidate, setup, confidence and its
    source (on setup rows), the threshold in use, readiness 0–100 and status, ``price`` (decision-bar close),
    ``setup_value`` (DCA ``drop``, SWING ``breakout``, CHANNEL ``channel_position``) and the ``setup_threshold`` it
    is compared with (the tier's drop threshold, breakout threshold, buy zone), the §2.1 features, the DCA
    ``volume_filter_ratio`` (mean volume of the DCA window / mean volume of the baseline window, both incl. c;
    null if a window is invalid or the baseline mean is 0), regime, best_strategy, btc_close, ``list_type`` (None
    until the engine orders candidates) and ``config_version``.
    """
    p = SetupParams.from_config(cfg)
    uni = Universe.from_config(cfg)
    syms = _scan_symbols(uni, symbols)
    points = cycle_points(start, end, p.cycle_min).asi8
    _check_bars(bars)
    if not syms or points.size == 0:
        return _result(_empty(SCAN_ROW_COLUMNS))
    market = _market_at(regime_frame, points)
    if features is None:
        features = compute_scan_features(bars, cfg, start=start, end=end, symbols=syms)
    feat = _feature_arrays(features, syms, points, p.cycle_min * NS_PER_MIN)
    win = _window_inputs(bars, syms, points, p)
    _check_consistent(feat, win, syms, points)

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

    stamps = np.asarray(_utc(points).strftime("%y%m%d%H%M"), dtype=object)
    strat = np.broadcast_to(np.asarray([s.value for s in strategies], dtype=object)[None, :, None],
                            (n_pts, k, n_sym)).reshape(-1)
    sym = lay_common(col_sym(np.asarray(syms, dtype=object)))
    rows: dict[str, Any] = {
        "scan_id": strat + "_" + sym + "_" + lay_point(stamps),
        "timestamp": _utc(lay_point(points)),
        "bar_timestamp": _utc(lay_common(feat["bar_ns"])),  # NaT where the symbol is stale
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
    return _result(frame[list(SCAN_ROW_COLUMNS)])


def scan_day(bars: pd.DataFrame, regime_frame: pd.DataFrame, day: Any, cfg: Config, *,
             symbols: Iterable[str] | None = None, confidence: ConfidenceArg = None) -> ScanResult:
    """:func:`scan_cycle_points` for the cycle points of UTC ``day`` (bars from day − :func:`setups_warmup`);
    equal to the same rows of a run over a longer range."""
    d = pd.Timestamp(_to_ns(day, "day"), tz="UTC")
    if d.value % NS_PER_DAY:
        raise ValueError(f"a partition day must be 00:00 UTC, got {d}")
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
    ts = _timestamps_ns(regime_frame["timestamp"])
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


def _feature_arrays(features: pd.DataFrame, syms: list[str], points: np.ndarray, cycle_ns: int
                    ) -> dict[str, np.ndarray]:
    """The scan-feature frame as (symbols × cycle points) arrays; every (symbol, T) must have exactly one row."""
    need = ["symbol", "timestamp", "bar_timestamp", "stale", *SCAN_FEATURES]
    missing = [c for c in need if c not in features.columns]
    if missing:
        raise ValueError(f"features lack columns {missing}")
    ts = _timestamps_ns(features["timestamp"])
    si = pd.Categorical(features["symbol"].astype(str), categories=syms).codes.astype("int64")
    keep = (si >= 0) & (ts >= points[0]) & (ts <= points[-1])
    off = ts[keep] - points[0]
    if (off % cycle_ns).any():
        raise ValueError("features hold a timestamp that is not a cycle point")
    si, ti = si[keep], off // cycle_ns
    shape = (len(syms), points.size)
    count = np.zeros(shape, dtype="int64")
    np.add.at(count, (si, ti), 1)
    if (count != 1).any():
        s, t = np.argwhere(count != 1)[0]
        raise ValueError(f"features need exactly one row for {syms[s]} at {pd.Timestamp(int(points[t]), tz='UTC')}, "
                         f"got {count[s, t]}")
    sub = features.loc[keep]
    out: dict[str, np.ndarray] = {}
    for name in SCAN_FEATURES:
        a = np.empty(shape)
        a[si, ti] = sub[name].to_numpy(dtype="float64")
        out[name] = a
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
    ts = _timestamps_ns(bars["timestamp"])
    sub = bars.loc[(ts >= t0) & (ts < t1)]
    grid = bar_grid(sub, p.base.minutes, t0, t1, syms)
    present = grid.present
    suspect = np.zeros(present.shape)
    flagged = sub.loc[sub["suspect"].to_numpy(dtype=bool)]
    if not flagged.empty:
        codes = pd.Categorical(flagged["symbol"].astype(str), categories=syms).codes.astype("int64")
        slots = (_timestamps_ns(flagged["timestamp"]) - t0) // b
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
            memo[(name, n)] = rolling({"n": cnt, "s": suspect, "v": vol}[name], n, _op_add)
        return memo[(name, n)]

    def incl(name: str, n: int) -> np.ndarray:  # window (c − W, c]
        return roll(name, n)[rows, c]

    def excl(name: str, n: int) -> np.ndarray:  # reference window [c − W, c)
        return np.where(has_before, roll(name, n)[rows, before], 0.0)

    fresh = ~stale
    out: dict[str, np.ndarray] = {"stale": stale, "bar_ns": np.where(stale, np.iinfo("int64").min, t0 + dec * b)}
    out["close"] = np.where(fresh, grid.close[rows, c], np.nan)
    for name, n in (("dca", p.dca_bars), ("channel", p.channel_bars), ("baseline", p.baseline_bars)):
        out[f"{name}_ok"] = fresh & _cover(incl("n", n), n, p.coverage)
        out[f"{name}_suspect"] = fresh & (incl("s", n) > 0)
    out["swing_ok"] = fresh & _cover(excl("n", p.swing_bars), p.swing_bars, p.coverage)
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


# ---------------------------------------------------------------------------------------------------------------
# Setups, the readiness board, and the engine's resolution of candidates
# ---------------------------------------------------------------------------------------------------------------


def strategy_setups(scan_rows: pd.DataFrame) -> pd.DataFrame:
    """``strategy_setups`` (SPEC §3.5): the scan rows whose setup fires (§3.2), keyed by ``setup_id`` (= scan_id);
    ``detected_at`` = T and ``bar_timestamp`` = the decision bar's open. ``decision`` / ``reason`` / ``candidate``
    are the row's steps 1–3 outcome (a setup on stale or suspect data keeps its ``stale_data`` / ``data_suspect``
    reason). Columns :data:`SETUP_COLUMNS`."""
    if scan_rows.empty:
        return _empty(SETUP_COLUMNS)
    s = scan_rows.loc[scan_rows["setup"].to_numpy(dtype=bool)]
    s = s.rename(columns={"scan_id": "setup_id", "timestamp": "detected_at"})
    return s[list(SETUP_COLUMNS)].reset_index(drop=True)


def readiness_board(scan_rows: pd.DataFrame) -> pd.DataFrame:
    """The readiness board (SPEC §3.6): the latest cycle point's scan rows, one per symbol × strategy, ranked within
    each strategy (1 = best): firing setups first, then readiness descending (nulls last), then symbol."""
    if scan_rows.empty:
        return _empty(BOARD_COLUMNS)
    last = scan_rows["timestamp"].max()
    b = scan_rows.loc[scan_rows["timestamp"] == last].copy()
    order = {s.value: i for i, s in enumerate(Strategy)}
    b["_s"] = b["strategy"].map(order)
    b["_r"] = b["readiness"].fillna(-1.0)
    b = b.sort_values(["_s", "setup", "_r", "symbol"], ascending=[True, False, False, True], kind="stable")
    b["rank"] = b.groupby("_s").cumcount().astype("int64") + 1
    return b[list(BOARD_COLUMNS)].reset_index(drop=True)


def _pct(x: float) -> str:
    return "–" if pd.isna(x) else f"{x * 100:.2f} %"


_VALUE_LABEL = {Strategy.DCA: "drop", Strategy.SWING: "breakout", Strategy.CHANNEL: "channel position"}


def readiness_markdown(board: pd.DataFrame, top_n: int = 5) -> str:
    """Markdown for people: per strategy the ``top_n`` best rows of the board (rank, symbol, tier, readiness,
    status, setup value and threshold in %, "setup" when it fires)."""
    if board.empty:
        return "No scan rows: the readiness board is empty."
    t = pd.Timestamp(board["timestamp"].iloc[0])
    parts = [f"**Readiness at {t:%Y-%m-%d %H:%M} UTC** (top {top_n} per strategy)"]
    for s in Strategy:
        rows = board.loc[board["strategy"] == s.value].sort_values("rank").head(top_n)
        parts.append(f"\n#### {s.value}\n")
        parts.append(f"| # | symbol | tier | readiness | status | {_VALUE_LABEL[s]} | threshold | setup |")
        parts.append("|---|---|---|---|---|---|---|---|")
        for r in rows.itertuples(index=False):
            score = "–" if pd.isna(r.readiness) else f"{r.readiness:.1f}"
            parts.append(f"| {r.rank} | {r.symbol} | {r.tier} | {score} | {r.status or '–'} | {_pct(r.setup_value)} | "
                         f"{_pct(r.setup_threshold)} | {'yes' if r.setup else ''} |")
    return "\n".join(parts)


def resolve_candidates(scan_rows: pd.DataFrame, reasons: Mapping[Any, Any] | pd.Series) -> pd.DataFrame:
    """For the engine (steps 4–6): a copy of ``scan_rows`` where each candidate row named by an index label of
    ``reasons`` gets that reason (a step-4–6 code or ``entered``) and its decision (TAKE for ``entered``, else SKIP).
    Raises when a label is not a candidate, a reason is a step 1–3 code, or a candidate is left undecided."""
    out = scan_rows.copy()
    reasons = pd.Series(reasons, dtype=object)
    parsed = [DecisionReason.of(r) for r in reasons]
    early = [r.value for r in parsed if r.step <= 3]
    if early:
        raise ValueError(f"steps 1–3 decide {early} themselves; the engine gives step 4–6 reasons or entered")
    if not reasons.index.isin(out.index).all() or not out.loc[reasons.index, "candidate"].all():
        raise ValueError("reasons are given only for candidate rows (candidate = True, passed steps 1–3)")
    out.loc[reasons.index, "reason"] = [r.value for r in parsed]
    out.loc[reasons.index, "decision"] = [Decision.of(r).value for r in parsed]
    left = out["candidate"].to_numpy(dtype=bool) & out["decision"].isna().to_numpy()
    if left.any():
        raise ValueError(f"{int(left.sum())} candidates left undecided (every scan_history row has a decision)")
    return out
