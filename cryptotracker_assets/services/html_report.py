"""The self-contained HTML report written to a file (no Dagster): :func:`~.report_data.gather_report_data` →
:func:`~..core.html_report.render_page` → one UTF-8 file replaced atomically (a temporary file in the same folder, then
``os.replace``), so a reader never sees half a report. The ``html_report`` asset and ``cryptotracker report`` call
it."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..core.config import Config
from ..core.html_report import render_page
from ..storage.warehouse import Warehouse
from .report_data import gather_report_data


@dataclass(frozen=True)
class ReportResult:
    """A written report: its path, its size in bytes and a few scalars for asset metadata (as_of, realised_usd,
    unrealised_usd, mark_equity, open_positions, closed_trades, max_drawdown_pct — a positive fraction —, symbol)."""

    path: Path
    bytes: int
    summary: dict[str, Any] = field(default_factory=dict)


def write_html_report(wh: Warehouse, cfg: Config, out_path: str | Path, *, models_root: str | Path | None = None,
                      symbol: str | None = None, now: pd.Timestamp | None = None) -> ReportResult:
    """Write the report of ``wh`` to ``out_path`` (folders created) and return what was written. ``symbol``: the
    price chart's (default: most closed trades, else ``universe.market_symbol``); ``now``: the generated-at stamp."""
    data = gather_report_data(wh, cfg, models_root=models_root, symbol=symbol, now=now)
    raw = render_page(data).encode("utf-8")
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return ReportResult(path=out, bytes=len(raw), summary=data.summary())
