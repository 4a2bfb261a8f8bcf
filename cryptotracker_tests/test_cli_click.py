"""The ``cryptotracker`` click CLI: ``--help`` on every command and group, usage errors (exit 2 naming the
argument), the warehouse / Dagster instance rule with the session line every command prints (the user-reported
bug: after ``make run`` a bare ``.venv/bin/cryptotracker data`` finds the warehouse ``make run`` wrote), read-only
commands that create nothing, and tables that fit a given terminal width."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pandas as pd
import pytest
from click.testing import CliRunner

from cryptotracker_assets.cli import cli, main
from cryptotracker_assets.cli_common import fit_table
from cryptotracker_assets.storage.warehouse import Warehouse

BIN = Path(sys.executable).parent
ENV_KEYS = ("DAGSTER_HOME", "CRYPTOTRACKER_WAREHOUSE", "CRYPTOTRACKER_CONFIG", "CRYPTOTRACKER_MODELS",
            "CRYPTOTRACKER_MARKET_SOURCE", "POLYGON_API_KEY")


def commands(group: click.Group, path: tuple[str, ...] = ()):
    """Every (path, command) below ``group``, groups included."""
    for name, cmd in sorted(group.commands.items()):
        yield (*path, name), cmd
        if isinstance(cmd, click.Group):
            yield from commands(cmd, (*path, name))


def run(args: list[str], env: dict[str, str | None] | None = None):
    """The group in a CliRunner (its standalone mode: the exit code a shell sees) with the project's variables
    unset unless given."""
    base: dict[str, str | None] = {k: None for k in ENV_KEYS}
    return CliRunner().invoke(cli, args, env={**base, **(env or {})}, catch_exceptions=False)


def test_every_command_and_group_has_help_listing_its_options():
    seen = list(commands(cli))
    names = {" ".join(p) for p, _ in seen}
    for expected in ("demo", "config check", "status", "positions", "performance", "pause", "resume", "close", "data",
                     "simulate", "replay", "approve", "reject", "proposals list", "proposals show", "rollback",
                     "shadows", "models list", "models show", "models promote", "models rollback", "analyze",
                     "export", "report"):
        assert expected in names, expected
    for path, cmd in [((), cli), *seen]:
        r = run([*path, "--help"])
        assert r.exit_code == 0, (path, r.output)
        assert r.output.startswith("Usage: ")
        for p in cmd.params:
            if isinstance(p, click.Option):
                for opt in p.opts:
                    assert opt in r.output, (path, opt)
            else:
                assert p.human_readable_name in r.output, (path, p.name)
        if isinstance(cmd, click.Group):
            for sub in cmd.commands:
                assert sub in r.output


@pytest.mark.parametrize("args, names", [
    (["analyze", "--window", "5x"], ["'--window'", "'5x'"]),
    (["export", "--window", "0h", "--out", "x"], ["'--window'"]),
    (["close"], ["TRADE_GROUP_ID"]),
    (["close", "DCA_BTC_260203120000_abcd"], ["'--why'"]),
    (["performance", "--since", "yesterdayish"], ["'--since'", "yesterdayish"]),
    (["rollback", "--last", "24x"], ["'--last'", "expected a positive span"]),
    (["replay", "--from", "2026-02-03", "--to", "2026-02-02", "--out", "bt.duckdb"], ["'--to'", "before --from"]),
    (["replay", "--from", "2026-02-03 12:00", "--to", "2026-02-04", "--out", "bt.duckdb"], ["'--from'", "UTC day"]),
    (["models", "rollback", "NOPE", "--by", "a", "--why", "b"], ["'STRATEGY'", "'NOPE' is not one of"]),
    (["shadows", "--strategy", "X"], ["'--strategy'"]),
    (["demo", "--symbols", "BTC", "--days", "-1"], ["'--days'"]),
    (["nonsense"], ["No such command 'nonsense'"]),
])
def test_bad_arguments_exit_2_naming_the_argument(tmp_path, monkeypatch, capsys, args, names):
    monkeypatch.chdir(tmp_path)
    r = run(args)
    assert r.exit_code == 2, r.output
    for n in names:
        assert n in r.stderr, (n, r.stderr)
    # the console script's main returns the same code, with the message on stderr
    assert main(args) == 2
    err = capsys.readouterr().err
    assert names[0] in err
    assert list(tmp_path.iterdir()) == []  # a usage error writes nothing


def session_line(output: str) -> str:
    return output.splitlines()[0]


def test_the_warehouse_rule_and_the_session_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    home, wh = tmp_path / "home", tmp_path / "elsewhere" / "w.duckdb"
    # 1. CRYPTOTRACKER_WAREHOUSE wins over DAGSTER_HOME
    r = run(["data"], {"DAGSTER_HOME": str(home), "CRYPTOTRACKER_WAREHOUSE": str(wh)})
    assert session_line(r.output) == (f"warehouse: {wh} ($CRYPTOTRACKER_WAREHOUSE, not created yet) · Dagster "
                                      f"instance: {home} ($DAGSTER_HOME, none yet)")
    # 2. without it: $DAGSTER_HOME/warehouse.duckdb
    r = run(["data"], {"DAGSTER_HOME": str(home)})
    assert session_line(r.output) == (f"warehouse: {home / 'warehouse.duckdb'} ($DAGSTER_HOME, not created yet) · "
                                      f"Dagster instance: {home} ($DAGSTER_HOME, none yet)")
    # 3. neither: ./.dagster_home of the working directory
    r = run(["data"])
    default = tmp_path / ".dagster_home"
    assert session_line(r.output) == (f"warehouse: {default / 'warehouse.duckdb'} (default, not created yet) · "
                                      f"Dagster instance: {default} (default, none yet)")
    # 4. --warehouse wins over everything (a relative path is resolved against the working directory)
    r = run(["data", "--warehouse", "mine.duckdb"], {"CRYPTOTRACKER_WAREHOUSE": str(wh)})
    assert session_line(r.output).startswith(f"warehouse: {tmp_path / 'mine.duckdb'} (--warehouse, not created yet)")
    # 5. a command whose stdout is machine-read (JSON) says it on stderr
    r = run(["models", "show", "dca_202601010000"], {"CRYPTOTRACKER_MODELS": str(tmp_path / "models")})
    assert r.stderr.startswith("warehouse: ") and not r.stdout.startswith("warehouse: ")
    assert list(tmp_path.iterdir()) == []


def stored_bars(path: Path) -> pd.DataFrame:
    """Two 1m BTC bars and one ETH bar written where ``make run`` writes (a warehouse of the default layout)."""
    t = pd.Timestamp("2026-02-03 00:00", tz="UTC")
    bars = pd.DataFrame({"symbol": ["BTC", "BTC", "ETH"], "timestamp": [t, t + pd.Timedelta(minutes=1), t],
                         "open": [100.0, 101.0, 10.0], "high": [102.0, 103.0, 11.0], "low": [99.0, 100.0, 9.5],
                         "close": [101.0, 102.5, 10.5], "volume": [1.0, 2.0, 3.0], "suspect": False,
                         "ingested_at": pd.Timestamp("2026-02-03 00:05", tz="UTC")})
    Warehouse(path).upsert_bars("1m", bars)
    return bars


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_after_make_run_a_bare_data_finds_its_warehouse(tmp_path):
    # `make run` exports DAGSTER_HOME=$(CURDIR)/.dagster_home and writes the warehouse there; a later shell has
    # neither variable. The console script, run from the project folder, must find it.
    stored_bars(tmp_path / ".dagster_home" / "warehouse.duckdb")
    (tmp_path / ".dagster_home" / "dagster.yaml").write_text("")
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    before = tree(tmp_path)
    proc = subprocess.run([str(BIN / "cryptotracker"), "data"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == (f"warehouse: {tmp_path / '.dagster_home' / 'warehouse.duckdb'} (default) · Dagster instance: "
                        f"{tmp_path / '.dagster_home'} (default)")
    header = next(line.split() for line in lines if line.startswith("table"))
    row = dict(zip(header, next(line.split() for line in lines if line.startswith("ohlc_1m"))))
    assert (row["rows"], row["symbols"]) == ("3", "2")
    assert tree(tmp_path) == before


READ_ONLY = [["data"], ["status"], ["positions"], ["performance"], ["performance", "--since", "24h"],
             ["performance", "--since", "2026-02-03"], ["analyze", "--window", "6h"], ["proposals", "list"],
             ["proposals", "show", "DCA_tp_multiplier_202602030000"], ["shadows"], ["models", "list"],
             ["models", "show", "dca_202601010000"], ["config", "check", "--quiet"]]


def test_read_only_commands_create_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {"CRYPTOTRACKER_MODELS": str(tmp_path / "models")}  # DAGSTER_HOME unset: ./.dagster_home
    for args in READ_ONLY:
        r = run(args, env)
        assert r.exit_code in (0, 1, 2), (args, r.output)
        assert session_line(r.stderr if args[:2] == ["models", "show"] else r.output).startswith("warehouse: ")
        assert list(tmp_path.iterdir()) == [], (args, tree(tmp_path))
    # and against a stored warehouse: nothing appears next to it, no instance folder is made
    path = tmp_path / "w.duckdb"
    stored_bars(path)
    before = tree(tmp_path)
    for args in READ_ONLY:
        r = run(args, {**env, "CRYPTOTRACKER_WAREHOUSE": str(path), "DAGSTER_HOME": str(tmp_path / "home")})
        assert r.exit_code in (0, 1, 2), (args, r.output)
        assert tree(tmp_path) == before, (args, tree(tmp_path))
    r = run(["analyze", "--window", "6h"], {**env, "CRYPTOTRACKER_WAREHOUSE": str(path)})
    assert r.exit_code == 0 and "BTC: 100 → 102.5 (+2.50 %)" in r.output, r.output


# --- tables that fit a terminal -------------------------------------------------------------------------------


def test_a_table_fits_the_given_width_truncating_text_never_numbers():
    df = pd.DataFrame({"name": ["alpha-long-name", "b"], "pnl": ["+1.50 %", "-20.00 %"]})
    assert fit_table(df, width=80).splitlines() == ["name                  pnl",
                                                    "alpha-long-name   +1.50 %",
                                                    "b                -20.00 %"]
    # 15 + 2 + 8 = 25 columns do not fit in 20: the text column gives 5
    assert fit_table(df, width=20).splitlines() == ["name             pnl",
                                                    "alpha-lon…   +1.50 %",
                                                    "b           -20.00 %"]


def test_wide_tables_shrink_the_widest_text_first_and_never_wrap():
    df = pd.DataFrame({"trade_group_id": ["SWING_SOL_250828121500_3f9a", "DCA_PEPE_250828121500_0b1c"],
                       "reason": ["strategy_shift_moderate_loss", "take_profit"],
                       "pnl_usd": ["+1,234.56", "-7.00"], "size": [1000, 25]})
    for width in (40, 50, 60, 79):
        lines = fit_table(df, width=width).splitlines()
        assert len(lines) == 3 and all(len(line) <= width for line in lines), (width, lines)
        assert lines[1].endswith("+1,234.56  1000") and lines[2].endswith("-7.00    25")  # numbers in full
    # 40 − (9 + 4 + 3 gaps of 2) leaves 21 for the two text columns: 11 and 10 (the widest gives first)
    lines = fit_table(df, width=40).splitlines()
    assert lines[1] == "SWING_SOL_…  strategy_…  +1,234.56  1000"
    # too narrow even with the text at its minimum (6 + 6 + 9 + 4 + 6 > 24): the rightmost columns are left out,
    # named on a last line, and the text columns share what is left (22 = 11 + 11)
    lines = fit_table(df, width=24).splitlines()
    assert all(len(line) <= 24 for line in lines)
    assert lines[:3] == ["trade_grou…  reason", "SWING_SOL_…  strategy_s…", "DCA_PEPE_2…  take_profit"]
    assert lines[3] == "(2 column(s) not shown …"
