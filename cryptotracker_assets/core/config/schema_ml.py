"""Config sections of the learning loop: shadow trading, the threshold manager and the ML models (SPEC §14)."""

from __future__ import annotations

from pydantic import Field, StrictBool

from .blocks import HHMM_PATTERN, ConfigModel, Fraction, Int, Num, StrategyMap


class ShadowTier(ConfigModel):
    min_trades: Int
    min_outperformance: Fraction
    max_p: Fraction
    min_window_d: Num


class ShadowTiers(ConfigModel):
    high: ShadowTier
    medium: ShadowTier
    low: ShadowTier


class BearMarket(ConfigModel):
    confidence: Fraction
    size_multiplier: Num
    stop_loss: Fraction
    tp_multiplier: Num
    dca_drop: Fraction


class BullMarket(ConfigModel):
    confidence: Fraction
    size_multiplier: Num
    stop_loss: Fraction
    tp_multiplier: Num
    swing_breakout: Fraction


class MlTrust(ConfigModel):
    confidence: Fraction
    hold_h_range: list[Num]


class QuickExits(ConfigModel):
    tp_multiplier: Num
    max_hold_h: Num
    trail_activation_multiplier: Num


class DcaDrops(ConfigModel):
    dca_drop: list[Fraction]


class ConfidenceTest(ConfigModel):
    confidence: list[Fraction]


class VolatilitySized(ConfigModel):
    low_vol: Fraction
    high_vol: Fraction
    low_multiplier: Num
    high_multiplier: Num


class Variations(ConfigModel):
    bear_market: BearMarket
    bull_market: BullMarket
    ml_trust: MlTrust
    quick_exits: QuickExits
    dca_drops: DcaDrops
    confidence_test: ConfidenceTest
    volatility_sized: VolatilitySized


class ShadowConfig(ConfigModel):
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


class TierMultiplier(ConfigModel):
    high: Num
    medium: Num
    low: Num


class ParamBounds(ConfigModel):
    max_rel: Fraction
    min: Num
    max: Num


class ManagedParams(ConfigModel):
    confidence_threshold: ParamBounds
    dca_drop_threshold: ParamBounds
    tp_multiplier: ParamBounds


class RollbackConfig(ConfigModel):
    automatic: StrictBool
    monitor_h: Num
    check_every_h: Num
    baseline_window_h: Num
    win_rate_drop: Fraction
    min_trades: Int
    loss_run: Int
    loss_run_window_h: Num


class ThresholdManagerConfig(ConfigModel):
    tier_multiplier: TierMultiplier
    min_abs_change: Num
    min_rel_change: Fraction
    max_applied_per_utc_day: Int
    regime_stable_h: Num
    proposal_ttl_h: Num
    params: ManagedParams
    rollback: RollbackConfig


class RuleConfidence(ConfigModel):
    confidence: Fraction
    threshold: Fraction


class RetrainConfig(ConfigModel):
    min_new_outcomes: Int
    min_samples: Int


class PromotionConfig(ConfigModel):
    min_test_rows: Int
    min_improvement: Fraction
    first_model_composite: Fraction
    calibration_bins: Int
    calibration_tolerance: Fraction


class CompositeWeights(ConfigModel):
    accuracy: Num
    precision: Num
    recall: Num


class ShadowWeights(ConfigModel):
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


class Targets(ConfigModel):
    tp_cap: Fraction
    sl_floor: Fraction
    size_mult_range: list[Num]


class XgbParams(ConfigModel):
    n_estimators: Int
    max_depth: Int
    learning_rate: Num


class WalkForwardConfig(ConfigModel):
    windows: Int = Field(ge=1)


class XgbConfig(ConfigModel):
    default: XgbParams
    dca: XgbParams
    swing: XgbParams
    channel: XgbParams


class MlConfig(ConfigModel):
    confidence_threshold: StrategyMap[Fraction]
    use_champion_for_entries: StrictBool
    rule: RuleConfidence
    near_miss_ratio: Num
    daily_job_at: str = Field(pattern=HHMM_PATTERN)
    split: list[Fraction]
    random_seed: Int
    retrain: RetrainConfig
    promotion: PromotionConfig
    composite_weights: CompositeWeights
    shadow_weights: ShadowWeights
    targets: Targets
    walk_forward: WalkForwardConfig
    xgb: XgbConfig

