"""Pandera schemas of what a tick records besides its ledger, scan and snapshot rows (:mod:`.engine_records`): the
tick records (``engine_ticks``), the limiter state (``limiter_state``) and the notification outbox
(``notification_outbox``). Never imports dagster."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from .engine_records import MESSAGE_ID_RE

UtcTime = Series[Annotated[pd.DatetimeTZDtype, "ns", "UTC"]]


class TickSchema(pa.DataFrameModel):
    """``engine_ticks``: one row per committed tick."""

    tick_id: Series["int64"] = pa.Field(ge=1, unique=True, description="1, 2, … in commit order.")
    first_cycle_point: UtcTime = pa.Field(description="The first cycle point the tick processed.")
    last_cycle_point: UtcTime = pa.Field(description="The last cycle point the tick processed.")
    cycle_points: Series["int64"] = pa.Field(ge=1, description="Cycle points processed.")
    watermark: UtcTime = pa.Field(nullable=True, description="Greatest ingested_at of the bars the tick read: a bar "
                                                             "ingested later did not affect this tick.")
    config_version: Series["int64"] = pa.Field(ge=0, description="The config version the tick ran with (§0.3).")
    committed_at: UtcTime = pa.Field(description="When the tick's transaction committed (UTC).")
    ledger_rows: Series["int64"] = pa.Field(ge=0, description="Ledger rows the tick wrote.")
    scan_rows: Series["int64"] = pa.Field(ge=0, description="scan_history rows the tick wrote.")
    messages: Series["int64"] = pa.Field(ge=0, description="Messages the tick queued in the outbox.")

    class Config:
        strict = True
        coerce = False

    @pa.dataframe_check(description="first cycle point ≤ last cycle point")
    def ordered(cls, df: pd.DataFrame) -> Series[bool]:
        return df["first_cycle_point"] <= df["last_cycle_point"]


class LimiterSchema(pa.DataFrameModel):
    """``limiter_state`` (SPEC §8.3): each symbol's stop count, cooldown and ban at the end of each UTC day."""

    day: UtcTime = pa.Field(description="The UTC day (00:00) whose last processed cycle point the rows describe.")
    cursor: UtcTime = pa.Field(description="That cycle point.")
    symbol: Series[str] = pa.Field(description="The symbol.")
    stops: Series["int64"] = pa.Field(ge=0, description="Stop-loss closes counted towards the ban.")
    cooldown_until: UtcTime = pa.Field(nullable=True, description="No new entry on the symbol before this time.")
    banned_until: UtcTime = pa.Field(nullable=True, description="The symbol is banned until this time.")

    class Config:
        strict = True
        coerce = False
        unique = ["day", "symbol"]


class OutboxSchema(pa.DataFrameModel):
    """``notification_outbox``: every message queued, delivered at least once by the outbox delivery sensor."""

    message_id: Series[str] = pa.Field(unique=True, str_matches=MESSAGE_ID_RE.pattern,
                                       description="kind_yymmddHHMM_hash: the same message always has the same id.")
    cycle_point: UtcTime = pa.Field(nullable=True, description="The cycle point the message is about.")
    kind: Series[str] = pa.Field(description="What happened (panic, daily_loss_gate, closed, pipeline check, …).")
    channel_key: Series[str] = pa.Field(isin=["trades", "reports", "alerts", "signals"],
                                        description="The notifications.channels key.")
    channel: Series[str] = pa.Field(description="The channel name it goes to.")
    text: Series[str] = pa.Field(description="The message text (carries the message id when sent).")
    payload_json: Series[str] = pa.Field(description="The message's fields as JSON.")

    class Config:
        strict = "filter"
        coerce = False


def validate_records(tick: pd.DataFrame | None, outbox: pd.DataFrame | None,
                     limiter: Sequence[pd.DataFrame]) -> None:
    """Check a tick's records against their schemas before they are committed (nothing is written on failure)."""
    if tick is not None and len(tick):
        TickSchema.validate(tick, lazy=True)
    if outbox is not None and len(outbox):
        OutboxSchema.validate(outbox, lazy=True)
    frames = [f for f in limiter if f is not None and len(f)]
    if frames:
        LimiterSchema.validate(pd.concat(frames, ignore_index=True), lazy=True)
