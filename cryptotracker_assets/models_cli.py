"""``cryptotracker models list | show <version> | promote <version> | rollback <strategy>``: the model store and the
champion pointer (SPEC §11.3). ``promote`` scores the version and the champion on the current test split and runs
the same gates as training, refusing on any failure; ``rollback`` refuses a model of another feature set (I-18);
both record who and why, and a materialization of ``champion_model`` in the Dagster instance when there is one."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pandas as pd

from .cli_common import session, stage, warehouse_option
from .core.config import Strategy



def _context(s):
    """(warehouse, effective config, model store) of a command that changes the champion."""
    from .core.config import load_config
    from .services.config_versions import origin_of
    from .services.revisions import effective_config

    wh = s.warehouse(create=False)
    cfg = effective_config(wh, load_config(s.env.config_path), origin_of(s.env.config_path))
    return wh, cfg, Path(s.env.models_dir)


def _report(s, strategy: str, metadata: dict) -> None:
    """A runless materialization of ``champion_model`` for the strategy (see :mod:`.instance_events`)."""
    from .instance_events import report_materialization

    report_materialization(s.dagster_home, "champion_model", metadata, partition=strategy)


def _refused(command: str, exc: Exception) -> int:
    click.echo(f"models {command} refused: {exc}", err=True)
    return 2


def _errors():
    from .core.ml import ModelStoreError
    from .services.models import ModelError
    from .storage.warehouse import WarehouseError

    return ModelError, ModelStoreError, WarehouseError, ValueError


def _strategy_of(version: str) -> Strategy:
    return Strategy.parse(version.split("_")[0].upper())


@click.group("models")
def models_group() -> None:
    """The model store and the champion pointer: list, show, promote, rollback (SPEC §11.3)."""


@models_group.command("list")
@warehouse_option
def models_list_command(warehouse: str | None) -> int:
    """Champions and stored versions per strategy (with their test composite)."""
    from .core.ml import list_versions
    from .services.models import champion_of

    s = session(warehouse)
    wh, root = s.warehouse(create=False), Path(s.env.models_dir)
    metrics = wh.model_metrics() if wh.exists() else None
    for st in Strategy:
        ch = champion_of(wh, st) if wh.exists() else None
        version = ch.model_version if ch is not None else None
        click.echo(f"{st.value}: champion {version or 'none (rule confidence)'}"
                   + (f" since {ch.swapped_at:%Y-%m-%d %H:%M} UTC, composite {ch.composite:.4f}"
                      if version and ch.composite is not None else ""))
        for v in list_versions(root, st):
            comp = None
            if metrics is not None and len(metrics):
                row = metrics[(metrics["model_version"] == v) & (metrics["part"] == "test")]
                comp = float(row["composite"].iloc[0]) if len(row) else None
            mark = "*" if v == version else " "
            click.echo(f"  {mark} {v}" + ("" if comp is None else f"  test composite {comp:.4f}"))
    return 0


@models_group.command("show")
@click.argument("version")
@warehouse_option
def models_show_command(version: str, warehouse: str | None) -> int:
    """A stored version as JSON: hash, feature set, metrics, walk-forward (the session line goes to stderr)."""
    from .core.ml import load

    s = session(warehouse, err=True)
    try:
        model = load(Path(s.env.models_dir), _strategy_of(version), version)
    except _errors() as exc:
        return _refused("show", exc)
    m = model.metrics
    click.echo(json.dumps({"model_version": model.model_version, "path": str(model.path),
                           "content_hash": model.content_hash, "feature_set_version": model.feature_set_version,
                           "features": len(model.features), "test": m.get("test"),
                           "validation": m.get("validation"), "walk_forward": m.get("walk_forward"),
                           "rows_by_source": m.get("rows_by_source")}, indent=2, default=str))
    return 0


@models_group.command("promote")
@click.argument("version")
@click.option("--by", required=True, help="who promotes")
@click.option("--why", required=True, help="why")
@warehouse_option
def models_promote_command(version: str, by: str, why: str, warehouse: str | None) -> int:
    """Gate a stored version on the current test split; it becomes champion only if every gate passes."""
    from .services.models import gate_version, promote

    s = session(warehouse)
    try:
        wh, cfg, root = _context(s)
        strategy = _strategy_of(version)
        stage(f"scoring {version} and the champion on the current test split")
        gates, composite, champ = gate_version(wh, cfg, root, strategy, version)
        for g in gates:
            click.echo(f"  {'pass' if g.passed else 'FAIL'} {g.name}: {g.detail}")
        failed = [g.name for g in gates if not g.passed]
        if failed:
            click.echo(f"promote refused: gates failed {failed}; the champion stays", err=True)
            return 2
        sid = promote(wh, (strategy, version), cfg, root, who=by, why=why, now=pd.Timestamp.now(tz="UTC"))
    except _errors() as exc:
        return _refused("promote", exc)
    click.echo(f"{strategy.value}: {version} is champion (swap {sid}; composite {composite:.4f} vs "
               f"{'none' if champ is None else f'{champ:.4f}'} on the current test split)")
    _report(s, strategy.value, {"model_version": version, "who": by, "why": why})
    return 0


@models_group.command("rollback")
@click.argument("strategy", type=click.Choice([s.value for s in Strategy], case_sensitive=False),
                metavar="STRATEGY")
@click.option("--by", required=True, help="who rolls back")
@click.option("--why", required=True, help="why")
@warehouse_option
def models_rollback_command(strategy: str, by: str, why: str, warehouse: str | None) -> int:
    """Make the previous champion of STRATEGY (DCA, SWING or CHANNEL) champion again (refused for another feature
    set, I-18)."""
    from .services.models import rollback_champion

    s = session(warehouse)
    st = Strategy.parse(strategy.upper())
    try:
        wh, cfg, root = _context(s)
        sid, version = rollback_champion(wh, cfg, root, st, who=by, why=why, now=pd.Timestamp.now(tz="UTC"))
    except _errors() as exc:
        return _refused("rollback", exc)
    click.echo(f"{st.value}: rolled back to {version} (swap {sid})")
    _report(s, st.value, {"model_version": version, "who": by, "why": why, "kind": "rollback"})
    return 0


def demo_models(defs, instance, wh, *, run_config: dict, tags: dict) -> bool:
    """``make run``: the training labels of the demo window, one training per strategy; prints per strategy the
    labels, the candidate's composite and whether it was promoted — and which gate decided."""
    labels = defs.resolve_job_def("training_labels_job").execute_in_process(
        instance=instance, run_config=run_config, tags=tags, raise_on_error=False)
    if not labels.success:
        click.echo(f"demo FAILED: training_labels_job run {labels.run_id} failed; see the Dagster UI", err=True)
        return False
    stored = wh.labels()
    n = 0 if stored is None else len(stored)
    counts = stored["source"].value_counts().items() if n else ()
    by_source = " (" + ", ".join(f"{k} {v:,}" for k, v in counts) + ")" if n else ""
    click.echo(f"\ntraining labels: {n:,} rows{by_source}")
    job = defs.resolve_job_def("models_training_job")
    # a failing gate fails its run by design (the UI lists it): its stack trace is not news here
    silent = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    for s in Strategy:
        r = job.execute_in_process(partition_key=s.value, instance=instance, run_config=silent,
                                   raise_on_error=False)
        checks = [e.asset_check_evaluation_data for e in r.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
        failed = [c.check_name for c in checks if not c.passed]
        card = next((m.step_materialization_data.materialization for m in r.get_asset_materialization_events()
                     if m.step_materialization_data.materialization.asset_key.to_user_string() == "candidate_model"),
                    None)
        meta = {k: v.value for k, v in card.metadata.items()} if card is not None else {}
        if not meta.get("trained"):
            click.echo(f"  {s.value}: not trained ({meta.get('why_not', 'the run failed: see the Dagster UI')})")
        elif failed:
            click.echo(f"  {s.value}: candidate {meta['model_version']} composite {meta['composite']:.3f}, NOT "
                       f"promoted — gate(s) {', '.join(failed)} failed; the champion stays")
        else:
            click.echo(f"  {s.value}: candidate {meta['model_version']} composite {meta['composite']:.3f}, every "
                       f"gate passed → champion")
    click.echo("  (model cards and gate results: Dagster UI → Assets → candidate_model; "
               "`cryptotracker models list`)")
    return True
