import os
import pickle
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, PolynomialFeatures

from modelformat import modelio
from modelformat.modelio import ModelIntegrityError, UntrustedModelError, load_model, save_model
from training.ml.algorithms import ALGORITHMS, PORTFOLIO
from training.ml.ensemble import assemble_final_model, plan_final_model
from training.ml.search import AutoMLSearch, AutoMLSpec, automl_setup
from training.ml.trial import run_trial

from .conftest import make_trial, mixed_frame

FIRST_CONFIG = {name: next(p for a, p in PORTFOLIO if a == name) for name in ALGORITHMS}
# the same classes with fewer trees: the file holds the same types, and the test stays fast
SMALL = {
    "random_forest": {"n_estimators": 10},
    "extra_trees": {"n_estimators": 10},
    "gradient_boosting": {"n_estimators": 10},
}


@pytest.fixture(scope="module")
def trained():
    """One fitted pipeline per algorithm (binary, every column kind) plus both ensembles (3 classes)."""
    models = {}
    X, y = mixed_frame(200, seed=0)
    setup = automl_setup(AutoMLSpec(validation="holdout"), X, y)
    for name in ALGORITHMS:
        result, model, _ = run_trial(make_trial(setup, name, {**FIRST_CONFIG[name], **SMALL.get(name, {})}), X, y)
        assert result.status == "succeeded", result.error
        models[name] = (model, X)
    # kNN on a few numeric columns uses a KD-tree; HGB with a subsampling RNG
    numeric = X[["amount", "visits"]]
    setup = automl_setup(AutoMLSpec(validation="holdout"), numeric, y)
    models["knn_kd_tree"] = (run_trial(make_trial(setup, "knn", FIRST_CONFIG["knn"]), numeric, y)[1], numeric)
    hgb = {**FIRST_CONFIG["hist_gradient_boosting"], "max_features": 0.5}
    models["hgb_subsampled"] = (run_trial(make_trial(setup, "hist_gradient_boosting", hgb), numeric, y)[1], numeric)

    X3, y3 = mixed_frame(240, seed=1, classes=3)
    spec = AutoMLSpec.from_dict({"max_trials": 4, "validation": "cv", "n_folds": 3})
    search = AutoMLSearch(spec, automl_setup(spec, X3, y3))
    predictions, fitted = {}, {}
    while not search.is_done():
        for trial in search.ask(1):
            result, model, proba = run_trial(trial, X3, y3)
            search.tell(trial.trial_id, result)
            predictions[trial.trial_id], fitted[trial.trial_id] = proba, model
    for plan in plan_final_model(search, predictions, y3)["candidates"]:
        models[f"ensemble_{plan['kind']}"] = (assemble_final_model(plan, fitted, predictions, y3, X3, y3), X3)
    return models


def test_every_algorithm_and_ensemble_saves_and_loads_with_the_fixed_allow_list(trained, tmp_path):
    assert {"ensemble_voting", "ensemble_stacking"} <= set(trained)
    for name, (model, X) in trained.items():
        path = tmp_path / f"{name}.skops"
        digest = save_model(model, path)
        assert digest == modelio.sha256_file(path)
        loaded = load_model(path, digest)
        assert np.array_equal(loaded.predict_proba(X), model.predict_proba(X)), name
        assert list(loaded.predict(X)) == list(model.predict(X)), name
        # A downloaded file is a plain skops file: skops itself reads it, with the same types.
        plain = sio.load(path, trusted=sorted(modelio.TRUSTED_TYPES))
        assert np.array_equal(plain.predict_proba(X), model.predict_proba(X)), name


def _saved(tmp_path: Path, model) -> tuple[Path, str]:
    path = tmp_path / "model.skops"
    return path, save_model(model, path)


def test_a_tampered_file_is_refused(trained, tmp_path):
    path, digest = _saved(tmp_path, trained["logistic_regression"][0])
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="SHA-256"):
        load_model(path, digest)


def test_a_missing_or_wrong_checksum_is_refused(trained, tmp_path):
    path, digest = _saved(tmp_path, trained["naive_bayes"][0])
    for expected in ("", "0" * 64):
        with pytest.raises(ModelIntegrityError):
            load_model(path, expected)
    assert load_model(path, digest.upper()) is not None


