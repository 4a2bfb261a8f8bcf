"""Pandera schemas of the paper engine's outputs — the ledger (``paper_trades``), ``portfolio_snapshots`` and the
per-day ``engine_state`` rows — and the validation a tick runs before it commits (``scan_history`` has its own
schema in :mod:`.setup_schemas`). Never imports dagster."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from .config import Strategy, Tier
from .exits import ExitReason
from .ledger import LEDGER_SCHEMA, LEDGER_KEY, SNAPSHOT_COLUMNS, TRADE_GROUP_ID_RE, FillKind, Side, TradeOutcome
from .setup_schemas import ScanHistorySchema
from .shadow_schemas import validate_shadow_rows

UtcTime = Series[Annotated[pd.DatetimeTZDtype, "ns", "UTC"]]
_TYPES: dict[str, Any] = {"object": Series[str], "int64": Series["int64"], "float64": Series[float],
                          "bool": Series[bool], "datetime64[ns, UTC]": UtcTime}
_ENUMS: dict[str, list[str]] = {
    "side": [s.value for s in Side], "fill_kind": [f.value for f in FillKind],
    "strategy": [s.value for s in Strategy], "tier": [t.value for t in Tier],
    "exit_reason": [r.value for r in ExitReason], "outcome": [o.value for o in TradeOutcome],
}
_NULLABLE = {"size_usd", "take_profit_price", "stop_price", "trail_price", "exit_reason", "pnl_usd", "pnl_pct",
             "outcome", "high_water"}


def _ledger_model() -> type[pa.DataFrameModel]:
    annotations: dict[str, Any] = {}
    attrs: dict[str, Any] = {"__doc__": "Ledger rows (SPEC §5.3): one BUY per fill, one SELL per closed group."}
    for name, dtype, description in LEDGER_SCHEMA:
        annotations[name] = _TYPES[dtype]
        extra: dict[str, Any] = {}
        if name in _ENUMS:
            extra["isin"] = _ENUMS[name]
        if name == "trade_group_id":
            extra["str_matches"] = TRADE_GROUP_ID_RE.pattern
        attrs[name] = pa.Field(description=description, nullable=name in _NULLABLE, **extra)
    attrs["__annotations__"] = annotations

    class Config:
        strict = True
        coerce = False
        unique = list(LEDGER_KEY)

    attrs["Config"] = Config
    return type("LedgerSchema", (pa.DataFrameModel,), attrs)


LedgerSchema = _ledger_model()

_SNAPSHOT_DESCRIPTIONS = {
    "cycle_point": "Cycle point T (UTC) whose step-4 portfolio state this row is.",
    "cash": "initial balance + realised − open cost (USD).",
    "positions_value": "Σ open groups of qty × decision-bar close × (1 − slippage) × (1 − fee) (USD).",
    "equity": "mark_equity = cash + positions_value (USD).",
    "realised": "Σ net P&L of closed groups (USD).",
    "unrealised": "positions_value − open cost (USD).",
    "open_count": "Open trade groups at T.",
}


class SnapshotSchema(pa.DataFrameModel):
    """``portfolio_snapshots`` (SPEC §7.1): one row per cycle point with its step-4 state."""

    cycle_point: UtcTime = pa.Field(unique=True, description=_SNAPSHOT_DESCRIPTIONS["cycle_point"])
    cash: Series[float] = pa.Field(description=_SNAPSHOT_DESCRIPTIONS["cash"])
    positions_value: Series[float] = pa.Field(ge=0, description=_SNAPSHOT_DESCRIPTIONS["positions_value"])
    equity: Series[float] = pa.Field(description=_SNAPSHOT_DESCRIPTIONS["equity"])
    realised: Series[float] = pa.Field(description=_SNAPSHOT_DESCRIPTIONS["realised"])
    unrealised: Series[float] = pa.Field(description=_SNAPSHOT_DESCRIPTIONS["unrealised"])
    open_count: Series["int64"] = pa.Field(ge=0, description=_SNAPSHOT_DESCRIPTIONS["open_count"])

    class Config:
        strict = True
        coerce = False

    @pa.dataframe_check(description="mark equity = cash + positions value (I-4)")
    def equity_is_cash_plus_positions(cls, df: pd.DataFrame) -> Series[bool]:
        return (df["equity"] - (df["cash"] + df["positions_value"])).abs() <= 1e-9 * df["equity"].abs().clip(lower=1)


class EngineStateSchema(pa.DataFrameModel):
    """``engine_state``: the state at the end of the last processed cycle point of each UTC day."""

    day: UtcTime = pa.Field(unique=True, description="The UTC day (00:00) whose cycle points the state closes.")
    cursor: UtcTime = pa.Field(description="The last cycle point of that day the engine processed.")
    state_json: Series[str] = pa.Field(description="The engine state as one JSON document (positions, pending "
                                                   "orders, protection, shift state, last bars).")
    watermark: UtcTime = pa.Field(nullable=True, description="Greatest ingested_at of the bars read so far.")
    config_version: Series["int64"] = pa.Field(ge=0, description="Config version of the tick that wrote it.")

    class Config:
        strict = "filter"
        coerce = False

    @pa.dataframe_check(description="the cursor lies in its day")
    def cursor_in_day(cls, df: pd.DataFrame) -> Series[bool]:
        return (df["cursor"] >= df["day"]) & (df["cursor"] < df["day"] + pd.Timedelta(days=1))


def day_state_frame(days: Sequence[Any]) -> pd.DataFrame:
    """The per-day state rows a tick writes, as a frame (``DayState`` objects of the storage layer)."""
    frame = pd.DataFrame({
        "day": pd.to_datetime([d.day for d in days], utc=True),
        "cursor": pd.to_datetime([d.cursor for d in days], utc=True),
        "state_json": [d.state_json for d in days],
        "watermark": pd.to_datetime([d.watermark for d in days], utc=True),
        "config_version": pd.Series([int(d.config_version) for d in days], dtype="int64"),
    })
    for c in ("day", "cursor", "watermark"):
        frame[c] = frame[c].astype("datetime64[ns, UTC]")
    return frame


def validate_engine_outputs(outputs, days: Sequence[Any]) -> None:
    """Check a tick's rows against their schemas before they are committed (raises ``pandera`` errors naming
    the column and rows; nothing is written)."""
    if len(outputs.ledger_rows):
        LedgerSchema.validate(outputs.ledger_rows, lazy=True)
    if len(outputs.scan_rows):
        ScanHistorySchema.validate(outputs.scan_rows, lazy=True)
    if len(outputs.snapshots):
        SnapshotSchema.validate(outputs.snapshots[list(SNAPSHOT_COLUMNS)], lazy=True)
    if days:
        EngineStateSchema.validate(day_state_frame(days), lazy=True)
    validate_shadow_rows(outputs.shadow_decisions, outputs.shadow_exits)
