"""`cryptotracker simulate`: offline exit simulation of entries over base bars (SPEC §5, §6).

    cryptotracker simulate --bars BARS --entries ENTRIES.csv --out TRADES.csv [--bar-minutes N]

BARS is Parquet or CSV (``symbol, timestamp, open, high, low, close, volume``; timestamp = bar open, UTC); ENTRIES.csv
has ``entry_id, symbol, entry_time, size_usd, take_profit, stop_loss, trailing, trail_activation, max_hold_minutes,
fee, slippage`` (rates are fractions, 0 disables an exit). Times in CSV files are ISO-8601 with a ``Z`` or
``+00:00`` suffix. Bad input (including a broken bar: high below low, or high/low not bracketing open and close)
exits with code 2 and a message naming the file, the 1-based data row (header excluded) and the column; nothing is
written. The main ``cryptotracker`` CLI registers this subcommand through
:func:`add_simulate_parser`; ``python -m cryptotracker_assets.simulate_cli simulate ...`` runs it standalone.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

EXIT_BAD_INPUT = 2
_PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
_CSV_SUFFIXES = (".csv", ".csv.gz")
# A UTC designator at the end of an ISO-8601 time: Z, +00:00 or +0000.
_UTC_SUFFIX = r"(?:[Zz]|\+00:?00)$"


class _BadInput(Exception):
    """Bad CLI input (already formatted for the user)."""


def _positive_minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of minutes: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be > 0 minutes, got {text!r}")
    return value


def add_simulate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``simulate`` subcommand on an argparse subparsers object (sets ``func=run_simulate``)."""
    p = subparsers.add_parser(
        "simulate",
        help="simulate the exits of entries over bars (SPEC §5/§6) and write one row per trade",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument(
        "--bars", required=True, help="bars file, .parquet or .csv: symbol, timestamp, open, high, low, close, volume"
    )
    p.add_argument("--entries", required=True, help="entries .csv (rates are fractions; 0 disables an exit)")
    p.add_argument("--out", required=True, help="trades .csv to write (replaced atomically; untouched on bad input)")
    p.add_argument(
        "--bar-minutes",
        type=_positive_minutes,
        default=None,
        help="bar length in minutes (default: the modal spacing of consecutive bars over all symbols)",
    )
    p.set_defaults(func=run_simulate)
    return p


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


def run_simulate(args: argparse.Namespace) -> int:
    """Run ``simulate`` for parsed ``args``; returns the exit code (0, or 2 on bad input with a message on stderr)."""
    from .core.exits import BarArrays, SimulationInputError, simulate_exits

    out = Path(args.out)
    names = {"bars": str(args.bars), "entries": str(args.entries)}
    try:
        if not out.parent.is_dir():
            raise _BadInput(f"{args.out}: output directory {str(out.parent)!r} does not exist")
        bars = _read_table(args.bars, ("symbol", "timestamp"))
        entries = _read_table(args.entries, ("entry_id", "symbol", "entry_time"))
        _utc_column(bars, "timestamp", "bars")
        _utc_column(entries, "entry_time", "entries")
        arrays = BarArrays.from_frame(bars, table="bars")
        del bars
        trades = simulate_exits(arrays, entries, args.bar_minutes)
    except SimulationInputError as exc:
        exc.table = names.get(exc.table, exc.table)
        print(f"cryptotracker simulate: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except _BadInput as exc:
        print(f"cryptotracker simulate: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    trades["entry_time"] = _iso(trades["entry_time"])
    trades["exit_time"] = _iso(trades["exit_time"])
    _write_atomic(trades, out)
    skipped = len(entries) - len(trades)
    note = f" ({skipped} entries without an entry bar)" if skipped else ""
    print(f"wrote {len(trades)} trades to {args.out}{note}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point: ``python -m cryptotracker_assets.simulate_cli simulate ...``."""
    parser = argparse.ArgumentParser(prog="cryptotracker")
    sub = parser.add_subparsers(dest="command", required=True)
    add_simulate_parser(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
