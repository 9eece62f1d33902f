"""The ONNX twin: converted, then verified against scikit-learn before it may serve."""

import hashlib
import json
import time

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from modelformat.onnx_export import TOLERANCE, make_session, onnx_feed, session_io, try_convert
from modelformat.signature import Signature, build_signature
from training.ml.transformers import DatetimeParts

from .conftest import featurizer, make_table

# the requirement: probabilities within 1e-5 of scikit-learn's on held-out data
MAX_DIFF = 1e-5


def held_out_with_edge_cases(X_test: pd.DataFrame) -> pd.DataFrame:
    """Held-out rows plus rows with nulls everywhere and categories never seen in training."""
    nulls = pd.DataFrame({name: [None] * 20 for name in X_test.columns}, dtype=object)
    unseen = X_test.head(20).assign(plan="platinum", region="atlantis")
    return pd.concat([X_test.astype(object), nulls, unseen.astype(object)], ignore_index=True)


def onnx_probabilities(onnx_bytes: bytes, signature: Signature, X: pd.DataFrame) -> np.ndarray:
    session = make_session(onnx_bytes)
    inputs, output = session_io(session, signature)
    return session.run([output], onnx_feed(signature.validate_frame(X).columns, inputs))[0]


@pytest.mark.parametrize("pipeline_fixture", ["hgb_pipeline", "logistic_pipeline"])
def test_pipeline_converts_and_matches_sklearn_on_held_out_rows(request, pipeline_fixture, signature, table):
    pipeline = request.getfixturevalue(pipeline_fixture)
    X_train, _, X_test, _ = table
    onnx_bytes, report = try_convert(pipeline, signature.to_json(), X_test)
    assert report["converted"] is True, report["reason"]
    assert onnx_bytes is not None

    # checked here independently of the report, on held-out rows and edge cases
    rows = held_out_with_edge_cases(X_test)
    batch = signature.validate_frame(rows)
    expected = pipeline.predict_proba(batch.to_frame(signature))
    got = onnx_probabilities(onnx_bytes, signature, rows)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= MAX_DIFF
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()
    assert report["max_abs_diff"] <= TOLERANCE and report["label_mismatches"] == 0


def test_report_is_json_with_the_hash_of_the_bytes(converted_hgb):
    onnx_bytes, report = converted_hgb
    assert json.loads(json.dumps(report)) == report
    assert report["sha256"] == hashlib.sha256(onnx_bytes).hexdigest()
    assert report["size_bytes"] == len(onnx_bytes)
    assert report["rows_checked"] > report["probe_rows"] > 0
    assert {i["name"] for i in report["inputs"]} == {"age", "income", "balance", "tenure", "plan", "region"}
    assert report["classes"] == ["churn", "stay"]


def test_numbers_reach_the_tree_model_in_double_precision(converted_hgb):
    # float32 inputs flip splits for values within rounding of a threshold (seen on the bench model)
    _, report = converted_hgb
    assert report["numeric_inputs"] == "double"


def test_the_studio_featurizer_converts(table):
    from training.ml.columns import plan_features
    from training.ml.featurize import build_featurizer

    X_train, y_train, X_test, _ = table
    plan = plan_features(X_train)
    columns, _ = build_featurizer(plan, "linear")
    pipeline = Pipeline([("featurizer", columns), ("estimator", LogisticRegression(max_iter=1_000))])
    pipeline.fit(X_train, y_train)
    types = {c["name"]: c["type"] for c in plan["columns"]}
    sig = build_signature(X_train, column_types=types, classes=pipeline.classes_)
    onnx_bytes, report = try_convert(pipeline, sig, X_test)
    assert report["converted"] is True, report["reason"]
    assert report["max_abs_diff"] <= MAX_DIFF


