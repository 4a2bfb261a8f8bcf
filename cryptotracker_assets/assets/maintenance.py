"""Gap healing (`data_gaps`) and retention."""


import dagster as dg

from resources.config import ProjectConfigResource
from resources.market_data import MarketDataSource
from resources.warehouse import WarehouseResource

from ..core.config import Timeframe
from ..services.alerts import queue_data_health
from ..services.ingest import ingest_symbols, utc_now
from ..services.maintenance import apply_retention, heal_gaps, unhealed_alerts
from .common import WAREHOUSE_POOL, markdown_table, ohlc_asset_name
from .retries import TRANSIENT_RETRY, data_errors_are_final


def build_data_gaps_asset(timeframes: list[Timeframe]) -> dg.AssetsDefinition:
    @dg.asset(
        name="data_gaps",
        group_name="market_data",
        deps=[dg.AssetKey(ohlc_asset_name(tf)) for tf in timeframes],
        pool=WAREHOUSE_POOL,
        kinds={"duckdb"},
        description="Gaps in the stored candles of the active symbols and of the inactive ones the engine still "
                    "holds, re-fetched and upserted: healed, confirmed_empty or open.",
        retry_policy=TRANSIENT_RETRY,
    )
    @data_errors_are_final
    def data_gaps(
        project_config: ProjectConfigResource,
        market_data: MarketDataSource,
        warehouse: WarehouseResource,
    ) -> dg.MaterializeResult:
        cfg = project_config.load()
        now = utc_now()
        wh = warehouse.get()
        gaps = heal_gaps(
            lambda s, t, a, b: market_data.fetch_bars(s, t, a, b, cfg),
            wh, cfg, timeframes, ingest_symbols(wh, project_config.universe()), now,
        )
        alerts = unhealed_alerts(gaps, cfg, now)
        if len(alerts):
            queue_data_health(
                wh, cfg, source="data_gaps", at=alerts["gap_start"].min(),  # the same open gaps: said once
                identity={"gaps": sorted(f"{r.symbol}/{r.timeframe}/{r.gap_start:%Y%m%d%H%M}"
                                         for r in alerts.itertuples())},
                text=f"data_gaps: {len(alerts)} unhealed gap(s) in the last 24 h: "
                     + ", ".join(f"{r.symbol} {r.timeframe} {r.gap_start:%Y-%m-%d %H:%M}" for r in
                                 alerts.head(10).itertuples()),
                symbols=sorted(alerts["symbol"].unique()),
                counts={str(k): int(v) for k, v in alerts.groupby("timeframe").size().items()})
        counts = gaps.groupby("status").size().to_dict() if len(gaps) else {}
        return dg.MaterializeResult(
            metadata={
                "gaps": len(gaps),
                "by_status": dg.MetadataValue.json({k: int(v) for k, v in counts.items()}),
                "healed_bars": int(gaps["healed_bars"].sum()) if len(gaps) else 0,
                "unhealed_alerts": len(alerts),
                "gaps_table": dg.MetadataValue.md(markdown_table(gaps.drop(columns=["detected_at", "checked_at"]))),
            }
        )

    return data_gaps


@dg.op(pool=WAREHOUSE_POOL, description="Delete bars and decision rows older than data.retention_d.")
def apply_retention_op(
    context: dg.OpExecutionContext, project_config: ProjectConfigResource, warehouse: WarehouseResource
) -> dict:
    deleted = apply_retention(warehouse.get(), project_config.load(), utc_now())
    context.log.info(f"retention deleted: {deleted}")
    context.add_output_metadata({"deleted": dg.MetadataValue.json(deleted)})
    return deleted


@dg.job(description="Apply data.retention_d to the warehouse.", tags={"cryptotracker/kind": "maintenance"})
def retention_job():
    apply_retention_op()
