"""The figures of the reports for people (SPEC §12.2): the scheduled trading report (:mod:`.trading`) and the
``daily_performance`` rows (:mod:`.daily`). Pure python/pandas, frames in and figures out; never imports dagster.
Rendering (Slack, HTML) lives elsewhere and reads what these return."""

from __future__ import annotations

from collections.abc import Sequence

from .daily import DAILY_PERFORMANCE_COLUMNS, daily_performance
from .trading import (TOP_OPEN, ChampionLine, LevelKind, MarketView, NearLevel, OpenLine, ReportInputs, ReportKind,
                      StrategyLine, TradeLine, TradingReport, active_gates, best_and_worst, champion_lines,
                      json_value, near_levels, period_closed_trades, ready_counts, stops_in_force, strategy_lines,
                      top_open, trades_opened, trading_report)

__all__: Sequence[str] = (
    "ChampionLine",
    "DAILY_PERFORMANCE_COLUMNS",
    "LevelKind",
    "MarketView",
    "NearLevel",
    "OpenLine",
    "ReportInputs",
    "ReportKind",
    "StrategyLine",
    "TOP_OPEN",
    "TradeLine",
    "TradingReport",
    "active_gates",
    "best_and_worst",
    "champion_lines",
    "daily_performance",
    "json_value",
    "near_levels",
    "period_closed_trades",
    "ready_counts",
    "stops_in_force",
    "strategy_lines",
    "top_open",
    "trades_opened",
    "trading_report",
)
