"""What the engine carries between cycle points: operator closes, entry orders, open positions, last bars and the
:class:`EngineState` that holds them (persisted as JSON through :mod:`.codec`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

from ..config import Strategy, Tier
from ..exits import ExitRule, PositionState
from ..ledger import OpenCounts, PendingOrder, TradeMeta
from ..prioritisation import ShiftState
from ..protection import ProtectionState
from ..shadows import ShadowState


@dataclass(frozen=True)
class ManualClose:
    """Operator event ``cryptotracker close <trade_group_id>`` stamped at ``time`` (UTC) with who and why."""

    time: pd.Timestamp
    trade_group_id: str
    who: str
    why: str


@dataclass(frozen=True)
class EntryOrder:
    """An entry order decided at cycle point ``decided_at`` (a TAKE), waiting for its entry bar.

    The exit parameters are frozen here: ``rule`` is :func:`..exits.opening_rule`'s (the effective tp and the stop
    after widening, §8.4); ``fee`` and ``slippage`` are ``costs.taker_fee`` and the tier's slippage;
    ``levels``/``spacing`` the DCA grid (1 / 0 otherwise); ``size_usd`` is G.
    """

    strategy: Strategy
    symbol: str
    tier: Tier
    scan_id: str
    decided_at: pd.Timestamp
    expires_at: pd.Timestamp  # decided_at + engine.entry_timeout_min (exclusive end of the entry-bar window)
    size_usd: float
    rule: ExitRule
    fee: float
    slippage: float
    levels: int
    spacing: float
    config_version: int
    regime: str
    confidence: float
    confidence_source: str

    def pending(self) -> PendingOrder:
        """The order as :func:`..ledger.portfolio_state` and :func:`..ledger.admit` see it."""
        return PendingOrder(self.strategy, self.symbol, self.size_usd, self.decided_at, self.scan_id)


@dataclass(frozen=True)
class OpenPosition:
    """An open trade group: its ledger meta and the stepper state (treated as read-only; the engine steps copies)."""

    meta: TradeMeta
    state: PositionState

    @property
    def trade_group_id(self) -> str:
        return self.meta.trade_group_id


@dataclass(frozen=True)
class LastBar:
    """A symbol's latest processed base bar: open time (UTC) and close (its mark and decision-bar close)."""

    time: pd.Timestamp
    close: float


@dataclass(frozen=True)
class EngineState:
    """Everything the engine carries from one cycle point to the next; persist it with :meth:`to_json`.

    ``cursor``: the last processed cycle point (None before the first). ``positions``: open groups by
    trade_group_id order. ``pending_orders``: in decision order. ``manual_pending``: manual closes waiting for a
    fresh decision bar. ``last_bars``: per symbol the latest processed bar. ``protection``: limiter, loss streak,
    daily loss (E₀) and operator state. ``shift``: §9.3 state. ``watermark``: greatest ``ingested_at`` of the bars
    read so far. ``config_version``: of the last tick. ``shadows``: the shadow orders and positions (SPEC §10.2).
    """

    cursor: pd.Timestamp | None = None
    positions: tuple[OpenPosition, ...] = ()
    pending_orders: tuple[EntryOrder, ...] = ()
    manual_pending: tuple[ManualClose, ...] = ()
    last_bars: Mapping[str, LastBar] = field(default_factory=dict)
    protection: ProtectionState = field(default_factory=ProtectionState)
    shift: ShiftState = field(default_factory=ShiftState)
    watermark: pd.Timestamp | None = None
    config_version: int | None = None
    shadows: ShadowState = field(default_factory=ShadowState)

    def to_json(self) -> str:
        """The state as one JSON document (sorted keys; floats exact; ±inf as strings; times ISO-8601 UTC)."""
        from .codec import state_to_json  # imported on use: the codec builds the classes of this module

        return state_to_json(self)

    @classmethod
    def from_json(cls, text: str) -> "EngineState":
        """Inverse of :meth:`to_json` (raises on another state version)."""
        from .codec import state_from_json

        return state_from_json(text)

    def open_counts(self) -> OpenCounts:
        """Open groups plus pending orders (the §7.2 / I-3 counts) as held by the state."""
        counts = OpenCounts(0)
        for p in self.positions:
            counts = counts.plus(p.meta.strategy, p.meta.symbol)
        for o in self.pending_orders:
            counts = counts.plus(o.strategy, o.symbol)
        return counts