# --- what does not convert falls back, with the reason -------------------------------------------
class Doubler(TransformerMixin, BaseEstimator):
    """A transformer skl2onnx knows nothing about."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.asarray(X, dtype=np.float64) * 2


def test_a_custom_transformer_without_converter_is_refused_at_once():
    X, y = make_table(300)
    columns = ColumnTransformer([("numbers", Doubler(), ["age", "tenure"])])
    pipeline = Pipeline([("featurizer", columns), ("estimator", LogisticRegression(max_iter=500))]).fit(X, y)
    started = time.monotonic()
    onnx_bytes, report = try_convert(pipeline, build_signature(X, classes=pipeline.classes_), X)
    assert onnx_bytes is None and report["converted"] is False
    assert report["reason"] == "the model contains Doubler, which has no ONNX converter"
    assert time.monotonic() - started < 10  # refused before any conversion (bench: microseconds)


def test_date_parts_convert_before_and_after_1970_with_missing_dates():
    X = pd.DataFrame(
        {"joined on": pd.date_range("1961-03-01 05:00", periods=300, freq="97h"), "spend": np.arange(300.0)}
    )
    X.loc[::7, "joined on"] = pd.NaT
    y = np.where((X["joined on"].dt.month.fillna(0) > 6) ^ (np.arange(300) % 3 == 0), "a", "b")
    dates = Pipeline([("parts", DatetimeParts()), ("impute", SimpleImputer(strategy="median", add_indicator=True))])
    columns = ColumnTransformer([("dates", dates, ["joined on"]), ("spend", "passthrough", ["spend"])])
    pipeline = Pipeline([("featurizer", columns), ("estimator", LogisticRegression(max_iter=2_000))]).fit(X, y)
    onnx_bytes, report = try_convert(pipeline, build_signature(X, classes=pipeline.classes_), X)
    assert report["converted"] is True, (report["reason"], report["detail"])
    assert report["max_abs_diff"] <= MAX_DIFF
    assert {"name": "joined on", "type": "datetime"} in report["inputs"]


class MajorityVote(ClassifierMixin, BaseEstimator):
    """An estimator skl2onnx knows nothing about."""

    def fit(self, X, y):
        self.classes_, counts = np.unique(y, return_counts=True)
        self.prior_ = counts / counts.sum()
        return self

    def predict_proba(self, X):
        return np.tile(self.prior_, (len(X), 1))


def test_an_unsupported_estimator_is_refused(table, signature):
    X_train, y_train, X_test, _ = table
    pipeline = Pipeline([("featurizer", featurizer()), ("estimator", MajorityVote())]).fit(X_train, y_train)
    onnx_bytes, report = try_convert(pipeline, signature, X_test)
    assert onnx_bytes is None
    assert report["reason"] == "the model contains MajorityVote, which has no ONNX converter"


@pytest.mark.parametrize("n_classes", [2, 3])
def test_native_categorical_splits_convert(n_classes):
    # skl2onnx writes HistGradientBoosting's category splits as thresholds (wrong by up to 0.8 in
    # probability); the studio's converter reads them as HGB's own re-encoding does
    X, y = make_table(1_500, seed=3)
    if n_classes == 3:
        y = np.where(X["tenure"] > 6, "long", y)
    columns = ColumnTransformer(
        [
            (
                "labels",
                OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-2),
                ["plan", "region"],
            ),
            ("numbers", "passthrough", ["age", "income", "balance", "tenure"]),
        ]
    )
    estimator = HistGradientBoostingClassifier(max_iter=30, categorical_features=[0, 1], random_state=0)
    pipeline = Pipeline([("featurizer", columns), ("estimator", estimator)]).fit(X, y)
    signature = build_signature(X, classes=pipeline.classes_)
    onnx_bytes, report = try_convert(pipeline, signature, X)
    assert report["converted"] is True, (report["reason"], report["detail"])
    # held-out rows with nulls and unseen labels, checked here independently of the report
    X_new, _ = make_table(300, seed=4)
    rows = held_out_with_edge_cases(X_new)
    sig = Signature(signature)
    expected = pipeline.predict_proba(sig.validate_frame(rows).to_frame(sig))
    assert np.abs(onnx_probabilities(onnx_bytes, sig, rows) - expected).max() <= MAX_DIFF


def test_a_text_column_split_on_in_many_trees_makes_a_small_graph():
    """Texas housing's city (46 values), split on with other categories in most of 300 trees:
    one lookup per text column, not one per distinct split (that made 4,266 nodes, 17 s of
    conversion and 0.85 ms a row for AutoML's model of it)."""
    import onnx
    from sklearn.ensemble import HistGradientBoostingRegressor

    rng = np.random.default_rng(0)
    cities = [f"City {i} (TX)" for i in range(46)]
    X = pd.DataFrame({"city": rng.choice(cities, 3_000), "month": rng.integers(1, 13, 3_000).astype(float)})
    X.loc[::37, "city"] = None
    effect = {c: rng.normal(0, 50_000) for c in cities}
    y = X["city"].map(effect).fillna(0).to_numpy() + 2_000 * X["month"].to_numpy() + rng.normal(0, 5_000, 3_000)
    encode = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-2)
    columns = ColumnTransformer([("labels", encode, ["city"]), ("numbers", "passthrough", ["month"])])
    estimator = HistGradientBoostingRegressor(max_iter=300, categorical_features=[0], early_stopping=False)
    pipeline = Pipeline([("featurizer", columns), ("estimator", estimator)]).fit(X, y)
    signature = build_signature(X, target="price", task="regression")
    onnx_bytes, report = try_convert(pipeline, signature, X)
    assert report["converted"] is True, (report["reason"], report["detail"])
    assert len(onnx.load_from_string(onnx_bytes).graph.node) < 30
    assert report["max_rel_diff"] <= TOLERANCE


