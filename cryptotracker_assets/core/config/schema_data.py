"""Config sections of the plumbing: notifications and market data (ingest, retention, health) (SPEC §14)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, StrictBool, field_validator

from .blocks import HHMM_PATTERN, ConfigModel, Fraction, Int, Num, TimeframeKeyed, TimeframeMap, validate_cron


class Channels(ConfigModel):
    trades: str
    reports: str
    alerts: str
    signals: str


class ReportAt(ConfigModel):
    at: str = Field(pattern=HHMM_PATTERN)
    lookback_h: Num


class WeeklyReport(ReportAt):
    day: Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


class ReportsConfig(ConfigModel):
    near_level: Fraction
    morning: ReportAt
    midday: ReportAt
    evening: ReportAt
    weekly: WeeklyReport


class NotificationsConfig(ConfigModel):
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


class PolygonConfig(ConfigModel):
    max_requests_per_min: Int = Field(ge=0)
    max_retry_after_s: Num = Field(ge=0)


class ValidationConfig(ConfigModel):
    max_reject_share: Fraction = Field(ge=0, le=1)


class WarehouseConfig(ConfigModel):
    lock_wait_s: Num = Field(gt=0)


class IngestTf(ConfigModel):
    cron_utc: str
    overlap_min: Int = Field(ge=0)
    max_catchup_d: Int = Field(ge=0)

    @field_validator("cron_utc")
    @classmethod
    def _cron(cls, v: str) -> str:
        return validate_cron(v)


class IngestConfig(TimeframeKeyed):
    """``of(tf)`` gives the ingest settings of a timeframe (``5m`` only when given, see :class:`TimeframeKeyed`)."""

    retries: Int = Field(ge=0)
    retry_delays_s: list[Num]
    min_call_interval_s: Num = Field(ge=0)
    m1: IngestTf = Field(alias="1m")
    m5: IngestTf = Field(default=None, alias="5m")  # type: ignore[assignment]
    m15: IngestTf = Field(alias="15m")
    h1: IngestTf = Field(alias="1h")
    d1: IngestTf = Field(alias="1d")


class RetentionConfig(TimeframeKeyed):
    """``of(tf)`` gives the retention in days of a timeframe, None = forever (``5m`` only when given)."""

    m1: Int | None = Field(alias="1m")
    m5: Int | None = Field(default=None, alias="5m")
    m15: Int | None = Field(alias="15m")
    h1: Int | None = Field(alias="1h")
    d1: Int | None = Field(alias="1d")
    decisions: Int | None


class GapsConfig(ConfigModel):
    cron_utc: str
    interval_multiple: TimeframeMap[Num]
    lookback_d: TimeframeMap[Int]
    alert_min: TimeframeMap[Int]

    @field_validator("cron_utc")
    @classmethod
    def _cron(cls, v: str) -> str:
        return validate_cron(v)


class HealthConfig(ConfigModel):
    every_min: Int
    freshness_min: TimeframeMap[Int]
    min_completeness: TimeframeMap[Fraction]
    extreme_move: Fraction
    aggregate_tolerance: Num
    completeness_window_h: TimeframeMap[Num]
    max_run_min: Int
    max_engine_lag_cycles: Int
    gaps: GapsConfig


class DataConfig(ConfigModel):
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
        return validate_cron(v)

