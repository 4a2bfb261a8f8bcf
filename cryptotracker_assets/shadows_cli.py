"""``cryptotracker shadows``: the latest shadow analysis as a leaderboard (SPEC §10.3, §12.2), per window and
strategy — variations by outperformance vs CHAMPION with their size-weighted return, trades, win rate, tier and
Holm-adjusted p-value. Reads the warehouse only."""

from __future__ import annotations

import click
import pandas as pd

from .cli_common import echo_table, session, warehouse_option
from .core.shadows.analyzer import ALL, STRATEGIES


@click.command("shadows")
@click.option("--window", type=click.FloatRange(min=0, min_open=True), default=None,
              help="hours (one of shadow.windows_h; default the recommendation window)")
@click.option("--strategy", type=click.Choice([ALL, *STRATEGIES]), default=ALL, show_default=True)
@warehouse_option
def shadows_command(window: float | None, strategy: str, warehouse: str | None) -> int:
    """The latest shadow analysis: variations ranked by outperformance vs CHAMPION."""
    from .core.config import load_config

    s = session(warehouse)
    cfg = load_config(s.env.config_path)
    wh = s.warehouse()
    perf = wh.performance() if wh.exists() else None
    if perf is None or perf.empty:
        click.echo("no shadow analysis stored yet (materialize shadow_performance: `make run`, or the "
                   "shadow_analysis_job)", err=True)
        return 1
    hours = float(window) if window is not None else float(cfg.shadow.recommendation_window_h)
    if hours not in set(perf["window_h"].astype(float)):
        raise click.BadParameter(f"no {hours:g} h window in the analysis (shadow.windows_h: "
                                 f"{sorted(set(perf['window_h']))})", param_hint="'--window'")
    print_leaderboard(perf, hours, strategy)
    return 0


def print_leaderboard(perf: pd.DataFrame, window: float, strategy: str = ALL) -> None:
    from .core.shadows.analyzer import leaderboard

    t = perf["analyzed_at"].iloc[0]
    click.echo(f"shadow leaderboard at {t:%Y-%m-%d %H:%M} UTC — {strategy}, entries in the {window:g} h window ending "
               f"one max hold before the analysis (win rate vs CHAMPION; size-weighted return = Σ P&L / Σ size):")
    board = leaderboard(perf, window, (strategy,))
    if board.empty:
        click.echo(f"(no shadow takes in the {window:g} h window)")
        return

    def pct(x: float, unit: str = "%", digits: int = 2) -> str:
        return "" if pd.isna(x) else f"{100 * x:+.{digits}f} {unit}"

    echo_table(pd.DataFrame({
        "#": board["rank"], "variation": board["variation"], "trades": board["trades"],
        "win rate": board["win_rate"].map(lambda x: "" if pd.isna(x) else f"{100 * x:.1f} %"),
        "vs CHAMPION": board["outperformance"].map(lambda x: pct(x, "pp", 1)),
        "size-wtd ret": board["size_weighted_return"].map(pct), "tier": board["tier"],
        "p (Holm)": board["p_z_holm"].map(lambda x: "" if pd.isna(x) else f"{x:.3f}")}))
