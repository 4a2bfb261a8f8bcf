"""The ``cryptotracker`` command line (click): demo run, config check, stored-data status and performance, the
operator's pause / resume / close, the analysis and export of a window, the HTML report — and, from their own
modules, simulate, replay, the threshold manager (approve / reject / proposals / rollback), shadows and models.

Every command first prints which warehouse and which Dagster instance folder it uses (:mod:`.cli_common`); a bad
argument exits 2 naming it; a refusal exits 2 with the reason on stderr; long commands print stage lines on
stderr. :func:`main` returns the exit code (the console script exits with it)."""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from pathlib import Path

import click
import pandas as pd

from .core.notify.numbers import fmt_price
from .cli_common import (SINCE, SPAN, CliEnv, CliError, echo_table, invoke, session, span_text, stage,
                         warehouse_option)
from .models_cli import models_group
from .replay_cli import replay_command
from .revisions_cli import REVISION_COMMANDS
from .shadows_cli import shadows_command
from .simulate_cli import simulate_command

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Daily-partitioned tables below the candles, in flow order (the rows column counts rows, not bars).
DERIVED_TABLES = ("features_15m", "features_scan", "features_daily", "market_regime", "scan_preview",
                  "scan_history", "strategy_setups", "paper_trades", "portfolio_snapshots", "engine_state",
                  "shadow_outcomes", "shadow_exits", "shadow_performance")
NOTHING_STORED = "(nothing stored yet: run `make run`)"
# Asset keys of the runless materializations (assets.reports.DATA_EXPORT / HTML_REPORT / REPORT_FILE; not imported:
# that module builds Dagster assets, slow and noisy for a command line).
DATA_EXPORT_ASSET = "data_export"
HTML_REPORT_ASSET = "html_report"
REPORT_FILE = "report.html"


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120})
@click.pass_context
def cli(ctx: click.Context) -> None:
    """cryptotracker: the paper-trading platform's operator commands (warehouse: --warehouse, else
    $CRYPTOTRACKER_WAREHOUSE, else $DAGSTER_HOME/warehouse.duckdb, else ./.dagster_home/warehouse.duckdb)."""
    from .environment import EnvironmentError_

    try:
        ctx.obj = CliEnv.read(os.environ)  # the one read of the environment
    except EnvironmentError_ as exc:
        raise CliError(str(exc)) from None


@cli.result_callback()
@click.pass_context
def exit_with(ctx: click.Context, rv, **_params) -> None:
    """A command's non-zero return value is the process's exit code (standalone runs and CliRunner too)."""
    if rv:
        ctx.exit(int(rv))


def main(argv: list[str] | None = None) -> int:
    """The console script: run the group on ``argv`` and return the exit code (2 on a usage error)."""
    return invoke(cli, argv)


# ---------------------------------------------------------------------------------------------------------------
# Printing
# ---------------------------------------------------------------------------------------------------------------


def fmt_pct(x: float) -> str:
    return "n/a" if x != x else f"{x * 100:+.2f} %"


def ts(t) -> str:
    return "-" if t is None or t != t else f"{pd.Timestamp(t).tz_convert('UTC'):%Y-%m-%d %H:%M:%S}"


def print_summary(df: pd.DataFrame) -> None:
    """The warehouse summary (rows, symbols, first and last time per table)."""
    if df.empty:
        click.echo("(nothing stored)")
        return
    shown = df.rename(columns={"bars": "rows", "first_bar": "first", "last_bar": "last"})
    cells = {}
    for c in shown.columns:
        col = shown[c]
        if isinstance(col.dtype, pd.DatetimeTZDtype):
            cells[c] = col.dt.strftime("%Y-%m-%d %H:%M").fillna("")
        elif c != "table":
            cells[c] = col.map(lambda v: "" if pd.isna(v) else f"{int(v):,}")
        else:
            cells[c] = col
    echo_table(pd.DataFrame(cells))


