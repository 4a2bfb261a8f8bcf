"""`cryptotracker simulate`: offline exit simulation of entries over base bars (SPEC §5, §6).

    cryptotracker simulate --bars BARS --entries ENTRIES.csv --out TRADES.csv [--bar-minutes N]

BARS is Parquet or CSV (``symbol, timestamp, open, high, low, close, volume``; timestamp = bar open, UTC); ENTRIES.csv
has ``entry_id, symbol, entry_time, size_usd, take_profit, stop_loss, trailing, trail_activation, max_hold_minutes,
fee, slippage`` (rates are fractions, 0 disables an exit). Times in CSV files are ISO-8601 with a ``Z`` or
``+00:00`` suffix. Bad input (including a broken bar: high below low, or high/low not bracketing open and close)
exits with code 2 and a message naming the file, the 1-based data row (header excluded) and the column; nothing is
written. The main ``cryptotracker`` group adds :data:`simulate_command`; ``python -m
cryptotracker_assets.simulate_cli simulate ...`` runs it standalone.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import click

from .cli_common import CliEnv, invoke, session

EXIT_BAD_INPUT = 2
_PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
_CSV_SUFFIXES = (".csv", ".csv.gz")
# A UTC designator at the end of an ISO-8601 time: Z, +00:00 or +0000.
_UTC_SUFFIX = r"(?:[Zz]|\+00:?00)$"


class _BadInput(Exception):
    """Bad CLI input (already formatted for the user)."""


class PositiveMinutes(click.ParamType):
    """A finite number of minutes > 0 (else a usage error naming ``--bar-minutes``)."""

    name = "minutes"

    def convert(self, value, param, ctx):
        try:
            minutes = float(value)
        except (TypeError, ValueError):
            self.fail(f"not a number of minutes: {value!r}", param, ctx)
        if not (math.isfinite(minutes) and minutes > 0):
            self.fail(f"must be > 0 minutes, got {value!r}", param, ctx)
        return minutes


@click.command("simulate")
@click.option("--bars", required=True,
              help="bars file, .parquet or .csv: symbol, timestamp, open, high, low, close, volume")
@click.option("--entries", required=True, help="entries .csv (rates are fractions; 0 disables an exit)")
@click.option("--out", required=True, help="trades .csv to write (replaced atomically; untouched on bad input)")
@click.option("--bar-minutes", type=PositiveMinutes(), default=None,
              help="bar length in minutes (default: the modal spacing of consecutive bars over all symbols)")
def simulate_command(bars: str, entries: str, out: str, bar_minutes: float | None) -> int:
    """Simulate the exits of entries over bars (SPEC §5/§6) and write one row per trade.

    Bad input exits 2 with a message naming the file, the 1-based data row and the column; nothing is written."""
    if click.get_current_context().find_object(CliEnv) is not None:
        session(err=True)  # in the main CLI: the session line, on stderr (neither is used here)
    return run_simulate(bars, entries, out, bar_minutes)


def _read_table(path: str, text_columns: tuple[str, ...]):
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise _BadInput(f"{path}: file not found")
    name = p.name.lower()
    try:
        if name.endswith(_PARQUET_SUFFIXES):
            return pd.read_parquet(p)
        if name.endswith(_CSV_SUFFIXES):
            # Only empty fields are missing (a symbol named NA stays a symbol); round_trip parses floats exactly.
            return pd.read_csv(
                p,
                dtype={c: str for c in text_columns},
                keep_default_na=False,
                na_values=[""],
                float_precision="round_trip",
            )
    except Exception as exc:  # pyarrow / pandas parser errors carry the line
        raise _BadInput(f"{path}: cannot read: {exc}") from None
    raise _BadInput(f"{path}: unknown file type (expected {', '.join(_PARQUET_SUFFIXES + _CSV_SUFFIXES)})")


def _utc_column(df, column: str, table: str) -> None:
    """Turn an ISO-8601 text column into tz-aware UTC datetimes in place; non-UTC or unparsable text is an error."""
    import pandas as pd

    from .core.exits import SimulationInputError

    if column not in df.columns:
        return  # the core reports the missing column
    s = df[column]
    if isinstance(s.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(s.dtype):
        return  # typed (Parquet) times: the core checks the zone
    if not (pd.api.types.is_object_dtype(s.dtype) or pd.api.types.is_string_dtype(s.dtype)):
        raise SimulationInputError(f"not an ISO-8601 UTC time (dtype {s.dtype})", column=column, row=1, table=table)
    missing = s.isna().to_numpy()
    if missing.any():
        raise SimulationInputError("missing time", column=column, row=int(missing.argmax()) + 1, table=table)
    text = s.astype(str).str.strip()
    utc = text.str.contains(_UTC_SUFFIX, regex=True).to_numpy()
    if not utc.all():
        r = int((~utc).argmax())
        raise SimulationInputError(
            f"time {text.iloc[r]!r} is not an ISO-8601 UTC time (needs a 'Z' or '+00:00' suffix)",
            column=column,
            row=r + 1,
            table=table,
        )
    parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    bad = parsed.isna().to_numpy()
    if bad.any():
        r = int(bad.argmax())
        raise SimulationInputError(f"unparsable time {text.iloc[r]!r}", column=column, row=r + 1, table=table)
    df[column] = parsed


def _iso(times) -> Any:
    fmt = (
        "%Y-%m-%dT%H:%M:%SZ"
        if (times.dt.microsecond == 0).all() and (times.dt.nanosecond == 0).all()
        else "%Y-%m-%dT%H:%M:%S.%fZ"
    )
    return times.dt.strftime(fmt)


def _write_atomic(frame, out: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            frame.to_csv(fh, index=False)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run_simulate(bars_path: str, entries_path: str, out_path: str, bar_minutes: float | None = None) -> int:
    """Simulate and write the trades; returns the exit code (0, or 2 on bad input with a message on stderr)."""
    from .core.exits import BarArrays, SimulationInputError, simulate_exits

    out = Path(out_path)
    names = {"bars": str(bars_path), "entries": str(entries_path)}
    try:
        if not out.parent.is_dir():
            raise _BadInput(f"{out_path}: output directory {str(out.parent)!r} does not exist")
        bars = _read_table(bars_path, ("symbol", "timestamp"))
        entries = _read_table(entries_path, ("entry_id", "symbol", "entry_time"))
        _utc_column(bars, "timestamp", "bars")
        _utc_column(entries, "entry_time", "entries")
        arrays = BarArrays.from_frame(bars, table="bars")
        del bars
        trades = simulate_exits(arrays, entries, bar_minutes)
    except SimulationInputError as exc:
        exc.table = names.get(exc.table, exc.table)
        click.echo(f"cryptotracker simulate: error: {exc}", err=True)
        return EXIT_BAD_INPUT
    except _BadInput as exc:
        click.echo(f"cryptotracker simulate: error: {exc}", err=True)
        return EXIT_BAD_INPUT
    trades["entry_time"] = _iso(trades["entry_time"])
    trades["exit_time"] = _iso(trades["exit_time"])
    _write_atomic(trades, out)
    skipped = len(entries) - len(trades)
    note = f" ({skipped} entries without an entry bar)" if skipped else ""
    click.echo(f"wrote {len(trades)} trades to {out_path}{note}")
    return 0


@click.group()
def standalone() -> None:
    """cryptotracker simulate, without the rest of the CLI."""


standalone.add_command(simulate_command)


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point: ``python -m cryptotracker_assets.simulate_cli simulate ...`` (exit codes as the main
    CLI: 2 on bad arguments or bad input)."""
    return invoke(standalone, argv)


if __name__ == "__main__":
    sys.exit(main())
