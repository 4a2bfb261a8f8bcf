"""Replay benchmark (issue 10): the backtest end to end — scan features → market regime → scan → engine → one
commit per UTC day — over 97 active symbols of stored 1m bars, streamed chunk by chunk.

A source warehouse is filled with the synthetic market (5 warm-up days + 30 days, 99 symbols); then
``services.replay.replay`` runs over 10 days and over 30 days, each in a fresh process that reports its own wall
time and peak RSS (streaming: the peak must be the same at 10 and 30 days). Printed: seconds per stage, ms per
cycle point, the extrapolated year (the 10-day run's time plus the marginal cost per cycle point between the two
runs × the rest of the 105,120 cycle points; goal < 10 min and < 3 GB on this 2-core machine), the
output size per day, and the engine core against the pre-issue-10 method measured in the same run: the portfolio
state rebuilt from the ledger at every cycle point (``run_engine(verify=True)`` does that work on top of the
incremental state, so the ratio is a lower bound of the speed-up).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from cryptotracker_assets.core.config import load_config
from cryptotracker_assets.core.ohlc import STORED_COLUMNS, flag_suspect
from cryptotracker_assets.core.universe import Universe
from cryptotracker_assets.storage.warehouse import Warehouse
from resources.sources import SyntheticBars

START = pd.Timestamp("2026-03-02", tz="UTC")
DAYS = (10, 30)
WARMUP_DAYS = 5
YEAR_POINTS = 365 * 288
GOAL_S, GOAL_GB = 600.0, 3.0


def fill_source(path: Path, days: int) -> int:
    """``days`` UTC days from START (plus the warm-up before it) of synthetic 1m bars for every universe symbol."""
    cfg = load_config()
    u = Universe.from_config(cfg)
    src = SyntheticBars(u.market_symbol, u.tier(u.market_symbol))
    wh = Warehouse(path)
    n = 0
    for d in pd.date_range(START - pd.Timedelta(days=WARMUP_DAYS), periods=days + WARMUP_DAYS, freq="1D"):
        bars = pd.concat([src.fetch(s, u.tier(s), "1m", d, d + pd.Timedelta(days=1)) for s in u.symbols],
                         ignore_index=True)
        bars["suspect"] = flag_suspect(bars, cfg.data.health.extreme_move).to_numpy()
        bars["ingested_at"] = bars["timestamp"] + pd.Timedelta(minutes=1)
        wh.upsert_bars("1m", bars[STORED_COLUMNS]) if n else wh.replace_bars(
            "1m", bars[STORED_COLUMNS], d, d + pd.Timedelta(days=1))
        n += len(bars)
    return n


def tree_rss_mb(root: int) -> float:
    """Resident memory (MB) of ``root`` and all its descendants now, from /proc (Linux)."""
    parent: dict[int, int] = {}
    rss: dict[int, float] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            status = (d / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        parent[int(d.name)] = int(fields.get("PPid", "0").strip() or 0)
        rss[int(d.name)] = float(fields.get("VmRSS", "0 kB").split()[0]) / 1024
    tree, grew = {root}, True
    while grew:
        more = {p for p, pp in parent.items() if pp in tree} - tree
        tree |= more
        grew = bool(more)
    return sum(rss.get(p, 0.0) for p in tree)


def child(source: str, out: str, days: int, workers: int) -> None:
    """One replay in this process; prints a JSON line with its timings and peak RSS."""
    from cryptotracker_assets.services.replay import ConfigSegment, replay

    cfg = load_config()
    t0 = time.perf_counter()
    rep = replay(Warehouse(source), Warehouse(out), [ConfigSegment(START, cfg)], START,
                 START + pd.Timedelta(days=days), fresh=True, workers=workers)
    wall = time.perf_counter() - t0
    peak_mb = sum(rep.peak_mb.values())  # main + worker + writer: their peaks added, an upper bound of the total
    print(json.dumps({"days": rep.days, "points": rep.cycle_points, "wall": wall, "stages": rep.seconds,
                      "peak_mb": peak_mb, "peaks": rep.peak_mb, "ledger_rows": rep.ledger_rows, "scan_rows": rep.scan_rows,
                      "out_mb": os.path.getsize(out) / 2**20,
                      "trades": rep.performance.closed_trades if rep.performance else 0}))


def engine_baseline(source: str) -> tuple[float, float, int]:
    """The engine core over one day of the replay's inputs: incremental portfolio vs also rebuilding it from the
    ledger at every cycle point (the pre-issue-10 method). Returns (ms per point, ms per point verify, points)."""
    from cryptotracker_assets.core.engine import BarStore, EngineInputs, EngineState, run_engine
    from cryptotracker_assets.core.regime import build_market_regime
    from cryptotracker_assets.core.setups import scan_features, scan_from_features
    from cryptotracker_assets.core.watermarks import derived_span

    cfg = load_config()
    u = Universe.from_config(cfg)
    a, b = START + pd.Timedelta(days=3), START + pd.Timedelta(days=4)
    bars = Warehouse(source).read_bars("1m", a - derived_span(cfg), b, u.symbols)
    feats = scan_features(bars, cfg, start=a, end=b, symbols=u.active_symbols)
    regime, _ = build_market_regime(bars, cfg, start=a, end=b)
    scan = scan_from_features(feats, regime, cfg, start=a, end=b, symbols=u.active_symbols)
    store = BarStore.from_frame(bars)
    pts = pd.date_range(a, b - pd.Timedelta(minutes=5), freq="5min", tz="UTC")
    inputs = EngineInputs(cfg, store, regime, scan_rows=scan)
    times = {}
    for verify in (False, True, False):
        t0 = time.perf_counter()
        run_engine(EngineState(), inputs, pts, verify=verify)
        times[verify] = min(times.get(verify, 1e9), time.perf_counter() - t0)
    return 1000 * times[False] / len(pts), 1000 * times[True] / len(pts), len(pts)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        source = str(Path(tmp) / "source.duckdb")
        t0 = time.perf_counter()
        n = fill_source(Path(source), max(DAYS))
        print(f"source: {n:,} synthetic 1m bars, 99 symbols × {max(DAYS) + WARMUP_DAYS} days "
              f"({time.perf_counter() - t0:.0f} s to generate and store)")
        runs = {}
        for days in DAYS:
            out = str(Path(tmp) / f"replay_{days}.duckdb")
            proc = subprocess.Popen([sys.executable, "-m", "benchmarks.bench_replay", "child", source, out,
                                     str(days), "1"], stdout=subprocess.PIPE, text=True)
            total = 0.0
            while proc.poll() is None:  # the whole process tree's resident memory, sampled
                total = max(total, tree_rss_mb(proc.pid))
                time.sleep(0.1)
            runs[days] = json.loads(proc.stdout.read().strip().splitlines()[-1])
            runs[days]["tree_mb"] = total
        for days, r in runs.items():
            stages = ", ".join(f"{k} {v:.1f}" for k, v in r["stages"].items())
            print(f"replay {days} days: {r['points']:,} cycle points in {r['wall']:.1f} s = "
                  f"{1000 * r['wall'] / r['points']:.2f} ms per cycle point (s: {stages}); peak RSS "
                  f"{r['tree_mb']:.0f} MB for the whole process tree (peaks per process: "
                  + ", ".join(f"{k} {v:.0f}" for k, v in r["peaks"].items()) + " MB); "
                  f"{r['trades']} closed trades, {r['ledger_rows']:,} ledger rows, "
                  f"{r['scan_rows']:,} scan rows, output {r['out_mb']:.0f} MB")
        r, r0 = runs[max(DAYS)], runs[min(DAYS)]
        # fixed cost (process start, first chunk) + the marginal cost per cycle point from the two runs
        marginal = (r["wall"] - r0["wall"]) / (r["points"] - r0["points"])
        year = r0["wall"] + marginal * (YEAR_POINTS - r0["points"])
        peak_gb = max(x["tree_mb"] for x in runs.values()) / 1024
        print(f"peak memory at 10 vs 30 days: {runs[10]['tree_mb']:.0f} MB vs {runs[30]['tree_mb']:.0f} MB "
              f"(main, worker and writer processes together, sampled every 0.1 s; streaming: bounded by the chunk)")
        print(f"marginal cost {1000 * marginal:.2f} ms per cycle point ({288 * marginal:.2f} s per UTC day of 97 "
              f"symbols), from the 10- and 30-day runs")
        print(f"a year extrapolated ({YEAR_POINTS:,} cycle points): {year / 60:.1f} min (goal < {GOAL_S / 60:.0f} "
              f"min: {'met' if year < GOAL_S else 'MISSED'}), peak {peak_gb:.2f} GB (goal < {GOAL_GB:.0f} GB: "
              f"{'met' if peak_gb < GOAL_GB else 'MISSED'}); output ≈ {r['out_mb'] / max(DAYS) * 365 / 1024:.1f} GB")
        inc, led, pts = engine_baseline(source)
        print(f"engine core over one day ({pts} cycle points, 97 symbols): {inc:.2f} ms per cycle point incremental "
              f"vs {led:.2f} ms rebuilding the portfolio from the ledger as well (the pre-issue-10 method) = "
              f"{led / inc:.1f}x")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        main()
