"""The paper-trading engine: a deterministic fold over cycle points (SPEC §0.5, §3.1); never imports dagster.

``run_engine(state, inputs, cycle_points) -> (state, outputs)`` (:mod:`.fold`, which documents the order of work at
each cycle point) reads :class:`EngineInputs` (:mod:`.inputs`) with the base bars of a :class:`BarStore`
(:mod:`.bars`) and the ``market_regime`` rows (:mod:`.market`), and carries an :class:`EngineState` (:mod:`.state`)
persisted as JSON (:mod:`.codec`) from one call to the next.
"""

from __future__ import annotations

from collections.abc import Sequence

from .bars import BAR_COLUMNS, BarStore
from .codec import STATE_VERSION
from .errors import EngineInputError, EngineInvariantError
from .fold import NOTIFICATION_KINDS, EngineOutputs, next_cycle_points, run_engine
from .inputs import EngineInputs
from .state import EngineState, EntryOrder, LastBar, ManualClose, OpenPosition

__all__: Sequence[str] = (
    "BAR_COLUMNS",
    "BarStore",
    "EngineInputError",
    "EngineInputs",
    "EngineInvariantError",
    "EngineOutputs",
    "EngineState",
    "EntryOrder",
    "LastBar",
    "ManualClose",
    "NOTIFICATION_KINDS",
    "OpenPosition",
    "STATE_VERSION",
    "next_cycle_points",
    "run_engine",
)
