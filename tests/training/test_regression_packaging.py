"""Packaging a regressor: every regressor the engine makes gets a verified ONNX twin (predictions
within 1e-5 relative of scikit-learn's on messy rows), a regression signature (no classes, a number
out) and the training target's distribution for prediction drift; both backends answer numbers."""

import json

import numpy as np
import pytest

from endpoints.scoring.predictor import load_predictor
from modelformat.drift import count_predictions, merge_counts, prediction_drift
from modelformat.onnx_export import TOLERANCE
from tests.training import regression_models as rm
from tests.training.test_packaging import _Artifacts
from training import packaging


@pytest.fixture(scope="module")
def frame():
    return rm.messy_frame(240)


def _package(tmp_path, model, frame):
    X = rm.features(frame)
    ctx = _Artifacts(tmp_path)
    summary = packaging.package_model(
        ctx,
        model,
        X=X,
        X_check=X.tail(120),
        column_types=rm.COLUMN_TYPES,
        target=rm.TARGET,
        classes=[],
        task="regression",
        y=frame[rm.TARGET],
    )
    return ctx, summary


@pytest.mark.parametrize("kind", rm.KINDS)
def test_every_regressor_gets_a_verified_onnx_twin(tmp_path, frame, kind):
    model = rm.fitted(kind, frame)
    ctx, summary = _package(tmp_path, model, frame)
    report = json.loads((tmp_path / "onnx_report.json").read_text())
    assert summary["onnx"], report
    assert report["converted"] and report["task"] == "regression"
    assert report["max_rel_diff"] <= TOLERANCE
    assert report["rows_checked"] > 120  # the sample rows and the probes (nulls, unseen labels)
    assert "relative" in ctx.lines[-1]

    signature = json.loads((tmp_path / "signature.json").read_text())
    assert signature["task"] == "regression" and signature["classes"] == []
    assert signature["output"] == {"name": rm.TARGET, "type": "number"}

    # the two backends answer the same numbers, as JSON floats, on rows with missing values
    rows = json.loads(rm.features(frame).head(12).to_json(orient="records", date_format="iso"))
    rows[0]["floor area (m²)"], rows[1]["district/zone"], rows[2]["listed on"] = None, "never seen", None
    onnx = load_predictor(
        model_path=tmp_path / "model.skops",
        model_sha256=summary["model_sha256"],
        signature=signature,
        onnx_path=tmp_path / "model.onnx",
        onnx_sha256=report["sha256"],
    )
    skops = load_predictor(
        model_path=tmp_path / "model.skops", model_sha256=summary["model_sha256"], signature=signature
    )
    assert (onnx.backend, skops.backend) == ("onnx", "skops")
    a, b = onnx.score(rows), skops.score(rows)
    assert set(a) == set(b) == {"predictions"}
    assert all(type(v) is float for v in a["predictions"] + b["predictions"])
    np.testing.assert_allclose(a["predictions"], b["predictions"], rtol=TOLERANCE)


def test_the_prediction_profile_is_the_training_target_and_detects_a_shift(tmp_path, frame):
    _package(tmp_path, rm.fitted("ridge", frame), frame)
    profile = json.loads((tmp_path / "reference_profile.json").read_text())["prediction"]
    assert profile["kind"] == "numeric" and abs(sum(profile["expected"]) - 1) < 1e-6
    target = frame[rm.TARGET].to_numpy()
    same = prediction_drift({"prediction": profile}, count_predictions(profile, target))
    shifted = prediction_drift({"prediction": profile}, count_predictions(profile, target * 1.6))
    assert same["status"] == "Passed" and shifted["status"] == "Alerted"
    assert shifted["psi"] > same["psi"]
    # counts of several buckets (processes, minutes) add up bin by bin
    halves = [count_predictions(profile, part) for part in (target[:120], target[120:])]
    assert merge_counts(*halves)["prediction"] == count_predictions(profile, target)["prediction"]
    assert merge_counts({"rows": 0}, halves[0])["prediction"] == halves[0]["prediction"]


def test_a_classifier_package_keeps_its_classes_and_has_no_prediction_profile(tmp_path):
    from tests.training.test_packaging import _package as package_classifier

    package_classifier(tmp_path)
    signature = json.loads((tmp_path / "signature.json").read_text())
    assert signature["classes"] == ["no", "yes"] and "task" not in signature
    assert "prediction" not in json.loads((tmp_path / "reference_profile.json").read_text())
