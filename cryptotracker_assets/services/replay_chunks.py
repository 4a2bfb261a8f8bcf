"""The two helpers that let a replay use both cores (no Dagster): the inputs of the next chunk of days — bars, scan
features, market regime and scan rows — prepared in a worker process while the engine folds the current chunk, and
the day commits written in order by a writer process while the engine goes on.

Both only move work in time: the chunk functions are the ones the live assets call, and the commits happen in the
order the days were folded, each one checking the output's cursor, so the result is the same as doing it all in
one thread (``workers=0``).
"""

from __future__ import annotations

from pathlib import Path

import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any

import pandas as pd

from ..core.config import Config, build_config, raw_dict
from ..core.engine import BAR_COLUMNS
from ..core.regime import MarketState, build_market_regime
from ..core.setups import scan_features, scan_from_features
from .inference import champions, feature_rows, scorer
from .operator import first_cycle_point_after
from ..core.universe import Universe
from ..core.watermarks import derived_span
from ..storage.warehouse import Warehouse


@dataclass(frozen=True)
class ChunkInputs:
    """The engine's inputs for the cycle points of [start, end): base bars (from the warm-up on), the
    ``market_regime`` rows, the scan rows (steps 1–3) and the market state after the last regime row."""

    start: pd.Timestamp
    end: pd.Timestamp
    bars: pd.DataFrame
    regime: pd.DataFrame
    scan: pd.DataFrame
    market: MarketState | None
    seen: frozenset[str]  # the symbols the engine will have processed bars of at ``end``
    seconds: dict[str, float]
    scores: pd.DataFrame | None = None  # the champions' outputs for the shadows (EngineInputs.model_scores)


def prepare_chunk(source: Warehouse, cfg: Config, start: pd.Timestamp, end: pd.Timestamp,
                  extra_symbols: Sequence[str], market: MarketState | None, seen: frozenset[str],
                  models_root: str | None = None) -> ChunkInputs:
    """Read the chunk's bars (every universe symbol and ``extra_symbols``, from ``start − derived_span``) and run the
    live chain's functions on them: scan features, market regime (continuing ``market``), scan rows.

    ``seen``: symbols whose bars before ``start − engine.cycle_min`` the engine has processed when it reaches
    ``start`` (a last bar in the state, or a bar in an earlier chunk): the engine gets only their bars from there
    on — exactly the bars after their last processed one — and every bar of the others, as a live tick does.

    ``models_root``: the model store; the scan then scores setups with the champions that were in force (the
    source's ``model_registry``: each swap from the first cycle point after it), as the live scan did."""
    uni = Universe.from_config(cfg)
    active = uni.active_symbols
    scan_syms = active if uni.market_symbol in active else [*active, uni.market_symbol]
    regime_syms = list(dict.fromkeys([uni.market_symbol, *cfg.prioritisation.symbols]))
    base = cfg.engine.base_timeframe
    sec: dict[str, float] = {}
    t = time.perf_counter()
    bars = source.read_bars(base, start - derived_span(cfg), end, sorted(set(uni.tiers) | set(extra_symbols)))
    sec["read"] = time.perf_counter() - t
    t = time.perf_counter()
    feats = scan_features(bars[bars["symbol"].isin(scan_syms)], cfg, start=start, end=end, symbols=active)
    sec["features"] = time.perf_counter() - t
    t = time.perf_counter()
    regime, _ = build_market_regime(bars[bars["symbol"].isin(regime_syms)], cfg, start=start, end=end,
                                    previous=market, bar_timeframe=base)
    after = MarketState.from_row(regime.iloc[-1]) if len(regime) else market
    regime = regime.assign(config_version=cfg.config_version)
    sec["regime"] = time.perf_counter() - t
    t = time.perf_counter()
    scan = champion_scan(source, cfg, feats, regime, start, end, active, models_root)
    scores = scorer(source, cfg, Path(models_root))(scan) if models_root else None
    sec["scan"] = time.perf_counter() - t
    new = (bars["timestamp"] >= start - pd.Timedelta(minutes=cfg.engine.cycle_min)) | ~bars["symbol"].isin(seen)
    engine_bars = bars.loc[new, list(BAR_COLUMNS)]
    engine_bars = engine_bars.assign(symbol=engine_bars["symbol"].astype("category"))  # cheap to pickle
    sec["peak_mb"] = peak_rss_mb()
    return ChunkInputs(start, end, engine_bars, regime, scan, after, seen | frozenset(bars["symbol"].unique()), sec,
                       scores)


