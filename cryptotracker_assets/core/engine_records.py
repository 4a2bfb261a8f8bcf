"""What a tick records besides its ledger, scan and snapshot rows (never imports dagster):

- the **outbox** (``notification_outbox``): every message the engine wants to say, written in the same commit as
  the ledger rows and delivered later, at least once, by a sensor of its own (SPEC §12; issue 10, item 3). Each
  message has a deterministic id (kind, cycle point, content hash), so a replay of the same cycle points produces
  the same ids and an identical message is never queued twice;
- the **limiter state** (``limiter_state``, SPEC §8.3): each symbol's stop count, cooldown and ban at the end of the
  last processed cycle point of each UTC day (replaced as the day progresses, like ``engine_state``);
- the **tick record** (``engine_ticks``): tick id, cycle points processed, watermark of the bars read, config
  version and commit time, so a user sees which ticks a late or revised bar affected.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .config import Config
from .notify import render
from .protection import LimiterState

OUTBOX_COLUMNS = ("message_id", "cycle_point", "kind", "channel_key", "channel", "text", "payload_json")
LIMITER_COLUMNS = ("day", "cursor", "symbol", "stops", "cooldown_until", "banned_until")
TICK_COLUMNS = ("tick_id", "first_cycle_point", "last_cycle_point", "cycle_points", "watermark", "config_version",
                "committed_at", "ledger_rows", "scan_rows", "messages")
UTC_NS = "datetime64[ns, UTC]"
MESSAGE_ID_RE = re.compile(r"^[a-z][a-z0-9_]*_\d{10}_[0-9a-f]{10}$")


def _plain(value: Any) -> Any:
    if isinstance(value, pd.Timestamp):
        return value.tz_convert("UTC").isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, (np.floating, float)):
        return float(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def note_text(note: Mapping[str, Any]) -> str:
    """The plain text of an engine notification as people read it (the Slack fallback text of its message; the
    log shows the same)."""
    payload = _plain({k: v for k, v in note.items() if k != "channel"})
    return "\n".join(m.text for m in render(str(note.get("kind", "event")), payload))


def message_id(note: Mapping[str, Any]) -> str:
    """``{kind}_{yymmddHHMM}_{10 hex}``: the kind, the cycle point and the SHA-1 of the note's content."""
    payload = json.dumps(_plain(dict(note)), sort_keys=True, separators=(",", ":"))
    t = pd.Timestamp(note["cycle_point"]).tz_convert("UTC")
    return f"{note['kind']}_{t:%y%m%d%H%M}_{hashlib.sha1(payload.encode()).hexdigest()[:10]}"


def empty_outbox() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=UTC_NS if c == "cycle_point" else object) for c in OUTBOX_COLUMNS})


def outbox_rows(notes: Iterable[Mapping[str, Any]], cfg: Config) -> tuple[pd.DataFrame, list[Mapping[str, Any]]]:
    """(the outbox rows, the notes that only go to the log). A note without a channel, ``opened`` / ``closed``
    without ``notifications.trade_events`` and ``signal`` without ``notifications.signals_enabled`` are log-only;
    a note whose channel is not one of ``notifications.channels`` raises (the engine only names configured channels)."""
    keys = {v: k for k, v in cfg.notifications.channels.model_dump().items()}
    rows, log_only, seen = [], [], set()
    for note in notes:
        ch = note.get("channel")
        kind = note.get("kind")
        if ch is None or (kind in ("opened", "closed") and not cfg.notifications.trade_events) or (
                kind == "signal" and not cfg.notifications.signals_enabled):
            log_only.append(note)
            continue
        if ch not in keys:
            raise ValueError(f"notification {note.get('kind')!r}: channel {ch!r} is not in notifications.channels")
        mid = message_id(note)
        if mid in seen:  # the same note twice at one cycle point says nothing new
            continue
        seen.add(mid)
        rows.append({"message_id": mid, "cycle_point": pd.Timestamp(note["cycle_point"]).tz_convert("UTC"),
                     "kind": str(note["kind"]), "channel_key": keys[ch], "channel": ch, "text": note_text(note),
                     "payload_json": json.dumps(_plain(dict(note)), sort_keys=True)})
    if not rows:
        return empty_outbox(), log_only
    frame = pd.DataFrame(rows, columns=list(OUTBOX_COLUMNS))
    frame["cycle_point"] = frame["cycle_point"].astype(UTC_NS)
    return frame, log_only


def limiter_rows(day: pd.Timestamp, cursor: pd.Timestamp, limiter: LimiterState) -> pd.DataFrame:
    """The ``limiter_state`` rows of one UTC day: every symbol the limiter holds, as of ``cursor``."""
    syms = sorted(limiter.symbols)

    def times(attr: str) -> pd.Series:
        return pd.Series(pd.to_datetime([getattr(limiter.symbols[s], attr) for s in syms], utc=True),
                         dtype=UTC_NS)

    return pd.DataFrame({
        "day": pd.Series([day] * len(syms), dtype=UTC_NS), "cursor": pd.Series([cursor] * len(syms), dtype=UTC_NS),
        "symbol": pd.Series(syms, dtype=object),
        "stops": pd.Series([int(limiter.symbols[s].stops) for s in syms], dtype="int64"),
        "cooldown_until": times("cooldown_until"), "banned_until": times("banned_until"),
    }, columns=list(LIMITER_COLUMNS))


@dataclass(frozen=True)
class TickRecord:
    """One committed tick (its ``tick_id`` is assigned by the warehouse in the commit)."""

    first_cycle_point: pd.Timestamp
    last_cycle_point: pd.Timestamp
    cycle_points: int
    watermark: pd.Timestamp | None
    config_version: int
    ledger_rows: int
    scan_rows: int
    messages: int

    @classmethod
    def of(cls, outputs: Any, messages: int) -> "TickRecord":
        """The record of a run's :class:`~.engine.EngineOutputs` (its cycle points, watermark, config version, rows)
        with ``messages`` queued."""
        pts = outputs.cycle_points
        return cls(first_cycle_point=pts[0], last_cycle_point=pts[-1], cycle_points=len(pts),
                   watermark=outputs.watermark, config_version=int(outputs.config_version),
                   ledger_rows=len(outputs.ledger_rows), scan_rows=len(outputs.scan_rows), messages=int(messages))

    def frame(self, tick_id: int, committed_at: pd.Timestamp) -> pd.DataFrame:
        row = {"tick_id": int(tick_id), "first_cycle_point": self.first_cycle_point,
               "last_cycle_point": self.last_cycle_point, "cycle_points": int(self.cycle_points),
               "watermark": self.watermark, "config_version": int(self.config_version), "committed_at": committed_at,
               "ledger_rows": int(self.ledger_rows), "scan_rows": int(self.scan_rows),
               "messages": int(self.messages)}
        df = pd.DataFrame([row], columns=list(TICK_COLUMNS))
        for c in ("first_cycle_point", "last_cycle_point", "watermark", "committed_at"):
            df[c] = pd.to_datetime(df[c], utc=True).astype(UTC_NS)
        for c in ("tick_id", "cycle_points", "config_version", "ledger_rows", "scan_rows", "messages"):
            df[c] = df[c].astype("int64")
        return df
