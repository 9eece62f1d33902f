"""Saved model files name the studio's transformers by their module path, which must not change."""

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from modelformat.modelio import TRUSTED_TYPES, load_model, model_file_types, save_model
from training.ml.transformers import CastColumns, DatetimeParts


def test_a_model_file_names_the_transformers_by_the_path_older_files_use(tmp_path):
    X = pd.DataFrame(
        {
            "age": [str(20 + i) for i in range(20)],
            "joined": pd.date_range("2024-01-01", periods=20, freq="7D").astype(str),
        }
    )
    y = np.array([0, 1] * 10)
    featurizer = ColumnTransformer(
        [("age", CastColumns(to="number"), ["age"]), ("joined", DatetimeParts(), ["joined"])]
    )
    pipeline = Pipeline([("features", featurizer), ("model", LogisticRegression())]).fit(X, y)

    path = tmp_path / "model.skops"
    digest = save_model(pipeline, path)
    names = model_file_types(path.read_bytes())
    assert {"training.ml.transformers.CastColumns", "training.ml.transformers.DatetimeParts"} <= names
    assert names <= TRUSTED_TYPES
    loaded = load_model(path, digest)
    assert type(loaded.named_steps["features"].named_transformers_["joined"]) is DatetimeParts
