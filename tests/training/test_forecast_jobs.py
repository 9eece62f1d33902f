"""Forecasting runs as jobs: bad settings refused through the API with the field named (before
anything runs), and batch forecasting on a node from a data version of history rows (with the
known-ahead future in rows without a target) or from the model's stored history."""

import pandas as pd
import pytest

from compute.jobs.models import Job, JobStatus
from compute.jobs.services import job_submit
from compute.models import TargetKind
from compute.services import target_create
from data.models import DataVersion
from data.services import data_version_from_file, data_version_path
from tests.conftest import wait_for
from tests.ml.forecast_data import messy_sales
from training.automl_services import automl_submit
from training.models import ModelVersion

HORIZON = 7
SETTINGS = {"time_column": "Date", "series_columns": ["Store ID"], "known_ahead": ["Promo?"], "horizon": HORIZON}


def upload(owner, workspace, tmp_path, frame: pd.DataFrame, name: str = "store sales") -> DataVersion:
    source = tmp_path / f"{name}.csv"
    frame.to_csv(source, index=False)
    return data_version_from_file(actor=owner, workspace=workspace, path=source, name=name)


def finished(job_id: int, timeout: float = 120) -> Job:
    return wait_for(
        lambda: Job.objects.filter(pk=job_id, status__in=JobStatus.finished()).first(),
        timeout=timeout,
        message=f"job {job_id} to finish",
    )