def print_performance(wh, cfg) -> None:
    from .services.operator import load_status, performance_summary

    st = load_status(wh, cfg)
    perf = performance_summary(st, cfg)
    eng = st.engine
    cursor = "never ran" if not eng else f"cursor {eng['cursor']:%Y-%m-%d %H:%M} UTC, {eng['ticks']} tick(s)"
    click.echo(f"paper engine: {cursor}{' — ENTRIES PAUSED' if st.paused else ''}")
    row = wh.config_version_row(cfg.config_version) if cfg.config_version else None
    click.echo(f"config in force: version {cfg.config_version} ({row.origin})" if row is not None else
               "config in force: not recorded yet (the next engine run records its version)")
    print_operator(st.operator)
    click.echo(f"realised:   {perf.realised_usd:+,.2f} USD over {perf.closed_trades} closed trade(s) "
               f"({perf.wins} won, {perf.losses} lost), size-weighted {fmt_pct(perf.realised_pct)}")
    click.echo(f"unrealised: {perf.unrealised_usd:+,.2f} USD over {perf.open_positions} open position(s), "
               f"size-weighted {fmt_pct(perf.unrealised_pct)}")
    print_positions(st)
    print_engine_records(st)


def print_operator(op) -> None:
    """What the engine applied (its state), and the events it has not applied yet (SPEC §0.2)."""
    if op.since is not None:
        what = "entries paused" if op.paused else "entries allowed"
        click.echo(f"operator (as applied by the engine): {what} by {op.who} (why: {op.why}), event stamped "
                   f"{ts(op.since)} UTC, applied from cycle point {ts(op.applied_from)} UTC")
    for e in op.pending.itertuples(index=False):
        target = f" {e.target}" if isinstance(e.target, str) else ""
        click.echo(f"pending operator event: {e.action}{target} by {e.who} stamped {ts(e.event_time)} UTC — acts "
                   f"from cycle point {ts(e.acts_from)} UTC (not applied yet)")


def print_engine_records(st) -> None:
    if len(st.limiter):
        lim = st.limiter[["symbol", "stops", "cooldown_until", "banned_until"]].copy()
        for c in ("cooldown_until", "banned_until"):
            lim[c] = lim[c].map(ts)
        click.echo(f"limiter (SPEC §8.3, as of the cursor; {len(lim)} symbol(s)):")
        echo_table(lim)
    if len(st.ticks):
        t = st.ticks
        shown = pd.DataFrame({"tick": t["tick_id"], "cycle points": [
            f"{ts(a)[:16]} .. {ts(b)[11:16]} ({n})" for a, b, n in zip(t["first_cycle_point"],
                                                                        t["last_cycle_point"], t["cycle_points"])],
            "bars watermark": t["watermark"].map(ts), "config": t["config_version"],
            "committed": t["committed_at"].map(ts), "ledger rows": t["ledger_rows"], "messages": t["messages"]})
        click.echo(f"last {len(t)} tick(s):")
        echo_table(shown)
    hint = " (the outbox_delivery_sensor sends them once a Dagster daemon runs: `make ui`)" if st.undelivered else ""
    click.echo(f"outbox: {st.undelivered} message(s) not delivered yet{hint}")


def print_positions(st) -> None:
    pos = st.positions
    if pos.empty:
        click.echo("open positions: none")
        return
    cols = [c for c in ("trade_group_id", "strategy", "symbol", "entry_time", "filled_usd", "avg_entry", "mark",
                        "unrealised_usd", "unrealised_pct") if c in pos.columns]
    shown = pos[cols].copy()
    for c in ("filled_usd", "unrealised_usd"):
        if c in shown:
            shown[c] = shown[c].map(lambda v: f"{v:,.2f}")
    if "unrealised_pct" in shown:
        shown["unrealised_pct"] = shown["unrealised_pct"].map(fmt_pct)
    for c in ("avg_entry", "mark"):
        if c in shown:
            shown[c] = shown[c].map(fmt_price)
    if "entry_time" in shown:
        shown["entry_time"] = pd.to_datetime(shown["entry_time"], utc=True).dt.strftime("%Y-%m-%d %H:%M")
    click.echo(f"open positions ({len(pos)}):")
    echo_table(shown)


