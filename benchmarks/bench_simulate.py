"""`simulate` benchmark: 100 symbols × 43,200 1m bars (4.32M bars), 10,000 entries, vs vectorbt in the same run.

The workload (seeded random-walk bars, SWING/DCA exit cells of the config with the tier's costs) is written once to a
temporary .npz. Each side then runs in a fresh subprocess, so the cold number includes interpreter start, imports
and the first call (vectorbt: its numba JIT compilation); warm numbers are the best of several repeated calls in
that process. vectorbt is a bench-only dependency living in its own venv (``.venv-bench``, see
``benchmarks/requirements-vectorbt.txt``); without it only our numbers are printed, with the commands to create it.

This file also runs as a plain script inside the bench venv (``python bench_simulate.py --child vectorbt ...``),
so it imports nothing of the project at module level.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

N_SYMBOLS = 100
N_BARS = 43_200  # 30 days of 1m bars
N_ENTRIES = 10_000
SEED = 20250828
REPEATS = 5
START = "2025-01-01T00:00:00Z"

ROOT = Path(__file__).resolve().parent.parent
BENCH_VENV = ROOT / ".venv-bench"
BENCH_PYTHON = BENCH_VENV / "bin" / "python"
REQUIREMENTS = Path(__file__).resolve().parent / "requirements-vectorbt.txt"
# 1m log-return volatility per tier (realistic orders of magnitude for liquid → meme coins).
_SIGMA = {"large_cap": 0.0007, "mid_cap": 0.0010, "small_cap": 0.0015, "memecoin": 0.0022}
_TIER_COUNTS = {"large_cap": 20, "mid_cap": 35, "small_cap": 30, "memecoin": 15}


def make_workload(path: Path) -> dict:
    """Write the seeded workload to ``path`` (.npz) and return a short description."""
    import numpy as np

    from cryptotracker_assets.core.config import Strategy, load_config
    from cryptotracker_assets.core.exits import ExitRule

    cfg = load_config()
    rng = np.random.default_rng(SEED)
    tiers = [t for t, k in _TIER_COUNTS.items() for _ in range(k)]
    sigma = np.array([_SIGMA[t] for t in tiers])[:, None]
    steps = rng.standard_normal((N_SYMBOLS, N_BARS)) * sigma
    close = rng.uniform(0.5, 500.0, (N_SYMBOLS, 1)) * np.exp(np.cumsum(steps, axis=1))
    opens = np.empty_like(close)
    opens[:, 0] = close[:, 0] * np.exp(-steps[:, 0])
    opens[:, 1:] = close[:, :-1]
    wick = np.abs(rng.standard_normal((2, N_SYMBOLS, N_BARS))) * sigma * 0.6
    high = np.maximum(opens, close) * np.exp(wick[0])
    low = np.minimum(opens, close) * np.exp(-wick[1])

    sym = rng.integers(0, N_SYMBOLS, N_ENTRIES)
    bar = rng.integers(0, N_BARS - 60, N_ENTRIES)
    strategies = np.where(rng.random(N_ENTRIES) < 0.5, "SWING", "DCA")
    cols = {
        k: np.empty(N_ENTRIES)
        for k in ("take_profit", "stop_loss", "trailing", "trail_activation", "max_hold_minutes", "fee", "slippage")
    }
    for i in range(N_ENTRIES):
        tier = tiers[sym[i]]
        rule = ExitRule.from_config(cfg, Strategy(strategies[i]), tier)
        cols["take_profit"][i] = rule.take_profit
        cols["stop_loss"][i] = rule.stop_loss
        cols["trailing"][i] = rule.trailing
        cols["trail_activation"][i] = rule.trail_activation
        cols["max_hold_minutes"][i] = rule.max_hold_minutes
        cols["fee"][i] = cfg.costs.taker_fee
        cols["slippage"][i] = cfg.costs.slippage.of(tier)
    np.savez(path, open=opens, high=high, low=low, close=close, entry_symbol=sym, entry_bar=bar, **cols)
    return {"tiers": _TIER_COUNTS, "sigma_1m": _SIGMA, "strategies": "SWING/DCA cells, 50/50"}


# ---------------------------------------------------------------------------------------------------------------
# Children (fresh processes)
# ---------------------------------------------------------------------------------------------------------------


def _child_ours(path: str, spawned: float) -> dict:
    started = time.time()
    t = time.perf_counter()
    import numpy as np
    import pandas as pd

    from cryptotracker_assets.core.exits import BarArrays, simulate_exits

    import_s = time.perf_counter() - t
    t = time.perf_counter()
    w = np.load(path)
    n_sym, n_bars = w["close"].shape
    stamps = pd.date_range(START, periods=n_bars, freq="1min")
    names = [f"S{i:03d}" for i in range(n_sym)]
    bars = pd.DataFrame(
        {
            "symbol": pd.Categorical(np.repeat(names, n_bars), categories=names),
            "timestamp": np.tile(stamps, n_sym),
            "open": w["open"].ravel(),
            "high": w["high"].ravel(),
            "low": w["low"].ravel(),
            "close": w["close"].ravel(),
            "volume": np.ones(n_sym * n_bars),
        }
    )
    entries = pd.DataFrame(
        {
            "entry_id": np.arange(len(w["entry_bar"])).astype(str),
            "symbol": np.array(names)[w["entry_symbol"]],
            "entry_time": stamps[w["entry_bar"]],
            "size_usd": 100.0,
            **{
                k: w[k]
                for k in (
                    "take_profit",
                    "stop_loss",
                    "trailing",
                    "trail_activation",
                    "max_hold_minutes",
                    "fee",
                    "slippage",
                )
            },
        }
    )
    build_s = time.perf_counter() - t
    t = time.perf_counter()
    trades = simulate_exits(bars, entries, 1)
    first_s = time.perf_counter() - t
    warm_df = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        simulate_exits(bars, entries, 1)
        warm_df.append(time.perf_counter() - t)
    t = time.perf_counter()
    arrays = BarArrays.from_frame(bars)
    layout_s = time.perf_counter() - t
    warm_arr = []
    for _ in range(REPEATS):
        arrays._blocks.clear()  # block statistics are part of the work
        t = time.perf_counter()
        simulate_exits(arrays, entries, 1)
        warm_arr.append(time.perf_counter() - t)
    held = (trades["exit_time"] - trades["entry_time"]).dt.total_seconds() / 60 + 1
    return {
        "startup_s": started - spawned,
        "import_s": import_s,
        "build_s": build_s,
        "first_s": first_s,
        "warm_df_s": warm_df,
        "layout_s": layout_s,
        "warm_arrays_s": warm_arr,
        "trades": len(trades),
        "bars_held": float(held.sum()),
        "reasons": trades["exit_reason"].value_counts().to_dict(),
    }


def _child_vectorbt(path: str, spawned: float) -> dict:
    started = time.time()
    t = time.perf_counter()
    import numpy as np
    import pandas as pd
    import vectorbt as vbt

    import_s = time.perf_counter() - t
    t = time.perf_counter()
    w = np.load(path)
    n_sym, n_bars = w["close"].shape
    index = pd.date_range(START, periods=n_bars, freq="1min")

    def wide(a):
        return pd.DataFrame(np.ascontiguousarray(a.T), index=index, columns=[f"S{i:03d}" for i in range(n_sym)])

    o, h, lo, c = (wide(w[k]) for k in ("open", "high", "low", "close"))
    sig = np.zeros((n_bars, n_sym), dtype=bool)
    sig[w["entry_bar"], w["entry_symbol"]] = True
    # Per-entry stops as full arrays (NaN elsewhere is not allowed: fill each column's last entry value forward).
    sl = np.full((n_bars, n_sym), np.nan)
    tp = np.full((n_bars, n_sym), np.nan)
    sl[w["entry_bar"], w["entry_symbol"]] = w["stop_loss"]
    tp[w["entry_bar"], w["entry_symbol"]] = w["take_profit"]
    sl = pd.DataFrame(sl).ffill().bfill().to_numpy()
    tp = pd.DataFrame(tp).ffill().bfill().to_numpy()
    slip = np.full((1, n_sym), np.nan)
    slip[0, w["entry_symbol"]] = w["slippage"]
    slip = np.nan_to_num(slip, nan=0.0)
    entries = pd.DataFrame(sig, index=index, columns=c.columns)
    kwargs = dict(
        entries=entries,
        exits=False,
        open=o,
        high=h,
        low=lo,
        price=o,
        sl_stop=sl,
        tp_stop=tp,
        fees=float(w["fee"][0]),
        slippage=slip,
        size=100.0,
        size_type="value",
        init_cash=1e12,
        freq="1min",
    )
    build_s = time.perf_counter() - t
    t = time.perf_counter()
    pf = vbt.Portfolio.from_signals(c, **kwargs)
    first_s = time.perf_counter() - t
    warm = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        pf = vbt.Portfolio.from_signals(c, **kwargs)
        warm.append(time.perf_counter() - t)
    return {
        "startup_s": started - spawned,
        "import_s": import_s,
        "build_s": build_s,
        "first_s": first_s,
        "warm_s": warm,
        "trades": int(pf.trades.count().sum()),
        "version": vbt.__version__,
    }


def _spawn(python: str, side: str, path: Path) -> dict:
    # An empty numba cache directory, so vectorbt's first call pays its real JIT compilation (not a warm disk cache).
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NUMBA_CACHE_DIR": str(path.parent / f"numba_cache_{side}")}
    spawned = time.time()
    t = time.perf_counter()
    script = (
        [python, str(Path(__file__).resolve())] if side == "vectorbt" else [python, "-m", "benchmarks.bench_simulate"]
    )
    proc = subprocess.run(
        [*script, "--child", side, str(path), repr(spawned)], cwd=ROOT, env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{side} child failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall_s"] = wall
    out["cold_s"] = out["startup_s"] + out["import_s"] + out["first_s"]
    return out


def bench_venv_instructions() -> str:
    return (
        f"  python3.11 -m venv {BENCH_VENV}\n"
        f"  {BENCH_PYTHON} -m pip install --upgrade pip\n"
        f"  {BENCH_PYTHON} -m pip install -r {REQUIREMENTS}"
    )


def main() -> None:
    print(f"workload: {N_SYMBOLS} symbols × {N_BARS:,} 1m bars = {N_SYMBOLS * N_BARS:,} bars, {N_ENTRIES:,} entries")
    with tempfile.TemporaryDirectory(prefix="bench_simulate_") as tmp:
        path = Path(tmp) / "workload.npz"
        t = time.perf_counter()
        desc = make_workload(path)
        print(
            f"  generated in {time.perf_counter() - t:.1f} s (seed {SEED}; {desc['strategies']}; tiers {desc['tiers']})"
        )
        ours = _spawn(sys.executable, "ours", path)
        best_df, best_arr = min(ours["warm_df_s"]), min(ours["warm_arrays_s"])
        print("cryptotracker simulate_exits (numpy, no JIT):")
        print(
            f"  cold (fresh process: start + imports {ours['import_s']:.2f} s"
            f" + first call {ours['first_s']:.3f} s) = {ours['cold_s']:.2f} s"
        )
        print(f"  warm, from the long DataFrame (layout + simulation): {best_df:.3f} s (best of {REPEATS})")
        print(
            f"  warm, from prepared BarArrays (simulation only):     {best_arr:.3f} s"
            f" (layout alone {ours['layout_s']:.3f} s)"
        )
        print(f"  {ours['trades']:,} trades, {ours['bars_held']:,.0f} bars held in total; reasons {ours['reasons']}")
        if not BENCH_PYTHON.exists():
            print(
                f"vectorbt: bench venv missing ({BENCH_VENV}); no ratio. Create it with:\n{bench_venv_instructions()}"
            )
            return
        vbt = _spawn(str(BENCH_PYTHON), "vectorbt", path)
        vwarm = min(vbt["warm_s"])
        compile_s = vbt["first_s"] - vwarm
        print(f"vectorbt {vbt['version']} Portfolio.from_signals (sl_stop/tp_stop, entry at open, per-entry stops):")
        print(
            f"  cold (fresh process: start + imports {vbt['import_s']:.2f} s"
            f" + first call {vbt['first_s']:.2f} s) = {vbt['cold_s']:.2f} s"
        )
        print(
            f"  warm: {vwarm:.3f} s (best of {REPEATS}); first-call JIT compile ≈ {compile_s:.1f} s (empty numba cache)"
        )
        print(f"  {vbt['trades']:,} trades (one position per symbol at a time: overlapping entries are ignored)")
        print("ratio (vectorbt / cryptotracker; > 1 = we are faster):")
        print(f"  warm, DataFrame end to end: {vwarm / best_df:.2f}×   warm, simulation only: {vwarm / best_arr:.2f}×")
        print(f"  cold: {vbt['cold_s'] / ours['cold_s']:.2f}×")


def _child_main(argv: list[str]) -> None:
    side, path, spawned = argv[1], argv[2], float(argv[3])
    result = _child_ours(path, spawned) if side == "ours" else _child_vectorbt(path, spawned)
    print(json.dumps(result))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child_main(sys.argv[1:])
    else:
        main()
