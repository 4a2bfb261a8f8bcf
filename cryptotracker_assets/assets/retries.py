"""Retries of steps (issue 14): transient failures — the market source's network, a warehouse lock held past
``data.warehouse.lock_wait_s`` — are retried by the op's ``RetryPolicy`` with exponential backoff and jitter (so two
runs that collided do not collide again in step); data and config errors are final: they are raised as
``dg.Failure(allow_retries=False)``, naming what is wrong, and no retry hides them. Whole runs are retried by the
instance (``run_retries`` with ``retry_on_asset_or_op_failure: false``) only when the run itself died (a killed
process), never for a step that failed."""

from __future__ import annotations

import functools
import inspect

import dagster as dg
from pandera.errors import SchemaError, SchemaErrors

from ..core.config import ConfigError
from ..core.engine.errors import EngineInputError, EngineInvariantError
from ..core.ledger.rows import LedgerError
from ..core.ohlc import OhlcInputError
from ..core.universe import UnknownSymbolError
from ..services.incremental import StaleInputError
from ..services.ingest import IngestError
from ..storage.base import WarehouseError, WarehouseLockedError

TRANSIENT_RETRY = dg.RetryPolicy(max_retries=3, delay=2.0, backoff=dg.Backoff.EXPONENTIAL,
                                 jitter=dg.Jitter.PLUS_MINUS)
DATA_ERRORS = (ConfigError, OhlcInputError, IngestError, EngineInputError, EngineInvariantError, LedgerError,
               StaleInputError, UnknownSymbolError, SchemaError, SchemaErrors)


def is_final(exc: BaseException) -> bool:
    """A data or config error, or a warehouse error that is not a lock: retrying changes nothing."""
    return isinstance(exc, DATA_ERRORS) or (isinstance(exc, WarehouseError)
                                            and not isinstance(exc, WarehouseLockedError))


def final(exc: BaseException) -> dg.Failure:
    return dg.Failure(f"{type(exc).__name__}: {exc}", allow_retries=False)


def data_errors_are_final(fn):
    """Wrap an asset function: its data and config errors become ``dg.Failure(allow_retries=False)``."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as exc:
                if is_final(exc):
                    raise final(exc) from exc
                raise
        return gen

    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if is_final(exc):
                raise final(exc) from exc
            raise
    return call
