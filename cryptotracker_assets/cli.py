"""The ``cryptotracker`` command line: demo run, config check, stored-data status, offline simulation, replay, and
the threshold manager's approve / reject / proposals / rollback."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import warnings
from pathlib import Path

import pandas as pd

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Daily-partitioned tables below the candles, in flow order (the rows column counts rows, not bars).
DERIVED_TABLES = ("features_15m", "features_scan", "features_daily", "market_regime", "scan_preview",
                  "scan_history", "strategy_setups", "paper_trades", "portfolio_snapshots", "engine_state",
                  "shadow_outcomes", "shadow_exits", "shadow_performance")


def _print_table(df: pd.DataFrame) -> None:
    if df.empty:
        print("(nothing stored)")
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
    print(pd.DataFrame(cells).to_string(index=False))


def _ensure_dagster_home(env) -> Path:
    """The Dagster instance folder of ``env`` (created with the embedded instance file when missing); exported
    for the Dagster instance this process opens."""
    path = Path(env.dagster_home)
    os.environ["DAGSTER_HOME"] = str(path)
    path.mkdir(parents=True, exist_ok=True)
    if not (path / "dagster.yaml").exists() and (PROJECT_ROOT / "dagster.yaml").exists():
        shutil.copy(PROJECT_ROOT / "dagster.yaml", path / "dagster.yaml")
    return path


def cmd_config_check(args: argparse.Namespace) -> int:
    import yaml

    from .core.config import ConfigError, format_trail_lock_report, load_config, raw_dict, trail_lock_report

    path = args.file or args.env.config_path
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        print(f"config check FAILED: {exc}", file=sys.stderr)
        return 2
    print(f"# effective config: cryptotracker_assets/config.yaml{' + ' + path if path else ''}")
    print(f"# config_version: {cfg.config_version}   fingerprint: {cfg.fingerprint()[:16]}")
    if not args.quiet:
        print(yaml.safe_dump(raw_dict(cfg), sort_keys=False, width=120).rstrip())
    print()
    print(format_trail_lock_report(trail_lock_report(cfg)))
    print("\nconfig OK")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    home = _ensure_dagster_home(args.env)
    warnings.filterwarnings("ignore")
    import dagster as dg

    from .definitions import build_definitions, timeframes_for
    from .storage.warehouse import Warehouse

    defs = build_definitions(args.env)
    cfg = defs.resources["project_config"].load()
    symbols = [s.strip() for s in args.symbols.split(",") if s.strip()]
    from .core.universe import Universe

    Universe.from_config(cfg).check(symbols)
    today = pd.Timestamp.now(tz="UTC").floor("1D")
    first = today - pd.Timedelta(days=args.days)
    instance = dg.DagsterInstance.get()
    tfs = timeframes_for(cfg)
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    run_config = {"ops": {f"ohlc_{tf.value}": {"config": {"symbols": symbols}} for tf in tfs}, **quiet}
    print(f"cryptotracker demo: {len(symbols)} symbols × {args.days} UTC days + today "
          f"({first:%Y-%m-%d} .. {today:%Y-%m-%d}), source = {defs.resources['market_data'].source_name}")
    setup = defs.resolve_job_def("config_job").execute_in_process(instance=instance, run_config=quiet,
                                                                raise_on_error=False)
    if not setup.success:
        print("demo FAILED while materializing the universe/config", file=sys.stderr)
        return 1
    job = defs.resolve_job_def("main_job")
    result = job.execute_in_process(
        instance=instance,
        run_config=run_config,
        tags={
            "dagster/asset_partition_range_start": first.strftime("%Y-%m-%d"),
            "dagster/asset_partition_range_end": today.strftime("%Y-%m-%d"),
        },
        raise_on_error=False,
    )
    if not result.success:
        print(f"demo FAILED: main_job run {result.run_id} failed; see the Dagster UI (make ui)", file=sys.stderr)
        return 1
    wh = Warehouse(args.env.warehouse)
    print(f"\nmain_job run {result.run_id} succeeded. Stored in {wh.path}:\n")
    _print_table(wh.summary(derived=DERIVED_TABLES))
    rejects = wh.read_rejects()
    if len(rejects):
        print(f"\n{len(rejects)} rejected input row(s) in table ohlc_rejects")
    print()
    _print_performance(wh, cfg)
    shadows = defs.resolve_job_def("shadow_daily_job").execute_in_process(instance=instance, run_config=quiet,
                                                                         raise_on_error=False)
    if not shadows.success:
        print(f"demo FAILED: shadow_daily_job run {shadows.run_id} failed; see the Dagster UI", file=sys.stderr)
        return 1
    from .shadows_cli import print_leaderboard

    perf = wh.performance()
    print()
    if perf is None or perf.empty:
        print(f"shadow leaderboard: no take has completed its max hold ({cfg.exits.max_hold_h:g} h) in the "
              f"analyzer's windows yet (run a longer window: make run DEMO_DAYS=14)")
    else:
        print_leaderboard(perf, float(cfg.shadow.recommendation_window_h))
    props = wh.threshold_proposals()
    print(f"proposals: {len(props)} (`cryptotracker proposals list`; approve with `cryptotracker approve <id> "
          f"--by NAME --why TEXT`)")
    from .models_cli import demo_models

    if not demo_models(defs, instance, wh, run_config=quiet, tags={
            "dagster/asset_partition_range_start": first.strftime("%Y-%m-%d"),
            "dagster/asset_partition_range_end": today.strftime("%Y-%m-%d")}):
        return 1
    print(f"\nDagster instance: {home} (runs, materializations, check results).")
    print("Open the UI with `make ui` → http://127.0.0.1:3000 (Assets → ohlc_1m → Partitions / Checks; "
          "Automation → schedules, off until you enable them).")
    return 0


def _warehouse(args: argparse.Namespace, create: bool = False):
    """The warehouse a command uses (``--warehouse``, else the environment's); read-only commands never create
    one."""
    from .storage.warehouse import Warehouse

    path = getattr(args, "warehouse", None) or args.env.warehouse
    return Warehouse(path, create=create)


def _config(args: argparse.Namespace):
    from .core.config import load_config

    return load_config(args.env.config_path)


def _fmt_pct(x: float) -> str:
    return "n/a" if x != x else f"{x * 100:+.2f} %"


def _print_performance(wh, cfg) -> None:
    from .services.operator import load_status, performance_summary

    st = load_status(wh, cfg)
    perf = performance_summary(st, cfg)
    eng = st.engine
    cursor = "never ran" if not eng else f"cursor {eng['cursor']:%Y-%m-%d %H:%M} UTC, {eng['ticks']} tick(s)"
    print(f"paper engine: {cursor}{' — ENTRIES PAUSED' if st.paused else ''}")
    _print_operator(st.operator)
    print(f"realised:   {perf.realised_usd:+,.2f} USD over {perf.closed_trades} closed trade(s) "
          f"({perf.wins} won, {perf.losses} lost), size-weighted {_fmt_pct(perf.realised_pct)}")
    print(f"unrealised: {perf.unrealised_usd:+,.2f} USD over {perf.open_positions} open position(s), "
          f"size-weighted {_fmt_pct(perf.unrealised_pct)}")
    _print_positions(st)
    _print_engine_records(st)


def _ts(t) -> str:
    return "-" if t is None or t != t else f"{pd.Timestamp(t).tz_convert('UTC'):%Y-%m-%d %H:%M:%S}"


def _print_operator(op) -> None:
    """What the engine applied (its state), and the events it has not applied yet (SPEC §0.2)."""
    if op.since is not None:
        what = "entries paused" if op.paused else "entries allowed"
        print(f"operator (as applied by the engine): {what} by {op.who} (why: {op.why}), event stamped "
              f"{_ts(op.since)} UTC, applied from cycle point {_ts(op.applied_from)} UTC")
    for e in op.pending.itertuples(index=False):
        target = f" {e.target}" if isinstance(e.target, str) else ""
        print(f"pending operator event: {e.action}{target} by {e.who} stamped {_ts(e.event_time)} UTC — acts from "
              f"cycle point {_ts(e.acts_from)} UTC (not applied yet)")


def _print_engine_records(st) -> None:
    if len(st.limiter):
        lim = st.limiter[["symbol", "stops", "cooldown_until", "banned_until"]].copy()
        for c in ("cooldown_until", "banned_until"):
            lim[c] = lim[c].map(_ts)
        print(f"limiter (SPEC §8.3, as of the cursor; {len(lim)} symbol(s)):")
        print(lim.to_string(index=False))
    if len(st.ticks):
        t = st.ticks.copy()
        shown = pd.DataFrame({"tick": t["tick_id"], "cycle points": [
            f"{_ts(a)[:16]} .. {_ts(b)[11:16]} ({n})" for a, b, n in zip(t["first_cycle_point"],
                                                                          t["last_cycle_point"], t["cycle_points"])],
            "bars watermark": t["watermark"].map(_ts), "config": t["config_version"],
            "committed": t["committed_at"].map(_ts), "ledger rows": t["ledger_rows"], "messages": t["messages"]})
        print(f"last {len(t)} tick(s):")
        print(shown.to_string(index=False))
    hint = " (the outbox_delivery_sensor sends them once a Dagster daemon runs: `make ui`)" if st.undelivered else ""
    print(f"outbox: {st.undelivered} message(s) not delivered yet{hint}")


def _print_positions(st) -> None:
    pos = st.positions
    if pos.empty:
        print("open positions: none")
        return
    cols = [c for c in ("trade_group_id", "strategy", "symbol", "entry_time", "filled_usd", "avg_entry", "mark",
                        "unrealised_usd", "unrealised_pct") if c in pos.columns]
    shown = pos[cols].copy()
    for c in ("filled_usd", "unrealised_usd"):
        if c in shown:
            shown[c] = shown[c].map(lambda v: f"{v:,.2f}")
    if "unrealised_pct" in shown:
        shown["unrealised_pct"] = shown["unrealised_pct"].map(_fmt_pct)
    for c in ("avg_entry", "mark"):
        if c in shown:
            shown[c] = shown[c].map(lambda v: f"{v:.6g}")
    if "entry_time" in shown:
        shown["entry_time"] = pd.to_datetime(shown["entry_time"], utc=True).dt.strftime("%Y-%m-%d %H:%M")
    print(f"open positions ({len(pos)}):")
    print(shown.to_string(index=False))


def cmd_performance(args: argparse.Namespace) -> int:
    wh = _warehouse(args)
    if not wh.exists():
        print(f"warehouse: {wh.path} (nothing stored yet: run `make run`)")
        return 0
    print(f"warehouse: {wh.path}")
    _print_performance(wh, _config(args))
    return 0


def cmd_positions(args: argparse.Namespace) -> int:
    from .services.operator import load_status

    wh = _warehouse(args)
    if not wh.exists():
        print(f"warehouse: {wh.path} (nothing stored yet: run `make run`)")
        return 0
    _print_positions(load_status(wh, _config(args)))
    return 0


def cmd_operator(args: argparse.Namespace) -> int:
    import getpass

    from .services.operator import OperatorError, record

    who = args.who or getpass.getuser()
    try:
        t = record(_warehouse(args, create=True), args.command, who, args.why, getattr(args, "trade_group_id", None))
    except OperatorError as exc:
        print(f"{args.command} refused: {exc}", file=sys.stderr)
        return 2
    what = {"pause": "entries paused (exits continue)", "resume": "entries resumed",
            "close": f"manual close of {getattr(args, 'trade_group_id', '')} requested"}[args.command]
    print(f"{what} by {who} at {t:%Y-%m-%d %H:%M:%S} UTC (why: {args.why}); the engine applies it from the next "
          f"cycle point.")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    wh = _warehouse(args)
    print(f"warehouse: {wh.path}")
    if not wh.exists():
        print("(nothing stored)")
        return 0
    _print_table(wh.summary(derived=DERIVED_TABLES))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cryptotracker", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="materialize the main job on a recent window and print what is stored")
    p.add_argument("--symbols", required=True, help="comma-separated universe symbols")
    p.add_argument("--days", type=int, required=True, help="complete UTC days before today")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("config", help="config commands")
    csub = p.add_subparsers(dest="config_command", required=True)
    c = csub.add_parser("check", help="validate a config, print the effective values and the reports")
    c.add_argument("file", nargs="?", help="user config file (default: $CRYPTOTRACKER_CONFIG)")
    c.add_argument("--quiet", action="store_true", help="only the reports, not the effective values")
    c.set_defaults(func=cmd_config_check)

    p = sub.add_parser("status", help="engine cursor, performance (realised + unrealised) and open positions")
    p.add_argument("--warehouse", help="DuckDB file (default: $CRYPTOTRACKER_WAREHOUSE)")
    p.set_defaults(func=cmd_performance)
    p = sub.add_parser("performance", help="realised and unrealised P&L, size-weighted")
    p.add_argument("--warehouse")
    p.set_defaults(func=cmd_performance)
    p = sub.add_parser("positions", help="open positions marked at the latest stored close")
    p.add_argument("--warehouse")
    p.set_defaults(func=cmd_positions)
    for name, hlp in (("pause", "block new entries (exits continue)"), ("resume", "allow entries again")):
        p = sub.add_parser(name, help=hlp)
        p.add_argument("--why", required=True)
        p.add_argument("--who", help="default: the current user")
        p.add_argument("--warehouse")
        p.set_defaults(func=cmd_operator)
    p = sub.add_parser("close", help="close an open trade group at the next cycle point's decision-bar close")
    p.add_argument("trade_group_id")
    p.add_argument("--why", required=True)
    p.add_argument("--who", help="default: the current user")
    p.add_argument("--warehouse")
    p.set_defaults(func=cmd_operator)

    p = sub.add_parser("data", help="what is stored in the warehouse")
    p.add_argument("--warehouse", help="DuckDB file (default: $CRYPTOTRACKER_WAREHOUSE)")
    p.set_defaults(func=cmd_data)

    from .replay_cli import add_replay_parser
    from .models_cli import add_models_parser
    from .revisions_cli import add_revisions_parser
    from .shadows_cli import add_shadows_parser
    from .simulate_cli import add_simulate_parser

    add_simulate_parser(sub)
    add_replay_parser(sub)
    add_revisions_parser(sub)
    add_shadows_parser(sub)
    add_models_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .environment import Environment, EnvironmentError_

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.env = Environment.read(os.environ)  # the one read of the environment
    except EnvironmentError_ as exc:
        print(f"cryptotracker: {exc}", file=sys.stderr)
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
