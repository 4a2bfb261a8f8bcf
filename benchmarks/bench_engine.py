"""Paper-engine benchmark (SPEC §3.1): one engine tick (one cycle point) with the 97 active symbols, the maximum of
open positions (``limits.max_open_total`` = 80, at most 40 per strategy, DCA grids included) and one new 1m bar per
symbol, every symbol × strategy a candidate (the worst case for gates, ordering and execution checks), best WAIT
(every list walked). Core time of ``run_engine`` with the tick's scan rows precomputed (they come from the setups
stage): goal < 100 ms. Also reported: the state's JSON round trip and, for scale, the tick with the engine running
the scan of that cycle point itself from 5 days of stored bars."""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from cryptotracker_assets.core import regime as R
from cryptotracker_assets.core import setups as S
from cryptotracker_assets.core.config import Strategy, load_config
from cryptotracker_assets.core.engine import EngineInputs, EngineState, LastBar, OpenPosition, run_engine
from cryptotracker_assets.core.exits import Bar, ExitRule, PositionState, step
from cryptotracker_assets.core.features import SCAN_FEATURES
from cryptotracker_assets.core.ledger import TradeMeta, grid_shape, ledger_frame, scan_id, step_rows
from cryptotracker_assets.core.setups import SCAN_ROW_COLUMNS
from cryptotracker_assets.core.universe import Universe

T = pd.Timestamp("2024-01-08T12:00:00Z")
GOAL_S = 0.100
MIN = pd.Timedelta(minutes=1)


def _best(fn: Callable[[], Any], repeat: int) -> tuple[Any, float]:
    best, result = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return result, best


def _book(cfg, symbols: list[str]) -> tuple[EngineState, pd.DataFrame]:
    """80 open groups (DCA, SWING, CHANNEL in turn) entered an hour before T, with their ledger rows."""
    uni = Universe.from_config(cfg)
    n = cfg.limits.max_open_total
    positions, rows = [], []
    e = T - 60 * MIN
    for k, sym in enumerate(symbols[:n]):
        s = (Strategy.DCA, Strategy.SWING, Strategy.CHANNEL)[k % 3]
        tier = uni.tier(sym)
        levels, spacing = grid_shape(cfg, s, tier)
        g = cfg.portfolio.position_size_usd
        st = PositionState.open(e, 10.0, g, ExitRule.from_config(cfg, s, tier), cfg.costs.taker_fee,
                                cfg.costs.slippage.of(tier), 1.0, levels=levels, spacing=spacing)
        meta = TradeMeta.for_entry(cfg, s, sym, e, scan_id(s, sym, e.floor("5min")), g)
        rows += step_rows(st, meta, e + 5 * MIN, 0)
        step(st, Bar(e, 10.0, 10.0, 10.0, 10.0))
        positions.append(OpenPosition(meta, st))
    positions.sort(key=lambda p: p.trade_group_id)
    last = {sym: LastBar(T - 2 * MIN, 10.0) for sym in symbols}
    state = EngineState(cursor=T - 5 * MIN, positions=tuple(positions), last_bars=last,
                        config_version=cfg.config_version)
    return state, ledger_frame(rows)


