"""Promotion gates and the retrain trigger (SPEC §11.2, §11.3); pure functions, never imports dagster.

Each gate returns a :class:`GateResult`; all must pass for a candidate to become champion, and a failing one leaves
the champion pointer untouched. Threshold comparisons let "equal" pass despite float rounding (``at_least``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..config import Config
from ..shadows.stats import at_least
from .training import CalibrationBin, TrainedModel, order_rows

SAMPLES = "samples"
TEST_SIZE = "test_size"
IMPROVEMENT = "improvement"
NO_LEAKAGE = "no_leakage"
CALIBRATION = "calibration"
GATES = (SAMPLES, TEST_SIZE, IMPROVEMENT, NO_LEAKAGE, CALIBRATION)


@dataclass(frozen=True)
class GateResult:
    """One gate's verdict: ``detail`` is one sentence for people, ``metadata`` the numbers behind it."""

    name: str
    passed: bool
    detail: str
    metadata: Mapping[str, Any] = field(default_factory=dict)


def samples_gate(rows: int, cfg: Config) -> GateResult:
    """At least ``ml.retrain.min_samples`` label rows (every source)."""
    need = cfg.ml.retrain.min_samples
    ok = rows >= need
    return GateResult(SAMPLES, ok, f"{rows} label rows {'≥' if ok else '<'} {need}",
                      {"rows": int(rows), "min_samples": need})


def test_size_gate(test_rows: int, cfg: Config) -> GateResult:
    """At least ``ml.promotion.min_test_rows`` scored test rows: the real + simulated rows of the test split the
    metrics are computed on (test rows are never purged; shadow rows are not scored)."""
    need = cfg.ml.promotion.min_test_rows
    ok = test_rows >= need
    return GateResult(TEST_SIZE, ok, f"{test_rows} scored test rows {'≥' if ok else '<'} {need}",
                      {"test_rows": int(test_rows), "min_test_rows": need})


test_size_gate.__test__ = False  # type: ignore[attr-defined]  # a gate, not a pytest test, when imported by name


def improvement_gate(candidate_composite: float, champion_composite: float | None, candidate_fsv: str,
                     champion_fsv: str | None, cfg: Config) -> GateResult:
    """Composite ≥ the champion's composite on the same test split + ``ml.promotion.min_improvement``; with no
    champion (``champion_composite`` None) or a champion of another ``feature_set_version`` (retired from scoring),
    composite ≥ ``ml.promotion.first_model_composite``."""
    p = cfg.ml.promotion
    meta: dict[str, Any] = {"candidate_composite": candidate_composite, "champion_composite": champion_composite,
                            "candidate_feature_set_version": candidate_fsv,
                            "champion_feature_set_version": champion_fsv}
    if champion_composite is None or champion_fsv != candidate_fsv:
        why = "no champion" if champion_composite is None else "the champion has another feature_set_version"
        ok = at_least(candidate_composite, p.first_model_composite)
        return GateResult(IMPROVEMENT, ok, f"{why}: composite {candidate_composite:.4f} "
                          f"{'≥' if ok else '<'} first-model bar {p.first_model_composite}",
                          {**meta, "rule": "first_model", "required": p.first_model_composite})
    need = champion_composite + p.min_improvement
    ok = at_least(candidate_composite, need)
    return GateResult(IMPROVEMENT, ok, f"composite {candidate_composite:.4f} {'≥' if ok else '<'} champion "
                      f"{champion_composite:.4f} + {p.min_improvement}",
                      {**meta, "rule": "champion", "required": need})


def leakage_gate(labels: pd.DataFrame) -> GateResult:
    """Every row's ``max_feature_time`` < ``first_label_bar`` (a missing time fails); names the first offending
    label_id in training order and counts the offenders."""
    rows = order_rows(labels)
    mft = pd.to_datetime(rows["max_feature_time"], utc=True)
    flb = pd.to_datetime(rows["first_label_bar"], utc=True)
    bad = (~(mft < flb)).to_numpy()
    if not bad.any():
        return GateResult(NO_LEAKAGE, True, f"all {len(rows)} rows use features older than their first label bar",
                          {"rows": int(len(rows)), "offending": 0})
    first = int(bad.argmax())
    label_id = str(rows["label_id"].iloc[first])
    return GateResult(NO_LEAKAGE, False, f"{int(bad.sum())} rows leak; first {label_id}: max_feature_time "
                      f"{mft.iloc[first]} is not before first_label_bar {flb.iloc[first]}",
                      {"rows": int(len(rows)), "offending": int(bad.sum()), "first_label_id": label_id})


def _wins_rows(b: CalibrationBin | Mapping[str, Any]) -> tuple[int, int]:
    return (b.wins, b.rows) if isinstance(b, CalibrationBin) else (int(b["wins"]), int(b["rows"]))


def calibration_gate(table: Sequence[CalibrationBin | Mapping[str, Any]], cfg: Config) -> GateResult:
    """Each calibration bin's win rate ≥ the previous bin's − ``ml.promotion.calibration_tolerance`` (bins in order
    of rising probability; :class:`CalibrationBin` or its dict form)."""
    tol = cfg.ml.promotion.calibration_tolerance
    rates = [w / r for w, r in map(_wins_rows, table)]
    meta = {"win_rates": rates, "tolerance": tol}
    for i in range(1, len(rates)):
        if not at_least(rates[i], rates[i - 1] - tol):
            return GateResult(CALIBRATION, False, f"bin {i + 1} win rate {rates[i]:.4f} < bin {i} "
                              f"{rates[i - 1]:.4f} − {tol}", {**meta, "failing_bin": i + 1})
    return GateResult(CALIBRATION, True, f"{len(rates)} bins, no win-rate drop beyond {tol}", meta)


def all_gates(labels: pd.DataFrame, model: TrainedModel, cfg: Config, *, champion_composite: float | None = None,
              champion_feature_set_version: str | None = None) -> list[GateResult]:
    """The five §11.3 gates of a candidate trained on ``labels``, in :data:`GATES` order. ``champion_composite`` is
    the champion scored on the candidate's test split (``score(champion, labels, model.split, cfg)``)."""
    return [
        samples_gate(len(labels), cfg),
        test_size_gate(model.test_metrics.rows, cfg),
        improvement_gate(model.test_metrics.composite, champion_composite, model.feature_set_version,
                         champion_feature_set_version, cfg),
        leakage_gate(labels),
        calibration_gate(model.test_metrics.calibration, cfg),
    ]


def retrain_due(new_real_simulated_labels: int, total_rows: int, cfg: Config) -> str | None:
    """None when the daily job trains (§11.2): ≥ ``ml.retrain.min_new_outcomes`` new real + simulated labels since
    the strategy's last training and ≥ ``ml.retrain.min_samples`` rows in total; otherwise why not."""
    r = cfg.ml.retrain
    if new_real_simulated_labels < r.min_new_outcomes:
        return f"{new_real_simulated_labels} new real + simulated labels < {r.min_new_outcomes}"
    if total_rows < r.min_samples:
        return f"{total_rows} label rows < {r.min_samples}"
    return None
