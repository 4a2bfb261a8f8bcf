"""Config sections of the trading rules: universe, engine, strategies, scan, readiness, features, exits, costs,
portfolio, limits, protection and prioritisation (SPEC §14)."""

from __future__ import annotations

from typing import Generic

from pydantic import StrictBool, field_validator

from .blocks import ConfigModel, Fraction, Int, Num, StrategyMap, T, TierMap
from .enums import Strategy, Tier, Timeframe


# --- universe -----------------------------------------------------------------------------------------------------


class UniverseConfig(ConfigModel):
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


class EngineConfig(ConfigModel):
    base_timeframe: Timeframe
    cycle_min: Int
    max_bar_lag_min: Int
    min_window_coverage: Fraction
    entry_timeout_min: Int


class GridConfig(ConfigModel):
    levels: TierMap[Int]
    spacing: TierMap[Fraction]


class VolumeFilterConfig(ConfigModel):
    enabled: StrictBool
    baseline_min: Int
    min_ratio: TierMap[Num]


class DcaConfig(ConfigModel):
    enabled: StrictBool
    lookback_min: Int
    drop_threshold: TierMap[Fraction]
    grid: GridConfig
    volume_filter: VolumeFilterConfig


class SwingConfig(ConfigModel):
    enabled: StrictBool
    lookback_min: Int
    breakout_threshold: Fraction
    min_volume_surge: Num


class ChannelConfig(ConfigModel):
    enabled: StrictBool
    lookback_min: Int
    buy_zone: Fraction
    top_zone: Fraction


class StrategiesConfig(ConfigModel):
    dca: DcaConfig
    swing: SwingConfig
    channel: ChannelConfig

    def of(self, strategy: Strategy | str):
        return StrategyMap.of(self, strategy)  # type: ignore[arg-type]


class ScanWindows(ConfigModel):
    rsi: Int
    volume_ratio: Int
    support: Int
    btc_corr: Int
    vol_24h: Int


class ScanConfig(ConfigModel):
    windows_min: ScanWindows
    min_btc_corr_pairs: Int


class SwingReadiness(ConfigModel):
    breakout_weight: Num
    volume_weight: Num
    ready: Num
    close: Num


class ChannelReadiness(ConfigModel):
    buy_zone_score: Num
    neutral: Num


class DcaReadiness(ConfigModel):
    ready: Num
    close: Num


class ReadinessConfig(ConfigModel):
    swing: SwingReadiness
    channel: ChannelReadiness
    dca: DcaReadiness


class MlWindows(ConfigModel):
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


class MlFeaturesConfig(ConfigModel):
    timeframe: Timeframe
    min_history_min: Int
    bb_std: Num
    windows_min: MlWindows


class DailyFeaturesConfig(ConfigModel):
    sma_d: list[Int]
    trend_d: Int
    vol_d: list[Int]
    range_d: Int
    rel_d: list[Int]
    corr_d: Int
    corr_min_pairs: Int


class FeaturesConfig(ConfigModel):
    ml: MlFeaturesConfig
    daily: DailyFeaturesConfig


class ExitParams(ConfigModel):
    take_profit: Fraction
    stop_loss: Fraction
    trail: Fraction
    trail_activation: Fraction


class ExitsConfig(ConfigModel):
    max_hold_h: Num
    no_data_grace_min: Int
    tp_multiplier: StrategyMap[Num]
    dca: TierMap[ExitParams]
    swing: TierMap[ExitParams]
    channel: TierMap[ExitParams]

    def params(self, strategy: Strategy | str, tier: Tier | str) -> ExitParams:
        table: TierMap[ExitParams] = StrategyMap.of(self, strategy)  # type: ignore[arg-type]
        return table.of(tier)


class CostsConfig(ConfigModel):
    taker_fee: Fraction
    slippage: TierMap[Fraction]

    def round_trip(self, tier: Tier | str) -> float:
        """2 × fee + 2 × slippage of the tier (SPEC §6)."""
        return 2.0 * self.taker_fee + 2.0 * self.slippage.of(tier)


class PortfolioConfig(ConfigModel):
    initial_balance_usd: Num
    position_size_usd: Num
    reserve: Fraction
    allocation: StrategyMap[Fraction]


class LimitsConfig(ConfigModel):
    max_open_total: Int
    max_open_per_strategy: Int
    max_open_per_symbol: Int
    max_position_cash_fraction: Fraction
    daily_loss_limit: Fraction
    loss_streak: Int
    loss_streak_pause_h: Num


class PanicConfig(ConfigModel):
    ret_1h: Fraction
    ret_24h: Fraction
    vol_24h: Fraction
    decline_24h: Fraction
    decline_48h: Fraction


class CautionConfig(ConfigModel):
    ret_1h: Fraction
    ret_4h: Fraction
    ret_24h: Fraction
    vol_24h: Fraction


class EuphoriaConfig(ConfigModel):
    ret_1h: Fraction
    ret_24h: Fraction
    vol_24h: Fraction


class RegimeMap(ConfigModel, Generic[T]):
    panic: T
    caution: T
    euphoria: T
    normal: T


class RegimeConfig(ConfigModel):
    panic: PanicConfig
    caution: CautionConfig
    euphoria: EuphoriaConfig
    max_reference_gap_min: Int
    size_multiplier: RegimeMap[Num]


class VolDisable(ConfigModel):
    disable_at: Fraction
    reenable_at: Fraction | None


class VolatilityDisableConfig(ConfigModel):
    min_disabled_h: Num
    channel: VolDisable
    swing: VolDisable
    dca: VolDisable


class LimiterConfig(ConfigModel):
    cooldown_h: TierMap[Num]
    ban_after_stops: Int
    ban_h: Num
    reset_profit_fraction_of_tp: Fraction


class StopWideningConfig(ConfigModel):
    vol_floor: Fraction
    vol_factor: Num
    regime_multiplier: RegimeMap[Num]
    cap: TierMap[Fraction]


class ProtectionConfig(ConfigModel):
    regime: RegimeConfig
    volatility_disable: VolatilityDisableConfig
    limiter: LimiterConfig
    stop_widening: StopWideningConfig


class DipRule(ConfigModel):
    avg_drop: Fraction
    symbol_drop: Fraction
    min_symbols: Int


class BreakoutRule(ConfigModel):
    min_up: Int
    min_surges: Int


class DowntrendRule(ConfigModel):
    min_down: Int
    avg_drop: Fraction


class RangeRule(ConfigModel):
    min_ranging: Int
    max_avg_range: Fraction


class ShiftRules(ConfigModel):
    big_loss: Fraction
    moderate_loss: Fraction
    moderate_after_h: Num
    flat_band: Fraction
    flat_after_h: Num
    stale_win_age_h: Num


class PrioritisationConfig(ConfigModel):
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
