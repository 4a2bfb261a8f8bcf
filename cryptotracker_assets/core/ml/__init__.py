"""The ML models (SPEC §11), plain Python; never imports dagster.

- :mod:`.training`: the chronological split with purging, metrics (composite, AUC, calibration), training of a
  strategy's bundle (classifier P(WIN) and regressors) with walk-forward composites, scoring a champion on a
  candidate's test split.
- :mod:`.gates`: the §11.3 promotion gates and the §11.2 retrain trigger.
- :mod:`.store`: the model store on disk (atomic versions with a content hash, verified loads).
"""

from .gates import (CALIBRATION, GATES, IMPROVEMENT, NO_LEAKAGE, SAMPLES, TEST_SIZE, GateResult, all_gates,
                    calibration_gate, improvement_gate, leakage_gate, retrain_due, samples_gate, test_size_gate)
from .store import LoadedModel, ModelStoreError, StoredModel, list_versions, load, save
from .training import (LABEL_COLUMNS, SCORED_SOURCES, SOURCES, CalibrationBin, ModelBundle, Split, SplitMetrics,
                       TrainedModel, TrainingError, check_labels, evaluate, feature_matrix, model_version,
                       order_rows, regression_targets, score, split_rows, split_sizes, train, walk_forward)

__all__ = [
    "CALIBRATION", "GATES", "IMPROVEMENT", "LABEL_COLUMNS", "NO_LEAKAGE", "SAMPLES", "SCORED_SOURCES", "SOURCES",
    "TEST_SIZE", "CalibrationBin", "GateResult", "LoadedModel", "ModelBundle", "ModelStoreError", "Split",
    "SplitMetrics", "StoredModel", "TrainedModel", "TrainingError", "all_gates", "calibration_gate",
    "check_labels", "evaluate", "feature_matrix", "improvement_gate", "leakage_gate", "list_versions", "load",
    "model_version", "order_rows", "regression_targets", "retrain_due", "samples_gate", "save", "score",
    "split_rows", "split_sizes", "test_size_gate", "train", "walk_forward",
]
