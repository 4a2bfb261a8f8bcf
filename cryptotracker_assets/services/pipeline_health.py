"""The SPEC §13.2 pipeline checks against the warehouse, without Dagster: the engine's lag behind the stored bars,
and the alert of a failing check queued in the notification outbox (delivered, at least once, by the outbox
delivery sensor). The rules are :mod:`..core.pipeline_health`; the runs come from the Dagster layer."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..core.common import utc_or_none
from ..core.config import Config
from ..core.pipeline_health import Finding, alert_rows, engine_lag
from ..core.universe import Universe
from ..storage.warehouse import Warehouse


@dataclass(frozen=True)
class QueuedAlert:
    message_id: str | None  # None: the check passed, nothing to say
    queued: int  # 1 when this evaluation queued it, 0 when it passed or the same alert was queued before


def engine_lag_finding(wh: Warehouse, cfg: Config, now: pd.Timestamp) -> Finding:
    """The engine's cursor (newest ``engine_state`` row) against the newest stored base bar of every active symbol
    (the market symbol is active, SPEC §0.5)."""
    row = wh.engine_state()
    cursor = utc_or_none(row["cursor"]) if row is not None else None
    newest = wh.latest_bar_times(cfg.engine.base_timeframe, Universe.from_config(cfg).active_symbols)
    return engine_lag(cursor, newest, now, cfg)


def queue_alert(wh: Warehouse, finding: Finding, now: pd.Timestamp) -> QueuedAlert:
    """Queue the finding's alert (when it failed) in the outbox; an alert already queued is not queued again."""
    rows = alert_rows([finding])
    if rows.empty:
        return QueuedAlert(None, 0)
    return QueuedAlert(str(rows["message_id"].iloc[0]), wh.queue_messages(rows, now))
