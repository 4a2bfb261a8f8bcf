"""Gap healing, retention and the data-health checks on the stored tables."""

from __future__ import annotations

import pandas as pd

import dagster as dg
from cryptotracker_assets.core.config import Timeframe
from cryptotracker_assets.definitions import build_definitions
from cryptotracker_assets.services.maintenance import apply_retention, heal_gaps
from cryptotracker_assets.storage.warehouse import Warehouse

DAY = pd.Timestamp("2026-04-01", tz="UTC")


def stored(symbol: str, minutes, price=100.0, ingested="2026-04-02") -> pd.DataFrame:
    ts = [DAY + pd.Timedelta(minutes=m) for m in minutes]
    p = price + pd.Series(range(len(ts)), dtype=float)
    return pd.DataFrame({"symbol": symbol, "timestamp": pd.to_datetime(ts, utc=True).astype("datetime64[ns, UTC]"),
                         "open": p, "high": p + 1, "low": p - 1, "close": p, "volume": 1.0, "suspect": False,
                         "ingested_at": pd.Timestamp(ingested, tz="UTC").as_unit("ns")})


def test_heal_gaps_statuses(tmp_path, cfg):
    wh = Warehouse(tmp_path / "w.duckdb")
    minutes = list(range(0, 10)) + list(range(20, 30))  # a 10-minute hole: 10..19 (> 5 intervals)
    wh.replace_bars("1m", pd.concat([stored("BTC", minutes), stored("ETH", minutes), stored("SOL", minutes)]),
                    DAY, DAY + pd.Timedelta(days=1), ["BTC", "ETH", "SOL"])

    def fetch(symbol, tf, start, end):
        if symbol == "BTC":  # the provider has the bars now
            return stored("BTC", range(10, 20), price=200.0).drop(columns=["suspect", "ingested_at"])
        if symbol == "ETH":  # no trades there
            return stored("ETH", []).drop(columns=["suspect", "ingested_at"])
        raise RuntimeError("HTTP 500 after 5 retries")

    now = DAY + pd.Timedelta(hours=1)
    gaps = heal_gaps(fetch, wh, cfg, [Timeframe.M1], ["BTC", "ETH", "SOL"], now)
    assert gaps.set_index("symbol")["status"].to_dict() == {"BTC": "healed", "ETH": "confirmed_empty", "SOL": "open"}
    assert gaps["missing"].tolist() == [10, 10, 10] and gaps.set_index("symbol").loc["BTC", "healed_bars"] == 10
    btc = wh.read_bars("1m", symbols=["BTC"])
    assert len(btc) == 30 and btc["timestamp"].is_monotonic_increasing and wh.duplicate_keys("1m") == 0
    assert wh.read_sql("SELECT count(*) AS n FROM data_gaps")["n"].iloc[0] == 3
    # A second pass finds only the gaps still there.
    again = heal_gaps(fetch, wh, cfg, [Timeframe.M1], ["BTC", "ETH", "SOL"], now)
    assert sorted(again["symbol"]) == ["ETH", "SOL"]


def test_retention_deletes_only_older_than_configured(tmp_path, cfg):
    wh = Warehouse(tmp_path / "w.duckdb")
    old = stored("BTC", [0, 1])
    new = stored("BTC", [0, 1]).assign(timestamp=lambda d: d["timestamp"] + pd.Timedelta(days=40))
    wh.replace_bars("1m", old, DAY, DAY + pd.Timedelta(days=1), ["BTC"])
    wh.replace_bars("1m", new, DAY + pd.Timedelta(days=40), DAY + pd.Timedelta(days=41), ["BTC"])
    daily = stored("BTC", [0]).assign(timestamp=DAY - pd.Timedelta(days=4000))
    wh.replace_bars("1d", daily, DAY - pd.Timedelta(days=4000), DAY - pd.Timedelta(days=3999), ["BTC"])
    snaps = pd.DataFrame({"cycle_point": [DAY, DAY + pd.Timedelta(days=40)], "equity": [1.0, 2.0]})
    snaps["cycle_point"] = snaps["cycle_point"].astype("datetime64[ns, UTC]")
    wh.replace_table("portfolio_snapshots", snaps)
    deleted = apply_retention(wh, cfg, DAY + pd.Timedelta(days=41))
    assert deleted["ohlc_1m"] == 2 and "ohlc_1d" not in deleted  # 1d: kept forever (null)
    assert len(wh.read_bars("1m")) == 2 and len(wh.read_bars("1d")) == 1
    # decisions: 35 days → the 41-day-old snapshot goes, the 1-day-old one stays; absent tables are skipped
    assert deleted["portfolio_snapshots"] == 1 and deleted["scan_history"] == 0
    assert wh.read_sql("SELECT equity FROM portfolio_snapshots")["equity"].tolist() == [2.0]


def test_data_health_job_flags_stale_and_passes_fresh(tmp_env, instance, tmp_path):
    user = tmp_path / "u.yaml"
    user.write_text("universe:\n  large_cap: [BTC, ETH]\n  mid_cap: []\n  small_cap: []\n  memecoin: []\n"
                    "  inactive: []\nprioritisation: {symbols: [BTC, ETH]}\n")
    env = {**tmp_env, "CRYPTOTRACKER_CONFIG": str(user)}
    defs = build_definitions(env)
    today = pd.Timestamp.now(tz="UTC").floor("1D").strftime("%Y-%m-%d")
    assert defs.resolve_job_def("ohlc_1m_job").execute_in_process(
        partition_key=today, instance=instance, run_config={"ops": {"ohlc_1m": {"config": {"symbols": ["BTC"]}}}}
    ).success
    r = defs.resolve_job_def("data_health_job").execute_in_process(instance=instance)
    evals = {(e.asset_key.to_user_string(), e.check_name): e for e in r.get_asset_check_evaluations()}
    fresh = evals[("ohlc_1m", "ohlc_freshness")]
    assert not fresh.passed and list(fresh.metadata["lag_by_symbol"].value) == ["ETH"]  # BTC fresh, ETH absent
    assert evals[("ohlc_1m", "ohlc_unique_keys")].passed
    assert not evals[("ohlc_15m", "ohlc_freshness")].passed  # nothing stored for 15m
    assert evals[("ohlc_15m", "ohlc_aggregates")].passed
    assert fresh.severity == dg.AssetCheckSeverity.WARN
