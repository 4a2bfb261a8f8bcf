"""The self-contained HTML report (SPEC §7.1, §12.2): what it shows (:class:`ReportData`, gathered by
``services.report_data``), small static SVG charts (:mod:`.svg`) and the page (:mod:`.page`). Pure pandas/numpy;
never imports dagster.

The page needs no network and no script: inline CSS, inline SVG with fixed ``viewBox`` sizes, every data string
escaped. Money is USD float64 rounded only for display; returns are fractions (× 100 with a ``%`` only in text);
aggregate returns are size-weighted (Σ P&L USD / Σ size USD); times are UTC.
"""

from __future__ import annotations

from collections.abc import Sequence

from .data import (BREAKDOWN_COLUMNS, FILL_COLUMNS, GATE_COLUMNS, PRICE_COLUMNS, REGIME_COLUMNS, ModelCard,
                   ReportData, active_limits, default_symbol, drawdown, empty_frame, fmt_pct, fmt_price, fmt_time,
                   fmt_usd, gate_timeline, max_drawdown, pnl_breakdown)
from .page import render_page
from .svg import Scale, Series, bar_chart, line_chart, price_chart, timeline_chart

__all__: Sequence[str] = (
    "BREAKDOWN_COLUMNS",
    "FILL_COLUMNS",
    "GATE_COLUMNS",
    "ModelCard",
    "PRICE_COLUMNS",
    "REGIME_COLUMNS",
    "ReportData",
    "Scale",
    "Series",
    "active_limits",
    "bar_chart",
    "default_symbol",
    "drawdown",
    "empty_frame",
    "fmt_pct",
    "fmt_price",
    "fmt_time",
    "fmt_usd",
    "gate_timeline",
    "line_chart",
    "max_drawdown",
    "pnl_breakdown",
    "price_chart",
    "render_page",
    "timeline_chart",
)