def config_of(s, wh):
    """The config in force: config.yaml ⊕ the user file ⊕ the approved revisions stored in ``wh`` (read only)."""
    from .core.config import ConfigError, load_config
    from .services.revisions import config_in_force

    try:
        return config_in_force(wh, load_config(s.env.config_path))
    except ConfigError as exc:
        raise CliError(f"config refused: {exc}") from None


def existing_warehouse(s):
    """The session's warehouse when it exists (read-only commands), else None after saying so."""
    wh = s.warehouse()
    if not wh.exists():
        click.echo(NOTHING_STORED)
        return None
    return wh


# ---------------------------------------------------------------------------------------------------------------
# demo and config
# ---------------------------------------------------------------------------------------------------------------


def ensure_dagster_home(env) -> Path:
    """The Dagster instance folder of ``env`` (created with the embedded instance file when missing); exported
    for the Dagster instance this process opens."""
    path = Path(env.dagster_home)
    os.environ["DAGSTER_HOME"] = str(path)
    path.mkdir(parents=True, exist_ok=True)
    if not (path / "dagster.yaml").exists() and (PROJECT_ROOT / "dagster.yaml").exists():
        shutil.copy(PROJECT_ROOT / "dagster.yaml", path / "dagster.yaml")
    return path


@cli.command("demo")
@click.option("--symbols", required=True, help="comma-separated universe symbols")
@click.option("--days", type=click.IntRange(min=0), required=True, help="complete UTC days before today")
@click.pass_obj
def demo_command(cli_env: CliEnv, symbols: str, days: int) -> int:
    """Materialize the main job on a recent window and print what is stored (the `make run` path)."""
    home = ensure_dagster_home(cli_env.env)
    s = session()
    warnings.filterwarnings("ignore")
    import dagster as dg

    from .core.universe import Universe
    from .definitions import build_definitions, timeframes_for

    defs = build_definitions(s.env)
    cfg = defs.resources["project_config"].load()
    names = [x.strip() for x in symbols.split(",") if x.strip()]
    Universe.from_config(cfg).check(names)
    today = pd.Timestamp.now(tz="UTC").floor("1D")
    first = today - pd.Timedelta(days=days)
    instance = dg.DagsterInstance.get()
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    run_config = {"ops": {f"ohlc_{tf.value}": {"config": {"symbols": names}} for tf in timeframes_for(cfg)}, **quiet}
    tags = {"dagster/asset_partition_range_start": first.strftime("%Y-%m-%d"),
            "dagster/asset_partition_range_end": today.strftime("%Y-%m-%d")}
    click.echo(f"cryptotracker demo: {len(names)} symbols × {days} UTC days + today "
               f"({first:%Y-%m-%d} .. {today:%Y-%m-%d}), source = {defs.resources['market_data'].source_name}")
    stage("config_job: universe and config")
    setup = defs.resolve_job_def("config_job").execute_in_process(instance=instance, run_config=quiet,
                                                                raise_on_error=False)
    if not setup.success:
        click.echo("demo FAILED while materializing the universe/config", err=True)
        return 1
    stage("main_job: candles, features, setups and the paper engine (the longest stage)")
    result = defs.resolve_job_def("main_job").execute_in_process(instance=instance, run_config=run_config,
                                                                 tags=tags, raise_on_error=False)
    if not result.success:
        click.echo(f"demo FAILED: main_job run {result.run_id} failed; see the Dagster UI (make ui)", err=True)
        return 1
    wh = s.warehouse()
    click.echo(f"\nmain_job run {result.run_id} succeeded. Stored in {wh.path}:\n")
    print_summary(wh.summary(derived=DERIVED_TABLES))
    rejects = wh.read_rejects()
    if len(rejects):
        click.echo(f"\n{len(rejects)} rejected input row(s) in table ohlc_rejects")
    click.echo()
    print_performance(wh, cfg)
    stage("shadow_daily_job: shadow analysis and proposals")
    shadows = defs.resolve_job_def("shadow_daily_job").execute_in_process(instance=instance, run_config=quiet,
                                                                         raise_on_error=False)
    if not shadows.success:
        click.echo(f"demo FAILED: shadow_daily_job run {shadows.run_id} failed; see the Dagster UI", err=True)
        return 1
    from .models_cli import demo_models
    from .shadows_cli import print_leaderboard

    perf = wh.performance()
    click.echo()
    if perf is None or perf.empty:
        click.echo(f"shadow leaderboard: no take has completed its max hold ({cfg.exits.max_hold_h:g} h) in the "
                   f"analyzer's windows yet (run a longer window: make run DEMO_DAYS=14)")
    else:
        print_leaderboard(perf, float(cfg.shadow.recommendation_window_h))
    click.echo(f"proposals: {len(wh.threshold_proposals())} (`cryptotracker proposals list`; approve with "
               f"`cryptotracker approve <id> --by NAME --why TEXT`)")
    stage("training_labels_job and models_training_job per strategy")
    if not demo_models(defs, instance, wh, run_config=quiet, tags=tags):
        return 1
    stage("reports_job: the trading report and the HTML report")
    reports = defs.resolve_job_def("reports_job").execute_in_process(instance=instance, run_config=quiet,
                                                                    raise_on_error=False)
    if not reports.success:
        click.echo(f"demo FAILED: reports_job run {reports.run_id} failed; see the Dagster UI", err=True)
        return 1
    demo_notifications(defs, wh)
    html = reports.asset_materializations_for_node("html_report")[-1].metadata["path"].value
    click.echo(f"\nHTML report: {html}\n  (open it in a browser; `cryptotracker report --open` writes a fresh one)")
    click.echo(f"\nDagster instance: {home} (runs, materializations, check results).")
    click.echo("Open the UI with `make ui` → http://127.0.0.1:3000 (Assets → ohlc_1m → Partitions / Checks; "
               "Automation → schedules, off until you enable them).")
    return 0


