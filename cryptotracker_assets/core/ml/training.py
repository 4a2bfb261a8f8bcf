"""Training of a strategy's model bundle (SPEC §11.1–§11.2); plain Python, never imports dagster.

- :func:`order_rows` / :func:`split_rows`: the chronological train / validation / test split with purging.
- :func:`evaluate`: accuracy, precision, recall, composite, AUC and the calibration table of scored rows.
- :func:`train`: the classifier P(WIN), the regressors, test and validation metrics, walk-forward composites.
- :func:`score`: any model (a candidate or a loaded champion) on a split's test rows.

Input rows are labelled setups (columns in :data:`LABEL_COLUMNS` plus the feature columns). Probabilities, thresholds
and the metrics are fractions in [0, 1]; every time is tz-aware UTC.

Decisions the SPEC leaves open, fixed here:

- Order: setup_time, scan_id, source, variation (missing first), then label_id, so that the order is total.
- Purge: a part's row is purged when its ``outcome_end`` is strictly after the first setup_time of the next
  non-empty part (before that part's own purge); test rows are never purged.
- Regressors are fitted on the same purged train rows as the classifier (every source) with the same row weights
  (§11.2 "row weights as sample weights"), each on the rows whose target is known; their outputs feed only ML_TRUST
  shadows and reports, and their test MAE (real + simulated rows) is reported only.
- Walk-forward: with b = the test size of the current split, window k (k = 0 … ``ml.walk_forward.windows`` − 1) is the
  split of the oldest n − k·b rows, i.e. the retrain that would have run before the newest k·b rows existed; window 0
  is the current split, window 1 trains on exactly its train + validation rows. Each window's classifier is fitted on
  its purged train rows and scored on its test rows; a window without rows or with one class is reported skipped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.metrics import roc_auc_score

from ..common import is_utc, ns_column, utc
from ..config import Config, Strategy, XgbParams

SOURCES = ("real", "simulated", "shadow")
SCORED_SOURCES = ("real", "simulated")  # validation and test metrics use these rows, unweighted (§11.2)
TARGETS = ("tp_target", "sl_target", "hold_target_h")
SIZE_TARGET = "size_mult_target"  # DCA only
ORDER = ("setup_time", "scan_id", "source", "variation", "label_id")
TIME_COLUMNS = ("setup_time", "first_label_bar", "outcome_end", "max_feature_time")
LABEL_COLUMNS = ("label_id", "source", "scan_id", "variation", "strategy", *TIME_COLUMNS, "weight", "label",
                 *TARGETS, SIZE_TARGET)
# XGBoost threads: the machine's two cores are shared with the engine and the warehouse. Fixed (not the core count)
# so that a model is the same on every machine.
MAX_THREADS = 2


class TrainingError(ValueError):
    """The rows cannot train a model (a part without rows, one class, a target without values)."""


def regression_targets(strategy: Strategy | str) -> tuple[str, ...]:
    """The regressors of a strategy's bundle: tp, sl and hold targets, plus the size multiplier for DCA (§11.1)."""
    return TARGETS + ((SIZE_TARGET,) if Strategy.parse(strategy) is Strategy.DCA else ())


def xgb_params(cfg: Config, strategy: Strategy | None) -> XgbParams:
    """``ml.xgb.<s>`` for a strategy's classifier, ``ml.xgb.default`` for the regressors (``strategy`` None)."""
    return cfg.ml.xgb.default if strategy is None else getattr(cfg.ml.xgb, Strategy.parse(strategy).key)


# ---------------------------------------------------------------------------------------------------------------
# Rows and the split
# ---------------------------------------------------------------------------------------------------------------


