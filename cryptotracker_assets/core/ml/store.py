"""The model store on disk (SPEC §11.1): ``<root>/<strategy>/<model_version>/``; files only, never imports dagster.

A version folder holds ``classifier.json`` and ``regressor_<target>.json`` (XGBoost JSON), ``features.json`` (feature
list and ``feature_set_version``), ``metrics.json`` and ``manifest.json`` (SHA-256 of every other file and the
content hash over them). A save writes a hidden temporary folder and renames it into place, so a crash leaves no
partial version visible; versions are immutable. A load verifies every hash before parsing and raises
:class:`ModelStoreError` naming the file. Which version serves is the registry's champion pointer, never "the newest
folder" (:func:`list_versions` is for people and clean-up).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xgboost as xgb

from ..config import Strategy
from .training import MAX_THREADS, ModelBundle

CLASSIFIER_FILE = "classifier.json"
FEATURES_FILE = "features.json"
METRICS_FILE = "metrics.json"
MANIFEST_FILE = "manifest.json"
TEMP_PREFIX = ".tmp-"


class ModelStoreError(RuntimeError):
    """A model version is missing, corrupt or does not match its manifest; the message names the file."""


def regressor_file(target: str) -> str:
    return f"regressor_{target}.json"


def _version_pattern(strategy: Strategy) -> re.Pattern[str]:
    return re.compile(rf"^{strategy.key}_\d{{12}}$")


def content_hash(file_hashes: Mapping[str, str]) -> str:
    """SHA-256 over ``name NUL sha256 LF`` of every file, names sorted: the version's content hash."""
    return hashlib.sha256("".join(f"{n}\0{file_hashes[n]}\n" for n in sorted(file_hashes)).encode()).hexdigest()


@dataclass(frozen=True)
class StoredModel:
    """A saved version: its folder, content hash and the SHA-256 of each file."""

    path: Path
    strategy: Strategy
    model_version: str
    content_hash: str
    files: Mapping[str, str]


@dataclass(frozen=True, eq=False)  # boosters and frames: identity, not value equality
class LoadedModel(ModelBundle):
    """A verified version read back from the store (``predict_proba`` / ``predict_targets`` as trained)."""

    path: Path
    content_hash: str


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _version_dir(root: Path, strategy: Strategy | str, version: str) -> tuple[Strategy, Path]:
    strategy = Strategy.parse(strategy)
    if not _version_pattern(strategy).match(version):
        raise ModelStoreError(f"{version!r} is not a {strategy.value} model_version ({strategy.key}_yyyymmddHHMM)")
    return strategy, Path(root) / strategy.key / version


def save(model: ModelBundle, root: Path) -> StoredModel:
    """Write ``model`` to ``root/<strategy>/<model_version>/`` atomically (temporary folder, then ``os.replace``);
    an existing version raises :class:`ModelStoreError` (versions are immutable)."""
    strategy, final = _version_dir(root, model.strategy, model.model_version)
    if final.exists():
        raise ModelStoreError(f"model {model.model_version} already exists at {final}")
    files: dict[str, bytes] = {CLASSIFIER_FILE: bytes(model.classifier.save_raw(raw_format="json"))}
    for target, booster in model.regressors.items():
        files[regressor_file(target)] = bytes(booster.save_raw(raw_format="json"))
    files[FEATURES_FILE] = _json_bytes({"features": list(model.features),
                                        "feature_set_version": model.feature_set_version,
                                        "regressors": list(model.regressors)})
    files[METRICS_FILE] = _json_bytes(dict(model.metrics))
    hashes = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    digest = content_hash(hashes)
    manifest = {"strategy": strategy.value, "model_version": model.model_version,
                "feature_set_version": model.feature_set_version, "files": hashes, "content_hash": digest}
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f"{TEMP_PREFIX}{model.model_version}-{uuid.uuid4().hex}"
    try:
        tmp.mkdir()
        for name, data in files.items():
            _write_file(tmp / name, data)
        _write_file(tmp / MANIFEST_FILE, _json_bytes(manifest))  # last: a folder with a manifest is complete
        _fsync_dir(tmp)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(final.parent)
    return StoredModel(final, strategy, model.model_version, digest, hashes)