def demo_notifications(defs, wh) -> None:
    """Without SLACK_BOT_TOKEN the outbox is delivered to the log now (the same text Slack would get); with it,
    the daemon's outbox_delivery_sensor sends it (`make ui`), paced to Slack's rate limit."""
    from resources.notifier import LogNotifier

    from .services.outbox import Pacing, deliver

    notifier = defs.resources["notifier"]
    pending = wh.undelivered_count()
    if not isinstance(notifier, LogNotifier):
        click.echo(f"\nnotifications: {pending} message(s) queued for Slack; the outbox_delivery_sensor sends them "
                   f"once a daemon runs (make ui)")
        return
    stage("notifications: SLACK_BOT_TOKEN is unset, the outbox goes to the log")
    result = deliver(wh, notifier.send, limit=max(pending, 1), pacing=Pacing(min_interval_s=0.0), budget_s=600)
    click.echo(f"\nnotifications (no SLACK_BOT_TOKEN: written to the log above): {result.summary()}")
    for channel_key, channel, text in notifier.sent:
        if channel_key == "reports" and "report" in text.splitlines()[0].lower():
            click.echo(f"\n[{channel}]\n{text}")


@cli.group("config")
def config_group() -> None:
    """Config commands."""


@config_group.command("check")
@click.argument("file", required=False)
@click.option("--quiet", is_flag=True, help="only the reports, not the effective values")
def config_check_command(file: str | None, quiet: bool) -> int:
    """Validate a config (FILE, default $CRYPTOTRACKER_CONFIG), print the effective values and the reports."""
    import yaml

    from .core.config import ConfigError, format_trail_lock_report, load_config, raw_dict, trail_lock_report

    s = session()
    path = file or s.env.config_path
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        click.echo(f"config check FAILED: {exc}", err=True)
        return 2
    click.echo(f"# effective config: cryptotracker_assets/config.yaml{' + ' + path if path else ''}")
    click.echo(f"# config_version: {cfg.config_version}   fingerprint: {cfg.fingerprint()[:16]}")
    if not quiet:
        click.echo(yaml.safe_dump(raw_dict(cfg), sort_keys=False, width=120).rstrip())
    click.echo()
    click.echo(format_trail_lock_report(trail_lock_report(cfg)))
    click.echo("\nconfig OK")
    return 0


