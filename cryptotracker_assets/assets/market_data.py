"""OHLC assets (one per timeframe, partitioned by UTC day), their checks, and the data-health checks."""


import dagster as dg
import pandas as pd

from resources.config import ProjectConfigResource
from resources.market_data import MarketDataSource
from resources.warehouse import SLICE_SYMBOLS, WarehouseResource

from .. import checks as C
from ..core.completeness import partition_completeness
from ..core.config import Timeframe
from ..core.ohlc import aggregate_bars, completeness, last_closed_bar_open
from ..services.alerts import queue_data_health
from ..services.ingest import SliceData, build_slice, closed_end, ingest_symbols, utc_now
from ..partitions import daily_partitions
from ..schemas import ohlc_dagster_type
from .common import OWNERS, WAREHOUSE_POOL, markdown_table, ohlc_asset_name
from .retries import TRANSIENT_RETRY, data_errors_are_final

GROUP = "market_data"
STANDARD_TIMEFRAMES = (Timeframe.M1, Timeframe.M15, Timeframe.H1, Timeframe.D1)


class OhlcIngestConfig(dg.Config):
    """Run config of an OHLC materialization."""

    symbols: list[str] | None = None  # subset of the universe; default: active + inactive with a position or order
    incremental: bool = False  # re-fetch only from the newest stored bar minus the overlap (schedules)
    as_of: str | None = None  # ISO-8601 UTC "now" for the closed-bar cutoff (replays, tests); default: wall clock


