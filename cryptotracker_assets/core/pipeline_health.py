"""The SPEC §13.2 pipeline checks as pure rules (never imports dagster, no SQL): a failed ingest run in 24 h, a run
in progress for longer than ``data.health.max_run_min``, and the engine behind the stored bars by more than
``data.health.max_engine_lag_cycles`` cycle points — naming how far, and why when the market symbol's bars stopped.

Each rule returns a :class:`Finding`: passed or not, a description and metadata for the check result, and when it
fails ONE alert for ``notifications.channels.alerts``. The alert's message id is derived from what identifies the
problem — the newest failed run, the set of long runs, the engine's cursor — never from the clock, so a re-run of the
check while nothing changed queues no duplicate (the outbox skips a stored id).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .config import Config
from .engine_records import OUTBOX_COLUMNS, UTC_NS, empty_outbox, message_id

# SPEC §13.2 "a failed ingest run in 24 h": the span is part of the rule (like the 24 h of the unhealed-gap rule),
# not a default of SPEC §14.
FAILED_RUN_WINDOW = pd.Timedelta(hours=24)
_WINDOW_H = f"{FAILED_RUN_WINDOW / pd.Timedelta(hours=1):g} h"

INGEST_FAILED = "ingest_run_failed"
LONG_RUN = "long_run"
ENGINE_LAG = "engine_lag"
ALERTS_CHANNEL_KEY = "alerts"  # the key of notifications.channels the alerts go to (SPEC §12.1 #system-alerts)


@dataclass(frozen=True)
class RunInfo:
    """What the checks need of a Dagster run record (times tz-aware UTC)."""

    run_id: str
    job_name: str
    status: str
    partition: str | None
    created: pd.Timestamp
    started: pd.Timestamp | None = None
    ended: pd.Timestamp | None = None

    @property
    def short_id(self) -> str:
        return self.run_id[:8]


@dataclass(frozen=True)
class Finding:
    """The outcome of one pipeline rule."""

    passed: bool
    description: str
    metadata: dict[str, Any]
    alert: dict[str, Any] | None = None  # the note for the outbox (None when passed)
    identity: dict[str, Any] = field(default_factory=dict)  # what the alert's message id is derived from


def run_link(cfg: Config, run_id: str) -> str:
    """The run's page in the Dagster UI (SPEC §12.1: run failures link from ``notifications.webserver_url``)."""
    return f"{cfg.notifications.webserver_url.rstrip('/')}/runs/{run_id}"


def _ts(t: pd.Timestamp | None) -> str | None:
    return None if t is None else f"{pd.Timestamp(t).tz_convert('UTC'):%Y-%m-%d %H:%M:%S} UTC"


def _minutes(d: pd.Timedelta) -> float:
    return round(d / pd.Timedelta(minutes=1), 1)


def _alert(cfg: Config, kind: str, at: pd.Timestamp, text: str, identity: Mapping[str, Any], **fields: Any) -> dict:
    return {"kind": kind, "cycle_point": pd.Timestamp(at).tz_convert("UTC"),
            "channel": getattr(cfg.notifications.channels, ALERTS_CHANNEL_KEY), "text": text, **fields,
            "identity": dict(identity)}


# --- a failed ingest run in 24 h --------------------------------------------------------------------------------