# ---------------------------------------------------------------------------------------------------------------
# status, performance, positions, data, operator events
# ---------------------------------------------------------------------------------------------------------------


@cli.command("status")
@warehouse_option
def status_command(warehouse: str | None) -> int:
    """Engine cursor, operator state, performance (realised + unrealised), open positions, last ticks."""
    s = session(warehouse)
    wh = existing_warehouse(s)
    if wh is not None:
        print_performance(wh, config_of(s, wh))
    return 0


@cli.command("performance")
@click.option("--since", type=SINCE, default=None,
              help="only trades closed since then: an ISO date/time (UTC) or a span before the newest stored bar "
                   "(24h, 7d)")
@warehouse_option
def performance_command(since, warehouse: str | None) -> int:
    """Realised and unrealised P&L, size-weighted (Σ P&L USD / Σ size USD)."""
    s = session(warehouse)
    wh = existing_warehouse(s)
    if wh is None:
        return 0
    cfg = config_of(s, wh)
    if since is None:
        print_performance(wh, cfg)
        return 0
    from .services.analysis import AnalysisError, performance_since

    try:
        t, p = performance_since(wh, cfg, since)
    except AnalysisError as exc:
        raise CliError(f"performance refused: {exc}") from None
    how = f"{since} before the close of the newest stored bar" if isinstance(since, pd.Timedelta) else "as given"
    click.echo(f"since {t:%Y-%m-%d %H:%M} UTC ({how}):")
    click.echo(f"realised:   {p.realised_usd:+,.2f} USD over {p.closed_trades} trade(s) closed since then "
               f"({p.wins} won, {p.closed_trades - p.wins} lost), size-weighted {fmt_pct(p.realised_pct)}")
    click.echo(f"unrealised: {p.unrealised_usd:+,.2f} USD over {p.open_positions} open position(s) now, "
               f"size-weighted {fmt_pct(p.unrealised_pct)}")
    return 0


@cli.command("positions")
@warehouse_option
def positions_command(warehouse: str | None) -> int:
    """Open positions marked at the latest stored close."""
    from .services.operator import load_status

    s = session(warehouse)
    wh = existing_warehouse(s)
    if wh is not None:
        print_positions(load_status(wh, config_of(s, wh)))
    return 0


@cli.command("data")
@warehouse_option
def data_command(warehouse: str | None) -> int:
    """What is stored in the warehouse: rows, symbols, first and last time per table."""
    s = session(warehouse)
    wh = existing_warehouse(s)
    if wh is not None:
        print_summary(wh.summary(derived=DERIVED_TABLES))
    return 0


def record_operator_event(action: str, why: str, who: str | None, warehouse: str | None,
                          trade_group_id: str | None = None) -> int:
    import getpass

    from .services.operator import OperatorError, record

    s = session(warehouse)
    who = who or getpass.getuser()
    try:
        t = record(s.warehouse(create=True), action, who, why, trade_group_id)
    except OperatorError as exc:
        click.echo(f"{action} refused: {exc}", err=True)
        return 2
    what = {"pause": "entries paused (exits continue)", "resume": "entries resumed",
            "close": f"manual close of {trade_group_id} requested"}[action]
    click.echo(f"{what} by {who} at {t:%Y-%m-%d %H:%M:%S} UTC (why: {why}); the engine applies it from the next "
               f"cycle point.")
    return 0


