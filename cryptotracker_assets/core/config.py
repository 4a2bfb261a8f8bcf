"""The one project config: typed schema, loader, merge and validation (SPEC §0.5, §14).

Every threshold is a fraction (0.025 = 2.5 %). Durations carry their unit in the key (``_min``, ``_h``,
``_d``, ``_s``). The effective config is ``config.yaml`` merged with the user file named by
``CRYPTOTRACKER_CONFIG`` (the caller passes that path: this module never reads the environment).
Unknown, missing or mistyped keys and failed validations raise :class:`ConfigError` naming the dotted key.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, ValidationError, field_validator

from .common import MINUTES_PER_DAY, StrictEnum

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "config.yaml"

# SPEC §0.3: trade_group_id = {STRATEGY}_{SYMBOL}_{yymmddHHMMSS}_{xxxx}, at most 36 characters.
TRADE_GROUP_ID_MAX_LEN = 36


class ConfigError(ValueError):
    """A config file failed to load or validate; the message names the dotted key."""


class Timeframe(StrictEnum):
    M1 = "1m"
    M5 = "5m"
    M15 = "15m"
    H1 = "1h"
    D1 = "1d"

    @property
    def minutes(self) -> int:
        return {"1m": 1, "5m": 5, "15m": 15, "1h": 60, "1d": MINUTES_PER_DAY}[self.value]


class Tier(StrictEnum):
    LARGE_CAP = "large_cap"
    MID_CAP = "mid_cap"
    SMALL_CAP = "small_cap"
    MEMECOIN = "memecoin"


class Strategy(StrictEnum):
    DCA = "DCA"
    SWING = "SWING"
    CHANNEL = "CHANNEL"

    @property
    def key(self) -> str:
        """The config key of the strategy (``dca``, ``swing``, ``channel``)."""
        return self.value.lower()


# ---------------------------------------------------------------------------------------------------------------
# Schema building blocks
# ---------------------------------------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, populate_by_name=True)


T = TypeVar("T")

Fraction = StrictFloat
Num = StrictFloat
Int = StrictInt


class TierMap(_Model, Generic[T]):
    large_cap: T
    mid_cap: T
    small_cap: T
    memecoin: T

    def of(self, tier: Tier | str) -> T:
        return getattr(self, Tier(tier).value)


class StrategyMap(_Model, Generic[T]):
    dca: T
    swing: T
    channel: T

    def of(self, strategy: Strategy | str) -> T:
        key = strategy.key if isinstance(strategy, Strategy) else Strategy(str(strategy).upper()).key
        return getattr(self, key)


class TimeframeMap(_Model, Generic[T]):
    m1: T = Field(alias="1m")
    m15: T = Field(alias="15m")
    h1: T = Field(alias="1h")
    d1: T = Field(alias="1d")

    def of(self, timeframe: Timeframe | str) -> T:
        tf = Timeframe(timeframe)
        if tf is Timeframe.M5:
            # 5m exists only as a base timeframe for imported data: it uses the base (1m) settings.
            tf = Timeframe.M1
        return getattr(self, {"1m": "m1", "15m": "m15", "1h": "h1", "1d": "d1"}[tf.value])


# --- universe -----------------------------------------------------------------------------------------------------


class UniverseConfig(_Model):
    polygon_ticker: str
    market_symbol: str
    inactive: list[str]
    large_cap: list[str]
    small_cap: list[str]
    memecoin: list[str]
    mid_cap: list[str]

    @field_validator("polygon_ticker")
    @classmethod
    def _ticker_has_symbol(cls, v: str) -> str:
        if "{symbol}" not in v:
            raise ValueError("must contain '{symbol}'")
        return v


class EngineConfig(_Model):
    base_timeframe: Timeframe
    cycle_min: Int
    max_bar_lag_min: Int
    min_window_coverage: Fraction
    entry_timeout_min: Int


class GridConfig(_Model):
    levels: TierMap[Int]
    spacing: TierMap[Fraction]


class VolumeFilterConfig(_Model):
    enabled: StrictBool
    baseline_min: Int
    min_ratio: TierMap[Num]


class DcaConfig(_Model):
    enabled: StrictBool
    lookback_min: Int
    drop_threshold: TierMap[Fraction]
    grid: GridConfig
    volume_filter: VolumeFilterConfig


class SwingConfig(_Model):
    enabled: StrictBool
    lookback_min: Int
    breakout_threshold: Fraction
    min_volume_surge: Num


class ChannelConfig(_Model):
    enabled: StrictBool
    lookback_min: Int
    buy_zone: Fraction
    top_zone: Fraction


class StrategiesConfig(_Model):
    dca: DcaConfig
    swing: SwingConfig
    channel: ChannelConfig

    def of(self, strategy: Strategy | str):
        return StrategyMap.of(self, strategy)  # type: ignore[arg-type]


class ScanWindows(_Model):
    rsi: Int
    volume_ratio: Int
    support: Int
    btc_corr: Int
    vol_24h: Int


class ScanConfig(_Model):
    windows_min: ScanWindows
    min_btc_corr_pairs: Int


class SwingReadiness(_Model):
    breakout_weight: Num
    volume_weight: Num
    ready: Num
    close: Num


class ChannelReadiness(_Model):
    buy_zone_score: Num
    neutral: Num


class DcaReadiness(_Model):
    ready: Num
    close: Num


class ReadinessConfig(_Model):
    swing: SwingReadiness
    channel: ChannelReadiness
    dca: DcaReadiness


class MlWindows(_Model):
    ret: list[Int]
    volume_ratio: Int
    rsi: list[Int]
    macd: list[Int]
    bb: Int
    sma: list[Int]
    ema: list[Int]
    support_resistance: Int
    volatility: list[Int]
    obv: Int
    volume_sma: Int
    roc: Int
    stoch: Int


class MlFeaturesConfig(_Model):
    timeframe: Timeframe
    min_history_min: Int
    bb_std: Num
    windows_min: MlWindows


class DailyFeaturesConfig(_Model):
    sma_d: list[Int]
    trend_d: Int
    vol_d: list[Int]
    range_d: Int
    rel_d: list[Int]
    corr_d: Int
    corr_min_pairs: Int


class FeaturesConfig(_Model):
    ml: MlFeaturesConfig
    daily: DailyFeaturesConfig


class ExitParams(_Model):
    take_profit: Fraction
    stop_loss: Fraction
    trail: Fraction
    trail_activation: Fraction


class ExitsConfig(_Model):
    max_hold_h: Num
    no_data_grace_min: Int
    tp_multiplier: StrategyMap[Num]
    dca: TierMap[ExitParams]
    swing: TierMap[ExitParams]
    channel: TierMap[ExitParams]

    def params(self, strategy: Strategy | str, tier: Tier | str) -> ExitParams:
        table: TierMap[ExitParams] = StrategyMap.of(self, strategy)  # type: ignore[arg-type]
        return table.of(tier)


class CostsConfig(_Model):
    taker_fee: Fraction
    slippage: TierMap[Fraction]

    def round_trip(self, tier: Tier | str) -> float:
        """2 × fee + 2 × slippage of the tier (SPEC §6)."""
        return 2.0 * self.taker_fee + 2.0 * self.slippage.of(tier)


class PortfolioConfig(_Model):
    initial_balance_usd: Num
    position_size_usd: Num
    reserve: Fraction
    allocation: StrategyMap[Fraction]


class LimitsConfig(_Model):
    max_open_total: Int
    max_open_per_strategy: Int
    max_open_per_symbol: Int
    max_position_cash_fraction: Fraction
    daily_loss_limit: Fraction
    loss_streak: Int
    loss_streak_pause_h: Num


class PanicConfig(_Model):
    ret_1h: Fraction
    ret_24h: Fraction
    vol_24h: Fraction
    decline_24h: Fraction
    decline_48h: Fraction


class CautionConfig(_Model):
    ret_1h: Fraction
    ret_4h: Fraction
    ret_24h: Fraction
    vol_24h: Fraction


class EuphoriaConfig(_Model):
    ret_1h: Fraction
    ret_24h: Fraction
    vol_24h: Fraction


class RegimeMap(_Model, Generic[T]):
    panic: T
    caution: T
    euphoria: T
    normal: T


class RegimeConfig(_Model):
    panic: PanicConfig
    caution: CautionConfig
    euphoria: EuphoriaConfig
    max_reference_gap_min: Int
    size_multiplier: RegimeMap[Num]


class VolDisable(_Model):
    disable_at: Fraction
    reenable_at: Fraction | None


class VolatilityDisableConfig(_Model):
    min_disabled_h: Num
    channel: VolDisable
    swing: VolDisable
    dca: VolDisable


class LimiterConfig(_Model):
    cooldown_h: TierMap[Num]
    ban_after_stops: Int
    ban_h: Num
    reset_profit_fraction_of_tp: Fraction


class StopWideningConfig(_Model):
    vol_floor: Fraction
    vol_factor: Num
    regime_multiplier: RegimeMap[Num]
    cap: TierMap[Fraction]


class ProtectionConfig(_Model):
    regime: RegimeConfig
    volatility_disable: VolatilityDisableConfig
    limiter: LimiterConfig
    stop_widening: StopWideningConfig


class DipRule(_Model):
    avg_drop: Fraction
    symbol_drop: Fraction
    min_symbols: Int


class BreakoutRule(_Model):
    min_up: Int
    min_surges: Int


class DowntrendRule(_Model):
    min_down: Int
    avg_drop: Fraction


class RangeRule(_Model):
    min_ranging: Int
    max_avg_range: Fraction


class ShiftRules(_Model):
    big_loss: Fraction
    moderate_loss: Fraction
    moderate_after_h: Num
    flat_band: Fraction
    flat_after_h: Num
    stale_win_age_h: Num


class PrioritisationConfig(_Model):
    symbols: list[str]
    timeframe: Timeframe
    min_symbols: Int
    window_min: Int
    sma_fast_min: Int
    sma_slow_min: Int
    trend_band: Fraction
    volume_surge: Num
    dip: DipRule
    breakout: BreakoutRule
    downtrend: DowntrendRule
    range: RangeRule
    min_best_signals: Int
    sentiment_ratio: Num
    sentiment_weights: StrategyMap[Num]
    shift: ShiftRules


class ShadowTier(_Model):
    min_trades: Int
    min_outperformance: Fraction
    max_p: Fraction
    min_window_d: Num


class ShadowTiers(_Model):
    high: ShadowTier
    medium: ShadowTier
    low: ShadowTier


class BearMarket(_Model):
    confidence: Fraction
    size_multiplier: Num
    stop_loss: Fraction
    tp_multiplier: Num
    dca_drop: Fraction


class BullMarket(_Model):
    confidence: Fraction
    size_multiplier: Num
    stop_loss: Fraction
    tp_multiplier: Num
    swing_breakout: Fraction


class MlTrust(_Model):
    confidence: Fraction
    hold_h_range: list[Num]


class QuickExits(_Model):
    tp_multiplier: Num
    max_hold_h: Num
    trail_activation_multiplier: Num


class DcaDrops(_Model):
    dca_drop: list[Fraction]


class ConfidenceTest(_Model):
    confidence: list[Fraction]


class VolatilitySized(_Model):
    low_vol: Fraction
    high_vol: Fraction
    low_multiplier: Num
    high_multiplier: Num


class Variations(_Model):
    bear_market: BearMarket
    bull_market: BullMarket
    ml_trust: MlTrust
    quick_exits: QuickExits
    dca_drops: DcaDrops
    confidence_test: ConfidenceTest
    volatility_sized: VolatilitySized


class ShadowConfig(_Model):
    enabled: StrictBool
    evaluate_every_min: Int
    analyzer_every_h: Num
    windows_h: list[Num]
    min_outcomes: Int
    min_trades_for_test: Int
    recommendation_window_h: Num
    max_recommendations: Int
    tiers: ShadowTiers
    variations: Variations


class TierMultiplier(_Model):
    high: Num
    medium: Num
    low: Num


class ParamBounds(_Model):
    max_rel: Fraction
    min: Num
    max: Num


class ManagedParams(_Model):
    confidence_threshold: ParamBounds
    dca_drop_threshold: ParamBounds
    tp_multiplier: ParamBounds


class RollbackConfig(_Model):
    automatic: StrictBool
    monitor_h: Num
    check_every_h: Num
    baseline_window_h: Num
    win_rate_drop: Fraction
    min_trades: Int
    loss_run: Int
    loss_run_window_h: Num


class ThresholdManagerConfig(_Model):
    tier_multiplier: TierMultiplier
    min_abs_change: Num
    min_rel_change: Fraction
    max_applied_per_utc_day: Int
    regime_stable_h: Num
    proposal_ttl_h: Num
    params: ManagedParams
    rollback: RollbackConfig


class RuleConfidence(_Model):
    confidence: Fraction
    threshold: Fraction


class RetrainConfig(_Model):
    min_new_outcomes: Int
    min_samples: Int


class PromotionConfig(_Model):
    min_test_rows: Int
    min_improvement: Fraction
    first_model_composite: Fraction
    calibration_bins: Int
    calibration_tolerance: Fraction


class CompositeWeights(_Model):
    accuracy: Num
    precision: Num
    recall: Num


class ShadowWeights(_Model):
    base: Num
    matched_reality: Num
    variation_win_rate: Num
    min_variation_win_rate: Fraction
    variation_window_h: Num
    age: Num
    age_min_d: Num
    regime_match: Num
    cap: Num
    max_per_real: Int
    min_real_rows: Int


class Targets(_Model):
    tp_cap: Fraction
    sl_floor: Fraction
    size_mult_range: list[Num]


class XgbParams(_Model):
    n_estimators: Int
    max_depth: Int
    learning_rate: Num


class WalkForwardConfig(_Model):
    windows: Int = Field(ge=1)


class XgbConfig(_Model):
    default: XgbParams
    dca: XgbParams
    swing: XgbParams
    channel: XgbParams


_HHMM = r"^([01]\d|2[0-3]):[0-5]\d$"


class MlConfig(_Model):
    confidence_threshold: StrategyMap[Fraction]
    use_champion_for_entries: StrictBool
    rule: RuleConfidence
    near_miss_ratio: Num
    daily_job_at: str = Field(pattern=_HHMM)
    split: list[Fraction]
    random_seed: Int
    retrain: RetrainConfig
    promotion: PromotionConfig
    composite_weights: CompositeWeights
    shadow_weights: ShadowWeights
    targets: Targets
    walk_forward: WalkForwardConfig
    xgb: XgbConfig


class Channels(_Model):
    trades: str
    reports: str
    alerts: str
    signals: str


class ReportAt(_Model):
    at: str = Field(pattern=_HHMM)
    lookback_h: Num


class WeeklyReport(ReportAt):
    day: Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


class ReportsConfig(_Model):
    near_level: Fraction
    morning: ReportAt
    midday: ReportAt
    evening: ReportAt
    weekly: WeeklyReport


class NotificationsConfig(_Model):
    timezone: str
    webserver_url: str
    trade_events: StrictBool
    signals_enabled: StrictBool
    catchup_quiet_min: Int
    channels: Channels
    reports: ReportsConfig

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA timezone {v!r}") from None
        return v


class PolygonConfig(_Model):
    max_requests_per_min: Int = Field(ge=0)
    max_retry_after_s: Num = Field(ge=0)


class ValidationConfig(_Model):
    max_reject_share: Fraction = Field(ge=0, le=1)


class WarehouseConfig(_Model):
    lock_wait_s: Num = Field(gt=0)


class IngestTf(_Model):
    cron_utc: str
    overlap_min: Int = Field(ge=0)
    max_catchup_d: Int = Field(ge=0)

    @field_validator("cron_utc")
    @classmethod
    def _cron(cls, v: str) -> str:
        return _validate_cron(v)


class IngestConfig(_Model):
    retries: Int = Field(ge=0)
    retry_delays_s: list[Num]
    min_call_interval_s: Num = Field(ge=0)
    m1: IngestTf = Field(alias="1m")
    m15: IngestTf = Field(alias="15m")
    h1: IngestTf = Field(alias="1h")
    d1: IngestTf = Field(alias="1d")

    def of(self, timeframe: Timeframe | str) -> IngestTf:
        return TimeframeMap.of(self, timeframe)  # type: ignore[arg-type]


class RetentionConfig(_Model):
    m1: Int | None = Field(alias="1m")
    m15: Int | None = Field(alias="15m")
    h1: Int | None = Field(alias="1h")
    d1: Int | None = Field(alias="1d")
    decisions: Int | None

    def of(self, timeframe: Timeframe | str) -> int | None:
        return TimeframeMap.of(self, timeframe)  # type: ignore[arg-type]


class GapsConfig(_Model):
    cron_utc: str
    interval_multiple: TimeframeMap[Num]
    lookback_d: TimeframeMap[Int]
    alert_min: TimeframeMap[Int]

    @field_validator("cron_utc")
    @classmethod
    def _cron(cls, v: str) -> str:
        return _validate_cron(v)


class HealthConfig(_Model):
    every_min: Int
    freshness_min: TimeframeMap[Int]
    min_completeness: TimeframeMap[Fraction]
    extreme_move: Fraction
    aggregate_tolerance: Num
    completeness_window_h: TimeframeMap[Num]
    max_run_min: Int
    max_engine_lag_cycles: Int
    gaps: GapsConfig


class DataConfig(_Model):
    polygon: PolygonConfig
    validation: ValidationConfig
    warehouse: WarehouseConfig
    ingest: IngestConfig
    backfill_d: TimeframeMap[Int]
    retention_d: RetentionConfig
    retention_cron_utc: str
    health: HealthConfig

    @field_validator("retention_cron_utc")
    @classmethod
    def _cron(cls, v: str) -> str:
        return _validate_cron(v)


class Config(_Model):
    """The effective config (SPEC §14). Frozen; build it with :func:`load_config`."""

    universe: UniverseConfig
    engine: EngineConfig
    strategies: StrategiesConfig
    scan: ScanConfig
    readiness: ReadinessConfig
    features: FeaturesConfig
    exits: ExitsConfig
    costs: CostsConfig
    portfolio: PortfolioConfig
    limits: LimitsConfig
    protection: ProtectionConfig
    prioritisation: PrioritisationConfig
    shadow: ShadowConfig
    threshold_manager: ThresholdManagerConfig
    ml: MlConfig
    notifications: NotificationsConfig
    data: DataConfig

    # Not part of the file: the version of this effective config (0 = file defaults + user file, SPEC §0.3).
    config_version: Int = Field(default=0, exclude=True)

    def fingerprint(self) -> str:
        """SHA-256 of the effective values (stable across processes)."""
        payload = json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()


def _validate_cron(v: str) -> str:
    parts = v.split()
    if len(parts) != 5:
        raise ValueError(f"cron {v!r} must have 5 fields")
    return v


# ---------------------------------------------------------------------------------------------------------------
# Loading and merging
# ---------------------------------------------------------------------------------------------------------------


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def merge(base: Mapping[str, Any], override: Mapping[str, Any], _path: str = "") -> dict[str, Any]:
    """Deep-merge ``override`` over ``base``. Keys absent from ``base`` are errors (unknown key)."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        dotted = f"{_path}.{key}" if _path else str(key)
        if key not in base:
            raise ConfigError(f"unknown config key `{dotted}`")
        if isinstance(base[key], Mapping) and isinstance(value, Mapping):
            out[key] = merge(base[key], value, dotted)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _format_validation_error(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        # Generic models put their type parameter in the location; drop those parts.
        loc = ".".join(p for p in loc.split(".") if "[" not in p)
        kind = err["type"]
        if kind == "missing":
            msg = "missing key"
        elif kind == "extra_forbidden":
            msg = "unknown key"
        else:
            msg = err["msg"]
        lines.append(f"`{loc}`: {msg}")
    return f"invalid config ({source}): " + "; ".join(lines)


def build_config(data: Mapping[str, Any], source: str = "config", config_version: int = 0) -> Config:
    """Validate a raw mapping into a :class:`Config` (schema, then the SPEC §0.5 rules)."""
    try:
        cfg = Config.model_validate({**data, "config_version": config_version})
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, source)) from None
    errors = validate_rules(cfg)
    if errors:
        raise ConfigError(f"invalid config ({source}): " + "; ".join(errors))
    return cfg


