"""Feature and market-regime assets (SPEC §2, §8, §9.1): thin wrappers over core.features / core.regime.

Each is partitioned by UTC day like the OHLC it reads and reads its warm-up window from the warehouse, so a
day computed alone equals the same day of the continuous series (the core functions' start rule).
"""

from functools import lru_cache

import dagster as dg
import pandas as pd
from dagster_pandera import pandera_schema_to_dagster_type

from resources.config import ProjectConfigResource
from resources.warehouse import WarehouseResource

from ..core.config import Config, Timeframe
from ..core.feature_schemas import (
    DailyContextSchema,
    MarketRegimeSchema,
    MlFeatureSchema,
    ScanFeatureSchema,
    history_report,
)
from ..core.features import (
    compute_daily_context,
    compute_ml_features,
    compute_scan_features,
    daily_warmup,
    feature_set_version,
    ml_warmup,
    scan_warmup,
)
from ..core.regime import MarketState, build_market_regime, regime_warmup
from ..partitions import PARTITIONS_START, daily_partitions
from .market_data import WAREHOUSE_POOL, _markdown_table, ohlc_asset_name

GROUP = "features"
FEATURES_HISTORY = "features_history"  # WARN: a symbol has too little history for its windows
REGIME_STATE_CONTINUITY = "regime_state_continuity"  # WARN: the previous day's state was missing


@lru_cache(maxsize=None)
def _dagster_type(schema):
    return pandera_schema_to_dagster_type(schema)


def _window(context) -> tuple[pd.Timestamp, pd.Timestamp]:
    tw = context.partition_time_window
    return pd.Timestamp(tw.start).tz_convert("UTC"), pd.Timestamp(tw.end).tz_convert("UTC")


def _lookback_days(span: pd.Timedelta) -> int:
    return -(-span // pd.Timedelta(days=1))


def _history_check(frame: pd.DataFrame, asset_key: dg.AssetKey) -> dg.AssetCheckResult:
    if frame.empty:  # no symbol had bars in the window at all
        return dg.AssetCheckResult(asset_key=asset_key, check_name=FEATURES_HISTORY, passed=False,
                                   severity=dg.AssetCheckSeverity.WARN, metadata={"rows": 0})
    report = history_report(frame)
    short = report[report["insufficient_history"].to_numpy(dtype=bool)]
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=FEATURES_HISTORY,
        passed=short.empty,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"symbols_short_of_history": len(short),
                  "symbols": dg.MetadataValue.json(short["symbol"].tolist()),
                  "report": dg.MetadataValue.md(_markdown_table(report))},
    )


def data_horizon(bars: pd.DataFrame, base: Timeframe, start: pd.Timestamp, end: pd.Timestamp) -> pd.Timestamp:
    """The newest moment the stored bars describe: the close of the newest bar read, within [start, end]. A
    partition still filling (today) only gets rows for cycle points / bars that have happened."""
    if bars.empty:
        return start
    newest = bars["timestamp"].max() + pd.Timedelta(minutes=base.minutes)
    return max(start, min(end, newest))


def cycle_end(horizon: pd.Timestamp, end: pd.Timestamp, cfg: Config) -> pd.Timestamp:
    """Exclusive end of the cycle points T ≤ ``horizon`` (at T only bars opening before T are used)."""
    step = pd.Timedelta(minutes=cfg.engine.cycle_min)
    return min(end, horizon.floor(step) + step)


def _feature_asset(name: str, schema, deps: list, description: str, time_column: str = "timestamp", **extra):
    """The decorator shared by the daily feature tables: partitions, warehouse table, Pandera type, history check."""
    key = dg.AssetKey(name)
    return dg.asset(
        name=name, group_name=GROUP, partitions_def=daily_partitions, io_manager_key="table_io_manager",
        dagster_type=_dagster_type(schema), deps=deps, metadata={"table": name, "time_column": time_column},
        check_specs=[dg.AssetCheckSpec(FEATURES_HISTORY, asset=key,
                                       description="Symbols whose every row is still in the warm-up.")],
        backfill_policy=dg.BackfillPolicy.single_run(), pool=WAREHOUSE_POOL, kinds={"pandas", "duckdb"},
        description=description, **extra,
    )