def feature_matrix(frame: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
    """The float64 feature matrix of ``frame`` in the order of ``features`` (NaN = missing); absent columns or an
    infinite value raise ``ValueError`` naming them."""
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise ValueError(f"missing feature columns: {missing}")
    x = frame[list(features)].to_numpy(dtype="float64", na_value=np.nan)
    bad = np.isinf(x).any(axis=0)
    if bad.any():
        raise ValueError(f"infinite values in feature columns: {[f for f, b in zip(features, bad) if b]}")
    return x


def order_rows(labels: pd.DataFrame) -> pd.DataFrame:
    """The rows in training order (:data:`ORDER`, missing variation first), index reset."""
    missing = [c for c in ORDER if c not in labels.columns]
    if missing:
        raise ValueError(f"labels lack columns {missing}")
    ns_column(labels["setup_time"], "setup_time")
    return labels.sort_values(list(ORDER), na_position="first", kind="mergesort").reset_index(drop=True)


def check_labels(labels: pd.DataFrame, features: Sequence[str] = ()) -> None:
    """Raise ``ValueError`` naming the column when ``labels`` is not a labels frame (§11.1): columns present, unique
    label ids, known sources, UTC times (max_feature_time may be missing: the leakage gate names such rows),
    integer labels 0/1, finite positive weights."""
    missing = [c for c in (*LABEL_COLUMNS, *features) if c not in labels.columns]
    if missing:
        raise ValueError(f"labels lack columns {missing}")
    if labels["label_id"].isna().any() or labels["label_id"].duplicated().any():
        raise ValueError("label_id must be present and unique")
    unknown = sorted(set(labels["source"]) - set(SOURCES))
    if unknown:
        raise ValueError(f"unknown source {unknown}; expected one of {list(SOURCES)}")
    for col in TIME_COLUMNS[:-1]:
        ns_column(labels[col], col)
    mft = labels["max_feature_time"].dtype
    if not isinstance(mft, pd.DatetimeTZDtype) or not is_utc(mft.tz):
        raise ValueError(f"max_feature_time must be tz-aware UTC, got {mft}")
    if not pd.api.types.is_integer_dtype(labels["label"]) or not labels["label"].isin([0, 1]).all():
        raise ValueError("label must be integers 0/1")
    w = labels["weight"].to_numpy(dtype="float64")
    if not (np.isfinite(w) & (w > 0)).all():
        raise ValueError("weight must be finite and positive")


@dataclass(frozen=True)
class Split:
    """Label ids per part in training order (after purging) and the purged ids (§11.2)."""

    train: tuple[str, ...]
    validation: tuple[str, ...]
    test: tuple[str, ...]
    purged_train: tuple[str, ...]
    purged_validation: tuple[str, ...]
    validation_start: pd.Timestamp | None  # first setup_time of the validation part (before purging)
    test_start: pd.Timestamp | None

    def counts(self) -> dict[str, int]:
        return {"train": len(self.train), "validation": len(self.validation), "test": len(self.test),
                "purged_train": len(self.purged_train), "purged_validation": len(self.purged_validation)}

    def to_dict(self) -> dict[str, Any]:
        """Counts and part boundaries (ISO times), for metrics."""
        return {**self.counts(),
                "validation_start": None if self.validation_start is None else self.validation_start.isoformat(),
                "test_start": None if self.test_start is None else self.test_start.isoformat()}


@dataclass(frozen=True)
class _Parts:
    kept: tuple[np.ndarray, np.ndarray, np.ndarray]  # positions in the ordered rows
    purged: tuple[np.ndarray, np.ndarray]
    starts: tuple[int | None, int | None]  # first setup ns of validation and test (before purging)


def split_sizes(n: int, cfg: Config) -> tuple[int, int, int]:
    """(train, validation, test) sizes: floor(f₀·n), floor(f₁·n), the rest, with ``ml.split`` = [f₀, f₁, f₂] taken
    as exact decimals (no float rounding at a boundary)."""
    f_train, f_val = (Fraction(repr(f)) for f in cfg.ml.split[:2])
    n_train, n_val = math.floor(f_train * n), math.floor(f_val * n)
    return n_train, n_val, n - n_train - n_val


def _parts(setup_ns: np.ndarray, end_ns: np.ndarray, cfg: Config) -> _Parts:
    n_train, n_val, _ = split_sizes(len(setup_ns), cfg)
    raw = np.split(np.arange(len(setup_ns)), [n_train, n_train + n_val])
    starts = [int(setup_ns[p[0]]) if len(p) else None for p in raw]
    kept, purged = list(raw), []
    for i in (0, 1):
        nxt = next((s for s in starts[i + 1:] if s is not None), None)
        drop = end_ns[raw[i]] > nxt if nxt is not None else np.zeros(len(raw[i]), dtype=bool)
        kept[i] = raw[i][~drop]
        purged.append(raw[i][drop])
    return _Parts((kept[0], kept[1], kept[2]), (purged[0], purged[1]), (starts[1], starts[2]))


def split_rows(labels: pd.DataFrame, cfg: Config) -> Split:
    """The §11.2 split of ``labels``: ordered by :func:`order_rows`, sizes by :func:`split_sizes`, then a train row
    whose ``outcome_end`` is after the validation part's first setup_time is purged, and likewise a validation row
    ending after the test part's first setup_time (an empty validation part passes the boundary on to the test)."""
    ordered = order_rows(labels)
    parts = _parts(ns_column(ordered["setup_time"], "setup_time"),
                   ns_column(ordered["outcome_end"], "outcome_end"), cfg)
    return _split_of(ordered, parts)


def _split_of(ordered: pd.DataFrame, parts: _Parts) -> Split:
    ids = ordered["label_id"].to_numpy()

    def pick(pos: np.ndarray) -> tuple[str, ...]:
        return tuple(str(i) for i in ids[pos])

    def ts(ns: int | None) -> pd.Timestamp | None:
        return None if ns is None else pd.Timestamp(ns, tz="UTC")

    return Split(*(pick(p) for p in parts.kept), *(pick(p) for p in parts.purged),
                 ts(parts.starts[0]), ts(parts.starts[1]))


# ---------------------------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CalibrationBin:
    """One calibration group: test rows ``rows``, of which ``wins`` labelled 1; mean predicted probability."""

    rows: int
    wins: int
    mean_probability: float

    @property
    def win_rate(self) -> float:
        return self.wins / self.rows

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "wins": self.wins, "win_rate": self.win_rate,
                "mean_probability": self.mean_probability}


