"""Packaging a model: the skops file, its signature, an ONNX twin when it converts, and no
conversion attempt for a model too large, or too slow to convert within a run's budget."""

import json
import time
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


def _package(tmp_path, *, deadline=None):
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0] * 10, "b": [1.0, 0.0, 1.0, 0.5] * 10})
    y = ["no", "no", "yes", "yes"] * 10
    model = make_pipeline(SimpleImputer(), LogisticRegression()).fit(X, y)
    ctx = _Artifacts(tmp_path)
    summary = packaging.package_model(
        ctx,
        model,
        X=X,
        X_check=X,
        column_types={"a": "numeric", "b": "numeric"},
        target="y",
        classes=["no", "yes"],
        deadline=deadline,
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


def test_a_quick_conversion_is_tried_even_when_the_budget_is_spent(tmp_path):
    """A model without its twin is served from skops for as long as it is deployed: a conversion of
    a second or two is worth a run that ends that much after its budget."""
    _, summary = _package(tmp_path, deadline=time.monotonic() - 5)
    assert summary["onnx"] and (tmp_path / "model.onnx").exists()


def test_a_long_conversion_past_the_budget_is_not_tried_and_says_why(tmp_path, monkeypatch):
    monkeypatch.setattr(packaging, "ONNX_SECONDS_PER_MB", 1e6)  # this small model would take long to convert
    _, summary = _package(tmp_path, deadline=time.monotonic() + 1)
    assert not summary["onnx"] and not (tmp_path / "model.onnx").exists()
    assert "the run's time budget had" in summary["onnx_reason"] and "served from skops" in summary["onnx_reason"]
