"""Building one OHLC slice from a market source (no Dagster): fetch, validate, flag, merge for incremental runs.

Shared by the ``ohlc_<tf>`` assets, the gap-healing job and the CLI.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd

from ..core.config import Config, Timeframe
from ..core.engine import EngineState
from ..core.ohlc import STORED_COLUMNS, detect_gaps, empty_bars, empty_rejects, flag_suspect, validate_ohlc
from ..core.universe import Universe
from ..storage.warehouse import Warehouse

Fetch = Callable[[str, Timeframe, pd.Timestamp, pd.Timestamp], pd.DataFrame]


class IngestError(RuntimeError):
    """Fetching a slice failed; names symbol, timeframe and partition. Nothing was stored."""


@dataclass(frozen=True)
class SliceData:
    """A slice ready to store: clean bars (stored columns), rejects, and what the checks report."""

    timeframe: Timeframe
    partition: str
    start: pd.Timestamp
    end: pd.Timestamp
    symbols: list[str]
    bars: pd.DataFrame
    rejects: pd.DataFrame
    empty_symbols: list[str]
    fetched_rows: int
    gaps: pd.DataFrame

    @property
    def suspect(self) -> pd.DataFrame:
        return self.bars[self.bars["suspect"]]


def utc_now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC").as_unit("ns")


def held_symbols(warehouse: Warehouse) -> set[str]:
    """Symbols with an open position or a pending entry order in the engine's latest committed state (none before
    the first tick)."""
    row = warehouse.engine_state()
    if row is None:
        return set()
    state = EngineState.from_json(row["state_json"])
    return {p.meta.symbol for p in state.positions} | {o.symbol for o in state.pending_orders}


def ingest_symbols(warehouse: Warehouse, universe: Universe) -> list[str]:
    """What ingest and gap healing fetch (SPEC §1, issue 10 item 2): the active symbols, and each inactive one
    while the engine holds a position or an order on it."""
    return universe.ingest_symbols(held_symbols(warehouse))


def partition_label(start: pd.Timestamp, end: pd.Timestamp) -> str:
    """The partition key(s) of a day-aligned window: ``2026-01-01`` or ``2026-01-01..2026-01-03``."""
    last = (end - pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    first = start.strftime("%Y-%m-%d")
    return first if first == last else f"{first}..{last}"


def closed_end(end: pd.Timestamp, as_of: pd.Timestamp, timeframe: Timeframe) -> pd.Timestamp:
    """The exclusive upper bound on bar open times so that only bars closed at ``as_of`` are kept."""
    step = pd.Timedelta(minutes=timeframe.minutes)
    newest_open = as_of.floor(f"{timeframe.minutes}min") - step
    return min(end, newest_open + step)


def check_reject_share(raw: pd.DataFrame, rejects: pd.DataFrame, max_share: float, source_name: str,
                       tf: Timeframe, label: str) -> None:
    """Raise :class:`IngestError` when more than ``max_share`` (``data.validation.max_reject_share``) of a symbol's
    fetched rows were rejected: such a slice is not stored, so the stored one stays untouched."""
    if raw.empty or rejects.empty:
        return
    fetched = raw["symbol"].astype(str).value_counts()
    rejected = rejects["symbol"].astype(str).value_counts()
    for sym, n in fetched.items():
        bad = int(rejected.get(sym, 0))
        if bad / n > max_share:
            why = rejects.loc[rejects["symbol"].astype(str) == sym, "reason"].value_counts().index[0]
            raise IngestError(f"{source_name}: {sym} {tf.value} partition {label}: {bad} of {n} rows rejected "
                              f"(> data.validation.max_reject_share {max_share}), first reason: {why}; "
                              f"the stored slice is left untouched")


def build_slice(
    fetch: Fetch,
    warehouse: Warehouse,
    cfg: Config,
    timeframe: Timeframe | str,
    start: pd.Timestamp,
    end: pd.Timestamp,
    symbols: Sequence[str],
    *,
    as_of: pd.Timestamp,
    incremental: bool = False,
    now: pd.Timestamp | None = None,
    source_name: str = "market source",
) -> SliceData:
    """Fetch ``symbols`` × [start, end) (only bars closed at ``as_of``), validate into clean rows + rejects,
    set ``suspect`` flags (the previous stored bar before ``start`` seeds each symbol), stamp ``ingested_at``.

    ``incremental``: re-fetch only from each symbol's newest stored bar in the slice minus
    ``data.ingest.<tf>.overlap_min`` and keep the stored bars before that; otherwise fetch the whole slice.
    """
    tf = Timeframe(timeframe)
    now = now if now is not None else utc_now()
    label = partition_label(start, end)
    fetch_end = closed_end(end, as_of, tf)
    symbols = list(symbols)
    stored = empty_bars(with_flags=True)
    fetch_from = {s: start for s in symbols}
    if incremental:
        stored = warehouse.read_bars(tf, start, end, symbols)
        overlap = pd.Timedelta(minutes=cfg.data.ingest.of(tf).overlap_min)
        newest = stored.groupby("symbol")["timestamp"].max()
        for s, t in newest.items():
            fetch_from[s] = max(start, t + pd.Timedelta(minutes=tf.minutes) - overlap)

    frames = []
    for s in symbols:
        if fetch_from[s] >= fetch_end:
            continue
        try:
            raw = fetch(s, tf, fetch_from[s], fetch_end)
        except Exception as exc:
            raise IngestError(f"{source_name}: fetching {s} {tf.value} for partition {label} failed: {exc}") from exc
        if raw is not None and not raw.empty:
            frames.append(raw)
    raw_all = pd.concat(frames, ignore_index=True) if frames else empty_bars()
    validated = validate_ohlc(raw_all, tf, partition=label, source=source_name, now=now)
    check_reject_share(raw_all, validated.rejects, cfg.data.validation.max_reject_share, source_name, tf, label)
    clean = validated.clean
    # Rows outside the requested window (a source returning extra bars) belong to other slices: drop them.
    clean = clean[(clean["timestamp"] >= start) & (clean["timestamp"] < fetch_end) & clean["symbol"].isin(symbols)]
    fetched_rows = len(clean)
    clean = clean.assign(ingested_at=now)
    if incremental and not stored.empty:
        cut = stored["symbol"].map(fetch_from)
        keep = stored[stored["timestamp"] < cut]
        clean = pd.concat([keep.drop(columns=["suspect"]), clean], ignore_index=True)
    clean = clean.sort_values(["symbol", "timestamp"], kind="stable").reset_index(drop=True)
    prev = warehouse.last_close_before(tf, start, symbols)
    clean["suspect"] = flag_suspect(clean, cfg.data.health.extreme_move, prev).to_numpy()
    clean["ingested_at"] = pd.to_datetime(clean["ingested_at"], utc=True).astype("datetime64[ns, UTC]")
    clean = clean[STORED_COLUMNS]
    present = set(clean["symbol"].unique())
    empty = [s for s in symbols if s not in present]
    gaps = detect_gaps(clean, tf, cfg.data.health.gaps.interval_multiple.of(tf))
    return SliceData(
        timeframe=tf,
        partition=label,
        start=start,
        end=end,
        symbols=symbols,
        bars=clean,
        rejects=validated.rejects if len(validated.rejects) else empty_rejects(),
        empty_symbols=empty,
        fetched_rows=fetched_rows,
        gaps=gaps,
    )
