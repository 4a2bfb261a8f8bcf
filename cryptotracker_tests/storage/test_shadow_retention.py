"""Retention of the shadow tables (SPEC §13.1): decisions older than ``data.retention_d.decisions`` go, except takes
still PENDING and takes whose exit is not older than the cutoff; exits older than the cutoff go with their decisions;
``apply_retention`` prunes them with the other decision tables."""

from __future__ import annotations

import pandas as pd

from cryptotracker_assets.core.config import load_config
from cryptotracker_assets.core.shadows import decision_frame, exit_frame
from cryptotracker_assets.services.maintenance import apply_retention
from cryptotracker_assets.storage.engine import SHADOW_EXITS_TABLE, SHADOW_OUTCOMES_TABLE
from cryptotracker_assets.storage.tables import append_keyed
from cryptotracker_assets.storage.warehouse import Warehouse

NOW = pd.Timestamp("2026-03-01", tz="UTC")
D = pd.Timedelta(days=1)


def decision(sid: str, t: pd.Timestamp, opened: bool) -> dict:
    return {"shadow_id": f"DCA_BTC_{sid}_CHAMPION", "scan_id": f"DCA_BTC_{sid}", "timestamp": t, "symbol": "BTC",
            "tier": "large_cap", "strategy": "DCA", "variation": "CHAMPION", "would_take": opened, "opened": opened,
            "skip_reason": None if opened else "no_setup", "production_decision": "SKIP", "production_take": False,
            "confidence": 0.5, "threshold": 0.45, "setup_value": -0.02, "setup_threshold": -0.0175,
            "regime": "NORMAL", "size_usd": 50.0 if opened else None, "take_profit": 0.04 if opened else None,
            "stop_loss": 0.06 if opened else None, "trail": 0.02 if opened else None,
            "trail_activation": 0.02 if opened else None, "max_hold_h": 72.0 if opened else None,
            "grid_levels": 3 if opened else None, "grid_spacing": 0.02 if opened else None, "config_version": 1}


def exit_row(sid: str, t: pd.Timestamp, closed: pd.Timestamp) -> dict:
    return {"shadow_id": f"DCA_BTC_{sid}_CHAMPION", "scan_id": f"DCA_BTC_{sid}", "variation": "CHAMPION",
            "strategy": "DCA", "symbol": "BTC", "tier": "large_cap", "decided_at": t, "closed_at": closed,
            "expired": False, "entry_time": t, "exit_time": closed, "exit_reason": "take_profit", "outcome": "WIN",
            "avg_entry": 100.0, "exit_fill": 104.0, "size_usd": 50.0, "pnl_usd": 1.5, "pnl_pct": 0.03,
            "hold_h": (closed - t) / pd.Timedelta(hours=1), "grid_fills": 1, "no_data": False, "fees_usd": 0.3,
            "high_water": 104.0}


def test_retention_keeps_pending_shadows_and_takes_whose_exit_is_recent(warehouse_location):
    cfg = load_config(None)
    keep_d = cfg.data.retention_d.decisions
    old, recent = NOW - (keep_d + 5) * D, NOW - 2 * D
    decisions = [decision("2601010000", old, True),  # closed long ago: goes
                 decision("2601010005", old, True),  # still PENDING: stays
                 decision("2601010010", old, True),  # closed after the cutoff: stays with its exit
                 decision("2601010015", old, False),  # not a take: goes
                 decision("2602270000", recent, False)]  # recent: stays
    exits = [exit_row("2601010000", old, old + D), exit_row("2601010010", old, recent)]
    wh = Warehouse(warehouse_location)  # DuckDB and PostgreSQL alike
    with wh.transaction() as con:
        append_keyed(con, SHADOW_OUTCOMES_TABLE, decision_frame(decisions), ("shadow_id",))
        append_keyed(con, SHADOW_EXITS_TABLE, exit_frame(exits), ("shadow_id",))
    deleted = apply_retention(wh, cfg, NOW)
    assert deleted["shadow_outcomes"] == 3  # two decisions and one exit
    left = wh.shadow_rows()
    assert sorted(left.decisions["scan_id"]) == ["DCA_BTC_2601010005", "DCA_BTC_2601010010", "DCA_BTC_2602270000"]
    assert list(left.exits["scan_id"]) == ["DCA_BTC_2601010010"]
