import numpy as np
import pandas as pd
import pytest

from training.ml.columns import feature_columns, infer_column_types, plan_features

from .conftest import mixed_frame


def test_column_types_are_inferred_from_values():
    X, _ = mixed_frame(200)
    X["customer_id"] = np.arange(200)
    X["code"] = [f"A{i:05d}" for i in range(200)]
    X["flag01"] = np.tile([0, 1], 100)
    X["amount_text"] = X["amount"].map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
    X["when_text"] = X["signed_up"].dt.strftime("%Y-%m-%d %H:%M")
    types = infer_column_types(X)
    assert types == {
        "amount": "numeric",
        "visits": "integer",
        "plan": "categorical",
        "city": "categorical",
        "signed_up": "datetime",
        "note": "text",
        "active": "boolean",
        "customer_id": "identifier",
        "code": "identifier",
        "flag01": "boolean",
        "amount_text": "numeric",
        "when_text": "datetime",
    }


def test_plan_drops_identifiers_and_constants_and_flags_high_cardinality():
    X, _ = mixed_frame(200)
    X["row_id"] = np.arange(200)
    X["always_one"] = 1.0
    plan = plan_features(X)
    by_name = {c["name"]: c for c in plan["columns"]}
    assert by_name["row_id"]["dropped"] == "identifier"
    assert by_name["always_one"]["dropped"] == "constant"
    assert by_name["city"]["high_cardinality"] is True
    assert by_name["plan"]["high_cardinality"] is False
    assert by_name["amount"]["missing_fraction"] > 0
    assert "row_id" not in [c["name"] for c in feature_columns(plan)]


def test_overrides_change_type_imputation_and_exclusion():
    X, _ = mixed_frame(100)
    plan = plan_features(
        X,
        column_types={"visits": "categorical"},
        overrides={"amount": {"impute": "mean"}, "note": {"exclude": True}, "city": {"type": "identifier"}},
    )
    by_name = {c["name"]: c for c in plan["columns"]}
    assert by_name["visits"]["type"] == "categorical"
    assert by_name["amount"]["impute"] == "mean"
    assert by_name["note"]["dropped"] == "excluded"
    assert by_name["city"]["dropped"] == "identifier"


@pytest.mark.parametrize(
    "overrides",
    [{"nope": {"exclude": True}}, {"amount": {"impute": "magic"}}, {"amount": {"type": "float"}}, {"amount": {"x": 1}}],
)
def test_bad_overrides_are_refused(overrides):
    X, _ = mixed_frame(50)
    with pytest.raises(ValueError):
        plan_features(X, overrides=overrides)


def test_numbers_as_column_names_are_refused():
    with pytest.raises(ValueError, match="strings"):
        plan_features(pd.DataFrame({0: [1.0, 2.0]}))
