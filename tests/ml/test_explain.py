import json

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline

from training.ml.columns import plan_features
from training.ml.explain import permutation_feature_importance
from training.ml.featurize import build_featurizer


def test_permutation_importance_is_reported_on_raw_columns():
    rng = np.random.default_rng(0)
    n = 400
    X = pd.DataFrame(
        {
            "signal": rng.normal(size=n),
            "noise": rng.normal(size=n),
            "colour": pd.Categorical(rng.choice(["red", "blue"], n)),
        }
    )
    y = np.where(X["signal"] + 0.8 * (X["colour"] == "red") > 0.4, "yes", "no")
    featurizer, _ = build_featurizer(plan_features(X), "tree")
    model = Pipeline([("featurizer", featurizer), ("estimator", RandomForestClassifier(50, random_state=0))])
    model.fit(X, y)
    for metric in ("auc_weighted", "log_loss"):
        rows = permutation_feature_importance(model, X, y, ["no", "yes"], metric=metric, n_repeats=3)
        json.dumps(rows)
        assert [r["feature"] for r in rows] == ["signal", "colour", "noise"]  # raw names, not one-hot columns
        assert rows[0]["importance"] > 0.1 and abs(rows[-1]["importance"]) < 0.05
