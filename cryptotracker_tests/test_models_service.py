"""Training, gates and the champion pointer against a warehouse and a temporary model store (issue 12 slice): a
planted signal is trained, stored, gated and promoted; noise fails a gate and the pointer stays; a champion is
scored on the candidate's own test split; a corrupt champion file is never compared and never served; the pointer
keeps its history and a swap computed from a stale pointer is refused."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from cryptotracker_assets.core.config import Strategy
from cryptotracker_assets.core.ml import load
from cryptotracker_assets.core.ml.features import MODEL_FEATURES, feature_set_version
from cryptotracker_assets.services.models import ModelError, champion_of, promote, train_candidate
from cryptotracker_assets.storage.warehouse import Warehouse
from cryptotracker_tests.core.test_ml_training import make_labels

NOW = pd.Timestamp("2025-02-01 09:00:41", tz="UTC")


def labels_with_model_features(n: int, seed: int, *, signal: bool = True, base_rate: float = 0.5) -> pd.DataFrame:
    """make_labels' rows with the planted features as two real model inputs (drop, rsi_14m), the rest NaN."""
    raw = make_labels(n, seed, signal=signal, base_rate=base_rate)
    out = raw.drop(columns=["f1", "f2", "f3"])
    feats = {name: np.full(n, np.nan) for name in MODEL_FEATURES}
    feats["drop"], feats["rsi_14m"], feats["volume_ratio"] = raw["f1"], raw["f2"], raw["f3"]
    return pd.concat([out, pd.DataFrame(feats)], axis=1)


@pytest.fixture()
def wh(tmp_path) -> Warehouse:
    return Warehouse(tmp_path / "w.duckdb")


def test_a_planted_signal_is_promoted_and_noise_leaves_the_champion(wh, tmp_path, cfg):
    root = tmp_path / "models"
    wh.append_labels(labels_with_model_features(1000, 1))
    run = train_candidate(wh, cfg, Strategy.DCA, root, NOW)
    assert run.model is not None and run.passed, [(g.name, g.detail) for g in run.gates]
    assert run.model.test_metrics.auc > 0.8 and run.model.feature_set_version == feature_set_version(cfg)
    assert (root / "dca" / run.model.model_version / "manifest.json").exists()
    promote(wh, run, cfg, root, who="system:training", why="gates passed", now=NOW)
    champ = champion_of(wh, Strategy.DCA)
    assert champ.model_version == run.model.model_version == "dca_202502010900"
    parts = wh.model_metrics(run.model.model_version)
    assert {"validation", "test", "walk_forward_0"} <= set(parts["part"])

    # noise, later: the candidate is gated against the champion scored on the candidate's own test split
    wh2 = Warehouse(tmp_path / "w2.duckdb")
    for r in wh.model_swaps().to_dict("records"):  # the same pointer in a warehouse with noise labels
        from cryptotracker_assets.storage.models import Swap

        wh2.record_swap(Swap(r["strategy"], r["model_version"], r["feature_set_version"], r["content_hash"],
                             r["composite"], r["kind"], r["who"], r["why"], pd.Timestamp(r["swapped_at"])))
    wh2.append_labels(labels_with_model_features(1000, 7, signal=False, base_rate=0.35))
    later = NOW + pd.Timedelta(days=1)
    noise = train_candidate(wh2, cfg, Strategy.DCA, root, later)
    assert noise.model is not None and noise.champion_composite is not None and not noise.passed
    assert not next(g for g in noise.gates if g.name == "improvement").passed
    with pytest.raises(ModelError, match="gates failed"):
        promote(wh2, noise, cfg, root, who="system:training", why="daily", now=later)
    assert champion_of(wh2, Strategy.DCA).model_version == run.model.model_version  # untouched


