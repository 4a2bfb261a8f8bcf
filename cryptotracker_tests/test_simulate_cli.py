"""`cryptotracker simulate`: round trips (CSV and Parquet, subprocess and in-process) and every bad-input case.

Expected trades are computed by hand (binary-fraction prices and rates, so the values are exact).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cryptotracker_assets.simulate_cli import main

ROOT = Path(__file__).resolve().parents[1]

BARS_CSV = """symbol,timestamp,open,high,low,close,volume
X,2024-01-01T00:00:00Z,64,66,63,65,1
X,2024-01-01T00:01:00Z,66,80,65,79,1
X,2024-01-01T00:02:00Z,60,61,55,57,1
X,2024-01-01T00:05:00Z,52,53,50,51,1
NA,2024-01-01T00:00:00+00:00,8,8.5,7.75,8,1
NA,2024-01-01T00:01:00+00:00,8,8.25,7.75,8.125,1
NA,2024-01-01T00:02:00+00:00,8,8.25,7.25,7.5,1
"""
ENTRIES_HEADER = "entry_id,symbol,entry_time,size_usd,take_profit,stop_loss,trailing,trail_activation,max_hold_minutes,fee,slippage\n"
ENTRIES_CSV = (
    ENTRIES_HEADER
    + """e1,X,2024-01-01T00:00:00Z,1000,0.25,0.125,0,0,0,0,0
