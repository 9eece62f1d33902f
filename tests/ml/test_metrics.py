import json

import numpy as np
import pytest
from sklearn import metrics as skm

from training.ml.metrics import (
    MAX_CURVE_POINTS,
    METRIC_DIRECTIONS,
    batch_scorer,
    classification_charts,
    classification_metrics,
    is_better,
    score,
    scorer,
)


def _predictions(n=600, k=3, seed=0):
    rng = np.random.default_rng(seed)
    classes = [f"c{i}" for i in range(k)]
    codes = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[codes]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return np.asarray(classes, dtype=object)[codes], proba, classes


@pytest.mark.parametrize("k", [2, 3])
def test_metrics_match_scikit_learn(k):
    y, proba, classes = _predictions(k=k)
    m = classification_metrics(y, proba, classes)
    pred = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
    assert set(m) == set(METRIC_DIRECTIONS)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred), abs=1e-6)
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred), abs=1e-6)
    assert m["f1_weighted"] == pytest.approx(skm.f1_score(y, pred, average="weighted"), abs=1e-6)
    assert m["f1_macro"] == pytest.approx(skm.f1_score(y, pred, average="macro"), abs=1e-6)
    assert m["matthews_correlation"] == pytest.approx(skm.matthews_corrcoef(y, pred), abs=1e-6)
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, proba, labels=classes), abs=1e-6)
    onehot = np.array([[label == c for c in classes] for label in y])
    assert m["average_precision_weighted"] == pytest.approx(
        skm.average_precision_score(onehot, proba, average="weighted"), abs=1e-6
    )
    if k == 2:
        assert m["auc_weighted"] == pytest.approx(skm.roc_auc_score(y == classes[1], proba[:, 1]), abs=1e-6)
    else:
        for avg in ("weighted", "macro"):
            expected = skm.roc_auc_score(y, proba, multi_class="ovr", average=avg, labels=classes)
            assert m[f"auc_{avg}"] == pytest.approx(expected, abs=1e-6)
        assert m["auc_micro"] == pytest.approx(skm.roc_auc_score(onehot, proba, average="micro"), abs=1e-6)


@pytest.mark.parametrize("metric", ["auc_weighted", "log_loss", "accuracy"])
def test_fast_scorers_agree_with_score(metric):
    y, proba, classes = _predictions(k=3)
    rounded = np.round(proba, 2)  # ties
    rounded /= rounded.sum(axis=1, keepdims=True)
    expected = score(metric, y, rounded, classes)
    assert scorer(metric, y, classes)(rounded) == pytest.approx(expected, abs=1e-9)
    assert batch_scorer(metric, y, classes)(np.stack([rounded, proba]))[0] == pytest.approx(expected, abs=1e-9)


def test_direction_aware_comparison():
    assert is_better("auc_weighted", 0.9, 0.8)
    assert is_better("log_loss", 0.2, 0.3)
    assert not is_better("log_loss", 0.3, 0.2)
    assert is_better("accuracy", 0.5, None) and not is_better("accuracy", None, 0.5)


@pytest.mark.parametrize("k", [2, 4])
def test_chart_data_is_plain_json_with_downsampled_curves(k):
    y, proba, classes = _predictions(n=3000, k=k)
    charts = classification_charts(y, proba, classes)
    json.dumps(charts)  # plain JSON
    cm = charts["confusion_matrix"]
    assert np.array(cm["counts"]).sum() == 3000
    assert np.allclose(np.array(cm["normalized"]).sum(axis=1), 1.0)
    curves = [charts["roc"]["micro"], charts["roc"]["macro"], charts["precision_recall"]["micro"]]
    curves += list(charts["roc"]["per_class"].values()) + list(charts["precision_recall"]["per_class"].values())
    for curve in curves:
        lengths = {len(v) for v in curve.values() if isinstance(v, list)}
        assert len(lengths) == 1 and 2 <= lengths.pop() <= MAX_CURVE_POINTS
    roc = charts["roc"]["per_class"][classes[0]]
    assert roc["fpr"][0] == 0.0 and roc["fpr"][-1] == 1.0 and roc["tpr"][-1] == 1.0
    expected_keys = [classes[1]] if k == 2 else classes
    assert sorted(charts["calibration"]) == sorted(expected_keys)
    gains = charts["gains"][expected_keys[0]]
    assert gains["cumulative_gain"][-1] == pytest.approx(1.0)
    assert gains["lift"][0] > 1.0  # the model ranks positives first
    assert sum(charts["calibration"][expected_keys[0]]["count"]) == 3000


def test_unknown_labels_are_refused():
    with pytest.raises(ValueError, match="not one of"):
        score("accuracy", ["x"], np.array([[0.5, 0.5]]), ["a", "b"])
