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

from pathlib import Path

import click
import pandas as pd

from .cli_common import UTC_DAY, echo_table, session, stage, warehouse_option

DAY = pd.Timedelta(days=1)


@click.command("replay")
@click.option("--from", "start", type=UTC_DAY, required=True, help="first UTC day (YYYY-MM-DD)")
@click.option("--to", "end", type=UTC_DAY, required=True, help="last UTC day, included")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="the backtest's DuckDB file (never the live warehouse); an interrupted replay into it resumes")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="replay the whole window under this user config file (default: the versions that were in force)")
@warehouse_option
@click.option("--fresh", is_flag=True,
              help="start with an empty book even if the live engine holds a state before --from")
@click.option("--no-events", is_flag=True, help="ignore the stored operator events (pause, resume, manual closes)")
@click.option("--chunk-days", type=click.IntRange(min=1), default=5, show_default=True,
              help="UTC days of bars read and scanned at once (memory grows with it)")
@click.option("--require-parity", is_flag=True, help="exit 1 when the replay differs from the live ledger")
@click.option("--quiet", is_flag=True, help="no stage line per day")
def replay_command(start: pd.Timestamp, end: pd.Timestamp, out: str, config_file: str | None, warehouse: str | None,
                   fresh: bool, no_events: bool, chunk_days: int, require_parity: bool, quiet: bool) -> int:
    """Backtest: the engine replayed over the stored bars of --from .. --to into its own warehouse, with a parity
    report against the live ledger.

    Without --config each cycle point runs under the config version that was in force for it; with it, the whole
    window runs under that file (a what-if). Exit 0 done, 1 parity differences with --require-parity, 2 bad
    arguments or a replay that cannot run."""
    from .core.config import ConfigError
    from .core.ledger import LEDGER_COLUMNS
    from .services.replay import ReplayError, replay
    from .storage.warehouse import Warehouse, WarehouseError

    s = session(warehouse)
    if end < start:
        raise click.BadParameter(f"{end:%Y-%m-%d} is before --from {start:%Y-%m-%d}", param_hint="'--to'")
    source = s.warehouse()
    if not source.exists():
        click.echo(f"replay: no warehouse at {source.path} (run `make run` first or pass --warehouse)", err=True)
        return 2
    if Path(out).resolve() == Path(source.path).resolve():
        click.echo(f"replay: --out {out} is the live warehouse; a backtest writes to its own file", err=True)
        return 2
    target = Warehouse(out)
    try:
        segments, in_force = config_segments(source, target, s.env.config_path, config_file, start)
        columns = [c for c in LEDGER_COLUMNS if in_force or c != "config_version"]
        report = replay(source, target, segments, start, end + DAY, use_events=not no_events, fresh=fresh,
                        chunk_days=chunk_days, parity_columns=columns,
                        models_root=s.env.models_dir,  # the champions in force score the setups, as live
                        progress=None if quiet else stage)
    except (ReplayError, ConfigError, WarehouseError) as exc:
        click.echo(f"replay refused: {exc}", err=True)
        return 2
    print_report(report, segments, in_force)
    if require_parity and report.parity is not None and not report.parity.identical:
        return 1
    return 0


def config_segments(source, out, config_path: str | None, config_file: str | None, start: pd.Timestamp):
    """The configs in force: the given file (recorded in the output), or the live tick records' versions."""
    from .core.config import load_config
    from .services.config_versions import config_for_version, origin_of, versioned, with_version
    from .services.replay import ConfigSegment

    if config_file:
        cfg = versioned(out, load_config(config_file), origin_of(config_file))
        return [ConfigSegment(start, cfg)], False
    current = load_config(config_path)
    ticks = source.engine_ticks() if source.table_exists("engine_ticks") else pd.DataFrame()
    if ticks.empty:
        return [ConfigSegment(start, with_version(current, 0))], True
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
    segments[0] = ConfigSegment(start, segments[0].cfg) if segments[0].start > start else segments[0]
    return segments, True


def fmt_pct(x: float) -> str:
    return "n/a" if x != x else f"{x * 100:+.2f} %"


def print_report(report, segments, in_force: bool) -> None:
    versions = sorted({s.cfg.config_version for s in segments})
    how = "the config versions in force" if in_force else "the given config"
    click.echo(f"\nreplay of {report.source} into {report.out}: cycle points {report.start:%Y-%m-%d %H:%M} .. "
               f"{report.end:%Y-%m-%d %H:%M} UTC under {how} (version(s) {versions})"
               + (f", resumed from {report.resumed_from:%Y-%m-%d %H:%M}" if report.resumed_from is not None else "")
               + (", continuing the live engine's state before the window" if report.continued_live_state else ""))
    sec = report.seconds
    click.echo(f"{report.days} day(s), {report.cycle_points} cycle points in {report.wall_seconds:.1f} s = "
               f"{report.ms_per_cycle_point:.2f} ms per cycle point (time per stage, overlapping on two cores: "
               + ", ".join(f"{k} {v:.1f} s" for k, v in sec.items()) + ")")
    click.echo(f"{report.ledger_rows} ledger row(s), {report.scan_rows} scan row(s) written")
    perf = report.performance
    if perf is not None:
        click.echo(f"realised:   {perf.realised_usd:+,.2f} USD over {perf.closed_trades} closed trade(s) "
                   f"({perf.wins} won, {perf.losses} lost), size-weighted {fmt_pct(perf.realised_pct)}")
        click.echo(f"unrealised: {perf.unrealised_usd:+,.2f} USD over {perf.open_positions} open position(s), "
                   f"size-weighted {fmt_pct(perf.unrealised_pct)}")
    par = report.parity
    if par is None:
        click.echo("parity: the live warehouse has no engine run to compare with")
        return
    click.echo(par.summary())
    for name, groups in (("only in the live ledger", par.only_live), ("only in the replay", par.only_replay)):
        if groups:
            click.echo(f"trades {name} ({len(groups)}): " + ", ".join(groups[:10])
                       + (" …" if len(groups) > 10 else ""))
    if len(par.differing):
        click.echo(f"differing rows ({len(par.differing)}, first 10):")
        echo_table(par.differing.head(10))
