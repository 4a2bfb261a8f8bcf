"""Config versions (SPEC §0.3, §0.5), without Dagster.

``config_version`` is one integer sequence in the warehouse table ``config_versions``: +1 per distinct effective
config seen at load (a change of the defaults or of the user file; later also an applied revision or a rollback,
§10.6). Every asset that writes rows loads the config through :func:`versioned`, so the rows carry the version of
the config they were computed under: ledger rows (positions keep the version at entry), scan rows, features_scan
and market_regime rows, and the engine's tick record. A replay rebuilds the config that was in force for a version
with :func:`config_for_version`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..core.config import Config, ConfigError, build_config, raw_dict
from ..storage.warehouse import ConfigVersion, Warehouse

DEFAULT_ORIGIN = "config.yaml"  # the origin of a config without a user file


def origin_of(user_config_path: str | None) -> str:
    """The origin recorded with a version: the user config path, or ``config.yaml`` when there is none."""
    return str(user_config_path) if user_config_path else DEFAULT_ORIGIN


def record_version(wh: Warehouse, cfg: Config, origin: str, now: pd.Timestamp | None = None) -> ConfigVersion:
    """The version of ``cfg``'s effective values: the latest recorded one when its content hash is the same, else
    the next integer, recorded with ``origin`` and the values (one write transaction)."""
    at = now if now is not None else pd.Timestamp.now(tz="UTC")
    return wh.config_version_for(cfg.fingerprint(), origin, raw_dict(cfg), at)


def with_version(cfg: Config, version: int) -> Config:
    """``cfg`` carrying ``version`` (the values, and so the fingerprint, unchanged)."""
    return cfg.model_copy(update={"config_version": int(version)})


def versioned(wh: Warehouse, cfg: Config, origin: str, now: pd.Timestamp | None = None) -> Config:
    """``cfg`` with its recorded version (recording it first when its content is new)."""
    return with_version(cfg, record_version(wh, cfg, origin, now).config_version)


def config_for_version(wh: Warehouse, version: int) -> Config:
    """The effective config that was in force under ``version``, rebuilt from its recorded values and validated
    again; its fingerprint must equal the recorded content hash (else the schema changed since: the error says
    so). An unknown version raises naming it."""
    row = wh.config_version_row(version)
    if row is None:
        raise ConfigError(f"config_version {version} is not recorded in config_versions")
    cfg = build_config(row.values, source=f"config_versions #{row.config_version} ({row.origin})",
                       config_version=row.config_version)
    if cfg.fingerprint() != row.content_hash:
        raise ConfigError(
            f"config_version {version} ({row.origin}): the recorded values no longer give the recorded content hash "
            f"{row.content_hash[:16]} (the config schema changed since); it cannot be rebuilt exactly")
    return cfg


def config_of_day(wh: Warehouse, cfg: Config, day: pd.Timestamp) -> Config:
    """The config the engine ran with on UTC ``day`` (the version on the day's engine state row, written by the
    day's last tick): ``cfg`` when that is its version or the day has no state row; for a day written before
    versions were numbered (version 0), ``cfg``'s values without a version."""
    day = pd.Timestamp(day).tz_convert("UTC").floor("1D")
    rows = wh.engine_states(day, day + pd.Timedelta(days=1))
    if rows is None or rows.empty:
        return cfg
    version = int(rows["config_version"].iloc[-1])
    if version == cfg.config_version:
        return cfg
    if version == 0:
        return with_version(cfg, 0)
    return config_for_version(wh, version)


Timeline = Sequence[tuple[pd.Timestamp | None, Config]]  # (in force from, config); the first from is None


def segments(timeline: Timeline, points: pd.DatetimeIndex) -> list[tuple[Config, pd.DatetimeIndex]]:
    """``points`` cut where a new config comes into force (SPEC §0.2: an approved revision acts from the first
    cycle point after it), each part with its config; empty parts are dropped."""
    out = []
    for i, (frm, cfg) in enumerate(timeline):
        nxt = timeline[i + 1][0] if i + 1 < len(timeline) else None
        mask = np.ones(len(points), dtype=bool)
        if frm is not None:
            mask &= points >= frm
        if nxt is not None:
            mask &= points < nxt
        if mask.any():
            out.append((cfg, points[mask]))
    return out


def versions_at(timeline: Timeline, points: pd.DatetimeIndex) -> np.ndarray:
    """The config version in force at each of ``points``."""
    out = np.full(len(points), -1, dtype="int64")
    for cfg, part in segments(timeline, points):
        out[points.isin(part)] = cfg.config_version
    return out