def operator_options(f):
    f = click.option("--who", help="default: the current user")(f)
    f = click.option("--why", required=True, help="why (recorded with the event)")(f)
    return warehouse_option(f)


@cli.command("pause")
@operator_options
def pause_command(why: str, who: str | None, warehouse: str | None) -> int:
    """Block new entries (exits continue) from the next cycle point."""
    return record_operator_event("pause", why, who, warehouse)


@cli.command("resume")
@operator_options
def resume_command(why: str, who: str | None, warehouse: str | None) -> int:
    """Allow entries again from the next cycle point."""
    return record_operator_event("resume", why, who, warehouse)


@cli.command("close")
@click.argument("trade_group_id")
@operator_options
def close_command(trade_group_id: str, why: str, who: str | None, warehouse: str | None) -> int:
    """Close an open trade group at the next cycle point's decision-bar close."""
    return record_operator_event("close", why, who, warehouse, trade_group_id)


# ---------------------------------------------------------------------------------------------------------------
# analyze, export, report
# ---------------------------------------------------------------------------------------------------------------


def fmt_span(td: pd.Timedelta) -> str:
    minutes = int(round(td / pd.Timedelta(minutes=1)))
    d, rest = divmod(minutes, 1440)
    h, m = divmod(rest, 60)
    return " ".join(p for p in (f"{d} d" if d else "", f"{h} h" if h else "", f"{m} min" if m else "") if p) or "0 min"


def print_analysis(a) -> None:
    w = a.window
    click.echo(f"analysis of {w.start:%Y-%m-%d %H:%M} .. {w.end:%Y-%m-%d %H:%M} UTC ({fmt_span(w.span)}, ending at "
               f"the close of the newest stored base bar; {a.bars:,} bars)")
    m = a.btc
    if m is None:
        click.echo(f"{a.market_symbol}: no bars in the window")
    else:
        dd = m.drawdown
        click.echo(f"{m.symbol}: {fmt_price(m.start)} → {fmt_price(m.end)} ({fmt_pct(m.change)}); "
                   f"high {fmt_price(m.high)} ({m.high_time:%m-%d %H:%M}), low {fmt_price(m.low)} "
                   f"({m.low_time:%m-%d %H:%M})")
        if dd.peak_time is None:
            click.echo("  max drawdown: none (the path never fell below a previous high)")
        else:
            back = (f"recovered {fmt_span(dd.recovery)} after the trough ({dd.recovered_at:%m-%d %H:%M})"
                    if dd.recovered_at is not None else "not recovered")
            click.echo(f"  max drawdown {fmt_pct(dd.depth)} from the {fmt_price(dd.peak_price)} peak "
                       f"({dd.peak_time:%m-%d %H:%M}) to {fmt_price(dd.trough_price)} ({dd.trough_time:%m-%d %H:%M}); "
                       f"{back}")
    vol24 = "n/a" if a.vol24h is None else f"{a.vol24h * 100:.2f} %"
    click.echo(f"volatility: {fmt_pct(a.volatility_1h).lstrip('+')} annualised (std of 1h log returns × √(24×365)); "
               f"regime vol24h at the end {vol24} ((high − low) / first open over 24 h)")
    b = a.breadth
    click.echo(f"breadth: {b.advancing} of {b.symbols} symbol(s) up ({fmt_pct(b.share_up).lstrip('+')}): "
               f"{b.advancing} advancing, {b.declining} declining, {b.unchanged} unchanged")
    if len(a.changes):
        ch = a.changes
        echo_table(pd.DataFrame({"symbol": ch["symbol"], "first": ch["first"].map(fmt_price),
                                 "last": ch["last"].map(fmt_price), "change": ch["change"].map(fmt_pct)}))
    click.echo("regime timeline:")
    tl = a.timeline
    echo_table(pd.DataFrame({"from": tl["start"], "regime": tl["regime"], "cycle points": tl["cycle_points"],
                             "until": tl["until"].map(lambda t: "(in force)" if pd.isna(t) else t)}),
               empty="  (no regime rows in the window)")
    p = a.pnl
    click.echo(f"book: realised {p.realised_usd:+,.2f} USD over {p.closed_trades} trade(s) closed in the window "
               f"({p.wins} won), size-weighted {fmt_pct(p.realised_pct)}; unrealised {p.unrealised_usd:+,.2f} USD "
               f"over {p.open_positions} open position(s) now, size-weighted {fmt_pct(p.unrealised_pct)}")
    click.echo("exits by reason:")
    ex = a.exits
    echo_table(pd.DataFrame({"exit reason": ex["exit_reason"], "trades": ex["trades"], "won": ex["wins"],
                             "P&L USD": ex["pnl_usd"].map(lambda v: f"{v:+,.2f}"),
                             "size USD": ex["size_usd"].map(lambda v: f"{v:,.2f}"),
                             "size-weighted": ex["pnl_pct"].map(fmt_pct)}), empty="  (no trade closed in the window)")
    e = a.entries
    from .core.ledger import size_weighted_return

    click.echo(f"positions opened into the move: {len(e)}"
               + (f", size-weighted P&L now {fmt_pct(size_weighted_return(e['pnl_usd'], e['size_usd']))}"
                  if len(e) else ""))
    if len(e):
        echo_table(pd.DataFrame({"trade group": e["trade_group_id"], "strategy": e["strategy"], "symbol": e["symbol"],
                                 "entry": e["entry_time"], "size USD": e["size_usd"].map(lambda v: f"{v:,.2f}"),
                                 "now": e["state"], "P&L USD": e["pnl_usd"].map(lambda v: f"{v:+,.2f}"),
                                 "P&L": e["pnl_pct"].map(fmt_pct)}))


