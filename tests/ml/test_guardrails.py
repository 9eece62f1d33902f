import numpy as np
import pandas as pd

from training.ml.validation import choose_validation

from .conftest import mixed_frame, setup_for


def _guardrail(setup: dict, name: str) -> dict:
    found = [g for g in setup["guardrails"] if g["name"] == name]
    assert len(found) == 1, name
    return found[0]


def _column(setup: dict, name: str) -> dict:
    return next(c for c in setup["plan"]["columns"] if c["name"] == name)


def test_guardrails_are_plain_dicts_with_a_known_status():
    X, y = mixed_frame(200)
    setup = setup_for(X, y)
    for g in setup["guardrails"]:
        assert set(g) == {"name", "status", "message", "details"}
        assert g["status"] in ("passed", "done", "alerted")
    names = {g["name"] for g in setup["guardrails"]}
    assert names == {
        "class_balancing",
        "rows_per_class",
        "missing_values_imputation",
        "high_cardinality_features",
        "identifier_columns",
        "target_leakage",
        "constant_columns",
        "validation",
    }


def test_class_imbalance_is_alerted_and_balanced_accuracy_gets_class_weights():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x": rng.normal(size=300)})
    y = pd.Series(np.where(np.arange(300) < 20, "rare", "common"))
    setup = setup_for(X, y, primary_metric="balanced_accuracy")
    g = _guardrail(setup, "class_balancing")
    assert g["status"] == "alerted"
    assert g["details"]["class_counts"] == {"common": 280, "rare": 20}
    assert g["details"]["class_weight"] == "balanced" == setup["class_weight"]
    assert setup_for(X, y, primary_metric="auc_weighted")["class_weight"] is None
    assert _guardrail(setup_for(*mixed_frame(200)), "class_balancing")["status"] == "passed"


def test_missing_values_are_imputed_and_reported_per_column():
    X, y = mixed_frame(200)
    g = _guardrail(setup_for(X, y), "missing_values_imputation")
    assert g["status"] == "done"
    assert set(g["details"]["columns"]) == {"amount", "plan"}
    assert g["details"]["columns"]["amount"]["strategy"].startswith("median")
    assert (
        _guardrail(setup_for(X.fillna({"amount": 0.0}).drop(columns="plan"), y), "missing_values_imputation")["status"]
        == "passed"
    )


def test_high_cardinality_columns_report_their_encoding():
    X, y = mixed_frame(200)
    g = _guardrail(setup_for(X, y), "high_cardinality_features")
    assert g["status"] == "done"
    assert g["details"]["columns"]["city"]["cardinality"] == 30
    assert "target encoding" in g["details"]["columns"]["city"]["encoding"]


def test_identifier_columns_are_alerted_and_dropped():
    X, y = mixed_frame(200)
    X["customer_id"] = np.arange(1000, 1200)
    X["email"] = [f"user{i}@example.com" for i in range(200)]
    setup = setup_for(X, y)
    g = _guardrail(setup, "identifier_columns")
    assert g["status"] == "alerted"
    assert g["details"]["columns"] == ["customer_id", "email"]
    assert _column(setup, "customer_id")["dropped"] == "identifier"


def test_a_leaking_column_is_alerted_and_dropped_unless_the_user_keeps_it():
    X, y = mixed_frame(300)
    X["refund_issued"] = np.where(y == "yes", 100.0, 0.0) + np.random.default_rng(1).normal(0, 1, 300)
    X["outcome_code"] = np.where(y == "yes", "Y", "N")
    setup = setup_for(X, y)
    g = _guardrail(setup, "target_leakage")
    assert g["status"] == "alerted"
    assert set(g["details"]["columns"]) == {"refund_issued", "outcome_code"}
    assert all(auc >= 0.99 for auc in g["details"]["columns"].values())
    assert _column(setup, "refund_issued")["dropped"] == "leak"
    kept = setup_for(X, y, column_overrides={"refund_issued": {"exclude": False}})
    assert set(_guardrail(kept, "target_leakage")["details"]["columns"]) == {"outcome_code"}
    assert _column(kept, "refund_issued")["dropped"] is None


def test_ordinary_strong_features_are_not_leaks():
    X, y = mixed_frame(300)
    assert _guardrail(setup_for(X, y), "target_leakage")["status"] == "passed"


def test_too_few_rows_per_class_is_alerted_and_folds_shrink():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x": rng.normal(size=60)})
    y = pd.Series(["a"] * 30 + ["b"] * 26 + ["c"] * 4)
    setup = setup_for(X, y)
    g = _guardrail(setup, "rows_per_class")
    assert g["status"] == "alerted"
    assert g["details"]["classes"] == {"c": 4}
    assert setup["validation"]["n_folds"] == 4
    assert "reduced" in _guardrail(setup, "validation")["message"]


def test_constant_columns_are_dropped_and_reported():
    X, y = mixed_frame(200)
    X["country"] = "NL"
    g = _guardrail(setup_for(X, y), "constant_columns")
    assert g["status"] == "done" and g["details"]["columns"] == ["country"]


def test_the_validation_choice_is_reported():
    X, y = mixed_frame(200)
    g = _guardrail(setup_for(X, y), "validation")
    assert g["status"] == "done"
    assert g["details"] == {"method": "cv", "n_folds": 10, "seed": 0}
    assert "200 training rows" in g["message"]
    large = choose_validation(25_000, 5_000)
    assert large["method"] == "holdout" and "25,000" in large["reason"]
