"""A forecasting endpoint bounds what one request may cost (the scoring URL and the Test tab alike):
the answer's rows (series × horizon), the series a history may hold (each is refitted), the time
its refits may take; and what the engine cannot use is a 4xx naming the field, never a 500.

The model is fitted here with the engine (ETS on messy store sales, a second or two),
registered with the files a run packages, and deployed: no worker needed."""

import json

import pandas as pd
import pytest
from django.core.cache import cache
from django.test import override_settings

from endpoints import services, serving
from modelformat.drift import prediction_profile
from modelformat.modelio import save_model
from modelformat.signature import MAX_FORECAST_SERIES, build_forecast_signature
from tests.ml.forecast_data import messy_sales
from training.ml.forecast import ForecastSettings, prepare, search
from training.models import ModelVersion, RegisteredModel
from training.registry_services import model_version_dir

pytestmark = pytest.mark.django_db

HORIZON = 7
_FITTED: dict = {}


def fitted(series_column: str, numbered: bool):
    """(sales, forecaster, prepared, settings), fitted once per test session."""
    key = (series_column, numbered)
    if key not in _FITTED:
        sales = messy_sales(periods=60).rename(columns={"Store ID": series_column})
        # a steady trend, so that ETS (refitted on a given history) beats the seasonal naive baseline
        days = (pd.to_datetime(sales["Date"]) - pd.Timestamp("2024-01-01")).dt.days
        sales["Units Sold"] = sales["Units Sold"].where(sales["Units Sold"].isna(), 40.0 + 2.5 * days + days % 3)
        if numbered:
            sales[series_column] = sales[series_column].map({"A-1": 1, "B 2": 2})
        settings = ForecastSettings.from_dict(
            {
                "time_column": "Date",
                "target_column": "Units Sold",
                "series_columns": [series_column],
                "horizon": HORIZON,
                "backtest_windows": 1,
                "algorithms": ["ets"],  # a local model: refitted on a given history
                "timeout_s": 30,
            }
        )
        prepared = prepare(sales, settings)
        forecaster = search(prepared, settings).forecaster
        assert forecaster.algorithm == "ets", forecaster.members
        _FITTED[key] = (sales, forecaster, prepared, settings)
    return _FITTED[key]


def deploy(owner, workspace, inference, tmp_path, *, series_column="Store ID", numbered=False, name="sales-api"):
    sales, forecaster, prepared, settings = fitted(series_column, numbered)
    types = {"Date": "datetime", series_column: "integer" if numbered else "categorical", "Units Sold": "numeric"}
    signature = build_forecast_signature(
        sales,
        column_types=types,
        forecast={
            "time_column": "Date",
            "series_columns": [series_column],
            "target_column": "Units Sold",
            "known_ahead": [],
            "horizon": HORIZON,
            "frequency": prepared.frequency,
            "gap": 0,
            "season_length": prepared.season_length,
            "series": [{k: (v.item() if hasattr(v, "item") else v) for k, v in s.items()} for s in prepared.series],
            "last_times": [pd.Timestamp(s.times[-1]).isoformat() for s in prepared.panel],
        },
    )
    registered, _ = RegisteredModel.objects.get_or_create(workspace=workspace, name=name)
    version = ModelVersion.objects.create(
        model=registered,
        version=registered.versions.count() + 1,
        algorithm=forecaster.algorithm,
        target_column="Units Sold",
        task="forecasting",
        signature=signature,
        classes=[],
        metrics={},
        sha256="pending",
        created_by=owner,
    )
    folder = model_version_dir(version)
    folder.mkdir(parents=True, exist_ok=True)
    version.sha256 = save_model(forecaster, folder / "model.skops")
    profile = {"version": 1, "rows": len(sales), "columns": {}}
    profile["prediction"] = prediction_profile(sales["Units Sold"].dropna())
    (folder / "reference_profile.json").write_text(json.dumps(profile))
    version.save()
    created = services.endpoint_create(actor=owner, workspace=workspace, name=name)
    deployment = services.deployment_create(
        actor=owner, endpoint=created.endpoint, name="blue", model_version=version, target=inference
    )
    assert deployment.status != "failed", deployment.status_reason
    cache.clear()
    serving.configs.clear()
    return created, sales


def both_ways(client, user, created, payload) -> tuple:
    """The answer of the scoring URL and of the Test tab to one payload."""
    body = json.dumps(payload)
    route = client.post(
        f"/score/{created.endpoint.name}/",
        body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {created.primary}",
    )
    client.force_login(user)
    tab = client.post(f"/w/{created.endpoint.workspace_id}/endpoints/{created.endpoint.pk}/test/", {"payload": body})
    client.logout()
    return route, tab


