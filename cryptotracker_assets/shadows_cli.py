"""``cryptotracker shadows``: the latest shadow analysis as a leaderboard (SPEC §10.3, §12.2), per window and
strategy — variations by outperformance vs CHAMPION with their size-weighted return, trades, win rate, tier and
Holm-adjusted p-value. Reads the warehouse only."""

from __future__ import annotations

import argparse
import sys

from .core.shadows.analyzer import ALL, STRATEGIES


def cmd_shadows(args: argparse.Namespace) -> int:
    from .core.config import load_config
    from .storage.warehouse import Warehouse

    cfg = load_config(args.env.config_path)
    wh = Warehouse(args.warehouse or args.env.warehouse, create=False)
    perf = wh.performance()
    if perf is None or perf.empty:
        print("no shadow analysis stored yet (materialize shadow_performance: `make run`, or the "
              "shadow_analysis_job)", file=sys.stderr)
        return 1
    window = float(args.window) if args.window is not None else float(cfg.shadow.recommendation_window_h)
    if window not in set(perf["window_h"].astype(float)):
        print(f"no {window:g} h window in the analysis (shadow.windows_h: {sorted(set(perf['window_h']))})",
              file=sys.stderr)
        return 2
    print_leaderboard(perf, window, args.strategy)
    return 0


def print_leaderboard(perf, window: float, strategy: str = ALL) -> None:
    from .services.shadow_analysis import leaderboard_text

    t = perf["analyzed_at"].iloc[0]
    print(f"shadow leaderboard at {t:%Y-%m-%d %H:%M} UTC — {strategy}, entries in the {window:g} h window ending "
          f"one max hold before the analysis (win rate vs CHAMPION; size-weighted return = Σ P&L / Σ size):")
    print(leaderboard_text(perf, window, strategy))


def add_shadows_parser(sub) -> None:
    p = sub.add_parser("shadows", help="the latest shadow analysis: variations ranked by outperformance")
    p.add_argument("--window", type=float, help="hours (one of shadow.windows_h; default the recommendation window)")
    p.add_argument("--strategy", default=ALL, choices=[ALL, *STRATEGIES])
    p.add_argument("--warehouse", help="DuckDB file (default: $CRYPTOTRACKER_WAREHOUSE)")
    p.set_defaults(func=cmd_shadows)
