"""``cryptotracker export``: one window of stored data as files for people and other tools — the base bars, the
ledger rows and the scan rows as CSV, and a Markdown summary (window, counts, realised / unrealised P&L, exits by
reason). No Dagster.

The window is the one of :mod:`.analysis` ([end − span, end], end = the close of the newest stored base bar):
bars with open time in [start, end), ledger rows whose fill bar (``bar_time``) and scan rows whose cycle point
lies in [start, end]. Floats are written in full (shortest repr), so a CSV reads back bit for bit
(``pd.read_csv(..., float_precision="round_trip")``); times are ISO-8601 UTC. Each file is replaced atomically."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..core.analysis import WindowPnl, exits_by_reason, in_window, window_pnl
from ..core.config import Config
from ..storage.warehouse import SCAN_HISTORY_TABLE, Warehouse
from .analysis import JUST_AFTER, Window, read_book, window, window_bars
from .operator import read_ledger

TRADES_FILE = "trades.csv"
SCANS_FILE = "scans.csv"
SUMMARY_FILE = "summary.md"


@dataclass(frozen=True)
class ExportResult:
    """The CSV files written (name → (path, data rows)), the summary file, the window and its P&L."""

    out_dir: Path
    window: Window
    csv: dict[str, tuple[Path, int]]
    summary: Path
    pnl: WindowPnl


def ohlc_file(cfg: Config) -> str:
    return f"ohlc_{cfg.engine.base_timeframe.value}.csv"


def write_text_atomic(path: Path, write) -> None:
    """Call ``write(file)`` on a temporary file next to ``path``, then move it over ``path``: a reader never sees a
    half-written file."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "w", newline="") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_csv(df: pd.DataFrame, path: Path) -> None:
    """``df`` as CSV at ``path`` (full-precision floats)."""
    write_text_atomic(path, lambda fh: df.to_csv(fh, index=False))


def export_window(wh: Warehouse, cfg: Config, span: pd.Timedelta, out_dir: Path | str, *,
                  progress: Callable[[str], None] | None = None) -> ExportResult:
    """Write the window's bars, ledger rows and scan rows as CSV and ``summary.md`` into ``out_dir`` (created)."""
    say = progress or (lambda _m: None)
    w = window(wh, cfg, span)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv: dict[str, tuple[Path, int]] = {}

    def put(name: str, df: pd.DataFrame) -> None:
        say(f"writing {name} ({len(df):,} rows)")
        write_csv(df, out / name)
        csv[name] = (out / name, len(df))

    say(f"reading {cfg.engine.base_timeframe.value} bars")
    put(ohlc_file(cfg), window_bars(wh, cfg, w))
    say("reading the ledger")
    ledger = read_ledger(wh)
    put(TRADES_FILE, ledger[in_window(ledger["bar_time"], w.start, w.end)].reset_index(drop=True))
    say("reading the scan rows")
    scans = wh.read_slice(SCAN_HISTORY_TABLE, "timestamp", w.start, w.end + JUST_AFTER, order_by=("strategy", "symbol"))
    put(SCANS_FILE, scans if scans is not None else pd.DataFrame())
    book = read_book(wh, cfg)
    pnl = window_pnl(book.closed, book.positions, w.start, w.end)
    exits = exits_by_reason(book.closed, w.start, w.end)
    say(f"writing {SUMMARY_FILE}")
    text = summary_markdown(wh.path, cfg, w, {k: n for k, (_, n) in csv.items()}, pnl, exits)
    write_text_atomic(out / SUMMARY_FILE, lambda fh: fh.write(text))
    return ExportResult(out_dir=out, window=w, csv=csv, summary=out / SUMMARY_FILE, pnl=pnl)


def pct(x: float) -> str:
    """A fraction for people: × 100, 2 decimals (SPEC §0.1); n/a when undefined."""
    return "n/a" if x != x else f"{x * 100:+.2f} %"


def summary_markdown(source: str, cfg: Config, w: Window, rows: dict[str, int], pnl: WindowPnl,
                     exits: pd.DataFrame) -> str:
    """``summary.md``: the window, the files' row counts, realised and unrealised P&L, exits by reason."""
    hours = w.span / pd.Timedelta(hours=1)
    lines = [
        "# cryptotracker export", "",
        f"- window: {w.start:%Y-%m-%d %H:%M} .. {w.end:%Y-%m-%d %H:%M} UTC ({hours:g} h, ending at the close of the "
        f"newest stored {cfg.engine.base_timeframe.value} bar)",
        f"- warehouse: {source}", "",
        "## Files", "", "| file | rows |", "|---|---:|",
        *(f"| {name} | {n:,} |" for name, n in rows.items()), "",
        "## P&L (size-weighted: Σ P&L USD / Σ size USD)", "",
        f"- realised: {pnl.realised_usd:+,.2f} USD over {pnl.closed_trades} trade(s) closed in the window "
        f"({pnl.wins} won), size {pnl.realised_size_usd:,.2f} USD, {pct(pnl.realised_pct)}",
        f"- unrealised (the book at the window's end): {pnl.unrealised_usd:+,.2f} USD over {pnl.open_positions} "
        f"open position(s), size {pnl.open_size_usd:,.2f} USD, {pct(pnl.unrealised_pct)}", "",
        "## Exits by reason", "",
    ]
    if exits.empty:
        lines.append("(no trade closed in the window)")
    else:
        lines += ["| exit reason | trades | won | P&L USD | size USD | size-weighted |",
                  "|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {r.exit_reason} | {r.trades} | {r.wins} | {r.pnl_usd:+,.2f} | {r.size_usd:,.2f} | "
                  f"{pct(r.pnl_pct)} |" for r in exits.itertuples(index=False)]
    return "\n".join(lines) + "\n"