def _inputs(cfg, symbols: list[str]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """One new bar per symbol, the market_regime row of T and its scan rows (all candidates)."""
    rng = np.random.default_rng(3)
    px = 10.0 * (1 + rng.normal(0, 0.002, len(symbols)))
    bars = pd.DataFrame({"symbol": symbols, "timestamp": pd.DatetimeIndex([T - MIN] * len(symbols)), "open": 10.0,
                         "high": np.maximum(px, 10.0) * 1.001, "low": np.minimum(px, 10.0) * 0.999, "close": px,
                         "volume": 1.0, "suspect": False, "ingested_at": pd.DatetimeIndex([T] * len(symbols))})
    regime = pd.DataFrame([{"timestamp": T, "regime": "NORMAL", "size_multiplier": 1.0, "best_strategy": "WAIT",
                            "btc_close": 10.0, "btc_vol_24h": 0.03, "entered_panic": False,
                            **{f"{s.key}_{x}": x == "enabled" for s in Strategy for x in ("enabled", "changed")}}])
    uni = Universe.from_config(cfg)
    recs = []
    for s in Strategy:
        for k, sym in enumerate(sorted(symbols)):
            r = {c: math.nan for c in SCAN_ROW_COLUMNS}
            r.update(scan_id=scan_id(s, sym, T), timestamp=T, bar_timestamp=T - MIN, symbol=sym,
                     tier=uni.tier(sym).value, strategy=s.value, decision=None, reason=None, candidate=True,
                     setup=True, confidence=0.5 + 0.005 * (k % 50), confidence_source="rule", threshold=0.45,
                     readiness=100.0, status="BUY_ZONE" if s is Strategy.CHANNEL else "READY", price=10.0,
                     setup_value={"DCA": -0.03, "SWING": 0.02, "CHANNEL": 0.05}[s.value], setup_threshold=0.0,
                     regime="NORMAL", best_strategy="WAIT", btc_close=10.0, list_type=None,
                     config_version=cfg.config_version)
            recs.append(r)
    scan = pd.DataFrame(recs, columns=list(SCAN_ROW_COLUMNS))
    scan["timestamp"] = pd.DatetimeIndex(scan["timestamp"], dtype="datetime64[ns, UTC]")
    scan["bar_timestamp"] = pd.DatetimeIndex(scan["bar_timestamp"], dtype="datetime64[ns, UTC]")
    scan["config_version"] = scan["config_version"].astype("int64")
    for c in SCAN_FEATURES + ("volume_filter_ratio",):
        scan[c] = scan[c].astype("float64")
    return bars, regime, scan


def _stored_bars(symbols: list[str], days: int, seed: int = 5) -> pd.DataFrame:
    """Seeded 1m random walks for ``days`` days ending just before T (the scan's warm-up), with flags."""
    rng = np.random.default_rng(seed)
    n = days * 1440
    start = T - n * MIN
    r = rng.normal(0.0, 1.5e-3, (len(symbols), n))
    close = 10.0 * np.exp(np.cumsum(r, axis=1))
    open_ = np.concatenate([close[:, :1], close[:, :-1]], axis=1)
    ts = pd.date_range(start, periods=n, freq="1min", tz="UTC")
    return pd.DataFrame({
        "symbol": np.repeat(np.asarray(symbols, dtype=object), n), "timestamp": np.tile(ts, len(symbols)),
        "open": open_.ravel(), "high": (np.maximum(open_, close) * 1.0003).ravel(),
        "low": (np.minimum(open_, close) * 0.9997).ravel(), "close": close.ravel(),
        "volume": rng.lognormal(3.0, 0.7, len(symbols) * n), "suspect": np.zeros(len(symbols) * n, dtype=bool),
        "ingested_at": np.tile(ts + MIN, len(symbols)),
    })


def main() -> None:
    cfg = load_config()
    symbols = Universe.from_config(cfg).active_symbols
    state, ledger = _book(cfg, symbols)
    bars, regime, scan = _inputs(cfg, symbols)
    inputs = EngineInputs(cfg, bars, regime, ledger=ledger, scan_rows=scan)
    (new_state, out), sec = _best(lambda: run_engine(state, inputs, [T]), 7)
    reasons = out.scan_rows["reason"].value_counts().to_dict()
    print(f"one engine tick, {len(symbols)} active symbols, {len(state.positions)} open positions "
          f"({len(ledger)} ledger rows), {len(bars)} new bars, {len(scan)} candidates: {sec * 1000:.1f} ms core "
          f"= {sec / GOAL_S:.2f}x the {GOAL_S * 1000:.0f} ms goal; decisions {reasons}; "
          f"{len(out.ledger_rows)} ledger rows written")
    text = new_state.to_json()
    _, sec_json = _best(lambda: EngineState.from_json(new_state.to_json()), 7)
    print(f"state JSON round trip: {sec_json * 1000:.1f} ms ({len(text) / 1024:.0f} KiB)")

    # For scale: the same tick with the engine running its own scan of T from stored bars (5-day warm-up).
    days = S.setups_warmup(cfg).days + 1
    stored = _stored_bars(symbols, days)
    stored = pd.concat([stored, bars], ignore_index=True).drop_duplicates(["symbol", "timestamp"], keep="last")
    reg, _ = R.build_market_regime(stored, cfg, start=T, end=T + 5 * MIN)
    warm_inputs = EngineInputs(cfg, stored, reg, ledger=ledger)
    (_, out2), sec_scan = _best(lambda: run_engine(state, warm_inputs, [T]), 2)
    print(f"the same tick running its own scan ({len(stored):,} stored 1m bars in): {sec_scan:.2f} s wall, "
          f"{int(out2.scan_rows['candidate'].sum())} candidates")


if __name__ == "__main__":
    main()
