"""Models in Dagster (SPEC §11.2–§11.3): ``candidate_model`` trains a strategy's candidate (partitioned by strategy)
and evaluates the five promotion gates as BLOCKING asset checks in the same run; ``champion_model`` — downstream of
it, same partitions — runs only when every gate passed and swaps the champion pointer (``model_registry``). A
failing gate leaves the pointer untouched and queues an alert. The model card (metrics, calibration, importance,
walk-forward composites) is the candidate's metadata."""

import dagster as dg
import pandas as pd

from resources.config import ProjectConfigResource
from resources.warehouse import WarehouseResource

from ..core.common import utc_days
from ..core.config import Strategy
from ..core.engine_records import outbox_rows
from ..core.ml import GATES, ModelStoreError
from ..core.model_schemas import ModelMetricsSchema, TrainingLabelSchema
from ..core.notices import notice_rows
from ..partitions import daily_partitions
from ..services.labels import LabelInputError, label_window, labels_for_day
from ..services.models import CandidateRun, ModelError, champion_of, promote, train_candidate
from .common import OWNERS, WAREHOUSE_POOL, json_counts, lookback_dep, markdown_table, partition_window, table_schema

GROUP = "models"
LABELS = "training_labels"
CANDIDATE = "candidate_model"
CHAMPION = "champion_model"
strategy_partitions = dg.StaticPartitionsDefinition([s.value for s in Strategy])
_GATE_TEXT = {
    "samples": "≥ ml.retrain.min_samples label rows",
    "test_size": "test split ≥ ml.promotion.min_test_rows real + simulated rows after purging",
    "improvement": "composite ≥ the champion's on the same test split + min_improvement; first model: ≥ "
                   "first_model_composite",
    "no_leakage": "every row's max feature time < its first label bar",
    "calibration": "each calibration bin's win rate ≥ the previous bin's − calibration_tolerance",
}


def build_labels_asset(cfg) -> dg.AssetsDefinition:
    start, end = label_window(cfg, pd.Timestamp("2026-01-02", tz="UTC"))
    span = pd.Timestamp("2026-01-02", tz="UTC") - start
    deps = [lookback_dep(dg.AssetKey(k), span) for k in ("scan_history", "paper_trades", "shadow_outcomes",
                                                          "shadow_exits", "market_regime", "features_15m",
                                                          "features_daily")]

    @dg.asset(name=LABELS, group_name=GROUP, partitions_def=daily_partitions, pool=WAREHOUSE_POOL, owners=OWNERS,
              kinds={"duckdb"}, deps=deps,
              metadata={"table": LABELS, "dagster/column_schema": table_schema(TrainingLabelSchema)},
              backfill_policy=dg.BackfillPolicy.single_run(),
              description="Training labels (SPEC §11.1) partitioned by the UTC day their outcome became final: "
                          "real closed trades (no manual or strategy-shift exits), production setups simulated with "
                          "production exits by the engine's stepper, and shadow takes with the §11.1 weights; label "
                          "and regression targets; the feature vector from the one feature registry the models "
                          "read at inference, with its max feature time. Append-only, never pruned.")
    def training_labels(context: dg.AssetExecutionContext, project_config: ProjectConfigResource,
                        warehouse: WarehouseResource) -> dg.MaterializeResult:
        cfg_ = project_config.load()
        wh = warehouse.get()
        start, end = partition_window(context)
        parts = []
        for day in utc_days(start, end):  # one UTC day at a time (a range in one run: backfills, make run)
            try:
                day_labels = labels_for_day(wh, cfg_, day)
            except LabelInputError as exc:
                raise dg.Failure(str(exc), allow_retries=False) from None
            if len(day_labels):
                TrainingLabelSchema.validate(day_labels, lazy=True)
                parts.append(day_labels)
        labels = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["source", "strategy",
                                                                                         "label"])
        added = sum(wh.append_labels(p) for p in parts)
        return dg.MaterializeResult(metadata={
            "rows": len(labels), "new_rows": added,
            "by_source": json_counts(labels["source"]) if len(labels) else dg.MetadataValue.json({}),
            "by_strategy": json_counts(labels["strategy"]) if len(labels) else dg.MetadataValue.json({}),
            "win_rate": float(labels["label"].mean()) if len(labels) else float("nan")})

    return training_labels