def champion_scan(source: Warehouse, cfg: Config, feats: pd.DataFrame, regime: pd.DataFrame, start: pd.Timestamp,
                  end: pd.Timestamp, active: Sequence[str], models_root: str | None) -> pd.DataFrame:
    """The scan rows of [start, end), each part under the champions in force there (none: rule confidence)."""
    swaps = source.model_swaps() if models_root else None
    if swaps is None or swaps.empty:
        return scan_from_features(feats, regime, cfg, start=start, end=end, symbols=active)
    cuts = sorted({first_cycle_point_after(pd.Timestamp(t).tz_convert("UTC"), cfg) for t in swaps["swapped_at"]})
    bounds = [start, *[c for c in cuts if start < c < end], end]
    parts = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        ml, daily, _ = feature_rows(source, a, b)
        found = champions(source, cfg, Path(models_root), a, (ml, daily, regime))
        parts.append(scan_from_features(feats, regime, cfg, start=a, end=b, symbols=active, confidence=found.sources))
    return pd.concat([p for p in parts if len(p)], ignore_index=True) if any(len(p) for p in parts) else parts[0]


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (MB; Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


_CONFIGS: dict[tuple[str, int], Config] = {}
# DuckDB's buffer pool in the worker and writer processes (its default, 80 % of RAM, would keep what it read or
# wrote cached for the whole replay; a bounded pool keeps the replay's memory a function of the chunk size only)
WRITER_MEMORY_MB = 256


def _prepare_in_worker(source_path: str, lock_wait_s: float, raw: dict, version: int, start: pd.Timestamp,
                       end: pd.Timestamp, extra_symbols: Sequence[str], market: MarketState | None,
                       seen: frozenset[str], models_root: str | None) -> ChunkInputs:
    key = (repr(sorted(raw.items())), version)
    if key not in _CONFIGS:  # a Config does not pickle (generic models): it travels as its values
        _CONFIGS[key] = build_config(raw, source="replay", config_version=version)
    source = Warehouse(source_path, lock_timeout_s=lock_wait_s, create=False, memory_limit_mb=WRITER_MEMORY_MB,
                       threads=1)
    return prepare_chunk(source, _CONFIGS[key], start, end, extra_symbols, market, seen, models_root)


class ChunkPreparer:
    """Prepares chunks in a worker process (``workers=1``) or inline (``workers=0``); :meth:`submit` returns a
    future-like object whose ``result()`` is the :class:`ChunkInputs`."""

    def __init__(self, source: Warehouse, workers: int, models_root: str | None = None) -> None:
        self.source = source
        self.models_root = models_root
        self.pool = ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) if workers else None

    def submit(self, cfg: Config, start: pd.Timestamp, end: pd.Timestamp, extra_symbols: Sequence[str],
               market: MarketState | None, seen: frozenset[str]) -> Any:
        if self.pool is None:
            done: Future = Future()
            try:
                done.set_result(prepare_chunk(self.source, cfg, start, end, extra_symbols, market, seen,
                                              self.models_root))
            except BaseException as exc:  # re-raised by result(), like the pool's futures
                done.set_exception(exc)
            return done
        return self.pool.submit(_prepare_in_worker, self.source.path, self.source.lock_timeout_s, raw_dict(cfg),
                                cfg.config_version, start, end, list(extra_symbols), market, seen, self.models_root)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


_OUTPUTS: dict[str, Warehouse] = {}


def _write_in_worker(path: str, lock_wait_s: float, kind: str, args: tuple, keep_open: bool = True) -> float:
    """One write of the replay output (in the writer process): a day's commit or a chunk's regime rows. The writer
    process keeps its connection open (nothing else opens the output during a replay), which spares a checkpoint
    per day."""
    t = time.perf_counter()
    out = _OUTPUTS.get(path) if keep_open else None
    if out is None:
        out = Warehouse(path, lock_timeout_s=lock_wait_s, keep_open=keep_open, memory_limit_mb=WRITER_MEMORY_MB,
                        threads=1)
        if keep_open:
            _OUTPUTS[path] = out
    if kind == "day":
        appends, states, previous, committed_at, tick = args
        out.commit_tick(appends, states=states, previous_cursor=previous, committed_at=committed_at, tick=tick)
    else:
        table, frame, time_column, start, end = args
        out.replace_slice(table, frame, time_column, start, end)
    return time.perf_counter() - t, peak_rss_mb()


class OrderedWriter:
    """Writes the replay output in submission order: in a writer process (``workers=1``; the writes take neither
    this process's CPU nor its GIL) or inline (``workers=0``). At most ``depth`` writes are in flight; the first
    error is raised by the next :meth:`day` / :meth:`slice` or by :meth:`close`."""

    def __init__(self, out: Warehouse, workers: int, depth: int = 2) -> None:
        self.out = out
        self.depth = depth
        self.seconds = 0.0
        self.peak_mb = 0.0  # the writer process's peak memory (0 inline)
        self.pool = ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) if workers else None
        self._inflight: list[Future] = []

    def _submit(self, kind: str, args: tuple) -> None:
        if self.pool is None:
            self.seconds += _write_in_worker(self.out.path, self.out.lock_timeout_s, kind, args, keep_open=False)[0]
            return
        while self._inflight and (self._inflight[0].done() or len(self._inflight) >= self.depth):
            self._collect()  # raises the writer's error here
        self._inflight.append(self.pool.submit(_write_in_worker, self.out.path, self.out.lock_timeout_s, kind, args))

    def day(self, appends: dict[str, pd.DataFrame], states: list, previous: pd.Timestamp | None,
            committed_at: pd.Timestamp, tick) -> None:
        """One folded day's rows, state and tick record (``Warehouse.commit_tick``: one transaction)."""
        self._submit("day", (appends, states, previous, committed_at, tick))

    def slice(self, table: str, frame: pd.DataFrame, time_column: str, start: pd.Timestamp,
              end: pd.Timestamp) -> None:
        self._submit("slice", (table, frame, time_column, start, end))

    def _collect(self) -> None:
        seconds, peak = self._inflight.pop(0).result()
        self.seconds += seconds
        self.peak_mb = max(self.peak_mb, peak)

    def close(self) -> None:
        try:
            while self._inflight:
                self._collect()
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=True, cancel_futures=True)