def load_config(user_path: str | Path | None = None, default_path: str | Path = DEFAULT_CONFIG_PATH) -> Config:
    """Load ``config.yaml`` ⊕ the user file (``CRYPTOTRACKER_CONFIG``, passed by the caller)."""
    data = _read_yaml(Path(default_path))
    source = str(default_path)
    if user_path:
        override = _read_yaml(Path(user_path))
        data = merge(data, override)
        source = f"{default_path} + {user_path}"
    return build_config(data, source=source)


def raw_dict(cfg: Config) -> dict[str, Any]:
    """The effective values as plain YAML-able data (keys as in the file)."""
    return cfg.model_dump(mode="json", by_alias=True)


# ---------------------------------------------------------------------------------------------------------------
# Validation rules (SPEC §0.5) and reports
# ---------------------------------------------------------------------------------------------------------------


def _whole_bars(errors: list[str], key: str, span_min: float, timeframe: Timeframe) -> None:
    if span_min <= 0 or span_min % timeframe.minutes != 0:
        errors.append(f"`{key}`: span {span_min} min is not a whole number of {timeframe.value} bars")


def validate_rules(cfg: Config) -> list[str]:
    """The cross-key checks of SPEC §0.5; returns one message per failure (empty when valid)."""
    errors: list[str] = []
    u = cfg.universe
    tiers = {t.value: getattr(u, t.value) for t in Tier}
    seen: dict[str, str] = {}
    for tier_name, symbols in tiers.items():
        for s in symbols:
            if s in seen:
                errors.append(f"`universe.{tier_name}`: {s} is also in universe.{seen[s]} (tier lists must be disjoint)")
            seen[s] = tier_name
    enabled = [st for st in Strategy if getattr(cfg.strategies, st.key).enabled]
    if enabled:
        longest = max(enabled, key=lambda st: len(st.value))
        id_room = TRADE_GROUP_ID_MAX_LEN - len(longest.value) - len("__yymmddHHMMSS_xxxx")
        for s, tier_name in seen.items():
            if len(s) > id_room:
                errors.append(f"`universe.{tier_name}`: symbol {s} is longer than {id_room} characters: its "
                              f"{longest.value} trade_group_id would exceed {TRADE_GROUP_ID_MAX_LEN} (SPEC §0.3)")
    for s in u.inactive:
        if s not in seen:
            errors.append(f"`universe.inactive`: {s} is not in any tier list")
    if u.market_symbol not in seen:
        errors.append(f"`universe.market_symbol`: {u.market_symbol} is not in the universe")
    elif u.market_symbol in u.inactive:
        errors.append(f"`universe.market_symbol`: {u.market_symbol} is inactive")
    for s in cfg.prioritisation.symbols:
        if s not in seen:
            errors.append(f"`prioritisation.symbols`: {s} is not in the universe")

    alloc = cfg.portfolio.allocation
    total = alloc.dca + alloc.swing + alloc.channel
    if abs(total - 1.0) > 1e-9:
        errors.append(f"`portfolio.allocation`: allocations sum to {total}, not 1")

    eng = cfg.engine
    if eng.cycle_min <= 0 or MINUTES_PER_DAY % eng.cycle_min != 0:
        errors.append(f"`engine.cycle_min`: {eng.cycle_min} does not divide 1440")
    if not 0 < eng.min_window_coverage <= 1:
        errors.append("`engine.min_window_coverage`: must be in (0, 1]")
    if eng.base_timeframe not in (Timeframe.M1, Timeframe.M5):
        errors.append("`engine.base_timeframe`: must be 1m (or 5m for imported data)")
    base = eng.base_timeframe
    if eng.cycle_min % base.minutes != 0:
        errors.append(f"`engine.cycle_min`: {eng.cycle_min} is not a whole number of {base.value} bars")

    # Every span is whole bars of the timeframe it is applied to.
    st = cfg.strategies
    for key, span in [
        ("strategies.dca.lookback_min", st.dca.lookback_min),
        ("strategies.dca.volume_filter.baseline_min", st.dca.volume_filter.baseline_min),
        ("strategies.swing.lookback_min", st.swing.lookback_min),
        ("strategies.channel.lookback_min", st.channel.lookback_min),
        *[(f"scan.windows_min.{k}", v) for k, v in cfg.scan.windows_min.model_dump().items()],
        ("engine.max_bar_lag_min", eng.max_bar_lag_min),
        ("engine.entry_timeout_min", eng.entry_timeout_min),
    ]:
        _whole_bars(errors, key, span, base)
    ml_tf = cfg.features.ml.timeframe
    if ml_tf.minutes % base.minutes != 0:
        errors.append(f"`features.ml.timeframe`: {ml_tf.value} is not a multiple of the base timeframe")
    _whole_bars(errors, "features.ml.min_history_min", cfg.features.ml.min_history_min, ml_tf)
    for name, value in cfg.features.ml.windows_min.model_dump().items():
        for i, span in enumerate(value if isinstance(value, list) else [value]):
            suffix = f"[{i}]" if isinstance(value, list) else ""
            _whole_bars(errors, f"features.ml.windows_min.{name}{suffix}", span, ml_tf)
    pr = cfg.prioritisation
    for key in ("window_min", "sma_fast_min", "sma_slow_min"):
        _whole_bars(errors, f"prioritisation.{key}", getattr(pr, key), pr.timeframe)

    # Exit table sanity.
    for strategy in Strategy:
        for tier in Tier:
            p = cfg.exits.params(strategy, tier)
            key = f"exits.{strategy.key}.{tier.value}"
            _check_exit_cell(errors, cfg, key, strategy, tier, p.take_profit, p.stop_loss, p.trail, check_trail=True)
            if p.stop_loss > cfg.protection.stop_widening.cap.of(tier):
                errors.append(f"`{key}.stop_loss`: base stop exceeds protection.stop_widening.cap.{tier.value}")
    for tier in Tier:
        if cfg.ml.targets.sl_floor <= cfg.costs.slippage.of(tier):
            errors.append(f"`ml.targets.sl_floor`: must exceed costs.slippage.{tier.value}")

    # Variations' effective values pass the same checks except trail <= stop_loss.
    v = cfg.shadow.variations
    for strategy in Strategy:
        for tier in Tier:
            p = cfg.exits.params(strategy, tier)
            for vname, tp_mult, sl in [
                ("bear_market", v.bear_market.tp_multiplier, v.bear_market.stop_loss),
                ("bull_market", v.bull_market.tp_multiplier, v.bull_market.stop_loss),
                ("quick_exits", v.quick_exits.tp_multiplier, p.stop_loss),
            ]:
                key = f"shadow.variations.{vname} ({strategy.key}.{tier.value})"
                _check_exit_cell(errors, cfg, key, strategy, tier, p.take_profit * tp_mult, sl, p.trail, check_trail=False)
                if sl > cfg.protection.stop_widening.cap.of(tier):
                    errors.append(f"`{key}.stop_loss`: base stop exceeds protection.stop_widening.cap.{tier.value}")
    if v.quick_exits.max_hold_h > cfg.exits.max_hold_h:
        errors.append("`shadow.variations.quick_exits.max_hold_h`: exceeds exits.max_hold_h")
    hr = v.ml_trust.hold_h_range
    if len(hr) != 2 or hr[0] > hr[1] or hr[1] > cfg.exits.max_hold_h:
        errors.append("`shadow.variations.ml_trust.hold_h_range`: must be [low, high] with high <= exits.max_hold_h")

    if len(cfg.ml.split) != 3 or abs(sum(cfg.ml.split) - 1.0) > 1e-9:
        errors.append("`ml.split`: must be three fractions summing to 1")
    if len(cfg.ml.targets.size_mult_range) != 2:
        errors.append("`ml.targets.size_mult_range`: must be [low, high]")
    if cfg.data.health.every_min <= 0 or 60 % cfg.data.health.every_min:
        errors.append("`data.health.every_min`: must divide 60 (it becomes the cron */every_min)")
    if len(cfg.data.ingest.retry_delays_s) < cfg.data.ingest.retries:
        errors.append("`data.ingest.retry_delays_s`: needs one delay per retry")
    return errors