class ModelStoreResource(dg.ConfigurableResource):
    """The model store folder: ``models/<strategy>/<model_version>/`` (CRYPTOTRACKER_MODELS; tests use a temp one)."""

    root: str


def _bar(value: float, top: float, width: int = 20) -> str:
    n = 0 if top <= 0 else int(round(width * value / top))
    return "█" * n


def svg_bars(title: str, labels: list[str], values: list[float], top: float) -> str:
    """A horizontal bar chart as an inline SVG image in Markdown (the UI renders it like the tutorials' plots)."""
    import base64
    from html import escape

    h, w, left = 18 * len(labels) + 30, 420, 160
    bars = "".join(
        f'<text x="{left - 6}" y="{28 + 18 * i}" font-size="11" text-anchor="end">{escape(lab)}</text>'
        f'<rect x="{left}" y="{18 + 18 * i}" width="{0 if top <= 0 else (w - left - 50) * v / top:.1f}" '
        f'height="13" fill="#4f7cac"/><text x="{left + 4 + (0 if top <= 0 else (w - left - 50) * v / top):.1f}" '
        f'y="{28 + 18 * i}" font-size="10">{v:.3g}</text>' for i, (lab, v) in enumerate(zip(labels, values)))
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}"><text x="4" y="12" font-size="12" '
           f'font-weight="bold">{escape(title)}</text>{bars}</svg>')
    return f"![{title}](data:image/svg+xml;base64,{base64.b64encode(svg.encode()).decode()})"


def model_card(run: CandidateRun) -> dict:
    """The candidate's metadata: the card (Markdown tables and text bar charts the UI renders) and numbers."""
    m = run.model
    if m is None:
        return {"trained": False, "why_not": run.not_trained or ""}
    t = m.test_metrics
    card = pd.DataFrame([{"split": name, "rows": x.rows, "accuracy": x.accuracy, "precision": x.precision,
                          "recall": x.recall, "composite": x.composite, "auc": x.auc}
                         for name, x in (("validation", m.validation_metrics), ("test", t))]).round(4)
    cal = pd.DataFrame([{"bin": i + 1, "rows": b.rows, "mean P(WIN)": round(b.mean_probability, 4),
                         "win rate": round(b.win_rate, 4), "": _bar(b.win_rate, 1.0)}
                        for i, b in enumerate(t.calibration)])
    imp = sorted(m.metrics["feature_importance_gain"].items(), key=lambda kv: -kv[1])[:15]
    top = imp[0][1] if imp else 0.0
    importance = pd.DataFrame([{"feature": k, "gain": round(v, 4), "": _bar(v, top)} for k, v in imp])
    wf = pd.DataFrame([{"window": w["window"], "rows": w["rows"], "test rows": w["test"],
                        "test from": w["test_from"] or "", "composite": w["composite"], "auc": w["auc"],
                        "skipped": w["skipped"] or ""} for w in m.metrics["walk_forward"]])
    gates = pd.DataFrame([{"gate": g.name, "passed": g.passed, "detail": g.detail} for g in run.gates])
    champ = run.champion.model_version if run.champion else None
    text = (f"### {m.model_version} ({m.strategy.value})\n\n{markdown_table(card)}\n\n**Gates**\n\n"
            f"{markdown_table(gates)}\n\n**Calibration (test)**\n\n{markdown_table(cal)}\n\n"
            f"**Feature importance (gain, top 15)**\n\n{markdown_table(importance)}\n\n"
            f"**Walk-forward composites** (oldest first; the gates use window 0)\n\n{markdown_table(wf)}\n\n"
            f"{svg_bars('Calibration (test): win rate per probability bin', [f'bin {i + 1} (P {b.mean_probability:.2f})' for i, b in enumerate(t.calibration)], [b.win_rate for b in t.calibration], 1.0)}\n\n"
            f"{svg_bars('Feature importance (gain)', [k for k, _ in imp], [v for _, v in imp], top)}\n\n"
            f"Champion compared: {champ or 'none (first-model bar)'}"
            f"{'' if run.champion_composite is None else f' scored {run.champion_composite:.4f} on this split'}"
            f"{'; ' + run.champion_error if run.champion_error else ''}.")
    return {"trained": True, "model_version": m.model_version, "feature_set_version": m.feature_set_version,
            "composite": t.composite, "auc": t.auc if t.auc is not None else float("nan"), "test_rows": t.rows,
            "label_rows": m.metrics["rows"], "path": str(run.stored.path) if run.stored else "",
            "content_hash": run.stored.content_hash if run.stored else "",
            "walk_forward_composites": dg.MetadataValue.json([w["composite"] for w in m.metrics["walk_forward"]]),
            "model_card": dg.MetadataValue.md(text)}


