"""``daily_performance`` rows (one UTC day × strategy) on hand-built scan rows and ledger rows, and the Pandera
model that guards the table: every expected number is written out by hand from the rows below."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pandera.errors as pa_errors
import pytest

from cryptotracker_assets.core.ledger import ledger_frame
from cryptotracker_assets.core.report_schemas import DailyPerformanceSchema
from cryptotracker_assets.core.reports import DAILY_PERFORMANCE_COLUMNS, daily_performance
from cryptotracker_tests.core.test_trading_report import buy, sell

DAY = pd.Timestamp("2026-03-01", tz="UTC")


def ts(s: str) -> pd.Timestamp:
    return pd.Timestamp(s, tz="UTC")


def scans() -> pd.DataFrame:
    # (T, strategy, setup, decision): the first and the last row fall outside the day
    rows = [("2026-02-28 23:55", "DCA", True, "TAKE"),
            ("2026-03-01 00:00", "DCA", True, "TAKE"), ("2026-03-01 00:00", "DCA", True, "SKIP"),
            ("2026-03-01 00:05", "DCA", False, "SKIP"), ("2026-03-01 06:00", "SWING", True, "NEAR_MISS"),
            ("2026-03-01 07:00", "SWING", False, "SKIP"), ("2026-03-01 23:55", "CHANNEL", True, "TAKE"),
            ("2026-03-01 23:55", "CHANNEL", True, "TAKE"), ("2026-03-01 23:55", "CHANNEL", True, "SKIP"),
            ("2026-03-02 00:00", "CHANNEL", True, "TAKE")]
    return pd.DataFrame({"timestamp": pd.to_datetime([r[0] for r in rows], utc=True),
                         "strategy": [r[1] for r in rows], "setup": [r[2] for r in rows],
                         "decision": [r[3] for r in rows]})


def ledger():
    return ledger_frame([
        # closed on the day: SWING BTC +2 on 50, SWING ETH −1 on 50, CHANNEL SOL +0.5 on 50
        buy("SWING", "BTC", "08:00", cp="08:05", size=50.0, qty=1.0, fill=50.0, fee=0.15, slip=0.0),
        sell("SWING", "BTC", "08:00", "09:00", "09:05", pnl=2.0, pct=0.04, fee=0.156, slip=0.0),
        buy("SWING", "ETH", "08:00", cp="08:05", size=50.0, qty=1.0, fill=50.0, fee=0.15, slip=0.0),
        sell("SWING", "ETH", "08:00", "23:59", "00:00", pnl=-1.0, pct=-0.02, fee=0.147, slip=0.0,
             reason="stop_loss") | {"cycle_point": ts("2026-03-02 00:00")},  # exit bar 23:59, processed next day
        buy("CHANNEL", "SOL", "10:00", cp="10:05", size=50.0, qty=1.0, fill=50.0, fee=0.15, slip=0.0),
        sell("CHANNEL", "SOL", "10:00", "11:00", "11:05", pnl=0.5, pct=0.01, fee=0.15, slip=0.0),
        # closed the day before (entered 02-28): not the day's
        buy("DCA", "LINK", "06:00", cp="06:05", size=25.0, qty=1.0, fill=25.0, fee=0.075, slip=0.0) | {
            "entry_time": ts("2026-02-28 06:00"), "cycle_point": ts("2026-02-28 06:05")},
        sell("DCA", "LINK", "06:00", "07:00", "07:05", pnl=1.0, pct=0.04, fee=0.08, slip=0.0) | {
            "entry_time": ts("2026-02-28 06:00"), "bar_time": ts("2026-02-28 23:00"),
            "cycle_point": ts("2026-02-28 23:05")},
        # still open
        buy("DCA", "DOGE", "12:00", cp="12:05", size=10.0, qty=100.0, fill=0.1, fee=0.03, slip=0.0, group=30.0,
            levels=3),
    ])


def test_rows_of_the_day(cfg):
    df = daily_performance(DAY, scan_rows=scans(), ledger=ledger(),
                           champion_composites={"SWING": 0.62, "CHANNEL": None}, config_version=7)
    assert list(df.columns) == list(DAILY_PERFORMANCE_COLUMNS)
    assert list(df["strategy"]) == ["DCA", "SWING", "CHANNEL"]
    assert (df["day"] == DAY).all() and str(df["day"].dtype) == "datetime64[ns, UTC]"
    assert list(df["setups_detected"]) == [2, 1, 3]
    assert list(df["setups_taken"]) == [1, 0, 2]
    assert list(df["trades"]) == [0, 2, 1] and list(df["wins"]) == [0, 1, 1] and list(df["losses"]) == [0, 1, 0]
    assert list(df["net_pnl_usd"]) == [0.0, 1.0, 0.5]
    assert math.isnan(df["net_pnl_pct"].iloc[0])
    assert df["net_pnl_pct"].iloc[1] == pytest.approx(1.0 / 100.0, abs=1e-15)  # (2 − 1) / (50 + 50)
    assert df["net_pnl_pct"].iloc[2] == pytest.approx(0.01, abs=1e-15)
    assert df["fees_usd"].tolist() == pytest.approx([0.0, 0.15 + 0.156 + 0.15 + 0.147, 0.15 + 0.15], abs=1e-12)
    assert np.isnan(df["champion_composite"].iloc[0]) and df["champion_composite"].iloc[1] == 0.62
    assert np.isnan(df["champion_composite"].iloc[2])
    assert list(df["config_version"]) == [7, 7, 7]
    DailyPerformanceSchema.validate(df, lazy=True)


def test_a_quiet_day_still_has_three_rows(cfg):
    df = daily_performance(ts("2026-03-05"), scan_rows=None, ledger=ledger_frame([]), champion_composites={},
                           config_version=1)
    assert list(df["strategy"]) == ["DCA", "SWING", "CHANNEL"]
    assert df[["setups_detected", "setups_taken", "trades", "wins", "losses"]].to_numpy().sum() == 0
    assert (df["net_pnl_usd"] == 0.0).all() and df["net_pnl_pct"].isna().all()
    DailyPerformanceSchema.validate(df, lazy=True)
    with pytest.raises(ValueError, match="00:00 UTC"):
        daily_performance(ts("2026-03-05 06:00"), scan_rows=None, ledger=ledger_frame([]), champion_composites={},
                          config_version=1)


@pytest.mark.parametrize("column,value,check", [
    ("wins", 2, "wins + losses exceed trades"),
    ("setups_taken", 9, "more setups taken than detected"),
    ("trades", -1, "greater_than_or_equal_to"),
    ("net_pnl_pct", float("nan"), "NaN exactly when there is no trade"),
    ("champion_composite", 1.2, "less_than_or_equal_to"),
    ("strategy", "SCALP", "isin"),
])
def test_the_schema_rejects_broken_rows(cfg, column, value, check):
    df = daily_performance(DAY, scan_rows=scans(), ledger=ledger(), champion_composites={"SWING": 0.62},
                           config_version=7)
    bad = df.copy()
    bad.loc[2, column] = value  # the CHANNEL row: 1 trade, 1 win, 3 detected, 2 taken
    with pytest.raises(pa_errors.SchemaErrors, match=re.escape(check)):
        DailyPerformanceSchema.validate(bad, lazy=True)


def test_the_schema_rejects_a_repeated_day_and_strategy_and_a_day_not_at_midnight(cfg):
    df = daily_performance(DAY, scan_rows=scans(), ledger=ledger(), champion_composites={}, config_version=7)
    with pytest.raises(pa_errors.SchemaErrors, match="unique"):
        DailyPerformanceSchema.validate(pd.concat([df, df.iloc[[0]]], ignore_index=True), lazy=True)
    moved = df.assign(day=df["day"] + pd.Timedelta(hours=1))
    with pytest.raises(pa_errors.SchemaErrors, match="not 00:00 UTC"):
        DailyPerformanceSchema.validate(moved, lazy=True)
