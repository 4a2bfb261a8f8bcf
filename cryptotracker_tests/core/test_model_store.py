"""The model store on disk (SPEC §11.1): atomic versions with a content hash, verified loads, round trips.

Hashes are recomputed here with hashlib over the files on disk; every test writes under pytest's tmp_path.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest

from cryptotracker_assets.core.ml import ModelStoreError, list_versions, load, save, train

from .test_ml_training import FEATURES, STARTED, make_labels


@pytest.fixture(scope="module")
def labels():
    return make_labels(300, 5)


@pytest.fixture(scope="module")
def model(labels, cfg):
    return train(labels, FEATURES, "DCA", cfg, started_at=STARTED, feature_set_version="fsv-a")


def test_save_load_round_trip_predicts_identically(model, labels, tmp_path):
    stored = save(model, tmp_path)
    assert stored.path == tmp_path / "dca" / "dca_202502010900"
    assert sorted(p.name for p in stored.path.iterdir()) == sorted([
        "classifier.json", "regressor_tp_target.json", "regressor_sl_target.json", "regressor_hold_target_h.json",
        "regressor_size_mult_target.json", "features.json", "metrics.json", "manifest.json"])
    loaded = load(tmp_path, "DCA", model.model_version)
    assert np.array_equal(loaded.predict_proba(labels), model.predict_proba(labels))
    with_gaps = labels.assign(f2=np.where(np.arange(len(labels)) % 3 == 0, np.nan, labels["f2"]))
    assert np.array_equal(loaded.predict_proba(with_gaps), model.predict_proba(with_gaps))
    pd.testing.assert_frame_equal(loaded.predict_targets(labels), model.predict_targets(labels))
    assert loaded.features == tuple(FEATURES) and loaded.feature_set_version == "fsv-a"
    assert loaded.metrics["test"]["composite"] == model.test_metrics.composite
    assert list_versions(tmp_path, "DCA") == [model.model_version]
    assert list_versions(tmp_path, "SWING") == []


def test_manifest_hashes_every_file(model, tmp_path):
    stored = save(model, tmp_path)
    manifest = json.loads((stored.path / "manifest.json").read_text())
    on_disk = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in stored.path.iterdir()
               if p.name != "manifest.json"}
    assert manifest["files"] == on_disk
    lines = "".join(f"{name}\0{on_disk[name]}\n" for name in sorted(on_disk))
    assert manifest["content_hash"] == hashlib.sha256(lines.encode()).hexdigest() == stored.content_hash
    assert json.loads((stored.path / "features.json").read_text())["features"] == FEATURES


@pytest.mark.parametrize("name", ["classifier.json", "regressor_sl_target.json", "metrics.json"])
def test_a_flipped_byte_raises_naming_the_file(model, tmp_path, name):
    stored = save(model, tmp_path)
    path = stored.path / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ModelStoreError, match=name):
        load(tmp_path, "DCA", model.model_version)
    with pytest.raises(ModelStoreError, match=name):  # the classifier-only load (inference) verifies every file
        load(tmp_path, "DCA", model.model_version, regressors=False)


def test_the_classifier_only_load_predicts_the_same(model, labels, tmp_path):
    save(model, tmp_path)
    light = load(tmp_path, "DCA", model.model_version, regressors=False)
    assert np.array_equal(light.predict_proba(labels), model.predict_proba(labels)) and dict(light.regressors) == {}


def test_missing_or_tampered_files_raise_naming_them(model, tmp_path):
    stored = save(model, tmp_path)
    (stored.path / "features.json").unlink()
    with pytest.raises(ModelStoreError, match="features.json"):
        load(tmp_path, "DCA", model.model_version)
    manifest = stored.path / "manifest.json"
    m = json.loads(manifest.read_text())
    m["files"]["features.json"] = "0" * 64
    manifest.write_text(json.dumps(m))
    with pytest.raises(ModelStoreError, match="manifest.json"):  # the content hash no longer matches the list
        load(tmp_path, "DCA", model.model_version)
    manifest.write_text("{not json")
    with pytest.raises(ModelStoreError, match="manifest.json"):
        load(tmp_path, "DCA", model.model_version)
    with pytest.raises(ModelStoreError, match="no model"):
        load(tmp_path, "DCA", "dca_202001010000")
    with pytest.raises(ModelStoreError, match="model_version"):
        load(tmp_path, "DCA", "../dca_202502010900")


def test_versions_are_immutable(model, tmp_path):
    save(model, tmp_path)
    with pytest.raises(ModelStoreError, match="already exists"):
        save(model, tmp_path)


def _fail_on_third_fsync(monkeypatch):
    real, calls = os.fsync, []

    def fsync(fd):
        calls.append(fd)
        if len(calls) == 3:  # two files are written, the third fails
            raise OSError("disk full")
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def test_an_interrupted_write_leaves_nothing_visible(model, tmp_path, monkeypatch):
    _fail_on_third_fsync(monkeypatch)
    with pytest.raises(OSError, match="disk full"):
        save(model, tmp_path)
    assert list((tmp_path / "dca").iterdir()) == []  # the temporary folder is removed
    assert list_versions(tmp_path, "DCA") == []
    with pytest.raises(ModelStoreError, match="no model"):
        load(tmp_path, "DCA", model.model_version)


def test_a_crash_mid_write_leaves_only_a_hidden_temporary_folder(model, labels, tmp_path, monkeypatch):
    with monkeypatch.context() as mp:
        _fail_on_third_fsync(mp)
        mp.setattr(shutil, "rmtree", lambda *a, **k: None)  # a killed process never cleans up
        with pytest.raises(OSError):
            save(model, tmp_path)
    left = list((tmp_path / "dca").iterdir())
    assert len(left) == 1 and left[0].name.startswith(".tmp-") and not (left[0] / "manifest.json").exists()
    assert list_versions(tmp_path, "DCA") == []
    with pytest.raises(ModelStoreError, match="no model"):
        load(tmp_path, "DCA", model.model_version)
    save(model, tmp_path)  # a later save of the same version succeeds
    assert np.array_equal(load(tmp_path, "DCA", model.model_version).predict_proba(labels),
                          model.predict_proba(labels))


def test_predicting_without_a_feature_column_names_it(model, labels, tmp_path):
    save(model, tmp_path)
    loaded = load(tmp_path, "DCA", model.model_version)
    with pytest.raises(ValueError, match=r"\['f2'\]"):
        loaded.predict_proba(labels.drop(columns=["f2"]))
    with pytest.raises(ValueError, match=r"\['f1', 'f3'\]"):
        loaded.predict_targets(labels.drop(columns=["f1", "f3"]))
