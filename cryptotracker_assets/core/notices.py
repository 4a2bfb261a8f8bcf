"""Outbox rows of the operators' notices — run failures, check alerts, reports, retraining results — that are not
engine notes (never imports dagster). A notice is ``{"kind", "cycle_point", "identity", **fields}``: its message id
derives from the kind, the time it is about and its identity (so the same notice is never queued twice), its stored
text is the rendered plain-text fallback, its payload every other field (the delivery renders the blocks from it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from .config import Config
from .engine_records import OUTBOX_COLUMNS, UTC_NS, empty_outbox, message_id
from .notify import render


def plain(value: Any) -> Any:
    """JSON-ready: timestamps as ISO UTC strings, NaN as None, numpy scalars as Python ones."""
    if isinstance(value, pd.Timestamp):
        return value.tz_convert("UTC").isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def notice_rows(notes: Iterable[Mapping[str, Any]], cfg: Config, channel_key: str) -> pd.DataFrame:
    """Outbox rows (the engine's outbox columns) of ``notes`` for ``notifications.channels.<channel_key>``."""
    channel = getattr(cfg.notifications.channels, channel_key)
    rows = []
    for n in notes:
        at = pd.Timestamp(n["cycle_point"]).tz_convert("UTC")
        mid = message_id({"kind": n["kind"], "cycle_point": at, **plain(n.get("identity") or {})})
        payload = plain({k: v for k, v in n.items() if k not in ("identity", "channel")})
        text = render(str(n["kind"]), payload)[0].text
        rows.append({"message_id": mid, "cycle_point": at, "kind": str(n["kind"]), "channel_key": channel_key,
                     "channel": channel, "text": text, "payload_json": json.dumps(payload, sort_keys=True,
                                                                                   default=str)})
    if not rows:
        return empty_outbox()
    frame = pd.DataFrame(rows, columns=list(OUTBOX_COLUMNS))
    frame["cycle_point"] = frame["cycle_point"].astype(UTC_NS)
    return frame