@dg.asset(name=CANDIDATE, group_name=GROUP, partitions_def=strategy_partitions, pool=WAREHOUSE_POOL, owners=OWNERS,
          kinds={"xgboost", "duckdb"},
          deps=[dg.AssetDep(LABELS, partition_mapping=dg.AllPartitionMapping())],
          metadata={"table": "model_metrics", "dagster/column_schema": table_schema(ModelMetricsSchema)},
          check_specs=[dg.AssetCheckSpec(g, asset=CANDIDATE, blocking=True, description=_GATE_TEXT[g])
                       for g in GATES],
          description="One training of the strategy's bundle (SPEC §11.2): the time-ordered 60/20/20 split with "
                      "purging, the XGBoost classifier P(WIN) and regressors, test metrics, calibration, importance "
                      "and walk-forward composites as the model card; the model saved to the model store. The five "
                      "promotion gates (§11.3) are BLOCKING checks: champion_model runs only when all pass.")
def candidate_model(context: dg.AssetExecutionContext, project_config: ProjectConfigResource,
                    warehouse: WarehouseResource, model_store: ModelStoreResource):
    from pathlib import Path

    cfg = project_config.load()
    wh = warehouse.get()
    strategy = Strategy(context.partition_key)
    try:
        run = train_candidate(wh, cfg, strategy, Path(model_store.root), pd.Timestamp.now(tz="UTC"))
    except ModelStoreError as exc:  # e.g. a model of this strategy was trained in this minute already
        raise dg.Failure(f"candidate_model {strategy.value}: {exc}", allow_retries=False) from None
    yield dg.MaterializeResult(metadata=model_card(run))
    failed = [g for g in run.gates if not g.passed]
    for g in run.gates:
        yield dg.AssetCheckResult(check_name=g.name, passed=g.passed, severity=dg.AssetCheckSeverity.ERROR,
                                  metadata={"detail": g.detail, **{k: v for k, v in g.metadata.items()
                                                                   if isinstance(v, (int, float, str, bool))}})
    wh.queue_messages(notice_rows([retraining_note(run, context.run_id)], cfg, "reports"), pd.Timestamp.now(tz="UTC"))
    if failed and run.model is not None:
        note = {"kind": "promotion_gates_failed", "channel": cfg.notifications.channels.alerts,
                "cycle_point": pd.Timestamp.now(tz="UTC").floor("min"), "strategy": strategy.value,
                "model_version": run.model.model_version, "failed": [f"{g.name}: {g.detail}" for g in failed],
                "champion": run.champion.model_version if run.champion else None}
        wh.queue_messages(outbox_rows([note], cfg)[0], note["cycle_point"])


