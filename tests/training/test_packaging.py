"""Packaging a model: the skops file, its signature, an ONNX twin when it converts, and no
conversion attempt for a model too large to convert within a run's budget."""

import json
from types import SimpleNamespace

import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from studio.hashing import sha256_file
from training import packaging


class _Artifacts:
    """The two calls package_model makes on a job context, on a plain folder."""

    def __init__(self, folder):
        self.folder, self.lines = folder, []

    def artifact_path(self, name):
        return self.folder / name

    def artifact_saved(self, name, kind):
        path = self.folder / name
        return SimpleNamespace(pk=1, sha256=sha256_file(path), size=path.stat().st_size)

    def log(self, line):
        self.lines.append(line)


def _package(tmp_path):
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0] * 10, "b": [1.0, 0.0, 1.0, 0.5] * 10})
    y = ["no", "no", "yes", "yes"] * 10
    model = make_pipeline(SimpleImputer(), LogisticRegression()).fit(X, y)
    ctx = _Artifacts(tmp_path)
    summary = packaging.package_model(
        ctx, model, X=X, X_check=X, column_types={"a": "numeric", "b": "numeric"}, target="y", classes=["no", "yes"]
    )
    return ctx, summary


def test_a_small_model_gets_a_verified_onnx_twin(tmp_path):
    ctx, summary = _package(tmp_path)
    assert summary["onnx"] and (tmp_path / "model.onnx").exists()
    assert json.loads((tmp_path / "onnx_report.json").read_text())["converted"] is True


def test_a_model_over_the_size_limit_is_served_from_skops_without_converting(tmp_path, monkeypatch):
    monkeypatch.setattr(packaging, "ONNX_MAX_MODEL_BYTES", 100)
    ctx, summary = _package(tmp_path)
    assert not summary["onnx"] and not (tmp_path / "model.onnx").exists()
    report = json.loads((tmp_path / "onnx_report.json").read_text())
    assert report["converted"] is False and "served from skops" in report["reason"]
    assert "no ONNX twin" in ctx.lines[-1]