def records(frame: pd.DataFrame) -> list[dict]:
    return json.loads(frame.to_json(orient="records"))


def test_an_answer_over_the_row_limit_is_a_413_on_the_series(client, reader, owner, workspace, inference, tmp_path):
    created, _ = deploy(owner, workspace, inference, tmp_path)
    with override_settings(STUDIO_SCORING_MAX_ROWS=HORIZON + 3):  # one series' horizon fits, two do not
        for answer in both_ways(client, reader, created, {}):
            assert answer.status_code == 413, answer.content
            error = answer.json()["error"]
            assert error["code"] == "too_many_series" and "series" in error["fields"], error
            assert "2 series" in error["message"] and "14 forecasts" in error["message"], error
        for answer in both_ways(client, reader, created, {"series": [{"Store ID": "B 2"}]}):
            assert answer.status_code == 200, answer.content
            assert len(answer.json()["forecasts"]) == HORIZON


def test_the_test_tab_example_of_a_model_of_several_series_fits_a_request(
    client, reader, owner, workspace, inference, tmp_path
):
    """The example (and the deploy warm-up) forecasts the first series, not every stored one: a model
    of many series would otherwise offer an example over the row limit."""
    created, _ = deploy(owner, workspace, inference, tmp_path)
    version = created.endpoint.deployments.get().model_version
    example = serving.sample_forecast_request(version.signature)
    assert example == {"series": [{"Store ID": "A-1"}]}, example
    with override_settings(STUDIO_SCORING_MAX_ROWS=HORIZON):
        for answer in both_ways(client, reader, created, example):
            assert answer.status_code == 200, answer.content
            assert {row["Store ID"] for row in answer.json()["forecasts"]} == {"A-1"}


def test_a_history_of_too_many_series_is_refused_before_any_refit(
    client, reader, owner, workspace, inference, tmp_path
):
    created, _ = deploy(owner, workspace, inference, tmp_path)
    days = pd.date_range("2024-01-01", periods=3, freq="D").strftime("%Y-%m-%d")
    history = [
        {"Date": day, "Store ID": f"shop #{n}", "Units Sold": 10.0 + n % 7}
        for n in range(MAX_FORECAST_SERIES + 1)
        for day in days
    ]
    for answer in both_ways(client, reader, created, {"history": history}):
        assert answer.status_code == 413, answer.content
        error = answer.json()["error"]
        assert "history" in error["fields"] and f"{MAX_FORECAST_SERIES + 1:,} series" in error["message"], error


def test_a_refit_past_the_request_time_is_a_503_that_says_so(client, reader, owner, workspace, inference, tmp_path):
    created, sales = deploy(owner, workspace, inference, tmp_path)
    history = records(sales[sales["Store ID"] == "B 2"].tail(40))
    with override_settings(STUDIO_FORECAST_REQUEST_SECONDS=0):  # the deadline has passed when the refit starts
        for answer in both_ways(client, reader, created, {"history": history}):
            assert answer.status_code == 503, answer.content
            error = answer.json()["error"]
            assert error["code"] == "timeout" and "did not finish" in error["message"], error
    route, tab = both_ways(client, reader, created, {"history": history})
    assert route.status_code == tab.status_code == 200, route.content


def test_a_series_id_the_engine_cannot_use_is_a_400_naming_the_history(
    client, reader, owner, workspace, inference, tmp_path
):
    created, sales = deploy(owner, workspace, inference, tmp_path)
    history = records(sales[sales["Store ID"] == "B 2"].tail(30).assign(**{"Store ID": "B\u001f2"}))
    for answer in both_ways(client, reader, created, {"history": history}):
        assert answer.status_code == 400, answer.content
        error = answer.json()["error"]
        assert error["fields"] and error["message"], error


def test_numbered_series_are_found_whether_named_1_or_1_0(client, reader, owner, workspace, inference, tmp_path):
    created, _ = deploy(owner, workspace, inference, tmp_path, series_column="Store #", numbered=True, name="numbered")
    for key in (1, 1.0, "1"):
        for answer in both_ways(client, reader, created, {"series": [{"Store #": key}]}):
            assert answer.status_code == 200, (key, answer.content)
            assert {str(row["Store #"]) for row in answer.json()["forecasts"]} == {"1"}