@cli.command("analyze")
@click.option("--window", "span", type=SPAN, default="24h", show_default=True,
              help="the span ending at the close of the newest stored base bar: 6h, 24h, 48h, 7d …")
@warehouse_option
def analyze_command(span: pd.Timedelta, warehouse: str | None) -> int:
    """What the market and the book did over a window: BTC path, drawdown and recovery, volatility, breadth,
    regime timeline, realised / unrealised P&L, exits by reason, positions opened into the move."""
    from .services.analysis import AnalysisError, analyze

    s = session(warehouse)
    wh = existing_warehouse(s)
    if wh is None:
        return 0
    stage("reading bars, regime rows and the ledger")
    try:
        a = analyze(wh, config_of(s, wh), span)
    except AnalysisError as exc:
        raise CliError(f"analyze refused: {exc}") from None
    print_analysis(a)
    return 0


@cli.command("export")
@click.option("--window", "span", type=SPAN, default="24h", show_default=True,
              help="the span ending at the close of the newest stored base bar: 6h, 24h, 48h, 7d …")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True,
              help="folder for the CSV files and summary.md (created)")
@warehouse_option
def export_command(span: pd.Timedelta, out_dir: str, warehouse: str | None) -> int:
    """Write a window's base bars, ledger rows and scan rows as CSV and a Markdown summary into a folder."""
    from .instance_events import report_materialization
    from .services.analysis import AnalysisError
    from .services.export import export_window

    s = session(warehouse)
    wh = s.warehouse()
    if not wh.exists():
        raise CliError(f"export refused: no warehouse at {wh.path} (run `make run` or pass --warehouse)")
    try:
        res = export_window(wh, config_of(s, wh), span, Path(out_dir).resolve(), progress=stage)
    except AnalysisError as exc:
        raise CliError(f"export refused: {exc}") from None
    w = res.window
    click.echo(f"exported {w.start:%Y-%m-%d %H:%M} .. {w.end:%Y-%m-%d %H:%M} UTC ({fmt_span(w.span)}):")
    for path, n in res.csv.values():
        click.echo(f"  {path}  {n:,} rows")
    click.echo(f"  {res.summary}")
    report_materialization(s.dagster_home, DATA_EXPORT_ASSET, {
        "out_dir": str(res.out_dir), "window": span_text(span), "start": w.start.isoformat(),
        "end": w.end.isoformat(), **{f"{Path(name).stem}_rows": n for name, (_, n) in res.csv.items()}})
    return 0