@dataclass(frozen=True)
class SplitMetrics:
    """Unweighted metrics of scored rows (§11.2); positive = probability ≥ ``threshold``. With no rows every rate
    is 0; precision is 0 when nothing is positive, recall 0 when no row is a win; ``auc`` is None with one class."""

    rows: int
    wins: int
    predicted_positive: int
    true_positive: int
    threshold: float
    accuracy: float
    precision: float
    recall: float
    composite: float
    auc: float | None
    calibration: tuple[CalibrationBin, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "wins": self.wins, "predicted_positive": self.predicted_positive,
                "true_positive": self.true_positive, "threshold": self.threshold, "accuracy": self.accuracy,
                "precision": self.precision, "recall": self.recall, "composite": self.composite, "auc": self.auc,
                "calibration": [b.to_dict() for b in self.calibration]}


def evaluate(label: np.ndarray, probability: np.ndarray, setup_ns: np.ndarray, threshold: float,
             cfg: Config) -> SplitMetrics:
    """Metrics of scored rows given in training order: accuracy, precision and recall at ``threshold``, composite =
    w_a·accuracy + w_p·precision + w_r·recall (``ml.composite_weights``), AUC, and the calibration table: rows
    sorted by probability (ties by setup time, then training order) cut into ``ml.promotion.calibration_bins``
    consecutive groups whose sizes differ by at most 1 (the larger ones first; empty groups left out)."""
    y = np.asarray(label, dtype="int64")
    p = np.asarray(probability, dtype="float64")
    n = len(y)
    pos = p >= threshold
    tp, n_pos, wins = int((pos & (y == 1)).sum()), int(pos.sum()), int(y.sum())
    correct = tp + int((~pos & (y == 0)).sum())
    accuracy = correct / n if n else 0.0
    precision = tp / n_pos if n_pos else 0.0
    recall = tp / wins if wins else 0.0
    w = cfg.ml.composite_weights
    composite = w.accuracy * accuracy + w.precision * precision + w.recall * recall
    auc = float(roc_auc_score(y, p)) if 0 < wins < n else None
    order = np.lexsort((np.arange(n), np.asarray(setup_ns, dtype="int64"), p))
    bins = tuple(CalibrationBin(len(g), int(y[g].sum()), float(p[g].mean()))
                 for g in np.array_split(order, cfg.ml.promotion.calibration_bins) if len(g))
    return SplitMetrics(n, wins, n_pos, tp, float(threshold), accuracy, precision, recall, float(composite), auc,
                        bins)


