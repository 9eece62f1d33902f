"""Small synthetic tables and fitted pipelines for the scoring engine's tests (no database)."""

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from modelformat.signature import Signature, build_signature

NUMERIC = ["age", "income", "balance", "tenure"]
CATEGORICAL = ["plan", "region"]


def make_table(rows: int, *, seed: int = 0, shift: float = 0.0) -> tuple[pd.DataFrame, np.ndarray]:
    """A churn-like table: 4 numbers (age is whole), 2 labels, 5 % missing in income and region."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "age": rng.integers(18, 80, rows).astype(np.int64),
            "income": rng.normal(50_000 + shift * 20_000, 15_000, rows),
            "balance": rng.gamma(2.0, 1_000.0, rows),
            "tenure": rng.normal(5 + shift * 3, 2, rows),
            "plan": rng.choice(["basic", "plus", "pro"], rows, p=[0.5, 0.3, 0.2]),
            "region": rng.choice(["north", "south", "east", "west"], rows),
        }
    )
    X.loc[rng.random(rows) < 0.05, "income"] = np.nan
    X.loc[rng.random(rows) < 0.05, "region"] = np.nan
    score = (
        (X["age"] - 45) / 15
        - (X["income"].fillna(50_000) - 50_000) / 15_000
        + (X["plan"] == "basic") * 0.8
        + np.sin(X["tenure"])
        + rng.normal(0, 0.7, rows)
    )
    y = np.where(score > 0.3, "churn", "stay")
    return X, y


def featurizer() -> ColumnTransformer:
    return ColumnTransformer(
        [
            ("numeric", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), NUMERIC),
            (
                "categorical",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                    ]
                ),
                CATEGORICAL,
            ),
        ],
        sparse_threshold=0.0,
    )


@pytest.fixture(scope="session")
def table():
    X, y = make_table(2_000)
    return X.iloc[:1_500], y[:1_500], X.iloc[1_500:].reset_index(drop=True), y[1_500:]


@pytest.fixture(scope="session")
def hgb_pipeline(table):
    X_train, y_train, _, _ = table
    model = HistGradientBoostingClassifier(max_iter=40, random_state=0)
    return Pipeline([("featurizer", featurizer()), ("estimator", model)]).fit(X_train, y_train)


@pytest.fixture(scope="session")
def logistic_pipeline(table):
    X_train, y_train, _, _ = table
    model = LogisticRegression(max_iter=1_000)
    return Pipeline([("featurizer", featurizer()), ("estimator", model)]).fit(X_train, y_train)


@pytest.fixture(scope="session")
def signature_json(table, hgb_pipeline):
    X_train, _, _, _ = table
    return build_signature(X_train, target="churned", classes=hgb_pipeline.classes_)


@pytest.fixture(scope="session")
def signature(signature_json):
    return Signature(signature_json)


@pytest.fixture(scope="session")
def converted_hgb(hgb_pipeline, signature_json, table):
    from modelformat.onnx_export import try_convert

    return try_convert(hgb_pipeline, signature_json, table[2])


def record(**values) -> dict:
    """One valid scoring record, with some values replaced."""
    base = {"age": 42, "income": 61_000.5, "balance": 1_250.0, "tenure": 3.5, "plan": "pro", "region": "east"}
    base.update(values)
    return base
