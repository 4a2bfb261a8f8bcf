"""The project config as a resource: the file defaults merged with the user file (path given, never read from
the environment here)."""

from __future__ import annotations

import dagster as dg
from pydantic import PrivateAttr

from cryptotracker_assets.core.config import Config, load_config
from cryptotracker_assets.core.universe import Universe


class ProjectConfigResource(dg.ConfigurableResource):
    """Effective config = cryptotracker_assets/config.yaml ⊕ ``user_config_path`` (CRYPTOTRACKER_CONFIG)."""

    user_config_path: str | None = None
    _cfg: Config | None = PrivateAttr(default=None)

    def load(self) -> Config:
        if self._cfg is None:
            self._cfg = load_config(self.user_config_path or None)
        return self._cfg

    def universe(self) -> Universe:
        return Universe.from_config(self.load())