def _check_exit_cell(
    errors: list[str],
    cfg: Config,
    key: str,
    strategy: Strategy,
    tier: Tier,
    take_profit: float,
    stop_loss: float,
    trail: float,
    *,
    check_trail: bool,
) -> None:
    if not 0 < stop_loss <= 0.5:
        errors.append(f"`{key}.stop_loss`: must be in (0, 0.5]")
    if check_trail and trail > stop_loss:
        errors.append(f"`{key}.trail`: trail {trail} exceeds stop_loss {stop_loss}")
    if not 0 < take_profit <= 1:
        errors.append(f"`{key}.take_profit`: must be in (0, 1]")
    eff_tp = take_profit * cfg.exits.tp_multiplier.of(strategy)
    if eff_tp <= cfg.costs.round_trip(tier):
        errors.append(
            f"`{key}.take_profit`: effective take-profit {eff_tp:.6g} is not above the {tier.value} round trip "
            f"{cfg.costs.round_trip(tier):.6g}"
        )


def trail_lock_report(cfg: Config) -> list[dict[str, Any]]:
    """SPEC §0.5/§5.1 report: strategy × tier cells whose trail at arming locks a net loss.

    A trailing exit right at arming returns (1 + trail_activation)(1 − trail) × A; the cell is listed when that
    is below 1 + round trip. Reported, never an error.
    """
    rows = []
    for strategy in Strategy:
        for tier in Tier:
            p = cfg.exits.params(strategy, tier)
            at_arming = (1.0 + p.trail_activation) * (1.0 - p.trail)
            needed = 1.0 + cfg.costs.round_trip(tier)
            if at_arming < needed:
                rows.append(
                    {
                        "strategy": strategy.value,
                        "tier": tier.value,
                        "trail": p.trail,
                        "trail_activation": p.trail_activation,
                        "gross_at_arming": at_arming - 1.0,
                        "round_trip": cfg.costs.round_trip(tier),
                        "net_at_arming": at_arming - needed,
                    }
                )
    return rows


def format_trail_lock_report(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "No strategy × tier locks a net loss when its trail fires at arming."
    lines = [
        "Trails that lock a net loss when they fire right at arming (reported, not an error; SPEC §5.1):",
        "| strategy | tier | trail | activation | gross at arming | round trip | net at arming |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['strategy']} | {r['tier']} | {r['trail'] * 100:.2f} % | {r['trail_activation'] * 100:.2f} % | "
            f"{r['gross_at_arming'] * 100:+.2f} % | {r['round_trip'] * 100:.2f} % | {r['net_at_arming'] * 100:+.2f} % |"
        )
    return "\n".join(lines)