def build_ohlc_asset(tf: Timeframe, partitions_per_run: int) -> dg.AssetsDefinition:
    name = ohlc_asset_name(tf)
    key = dg.AssetKey(name)

    @dg.asset(
        name=name,
        group_name=GROUP,
        partitions_def=daily_partitions,
        io_manager_key="bars_io_manager",
        dagster_type=ohlc_dagster_type(tf),
        metadata={"timeframe": tf.value, "partition_expr": "timestamp"},
        backfill_policy=dg.BackfillPolicy.multi_run(partitions_per_run),
        retry_policy=TRANSIENT_RETRY,
        check_specs=[
            dg.AssetCheckSpec(C.OHLC_INTEGRITY, asset=key, description="Input rows that broke an OHLC invariant."),
            dg.AssetCheckSpec(C.OHLC_SUSPECT_MOVES, asset=key, description="Moves beyond data.health.extreme_move."),
            dg.AssetCheckSpec(C.OHLC_GAPS, asset=key, description="Missing bars inside the partition."),
            dg.AssetCheckSpec(C.OHLC_PARTITION_COMPLETENESS, asset=key, partitions_def=daily_partitions,
                              description="Stored / expected bars of each day partition below "
                                          "data.health.min_completeness."),
        ],
        pool=WAREHOUSE_POOL,
        kinds={"duckdb", "pandas"},
        owners=OWNERS,
        tags={"stage": "market_data"},
        description=f"Closed {tf.value} candles per symbol and UTC day, with `suspect` flags and `ingested_at`.",
    )
    @data_errors_are_final
    def _ohlc(
        context: dg.AssetExecutionContext,
        config: OhlcIngestConfig,
        project_config: ProjectConfigResource,
        market_data: MarketDataSource,
        warehouse: WarehouseResource,
    ):
        cfg = project_config.load()
        universe = project_config.universe()
        wh = warehouse.get()
        symbols = universe.check(config.symbols) if config.symbols else ingest_symbols(wh, universe)
        tw = context.partition_time_window
        start, end = pd.Timestamp(tw.start).tz_convert("UTC"), pd.Timestamp(tw.end).tz_convert("UTC")
        now = utc_now()
        as_of = pd.Timestamp(config.as_of).tz_convert("UTC") if config.as_of else now
        data = build_slice(
            lambda s, t, a, b: market_data.fetch_bars(s, t, a, b, cfg),
            wh, cfg, tf, start, end, symbols,
            as_of=as_of, incremental=config.incremental, now=now, source_name=market_data.source_name,
        )
        wh.replace_rejects(tf, data.partition, symbols, data.rejects, run_id=context.run_id)
        if data.empty_symbols:
            context.log.warning(
                f"{name} {data.partition}: no bars from {market_data.source_name} for {', '.join(data.empty_symbols)}"
            )
        if len(data.rejects):
            by_field = data.rejects.groupby(["symbol", "field"]).size().rename("rows").reset_index()
            queue_data_health(  # the same broken rows found again by the next run say nothing new
                wh, cfg, source=f"{name}:rejects", at=start, partition=data.partition,
                identity={"rows": {f"{r.symbol}/{r.field}": int(r.rows) for r in by_field.itertuples()}},
                text=f"{name} {data.partition}: {len(data.rejects)} broken row(s) went to ohlc_rejects "
                     f"({', '.join(f'{r.symbol}/{r.field}: {r.rows}' for r in by_field.head(10).itertuples())})",
                symbols=sorted(data.rejects["symbol"].unique()),
                counts={f"{r.symbol}/{r.field}": int(r.rows) for r in by_field.itertuples()})
        suspect = data.suspect
        if len(suspect):
            queue_data_health(
                wh, cfg, source=f"{name}:suspect", at=start, partition=data.partition,
                identity={"bars": sorted(f"{r.symbol}/{r.timestamp:%Y%m%d%H%M}" for r in suspect.itertuples())},
                text=f"{name} {data.partition}: {len(suspect)} suspect bar(s) (> {cfg.data.health.extreme_move:g} "
                     f"move) for {', '.join(sorted(suspect['symbol'].unique())[:10])}",
                symbols=sorted(suspect["symbol"].unique()),
                counts={str(k): int(v) for k, v in suspect.groupby("symbol").size().items()})
        yield dg.Output(
            data.bars,
            metadata={
                SLICE_SYMBOLS: dg.MetadataValue.json(symbols),
                "rows": len(data.bars),
                "fetched_rows": data.fetched_rows,
                "symbols": len(symbols) - len(data.empty_symbols),
                "empty_symbols": dg.MetadataValue.json(data.empty_symbols),
                "rejects": len(data.rejects),
                "suspect": len(suspect),
                "source": market_data.source_name,
                "incremental": config.incremental,
                "as_of": as_of.isoformat(),
            },
        )
        rej = data.rejects
        yield dg.AssetCheckResult(
            check_name=C.OHLC_INTEGRITY,
            passed=rej.empty,
            severity=C.SEVERITY[C.OHLC_INTEGRITY],
            metadata={
                "rejected_rows": len(rej),
                "by_field": dg.MetadataValue.json(rej.groupby("field").size().to_dict() if len(rej) else {}),
                "rejects": dg.MetadataValue.md(markdown_table(rej[["symbol", "timestamp", "field", "reason"]])),
            },
        )
        yield dg.AssetCheckResult(
            check_name=C.OHLC_SUSPECT_MOVES,
            passed=suspect.empty,
            severity=C.SEVERITY[C.OHLC_SUSPECT_MOVES],
            metadata={
                "suspect_bars": len(suspect),
                "by_symbol": dg.MetadataValue.json(suspect.groupby("symbol").size().to_dict() if len(suspect) else {}),
            },
        )
        gaps = data.gaps
        yield dg.AssetCheckResult(
            check_name=C.OHLC_GAPS,
            passed=gaps.empty,
            severity=C.SEVERITY[C.OHLC_GAPS],
            metadata={
                "gaps": len(gaps),
                "missing_bars_by_symbol": dg.MetadataValue.json(
                    gaps.groupby("symbol")["missing"].sum().astype(int).to_dict() if len(gaps) else {}
                ),
                "gaps_table": dg.MetadataValue.md(markdown_table(gaps)),
            },
        )
        yield partition_completeness_result(data, as_of, cfg.data.health.min_completeness.of(tf))

    return _ohlc


