"""The engine's errors: bad inputs, and broken invariants that stop a run."""

from __future__ import annotations


class EngineInvariantError(RuntimeError):
    """A broken invariant after a cycle point (limits exceeded, ledger and state disagree): fail loudly."""


class EngineInputError(ValueError):
    """Inputs the engine cannot process (missing regime row, scan rows that do not cover T, bad cycle points)."""
