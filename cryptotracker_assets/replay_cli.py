"""``cryptotracker replay``: the backtest — the paper engine replayed over stored bars into a warehouse of its own,
with a parity report against the live ledger and the usual performance summary (:mod:`.services.replay`).

    cryptotracker replay --from 2026-11-20 --to 2026-12-03 --out backtest.duckdb [--config FILE] [--fresh]

``--from`` / ``--to`` are UTC days (both included); the window ends at the newest stored bar. Without ``--config``
each cycle point is replayed under the config version that was in force for it (the live engine's tick records,
SPEC §0.3); with it, the whole window runs under that file (a what-if; its version is recorded in the output and
the parity report then ignores the ``config_version`` column). Exit codes: 0 done, 1 parity differences with
``--require-parity``, 2 bad arguments or a replay that cannot run (the message says why).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

DAY = pd.Timedelta(days=1)


def _day(text: str) -> pd.Timestamp:
    try:
        t = pd.Timestamp(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date: {text!r}") from exc
    if t.tzinfo is not None:
        t = t.tz_convert("UTC").tz_localize(None)
    if t != t.normalize():
        raise argparse.ArgumentTypeError(f"a UTC day (YYYY-MM-DD), got {text!r}")
    return t.tz_localize("UTC")


def add_replay_parser(sub) -> None:
    p = sub.add_parser("replay", help="backtest: the engine replayed over stored bars into its own warehouse, with "
                                      "a parity report against the live ledger",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--from", dest="start", type=_day, required=True, help="first UTC day (YYYY-MM-DD)")
    p.add_argument("--to", dest="end", type=_day, required=True, help="last UTC day, included")
    p.add_argument("--out", required=True, help="the backtest's DuckDB file (never the live warehouse); an "
                                                "interrupted replay into it resumes")
    p.add_argument("--config", help="replay the whole window under this user config file (default: the versions "
                                    "that were in force)")
    p.add_argument("--warehouse", help="the live warehouse with the bars (default: $CRYPTOTRACKER_WAREHOUSE)")
    p.add_argument("--fresh", action="store_true", help="start with an empty book even if the live engine holds a "
                                                        "state before --from")
    p.add_argument("--no-events", action="store_true", help="ignore the stored operator events (pause, resume, "
                                                            "manual closes)")
    p.add_argument("--chunk-days", type=int, default=5, help="UTC days of bars read and scanned at once (memory "
                                                             "grows with it; default 5)")
    p.add_argument("--require-parity", action="store_true", help="exit 1 when the replay differs from the live "
                                                                 "ledger")
    p.add_argument("--quiet", action="store_true", help="no line per day")
    p.set_defaults(func=cmd_replay)


def _segments(source, args, out):
    """The configs in force: the given file (recorded in the output), or the live tick records' versions."""
    from .core.config import load_config
    from .services.config_versions import config_for_version, origin_of, versioned, with_version
    from .services.replay import ConfigSegment

    if args.config:
        cfg = versioned(out, load_config(args.config), origin_of(args.config))
        return [ConfigSegment(args.start, cfg)], False
    current = load_config(args.env.config_path)
    ticks = source.engine_ticks() if source.table_exists("engine_ticks") else pd.DataFrame()
    if ticks.empty:
        return [ConfigSegment(args.start, with_version(current, 0))], True
    cache: dict[int, object] = {}

    def cfg_of(v: int):
        if v not in cache:
            cache[v] = with_version(current, 0) if v == 0 else config_for_version(source, v)
        return cache[v]

    segments, last = [], None
    for r in ticks.sort_values("first_cycle_point").itertuples(index=False):
        v = int(r.config_version)
        if v != last:
            segments.append(ConfigSegment(pd.Timestamp(r.first_cycle_point).tz_convert("UTC"), cfg_of(v)))
            last = v
    segments[0] = ConfigSegment(args.start, segments[0].cfg) if segments[0].start > args.start else segments[0]
    return segments, True