def test_classes_that_disagree_with_the_signature_are_refused(hgb_pipeline, signature_json, table):
    wrong = {**signature_json, "classes": ["stay", "churn"]}
    onnx_bytes, report = try_convert(hgb_pipeline, wrong, table[2])
    assert onnx_bytes is None and "classes" in report["reason"]


def test_a_literal_nan_category_is_refused(table):
    X_train, y_train, X_test, _ = table
    X_train = X_train.assign(plan=X_train["plan"].replace("plus", "nan"))
    pipeline = Pipeline([("featurizer", featurizer()), ("estimator", LogisticRegression(max_iter=500))])
    pipeline.fit(X_train, y_train)
    onnx_bytes, report = try_convert(pipeline, build_signature(X_train, classes=pipeline.classes_), X_test)
    assert onnx_bytes is None and "'nan'" in report["reason"]


def _lightgbm_pipeline(table):
    from lightgbm import LGBMClassifier

    X_train, y_train, _, _ = table
    estimator = LGBMClassifier(n_estimators=30, num_leaves=15, n_jobs=1, random_state=0, deterministic=True, verbose=-1)
    return Pipeline([("featurizer", featurizer()), ("estimator", estimator)]).fit(X_train, y_train)


def test_lightgbm_converts_with_onnxmltools(table, signature):
    pytest.importorskip("onnxmltools")
    onnx_bytes, report = try_convert(_lightgbm_pipeline(table), signature, table[2])
    assert report["converted"] is True, report["reason"]
    assert report["max_abs_diff"] <= MAX_DIFF


def test_lightgbm_is_refused_without_onnxmltools(table, signature):
    try:
        import onnxmltools  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("onnxmltools is installed: LightGBM converts")
    onnx_bytes, report = try_convert(_lightgbm_pipeline(table), signature, table[2])
    assert onnx_bytes is None and "onnxmltools" in report["reason"]


def _studio_pipeline(X, y, types, algorithm="logistic_regression"):
    from training.ml.algorithms import ALGORITHMS
    from training.ml.columns import plan_features
    from training.ml.trial import TrialSpec, fit_pipeline

    plan = plan_features(X, types)
    spec = TrialSpec(
        trial_id=0,
        algorithm=algorithm,
        params=ALGORITHMS[algorithm].defaults(),
        origin="manual",
        plan=plan,
        validation={"method": "holdout"},
        primary_metric="accuracy",
        classes=sorted(set(y)),
    )
    model, _ = fit_pipeline(spec, X, y)
    types = {c["name"]: c["type"] for c in plan["columns"]}
    return model, build_signature(X, column_types=types, classes=model.classes_)


