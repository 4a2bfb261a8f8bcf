"""The top-level :class:`Config` model: one field per section of the config file (SPEC §14)."""

from __future__ import annotations

import hashlib
import json

from pydantic import Field

from .blocks import ConfigModel, Int
from .schema_data import DataConfig, NotificationsConfig
from .schema_ml import MlConfig, ShadowConfig, ThresholdManagerConfig
from .schema_trading import (
    CostsConfig,
    EngineConfig,
    ExitsConfig,
    FeaturesConfig,
    LimitsConfig,
    PortfolioConfig,
    PrioritisationConfig,
    ProtectionConfig,
    ReadinessConfig,
    ScanConfig,
    StrategiesConfig,
    UniverseConfig,
)


class Config(ConfigModel):
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