def partition_completeness_result(data: SliceData, as_of: pd.Timestamp, min_completeness: float
                                  ) -> dg.AssetCheckResult:
    """SPEC §13.2 for every day partition of the slice (a backfill range too): stored / expected bars per symbol,
    counting only bars closed at ``as_of``; names each incomplete symbol, day, missing share and longest gap."""
    tf = data.timeframe
    comp = partition_completeness(data.bars, tf, data.start, closed_end(data.end, as_of, tf), data.symbols,
                                  min_completeness)
    low = comp[comp["incomplete"]]
    gap = [f"{a:%Y-%m-%d %H:%M}–{b:%Y-%m-%d %H:%M} UTC" if r else "none"
           for a, b, r in zip(low["longest_missing_start"], low["longest_missing_end"], low["missing_runs"])]
    lines = [f"{r.symbol} {r.partition}: {r.stored}/{r.expected} {tf.value} bars ({r.completeness * 100:.2f} %), "
             f"missing {r.missing_share * 100:.2f} %, longest gap {g} ({r.missing_runs} gap(s))"
             for r, g in zip(low.itertuples(index=False), gap)]
    floor = f"data.health.min_completeness.{tf.value} = {min_completeness * 100:.2f} %"
    table = low.drop(columns=["incomplete", "longest_missing_start", "longest_missing_end"]).assign(
        longest_gap=gap).round({"completeness": 4, "missing_share": 4})
    by_symbol: dict[str, dict] = {}
    for r, g in zip(low.itertuples(index=False), gap):
        by_symbol.setdefault(r.symbol, {})[r.partition] = {
            "completeness": float(r.completeness), "missing_share": float(r.missing_share), "longest_gap": g,
            "missing_runs": int(r.missing_runs)}
    return dg.AssetCheckResult(
        check_name=C.OHLC_PARTITION_COMPLETENESS,
        passed=low.empty,
        severity=C.SEVERITY[C.OHLC_PARTITION_COMPLETENESS],
        description=(f"{data.partition}: every symbol at or above {floor}" if low.empty else
                     f"{len(low)} symbol-day(s) below {floor}: " + "; ".join(lines)),
        metadata={
            "partition": data.partition,
            "min_completeness": float(min_completeness),
            "incomplete": len(low),
            "checked": len(comp),
            "incomplete_by_symbol": dg.MetadataValue.json(by_symbol),
            "incomplete_table": dg.MetadataValue.md(markdown_table(table)),
        },
    )


def build_partition_freshness_checks(assets: list[dg.AssetsDefinition], timeframes: list[Timeframe], cfg
                                     ) -> list[dg.AssetChecksDefinition]:
    """Dagster's partition freshness (the UI shows it per asset): the previous UTC day's partition exists by
    ``data.health.freshness_min.<tf>`` after midnight (at most 23:59); beside the per-symbol ``ohlc_freshness``."""
    checks: list[dg.AssetChecksDefinition] = []
    for asset, tf in zip(assets, timeframes):
        m = min(int(cfg.data.health.freshness_min.of(tf)), 24 * 60 - 1)
        checks += dg.build_time_partition_freshness_checks(
            assets=[asset], deadline_cron=f"{m % 60} {m // 60} * * *", timezone="UTC",
            severity=C.SEVERITY[C.OHLC_FRESHNESS])
    return checks