def start(api, owner, workspace, cluster, data, settings, **more):
    body = {
        "task": "forecasting",
        "data_version": data.pk,
        "target_column": "Units Sold",
        "target": cluster.pk,
        "settings": settings,
        **more,
    }
    return api(owner).post(f"/api/v1/workspaces/{workspace.pk}/automl/", body, format="json")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"time_column": None}, "time_column", "time column"),
        ({"time_column": "When"}, "time_column", "'When'"),
        ({"horizon": 100}, "horizon", "100"),
        ({"horizon": 0}, "horizon", ""),
        ({"series_columns": ["Shop #"]}, "series_columns", "'Shop #'"),
        ({"known_ahead": ["Units Sold"]}, "known_ahead", ""),
        ({"frequency": "fortnightly"}, "frequency", "fortnightly"),
        ({"primary_metric": "r2"}, "primary_metric", ""),
        ({"gap": -1}, "gap", ""),
        ({"backtest_windows": 50}, "backtest_windows", ""),
        ({"timeout_s": 5}, "timeout_s", ""),
        ({"algorithms": ["prophet"]}, "algorithms", "prophet"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(api, owner, workspace, tmp_path, change, field, words):
    data = upload(owner, workspace, tmp_path, messy_sales(periods=120))
    cluster = target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu").target
    settings = {k: v for k, v in {**SETTINGS, **change}.items() if v is not None}
    response = start(api, owner, workspace, cluster, data, settings)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert field in error["fields"], error
    assert words in " ".join(error["fields"][field]), error
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_a_time_column_that_does_not_parse_and_a_text_target_are_refused(api, owner, workspace, tmp_path):
    sales = messy_sales(periods=60)
    sales.loc[5, "Date"] = "sometime in May"
    data = upload(owner, workspace, tmp_path, sales)
    cluster = target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu").target
    response = start(api, owner, workspace, cluster, data, SETTINGS)
    assert response.status_code == 400, response.content
    assert "sometime in May" in " ".join(response.json()["error"]["fields"]["time_column"])
    clean = upload(owner, workspace, tmp_path, messy_sales(periods=60), name="clean sales")
    text_target = start(api, owner, workspace, cluster, clean, SETTINGS, target_column="Store ID")
    assert text_target.status_code == 400
    assert "target_column" in text_target.json()["error"]["fields"]


@pytest.mark.django_db
def test_a_horizon_longer_than_the_history_allows_says_what_it_needs(api, owner, workspace, tmp_path):
    data = upload(owner, workspace, tmp_path, messy_sales(periods=40))
    cluster = target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu").target
    response = start(api, owner, workspace, cluster, data, {**SETTINGS, "horizon": 30})
    assert response.status_code == 400
    message = " ".join(response.json()["error"]["fields"]["horizon"])
    assert "Horizon 30 needs at least" in message and "has 40" in message, message


@pytest.mark.django_db
def test_a_train_job_does_not_take_the_forecasting_task(owner, workspace, tmp_path):
    from django.core.exceptions import ValidationError

    data = upload(owner, workspace, tmp_path, messy_sales(periods=60))
    cluster = target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu").target
    with pytest.raises(ValidationError) as refused:
        job_submit(
            actor=owner,
            workspace=workspace,
            kind="train",
            target=cluster,
            spec={"task": "forecasting", "data_version_id": data.pk, "target_column": "Units Sold"},
        )
    assert "task" in refused.value.message_dict


@pytest.mark.worker
@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
def test_batch_forecasting_from_a_data_version_and_from_the_stored_history(
    api, client, owner, workspace, agent, broker, reconciler, tmp_path
):
    sales = messy_sales(periods=100)
    data = upload(owner, workspace, tmp_path, sales)
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
        settings={**SETTINGS, "timeout_s": 30, "backtest_windows": 2, "algorithms": ["seasonal_naive"]},
        register_as="sales",
    )
    done = finished(run.pk)
    assert done.status == JobStatus.COMPLETED, (done.error, done.status_reason)
    assert any("Guardrail missing_timestamps: fixed" in line.text for line in done.log.all()), "guardrails logged"
    version = ModelVersion.objects.get(model__name="sales")
    assert any(line.text.startswith("Seasonal naive: normalized_rmse") for line in done.log.all()), "candidates logged"
    again = api(owner).post(f"/api/v1/workspaces/{workspace.pk}/jobs/{run.pk}/register/", {"name": "sales-copy"})
    assert again.status_code == 201, again.content  # the run's own files, registered by hand
    assert ModelVersion.objects.get(model__name="sales-copy").sha256 == version.sha256

    # new history for one store, with next week's promotions in rows without sales yet
    recent = sales[sales["Store ID"] == "B 2"].tail(30).copy()
    last = pd.Timestamp(recent["Date"].iloc[-1])
    days = pd.date_range(last, periods=HORIZON + 1, freq="D")[1:]
    week = pd.DataFrame(
        {"Date": days.strftime("%Y-%m-%d"), "Store ID": "B 2", "Units Sold": None, "Promo?": ["yes"] + ["no"] * 6}
    )
    history = upload(owner, workspace, tmp_path, pd.concat([recent, week]), name="store b history")
    jobs = []
    response = api(owner).post(
        f"/api/v1/workspaces/{workspace.pk}/jobs/",
        {
            "kind": "batch_score",
            "target": cluster.pk,
            "spec": {"model_version_id": version.pk, "data_version_id": history.pk},
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    jobs.append(finished(response.json()["id"]))
    # from the stored history, through the Jobs page's batch scoring form (no data chosen)
    client.force_login(owner)
    form = client.get(f"/w/{workspace.pk}/jobs/new/?kind=batch_score&model_version_id={version.pk}").content.decode()
    assert "None: a forecasting model&#x27;s stored history" in form
    posted = client.post(
        f"/w/{workspace.pk}/jobs/new/",
        {
            "kind": "batch_score",
            "target": cluster.pk,
            "model_version_id": version.pk,
            "data_version_id": "",
            "output_asset": "",
            "experiment_name": "Default",
        },
    )
    assert posted.status_code == 302, posted.content.decode()[:3000]
    jobs.append(finished(Job.objects.filter(kind="batch_score").latest("pk").pk))
    for job in jobs:
        assert job.status == JobStatus.COMPLETED, (job.error, job.status_reason)
    from_history, from_stored = (
        pd.read_parquet(data_version_path(DataVersion.objects.get(pk=j.result["output_data_version_id"]))) for j in jobs
    )
    assert list(from_history.columns) == ["Store ID", "Date", "forecast", "lower", "upper"]
    assert len(from_history) == HORIZON and set(from_history["Store ID"]) == {"B 2"}
    assert pd.Timestamp(from_history["Date"].iloc[0]) == days[0]  # the rows without sales are the future
    assert (from_history["lower"] <= from_history["forecast"]).all()
    assert len(from_stored) == 2 * HORIZON and jobs[1].result["series"] == 2
    output = DataVersion.objects.get(pk=jobs[1].result["output_data_version_id"])
    assert output.asset.name == "sales-forecasts"
    assert {c["name"]: c["semantic_type"] for c in output.schema["columns"]}["forecast"] == "numeric"


@pytest.mark.django_db
def test_a_queued_run_is_read_back_with_its_settings_and_no_result_yet(api, owner, workspace, tmp_path):
    data = upload(owner, workspace, tmp_path, messy_sales(periods=60))
    cluster = target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu").target
    response = start(api, owner, workspace, cluster, data, {**SETTINGS, "frequency": "D", "gap": 1})
    assert response.status_code == 201, response.content
    job = Job.objects.get(pk=response.json()["id"])
    assert job.spec["task"] == "forecasting" and job.spec["target_column"] == "Units Sold"
    assert job.spec["automl"]["frequency"] == "D" and job.spec["automl"]["gap"] == 1
    assert job.spec["automl"]["series_columns"] == ["Store ID"] and "target_column" not in job.spec["automl"]
    from training.kinds.automl import AutoMLJob

    assert AutoMLJob().validate(workspace=workspace, spec=job.spec).spec == job.spec  # a clone checks the same
    detail = api(owner).get(f"/api/v1/workspaces/{workspace.pk}/automl/{job.pk}/")
    assert detail.status_code == 200, detail.content
    body = detail.json()
    assert body["task"] == "forecasting" and body["horizon"] == HORIZON and body["primary_metric"] == "normalized_rmse"
    assert body["leaderboard"] == [] and body["metrics"] is None and body["registered"] is None


@pytest.mark.django_db
@pytest.mark.parametrize("frequency", ["1000000D", "ms"])
def test_a_frequency_the_dates_cannot_be_laid_on_is_refused_naming_a_setting(
    api, owner, workspace, tmp_path, frequency
):
    """A step so long the grid leaves pandas' dates, or so short two months of days would be
    billions of points: a 400 naming the setting while submitting, not a 500 (or the web
    process' memory)."""
    data = upload(owner, workspace, tmp_path, messy_sales(periods=60))
    cluster = target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu").target
    response = start(api, owner, workspace, cluster, data, {**SETTINGS, "frequency": frequency})
    assert response.status_code == 400, response.content
    fields = response.json()["error"]["fields"]  # the engine says which: the step, or the dates it reaches
    assert fields.get("frequency") or fields.get("time_column"), fields
    assert not Job.objects.exists()


def test_the_packaged_latency_times_one_series_and_is_skipped_past_the_deadline():
    import time

    from training.kinds.forecast import _forecast_latency_ms
    from training.ml.forecast import ForecastSettings, prepare, search

    settings = ForecastSettings.from_dict(
        {**SETTINGS, "known_ahead": [], "target_column": "Units Sold", "algorithms": ["seasonal_naive"]}
    )
    forecaster = search(prepare(messy_sales(periods=60, stores=("A-1", "B 2", "C 3")), settings), settings).forecaster
    asked = []
    forecast = forecaster.forecast

    def counting(*args, **kwargs):
        asked.append(kwargs.get("series"))
        return forecast(*args, **kwargs)

    forecaster.forecast = counting
    assert _forecast_latency_ms(forecaster, deadline=time.monotonic() - 1) is None and asked == []
    assert _forecast_latency_ms(forecaster, deadline=time.monotonic() + 60) > 0
    assert asked == [[{"Store ID": "A-1"}]]  # one series, not the three
