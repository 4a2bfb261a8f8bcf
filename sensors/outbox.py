"""The outbox delivery sensor: sends what the engine (and the pipeline checks) queued in ``notification_outbox``
through the notifier, at least once, each message carrying its id. Runs in the daemon, launches no runs."""

from __future__ import annotations

import dagster as dg

from cryptotracker_assets.services.outbox import SHARED_PACING, Pacing, deliver
from cryptotracker_assets.storage.warehouse import Warehouse, WarehouseLockedError
from resources.notifier import Notifier
from resources.warehouse import WarehouseResource

OUTBOX_SENSOR = "outbox_delivery_sensor"


def make_outbox_sensor(minimum_interval_seconds: int = 30, lock_wait_s: float = 5.0,
                       batch: int = 100, min_interval_s: float = 1.1, budget_s: float = 40.0) -> dg.SensorDefinition:
    """Every ``minimum_interval_seconds`` a delivery pass over at most ``batch`` messages. A warehouse busy for
    longer than ``lock_wait_s`` (a tick committing) when the pass starts skips this evaluation; the next one
    delivers. A message once sent is marked delivered with the warehouse's full lock wait (never re-sent because
    the file was busy for a moment). Posts to one channel are ``min_interval_s`` apart (Slack: about one per second
    per channel), a 429 holds its channel for Retry-After, and a pass takes no new message after ``budget_s``
    (the rest waits for the next evaluation, in order)."""

    # one pacing per process: a Retry-After from Slack holds its channel across evaluations too
    pacing = SHARED_PACING if min_interval_s == SHARED_PACING.min_interval_s else Pacing(min_interval_s=min_interval_s)

    @dg.sensor(name=OUTBOX_SENSOR, minimum_interval_seconds=minimum_interval_seconds,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Delivers the notification outbox (PANIC, gates, no-data closes, trades, pipeline "
                           "checks) through the notifier, at least once; a failed send stays queued and is retried.")
    def outbox_delivery_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource,
                               notifier: Notifier):
        wh = Warehouse(warehouse.path, lock_timeout_s=lock_wait_s)
        try:
            result = deliver(wh, notifier.send, limit=batch, marks=warehouse.get(),
                             pacing=pacing, budget_s=budget_s)
        except WarehouseLockedError as exc:
            return dg.SkipReason(f"warehouse busy, delivery on the next evaluation ({exc})")
        for mid, error in result.failed.items():
            context.log.warning(f"outbox: {mid} not delivered: {error}")
        return dg.SkipReason(f"outbox: {result.summary()}")

    return outbox_delivery_sensor