def _health_window(cfg, tf: Timeframe) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The last data.health.completeness_window_h of closed ``tf`` bars, ending at the newest closed bar."""
    end = last_closed_bar_open(utc_now(), tf) + pd.Timedelta(minutes=tf.minutes)
    return end - pd.Timedelta(hours=cfg.data.health.completeness_window_h.of(tf)), end


def build_health_checks(tf: Timeframe) -> list[dg.AssetChecksDefinition]:
    """Checks on the stored ``ohlc_<tf>`` table, run by ``data_health_job`` (SPEC §13.2)."""
    key = dg.AssetKey(ohlc_asset_name(tf))
    checks: list[dg.AssetChecksDefinition] = []

    @dg.asset_check(asset=key, name=C.OHLC_FRESHNESS, blocking=False, pool=WAREHOUSE_POOL,
                    description=f"Newest {tf.value} bar per active symbol is within data.health.freshness_min.")
    def _freshness(project_config: ProjectConfigResource, warehouse: WarehouseResource):
        cfg = project_config.load()
        symbols = project_config.universe().active_symbols
        now = utc_now()
        latest = warehouse.get().latest_bar_times(tf, symbols)
        limit = pd.Timedelta(minutes=cfg.data.health.freshness_min.of(tf))
        step = pd.Timedelta(minutes=tf.minutes)
        stale = {s: (None if s not in latest else str(now - (latest[s] + step))) for s in symbols
                 if s not in latest or now - (latest[s] + step) > limit}
        # a failure alerts through the check_alert_sensor, once until it passes again
        return dg.AssetCheckResult(
            passed=not stale, severity=C.SEVERITY[C.OHLC_FRESHNESS],
            description=(f"{len(stale)} stale symbol(s): {', '.join(list(stale)[:10])}" if stale else
                         f"every active symbol's newest {tf.value} bar is fresh"),
            metadata={"stale_symbols": len(stale), "lag_by_symbol": dg.MetadataValue.json(stale),
                      "limit_min": cfg.data.health.freshness_min.of(tf)},
        )

    @dg.asset_check(asset=key, name=C.OHLC_COMPLETENESS, blocking=False, pool=WAREHOUSE_POOL,
                    description=f"Stored / expected {tf.value} bars over data.health.completeness_window_h.")
    def _completeness(project_config: ProjectConfigResource, warehouse: WarehouseResource):
        cfg = project_config.load()
        symbols = project_config.universe().active_symbols
        start, end = _health_window(cfg, tf)
        bars = warehouse.get().read_bars(tf, start, end, symbols)
        comp = completeness(bars, tf, start, end, symbols)
        low = comp[comp["completeness"] < cfg.data.health.min_completeness.of(tf)]
        return dg.AssetCheckResult(
            passed=low.empty, severity=C.SEVERITY[C.OHLC_COMPLETENESS],
            metadata={"incomplete_symbols": len(low), "window_start": start.isoformat(),
                      "incomplete": dg.MetadataValue.md(markdown_table(low.round(4)))},
        )

    @dg.asset_check(asset=key, name=C.OHLC_UNIQUE_KEYS, blocking=False, pool=WAREHOUSE_POOL,
                    description="No (symbol, timestamp) is stored twice.")
    def _unique(warehouse: WarehouseResource):
        dup = warehouse.get().duplicate_keys(tf)
        return dg.AssetCheckResult(passed=dup == 0, severity=C.SEVERITY[C.OHLC_UNIQUE_KEYS],
                                   metadata={"duplicate_keys": dup})

    checks += [_freshness, _completeness, _unique]

    if tf in (Timeframe.M15, Timeframe.H1):

        @dg.asset_check(asset=key, name=C.OHLC_AGGREGATES, blocking=False, pool=WAREHOUSE_POOL,
                        additional_deps=[dg.AssetKey(ohlc_asset_name(Timeframe.M1))],
                        description=f"Ingested {tf.value} bars equal the aggregate of their 1m bars.")
        def _aggregates(project_config: ProjectConfigResource, warehouse: WarehouseResource):
            cfg = project_config.load()
            tol = cfg.data.health.aggregate_tolerance
            start, end = _health_window(cfg, tf)
            wh = warehouse.get()
            report = compare_with_aggregate(wh.read_bars(tf, start, end), wh.read_bars(Timeframe.M1, start, end),
                                            tf, tol)
            return dg.AssetCheckResult(
                passed=report.empty, severity=C.SEVERITY[C.OHLC_AGGREGATES],
                metadata={"mismatched_bars": len(report), "tolerance": tol,
                          "mismatches": dg.MetadataValue.md(markdown_table(report))},
            )

        checks.append(_aggregates)
    return checks


def compare_with_aggregate(bars: pd.DataFrame, bars_1m: pd.DataFrame, tf: Timeframe, tol: float) -> pd.DataFrame:
    """Bars of ``tf`` that differ from the aggregate of their 1m bars by more than ``tol`` relative (any of
    open/high/low/close/volume); only buckets where both exist are compared."""
    if bars.empty or bars_1m.empty:
        return pd.DataFrame(columns=["symbol", "timestamp", "field", "ingested", "from_1m"])
    agg = aggregate_bars(bars_1m, tf)
    m = bars.merge(agg, on=["symbol", "timestamp"], suffixes=("", "_1m"))
    out = []
    for f in ("open", "high", "low", "close", "volume"):
        a, b = m[f], m[f"{f}_1m"]
        rel = (a - b).abs() / b.abs().where(b != 0, 1.0)
        bad = m[rel > tol]
        out.append(pd.DataFrame({"symbol": bad["symbol"], "timestamp": bad["timestamp"], "field": f,
                                 "ingested": bad[f], "from_1m": bad[f"{f}_1m"]}))
    return pd.concat(out, ignore_index=True).sort_values(["symbol", "timestamp"]).reset_index(drop=True)