def failed_ingest_runs(runs: Iterable[RunInfo], job_name: str, now: pd.Timestamp, cfg: Config) -> Finding:
    """FAIL when a run of ``job_name`` failed (ended FAILURE) within :data:`FAILED_RUN_WINDOW`; the alert names
    every such run (partition, end time, link) and is identified by the newest one: a new failure alerts again, an
    old one ageing out of the window does not."""
    since = now - FAILED_RUN_WINDOW
    failed = sorted((r for r in runs if r.job_name == job_name and r.status == "FAILURE"
                     and (r.ended or r.started or r.created) >= since),
                    key=lambda r: (r.ended or r.started or r.created, r.run_id))
    listing = [{"run_id": r.run_id, "partition": r.partition, "ended": _ts(r.ended or r.started or r.created),
                "link": run_link(cfg, r.run_id)} for r in failed]
    meta = {"job": job_name, "failed_runs": len(failed), "window_h": FAILED_RUN_WINDOW / pd.Timedelta(hours=1),
            "runs": listing}
    if not failed:
        return Finding(True, f"{job_name}: no failed run in the last {_WINDOW_H}", meta)
    newest = failed[-1]
    text = (f"{job_name}: {len(failed)} failed ingest run(s) in the last {_WINDOW_H} — "
            + "; ".join(f"run {r.short_id} (partition {r.partition or '-'}, failed {_ts(r.ended or r.created)}) "
                        f"{run_link(cfg, r.run_id)}" for r in failed[-10:]))
    identity = {"job": job_name, "newest_failed_run": newest.run_id}
    alert = _alert(cfg, INGEST_FAILED, newest.ended or newest.created, text, identity, job=job_name,
                   runs=[r.run_id for r in failed])
    return Finding(False, text, meta, alert, identity)


# --- a run > data.health.max_run_min --------------------------------------------------------------------------


def long_runs(runs: Iterable[RunInfo], now: pd.Timestamp, cfg: Config, exclude: Sequence[str] = ()) -> Finding:
    """FAIL when a run in progress (``runs`` are the unfinished ones) has been going for longer than
    ``data.health.max_run_min`` since it started (since it was created when it has not started yet). The alert
    is identified by the set of such runs: a run that becomes long alerts again, one still running does not."""
    limit = pd.Timedelta(minutes=cfg.data.health.max_run_min)
    long = []
    for r in runs:
        if r.run_id in exclude:
            continue
        since = r.started or r.created
        if now - since > limit:
            long.append((r, now - since))
    long.sort(key=lambda x: (x[0].started or x[0].created, x[0].run_id))
    listing = [{"run_id": r.run_id, "job": r.job_name, "partition": r.partition, "status": r.status,
                "since": _ts(r.started or r.created), "running_min": _minutes(d), "link": run_link(cfg, r.run_id)}
               for r, d in long]
    meta = {"long_runs": len(long), "limit_min": cfg.data.health.max_run_min, "runs": listing}
    if not long:
        return Finding(True, f"no run in progress for longer than {cfg.data.health.max_run_min} min", meta)
    text = (f"{len(long)} run(s) in progress for longer than data.health.max_run_min = "
            f"{cfg.data.health.max_run_min} min — "
            + "; ".join(f"{r.job_name} run {r.short_id} (partition {r.partition or '-'}, {r.status} since "
                        f"{_ts(r.started or r.created)}, {_minutes(d):g} min) {run_link(cfg, r.run_id)}"
                        for r, d in long[:10]))
    identity = {"runs": sorted(r.run_id for r, _ in long)}
    first = long[0][0]
    alert = _alert(cfg, LONG_RUN, first.started or first.created, text, identity, runs=identity["runs"])
    return Finding(False, text, meta, alert, identity)


# --- engine behind by > data.health.max_engine_lag_cycles cycle points ------------------------------------------