def retraining_note(run, run_id: str) -> dict:
    """The #reports retraining result of one strategy's training: trained or why not, rows by source, composite vs
    the champion's, every gate, promoted (all gates passed: champion_model swaps in the same run)."""
    m = run.model
    by_source = dict(m.metrics.get("rows_by_source", {})) if m is not None else {}
    test = m.test_metrics if m is not None else None
    return {"kind": "retraining_result", "cycle_point": pd.Timestamp.now(tz="UTC").floor("s"),
            "identity": {"run_id": run_id, "strategy": run.strategy.value},
            "strategies": [{
                "strategy": run.strategy.value, "trained": m is not None, "why_not": run.not_trained,
                "rows_real": by_source.get("real"), "rows_simulated": by_source.get("simulated"),
                "rows_shadow": by_source.get("shadow"),
                "composite": getattr(test, "composite", None) if test is not None else None,
                "champion_composite": run.champion_composite,
                "gates": [{"name": g.name, "passed": bool(g.passed), "detail": g.detail,
                           "value": next((v for k, v in g.metadata.items() if k == "value"), None),
                           "threshold": next((v for k, v in g.metadata.items() if k == "threshold"), None)}
                          for g in run.gates],
                "promoted": bool(run.passed), "model_id": m.model_version if m is not None else None}]}


@dg.asset(name=CHAMPION, group_name=GROUP, partitions_def=strategy_partitions, pool=WAREHOUSE_POOL, owners=OWNERS,
          kinds={"duckdb"}, deps=[dg.AssetKey(CANDIDATE)],
          description="The champion pointer of the strategy (model_registry, with the history of swaps): "
                      "materialized only when every promotion gate of the candidate passed in the same run; it "
                      "acts from the first cycle point after the swap. Consumers read the pointer, never the newest "
                      "file.")
def champion_model(context: dg.AssetExecutionContext, project_config: ProjectConfigResource,
                   warehouse: WarehouseResource, model_store: ModelStoreResource) -> dg.MaterializeResult:
    from pathlib import Path

    cfg = project_config.load()
    wh = warehouse.get()
    strategy = Strategy(context.partition_key)
    latest = wh.model_metrics()
    mine = latest[(latest["strategy"] == strategy.value) & (latest["part"] == "test")] if latest is not None else None
    if mine is None or mine.empty:
        raise dg.Failure(f"champion_model {strategy.value}: no trained candidate", allow_retries=False)
    version = mine.sort_values("trained_at")["model_version"].iloc[-1]
    now = pd.Timestamp.now(tz="UTC")
    before = champion_of(wh, strategy)
    try:
        swap = promote(wh, (strategy, version), cfg, Path(model_store.root), who="system:training",
                       why=f"run {context.run_id}: every promotion gate passed", now=now)
    except ModelError as exc:
        raise dg.Failure(str(exc), allow_retries=False) from None
    champ = champion_of(wh, strategy)
    if before.model_version and before.model_version != champ.model_version:
        note = {"kind": "champion_retired", "cycle_point": now, "identity": {"swap_id": int(swap)},
                "strategy": strategy.value, "model_id": before.model_version, "replaced_by": champ.model_version,
                "reason": f"replaced by {champ.model_version} (composite {champ.composite if champ.composite is not None else 'n/a'} "
                          f"vs {before.composite if before.composite is not None else 'n/a'}), run {context.run_id}"}
        wh.queue_messages(notice_rows([note], cfg, "alerts"), now)
    return dg.MaterializeResult(metadata={"model_version": champ.model_version, "swap_id": swap,
                                          "feature_set_version": champ.feature_set_version or "",
                                          "composite": champ.composite if champ.composite is not None else
                                          float("nan"), "swapped_at": str(champ.swapped_at)})


training_labels_job = dg.define_asset_job(
    "training_labels_job", selection=dg.AssetSelection.assets(LABELS), partitions_def=daily_partitions,
    tags={"cryptotracker/kind": "models"},
    description="The training labels of a UTC day (outcomes final that day).")
models_training_job = dg.define_asset_job(
    "models_training_job", selection=dg.AssetSelection.assets(CANDIDATE, CHAMPION),
    partitions_def=strategy_partitions, tags={"cryptotracker/kind": "models"},
    description="Train a strategy's candidate; its blocking gates decide whether champion_model swaps the pointer.")
