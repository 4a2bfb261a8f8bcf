"""Feature and market-regime assets (SPEC §2, §8, §9.1): thin wrappers over core.features / core.regime.

Each is partitioned by UTC day like the OHLC it reads and reads its warm-up window from the warehouse, so a day
computed alone equals the same day of the continuous series. ``features_scan`` and ``market_regime`` — the
per-cycle-point inputs of the scan and the engine — are incremental: a materialization computes only the cycle
points that are new or whose bars changed (their bar watermark) and replaces the slice from there.
"""

import dagster as dg
import pandas as pd

from resources.config import ProjectConfigResource
from resources.warehouse import REPLACE_FROM, WarehouseResource

from ..core.config import Config, Timeframe
from ..core.feature_schemas import (DailyContextSchema, MarketRegimeTableSchema, MlFeatureSchema,
                                    ScanFeatureTableSchema, history_report)
from ..core.features import compute_daily_context, compute_ml_features, daily_warmup, feature_set_version, ml_warmup
from ..core.ohlc import empty_bars
from ..core.regime import MarketState, build_market_regime, regime_warmup
from ..core.setups import scan_features, setups_warmup
from ..partitions import PARTITIONS_START, daily_partitions
from ..services.incremental import data_horizon, plan
from .common import (OWNERS, WAREHOUSE_POOL, dagster_type, json_counts, lookback_dep, markdown_table,
                     ohlc_asset_name, partition_window, previous_day_dep)

GROUP = "features"
FEATURES_HISTORY = "features_history"  # WARN: a symbol has too little history for its windows
REGIME_STATE_CONTINUITY = "regime_state_continuity"  # WARN: the previous day's state was missing


def history_check(frame: pd.DataFrame, asset_key: dg.AssetKey) -> dg.AssetCheckResult:
    """WARN when a symbol's every row is still in the warm-up (too little history for its windows)."""
    if frame.empty:
        return dg.AssetCheckResult(asset_key=asset_key, check_name=FEATURES_HISTORY, passed=True,
                                   severity=dg.AssetCheckSeverity.WARN, metadata={"rows": 0})
    report = history_report(frame)
    short = report[report["insufficient_history"].to_numpy(dtype=bool)]
    return dg.AssetCheckResult(
        asset_key=asset_key, check_name=FEATURES_HISTORY, passed=short.empty, severity=dg.AssetCheckSeverity.WARN,
        metadata={"symbols_short_of_history": len(short), "symbols": dg.MetadataValue.json(short["symbol"].tolist()),
                  "report": dg.MetadataValue.md(markdown_table(report))})


def _feature_asset(name: str, schema, deps: list, description: str, cfg: Config, time_column: str = "timestamp",
                   **extra):
    """The decorator shared by the daily feature tables: partitions, warehouse table, Pandera type, history check,
    and the feature set version as code version (a changed definition shows the partitions as stale)."""
    key = dg.AssetKey(name)
    return dg.asset(
        name=name, group_name=GROUP, partitions_def=daily_partitions, io_manager_key="table_io_manager",
        dagster_type=dagster_type(schema), deps=deps, metadata={"table": name, "time_column": time_column},
        check_specs=[dg.AssetCheckSpec(FEATURES_HISTORY, asset=key,
                                       description="Symbols whose every row is still in the warm-up.")],
        backfill_policy=dg.BackfillPolicy.single_run(), pool=WAREHOUSE_POOL, kinds={"pandas", "duckdb"},
        code_version=feature_set_version(cfg), owners=OWNERS, tags={"stage": "features"},
        description=description, **extra,
    )


def scan_symbols(universe) -> list[str]:
    """The active symbols plus the market symbol (its bars enter btc_corr)."""
    symbols = universe.active_symbols
    return symbols if universe.market_symbol in symbols else [*symbols, universe.market_symbol]


