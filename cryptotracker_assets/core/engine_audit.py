"""Comparing an engine replay with the rows the live ticks stored (SPEC §0.5, §16), and joining day-by-day outputs.
Never imports dagster.

A replay over the same stored bars, scan rows, events and config gives the ledger, scan history, snapshots and
end state the live run gave, bit for bit; where a bar arrived late or was revised after its cycle point was
processed, the first differing row is named (table, key, column, stored and replayed values).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .config import Config
from .engine import EngineOutputs, EngineState
from .ledger import SNAPSHOT_COLUMNS, empty_ledger
from .setups import SCAN_ROW_COLUMNS

KEYS: dict[str, tuple[str, ...]] = {
    "paper_trades": ("trade_group_id", "side", "level"),
    "scan_history": ("scan_id",),
    "portfolio_snapshots": ("cycle_point",),
    "shadow_outcomes": ("shadow_id",),
    "shadow_exits": ("shadow_id",),
}


@dataclass(frozen=True)
class AuditReport:
    """The outcome of one day's audit: ``passed`` when every stored row equals the replay; otherwise
    ``first_difference`` names the first differing row. ``compared`` counts the rows per table."""

    day: pd.Timestamp
    cycle_points: int
    passed: bool
    first_difference: str | None
    compared: Mapping[str, int]


def no_outputs(state: EngineState, cfg: Config) -> EngineOutputs:
    """What a run with nothing to process returns (nothing is committed)."""
    return EngineOutputs(
        ledger_rows=empty_ledger(), scan_rows=pd.DataFrame(columns=list(SCAN_ROW_COLUMNS)),
        snapshots=pd.DataFrame(columns=list(SNAPSHOT_COLUMNS)), notifications=(),
        cycle_points=pd.DatetimeIndex([], tz="UTC"), watermark=state.watermark, config_version=cfg.config_version)


def concat_outputs(outs: Sequence[EngineOutputs], state: EngineState, cfg: Config) -> EngineOutputs:
    """The outputs of consecutive runs as one (rows in run order)."""
    if not outs:
        return no_outputs(state, cfg)
    if len(outs) == 1:
        return outs[0]

    def cat(frames: list[pd.DataFrame]) -> pd.DataFrame:
        keep = [f for f in frames if len(f)]
        return pd.concat(keep, ignore_index=True) if keep else frames[0]

    return EngineOutputs(
        ledger_rows=cat([o.ledger_rows for o in outs]),
        scan_rows=cat([o.scan_rows for o in outs]),
        snapshots=cat([o.snapshots for o in outs]),
        notifications=tuple(n for o in outs for n in o.notifications),
        cycle_points=pd.DatetimeIndex(np.concatenate([o.cycle_points.asi8 for o in outs])).tz_localize("UTC"),
        watermark=state.watermark,
        config_version=cfg.config_version,
        shadow_decisions=cat([o.shadow_decisions for o in outs]),
        shadow_exits=cat([o.shadow_exits for o in outs]),
    )


def _same(a: Any, b: Any) -> bool:
    if a is None or (not isinstance(a, str) and pd.isna(a)):
        return b is None or (not isinstance(b, str) and pd.isna(b))
    if b is None or (not isinstance(b, str) and pd.isna(b)):
        return False
    if isinstance(a, (float, np.floating)) or isinstance(b, (float, np.floating)):
        return float(a) == float(b)
    if isinstance(a, pd.Timestamp) or isinstance(b, pd.Timestamp):
        return pd.Timestamp(a) == pd.Timestamp(b)
    return a == b


def _key_text(table: str, row: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={row[k]}" for k in KEYS[table])


def _show(v: Any) -> str:
    return repr(v.item() if isinstance(v, np.generic) else v)


def _maybe_different(stored: pd.Series, replay: pd.Series) -> np.ndarray:
    """A fast pre-filter: False where the two columns are certainly equal (both null, or ==)."""
    try:
        eq = (stored.to_numpy() == replay.to_numpy())
        eq = np.asarray(eq, dtype=bool) | (stored.isna().to_numpy() & replay.isna().to_numpy())
    except (TypeError, ValueError):
        return np.ones(len(replay), dtype=bool)
    return ~eq


def first_row_difference(table: str, stored: pd.DataFrame | None, replay: pd.DataFrame) -> str | None:
    """The first row (in replay order) where ``stored`` and ``replay`` differ, or None when they are equal."""
    keys = list(KEYS[table])
    stored = stored if stored is not None else replay.iloc[0:0]
    columns = list(replay.columns)  # columns only the stored table has (added later) are not compared
    if set(columns) - set(stored.columns):
        return f"{table}: stored rows lack column(s) {sorted(set(columns) - set(stored.columns))}"
    stored = stored.reset_index(drop=True)
    replay = replay.reset_index(drop=True)
    dup = stored.duplicated(keys, keep=False).to_numpy()
    if dup.any():
        row = stored.iloc[int(np.flatnonzero(dup)[0])]
        return f"{table}: the key {_key_text(table, row)} is stored {int(dup.sum())} times"
    pos = pd.MultiIndex.from_frame(stored[keys]).get_indexer(pd.MultiIndex.from_frame(replay[keys])) if len(
        stored) and len(replay) else np.full(len(replay), -1)
    found = pos >= 0
    aligned = stored.iloc[np.where(found, pos, 0)].reset_index(drop=True) if len(stored) else None
    suspect = ~found
    if aligned is not None:
        for c in columns:
            suspect |= found & _maybe_different(aligned[c], replay[c])
    for i in np.flatnonzero(suspect):
        row = replay.iloc[int(i)]
        if not found[i]:
            return f"{table}: the replay has a row the live run did not store ({_key_text(table, row)})"
        srow = aligned.iloc[int(i)]
        for c in columns:
            if not _same(srow[c], row[c]):
                return (f"{table}: row {_key_text(table, row)}, column {c}: stored {_show(srow[c])}, "
                        f"replay {_show(row[c])}")
    extra = np.ones(len(stored), dtype=bool)
    extra[pos[found]] = False
    if extra.any():
        row = stored.iloc[int(np.flatnonzero(extra)[0])]
        return f"{table}: a stored row the replay does not give ({_key_text(table, row)})"
    return None


def _state_obj(text: str) -> dict:
    obj = json.loads(text)
    obj.pop("watermark", None)  # the bars a run read, not what it decided
    return obj


def _first_json_difference(a: Any, b: Any, path: str = "state") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{path}.{k}: only in the {'replay' if k not in a else 'stored state'}"
            d = _first_json_difference(a[k], b[k], f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} stored entries, {len(b)} replayed"
        for i, (x, y) in enumerate(zip(a, b)):
            d = _first_json_difference(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    return None if a == b else f"{path}: stored {a!r}, replay {b!r}"


def compare_replay(day: pd.Timestamp, points: pd.DatetimeIndex, replay: EngineOutputs, replay_state: EngineState,
                   stored: Mapping[str, pd.DataFrame | None], stored_state_json: str | None) -> AuditReport:
    """Compare a day's replay with the stored rows of that day (ledger, scan history, snapshots) and its stored
    end state (without the bar watermark)."""
    frames = {"paper_trades": replay.ledger_rows, "scan_history": replay.scan_rows,
              "portfolio_snapshots": replay.snapshots}
    # A day stored before the engine stepped shadows has no shadow state: its shadows are not compared.
    with_shadows = stored_state_json is None or "shadows" in json.loads(stored_state_json)
    if with_shadows:
        frames.update({"shadow_outcomes": replay.shadow_decisions, "shadow_exits": replay.shadow_exits})
    counts = {t: len(f) for t, f in frames.items()}
    for table, frame in frames.items():
        diff = first_row_difference(table, stored.get(table), frame.reset_index(drop=True))
        if diff:
            return AuditReport(day, len(points), False, diff, counts)
    if stored_state_json is not None:
        replayed = _state_obj(replay_state.to_json())
        if not with_shadows:
            replayed.pop("shadows", None)
        diff = _first_json_difference(_state_obj(stored_state_json), replayed)
        if diff:
            return AuditReport(day, len(points), False, f"engine_state of {day:%Y-%m-%d}: {diff}", counts)
    return AuditReport(day, len(points), True, None, counts)