# ---------------------------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)  # boosters and frames: identity, not value equality
class ModelBundle:
    """A strategy's boosters over ``features`` (§11.1): the classifier P(WIN) and the regressors by target."""

    strategy: Strategy
    model_version: str
    feature_set_version: str
    features: tuple[str, ...]
    classifier: xgb.Booster
    regressors: Mapping[str, xgb.Booster]
    metrics: Mapping[str, Any]

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """P(WIN) per row of ``frame`` (its feature columns; a missing one raises naming it)."""
        x = feature_matrix(frame, self.features)
        if not len(x):
            return np.empty(0, dtype="float64")
        return np.asarray(self.classifier.inplace_predict(x), dtype="float64")

    def predict_targets(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The regressors' raw predictions per row (columns = targets; fractions, hours, multiplier), index of
        ``frame``; the consumer clips them (ML_TRUST's ``hold_h_range``)."""
        x = feature_matrix(frame, self.features)
        return pd.DataFrame({t: (np.asarray(b.inplace_predict(x), dtype="float64") if len(x) else np.empty(0))
                             for t, b in self.regressors.items()}, index=frame.index)


@dataclass(frozen=True, eq=False)  # boosters and frames: identity, not value equality
class TrainedModel(ModelBundle):
    """A freshly trained candidate with its split, metrics and the predictions on every test row."""

    started_at: pd.Timestamp
    split: Split
    test_metrics: SplitMetrics
    validation_metrics: SplitMetrics
    test_predictions: pd.DataFrame  # label_id, source, setup_time, label, scored, probability, predicted_<target>


def _fit(x: np.ndarray, y: np.ndarray, w: np.ndarray, params: XgbParams, cfg: Config, classify: bool
         ) -> xgb.Booster:
    kwargs = dict(n_estimators=params.n_estimators, max_depth=params.max_depth, learning_rate=params.learning_rate,
                  tree_method="hist", random_state=cfg.ml.random_seed, n_jobs=MAX_THREADS)
    model = xgb.XGBClassifier(objective="binary:logistic", **kwargs) if classify else xgb.XGBRegressor(**kwargs)
    model.fit(x, y, sample_weight=w)
    return model.get_booster()


def _fit_classifier(x: np.ndarray, y: np.ndarray, w: np.ndarray, params: XgbParams, cfg: Config,
                    what: str) -> xgb.Booster:
    if not len(y):
        raise TrainingError(f"{what}: no train rows")
    if len(np.unique(y)) < 2:
        raise TrainingError(f"{what}: the train rows have one class ({int(y[0])})")
    return _fit(x, y, w, params, cfg, classify=True)


def _proba(booster: xgb.Booster, x: np.ndarray) -> np.ndarray:
    return np.asarray(booster.inplace_predict(x), dtype="float64") if len(x) else np.empty(0, dtype="float64")


def model_version(strategy: Strategy | str, started_at: Any) -> str:
    """``{strategy}_{yyyymmddHHMM}`` of the training start, UTC (§0.3)."""
    return f"{Strategy.parse(strategy).key}_{utc(started_at, 'started_at'):%Y%m%d%H%M}"


def train(labels: pd.DataFrame, features: Sequence[str], strategy: Strategy | str, cfg: Config, *,
          started_at: Any, feature_set_version: str) -> TrainedModel:
    """Train the bundle of ``strategy`` on ``labels`` (one row per labelled setup of that strategy, §11.1) over
    ``features``: the split of :func:`split_rows`; the classifier (``ml.xgb.<s>``) and the regressors
    (``ml.xgb.default``) on the purged train rows, row weights as sample weights, seed ``ml.random_seed``; test and
    validation metrics on real + simulated rows at ``ml.confidence_threshold.<s>``; gain importance; walk-forward
    composites (module docstring). Raises :class:`TrainingError` when a model cannot be fitted."""
    strategy = Strategy.parse(strategy)
    started = utc(started_at, "started_at")
    features = tuple(features)
    check_labels(labels, features)
    others = sorted({str(s) for s in labels["strategy"]} - {strategy.value})
    if others:
        raise ValueError(f"labels of {others} passed to the {strategy.value} training")
    clock = time.perf_counter()
    rows = order_rows(labels)
    setup_ns = ns_column(rows["setup_time"], "setup_time")
    parts = _parts(setup_ns, ns_column(rows["outcome_end"], "outcome_end"), cfg)
    split = _split_of(rows, parts)
    x = feature_matrix(rows, features)
    y = rows["label"].to_numpy(dtype="int64")
    w = rows["weight"].to_numpy(dtype="float64")
    scored = rows["source"].isin(SCORED_SOURCES).to_numpy()
    threshold = float(cfg.ml.confidence_threshold.of(strategy))
    train_pos, val_pos, test_pos = parts.kept

    classifier = _fit_classifier(x[train_pos], y[train_pos], w[train_pos], xgb_params(cfg, strategy), cfg,
                                 f"{strategy.value} classifier")
    regressors, regressor_metrics = {}, {}
    for target in regression_targets(strategy):
        t = rows[target].to_numpy(dtype="float64", na_value=np.nan)
        known = train_pos[np.isfinite(t[train_pos])]
        if not len(known):
            raise TrainingError(f"{strategy.value} regressor {target}: no train rows with a value")
        regressors[target] = _fit(x[known], t[known], w[known], xgb_params(cfg, None), cfg, classify=False)
        at = test_pos[scored[test_pos] & np.isfinite(t[test_pos])]
        err = np.abs(_proba(regressors[target], x[at]) - t[at])
        regressor_metrics[target] = {"train_rows": int(len(known)), "test_rows": int(len(at)),
                                     "test_mae": float(err.mean()) if len(at) else None}

    def metrics_of(pos: np.ndarray) -> SplitMetrics:
        pos = pos[scored[pos]]
        return evaluate(y[pos], _proba(classifier, x[pos]), setup_ns[pos], threshold, cfg)

    test_metrics, validation_metrics = metrics_of(test_pos), metrics_of(val_pos)
    predictions = rows.iloc[test_pos][["label_id", "source", "setup_time", "label"]].reset_index(drop=True)
    predictions["scored"] = scored[test_pos]
    predictions["probability"] = _proba(classifier, x[test_pos])
    for target, booster in regressors.items():
        predictions[f"predicted_{target}"] = _proba(booster, x[test_pos])
    gain = classifier.get_score(importance_type="gain")
    importance = {f: float(gain.get(f"f{i}", 0.0)) for i, f in enumerate(features)}
    windows = walk_forward(rows, x, y, w, scored, strategy, cfg, test_metrics)
    version = model_version(strategy, started)
    metrics = {
        "strategy": strategy.value, "model_version": version, "feature_set_version": feature_set_version,
        "started_at": started.isoformat(), "rows": int(len(rows)),
        "rows_by_source": {s: int((rows["source"] == s).sum()) for s in SOURCES},
        "train_rows_by_source": {s: int((rows["source"].to_numpy()[train_pos] == s).sum()) for s in SOURCES},
        "split": split.to_dict(), "test": test_metrics.to_dict(), "validation": validation_metrics.to_dict(),
        "composite": test_metrics.composite, "regressors": regressor_metrics, "feature_importance_gain": importance,
        "walk_forward": windows,
        "params": {"classifier": xgb_params(cfg, strategy).model_dump(), "regressor": xgb_params(cfg, None)
                   .model_dump(), "random_seed": cfg.ml.random_seed, "threshold": threshold},
        "train_seconds": time.perf_counter() - clock,
    }
    return TrainedModel(strategy, version, feature_set_version, features, classifier, regressors, metrics, started,
                        split, test_metrics, validation_metrics, predictions)


def walk_forward(rows: pd.DataFrame, x: np.ndarray, y: np.ndarray, w: np.ndarray, scored: np.ndarray,
                 strategy: Strategy, cfg: Config, current: SplitMetrics) -> list[dict[str, Any]]:
    """The ``ml.walk_forward.windows`` expanding windows, oldest first, the last being the current split (its
    ``current`` metrics): window k uses the oldest n − k·b rows (b = the current test size) split and purged as
    in :func:`split_rows`; each reports its rows, train/test counts, test period, composite and AUC, or why it was
    skipped (composite None)."""
    setup_ns = ns_column(rows["setup_time"], "setup_time")
    end_ns = ns_column(rows["outcome_end"], "outcome_end")
    n = len(rows)
    b = split_sizes(n, cfg)[2]
    threshold = float(cfg.ml.confidence_threshold.of(strategy))
    out = []
    for k in range(cfg.ml.walk_forward.windows):
        m = n - k * b
        entry: dict[str, Any] = {"window": -k, "rows": max(m, 0), "train": 0, "test": 0, "test_from": None,
                                 "test_to": None, "composite": None, "auc": None, "skipped": None}
        if m <= 0 or b == 0:
            out.append({**entry, "skipped": "not enough rows"})
            continue
        parts = _parts(setup_ns[:m], end_ns[:m], cfg)
        tr, _, te = parts.kept
        te_scored = te[scored[te]]
        entry.update(train=int(len(tr)), test=int(len(te_scored)))
        if len(te):
            entry.update(test_from=pd.Timestamp(setup_ns[te[0]], tz="UTC").isoformat(),
                         test_to=pd.Timestamp(setup_ns[te[-1]], tz="UTC").isoformat())
        if k == 0:
            out.append({**entry, "composite": current.composite, "auc": current.auc})
            continue
        if not len(te_scored):
            out.append({**entry, "skipped": "no real or simulated test rows"})
            continue
        try:
            booster = _fit_classifier(x[tr], y[tr], w[tr], xgb_params(cfg, strategy), cfg, f"window {-k}")
        except TrainingError as exc:
            out.append({**entry, "skipped": str(exc)})
            continue
        m_k = evaluate(y[te_scored], _proba(booster, x[te_scored]), setup_ns[te_scored], threshold, cfg)
        out.append({**entry, "composite": m_k.composite, "auc": m_k.auc})
    return out[::-1]


def score(model: ModelBundle, labels: pd.DataFrame, split: Split, cfg: Config) -> SplitMetrics:
    """``model`` (e.g. the champion) on the real + simulated rows of ``split.test`` taken from ``labels``, at the
    current ``ml.confidence_threshold`` of the model's strategy: the same rows and rules as the candidate's test
    metrics. A test id absent from ``labels`` raises ``ValueError``."""
    by_id = labels.set_index("label_id", drop=False)
    absent = [i for i in split.test if i not in by_id.index]
    if absent:
        raise ValueError(f"{len(absent)} test label ids are not in labels, e.g. {absent[:3]}")
    test = by_id.loc[list(split.test)]
    test = test[test["source"].isin(SCORED_SOURCES)]
    return evaluate(test["label"].to_numpy(dtype="int64"), model.predict_proba(test),
                    ns_column(test["setup_time"], "setup_time"),
                    float(cfg.ml.confidence_threshold.of(model.strategy)), cfg)
