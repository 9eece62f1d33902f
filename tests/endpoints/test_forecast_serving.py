"""Forecasting end to end on real workers: upload messy store sales, start a forecasting Automated
ML run through the API, get it registered, deploy it, forecast with a history (and known-ahead
values), from an origin and from the stored history, see 400s naming the field, and monitoring
count the forecasts as predictions with their drift."""

import json

import numpy as np
import pandas as pd
import pytest
from django.core.cache import cache
from django.urls import reverse

from compute.jobs.models import Job, JobStatus
from compute.models import TargetKind
from compute.services import target_create
from data.services import data_version_from_file
from endpoints import services as endpoint_services
from endpoints import serving
from modelformat.modelio import load_model
from tests.conftest import wait_for
from tests.ml.forecast_data import messy_sales
from training.automl_services import automl_submit
from training.models import ModelVersion
from training.registry_services import model_version_dir

HORIZON = 7
STORES = ("A-1", "B 2")


def post(client, name, payload, key):
    return client.post(
        f"/score/{name}/", json.dumps(payload), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}"
    )


def records(frame: pd.DataFrame) -> list[dict]:
    return json.loads(frame.to_json(orient="records"))


def future_rows(store: str, after: str, *, promo="no") -> list[dict]:
    times = pd.date_range(pd.Timestamp(after), periods=HORIZON + 1, freq="D")[1:]
    return [{"Date": t.strftime("%Y-%m-%d"), "Store ID": store, "Promo?": promo} for t in times]


