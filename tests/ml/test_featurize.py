import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from training.ml.columns import plan_features
from training.ml.featurize import FAMILIES, build_featurizer

from .conftest import mixed_frame


def _steps(featurizer):
    """Every transformer class inside a fitted ColumnTransformer, by block name."""
    out = {}
    for name, block, _ in featurizer.transformers_:
        parts = block.steps if isinstance(block, Pipeline) else [(name, block)]
        out[name] = [type(step).__name__ for _, step in parts]
    return out


@pytest.mark.parametrize("family", FAMILIES)
def test_featurizer_takes_raw_columns_with_missing_values_dates_and_text(family):
    X, y = mixed_frame(150)
    featurizer, info = build_featurizer(plan_features(X), family)
    Z = featurizer.fit_transform(X, y)
    assert Z.shape[0] == 150
    assert not np.isnan(Z).any() or family == "boosting"  # boosting models take NaN natively
    names = list(featurizer.get_feature_names_out())
    assert any("signed_up_month" in n for n in names)
    assert any(n.startswith("text_note__") for n in names)
    if family == "boosting":
        assert info["categorical_indices"] == [0, 1, 2]  # plan, city, active come first


def test_linear_family_scales_and_target_encodes_high_cardinality():
    X, y = mixed_frame(150)
    featurizer, _ = build_featurizer(plan_features(X), "linear")
    featurizer.fit(X, y)
    steps = _steps(featurizer)
    assert steps["target"] == ["CastColumns", "TargetEncoder", "StandardScaler"]
    assert steps["onehot"] == ["CastColumns", "OneHotEncoder"]
    assert "StandardScaler" in steps["numeric_median"]
    tree, _ = build_featurizer(plan_features(X), "tree")
    tree.fit(X, y)
    assert not any("StandardScaler" in v for v in _steps(tree).values())
    assert _steps(tree)["ordinal"] == ["CastColumns", "OrdinalEncoder"]


def test_missing_indicators_stay_zero_or_one_after_scaling():
    X = pd.DataFrame({"a": [1.0, np.nan, 3.0, 4.0, np.nan, 6.0] * 5, "b": np.arange(30.0)})
    featurizer, _ = build_featurizer(plan_features(X), "linear")
    Z = featurizer.fit_transform(X)
    names = list(featurizer.get_feature_names_out())
    indicator = Z[:, names.index("numeric_median__missingindicator_a")]
    assert set(np.unique(indicator)) == {0.0, 1.0}


def test_scoring_accepts_unseen_categories_mixed_types_and_unparsable_dates():
    X, y = mixed_frame(150)
    model = Pipeline(
        [
            ("featurizer", build_featurizer(plan_features(X), "linear")[0]),
            ("estimator", LogisticRegression(max_iter=500)),
        ]
    ).fit(X, y)
    request = X.head(3).astype(object)
    request.loc[0, "plan"] = "enterprise"  # never seen in training
    request.loc[1, "city"] = 7  # a number where training had strings
    request.loc[2, "signed_up"] = "not a date"
    request["visits"] = ["3", "4", "5.0"]  # numbers as strings (the scoring schema check casts the rest)
    proba = model.predict_proba(request)
    assert proba.shape == (3, 2)
    assert np.allclose(proba.sum(axis=1), 1)


def test_identifier_and_constant_columns_do_not_reach_the_model():
    X, y = mixed_frame(150)
    X["row_id"] = np.arange(150)
    X["constant"] = "same"
    featurizer, _ = build_featurizer(plan_features(X), "tree")
    featurizer.fit(X, y)
    names = " ".join(featurizer.get_feature_names_out())
    assert "row_id" not in names and "constant" not in names


def test_a_plan_without_features_is_refused():
    X = pd.DataFrame({"row_id": np.arange(100)})
    with pytest.raises(ValueError, match="no usable feature"):
        build_featurizer(plan_features(X), "linear")


def test_scaler_is_standard_for_linear_numeric_columns():
    X = pd.DataFrame({"a": np.arange(50.0), "b": np.arange(50.0) ** 2})
    featurizer, _ = build_featurizer(plan_features(X), "linear")
    Z = featurizer.fit_transform(X)
    assert np.allclose(Z.mean(axis=0), 0) and np.allclose(Z.std(axis=0), 1)
    assert isinstance(featurizer.named_transformers_["numeric_median"].steps[0][1], StandardScaler)
