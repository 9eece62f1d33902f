"""ONNX twins of a forecasting model's boosting members: converted side by side in one file,
verified against the estimators, attached when the model is served; the engine calls them for
every step, and forecasts through them equal the estimators' within 1e-5 relative."""

import json

import numpy as np
import pandas as pd
import pytest

from endpoints.scoring.predictor import Predictor
from modelformat.modelio import load_model, save_model
from modelformat.onnx_export import TARGET_OPSET, TOLERANCE
from modelformat.onnx_members import member_regressors, members_to_onnx
from modelformat.signature import build_forecast_signature
from tests.ml.forecast_data import messy_sales
from training.ml.forecast import ForecastSettings, prepare, search

HORIZON = 7


@pytest.fixture(scope="module")
def boosted(tmp_path_factory):
    """(sales, the prepared data, the file of a forecaster of the two boosting members, its SHA-256)."""
    sales = messy_sales(periods=150, stores=("A-1", "B 2", "C 3"))
    settings = ForecastSettings.from_dict(
        {
            "time_column": "Date",
            "target_column": "Units Sold",
            "series_columns": ["Store ID"],
            "known_ahead": ["Promo?"],
            "horizon": HORIZON,
            "backtest_windows": 1,
            "algorithms": ["hgb_lags", "lightgbm_lags"],
            "timeout_s": 60,
        }
    )
    prepared = prepare(sales, settings)
    forecaster = search(prepared, settings).forecaster
    # an ensemble of both: the recursive member (one call a step) and the direct one
    assert sorted(m["algorithm"] for m in forecaster.members) == ["hgb_lags", "lightgbm_lags"]
    path = tmp_path_factory.mktemp("boosted") / "model.skops"
    sha = save_model(forecaster, path)
    return sales, prepared, path, sha


def promo_ahead(stores, after: str) -> pd.DataFrame:
    """Each store's promotions for the horizon after ``after`` (every third day)."""
    days = pd.date_range(pd.Timestamp(after), periods=HORIZON + 1, freq="D")[1:]
    return pd.DataFrame(
        [
            {"Date": d.strftime("%Y-%m-%d"), "Store ID": store, "Promo?": "yes" if i % 3 == 0 else "no"}
            for store in stores
            for i, d in enumerate(days)
        ]
    )


class Unconvertible:
    n_features_in_ = 3


def test_each_boosting_member_converts_verifies_and_is_called_on_every_step(boosted):
    sales, _, path, sha = boosted
    forecaster = load_model(path, sha)
    estimators = forecaster.boosting_estimators()
    assert estimators and {type(e).__name__ for e in estimators.values()} <= {
        "HistGradientBoostingRegressor",
        "LGBMRegressor",
    }
    onnx_bytes, refused = members_to_onnx({**estimators, 9: Unconvertible()}, TARGET_OPSET)
    assert set(refused) == {9} and refused[9]  # the reason is kept; the others convert
    regressors = member_regressors(onnx_bytes)
    assert set(regressors) == set(estimators)
    for position, regressor in regressors.items():
        assert forecaster.regressor_difference({position: regressor}) <= TOLERANCE

    history = sales[sales["Store ID"] == "B 2"].tail(60)
    unseen = history.assign(**{"Store ID": "D 4"})  # a store the model never saw: no series code
    cases = [  # (history, future known-ahead rows): the stored history, a given one, an unseen store
        (None, promo_ahead(("A-1", "B 2", "C 3"), sales["Date"].max())),
        (history, promo_ahead(("B 2",), history["Date"].max())),
        (unseen, promo_ahead(("D 4",), history["Date"].max())),
    ]
    plain = [forecaster.forecast(h, future=f)["forecast"].to_numpy() for h, f in cases]
    calls = []

    def counted(regress):
        return lambda rows: calls.append(len(rows)) or regress(rows)

    forecaster.use_regressors({p: counted(r) for p, r in regressors.items()})
    twinned = [forecaster.forecast(h, future=f)["forecast"].to_numpy() for h, f in cases]
    for mine, theirs in zip(twinned, plain, strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=TOLERANCE)
    assert len(calls) >= 3 * HORIZON  # the recursive member: a call a step for each forecast


def test_a_predictor_attaches_the_twins_and_serves_without_them_when_they_do_not_load(boosted):
    sales, prepared, path, sha = boosted
    forecaster = load_model(path, sha)
    onnx_bytes, _ = members_to_onnx(forecaster.boosting_estimators(), TARGET_OPSET)
    signature = build_forecast_signature(
        sales,
        column_types={"Date": "datetime", "Store ID": "categorical", "Units Sold": "numeric", "Promo?": "categorical"},
        forecast={
            "time_column": "Date",
            "series_columns": ["Store ID"],
            "target_column": "Units Sold",
            "known_ahead": ["Promo?"],
            "horizon": HORIZON,
            "frequency": prepared.frequency,
            "gap": 0,
            "season_length": prepared.season_length,
            "series": [dict(s) for s in prepared.series],
            "last_times": [pd.Timestamp(s.times[-1]).isoformat() for s in prepared.panel],
        },
    )
    recent = sales[sales["Store ID"] == "A-1"].dropna().drop_duplicates("Date").tail(40)
    last = pd.Timestamp(recent["Date"].iloc[-1])
    future = [
        {"Date": t.strftime("%Y-%m-%d"), "Store ID": "A-1", "Promo?": "no"}
        for t in pd.date_range(last, periods=HORIZON + 1, freq="D")[1:]
    ]
    payload = {"history": json.loads(recent.to_json(orient="records")), "future": future}
    twinned = Predictor(signature=signature, onnx_bytes=onnx_bytes, model_loader=lambda: load_model(path, sha))
    plain = Predictor(signature=signature, model=load_model(path, sha))
    broken = Predictor(signature=signature, onnx_bytes=b"not onnx", model_loader=lambda: load_model(path, sha))
    answers = {}
    for name, predictor in (("twinned", twinned), ("plain", plain), ("broken", broken)):
        answers[name] = [row["forecast"] for row in predictor.score(payload)["forecasts"]]
    assert (twinned.backend, plain.backend, broken.backend) == ("skops+onnx", "skops", "skops")
    assert twinned.member_twins_error is None and "DecodeError" in broken.member_twins_error
    np.testing.assert_allclose(answers["twinned"], answers["plain"], rtol=TOLERANCE)
    assert answers["broken"] == answers["plain"]