def test_too_few_labels_records_why_and_a_stale_or_corrupt_pointer_is_refused(wh, tmp_path, cfg):
    root = tmp_path / "models"
    wh.append_labels(labels_with_model_features(50, 2))
    run = train_candidate(wh, cfg, Strategy.DCA, root, NOW)
    assert run.model is None and "min_samples" in run.not_trained and not run.passed
    wh.append_labels(labels_with_model_features(1000, 3).assign(label_id=lambda d: "B" + d["label_id"]))
    run = train_candidate(wh, cfg, Strategy.DCA, root, NOW)
    assert run.passed
    promote(wh, run, cfg, root, who="alice", why="first", now=NOW)
    # a promotion computed against the old pointer (another swap came first) is refused
    with pytest.raises(ModelError, match="another swap came first"):
        promote(wh, run, cfg, root, who="bob", why="late", now=NOW)
    # a corrupt champion file: never loaded, never compared (the next candidate meets the first-model bar)
    clf = root / "dca" / run.model.model_version / "classifier.json"
    data = bytearray(clf.read_bytes())
    data[len(data) // 2] ^= 0x01
    clf.write_bytes(bytes(data))
    with pytest.raises(Exception, match="classifier.json"):
        load(root, Strategy.DCA, run.model.model_version)
    nxt = train_candidate(wh, cfg, Strategy.DCA, root, NOW + pd.Timedelta(hours=1))
    assert nxt.champion_error and nxt.champion_composite is None
    assert len(wh.model_swaps()) == 1


def test_through_dagster_blocking_gates_decide_whether_the_champion_moves(tmp_env, instance, cfg):
    from cryptotracker_assets.definitions import build_definitions

    defs = build_definitions(tmp_env)
    wh = Warehouse(tmp_env["CRYPTOTRACKER_WAREHOUSE"])
    job = defs.resolve_job_def("models_training_job")
    # pure noise first: a blocking gate fails, champion_model is not materialized, no pointer
    wh.append_labels(labels_with_model_features(1000, 11, signal=False, base_rate=0.35))
    r = job.execute_in_process(partition_key="DCA", instance=instance, raise_on_error=False)
    checks = {e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.passed
              for e in r.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}
    assert set(checks) == {"samples", "test_size", "improvement", "no_leakage", "calibration"}
    assert not all(checks.values())
    mats = {m.asset_key.to_user_string() for m in r.get_asset_materialization_events()
            for m in [m.step_materialization_data.materialization]}
    assert mats == {"candidate_model"} and champion_of(wh, Strategy.DCA).model_version is None
    kinds = set(wh.read_sql("SELECT kind FROM notification_outbox")["kind"])
    assert "promotion_gates_failed" in kinds
    # a planted signal (another label set): every gate passes and the pointer swaps in the same run
    wh2_env = dict(tmp_env, CRYPTOTRACKER_WAREHOUSE=tmp_env["CRYPTOTRACKER_WAREHOUSE"] + ".2",
                   CRYPTOTRACKER_MODELS=tmp_env["CRYPTOTRACKER_MODELS"] + "2")  # (a version is its minute)
    defs2 = build_definitions(wh2_env)
    wh2 = Warehouse(wh2_env["CRYPTOTRACKER_WAREHOUSE"])
    wh2.append_labels(labels_with_model_features(1000, 12))
    r2 = defs2.resolve_job_def("models_training_job").execute_in_process(partition_key="DCA", instance=instance)
    assert r2.success
    champ = champion_of(wh2, Strategy.DCA)
    card = next(m.step_materialization_data.materialization for m in r2.get_asset_materialization_events()
                if m.step_materialization_data.materialization.asset_key.to_user_string() == "candidate_model")
    assert champ.model_version == card.metadata["model_version"].value
    text = card.metadata["model_card"].value
    assert "Calibration" in text and "█" in text and text.count("data:image/svg+xml;base64,") == 2  # two charts
    import base64
    import re
    svg = base64.b64decode(re.search(r"data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)", text).group(1)).decode()
    assert svg.startswith("<svg") and svg.endswith("</svg>") and svg.count("<rect") >= 2  # one bar per bin
    assert r.success is False  # the failed blocking gates fail the training step: visible in the run list


def test_models_cli_list_show_promote_gates_and_rollback(tmp_env, cfg, capsys, monkeypatch):
    from cryptotracker_assets.cli import main as cli

    for k, v in tmp_env.items():
        monkeypatch.setenv(k, v)
    root = Path(tmp_env["CRYPTOTRACKER_MODELS"])
    wh = Warehouse(tmp_env["CRYPTOTRACKER_WAREHOUSE"])
    wh.append_labels(labels_with_model_features(1000, 21))
    first = train_candidate(wh, cfg, Strategy.DCA, root, NOW)
    second = train_candidate(wh, cfg, Strategy.DCA, root, NOW + pd.Timedelta(minutes=1))
    assert first.passed and second.passed
    assert cli(["models", "promote", first.model.model_version, "--by", "alice", "--why", "first"]) == 0
    # the second scores the same as the first on the same split: no improvement of min_improvement → refused
    assert cli(["models", "promote", second.model.model_version, "--by", "bob", "--why", "again"]) == 2
    err = capsys.readouterr().err
    assert "improvement" in err and champion_of(wh, Strategy.DCA).model_version == first.model.model_version
    promote(wh, (Strategy.DCA, second.model.model_version), cfg, root, who="test", why="as trained",
            now=NOW + pd.Timedelta(minutes=2))
    assert cli(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert f"* {second.model.model_version}" in out and first.model.model_version in out
    assert cli(["models", "show", second.model.model_version]) == 0
    assert '"content_hash"' in capsys.readouterr().out
    assert cli(["models", "rollback", "DCA", "--by", "carol", "--why", "worse live"]) == 0
    assert champion_of(wh, Strategy.DCA).model_version == first.model.model_version
    kinds = wh.model_swaps()["kind"].tolist()
    assert kinds == ["promote", "promote", "rollback"]


def test_daily_retraining_trains_only_strategies_whose_trigger_holds(tmp_env, instance, cfg):
    from cryptotracker_assets.definitions import build_definitions
    from cryptotracker_assets.services.models import retrain_reason
    from sensors.retraining import DAILY_TAG

    wh = Warehouse(tmp_env["CRYPTOTRACKER_WAREHOUSE"])
    assert "0 new" in retrain_reason(wh, cfg, Strategy.DCA)
    wh.append_labels(labels_with_model_features(1000, 31))  # DCA labels only
    assert retrain_reason(wh, cfg, Strategy.DCA) is None and "0 new" in retrain_reason(wh, cfg, Strategy.SWING)
    defs = build_definitions(tmp_env)
    today = pd.Timestamp.now(tz="UTC").floor("1D")
    result = defs.resolve_job_def("training_labels_job").execute_in_process(
        partition_key=f"{today:%Y-%m-%d}", instance=instance, tags={DAILY_TAG: "daily-1"})
    assert result.success
    event = next(e for e in result.all_events if e.event_type_value == "PIPELINE_SUCCESS")
    sensor = next(s for s in defs.sensors if s.name == "retraining_sensor")
    with dg.build_run_status_sensor_context(sensor_name="retraining_sensor", dagster_instance=instance,
                                            dagster_run=result.dagster_run, dagster_event=event,
                                            resources=defs.resources) as ctx:
        out = sensor(ctx)
    requests = out if isinstance(out, list) else [out]
    assert [r.partition_key for r in requests] == ["DCA"]  # SWING and CHANNEL: fewer than min_new_outcomes
    # after a training, the same labels are not new any more
    run = train_candidate(wh, cfg, Strategy.DCA, Path(tmp_env["CRYPTOTRACKER_MODELS"]),
                          pd.Timestamp("2025-03-01", tz="UTC"))
    assert run.model is not None and "new real + simulated" in retrain_reason(wh, cfg, Strategy.DCA)


@pytest.mark.parametrize("mode", ["before_swap", "mid_write"])
def test_a_kill_mid_promotion_leaves_the_old_champion_whole(tmp_path, cfg, mode):
    """SIGKILL between writing the model and swapping the pointer, or in the middle of writing the model: the
    champion is the old model, whole and loadable; a half-written model is invisible and never served."""
    import multiprocessing as mp

    from cryptotracker_assets.core.ml import list_versions
    from cryptotracker_tests.model_support import train_then_die

    root = tmp_path / "models"
    wh = Warehouse(tmp_path / "w.duckdb")
    wh.append_labels(labels_with_model_features(1000, 41))
    old = train_candidate(wh, cfg, Strategy.DCA, root, NOW)
    promote(wh, old, cfg, root, who="test", why="the old champion", now=NOW)
    child = mp.get_context("spawn").Process(target=train_then_die, args=(str(wh.path), str(root), mode))
    child.start()
    child.join(300)
    assert child.exitcode == -9
    assert champion_of(wh, Strategy.DCA).model_version == old.model.model_version
    assert load(root, Strategy.DCA, old.model.model_version).content_hash == old.stored.content_hash
    versions = list_versions(root, Strategy.DCA)
    if mode == "before_swap":  # stored whole but never promoted
        assert versions == [old.model.model_version, "dca_202503011000"]
        assert load(root, Strategy.DCA, "dca_202503011000") is not None
    else:  # only a hidden temp folder: no version to load or promote
        assert versions == [old.model.model_version]
        with pytest.raises(ModelError):
            promote(wh, (Strategy.DCA, "dca_202503011000"), cfg, root, who="x", why="y", now=NOW)
