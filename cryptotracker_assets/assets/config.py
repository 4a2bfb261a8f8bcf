"""The effective config and the universe as assets (SPEC §0.5, §1; I-10)."""


import dagster as dg
import pandas as pd

from resources.config import ProjectConfigResource
from resources.warehouse import WarehouseResource

from ..core.config import format_trail_lock_report, trail_lock_report
from ..services.config_versions import versioned
from ..services.ingest import utc_now
from .common import OWNERS, WAREHOUSE_POOL

GROUP = "config"


@dg.asset(group_name=GROUP, pool=WAREHOUSE_POOL, kinds={"duckdb"},
          description="The effective config (config.yaml ⊕ CRYPTOTRACKER_CONFIG) with its version (SPEC §0.3: one "
                      "integer sequence in config_versions, +1 per distinct effective config) and reports.")
def effective_config(project_config: ProjectConfigResource, warehouse: WarehouseResource) -> dg.MaterializeResult:
    wh = warehouse.get()
    cfg = project_config.load()
    if project_config.warehouse is None:  # a resource without its warehouse: version it here
        cfg = versioned(wh, cfg, project_config.origin, utc_now())
    row = wh.config_version_row(cfg.config_version)
    report = trail_lock_report(cfg)
    return dg.MaterializeResult(
        metadata={
            "config_version": cfg.config_version,
            "content_hash": row.content_hash[:16],
            "origin": row.origin,
            "recorded_at": row.recorded_at.isoformat(),
            "versions": len(wh.config_versions()),
            "user_config": project_config.user_config_path or "(none)",
            "trail_lock_report": dg.MetadataValue.md(format_trail_lock_report(report)),
            "trail_lock_cells": len(report),
        }
    )


@dg.asset(group_name="config", pool=WAREHOUSE_POOL, kinds={"duckdb"},
          description="The coin universe: symbol, tier, Polygon ticker and active flag (SPEC §1).")
def universe(project_config: ProjectConfigResource, warehouse: WarehouseResource) -> dg.MaterializeResult:
    u = project_config.universe()
    df = u.to_frame()
    warehouse.get().replace_table("universe", df)
    counts = df.groupby("tier").size().to_dict()
    return dg.MaterializeResult(
        metadata={"symbols": len(df), "active": int(df["active"].sum()), "by_tier": dg.MetadataValue.json(counts),
                  "market_symbol": u.market_symbol}
    )