@pytest.mark.worker
@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
def test_upload_forecast_register_deploy_score_and_monitor(
    api, client, owner, workspace, inference, agent, broker, reconciler, tmp_path
):
    sales = messy_sales(periods=120, stores=STORES)
    source = tmp_path / "store sales.csv"
    sales.to_csv(source, index=False)
    data = data_version_from_file(actor=owner, workspace=workspace, path=source, name="store sales")
    cluster = target_create(
        actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu", min_nodes=1, max_nodes=1
    ).target
    response = api(owner).post(
        f"/api/v1/workspaces/{workspace.pk}/automl/",
        {
            "task": "forecasting",
            "data_version": data.pk,
            "target_column": "Units Sold",
            "target": cluster.pk,
            "register_as": "store-sales",
            "settings": {
                "time_column": "Date",
                "series_columns": ["Store ID"],
                "known_ahead": ["Promo?"],
                "horizon": HORIZON,
                "timeout_s": 30,
                "backtest_windows": 2,
                "algorithms": ["seasonal_naive", "ets"],
            },
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    run = wait_for(
        lambda: Job.objects.filter(pk=response.json()["id"], status__in=JobStatus.finished()).first(),
        timeout=120,
        message="the forecasting run",
    )
    assert run.status == JobStatus.COMPLETED, (run.error, run.status_reason)
    assert run.children.count() == 0  # one job: no trials, no final job
    result = run.result
    assert result["task"] == "forecasting" and result["registered"] == "store-sales:1"
    assert result["frequency"] == "D" and result["frequency_inferred"] and result["season_length"] == 7
    assert result["series_count"] == 2 and result["horizon"] == HORIZON
    guardrails = {g["name"]: g["status"] for g in result["guardrails"]}
    assert guardrails["missing_timestamps"] == "fixed" and guardrails["duplicate_timestamps"] == "fixed"
    assert result["leaderboard"][0]["status"] == "succeeded"
    assert set(result["metrics"]) >= {"mase", "smape", "rmse", "mae", "normalized_rmse"}
    assert result["backtest"]["windows"] and result["stop_reason"]
    assert result["elapsed_seconds"] <= 30  # within the budget

    detail = api(owner).get(f"/api/v1/workspaces/{workspace.pk}/automl/{run.pk}/")
    assert detail.status_code == 200, detail.content
    body = detail.json()
    assert body["task"] == "forecasting" and body["registered"] == "store-sales:1"
    assert body["frequency"] == "D" and body["leaderboard"] and body["validation_score"] is not None

    version = ModelVersion.objects.get(model__name="store-sales", version=1)
    assert version.task == "forecasting" and version.job_id == run.pk and version.scoring_latency_ms > 0
    assert version.signature["forecast"]["series"] == [{"Store ID": s} for s in STORES]
    created = endpoint_services.endpoint_create(actor=owner, workspace=workspace, name="sales-api")
    endpoint_services.deployment_create(
        actor=owner, endpoint=created.endpoint, name="blue", model_version=version, target=inference
    )
    cache.clear()
    serving.configs.clear()
    key = created.primary

    stored = post(client, "sales-api", {}, key)
    assert stored.status_code == 200, stored.content
    answer = stored.json()
    assert answer["horizon"] == HORIZON and answer["frequency"] == "D" and answer["level"] == 0.9
    assert len(answer["forecasts"]) == HORIZON * 2
    first = answer["forecasts"][0]
    assert set(first) == {"Store ID", "Date", "forecast", "lower", "upper"}
    assert first["lower"] <= first["forecast"] <= first["upper"]
    assert first["Date"] == "2024-04-30T00:00:00"  # the day after the history's last

    recent = sales[sales["Store ID"] == "B 2"].tail(40)
    given = post(
        client,
        "sales-api",
        {"history": records(recent), "future": future_rows("B 2", recent["Date"].iloc[-1]), "level": 0.8},
        key,
    )
    assert given.status_code == 200, given.content
    assert {row["Store ID"] for row in given.json()["forecasts"]} == {"B 2"} and given.json()["level"] == 0.8

    origin = post(client, "sales-api", {"origin": "2024-03-01", "series": [{"Store ID": "A-1"}]}, key)
    assert origin.status_code == 200, origin.content
    assert [row["Date"][:10] for row in origin.json()["forecasts"]][:2] == ["2024-03-02", "2024-03-03"]

    bad_time = post(client, "sales-api", {"history": [{**records(recent)[0], "Date": "31/02/2024 noon"}]}, key)
    assert bad_time.status_code == 400 and "Date" in bad_time.json()["error"]["fields"]
    unknown_origin = post(client, "sales-api", {"origin": "1999-01-01"}, key)
    assert unknown_origin.status_code == 400 and "origin" in unknown_origin.json()["error"]["fields"]
    too_short = post(client, "sales-api", {"history": records(recent.tail(2))}, key)
    assert too_short.status_code == 400 and too_short.json()["error"]["fields"], too_short.content
    bad_level = post(client, "sales-api", {"level": 5}, key)
    assert bad_level.status_code == 400 and "level" in bad_level.json()["error"]["fields"]

    document = api(owner).get(f"/api/v1/workspaces/{workspace.pk}/endpoints/{created.endpoint.pk}/openapi/").json()
    operation = document["paths"]["/score/sales-api/"]["post"]
    body_schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert {"history", "future", "origin", "series", "level"} <= set(body_schema["properties"])
    answer_schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert "forecasts" in answer_schema["properties"] and "predictions" not in answer_schema["properties"]

    serving.monitor.flush()
    url = f"/api/v1/workspaces/{workspace.pk}/endpoints/{created.endpoint.pk}/monitoring/"
    stats = api(owner).get(url).json()["deployments"]["blue"]
    assert stats["requests"] == 7 and stats["errors_4xx"] == 4, stats
    drift = stats["prediction_drift"]
    assert drift["rows"] == HORIZON * 2 + HORIZON + HORIZON, drift  # each forecast value is a prediction
    assert stats["predicted"] == {}
    assert set(stats["drift"]["columns"]) == {"Promo?"}, stats["drift"]  # input drift: the known-ahead column
    assert stats["drift"]["rows"] == HORIZON  # the one request that sent future values


@pytest.mark.worker
@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
def test_a_model_using_known_ahead_values_deploys_and_asks_for_them(
    client, owner, workspace, inference, agent, broker, reconciler, tmp_path
):
    """Lag features with the promotions known ahead, stores numbered 1 and 2: the deploy warm-up
    sends next week's values; a request without them is a 400 naming what is missing."""
    sales = messy_sales(periods=90, stores=STORES).rename(columns={"Store ID": "Store #"})
    sales["Store #"] = sales["Store #"].map({"A-1": 1, "B 2": 2})
    source = tmp_path / "numbered stores.csv"
    sales.to_csv(source, index=False)
    data = data_version_from_file(actor=owner, workspace=workspace, path=source, name="numbered stores")
    cluster = target_create(
        actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu", min_nodes=1, max_nodes=1
    ).target
    run = automl_submit(
        actor=owner,
        workspace=workspace,
        target=cluster,
        data_version=data,
        target_column="Units Sold",
        task="forecasting",
        settings={
            "time_column": "Date",
            "series_columns": ["Store #"],
            "known_ahead": ["Promo?"],
            "horizon": HORIZON,
            "timeout_s": 30,
            "algorithms": ["lightgbm_lags"],
        },
        register_as="numbered-sales",
    )
    run = wait_for(
        lambda: Job.objects.filter(pk=run.pk, status__in=JobStatus.finished()).first(), timeout=120, message="the run"
    )
    assert run.status == JobStatus.COMPLETED, (run.error, run.status_reason)
    version = ModelVersion.objects.get(model__name="numbered-sales")
    # the boosting member's ONNX twin was verified and registered with the model
    assert run.result["onnx"] is True and version.onnx_sha256, run.result.get("onnx_reason")
    created = endpoint_services.endpoint_create(actor=owner, workspace=workspace, name="numbered-api")
    deployment = endpoint_services.deployment_create(
        actor=owner, endpoint=created.endpoint, name="blue", model_version=version, target=inference
    )
    assert deployment.status != "failed", deployment.status_reason
    assert deployment.backend == "skops+onnx"
    client.force_login(owner)
    page = client.get(reverse("model-version", args=[workspace.pk, version.model_id, version.version]))
    assert "for its boosting member: forecasts within" in page.content.decode()
    client.logout()
    cache.clear()
    serving.configs.clear()

    missing = post(client, "numbered-api", {}, created.primary)
    assert missing.status_code == 400 and missing.json()["error"]["fields"], missing.content
    assert "Promo?" in missing.json()["error"]["message"]
    recent = sales[sales["Store #"] == 2].tail(30)
    future = [{**row, "Store #": 2.0} for row in future_rows("B 2", recent["Date"].iloc[-1], promo="yes")]
    given = post(client, "numbered-api", {"history": records(recent), "future": future}, created.primary)
    assert given.status_code == 200, given.content
    forecasts = given.json()["forecasts"]
    assert len(forecasts) == HORIZON and {row["Store #"] for row in forecasts} == {"2"}
    # what the member's own estimator forecasts from the same request (the model file alone)
    folder = model_version_dir(version)
    plain = load_model(folder / "model.skops", version.sha256)
    assert not getattr(plain, "_regressors", None)
    expected = plain.forecast(pd.DataFrame(records(recent)), future=pd.DataFrame(future))["forecast"].to_numpy()
    served = np.array([row["forecast"] for row in forecasts])
    np.testing.assert_allclose(served, expected, rtol=1e-5)


def test_forecasting_requests_are_checked_against_the_signature():
    from modelformat.signature import PayloadError, Signature, build_forecast_signature

    sales = messy_sales(periods=30, stores=STORES)
    info = {
        "time_column": "Date",
        "series_columns": ["Store ID"],
        "target_column": "Units Sold",
        "known_ahead": ["Promo?"],
        "horizon": HORIZON,
        "frequency": "D",
        "gap": 0,
        "season_length": 7,
        "series": [{"Store ID": s} for s in STORES],
    }
    signature = Signature(build_forecast_signature(sales, column_types={"Promo?": "categorical"}, forecast=info))
    assert signature.columns[0].type == "datetime" and signature.by_name["Store ID"].dtype == "str"
    history = records(sales.head(3))
    checked = signature.validate_forecast({"history": history, "level": 0.95})
    assert checked.rows == 3 and len(checked.history["Date"]) == 3 and checked.level == 0.95 and checked.future is None

    def refused(payload, **limits) -> PayloadError:
        with pytest.raises(PayloadError) as error:
            signature.validate_forecast(payload, **limits)
        return error.value

    assert refused([1, 2]).code == "invalid_payload"
    assert refused({"history": history, "origin": "2024-01-05"}).field == "origin"
    assert refused({"history": [{"Date": "2024-01-01", "Store ID": "A-1"}]}).field == "Units Sold"
    assert refused({"series": [{"Shop": "A-1"}]}).field == "series"
    assert refused({"history": []}).field == "history"
    too_many = refused({"history": history}, max_rows=2)
    assert too_many.field == "history" and too_many.status == 413
    assert refused({"horizon": 3}).field == "horizon"  # not a request field: the horizon is the model's


def test_a_requests_cast_columns_forecast_as_the_same_rows_in_a_table_do():
    """A scoring request's history reaches the engine as the columns its validation cast (no
    DataFrame between); the forecasts, and the errors, are those of the same rows as a table."""
    import time

    from modelformat.signature import PayloadError, Signature, build_forecast_signature
    from training.ml.forecast import ForecastInputError, ForecastSettings, prepare, search

    sales = messy_sales(periods=60, stores=STORES)
    chosen = ForecastSettings.from_dict(
        {
            "time_column": "Date",
            "target_column": "Units Sold",
            "series_columns": ["Store ID"],
            "known_ahead": ["Promo?"],
            "horizon": HORIZON,
            "timeout_s": 60,
            "algorithms": ["seasonal_naive", "hgb_lags"],
        }
    )
    forecaster = search(prepare(sales, chosen), chosen, deadline=time.monotonic() + 60).forecaster
    info = {
        **chosen.to_dict(),
        "frequency": forecaster.frequency,
        "season_length": forecaster.season_length,
        "series": forecaster.series,
    }
    signature = Signature(build_forecast_signature(sales, column_types={"Promo?": "categorical"}, forecast=info))

    def both(rows: list[dict]):
        """(the request path's answer, the table path's answer): forecasts as a frame, or the error's field."""
        answers = []
        for history in (signature.validate_forecast({"history": rows}).history, pd.DataFrame(rows)):
            try:
                answers.append(pd.DataFrame(forecaster.forecast_columns(history)))
            except ForecastInputError as exc:
                answers.append(exc.field)
        return answers

    recent = records(sales.groupby("Store ID").tail(21))
    cases = {
        "regular": [r for r in recent if r["Units Sold"] is not None],
        "messy": recent,  # missing targets, a repeated row, a missing day: the general path
        "numbers as ids": [{**r, "Store ID": 7} for r in recent if r["Store ID"] == "A-1"],
        "times with a zone": [{**r, "Date": r["Date"] + "T00:00:00+02:00"} for r in recent],
        "an unknown promo value": [{**r, "Promo?": "maybe"} for r in recent],
        "no target in a series": [{**r, "Units Sold": None} if r["Store ID"] == "B 2" else r for r in recent],
        "an id with the key separator": [{**r, "Store ID": "A\x1f1"} for r in recent],
    }
    for case, rows in cases.items():
        if case != "an id with the key separator":  # (refused while the cast columns are read: below)
            cast = signature.validate_forecast({"history": rows}).history
            assert forecaster._cast_arrays(cast) is not None, case  # read as cast, not by the table path
        served, table = both(rows)
        if isinstance(table, str):
            assert served == table, case
        else:
            assert not isinstance(served, str), (case, served)
            pd.testing.assert_frame_equal(served, table, check_dtype=False, obj=case)
    assert both(cases["messy"])[0]["Store ID"].tolist() == ["A-1"] * HORIZON + ["B 2"] * HORIZON
    with pytest.raises(PayloadError):  # what the signature refuses never reaches the engine
        signature.validate_forecast({"history": [{**recent[0], "Date": "not a date"}]})