def plain(value):
    """A metadata value Dagster stores as is: times as ISO-8601 UTC text, numpy scalars as Python numbers, a
    missing value as None (left out)."""
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "item"):
        value = value.item()
    return None if isinstance(value, float) and value != value else value


@cli.command("report")
@click.option("--open", "open_browser", is_flag=True, help="open the report in the web browser")
@click.option("--symbol", default=None,
              help="the price chart's symbol (default: the one with most closed trades, else the market symbol)")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="the HTML file (default: $CRYPTOTRACKER_REPORTS/report.html, else "
                   "$DAGSTER_HOME/reports/report.html)")
@warehouse_option
def report_command(open_browser: bool, symbol: str | None, out: str | None, warehouse: str | None) -> int:
    """Write the self-contained HTML report of the warehouse and print its path."""
    s = session(warehouse)
    try:
        from .services.html_report import write_html_report
    except ImportError as exc:
        raise CliError(f"report refused: the HTML report is not available in this install ({exc})") from None
    from .instance_events import report_materialization

    wh = s.warehouse()
    if not wh.exists():
        raise CliError(f"report refused: no warehouse at {wh.path} (run `make run` or pass --warehouse)")
    path = Path(out).resolve() if out else Path(s.env.reports_dir) / REPORT_FILE
    stage("building the HTML report")
    res = write_html_report(wh, config_of(s, wh), path, models_root=s.env.models_dir, symbol=symbol)
    click.echo(f"report: {res.path} ({res.bytes:,} bytes)")
    report_materialization(s.dagster_home, HTML_REPORT_ASSET, {
        "path": str(res.path), "bytes": int(res.bytes), **{k: plain(v) for k, v in res.summary.items()}})
    if open_browser:
        import webbrowser

        webbrowser.open(Path(res.path).resolve().as_uri())
    return 0


@cli.group("warehouse")
def warehouse_group() -> None:
    """Warehouse commands."""


@warehouse_group.command("migrate")
@click.option("--to", "to", required=True, help="the destination: postgresql://USER@HOST:PORT/DB (password in "
                                               "PGPASSWORD, never in the URL)")
@warehouse_option
def migrate_command(to: str, warehouse: str | None) -> int:
    """Copy the warehouse (default: the one in use) into PostgreSQL, verifying every table's rows and checksum."""
    from .services.warehouse_copy import copy_warehouse
    from .storage.warehouse import Warehouse, WarehouseError

    s = session(warehouse)
    try:
        report = copy_warehouse(Warehouse(s.warehouse_path, create=False), Warehouse(to), progress=stage)
    except WarehouseError as exc:
        raise CliError(f"warehouse migrate refused: {exc}") from None
    echo_table(pd.DataFrame([{"table": t.table, "rows": t.rows, "copied": t.copied_rows,
                              "checksum": t.checksum[:12], "verified": "yes" if t.ok else "NO"}
                             for t in report.tables]), empty="(no table)")
    if not report.ok:
        raise CliError(f"warehouse migrate: {sum(not t.ok for t in report.tables)} table(s) differ after the copy")
    click.echo(f"copied {report.rows:,} rows in {len(report.tables)} tables from {report.source} to "
               f"{report.destination}; every table verified (rows and checksum). Use it with "
               f"CRYPTOTRACKER_WAREHOUSE={report.destination}")
    return 0


for command in (simulate_command, replay_command, *REVISION_COMMANDS, shadows_command, models_group):
    cli.add_command(command)


if __name__ == "__main__":
    sys.exit(main())
