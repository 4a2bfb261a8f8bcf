"""What the ``cryptotracker`` commands share: the environment read once and where each path came from, the
session line every command prints (which warehouse, which Dagster instance folder), argument types that fail as
usage errors (exit 2, naming the argument), tables that fit the terminal, and stage lines on stderr.

The warehouse is ``--warehouse`` if given, else ``CRYPTOTRACKER_WAREHOUSE``, else ``$DAGSTER_HOME/warehouse.duckdb``,
else ``./.dagster_home/warehouse.duckdb`` (:class:`.environment.Environment` resolves the last three). A read-only
command opens it with ``create=False`` and never creates a file or folder."""

from __future__ import annotations

import math
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import click
import pandas as pd

from .environment import Environment, is_url

FALLBACK_WIDTH = 120  # columns of a terminal that does not tell its size
MIN_TEXT_WIDTH = 6  # a text column is never truncated below this (or its natural width)
COLUMN_GAP = 2
NUMERIC_CELL = re.compile(r"^([+-]?(\d[\d,]*)?(\.\d+)?(e[+-]?\d+)?\s?(%|pp|USD)?|n/a|-)$", re.IGNORECASE)


class CliError(click.ClickException):
    """A refusal for people (exit 2, the message on stderr as it is, like the commands' own refusals)."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(self.format_message(), err=True)


# ---------------------------------------------------------------------------------------------------------------
# The environment and the session line
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CliEnv:
    """The environment (read once, in the group) and where its warehouse and instance folder came from."""

    env: Environment
    warehouse_from: str
    home_from: str

    @classmethod
    def read(cls, environ: Mapping[str, str]) -> "CliEnv":
        env = Environment.read(environ)
        home_from = "$DAGSTER_HOME" if environ.get("DAGSTER_HOME") else "default"
        wh_from = "$CRYPTOTRACKER_WAREHOUSE" if environ.get("CRYPTOTRACKER_WAREHOUSE") else home_from
        return cls(env, wh_from, home_from)


@dataclass(frozen=True)
class Session:
    """One command's warehouse (path and origin) and Dagster instance folder."""

    cli_env: CliEnv
    warehouse_path: str
    warehouse_from: str

    @property
    def env(self) -> Environment:
        return self.cli_env.env

    @property
    def dagster_home(self) -> str:
        return self.env.dagster_home

    def warehouse(self, create: bool = False):
        """The warehouse; ``create=False`` (read-only commands): a missing file raises, nothing is created."""
        from .storage.warehouse import Warehouse

        return Warehouse(self.warehouse_path, create=create)

    def header(self) -> str:
        """``warehouse: PATH (origin[, not created yet]) · Dagster instance: PATH (origin[, none yet])``; the origin
        is ``--warehouse``, ``$CRYPTOTRACKER_WAREHOUSE``, ``$DAGSTER_HOME`` or ``default`` (./.dagster_home)."""
        # a PostgreSQL warehouse is a database, not a file: whether it answers is the command's to say
        wh_state = "" if is_url(self.warehouse_path) or Path(self.warehouse_path).exists() else ", not created yet"
        home_state = "" if (Path(self.dagster_home) / "dagster.yaml").exists() else ", none yet"
        return (f"warehouse: {self.warehouse_path} ({self.warehouse_from}{wh_state}) · Dagster instance: "
                f"{self.dagster_home} ({self.cli_env.home_from}{home_state})")


def session(warehouse: str | None = None, *, err: bool = False) -> Session:
    """The session of the running command, announced as its first line (on stderr with ``err``: for commands whose
    stdout is read by programs)."""
    cli_env = click.get_current_context().find_object(CliEnv)
    if cli_env is None:
        raise CliError("no environment: run this command through the `cryptotracker` group")
    path = (warehouse if is_url(warehouse) else str(Path(warehouse).resolve())) if warehouse else cli_env.env.warehouse
    s = Session(cli_env, path, "--warehouse" if warehouse else cli_env.warehouse_from)
    click.echo(s.header(), err=err)
    return s


def warehouse_option(f):
    """``--warehouse PATH`` on a command (overrides the environment's warehouse)."""
    return click.option("--warehouse", type=click.Path(dir_okay=False), default=None,
                        help="DuckDB file (default: $CRYPTOTRACKER_WAREHOUSE, else $DAGSTER_HOME/warehouse.duckdb, "
                             "else ./.dagster_home/warehouse.duckdb)")(f)


def stage(message: str) -> None:
    """A progress line of a long command, on stderr (stdout stays the result)."""
    click.echo(f"  {message}", err=True)


