"""``cryptotracker models list | show <version> | promote <version> | rollback <strategy>``: the model store and the
champion pointer (SPEC §11.3). ``promote`` scores the version and the champion on the current test split and runs
the same gates as training, refusing on any failure; ``rollback`` refuses a model of another feature set (I-18);
both record who and why, and a materialization of ``champion_model`` in the Dagster instance when there is one."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from .core.config import Strategy


def _context(args: argparse.Namespace):
    from .core.config import load_config
    from .services.revisions import effective_config
    from .services.config_versions import origin_of
    from .storage.warehouse import Warehouse

    wh = Warehouse(getattr(args, "warehouse", None) or args.env.warehouse)
    cfg = effective_config(wh, load_config(args.env.config_path), origin_of(args.env.config_path))
    return wh, cfg, Path(args.env.models_dir)


def _report(args: argparse.Namespace, strategy: str, metadata: dict) -> None:
    """A runless materialization of ``champion_model`` for the strategy (see :mod:`.instance_events`)."""
    from .instance_events import report_materialization

    report_materialization(args.env.dagster_home, "champion_model", metadata, partition=strategy)


def cmd_models(args: argparse.Namespace) -> int:
    from .core.ml import ModelStoreError, list_versions, load
    from .services.models import ModelError, champion_of, gate_version, promote, rollback_champion

    wh, cfg, root = _context(args)
    now = pd.Timestamp.now(tz="UTC")
    try:
        if args.models_command == "list":
            metrics = wh.model_metrics()
            for s in Strategy:
                ch = champion_of(wh, s)
                print(f"{s.value}: champion {ch.model_version or 'none (rule confidence)'}"
                      + (f" since {ch.swapped_at:%Y-%m-%d %H:%M} UTC, composite {ch.composite:.4f}"
                         if ch.model_version and ch.composite is not None else ""))
                for v in list_versions(root, s):
                    comp = None
                    if metrics is not None and len(metrics):
                        row = metrics[(metrics["model_version"] == v) & (metrics["part"] == "test")]
                        comp = float(row["composite"].iloc[0]) if len(row) else None
                    mark = "*" if v == ch.model_version else " "
                    print(f"  {mark} {v}" + ("" if comp is None else f"  test composite {comp:.4f}"))
            return 0
        if args.models_command == "show":
            strategy = Strategy.parse(args.version.split("_")[0].upper())
            model = load(root, strategy, args.version)
            m = model.metrics
            print(json.dumps({"model_version": model.model_version, "path": str(model.path),
                              "content_hash": model.content_hash, "feature_set_version": model.feature_set_version,
                              "features": len(model.features), "test": m.get("test"),
                              "validation": m.get("validation"), "walk_forward": m.get("walk_forward"),
                              "rows_by_source": m.get("rows_by_source")}, indent=2, default=str))
            return 0
        if args.models_command == "promote":
            strategy = Strategy.parse(args.version.split("_")[0].upper())
            gates, composite, champ = gate_version(wh, cfg, root, strategy, args.version)
            for g in gates:
                print(f"  {'pass' if g.passed else 'FAIL'} {g.name}: {g.detail}")
            failed = [g.name for g in gates if not g.passed]
            if failed:
                print(f"promote refused: gates failed {failed}; the champion stays", file=sys.stderr)
                return 2
            sid = promote(wh, (strategy, args.version), cfg, root, who=args.by, why=args.why, now=now)
            print(f"{strategy.value}: {args.version} is champion (swap {sid}; composite {composite:.4f} vs "
                  f"{'none' if champ is None else f'{champ:.4f}'} on the current test split)")
            _report(args, strategy.value, {"model_version": args.version, "who": args.by, "why": args.why})
            return 0
        strategy = Strategy.parse(args.strategy.upper())
        sid, version = rollback_champion(wh, cfg, root, strategy, who=args.by, why=args.why, now=now)
        print(f"{strategy.value}: rolled back to {version} (swap {sid})")
        _report(args, strategy.value, {"model_version": version, "who": args.by, "why": args.why,
                                       "kind": "rollback"})
        return 0
    except (ModelError, ModelStoreError, ValueError) as exc:
        print(f"models {args.models_command} refused: {exc}", file=sys.stderr)
        return 2


def demo_models(defs, instance, wh, *, run_config: dict, tags: dict) -> bool:
    """``make run``: the training labels of the demo window, one training per strategy; prints per strategy the
    labels, the candidate's composite and whether it was promoted — and which gate decided."""
    labels = defs.resolve_job_def("training_labels_job").execute_in_process(
        instance=instance, run_config=run_config, tags=tags, raise_on_error=False)
    if not labels.success:
        print(f"demo FAILED: training_labels_job run {labels.run_id} failed; see the Dagster UI", file=sys.stderr)
        return False
    stored = wh.labels()
    n = 0 if stored is None else len(stored)
    print(f"\ntraining labels: {n:,} rows"
          + ("" if not n else " (" + ", ".join(f"{k} {v:,}" for k, v in stored["source"].value_counts().items())
             + ")"))
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
            print(f"  {s.value}: not trained ({meta.get('why_not', 'the run failed: see the Dagster UI')})")
        elif failed:
            print(f"  {s.value}: candidate {meta['model_version']} composite {meta['composite']:.3f}, NOT promoted "
                  f"— gate(s) {', '.join(failed)} failed; the champion stays")
        else:
            print(f"  {s.value}: candidate {meta['model_version']} composite {meta['composite']:.3f}, every gate "
                  f"passed → champion")
    print("  (model cards and gate results: Dagster UI → Assets → candidate_model; `cryptotracker models list`)")
    return True


def add_models_parser(sub) -> None:
    p = sub.add_parser("models", help="the model store and the champion pointer: list, show, promote, rollback")
    msub = p.add_subparsers(dest="models_command", required=True)
    c = msub.add_parser("list", help="champions and stored versions per strategy")
    c.add_argument("--warehouse")
    c = msub.add_parser("show", help="a stored version: hash, feature set, metrics, walk-forward")
    c.add_argument("version")
    c.add_argument("--warehouse")
    c = msub.add_parser("promote", help="gate a stored version on the current test split; champion if all pass")
    c.add_argument("version")
    c.add_argument("--by", required=True)
    c.add_argument("--why", required=True)
    c.add_argument("--warehouse")
    c = msub.add_parser("rollback", help="make the previous champion of a strategy champion again")
    c.add_argument("strategy", choices=[s.value for s in Strategy] + [s.key for s in Strategy])
    c.add_argument("--by", required=True)
    c.add_argument("--why", required=True)
    c.add_argument("--warehouse")
    p.set_defaults(func=cmd_models)
