"""Runless materializations reported by the CLI to the Dagster instance of ``$DAGSTER_HOME`` (an approval, a model
promotion done outside a run): the Assets page shows them with who and why. Only when the instance exists (never
created here); a failure is a warning, never a failed command — the change itself is already committed."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def report_materialization(dagster_home: str, asset_key: str, metadata: dict, *, partition: str | None = None,
                           description: str | None = None) -> None:
    home = Path(dagster_home)
    if not (home / "dagster.yaml").exists():
        return
    try:
        os.environ["DAGSTER_HOME"] = str(home)
        import dagster as dg

        with dg.DagsterInstance.get() as instance:
            instance.report_runless_asset_event(dg.AssetMaterialization(
                asset_key=asset_key, partition=partition, description=description,
                metadata={k: v for k, v in metadata.items() if v is not None}))
    except Exception as exc:  # the change is committed; the instance only mirrors it
        print(f"warning: {asset_key} not reported to the Dagster instance at {home}: {exc}", file=sys.stderr)