def test_zone_aware_dates_and_numbers_read_as_labels_convert_and_score_one_row():
    X, y = make_table(400, seed=5)
    X["opened at"] = pd.date_range("2020-03-28 22:00", periods=400, freq="7h", tz="Europe/Paris")
    X["tier"] = np.where(np.arange(400) % 3 == 0, 1.0, np.where(np.arange(400) % 3 == 1, 2.0, 10.0))
    X.loc[::23, "tier"] = np.nan
    model, signature = _studio_pipeline(X, y, {"tier": "categorical"})
    onnx_bytes, report = try_convert(model, signature, X)
    assert report["converted"] is True, (report["reason"], report["detail"])
    kinds = {item["name"]: item["type"] for item in report["inputs"]}
    assert kinds["opened at"] == "datetime" and kinds["tier"] == "number_label"
    one = X.head(1)  # the serving path: one row
    got = onnx_probabilities(onnx_bytes, Signature(signature), one)
    assert np.abs(got - model.predict_proba(one)).max() <= MAX_DIFF


def test_technical_failures_keep_the_reason_readable_and_the_detail_apart(table, signature, monkeypatch):
    from modelformat import onnx_export

    def broken(*args, **kwargs):
        raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : Type Error: tensor(float) vs tensor(double)")

    monkeypatch.setattr(onnx_export, "_attempt", broken)
    X_train, y_train, X_test, _ = table
    pipeline = Pipeline([("featurizer", featurizer()), ("estimator", LogisticRegression(max_iter=500))])
    onnx_bytes, report = try_convert(pipeline.fit(X_train, y_train), signature, X_test)
    assert onnx_bytes is None
    assert report["reason"] == "the ONNX converter could not translate this model"
    assert "ONNXRuntimeError" in report["detail"] and "64-bit" in report["detail"]


def test_input_names_are_the_column_names_as_written():
    # names skl2onnx would rewrite ("a b" -> "a_b", which would then clash with the real "a_b")
    X, y = make_table(400, seed=6)
    X = X.rename(columns={"age": "Age", "income": "a b", "balance": "a_b", "tenure": "1st [year]"})
    X["age"] = X["Age"] * 0.5 + 1  # differs from "Age" only in case
    model, signature = _studio_pipeline(X, y, None)
    onnx_bytes, report = try_convert(model, signature, X)
    assert report["converted"] is True, (report["reason"], report["detail"])
    session = make_session(onnx_bytes)
    assert {"Age", "age", "a b", "a_b", "1st [year]"} <= {item.name for item in session.get_inputs()}


def test_distance_weighted_neighbours_verify_on_the_rows_they_were_trained_on():
    # a training row is its own neighbour at distance 0: scikit-learn gives it the whole vote
    X, y = make_table(400, seed=7)
    model, signature = _studio_pipeline(X, y, None, algorithm="knn")
    assert model.steps[-1][1].weights == "distance"
    onnx_bytes, report = try_convert(model, signature, X)
    assert report["converted"] is True, (report["reason"], report["detail"])
    assert report["max_abs_diff"] <= MAX_DIFF


def _op_types(onnx_bytes: bytes) -> set[str]:
    import onnx

    model = onnx.ModelProto.FromString(onnx_bytes)
    return {node.op_type for node in model.graph.node}


def test_neighbour_distances_are_one_cdist_node_where_the_metric_allows():
    # skl2onnx's default is a Scan over the training rows: ~1.5 ms of a 1-row request
    X, y = make_table(400, seed=8)
    X["opened at"] = pd.date_range("2021-01-01", periods=400, freq="D")
    model, signature = _studio_pipeline(X, y, None, algorithm="knn")
    assert model.steps[-1][1].effective_metric_ == "euclidean"
    onnx_bytes, report = try_convert(model, signature, X)
    assert report["converted"] is True, (report["reason"], report["detail"])
    assert report["max_abs_diff"] <= MAX_DIFF and report["label_mismatches"] == 0
    assert "CDist" in _op_types(onnx_bytes) and "Scan" not in _op_types(onnx_bytes)

    # onnxruntime's kernel computes no other distance: a Manhattan k-NN keeps the Scan, and verifies
    model.steps[-1][1].set_params(p=1)
    model.steps[-1][1].fit(model[:-1].transform(X), y)
    assert model.steps[-1][1].effective_metric_ == "manhattan"
    onnx_bytes, report = try_convert(model, signature, X)
    assert report["converted"] is True, (report["reason"], report["detail"])
    assert report["max_abs_diff"] <= MAX_DIFF
    assert "Scan" in _op_types(onnx_bytes) and "CDist" not in _op_types(onnx_bytes)
