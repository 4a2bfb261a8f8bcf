"""The warehouse on both backends in the same run (issue 14): DuckDB (a file) and PostgreSQL (a fresh database on
127.0.0.1:5432, dropped afterwards; skipped with a reason when no server answers), with the ratio PG / DuckDB:

1. ingest one UTC day × 99 symbols of 1m bars (the slice replace: one transaction, COPY on PostgreSQL);
2. "last 7 days of 1m bars for 90 symbols" into pandas;
3. one engine tick commit (97 symbols × 3 strategies of scan rows, 20 ledger rows, a snapshot, the day's state, the
   limiter rows, 5 messages, the tick record) with its cursor check.

Each is the median of several runs on an open connection (the way a run's step or the engine uses it).
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from cryptotracker_assets.core.config import load_config
from cryptotracker_assets.core.engine_records import TickRecord
from cryptotracker_assets.core.ohlc import STORED_COLUMNS, flag_suspect, validate_ohlc
from cryptotracker_assets.core.universe import Universe
from cryptotracker_assets.storage.engine import DayState
from cryptotracker_assets.storage.warehouse import Warehouse

from .bench_ingest import generate

DAY = pd.Timestamp("2026-06-01", tz="UTC")
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "test"}


def median(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def week_of_bars(u: Universe, cfg) -> list[pd.DataFrame]:
    now = pd.Timestamp.now(tz="UTC").as_unit("ns")
    days = []
    for d in range(7):
        day = DAY + pd.Timedelta(days=d)
        v = validate_ohlc(generate(u, u.symbols, day), "1m", partition=f"{day:%Y-%m-%d}", now=now)
        clean = v.clean.assign(ingested_at=now)
        clean["suspect"] = flag_suspect(clean, cfg.data.health.extreme_move).to_numpy()
        days.append(clean[STORED_COLUMNS])
    return days


def tick_frames(i: int, symbols: list[str]):
    t = DAY + pd.Timedelta(minutes=5 * (i + 1))
    rng = np.random.default_rng(i)
    n = len(symbols) * 3
    scan = pd.DataFrame({"scan_id": [f"S{i}_{k}" for k in range(n)], "timestamp": pd.Series([t] * n),
                         "symbol": (symbols * 3)[:n], "strategy": ["DCA", "SWING", "CHANNEL"] * len(symbols),
                         **{f"f{j}": rng.random(n) for j in range(36)}, "decision": ["SKIP"] * n})
    ledger = pd.DataFrame({"trade_group_id": [f"G{i}_{k}" for k in range(20)], "cycle_point": pd.Series([t] * 20),
                           "side": ["BUY"] * 20, "level": np.zeros(20, dtype="int64"),
                           **{c: rng.random(20) for c in ("price", "qty", "size_usd", "fee_usd", "pnl_usd")}})
    snap = pd.DataFrame({"cycle_point": pd.Series([t]), "cash": [9_000.0], "mark_equity": [9_990.5]})
    box = pd.DataFrame({"message_id": [f"m_{i}_{k}" for k in range(5)], "cycle_point": pd.Series([t] * 5),
                        "kind": ["closed"] * 5, "channel_key": ["trades"] * 5, "channel": ["#trades"] * 5,
                        "text": ["x"] * 5, "payload_json": ["{}"] * 5})
    limiter = pd.DataFrame({"day": pd.Series([DAY]), "cursor": pd.Series([t]), "symbol": ["ETH"], "stops": [0],
                            "cooldown_until": pd.Series([pd.NaT], dtype="datetime64[ns, UTC]"),
                            "banned_until": pd.Series([pd.NaT], dtype="datetime64[ns, UTC]")})
    state = DayState(day=DAY, cursor=t, state_json="{}", watermark=t, config_version=1, limiter=limiter)
    record = TickRecord(first_cycle_point=t, last_cycle_point=t, cycle_points=1, watermark=t, config_version=1,
                        ledger_rows=20, scan_rows=n, messages=5)
    return t, {"scan_history": scan, "paper_trades": ledger, "portfolio_snapshots": snap}, state, record, box


def measure(wh: Warehouse, u: Universe, week: list[pd.DataFrame]) -> dict[str, float]:
    out = {}
    with wh:
        wh.engine_state()  # open + schema
        for d, bars in enumerate(week):
            day = DAY + pd.Timedelta(days=d)
            wh.replace_bars("1m", bars, day, day + pd.Timedelta(days=1), u.symbols)
        last = week[-1]
        out["ingest"] = median(lambda: wh.replace_bars("1m", last, DAY + pd.Timedelta(days=6),
                                                        DAY + pd.Timedelta(days=7), u.symbols), 3)
        syms = u.symbols[:90]
        out["query"] = median(lambda: wh.read_bars("1m", DAY, DAY + pd.Timedelta(days=7), syms), 3)
        out["rows"] = len(wh.read_bars("1m", DAY, DAY + pd.Timedelta(days=7), syms))
        previous = wh.engine_state()["cursor"] if wh.engine_state() else None
        times = []
        for i in range(7):
            t, appends, state, record, box = tick_frames(i, u.active_symbols[:97])
            t0 = time.perf_counter()
            wh.commit_tick(appends, states=[state], previous_cursor=previous, committed_at=t, tick=record,
                           outbox=box)
            times.append(time.perf_counter() - t0)
            previous = t
        out["tick"] = statistics.median(times[1:])  # the first creates the tables
    return out


def main() -> None:
    cfg = load_config()
    u = Universe.from_config(cfg)
    week = week_of_bars(u, cfg)
    print(f"bars: {sum(len(b) for b in week):,} (99 symbols × 7 UTC days of 1m); one day {len(week[-1]):,}")
    with tempfile.TemporaryDirectory() as tmp:
        duck = measure(Warehouse(Path(tmp) / "w.duckdb", keep_open=True), u, week)
    try:
        import psycopg2

        admin = psycopg2.connect(**PG, connect_timeout=3)
    except Exception as exc:
        print(f"PostgreSQL skipped: no server at 127.0.0.1:5432 ({exc})")
        pg = None
    else:
        admin.autocommit = True
        name = f"ct_bench_{uuid.uuid4().hex[:8]}"
        admin.cursor().execute(f"CREATE DATABASE {name}")
        try:
            pg = measure(Warehouse(f"postgresql://postgres@127.0.0.1:5432/{name}", keep_open=True), u, week)
        finally:
            admin.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            admin.close()
    print(f"{'':44} {'DuckDB':>9} {'PostgreSQL':>11} {'PG / DuckDB':>12}")
    for key, label in (("ingest", "ingest 1 day × 99 symbols of 1m (replace)"),
                       ("query", f"last 7 d × 90 symbols into pandas ({duck['rows']:,} rows)"),
                       ("tick", "one engine tick commit")):
        p = f"{pg[key]:>10.3f}s {pg[key] / duck[key]:>11.1f}×" if pg else f"{'n/a':>11} {'n/a':>12}"
        print(f"{label:44} {duck[key]:>8.3f}s {p}")