e2,X,2024-01-01T00:01:30Z,960,0.25,0.125,0,0,0,0,0
e3,NA,2024-01-01T00:00:00Z,33,0,0,0,0,2,0.015625,0.03125
e4,NA,2024-01-01T00:10:00Z,100,0,0,0,0,0,0,0
e5,NA,2024-01-01T00:00:00+00:00,1000,0,0,0,0,0,0,0
"""
)
# e1: A = 64, TP 80 touched at 00:01 → qty 15.625, pnl 250.
# e2: enters 00:02 at 60; S = 52.5; the 00:05 bar opens at 52 (3 missing bars) → stop at the open; qty 16.
# e3: A = 8 × 1.03125 = 8.25, qty 4; hold 2 → time exit at the 00:01 close 8.125 → fill 7.87109375;
#     entry fee 33/64 = 0.515625, exit fee 4 × 7.87109375 / 64 = 0.491943359375.
# e4: no bar at or after 00:10 → no row.  e5: everything disabled → end_of_data at the 00:02 close 7.5.
EXPECTED = [
    ("e1", "X", "2024-01-01T00:00:00Z", 64.0, "2024-01-01T00:01:00Z", 80.0, "take_profit", 15.625, 0.0, 250.0, 0.25),
    (
        "e2",
        "X",
        "2024-01-01T00:02:00Z",
        60.0,
        "2024-01-01T00:05:00Z",
        52.0,
        "stop_loss",
        16.0,
        0.0,
        -128.0,
        -128.0 / 960,
    ),
    (
        "e3",
        "NA",
        "2024-01-01T00:00:00Z",
        8.25,
        "2024-01-01T00:01:00Z",
        7.87109375,
        "time_exit",
        4.0,
        0.515625 + 0.491943359375,
        31.484375 - 33 - 0.515625 - 0.491943359375,
        (31.484375 - 33 - 0.515625 - 0.491943359375) / 33,
    ),
    ("e5", "NA", "2024-01-01T00:00:00Z", 8.0, "2024-01-01T00:02:00Z", 7.5, "end_of_data", 125.0, 0.0, -62.5, -0.0625),
]
COLUMNS = [
    "entry_id",
    "symbol",
    "entry_time",
    "entry_price",
    "exit_time",
    "exit_price",
    "exit_reason",
    "quantity",
    "fees_usd",
    "pnl_usd",
    "pnl_ratio",
]


def write(tmp_path: Path, bars: str = BARS_CSV, entries: str = ENTRIES_CSV) -> tuple[Path, Path, Path]:
    b, e = tmp_path / "bars.csv", tmp_path / "entries.csv"
    b.write_text(bars)
    e.write_text(entries)
    return b, e, tmp_path / "trades.csv"


def read_trades(path: Path) -> list[tuple]:
    df = pd.read_csv(
        path,
        dtype={"entry_id": str, "symbol": str, "entry_time": str, "exit_time": str},
        keep_default_na=False,
        float_precision="round_trip",
    )
    assert list(df.columns) == COLUMNS
    return [tuple(r) for r in df.itertuples(index=False)]


def args(b, e, out, *extra) -> list[str]:
    return ["simulate", "--bars", str(b), "--entries", str(e), "--out", str(out), *extra]


@pytest.mark.slow
def test_round_trip_subprocess(tmp_path):
    b, e, out = write(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "cryptotracker_assets.simulate_cli", *args(b, e, out, "--bar-minutes", "1")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "wrote 4 trades" in proc.stdout
    assert read_trades(out) == EXPECTED


@pytest.mark.slow
def test_bad_input_subprocess_exits_2_and_writes_nothing(tmp_path):
    b, e, out = write(
        tmp_path, entries=ENTRIES_CSV.replace("e2,X,2024-01-01T00:01:30Z,960", "e2,X,2024-01-01T00:01:30Z,-960")
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "cryptotracker_assets.simulate_cli", *args(b, e, out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "row 2" in proc.stderr and "'size_usd'" in proc.stderr and "entries.csv" in proc.stderr
    assert not out.exists()


def test_round_trip_in_process_with_modal_bar_length(tmp_path):
    # No --bar-minutes: the modal spacing of consecutive bars is 1 minute (X also has a 3-minute gap).
    b, e, out = write(tmp_path)
    assert main(args(b, e, out)) == 0
    assert read_trades(out) == EXPECTED


def test_round_trip_parquet_bars(tmp_path):
    b, e, out = write(tmp_path)
    bars = pd.read_csv(b, keep_default_na=False, dtype={"symbol": str})
    bars["timestamp"] = pd.to_datetime(bars["timestamp"], utc=True)
    pq = tmp_path / "bars.parquet"
    bars.to_parquet(pq)
    assert main(args(pq, e, out, "--bar-minutes", "1")) == 0
    assert read_trades(out) == EXPECTED


def test_bar_minutes_changes_the_time_exit(tmp_path):
    # With 2-minute bars the hold of 2 minutes ends on the entry bar itself (e3 exits at the 00:00 close 8).
    b, e, out = write(tmp_path)
    assert main(args(b, e, out, "--bar-minutes", "2")) == 0
    e3 = [r for r in read_trades(out) if r[0] == "e3"][0]
    assert (e3[4], e3[5], e3[6]) == ("2024-01-01T00:00:00Z", 8 * (1 - 1 / 32), "time_exit")


def test_registers_on_the_main_cli_parser(tmp_path):
    from cryptotracker_assets.cli import main as cli

    b, e, out = write(tmp_path)
    assert cli(args(b, e, out)) == 0 and read_trades(out) == EXPECTED


def _replace_line(text: str, line_no: int, new: str) -> str:
    lines = text.splitlines()
    lines[line_no] = new
    return "\n".join(lines) + "\n"


# (bars text, entries text, expected fragments of the message); rows are 1-based data rows (header excluded).
BAD_CSV = {
    "bars missing column": (BARS_CSV.replace(",low,", ",lo,"), ENTRIES_CSV, ["bars.csv", "column 'low'", "missing"]),
    "entries missing column": (
        BARS_CSV,
        ENTRIES_CSV.replace(",fee,", ",fees,"),
        ["entries.csv", "column 'fee'", "missing"],
    ),
    "symbol with no bars": (
        BARS_CSV,
        ENTRIES_CSV.replace("e2,X,", "e2,Q,"),
        ["entries.csv", "row 2", "column 'symbol'", "'Q' has no bars"],
    ),
    "non-UTC entry time": (
        BARS_CSV,
        ENTRIES_CSV.replace("2024-01-01T00:01:30Z", "2024-01-01T01:01:30+01:00"),
        ["entries.csv", "row 2", "column 'entry_time'", "not an ISO-8601 UTC time"],
    ),
    "naive bar time": (
        BARS_CSV.replace("X,2024-01-01T00:02:00Z", "X,2024-01-01T00:02:00"),
        ENTRIES_CSV,
        ["bars.csv", "row 3", "column 'timestamp'", "not an ISO-8601 UTC time"],
    ),
    "unparsable time": (
        BARS_CSV,
        ENTRIES_CSV.replace("2024-01-01T00:10:00Z", "2024-13-01T00:10:00Z"),
        ["entries.csv", "row 4", "column 'entry_time'", "unparsable"],
    ),
    "garbage time": (
        BARS_CSV.replace("NA,2024-01-01T00:01:00+00:00", "NA,yesterday"),
        ENTRIES_CSV,
        ["bars.csv", "row 6", "column 'timestamp'"],
    ),
    "empty time": (
        BARS_CSV,
        ENTRIES_CSV.replace("e5,NA,2024-01-01T00:00:00+00:00", "e5,NA,"),
        ["entries.csv", "row 5", "column 'entry_time'", "missing"],
    ),
    "negative size": (
        BARS_CSV,
        ENTRIES_CSV.replace("e3,NA,2024-01-01T00:00:00Z,33", "e3,NA,2024-01-01T00:00:00Z,-33"),
        ["entries.csv", "row 3", "column 'size_usd'"],
    ),
    "negative rate": (
        BARS_CSV,
        ENTRIES_CSV.replace("960,0.25,0.125", "960,0.25,-0.125"),
        ["entries.csv", "row 2", "column 'stop_loss'"],
    ),
    "non-numeric price": (
        BARS_CSV.replace("60,61,55,57", "60,abc,55,57"),
        ENTRIES_CSV,
        ["bars.csv", "row 3", "column 'high'", "not a number"],
    ),
    "missing price": (BARS_CSV.replace("60,61,55,57", "60,61,,57"), ENTRIES_CSV, ["bars.csv", "row 3", "column 'low'"]),
    "duplicate bar": (
        BARS_CSV + "X,2024-01-01T00:01:00Z,66,80,65,79,1\n",
        ENTRIES_CSV,
        ["bars.csv", "row 8", "column 'timestamp'", "duplicate"],
    ),
    "duplicate entry id": (BARS_CSV, ENTRIES_CSV.replace("e4,", "e1,"), ["entries.csv", "row 4", "column 'entry_id'"]),
    # Broken bars (SPEC §13.2 integrity): high below low, or [low, high] not bracketing open and close.
    "high below low": (
        BARS_CSV.replace("60,61,55,57", "60,54,55,57"),
        ENTRIES_CSV,
        ["bars.csv", "row 3", "column 'high'", "high 54.0 is below low 55.0"],
    ),
    "high below close": (
        BARS_CSV.replace("66,80,65,79", "66,78,65,79"),
        ENTRIES_CSV,
        ["bars.csv", "row 2", "column 'high'", "high 78.0 is below open 66.0 or close 79.0"],
    ),
    "high below open": (
        BARS_CSV.replace("+00:00,8,8.5,7.75,8,", "+00:00,8,7.875,7.75,7.8125,"),
        ENTRIES_CSV,
        ["bars.csv", "row 5", "column 'high'", "high 7.875 is below open 8.0"],
    ),
    "low above close": (
        BARS_CSV.replace("52,53,50,51", "52,53,51.5,51"),
        ENTRIES_CSV,
        ["bars.csv", "row 4", "column 'low'", "low 51.5 is above open 52.0 or close 51.0"],
    ),
    "low above open": (
        BARS_CSV.replace("+00:00,8,8.25,7.75,8.125,", "+00:00,8,8.25,8.0625,8.125,"),
        ENTRIES_CSV,
        ["bars.csv", "row 6", "column 'low'", "low 8.0625 is above open 8.0"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_CSV))
def test_bad_csv_input_exits_2_naming_row_and_column(tmp_path, capsys, case):
    bars, entries, fragments = BAD_CSV[case]
    b, e, out = write(tmp_path, bars, entries)
    out.write_text("previous\n")  # an existing output stays untouched
    assert main(args(b, e, out)) == 2
    err = capsys.readouterr().err
    for f in fragments:
        assert f in err, (f, err)
    assert out.read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bars.csv", "entries.csv", "trades.csv"]


@pytest.mark.parametrize(
    "stamps, fragments",
    [
        (lambda s: s.dt.tz_localize(None), ["bars.parquet", "row 1", "column 'timestamp'", "naive"]),
        (lambda s: s.dt.tz_convert("Europe/Berlin"), ["bars.parquet", "row 1", "column 'timestamp'", "not UTC"]),
        (lambda s: s.astype("int64"), ["bars.parquet", "column 'timestamp'", "not an ISO-8601 UTC time"]),
    ],
)
def test_bad_parquet_times_exit_2(tmp_path, capsys, stamps, fragments):
    b, e, out = write(tmp_path)
    bars = pd.read_csv(b, keep_default_na=False, dtype={"symbol": str})
    bars["timestamp"] = stamps(pd.to_datetime(bars["timestamp"], utc=True))
    pq = tmp_path / "bars.parquet"
    bars.to_parquet(pq)
    assert main(args(pq, e, out)) == 2
    err = capsys.readouterr().err
    for f in fragments:
        assert f in err, (f, err)
    assert not out.exists()


def test_missing_file_unknown_type_and_missing_out_dir_exit_2(tmp_path, capsys):
    b, e, out = write(tmp_path)
    assert main(args(tmp_path / "nope.csv", e, out)) == 2
    assert "nope.csv: file not found" in capsys.readouterr().err
    odd = tmp_path / "bars.txt"
    odd.write_text(BARS_CSV)
    assert main(args(odd, e, out)) == 2
    assert "unknown file type" in capsys.readouterr().err
    assert main(args(b, e, tmp_path / "no_dir" / "t.csv")) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("value", ["0", "-1", "abc", "nan"])
def test_bad_bar_minutes_is_a_usage_error(tmp_path, capsys, value):
    b, e, out = write(tmp_path)
    assert main(args(b, e, out, "--bar-minutes", value)) == 2
    assert "'--bar-minutes'" in capsys.readouterr().err
    assert not out.exists()


def test_a_broken_bar_in_parquet_exits_2_and_writes_no_output(tmp_path, capsys):
    # The first broken row in file order is named: row 2 has high 64 < low 65 (row 7 has a low above its close too).
    b, e, out = write(tmp_path)
    bars = pd.read_csv(b, keep_default_na=False, dtype={"symbol": str})
    bars["timestamp"] = pd.to_datetime(bars["timestamp"], utc=True)
    bars.loc[1, "high"] = 64.0
    bars.loc[6, "low"] = 7.75
    pq = tmp_path / "bars.parquet"
    bars.to_parquet(pq)
    assert main(args(pq, e, out)) == 2
    err = capsys.readouterr().err
    assert "bars.parquet, row 2, column 'high': broken bar: high 64.0 is below low 65.0" in err, err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bars.csv", "bars.parquet", "entries.csv"]


def test_bars_at_the_edges_of_their_range_are_accepted(tmp_path):
    # high = max(open, close) and low = min(open, close) is a whole bar (a doji bar has all four equal).
    edge = BARS_CSV.replace("64,66,63,65", "64,65,64,65").replace("52,53,50,51", "52,52,52,52")
    b, e, out = write(tmp_path, bars=edge)
    assert main(args(b, e, out, "--bar-minutes", "1")) == 0
    assert read_trades(out)[0] == EXPECTED[0]  # e1 still takes profit at 80 on the 00:01 bar