def invoke(command: click.Command, argv: Sequence[str] | None, prog_name: str = "cryptotracker") -> int:
    """Run ``command`` on ``argv`` and return its exit code (what the console script exits with): the command's
    own code (0 when it returns nothing), 2 on a usage error or refusal (the message on stderr), 1 on an abort."""
    try:
        rv = command.main(args=list(argv) if argv is not None else None, prog_name=prog_name,
                          standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("Aborted!", err=True)
        return 1
    return int(rv or 0)


# ---------------------------------------------------------------------------------------------------------------
# Argument types (a bad value is a usage error: exit 2, the message names the option)
# ---------------------------------------------------------------------------------------------------------------


class SpanType(click.ParamType):
    """``24h`` / ``7d`` / ``90m`` → ``pd.Timedelta``."""

    name = "span"

    def convert(self, value, param, ctx):
        from .core.analysis import parse_span

        if isinstance(value, pd.Timedelta):
            return value
        try:
            return parse_span(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class SinceType(click.ParamType):
    """An ISO date/time (UTC without an offset) or a span before the newest stored bar → Timestamp | Timedelta."""

    name = "since"

    def convert(self, value, param, ctx):
        from .core.analysis import parse_since

        if isinstance(value, (pd.Timestamp, pd.Timedelta)):
            return value
        try:
            return parse_since(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class UtcDayType(click.ParamType):
    """A UTC day ``YYYY-MM-DD`` → 00:00 UTC ``pd.Timestamp``."""

    name = "day"

    def convert(self, value, param, ctx):
        if isinstance(value, pd.Timestamp):
            return value
        try:
            t = pd.Timestamp(value)
        except ValueError:
            self.fail(f"not a date: {value!r}", param, ctx)
        if t.tzinfo is not None:
            t = t.tz_convert("UTC").tz_localize(None)
        if t != t.normalize():
            self.fail(f"a UTC day (YYYY-MM-DD), got {value!r}", param, ctx)
        return t.tz_localize("UTC")


def span_text(span: pd.Timedelta) -> str:
    """A span as people type it: ``2d``, ``24h`` or ``90m``."""
    minutes = span / pd.Timedelta(minutes=1)
    for unit, n in (("d", 1440), ("h", 60)):
        if minutes % n == 0:
            return f"{minutes / n:g}{unit}"
    return f"{minutes:g}m"


SPAN = SpanType()
SINCE = SinceType()
UTC_DAY = UtcDayType()


# ---------------------------------------------------------------------------------------------------------------
# Tables that fit the terminal
# ---------------------------------------------------------------------------------------------------------------


def terminal_width() -> int | None:
    """The columns of the terminal stdout writes to; None when stdout is not a terminal (a pipe or a file keeps
    every character)."""
    isatty = getattr(sys.stdout, "isatty", None)
    if isatty is None or not isatty():
        return None
    return shutil.get_terminal_size((FALLBACK_WIDTH, 24)).columns


def cell_text(v) -> str:
    """A cell for people: blank when missing, times to the minute (UTC), floats to 6 significant digits."""
    if v is None or (not isinstance(v, str) and not isinstance(v, (list, tuple, dict)) and pd.isna(v)):
        return ""
    if isinstance(v, pd.Timestamp):
        return f"{v.tz_convert('UTC') if v.tzinfo else v:%Y-%m-%d %H:%M}"
    if isinstance(v, float):
        return f"{v:.6g}" if math.isfinite(v) else str(v)
    return str(v).replace("\n", " ")


def clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, the last one an ellipsis when cut."""
    return text if len(text) <= width else (text[: width - 1] + "…" if width > 0 else "")


def fit_table(df: pd.DataFrame, width: int | None = None) -> str:
    """``df`` as aligned text no wider than ``width`` (default: the terminal's; no limit when stdout is not a
    terminal): numbers right-aligned and never cut; the widest text columns are truncated (with …) down to a few
    characters first; if that is not enough, the rightmost columns are left out and named on a last line. A row
    never wraps."""
    width = width or terminal_width() or sys.maxsize
    names = [str(c) for c in df.columns]
    cells = [[cell_text(v) for v in df.iloc[:, i]] for i in range(len(names))]
    numeric = [any(c for c in col) and all(NUMERIC_CELL.match(c) for c in col if c) for col in cells]
    natural = [max([len(h), *map(len, col)]) for h, col in zip(names, cells)]

    def total(ws: list[int]) -> int:
        return sum(ws) + COLUMN_GAP * (len(ws) - 1)

    def fitted(n: int) -> list[int] | None:
        """Widths of the first ``n`` columns within ``width`` (None: they do not fit even cut)."""
        ws = natural[:n]
        while total(ws) > width:
            text = [i for i, w in enumerate(ws) if not numeric[i] and w > MIN_TEXT_WIDTH]
            if not text:
                return None
            ws[max(text, key=lambda k: (ws[k], k))] -= 1  # the widest text column gives first
        return ws

    n = len(names)
    while (widths := fitted(n)) is None and n > 1:
        n -= 1
    widths = widths or natural[:1]
    hidden = names[n:]
    gap = " " * COLUMN_GAP

    def line(values: list[str]) -> str:
        out = [clip(v, w).rjust(w) if numeric[i] else clip(v, w).ljust(w) for i, (v, w) in
               enumerate(zip(values, widths))]
        return clip(gap.join(out).rstrip(), width)

    lines = [line(names)] + [line([col[r] for col in cells[: len(widths)]]) for r in range(len(df))]
    if hidden:
        lines.append(clip(f"({len(hidden)} column(s) not shown at width {width}: {', '.join(hidden)})", width))
    return "\n".join(lines)


def echo_table(df: pd.DataFrame, width: int | None = None, *, empty: str = "(none)") -> None:
    click.echo(fit_table(df, width) if len(df) else empty)