def _scan_symbols(cfg: Config, universe) -> list[str]:
    symbols = universe.active_symbols
    return symbols if universe.market_symbol in symbols else [*symbols, universe.market_symbol]


def build_feature_assets(cfg: Config) -> list[dg.AssetsDefinition]:
    """The feature assets for this config (the base timeframe decides which OHLC asset they read)."""
    base = cfg.engine.base_timeframe
    base_key = dg.AssetKey(ohlc_asset_name(base))

    def lookback(key: dg.AssetKey, span: pd.Timedelta, end_offset: int = 0) -> dg.AssetDep:
        return dg.AssetDep(key, partition_mapping=dg.TimeWindowPartitionMapping(
            start_offset=-_lookback_days(span), end_offset=end_offset, allow_nonexistent_upstream_partitions=True))

    ml_key = dg.AssetKey("features_15m")

    @_feature_asset("features_15m", MlFeatureSchema, [lookback(base_key, ml_warmup(cfg))],
                    f"The 29 ML indicators on {cfg.features.ml.timeframe.value} bars aggregated from stored "
                    f"{base.value} bars, plus their *_rel model inputs (SPEC §2.2).")
    def features_15m(context: dg.AssetExecutionContext, project_config: ProjectConfigResource,
                     warehouse: WarehouseResource):
        cfg_ = project_config.load()
        start, end = _window(context)
        symbols = project_config.universe().active_symbols
        bars = warehouse.get().read_bars(base, start - ml_warmup(cfg_), end, symbols)
        # Only bars closed by the data horizon: a 15m bar opening at t needs every base bar of [t, t + 15 min).
        closed = data_horizon(bars, base, start, end).floor(f"{cfg_.features.ml.timeframe.minutes}min")
        df = compute_ml_features(bars, cfg_, start=start, end=max(start, closed), bar_timeframe=base)
        yield dg.Output(df, metadata={"rows": len(df), "symbols": int(df["symbol"].nunique()) if len(df) else 0,
                                      "warmup_rows": int(df["warmup"].sum()) if len(df) else 0,
                                      "bars_read": len(bars), "feature_set_version": feature_set_version(cfg_)})
        yield _history_check(df, ml_key)

    scan_key = dg.AssetKey("features_scan")

    @_feature_asset("features_scan", ScanFeatureSchema, [lookback(base_key, scan_warmup(cfg))],
                    f"Scan features (SPEC §2.1) per active symbol and cycle point, at the decision bar "
                    f"({base.value} bars).")
    def features_scan(context: dg.AssetExecutionContext, project_config: ProjectConfigResource,
                      warehouse: WarehouseResource):
        cfg_ = project_config.load()
        u = project_config.universe()
        start, end = _window(context)
        bars = warehouse.get().read_bars(base, start - scan_warmup(cfg_), end, _scan_symbols(cfg_, u))
        stop = cycle_end(data_horizon(bars, base, start, end), end, cfg_)
        df = compute_scan_features(bars, cfg_, start=start, end=stop, symbols=u.active_symbols)
        yield dg.Output(df, metadata={"rows": len(df), "stale_rows": int(df["stale"].sum()) if len(df) else 0,
                                      "bars_read": len(bars)})
        yield _history_check(df, scan_key)

    daily_key = dg.AssetKey("features_daily")

    @_feature_asset("features_daily", DailyContextSchema,
                    [lookback(dg.AssetKey(ohlc_asset_name(Timeframe.D1)), daily_warmup(cfg), end_offset=-1)],
                    "Daily BTC context (SPEC §2.3): SMA distances, volatility, trend regime, symbol vs BTC, "
                    "from completed UTC days before each day.")
    def features_daily(context: dg.AssetExecutionContext, project_config: ProjectConfigResource,
                       warehouse: WarehouseResource):
        cfg_ = project_config.load()
        u = project_config.universe()
        start, end = _window(context)
        # Day D uses completed days before D only: the last day of the window needs bars opening before it.
        bars = warehouse.get().read_bars(Timeframe.D1, start - daily_warmup(cfg_), end - pd.Timedelta(days=1),
                                         _scan_symbols(cfg_, u))
        df = compute_daily_context(bars, cfg_, start=start, end=end, bar_timeframe=Timeframe.D1,
                                   symbols=u.active_symbols)
        yield dg.Output(df, metadata={"rows": len(df), "bars_read": len(bars),
                                      "btc_trend": dg.MetadataValue.json(
                                          df["btc_trend"].value_counts().to_dict() if len(df) else {})})
        yield _history_check(df, daily_key)

    regime_key = dg.AssetKey("market_regime")

    @dg.asset(
        name="market_regime", group_name=GROUP, partitions_def=daily_partitions, io_manager_key="table_io_manager",
        dagster_type=_dagster_type(MarketRegimeSchema),
        ins={"previous_day": dg.AssetIn(key=regime_key, partition_mapping=dg.TimeWindowPartitionMapping(
            start_offset=-1, end_offset=-1, allow_nonexistent_upstream_partitions=True),
            dagster_type=dg.Any)},
        deps=[lookback(base_key, regime_warmup(cfg))],
        metadata={"table": "market_regime", "time_column": "timestamp"},
        check_specs=[dg.AssetCheckSpec(REGIME_STATE_CONTINUITY, asset=regime_key,
                                       description="The volatility-disable state continued from the previous day.")],
        backfill_policy=dg.BackfillPolicy.single_run(), pool=WAREHOUSE_POOL, kinds={"pandas", "duckdb"},
        description="One shared market state per cycle point (SPEC §8, §9.1): regime, BTC returns at exact "
                    "horizons, vol24h, declines, per-strategy volatility disable, market structure and best strategy.",
    )
    def market_regime(context: dg.AssetExecutionContext, previous_day: pd.DataFrame,
                      project_config: ProjectConfigResource, warehouse: WarehouseResource):
        cfg_ = project_config.load()
        u = project_config.universe()
        start, end = _window(context)
        first_partition = start <= pd.Timestamp(PARTITIONS_START, tz="UTC")
        previous = None
        if previous_day is not None and len(previous_day):
            previous = MarketState.from_row(previous_day.sort_values("timestamp").iloc[-1])
        symbols = list(dict.fromkeys([u.market_symbol, *cfg_.prioritisation.symbols]))
        bars = warehouse.get().read_bars(base, start - regime_warmup(cfg_), end, symbols)
        stop = cycle_end(data_horizon(bars, base, start, end), end, cfg_)
        df, _ = build_market_regime(bars, cfg_, start=start, end=stop, previous=previous, bar_timeframe=base)
        counts = df["regime"].value_counts().to_dict() if len(df) else {}
        yield dg.Output(df, metadata={
            "rows": len(df), "regimes": dg.MetadataValue.json({k: int(v) for k, v in counts.items()}),
            "panic_entries": int(df["entered_panic"].sum()) if len(df) else 0,
            "best_strategy": dg.MetadataValue.json(
                {k: int(v) for k, v in df["best_strategy"].value_counts().to_dict().items()} if len(df) else {}),
            "continued_from_previous_day": previous is not None,
        })
        yield dg.AssetCheckResult(
            asset_key=regime_key, check_name=REGIME_STATE_CONTINUITY, passed=previous is not None or first_partition,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"previous_day_rows": 0 if previous_day is None else len(previous_day)},
        )

    return [features_15m, features_scan, features_daily, market_regime]