def _read_json(path: Path, data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelStoreError(f"{path.name} of {path.parent} is not valid JSON: {exc}") from None


def load(root: Path, strategy: Strategy | str, version: str, *, regressors: bool = True) -> LoadedModel:
    """Read and verify ``root/<strategy>/<version>/``: every file of the manifest present with its SHA-256, the
    content hash, the manifest's strategy and version; raises :class:`ModelStoreError` naming the file otherwise.
    ``regressors=False``: every file is still verified, only the classifier is parsed (confidence only)."""
    strategy, path = _version_dir(root, strategy, version)
    if not path.is_dir():
        raise ModelStoreError(f"no model {version} at {path}")
    try:
        manifest = _read_json(path / MANIFEST_FILE, (path / MANIFEST_FILE).read_bytes())
        hashes = dict(manifest["files"])
        expected = (manifest["strategy"], manifest["model_version"], manifest["content_hash"])
    except (OSError, KeyError, TypeError) as exc:
        raise ModelStoreError(f"{MANIFEST_FILE} of {path} is missing or incomplete: {exc!r}") from None
    if expected[:2] != (strategy.value, version):
        raise ModelStoreError(f"{MANIFEST_FILE} of {path} names {expected[0]} {expected[1]}")
    if content_hash(hashes) != expected[2]:
        raise ModelStoreError(f"{MANIFEST_FILE} of {path}: content hash does not match its file list")
    data: dict[str, bytes] = {}
    for name in (CLASSIFIER_FILE, FEATURES_FILE, METRICS_FILE):
        if name not in hashes:
            raise ModelStoreError(f"{name} of {path} is not in {MANIFEST_FILE}")
    for name, sha in sorted(hashes.items()):
        try:
            data[name] = (path / name).read_bytes()
        except OSError:
            raise ModelStoreError(f"{name} of {path} is missing") from None
        if hashlib.sha256(data[name]).hexdigest() != sha:
            raise ModelStoreError(f"{name} of {path} is corrupt (SHA-256 differs from {MANIFEST_FILE})")
    meta = _read_json(path / FEATURES_FILE, data[FEATURES_FILE])
    metrics = _read_json(path / METRICS_FILE, data[METRICS_FILE])
    if meta.get("feature_set_version") != manifest.get("feature_set_version"):
        raise ModelStoreError(f"{FEATURES_FILE} of {path}: feature_set_version differs from {MANIFEST_FILE}")

    def booster(name: str) -> xgb.Booster:
        if name not in data:
            raise ModelStoreError(f"{name} of {path} is not in {MANIFEST_FILE}")
        b = xgb.Booster()
        try:
            b.load_model(bytearray(data[name]))
        except xgb.core.XGBoostError as exc:
            raise ModelStoreError(f"{name} of {path} is not an XGBoost model: {exc}") from None
        b.set_param({"nthread": MAX_THREADS})
        return b

    boosters = {t: booster(regressor_file(t)) for t in meta["regressors"]} if regressors else {}
    return LoadedModel(strategy, version, meta["feature_set_version"], tuple(meta["features"]),
                       booster(CLASSIFIER_FILE), boosters, metrics, path, expected[2])


def list_versions(root: Path, strategy: Strategy | str) -> list[str]:
    """The complete versions stored for ``strategy`` (a folder named like a version with a manifest), oldest first;
    temporary folders of an interrupted save are not versions."""
    strategy = Strategy.parse(strategy)
    folder, pattern = Path(root) / strategy.key, _version_pattern(strategy)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir()
                  if p.is_dir() and pattern.match(p.name) and (p / MANIFEST_FILE).is_file())
