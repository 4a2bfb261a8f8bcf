"""ML training, metrics and promotion gates (SPEC §11.1–§11.3).

Expectations are independent of the code under test: split sizes, purges, metrics and calibration bins worked by hand
(the arithmetic is in the comments), AUC from sklearn called directly, and models judged on synthetic labels with a
known planted rule (a learnable signal) or none (pure noise).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from cryptotracker_assets.core.ml import (GATES, CalibrationBin, TrainingError, all_gates, calibration_gate, evaluate,
                                          gates, improvement_gate, leakage_gate, retrain_due, samples_gate, score,
                                          split_rows, split_sizes, train)

FEATURES = ["f1", "f2", "f3"]
T0 = pd.Timestamp("2025-01-01", tz="UTC")
STARTED = pd.Timestamp("2025-02-01 09:00:41", tz="UTC")


def make_labels(n: int, seed: int, *, signal: bool = True, strategy: str = "DCA", base_rate: float = 0.5,
                shadow_share: float = 0.1, outcome_h: float = 2.0) -> pd.DataFrame:
    """``n`` labelled setups 5 minutes apart, outcomes ending ``outcome_h`` after entry. With ``signal`` the label is
    the planted rule f1 + 0.5·f2 + noise > 0 (f3 is noise); without, a coin with P(1) = ``base_rate``. Features
    end one minute before the setup; the entry bar is the setup time; ~10 % shadow rows of weight 0.3."""
    rng = np.random.default_rng(seed)
    setup = T0 + pd.to_timedelta(np.arange(n) * 5, "min")
    f = rng.normal(size=(3, n))
    if signal:
        label = (f[0] + 0.5 * f[1] + 0.5 * rng.normal(size=n) > 0).astype("int64")
    else:
        label = (rng.random(n) < base_rate).astype("int64")
    source = np.where(rng.random(n) < shadow_share, "shadow", np.where(rng.random(n) < 0.3, "real", "simulated"))
    return pd.DataFrame({
        "label_id": [f"L{i:06d}" for i in range(n)], "source": source,
        "scan_id": [f"{strategy}_BTC_{t:%y%m%d%H%M}" for t in setup],
        "variation": np.where(source == "shadow", "QUICK_EXITS", None), "strategy": strategy,
        "setup_time": setup, "first_label_bar": setup, "outcome_end": setup + pd.Timedelta(hours=outcome_h),
        "max_feature_time": setup - pd.Timedelta(minutes=1),
        "weight": np.where(source == "shadow", 0.3, 1.0), "label": label,
        "tp_target": np.clip(0.05 + 0.02 * f[0], 0.0, 0.3), "sl_target": 0.02 + 0.005 * np.abs(f[1]),
        "hold_target_h": 10 + 3 * f[2],
        "size_mult_target": np.clip(1 + 0.2 * f[0], 0.5, 1.5) if strategy == "DCA" else np.nan,
        "f1": f[0], "f2": f[1], "f3": f[2]})


@pytest.fixture(scope="module")
def planted_labels():
    return make_labels(1000, 1)


@pytest.fixture(scope="module")
def planted(planted_labels, cfg):
    return train(planted_labels, FEATURES, "DCA", cfg, started_at=STARTED, feature_set_version="fsv-a")


# --- split ---------------------------------------------------------------------------------------------------------


def _minutes(m: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(minutes=m)


def tiny_table() -> pd.DataFrame:
    """Ten rows; at minute 10 five tie: scan R1 sorts before S1, and within S1 source 'shadow' before 'simulated',
    variation BULL_MARKET before QUICK_EXITS. Training order: A E D C B F G H I J."""
    rows = [  # label_id, setup minute, scan_id, source, variation, outcome_end minute
        ("A", 0, "S0", "real", None, 5),
        ("B", 10, "S1", "simulated", None, 30),  # ends exactly at the validation start: kept
        ("C", 10, "S1", "shadow", "QUICK_EXITS", 15),
        ("D", 10, "S1", "shadow", "BULL_MARKET", 15),
        ("E", 10, "R1", "real", None, 15),
        ("F", 20, "S2", "real", None, 35),  # ends after the validation start (30): purged
        ("G", 30, "S3", "simulated", None, 50),  # ends exactly at the test start: kept
        ("H", 40, "S4", "real", None, 55),  # ends after the test start (50): purged
        ("I", 50, "S5", "real", None, 999),  # test rows are never purged
        ("J", 60, "S6", "simulated", None, 65),
    ]
    df = pd.DataFrame(rows, columns=["label_id", "m", "scan_id", "source", "variation", "end"])
    df["setup_time"] = df["m"].map(_minutes)
    df["outcome_end"] = df["end"].map(_minutes)
    return df.drop(columns=["m", "end"]).iloc[::-1].reset_index(drop=True)  # given newest first


def test_split_orders_ties_sizes_by_floor_and_purges_by_hand(cfg):
    s = split_rows(tiny_table(), cfg)
    # n = 10: floor(0.6·10) = 6 train (A E D C B F), floor(0.2·10) = 2 validation (G H), rest 2 test (I J)
    assert s.train == ("A", "E", "D", "C", "B")
    assert s.purged_train == ("F",)
    assert s.validation == ("G",)
    assert s.purged_validation == ("H",)
    assert s.test == ("I", "J")
    assert s.validation_start == _minutes(30) and s.test_start == _minutes(50)
    assert s.counts() == {"train": 5, "validation": 1, "test": 2, "purged_train": 1, "purged_validation": 1}


def test_split_sizes_floor_arithmetic(cfg):
    # (floor(0.6 n), floor(0.2 n), rest)
    assert split_sizes(10, cfg) == (6, 2, 2)
    assert split_sizes(7, cfg) == (4, 1, 2)  # 4.2 → 4, 1.4 → 1
    assert split_sizes(99, cfg) == (59, 19, 21)  # 59.4, 19.8
    assert split_sizes(3, cfg) == (1, 0, 2)
    assert split_sizes(1, cfg) == (0, 0, 1)
    assert split_sizes(0, cfg) == (0, 0, 0)


def test_an_empty_validation_part_passes_the_purge_boundary_to_the_test(cfg):
    df = tiny_table()
    df = df[df["label_id"].isin(["A", "F", "I"])]  # n = 3: 1 train (A), 0 validation, 2 test (F I)
    df.loc[df["label_id"] == "A", "outcome_end"] = _minutes(21)  # after F's setup (20)
    s = split_rows(df, cfg)
    assert (s.train, s.purged_train, s.validation, s.test) == ((), ("A",), (), ("F", "I"))
    assert s.validation_start is None and s.test_start == _minutes(20)


# --- metrics by hand -----------------------------------------------------------------------------------------------

Y = np.array([1, 0, 1, 1, 0, 0, 1, 0])
P = np.array([0.9, 0.7, 0.6, 0.3, 0.2, 0.5, 0.55, 0.1])


def test_metrics_against_hand_computation(cfg):
    m = evaluate(Y, P, np.arange(8), 0.6, cfg)
    # positive = p ≥ 0.6: rows 0 (win), 1 (loss), 2 (win, equal to the threshold) → TP 2, FP 1
    # wins 4 (rows 0 2 3 6) → FN 2; TN 3 (rows 4 5 7)
    assert (m.rows, m.wins, m.predicted_positive, m.true_positive) == (8, 4, 3, 2)
    assert m.accuracy == pytest.approx(5 / 8)
    assert m.precision == pytest.approx(2 / 3)
    assert m.recall == pytest.approx(2 / 4)
    assert m.composite == pytest.approx(0.3 * 0.625 + 0.5 * 2 / 3 + 0.2 * 0.5)  # 0.6208333
    # AUC: pairs (win, loss) ranked right: 0.9 beats 4, 0.6 beats 3, 0.3 beats 2, 0.55 beats 3 → 12 / 16
    assert m.auc == pytest.approx(0.75)
    assert m.auc == pytest.approx(roc_auc_score(Y, P))
    # 4 bins of 2 by rising p: (0.1 L, 0.2 L) (0.3 W, 0.5 L) (0.55 W, 0.6 W) (0.7 L, 0.9 W)
    assert [(b.rows, b.wins) for b in m.calibration] == [(2, 0), (2, 1), (2, 2), (2, 1)]
    assert [b.mean_probability for b in m.calibration] == pytest.approx([0.15, 0.4, 0.575, 0.8])


def test_precision_is_zero_when_nothing_is_positive(cfg):
    m = evaluate(Y, np.full(8, 0.59), np.arange(8), 0.6, cfg)
    assert (m.predicted_positive, m.precision, m.recall) == (0, 0.0, 0.0)
    assert m.accuracy == pytest.approx(4 / 8)  # every loss is right
    assert m.composite == pytest.approx(0.3 * 0.5)
    assert m.auc == pytest.approx(0.5)  # all tied


def test_auc_is_none_with_one_class(cfg):
    assert evaluate(np.ones(5, dtype=int), np.linspace(0.1, 0.9, 5), np.arange(5), 0.6, cfg).auc is None


def test_calibration_bins_equal_size_and_probability_ties_by_setup_time(cfg):
    # 10 rows, 4 bins → sizes 3 3 2 2. All probabilities tie, so rows go by setup time: given newest first,
    # the first bin holds the three oldest = the last three given (labels 1 1 0).
    y = np.array([0, 0, 1, 0, 1, 1, 0, 0, 1, 1])
    m = evaluate(y, np.full(10, 0.5), np.arange(10)[::-1] * 60, 0.6, cfg)
    assert [b.rows for b in m.calibration] == [3, 3, 2, 2]
    # oldest first: y reversed = 1 1 0 | 0 1 1 | 0 1 | 0 0
    assert [b.wins for b in m.calibration] == [2, 2, 1, 0]


# --- planted signal, noise, leakage --------------------------------------------------------------------------------


def test_planted_signal_is_learned_and_passes_every_gate(planted, planted_labels, cfg):
    tm = planted.test_metrics
    assert tm.auc > 0.8
    preds = planted.test_predictions[planted.test_predictions["scored"]]
    assert tm.auc == pytest.approx(roc_auc_score(preds["label"], preds["probability"]))
    assert tm.rows == int(planted_labels.set_index("label_id").loc[list(planted.split.test), "source"]
                          .isin(["real", "simulated"]).sum())
    results = all_gates(planted_labels, planted, cfg)
    assert [r.name for r in results] == list(GATES)
    assert all(r.passed for r in results), [r for r in results if not r.passed]
    # the planted rule uses f1 and f2 only: f3 (noise) gains least
    gain = planted.metrics["feature_importance_gain"]
    assert gain["f1"] > gain["f2"] > gain["f3"]


def test_model_version_bundle_and_regressors(planted, planted_labels):
    assert planted.model_version == "dca_202502010900"
    assert set(planted.regressors) == {"tp_target", "sl_target", "hold_target_h", "size_mult_target"}
    test = planted_labels.set_index("label_id").loc[list(planted.split.test)]
    pred = planted.predict_targets(test)
    # tp_target = 0.05 + 0.02·f1 (clipped): the regressor beats predicting the mean by far
    mae = np.abs(pred["tp_target"] - test["tp_target"]).mean()
    assert mae < 0.25 * np.abs(test["tp_target"] - test["tp_target"].mean()).mean()
    assert planted.metrics["regressors"]["tp_target"]["test_mae"] < 0.005


def test_walk_forward_windows_expand_to_the_current_split(planted, cfg):
    wf = planted.metrics["walk_forward"]
    # n = 1000, b = 200 test rows: windows use the oldest 400, 600, 800 and 1000 rows, oldest first
    assert [w["window"] for w in wf] == [-3, -2, -1, 0]
    assert [w["rows"] for w in wf] == [400, 600, 800, 1000]
    assert wf[-1]["composite"] == planted.test_metrics.composite
    assert all(w["composite"] is not None and w["composite"] > 0.6 for w in wf)
    # window −1's test block ends right before the current test split starts
    assert pd.Timestamp(wf[-2]["test_to"]) < planted.split.test_start <= pd.Timestamp(wf[-1]["test_from"])


def test_a_champion_is_scored_on_the_candidates_test_rows(planted, planted_labels, cfg):
    other = train(planted_labels.iloc[:700], FEATURES, "DCA", cfg, started_at=STARTED, feature_set_version="fsv-a")
    champion = score(other, planted_labels, planted.split, cfg)
    assert champion.rows == planted.test_metrics.rows
    ids = [i for i in planted.split.test]
    test = planted_labels.set_index("label_id").loc[ids]
    test = test[test["source"] != "shadow"]
    assert champion.auc == pytest.approx(roc_auc_score(test["label"], other.predict_proba(test)))
    assert score(planted, planted_labels, planted.split, cfg).composite == planted.test_metrics.composite


def test_pure_noise_fails_a_gate(cfg):
    # no signal and 35 % wins: precision ≈ 0.35 keeps the composite far below the first-model bar (0.55)
    labels = make_labels(1000, 7, signal=False, base_rate=0.35)
    model = train(labels, FEATURES, "DCA", cfg, started_at=STARTED, feature_set_version="fsv-a")
    results = {r.name: r for r in all_gates(labels, model, cfg)}
    assert model.test_metrics.composite < 0.55
    assert not results["improvement"].passed
    assert not all(r.passed for r in results.values())
    assert results["samples"].passed and results["test_size"].passed and results["no_leakage"].passed


def test_a_leaky_row_fails_the_leakage_gate_naming_it(planted_labels):
    labels = planted_labels.copy()
    labels.loc[700, "max_feature_time"] = labels.loc[700, "first_label_bar"] + pd.Timedelta(minutes=1)
    labels.loc[500, "max_feature_time"] = labels.loc[500, "first_label_bar"]  # equal is a leak too
    r = leakage_gate(labels.iloc[::-1])
    assert not r.passed
    assert r.metadata["first_label_id"] == "L000500" and r.metadata["offending"] == 2
    assert "L000500" in r.detail
    assert leakage_gate(planted_labels).passed
    labels.loc[300, "max_feature_time"] = pd.NaT
    assert leakage_gate(labels).metadata["first_label_id"] == "L000300"


def test_training_is_deterministic(planted, planted_labels, cfg):
    again = train(planted_labels, FEATURES, "DCA", cfg, started_at=STARTED, feature_set_version="fsv-a")
    assert np.array_equal(planted.predict_proba(planted_labels), again.predict_proba(planted_labels))
    pd.testing.assert_frame_equal(planted.test_predictions, again.test_predictions)
    assert planted.metrics["walk_forward"] == again.metrics["walk_forward"]


def test_swing_bundle_has_no_size_regressor_and_foreign_rows_raise(cfg):
    labels = make_labels(300, 3, strategy="SWING")
    model = train(labels, FEATURES, "SWING", cfg, started_at=STARTED, feature_set_version="fsv-a")
    assert model.model_version == "swing_202502010900"
    assert set(model.regressors) == {"tp_target", "sl_target", "hold_target_h"}
    assert model.metrics["params"]["classifier"] == {"n_estimators": 80, "max_depth": 5, "learning_rate": 0.15}
    with pytest.raises(ValueError, match="DCA"):
        train(labels, FEATURES, "DCA", cfg, started_at=STARTED, feature_set_version="fsv-a")


def test_one_class_training_and_bad_inputs_raise(cfg):
    labels = make_labels(200, 4)
    with pytest.raises(TrainingError, match="one class"):
        train(labels.assign(label=0), FEATURES, "DCA", cfg, started_at=STARTED, feature_set_version="x")
    with pytest.raises(ValueError, match="label must be integers"):
        train(labels.assign(label=labels["label"].astype(float)), FEATURES, "DCA", cfg, started_at=STARTED,
              feature_set_version="x")
    with pytest.raises(ValueError, match=r"\['f9'\]"):
        train(labels, [*FEATURES, "f9"], "DCA", cfg, started_at=STARTED, feature_set_version="x")
    with pytest.raises(ValueError, match="started_at"):
        train(labels, FEATURES, "DCA", cfg, started_at=pd.Timestamp("2025-02-01"), feature_set_version="x")


# --- gates by hand -------------------------------------------------------------------------------------------------


def test_sample_and_test_size_gates_at_their_boundaries(cfg):
    assert not samples_gate(99, cfg).passed and samples_gate(100, cfg).passed
    assert not gates.test_size_gate(19, cfg).passed and gates.test_size_gate(20, cfg).passed


def test_improvement_gate_boundaries(cfg):
    # champion 0.55 + min_improvement 0.02 = 0.57: equal passes
    assert improvement_gate(0.57, 0.55, "v1", "v1", cfg).passed
    assert not improvement_gate(0.5699, 0.55, "v1", "v1", cfg).passed
    # no champion: the first-model bar 0.55
    assert improvement_gate(0.55, None, "v1", None, cfg).passed
    assert not improvement_gate(0.5499, None, "v1", None, cfg).passed
    # a champion of another feature_set_version is not compared: first-model bar even against a weak champion
    r = improvement_gate(0.54, 0.30, "v2", "v1", cfg)
    assert not r.passed and r.metadata["rule"] == "first_model"
    assert improvement_gate(0.56, 0.60, "v2", "v1", cfg).passed


def test_calibration_gate_tolerance(cfg):
    def table(*wins):
        return [CalibrationBin(10, w, 0.0) for w in wins]

    # win rates 0.2 0.5 0.4 0.6: the drop 0.5 → 0.4 equals the tolerance 0.10 and passes
    assert calibration_gate(table(2, 5, 4, 6), cfg).passed
    r = calibration_gate(table(2, 5, 3, 6), cfg)  # 0.5 → 0.3 drops 0.2
    assert not r.passed and r.metadata["failing_bin"] == 3
    assert calibration_gate([b.to_dict() for b in table(2, 5, 4, 6)], cfg).passed


def test_retrain_due(cfg):
    assert "19" in retrain_due(19, 500, cfg)
    assert "99" in retrain_due(20, 99, cfg)
    assert retrain_due(20, 100, cfg) is None


def test_timing_smoke_10k_rows(cfg):
    # 30 features, about the size of the §2.2 indicator set with context features: f1–f3 and 27 noise columns
    labels = make_labels(10_000, 11)
    extra = [f"n{i}" for i in range(27)]
    labels = labels.join(pd.DataFrame(np.random.default_rng(12).normal(size=(len(labels), len(extra))),
                                      columns=extra))
    clock = time.perf_counter()
    model = train(labels, [*FEATURES, *extra], "DCA", cfg, started_at=STARTED, feature_set_version="fsv-a")
    print(f"\n10k rows × 30 features, DCA bundle with {cfg.ml.walk_forward.windows} walk-forward windows: "
          f"{time.perf_counter() - clock:.2f} s (test AUC {model.test_metrics.auc:.3f})")