def engine_lag(cursor: pd.Timestamp | None, newest_bars: Mapping[str, pd.Timestamp], now: pd.Timestamp,
               cfg: Config) -> Finding:
    """The engine's cursor (its last processed cycle point) against the newest cycle point the stored base bars
    allow: T = the newest multiple of ``engine.cycle_min`` at or before both ``now`` and the data horizon (the
    close of the newest stored base bar of any symbol: at T the engine uses bars opening before T). FAIL when
    (T − cursor) / cycle_min > ``data.health.max_engine_lag_cycles``. When the market symbol is stale at T (its
    newest bar opens before T − ``engine.max_bar_lag_min``, SPEC §0.2) the alert says its bars stopped arriving
    and since when. An engine that has not processed a cycle point yet is not behind. The alert is identified by
    the cursor (and the market symbol's newest bar): while the engine stays stuck, one alert."""
    step = pd.Timedelta(minutes=cfg.engine.cycle_min)
    bar = pd.Timedelta(minutes=cfg.engine.base_timeframe.minutes)
    limit = cfg.data.health.max_engine_lag_cycles
    market = cfg.universe.market_symbol
    meta: dict[str, Any] = {"cursor": _ts(cursor), "limit_cycle_points": limit, "cycle_min": cfg.engine.cycle_min,
                            "market_symbol": market, "market_newest_bar": _ts(newest_bars.get(market))}
    if not newest_bars:
        return Finding(True, "no base bars stored: nothing for the engine to process", {**meta, "lag_cycle_points": 0})
    horizon = max(newest_bars.values()) + bar
    target = min(now, horizon).floor(step)
    meta.update({"data_horizon": _ts(horizon), "newest_cycle_point": _ts(target)})
    if cursor is None:
        return Finding(True, "the engine has not processed a cycle point yet", {**meta, "lag_cycle_points": 0})
    lag = max(0, int((target - cursor) // step))
    meta.update({"lag_cycle_points": lag, "lag_min": _minutes(max(target - cursor, pd.Timedelta(0)))})
    newest_market = newest_bars.get(market)
    market_stale = newest_market is None or newest_market < target - pd.Timedelta(minutes=cfg.engine.max_bar_lag_min)
    if market_stale:
        why = (f"no {market} bars are stored" if newest_market is None else
               f"{market} bars stopped arriving: its newest bar opens {_ts(newest_market)}, the other symbols' "
               f"bars reach {_ts(horizon)}")
        meta["reason"] = why
    else:
        why = None
    if lag <= limit:
        return Finding(True, f"the engine is {lag} cycle point(s) behind the stored bars (limit {limit})", meta)
    text = (f"paper engine behind by {lag} cycle points ({_minutes(target - cursor):g} min): its last processed "
            f"cycle point is {_ts(cursor)}, the stored {cfg.engine.base_timeframe.value} bars allow "
            f"{_ts(target)} (data.health.max_engine_lag_cycles = {limit})" + (f"; {why}" if why else ""))
    identity = {"cursor": _ts(cursor), "market_newest_bar": _ts(newest_market) if market_stale else None}
    alert = _alert(cfg, ENGINE_LAG, cursor, text, identity, cursor=_ts(cursor), newest_cycle_point=_ts(target),
                   lag_cycle_points=lag, reason=why)
    return Finding(False, text, meta, alert, identity)


# --- the outbox rows --------------------------------------------------------------------------------------------


def alert_rows(findings: Iterable[Finding]) -> pd.DataFrame:
    """Outbox rows (the columns of :func:`~.engine_records.outbox_rows`) of the failing findings: one message each,
    its id ``{kind}_{yymmddHHMM}_{hash}`` from the kind, the time it is about and its identity."""
    rows = []
    for f in findings:
        if f.alert is None:
            continue
        a = f.alert
        mid = message_id({"kind": a["kind"], "cycle_point": a["cycle_point"], **f.identity})
        payload = {k: v for k, v in a.items() if k not in ("cycle_point", "channel")}
        rows.append({"message_id": mid, "cycle_point": a["cycle_point"], "kind": a["kind"],
                     "channel_key": ALERTS_CHANNEL_KEY, "channel": a["channel"], "text": a["text"],
                     "payload_json": json.dumps({**payload, "cycle_point": _ts(a["cycle_point"])}, sort_keys=True,
                                                default=str)})
    if not rows:
        return empty_outbox()
    frame = pd.DataFrame(rows, columns=list(OUTBOX_COLUMNS))
    frame["cycle_point"] = frame["cycle_point"].astype(UTC_NS)
    return frame

