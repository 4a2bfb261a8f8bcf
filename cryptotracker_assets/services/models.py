"""Training, the promotion gates and the champion pointer against the warehouse and the model store (SPEC §11.2,
§11.3), without Dagster.

A **candidate** is trained on the strategy's stored labels (``training_labels``), saved to the model store
(``models/<strategy>/<model_version>/``, atomic, with its content hash) and gated: the champion in force — loaded
from the store and verified — is scored on the candidate's own test split, so the improvement gate compares the two
on the same rows; a champion of another ``feature_set_version``, or one that cannot be loaded, is not compared (the
first-model bar applies). Promotion appends a swap to ``model_registry`` (the pointer, with history); the models
themselves are never "the newest file".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..core.common import utc
from ..core.config import Config, Strategy
from ..core.ml import (GATES, GateResult, ModelStoreError, StoredModel, TrainedModel, TrainingError, all_gates,
                       calibration_gate, improvement_gate, leakage_gate, load, samples_gate, save, score, split_rows,
                       test_size_gate, train)
from ..core.ml.features import MODEL_FEATURES, feature_set_version
from ..core.model_schemas import ModelMetricsSchema
from ..storage.models import Swap
from ..storage.warehouse import Warehouse

class ModelError(RuntimeError):
    """A model command cannot be carried out (names the strategy, version and why)."""


@dataclass(frozen=True)
class Champion:
    """The champion pointer of a strategy as stored: version, feature set, hash, composite (None: no champion)."""

    strategy: Strategy
    model_version: str | None
    feature_set_version: str | None
    composite: float | None
    swapped_at: pd.Timestamp | None


@dataclass
class CandidateRun:
    """One training: the model (None when it could not be trained), where it is stored, the gates, why it was not
    trained, and the champion it was compared with."""

    strategy: Strategy
    model: TrainedModel | None = None
    stored: StoredModel | None = None
    gates: list[GateResult] = field(default_factory=list)
    not_trained: str | None = None
    champion: Champion | None = None
    champion_composite: float | None = None
    champion_error: str | None = None  # the champion could not be loaded: not compared (first-model bar)

    @property
    def passed(self) -> bool:
        return self.model is not None and bool(self.gates) and all(g.passed for g in self.gates)


def champion_of(wh: Warehouse, strategy: Strategy, at: pd.Timestamp | None = None) -> Champion:
    row = wh.champion(strategy.value, at)
    if row is None or row["model_version"] is None or pd.isna(row["model_version"]):
        return Champion(strategy, None, None, None, None if row is None else utc(row["swapped_at"], "swapped_at"))
    return Champion(strategy, row["model_version"], row["feature_set_version"],
                    None if pd.isna(row["composite"]) else float(row["composite"]), utc(row["swapped_at"], "at"))


def train_candidate(wh: Warehouse, cfg: Config, strategy: Strategy, root: Path, started_at: pd.Timestamp
                    ) -> CandidateRun:
    """Train, store and gate a candidate of ``strategy`` on its stored labels."""
    strategy = Strategy.parse(strategy)
    run = CandidateRun(strategy, champion=champion_of(wh, strategy))
    labels = wh.labels(strategy.value)
    n = 0 if labels is None else len(labels)
    if n < cfg.ml.retrain.min_samples:
        run.not_trained = f"{n} label rows < ml.retrain.min_samples {cfg.ml.retrain.min_samples}"
        run.gates = [samples_gate(n, cfg)] + [GateResult(g, False, "not trained", {}) for g in GATES[1:]]
        return run
    fsv = feature_set_version(cfg)
    try:
        model = train(labels, MODEL_FEATURES, strategy, cfg, started_at=started_at, feature_set_version=fsv)
    except TrainingError as exc:
        run.not_trained = str(exc)
        run.gates = [samples_gate(n, cfg)] + [GateResult(g, False, f"not trained: {exc}", {}) for g in GATES[1:]]
        return run
    run.model = model
    run.stored = save(model, root)
    ch = run.champion
    if ch.model_version is not None and ch.feature_set_version == fsv:
        try:
            champ = load(root, strategy, ch.model_version)
            run.champion_composite = score(champ, labels, model.split, cfg).composite
        except ModelStoreError as exc:  # an unloadable champion counts as none (SPEC §3.3)
            run.champion_error = f"champion {ch.model_version} cannot be loaded: {exc}"
    # a champion not scored on this split (none, another feature set, unloadable): the first-model bar applies
    run.gates = all_gates(labels, model, cfg, champion_composite=run.champion_composite,
                          champion_feature_set_version=fsv if run.champion_composite is not None else None)
    wh.append_model_metrics(metrics_rows(model, run))
    return run


def metrics_rows(model: TrainedModel, run: CandidateRun) -> pd.DataFrame:
    """``model_metrics`` rows: the validation and test splits, then each walk-forward window."""
    rows = []
    common = {"model_version": model.model_version, "strategy": model.strategy.value,
              "feature_set_version": model.feature_set_version, "trained_at": model.started_at,
              "content_hash": run.stored.content_hash if run.stored else None}
    for part, m in (("validation", model.validation_metrics), ("test", model.test_metrics)):
        rows.append({**common, "part": part, "rows": m.rows, "accuracy": m.accuracy, "precision": m.precision,
                     "recall": m.recall, "composite": m.composite, "auc": m.auc})
    for w in model.metrics.get("walk_forward", []):  # oldest first; window 0 is the current split
        rows.append({**common, "part": f"walk_forward_{w['window']}", "rows": int(w["test"]), "accuracy": None,
                     "precision": None, "recall": None, "composite": w["composite"], "auc": w["auc"]})
    df = pd.DataFrame(rows)
    df["trained_at"] = pd.to_datetime(df["trained_at"], utc=True).astype("datetime64[ns, UTC]")
    for c in ("accuracy", "precision", "recall", "composite", "auc"):
        df[c] = df[c].astype("float64")
    df["rows"] = df["rows"].astype("int64")
    ModelMetricsSchema.validate(df, lazy=True)
    return df


def promote(wh: Warehouse, run_or_version, cfg: Config, root: Path, *, who: str, why: str, now: pd.Timestamp,
            kind: str = "promote") -> int:
    """Swap the champion pointer to a stored, verified model (one transaction; refused if another swap came
    first). ``run_or_version``: a passed :class:`CandidateRun`, or (strategy, model_version) for the CLI, which runs
    the gates itself."""
    if isinstance(run_or_version, CandidateRun):
        run = run_or_version
        if not run.passed:
            failed = [g.name for g in run.gates if not g.passed]
            raise ModelError(f"{run.strategy.value}: gates failed {failed}: the champion stays")
        strategy, version = run.strategy, run.model.model_version
        composite = run.model.test_metrics.composite
        expected = run.champion.model_version if run.champion else None
    else:
        strategy, version = run_or_version
        strategy = Strategy.parse(strategy)
        composite = None
        expected = champion_of(wh, strategy).model_version
    try:
        loaded = load(root, strategy, version)  # verifies the files against their content hash
    except ModelStoreError as exc:
        raise ModelError(f"{strategy.value}: {version} cannot be loaded, so it never becomes champion: {exc}") from None
    swap = Swap(strategy.value, version, loaded.feature_set_version, loaded.content_hash,
                composite if composite is not None else loaded.metrics.get("composite"), kind, who, why, now)
    try:
        return wh.record_swap(swap, expected, check=True)
    except ValueError as exc:
        raise ModelError(str(exc)) from None


def gate_version(wh: Warehouse, cfg: Config, root: Path, strategy: Strategy, version: str
                 ) -> tuple[list[GateResult], float, float | None]:
    """The §11.3 gates of a stored ``version`` against the champion, both scored on the CURRENT test split of the
    strategy's labels (``cryptotracker models promote``): (gates, its composite, the champion's or None)."""
    strategy = Strategy.parse(strategy)
    labels = wh.labels(strategy.value)
    if labels is None or labels.empty:
        raise ModelError(f"{strategy.value}: no training labels stored; nothing to score {version} on")
    model = load(root, strategy, version)
    split = split_rows(labels, cfg)
    mine = score(model, labels, split, cfg)
    ch = champion_of(wh, strategy)
    champ_composite = None
    if ch.model_version is not None and ch.model_version != version and ch.feature_set_version == \
            model.feature_set_version:
        try:
            champ_composite = score(load(root, strategy, ch.model_version), labels, split, cfg).composite
        except ModelStoreError:
            champ_composite = None  # an unloadable champion is not compared
    gates = [samples_gate(len(labels), cfg), test_size_gate(mine.rows, cfg),
             improvement_gate(mine.composite, champ_composite, model.feature_set_version,
                              model.feature_set_version if champ_composite is not None else None, cfg),
             leakage_gate(labels), calibration_gate(mine.calibration, cfg)]
    if model.feature_set_version != feature_set_version(cfg):
        gates.append(GateResult("feature_set", False, f"{version} was trained on feature set "
                                f"{model.feature_set_version[:12]}, the registry's is {feature_set_version(cfg)[:12]}",
                                {}))
    return gates, mine.composite, champ_composite


def rollback_champion(wh: Warehouse, cfg: Config, root: Path, strategy: Strategy, *, who: str, why: str,
                      now: pd.Timestamp) -> tuple[int, str]:
    """Make the champion before the current one champion again (a verified load; refused for a model of another
    ``feature_set_version`` than the registry's, SPEC I-18). Returns (swap id, version)."""
    strategy = Strategy.parse(strategy)
    swaps = wh.model_swaps()
    mine = swaps[swaps["strategy"] == strategy.value] if len(swaps) else swaps
    current = champion_of(wh, strategy).model_version
    earlier = [v for v in mine["model_version"].tolist()[:-1] if isinstance(v, str) and v != current]
    if not earlier:
        raise ModelError(f"{strategy.value}: no earlier champion to roll back to")
    target = earlier[-1]
    model = load(root, strategy, target)
    if model.feature_set_version != feature_set_version(cfg):
        raise ModelError(f"{target} was trained on feature set {model.feature_set_version[:12]}; the registry's is "
                         f"{feature_set_version(cfg)[:12]}: it is never served (SPEC I-18)")
    sid = wh.record_swap(Swap(strategy.value, target, model.feature_set_version, model.content_hash,
                              model.metrics.get("composite"), "rollback", who, why, now), current, check=True)
    return sid, target


def retrain_reason(wh: Warehouse, cfg: Config, strategy: Strategy) -> str | None:
    """None when the daily job retrains ``strategy`` (SPEC §11.2): ≥ ``ml.retrain.min_new_outcomes`` real +
    simulated labels final since its last training and ≥ ``ml.retrain.min_samples`` rows; else why not."""
    from ..core.ml import retrain_due

    strategy = Strategy.parse(strategy)
    labels = wh.labels(strategy.value)
    if labels is None or labels.empty:
        return retrain_due(0, 0, cfg)
    metrics = wh.model_metrics()
    last = None
    if metrics is not None and len(metrics):
        mine = metrics[metrics["strategy"] == strategy.value]
        last = pd.Timestamp(mine["trained_at"].max()).tz_convert("UTC") if len(mine) else None
    scored = labels[labels["source"].isin(["real", "simulated"])]
    new = scored if last is None else scored[pd.DatetimeIndex(scored["outcome_end"]) > last]
    return retrain_due(len(new), len(labels), cfg)