def cmd_replay(args: argparse.Namespace) -> int:
    from .core.config import ConfigError
    from .services.replay import ReplayError, replay
    from .storage.warehouse import Warehouse, WarehouseError

    if args.end < args.start:
        print("replay: --to is before --from", file=sys.stderr)
        return 2
    if args.chunk_days < 1:
        print("replay: --chunk-days must be >= 1", file=sys.stderr)
        return 2
    source_path = args.warehouse or args.env.warehouse
    source = Warehouse(source_path, create=False)
    if not source.exists():
        print(f"replay: no warehouse at {source_path} (run `make run` first or pass --warehouse)", file=sys.stderr)
        return 2
    out = Warehouse(args.out)
    if Path(args.out).resolve() == Path(source_path).resolve():
        print(f"replay: --out {args.out} is the live warehouse; a backtest writes to its own file", file=sys.stderr)
        return 2
    try:
        segments, in_force = _segments(source, args, out)
        from .core.ledger import LEDGER_COLUMNS

        columns = [c for c in LEDGER_COLUMNS if in_force or c != "config_version"]
        report = replay(source, out, segments, args.start, args.end + DAY, use_events=not args.no_events,
                        fresh=args.fresh, chunk_days=args.chunk_days, parity_columns=columns,
                        models_root=args.env.models_dir,  # the champions in force score the setups, as live
                        progress=None if args.quiet else (lambda m: print(f"  {m}", flush=True)))
    except (ReplayError, ConfigError, WarehouseError) as exc:
        print(f"replay refused: {exc}", file=sys.stderr)
        return 2
    _print_report(report, segments, in_force)
    if args.require_parity and report.parity is not None and not report.parity.identical:
        return 1
    return 0


def fmt_pct(x: float) -> str:
    return "n/a" if x != x else f"{x * 100:+.2f} %"


def _print_report(report, segments, in_force: bool) -> None:
    versions = sorted({s.cfg.config_version for s in segments})
    how = "the config versions in force" if in_force else "the given config"
    print(f"\nreplay of {report.source} into {report.out}: cycle points {report.start:%Y-%m-%d %H:%M} .. "
          f"{report.end:%Y-%m-%d %H:%M} UTC under {how} (version(s) {versions})"
          + (f", resumed from {report.resumed_from:%Y-%m-%d %H:%M}" if report.resumed_from is not None else "")
          + (", continuing the live engine's state before the window" if report.continued_live_state else ""))
    sec = report.seconds
    print(f"{report.days} day(s), {report.cycle_points} cycle points in {report.wall_seconds:.1f} s = "
          f"{report.ms_per_cycle_point:.2f} ms per cycle point (time per stage, overlapping on two cores: "
          + ", ".join(f"{k} {v:.1f} s" for k, v in sec.items()) + ")")
    print(f"{report.ledger_rows} ledger row(s), {report.scan_rows} scan row(s) written")
    perf = report.performance
    if perf is not None:
        print(f"realised:   {perf.realised_usd:+,.2f} USD over {perf.closed_trades} closed trade(s) ({perf.wins} won, "
              f"{perf.losses} lost), size-weighted {fmt_pct(perf.realised_pct)}")
        print(f"unrealised: {perf.unrealised_usd:+,.2f} USD over {perf.open_positions} open position(s), "
              f"size-weighted {fmt_pct(perf.unrealised_pct)}")
    par = report.parity
    if par is None:
        print("parity: the live warehouse has no engine run to compare with")
        return
    print(par.summary())
    for name, groups in (("only in the live ledger", par.only_live), ("only in the replay", par.only_replay)):
        if groups:
            print(f"trades {name} ({len(groups)}): " + ", ".join(groups[:10]) + (" …" if len(groups) > 10 else ""))
    if len(par.differing):
        print(f"differing rows ({len(par.differing)}, first 10):")
        print(par.differing.head(10).to_string(index=False))
