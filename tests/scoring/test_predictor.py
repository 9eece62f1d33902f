"""The Predictor: ONNX when verified, skops otherwise, loaded once per process per model version."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from endpoints.scoring.predictor import (
    Predictor,
    PredictorCache,
    PredictorError,
    get_predictor,
    load_predictor,
)
from modelformat import modelio
from modelformat.modelio import ModelIntegrityError
from modelformat.signature import PayloadError
from tests.conftest import REPO

from .conftest import record


@pytest.fixture(scope="module")
def model_files(tmp_path_factory, hgb_pipeline, converted_hgb):
    folder = tmp_path_factory.mktemp("model")
    model_path = folder / "model.skops"
    model_sha = modelio.save_model(hgb_pipeline, model_path)
    onnx_bytes, report = converted_hgb
    onnx_path = folder / "model.onnx"
    onnx_path.write_bytes(onnx_bytes)
    return {
        "model_path": model_path,
        "model_sha256": model_sha,
        "onnx_path": onnx_path,
        "onnx_sha256": report["sha256"],
    }


def probabilities(result: dict, classes) -> np.ndarray:
    return np.array([[row[str(c)] for c in classes] for row in result["probabilities"]])


def test_a_verified_onnx_twin_serves_and_agrees_with_the_pipeline(model_files, signature, hgb_pipeline, table):
    predictor = load_predictor(signature=signature, **model_files)
    assert predictor.backend == "onnx"
    X_test = table[2]
    result = predictor.predict(X_test)
    expected = hgb_pipeline.predict_proba(X_test)
    assert np.abs(probabilities(result, predictor.classes) - expected).max() <= 1e-5
    assert result["predictions"] == hgb_pipeline.classes_[expected.argmax(axis=1)].tolist()


def test_without_onnx_the_skops_pipeline_serves(model_files, signature, hgb_pipeline, table):
    predictor = load_predictor(
        model_path=model_files["model_path"], model_sha256=model_files["model_sha256"], signature=signature
    )
    assert predictor.backend == "skops"
    result = predictor.predict(table[2].head(50))
    expected = hgb_pipeline.predict_proba(table[2].head(50))
    assert np.abs(probabilities(result, predictor.classes) - expected).max() <= 1e-6


def test_output_is_json_with_labels_and_probabilities_per_class(model_files, signature):
    predictor = load_predictor(signature=signature, **model_files)
    result = predictor.score([record(), record(plan="basic", age=70)])
    assert json.loads(json.dumps(result)) == result
    assert set(result) == {"predictions", "probabilities"}
    assert len(result["predictions"]) == 2 and set(result["predictions"]) <= {"churn", "stay"}
    for row, label in zip(result["probabilities"], result["predictions"], strict=True):
        assert set(row) == {"churn", "stay"}
        assert abs(sum(row.values()) - 1) < 1e-5
        assert max(row, key=row.get) == label


def test_integer_classes_stay_integers_in_predictions(table):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from modelformat.signature import build_signature

    from .conftest import featurizer

    X_train, y_train, X_test, _ = table
    y = (y_train == "churn").astype(np.int64)
    pipeline = Pipeline([("f", featurizer()), ("e", LogisticRegression(max_iter=500))]).fit(X_train, y)
    predictor = Predictor(signature=build_signature(X_train, classes=pipeline.classes_), model=pipeline)
    result = predictor.predict(X_test.head(3))
    assert all(type(p) is int for p in result["predictions"])
    assert set(result["probabilities"][0]) == {"0", "1"}


def test_score_refuses_a_bad_payload_with_the_column_and_row(model_files, signature):
    predictor = load_predictor(signature=signature, **model_files)
    with pytest.raises(PayloadError) as caught:
        predictor.score([record(), record(age="old")])
    assert (caught.value.field, caught.value.row) == ("age", 2)


def test_one_row_and_many_rows_score_alike(model_files, signature):
    predictor = load_predictor(signature=signature, **model_files)
    rows = [record(age=20 + i, plan=("basic", "pro")[i % 2]) for i in range(30)]
    together = predictor.score(rows)
    apart = [predictor.score(row) for row in rows]
    assert together["predictions"] == [r["predictions"][0] for r in apart]
    assert together["probabilities"] == [r["probabilities"][0] for r in apart]


def test_nulls_and_unknown_categories_score(model_files, signature):
    predictor = load_predictor(signature=signature, **model_files)
    result = predictor.score([{name: None for name in signature.names}, record(plan="platinum", region=None)])
    assert len(result["predictions"]) == 2


def test_an_onnx_runtime_failure_falls_back_to_the_skops_model(model_files, signature, hgb_pipeline, table):
    predictor = load_predictor(signature=signature, **model_files)

    class Broken:
        def run(self, *args, **kwargs):
            raise RuntimeError("simulated onnxruntime failure")

    predictor.session = Broken()
    result = predictor.predict(table[2].head(5))
    expected = hgb_pipeline.predict_proba(table[2].head(5))
    assert np.abs(probabilities(result, predictor.classes) - expected).max() <= 1e-6
    assert "simulated" in predictor.onnx_error


def test_model_files_are_checked_against_their_sha256(model_files, signature):
    with pytest.raises(ModelIntegrityError):
        load_predictor(model_path=model_files["model_path"], model_sha256="0" * 64, signature=signature)
    # a tampered ONNX twin is not used: the skops model serves instead
    predictor = load_predictor(signature=signature, **{**model_files, "onnx_sha256": "0" * 64})
    assert predictor.backend == "skops"


def test_a_predictor_refuses_classes_that_disagree_with_the_signature(hgb_pipeline, signature_json):
    with pytest.raises(PredictorError):
        Predictor(signature={**signature_json, "classes": ["stay", "churn"]}, model=hgb_pipeline)


# --- the cache -----------------------------------------------------------------------------------
def test_the_cache_loads_a_model_version_once(model_files, signature):
    cache = PredictorCache(maxsize=4)
    arguments = dict(signature=signature, cache=cache, **model_files)
    first = get_predictor(7, **arguments)
    second = get_predictor(7, **arguments)
    assert first is second
    assert (cache.loads, cache.hits) == (1, 1)


def test_a_new_file_hash_or_an_invalidation_reloads(model_files, signature):
    cache = PredictorCache(maxsize=4)
    calls = []

    def load():
        calls.append(1)
        return load_predictor(signature=signature, **model_files)

    first = cache.get(7, "sha-a", load)
    assert cache.get(7, "sha-b", load) is not first  # the version's file changed
    assert cache.invalidate(7) == 2 and 7 not in cache
    cache.get(7, "sha-a", load)
    assert len(calls) == 3


def test_the_cache_forgets_the_least_recently_used(model_files, signature):
    cache = PredictorCache(maxsize=2)
    load = lambda: load_predictor(signature=signature, **model_files)  # noqa: E731
    cache.get(1, "a", load)
    cache.get(2, "b", load)
    cache.get(1, "a", load)  # 1 is now the most recent
    cache.get(3, "c", load)
    assert 1 in cache and 3 in cache and 2 not in cache
    assert cache.loads == 3


def test_concurrent_first_requests_load_once(model_files, signature):
    import threading
    import time

    cache = PredictorCache()
    loads = []

    def slow_load():
        loads.append(1)
        time.sleep(0.05)
        return load_predictor(signature=signature, **model_files)

    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get(9, "s", slow_load))) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(loads) == 1 and len({id(r) for r in results}) == 1


def test_a_process_serving_an_onnx_twin_never_imports_scikit_learn(model_files, signature_json):
    """A replica's scoring imports onnxruntime, numpy and pandas; scikit-learn, skops and skl2onnx
    (~1 s and ~90 MB) only for a model without a working twin."""
    code = """
import json, sys
import django
django.setup()
import endpoints.replica
from endpoints.scoring.predictor import load_predictor
files, signature, row = json.loads(sys.stdin.read())
predictor = load_predictor(signature=signature, **files)
result = predictor.score([row])
heavy = sorted(m for m in ("sklearn", "skops", "skl2onnx", "scipy") if m in sys.modules)
print(json.dumps({"backend": predictor.backend, "labels": result["predictions"], "heavy": heavy}))
"""
    files = {k: str(v) for k, v in model_files.items()}
    env = os.environ | {"DJANGO_SETTINGS_MODULE": "studio.settings"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps([files, signature_json, record()]),
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["backend"] == "onnx" and len(answer["labels"]) == 1, answer
    assert answer["heavy"] == [], answer
