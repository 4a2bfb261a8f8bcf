"""The operator CLI: config check, demo (the `make run` path) and the workspace loading in `dagster`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cryptotracker_assets.cli import main
from cryptotracker_tests.conftest import PROJECT_ROOT, write_user_config

BIN = Path(sys.executable).parent


def test_config_check_prints_effective_values_and_report(capsys, tmp_path):
    user = write_user_config(tmp_path, "strategies: {swing: {breakout_threshold: 0.012}}\n")
    assert main(["config", "check", str(user)]) == 0
    out = capsys.readouterr().out
    assert "breakout_threshold: 0.012" in out and "config_version: 0" in out
    # trail 0.5 %, activation 1 %, round trip 0.9 % (SPEC §5.1/§6): reported, not an error
    assert "| CHANNEL | large_cap | 0.50 % | 1.00 % |" in out and "| 0.90 % |" in out
    assert out.count("| DCA |") == 4 and out.strip().endswith("config OK")


def test_config_check_fails_naming_the_key(capsys, tmp_path):
    user = write_user_config(tmp_path, "limits: {max_open_totl: 10}\n")
    assert main(["config", "check", str(user)]) == 2
    assert "unknown config key `limits.max_open_totl`" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_materializes_and_prints_the_stored_table(tmp_env):
    env = {**os.environ, **tmp_env}
    env.pop("CRYPTOTRACKER_CONFIG", None)
    proc = subprocess.run([str(BIN / "cryptotracker"), "demo", "--symbols", "BTC,ETH,PEPE", "--days", "1"],
                          capture_output=True, text=True, env=env, cwd=PROJECT_ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    for table in ("ohlc_1m", "ohlc_15m", "ohlc_1h", "ohlc_1d"):
        assert f" {table} " in out or f"{table} " in out
    assert "make ui" in out and "127.0.0.1:3000" in out
    from cryptotracker_assets.storage.warehouse import Warehouse

    summary = Warehouse(tmp_env["CRYPTOTRACKER_WAREHOUSE"]).summary().set_index("table")
    assert summary.loc["ohlc_1m", "symbols"] == 3 and summary.loc["ohlc_1m", "bars"] > 1440 * 3
    assert summary.loc["ohlc_1d", "bars"] == 3  # one complete day × 3 symbols (today's 1d bar is not closed)
    # issue 10: the backtest over the demo window reproduces the live ledger exactly (the same engine, one path)
    from cryptotracker_assets.services.operator import read_ledger

    live = Warehouse(tmp_env["CRYPTOTRACKER_WAREHOUSE"])
    first = live.read_sql("SELECT min(cycle_point) AS t FROM portfolio_snapshots")["t"].iloc[0]
    last = live.engine_state()["cursor"]
    out_path = Path(tmp_env["CRYPTOTRACKER_WAREHOUSE"]).with_name("backtest.duckdb")
    proc = subprocess.run([str(BIN / "cryptotracker"), "replay", "--from", f"{first:%Y-%m-%d}", "--to",
                           f"{last:%Y-%m-%d}", "--out", str(out_path), "--require-parity", "--quiet"],
                          capture_output=True, text=True, env=env, cwd=PROJECT_ROOT, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "0 differences (identical, bit for bit)" in proc.stdout, proc.stdout
    replayed = read_ledger(Warehouse(out_path))
    assert len(replayed) > 0
    pd.testing.assert_frame_equal(read_ledger(live), replayed, check_exact=True)


@pytest.mark.slow
def test_workspace_loads_in_the_dagster_cli(tmp_env):
    env = {**os.environ, **tmp_env}
    proc = subprocess.run([str(BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
                          capture_output=True, text=True, env=env, cwd=PROJECT_ROOT, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