def test_a_pickle_is_refused_by_content(tmp_path):
    path = tmp_path / "model.skops"
    path.write_bytes(pickle.dumps({"not": "a model"}))
    with pytest.raises(UntrustedModelError, match="pickle"):
        load_model(path, modelio.sha256_file(path))
    path.write_bytes(b"just some bytes")
    with pytest.raises(UntrustedModelError, match="not a skops"):
        load_model(path, modelio.sha256_file(path))


@pytest.mark.parametrize(
    "evil, named",
    [
        (Pipeline([("run", FunctionTransformer(os.system))]), "system"),  # a function that runs commands
        (Pipeline([("poly", PolynomialFeatures())]), "PolynomialFeatures"),  # harmless, but not reviewed
    ],
)
def test_a_skops_file_with_an_untrusted_type_is_refused(tmp_path, evil, named):
    path = tmp_path / "evil.skops"
    sio.dump(evil, path)  # written by someone else, not by save_model (never fitted: nothing runs)
    with pytest.raises(UntrustedModelError, match=named):
        load_model(path, modelio.sha256_file(path))


def test_save_model_refuses_types_outside_the_allow_list(tmp_path):
    folder = tmp_path / "models"
    with pytest.raises(UntrustedModelError):
        save_model(Pipeline([("poly", PolynomialFeatures())]), folder / "m.skops")
    assert list(folder.iterdir()) == []  # nothing half-written is left behind


def test_the_allow_list_is_a_constant_never_derived_from_the_file():
    source = Path(modelio.__file__).read_text()
    assert "get_untrusted_types" not in source.split('"""', 2)[2]
    assert isinstance(modelio.TRUSTED_TYPES, frozenset)


def test_no_pickle_or_joblib_loading_in_the_ml_engine():
    root = Path(modelio.__file__).parent
    pattern = re.compile(r"\b(pickle|joblib|cloudpickle|dill)\.(load|loads|Unpickler)\b|import (pickle|joblib|dill)")
    offenders = [p.name for p in root.glob("*.py") if pattern.search(p.read_text())]
    assert offenders == []


def test_every_forecaster_member_saves_and_loads_with_the_fixed_allow_list(tmp_path):
    """A forecaster of each algorithm (and an ensemble of them all) holds only allow-listed types and
    forecasts the same after the round trip."""
    from training.ml import forecast_models
    from training.ml.forecast import FORECAST_ALGORITHMS, Forecaster, ForecastSettings, prepare

    from .forecast_data import messy_sales

    settings = ForecastSettings.from_dict(
        {"time_column": "Date", "target_column": "Units Sold", "series_columns": ["Store ID"], "horizon": 7,
         "known_ahead": ["Promo?"], "timeout_s": 60}
    )  # fmt: skip
    prepared = prepare(messy_sales(periods=100), settings)
    context = forecast_models.Context(
        season_length=7,
        frequency="D",
        horizon=7,
        gap=0,
        seed=0,
        n_series=2,
        n_known=1,
        nonnegative=True,
        deadline=None,
        anchor_ns=prepared.anchor.value,
    )
    states = {name: forecast_models.fit(name, prepared.panel, context) for name in FORECAST_ALGORITHMS}
    future = prepared.frame.assign(Date=lambda d: d["Date"] + pd.Timedelta(days=7))  # known-ahead for the horizon
    kinds = {name: [(name, 1.0)] for name in FORECAST_ALGORITHMS}
    kinds["ensemble"] = [(name, 1 / len(FORECAST_ALGORITHMS)) for name in FORECAST_ALGORITHMS]
    for kind, members in kinds.items():
        forecaster = Forecaster(
            settings=settings.to_dict(),
            frequency=prepared.frequency,
            season_length=prepared.season_length,
            series=prepared.series,
            panel=prepared.panel,
            members=[{"algorithm": name, "weight": weight, "state": states[name]} for name, weight in members],
            interval_sigma=np.linspace(0.5, 1.0, 7),
            known_ahead_encodings=prepared.known_ahead_encodings,
            nonnegative=True,
            anchor=prepared.anchor,
        )
        path = tmp_path / f"{kind}.skops"
        digest = save_model(forecaster, path)
        loaded = load_model(path, digest)
        expected = forecaster.forecast(future=future)
        pd.testing.assert_frame_equal(loaded.forecast(future=future), expected, obj=kind)
        assert expected["forecast"].notna().all(), kind
        plain = sio.load(path, trusted=sorted(modelio.TRUSTED_TYPES))
        pd.testing.assert_frame_equal(plain.forecast(future=future), expected, obj=kind)
