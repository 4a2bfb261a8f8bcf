"""The project config as a resource: the file defaults merged with the user file (path given, never read from
the environment here) and, when a warehouse is given, the approved config revisions, with its ``config_version``
(SPEC §0.3, §0.5)."""

from __future__ import annotations

import dagster as dg
from pydantic import PrivateAttr

from cryptotracker_assets.core.config import Config, load_config
from cryptotracker_assets.core.universe import Universe
from cryptotracker_assets.services.config_versions import origin_of
from cryptotracker_assets.services.revisions import config_timeline, effective_config

from .warehouse import WarehouseResource


class ProjectConfigResource(dg.ConfigurableResource):
    """Effective config = cryptotracker_assets/config.yaml ⊕ ``user_config_path`` (CRYPTOTRACKER_CONFIG) ⊕ the
    applied ``config_revisions`` (SPEC §10.6).

    With a ``warehouse``, :meth:`load` returns the config with the revisions applied so far and its version from
    ``config_versions`` — recording the next version first when the effective values are new (the defaults or the
    user file changed; an approval or rollback records its own version when it is applied) — so every
    row a run writes carries the version of the config it was computed under. The config is read once per run
    (every asset of a run sees the same version). Without a warehouse it stays unversioned (version 0)."""

    user_config_path: str | None = None
    warehouse: WarehouseResource | None = None
    _cfg: Config | None = PrivateAttr(default=None)

    @property
    def origin(self) -> str:
        """What a recorded version names as its origin: the user config path, or ``config.yaml``."""
        return origin_of(self.user_config_path)

    def load(self) -> Config:
        if self._cfg is None:
            cfg = load_config(self.user_config_path or None)
            if self.warehouse is not None:
                cfg = effective_config(self.warehouse.get(), cfg, self.origin)
            self._cfg = cfg
        return self._cfg

    def timeline(self, start, end) -> list:
        """The configs in force over the cycle points of [start, end): ``(None, config at start)``, then one
        ``(T, config)`` per revision acting from cycle point T (SPEC §0.2). Without a warehouse: :meth:`load`."""
        if self.warehouse is None:
            return [(None, self.load())]
        return config_timeline(self.warehouse.get(), load_config(self.user_config_path or None), self.origin,
                               start, end)

    def universe(self) -> Universe:
        return Universe.from_config(self.load())