def build_feature_assets(cfg: Config) -> list[dg.AssetsDefinition]:
    """The feature assets for this config (the base timeframe decides which OHLC asset they read)."""
    base = cfg.engine.base_timeframe
    base_key = dg.AssetKey(ohlc_asset_name(base))
    ml_key, scan_key, daily_key, regime_key = (dg.AssetKey(n) for n in (
        "features_15m", "features_scan", "features_daily", "market_regime"))

    @_feature_asset("features_15m", MlFeatureSchema, [lookback_dep(base_key, ml_warmup(cfg))],
                    f"The 29 ML indicators on {cfg.features.ml.timeframe.value} bars aggregated from stored "
                    f"{base.value} bars, plus their *_rel model inputs (SPEC §2.2).", cfg)
    def features_15m(context: dg.AssetExecutionContext, project_config: ProjectConfigResource,
                     warehouse: WarehouseResource):
        cfg_ = project_config.load()
        start, end = partition_window(context)
        symbols = project_config.universe().active_symbols
        wh = warehouse.get()
        with wh.snapshot() as con:
            bars = wh.read_bars(base, start - ml_warmup(cfg_), end, symbols, con=con)
            horizon = data_horizon(wh, cfg_, start, end, con)
        # Only bars closed by the data horizon: a 15m bar opening at t needs every base bar of [t, t + 15 min).
        closed = horizon.floor(f"{cfg_.features.ml.timeframe.minutes}min")
        df = compute_ml_features(bars, cfg_, start=start, end=max(start, closed), bar_timeframe=base)
        yield dg.Output(df, metadata={"rows": len(df), "symbols": int(df["symbol"].nunique()) if len(df) else 0,
                                      "warmup_rows": int(df["warmup"].sum()) if len(df) else 0,
                                      "bars_read": len(bars), "feature_set_version": feature_set_version(cfg_)})
        yield history_check(df, ml_key)

    @_feature_asset("features_scan", ScanFeatureTableSchema, [lookback_dep(base_key, setups_warmup(cfg))],
                    f"Scan features (SPEC §2.1) and setup-window inputs per active symbol and cycle point, at the "
                    f"decision bar ({base.value} bars); incremental, each row with its bar watermark.", cfg)
    def features_scan(context: dg.AssetExecutionContext, project_config: ProjectConfigResource,
                      warehouse: WarehouseResource):
        cfg_ = project_config.load()
        u = project_config.universe()
        start, end = partition_window(context)
        wh = warehouse.get()
        step = pd.Timedelta(minutes=cfg_.engine.cycle_min)
        with wh.snapshot() as con:
            p = plan(wh, cfg_, "features_scan", start, end, con)
            todo = p.todo
            bars = (wh.read_bars(base, todo[0] - setups_warmup(cfg_), todo[-1], scan_symbols(u), con=con)
                    if len(todo) else empty_bars(with_flags=True))
        first, stop = (todo[0], todo[-1] + step) if len(todo) else (end, end)
        df = scan_features(bars, cfg_, start=first, end=stop, symbols=u.active_symbols)
        df = df.assign(bars_watermark=p.marks_of(df["timestamp"]), config_version=cfg_.config_version)
        yield dg.Output(df, metadata={
            REPLACE_FROM: p.replace_from.isoformat(), "rows": len(df), "cycle_points": len(todo),
            "stale_rows_recomputed": p.refresh.stale, "stale_symbols": int(df["stale"].sum()) if len(df) else 0,
            "bars_read": len(bars)})
        yield history_check(df, scan_key)

    @_feature_asset("features_daily", DailyContextSchema,
                    [lookback_dep(dg.AssetKey(ohlc_asset_name(Timeframe.D1)), daily_warmup(cfg), end_offset=-1)],
                    "Daily BTC context (SPEC §2.3): SMA distances, volatility, trend regime, symbol vs BTC, "
                    "from completed UTC days before each day.", cfg)
    def features_daily(context: dg.AssetExecutionContext, project_config: ProjectConfigResource,
                       warehouse: WarehouseResource):
        cfg_ = project_config.load()
        u = project_config.universe()
        start, end = partition_window(context)
        # Day D uses completed days before D only: the last day of the window needs bars opening before it.
        bars = warehouse.get().read_bars(Timeframe.D1, start - daily_warmup(cfg_), end - pd.Timedelta(days=1),
                                         scan_symbols(u))
        df = compute_daily_context(bars, cfg_, start=start, end=end, bar_timeframe=Timeframe.D1,
                                   symbols=u.active_symbols)
        yield dg.Output(df, metadata={"rows": len(df), "bars_read": len(bars),
                                      "btc_trend": json_counts(df["btc_trend"])})
        yield history_check(df, daily_key)

    @dg.asset(
        name="market_regime", group_name=GROUP, partitions_def=daily_partitions, io_manager_key="table_io_manager",
        dagster_type=dagster_type(MarketRegimeTableSchema),
        deps=[lookback_dep(base_key, regime_warmup(cfg)), previous_day_dep(regime_key)],
        metadata={"table": "market_regime", "time_column": "timestamp"},
        check_specs=[dg.AssetCheckSpec(REGIME_STATE_CONTINUITY, asset=regime_key,
                                       description="The volatility-disable state continued from the previous day.")],
        backfill_policy=dg.BackfillPolicy.single_run(), pool=WAREHOUSE_POOL, kinds={"pandas", "duckdb"},
        code_version=feature_set_version(cfg), owners=OWNERS, tags={"stage": "features"},
        description="One shared market state per cycle point (SPEC §8, §9.1): regime, BTC returns at exact "
                    "horizons, vol24h, declines, per-strategy volatility disable, market structure and best strategy; "
                    "incremental, each row with its bar watermark.",
    )
    def market_regime(context: dg.AssetExecutionContext, project_config: ProjectConfigResource,
                      warehouse: WarehouseResource):
        cfg_ = project_config.load()
        u = project_config.universe()
        start, end = partition_window(context)
        step = pd.Timedelta(minutes=cfg_.engine.cycle_min)
        wh = warehouse.get()
        symbols = list(dict.fromkeys([u.market_symbol, *cfg_.prioritisation.symbols]))
        with wh.snapshot() as con:
            p = plan(wh, cfg_, "market_regime", start, end, con)
            todo = p.todo
            first, stop = (todo[0], todo[-1] + step) if len(todo) else (end, end)
            prev = wh.read_slice("market_regime", "timestamp", first - step, first, con=con)
            before = prev.iloc[-1] if prev is not None and len(prev) else None
            bars = wh.read_bars(base, first - regime_warmup(cfg_), stop - step, symbols, con=con)
        previous = MarketState.from_row(before) if before is not None else None
        df, _ = build_market_regime(bars, cfg_, start=first, end=stop, previous=previous, bar_timeframe=base)
        df = df.assign(bars_watermark=p.marks_of(df["timestamp"]), config_version=cfg_.config_version)
        yield dg.Output(df, metadata={
            REPLACE_FROM: p.replace_from.isoformat(), "rows": len(df), "cycle_points": len(todo),
            "stale_rows_recomputed": p.refresh.stale, "regimes": json_counts(df["regime"]),
            "panic_entries": int(df["entered_panic"].sum()), "best_strategy": json_counts(df["best_strategy"]),
            "continued_from_previous_row": before is not None,
        })
        first_ever = first <= pd.Timestamp(PARTITIONS_START, tz="UTC")
        yield dg.AssetCheckResult(
            asset_key=regime_key, check_name=REGIME_STATE_CONTINUITY,
            passed=not len(todo) or before is not None or first_ever, severity=dg.AssetCheckSeverity.WARN,
            metadata={"recomputed_from": p.replace_from.isoformat(), "continued_from_previous_row": before is not None})

    return [features_15m, features_scan, features_daily, market_regime]
