"""Regression through the API: `task` in the train and AutoML specs, the task's default metric,
the job's task in its output, and a 400 naming the field for a bad task, target or metric."""

import pytest

from compute.jobs.models import Job
from compute.models import TargetKind
from compute.services import target_create
from data.services import data_version_from_file
from tests.training.regression_data import TARGET, write_houses

pytestmark = pytest.mark.django_db


@pytest.fixture
def houses(owner, workspace, tmp_path):
    source = tmp_path / "houses.csv"
    write_houses(source, rows=60)
    return data_version_from_file(actor=owner, workspace=workspace, path=source, name="houses")


@pytest.fixture
def cluster(owner, workspace):
    return target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu").target


def start_automl(client, workspace, payload):
    return client.post(f"/api/v1/workspaces/{workspace.pk}/automl/", payload, format="json")


def submit_train(client, workspace, cluster, version, **spec):
    body = {"data_version_id": version.pk, "target_column": TARGET, "task": "regression", "algorithm": "ridge"}
    return client.post(
        f"/api/v1/workspaces/{workspace.pk}/jobs/",
        {"kind": "train", "target": cluster.pk, "spec": body | spec},
        format="json",
    )


def test_an_automl_regression_starts_with_the_tasks_default_metric_and_shows_its_task(
    api, contributor, workspace, houses, cluster
):
    client = api(contributor)
    response = start_automl(
        client,
        workspace,
        {"data_version": houses.pk, "target_column": TARGET, "task": "regression", "target": cluster.pk},
    )
    assert response.status_code == 201, response.content
    assert response.json()["task"] == "regression"
    job = Job.objects.get(pk=response.json()["id"])
    assert job.spec["task"] == "regression" and job.spec["automl"]["primary_metric"] == "normalized_rmse"
    run = client.get(f"/api/v1/workspaces/{workspace.pk}/automl/{job.pk}/").json()
    assert run["task"] == "regression" and run["run"]["task"] == "regression"
    # a run started as before (no task) is a classification
    response = start_automl(
        client,
        workspace,
        {"data_version": houses.pk, "target_column": "Has garage? (yes/no)", "target": cluster.pk},
    )
    assert response.status_code == 201, response.content
    assert response.json()["task"] == "classification"
    assert Job.objects.get(pk=response.json()["id"]).spec["automl"]["primary_metric"] == "auc_weighted"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"task": "clustering"}, "task"),  # (forecasting is a task since issue 14)
        ({"target_column": "Neighbourhood / zone"}, "target_column"),  # not a number
        ({"settings": {"primary_metric": "auc_weighted"}}, "settings"),  # a classification metric
        ({"settings": {"allowed_algorithms": ["logistic_regression"]}}, None),  # a classifier
    ],
)
def test_bad_automl_regression_settings_are_refused_naming_the_field(
    api, owner, workspace, houses, cluster, change, field
):
    payload = {"data_version": houses.pk, "target_column": TARGET, "task": "regression", "target": cluster.pk}
    response = start_automl(api(owner), workspace, payload | change)
    assert response.status_code == 400, response.content
    fields = response.json()["error"]["fields"]
    assert fields and (field is None or field in fields), fields
    assert not Job.objects.exists()


def test_mape_is_refused_when_the_target_has_zeros(api, owner, workspace, cluster, tmp_path):
    source = tmp_path / "zeros.csv"
    write_houses(source, rows=60, zero_prices=True)
    version = data_version_from_file(actor=owner, workspace=workspace, path=source, name="zeros")
    payload = {
        "data_version": version.pk,
        "target_column": TARGET,
        "task": "regression",
        "target": cluster.pk,
        "settings": {"primary_metric": "mape"},
    }
    response = start_automl(api(owner), workspace, payload)
    assert response.status_code == 400, response.content
    assert "primary_metric" in response.json()["error"]["fields"], response.json()
    payload["settings"]["primary_metric"] = "mae"
    assert start_automl(api(owner), workspace, payload).status_code == 201


def test_a_regression_train_job_is_submitted_and_shows_its_task(api, contributor, workspace, houses, cluster):
    client = api(contributor)
    response = submit_train(client, workspace, cluster, houses, hyperparameters={"alpha": 3.0})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["task"] == "regression" and body["spec"]["task"] == "regression"
    detail = client.get(f"/api/v1/workspaces/{workspace.pk}/jobs/{body['id']}/").json()
    assert detail["task"] == "regression"


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"task": "ranking"}, "task"),
        ({"target_column": "Notes"}, "target_column"),
        ({"algorithm": "logistic_regression"}, "algorithm"),
        ({"hyperparameters": {"alpha": -1}}, "hyperparameters"),
    ],
)
def test_bad_regression_train_specs_are_refused_naming_the_field(api, owner, workspace, houses, cluster, spec, field):
    response = submit_train(api(owner), workspace, cluster, houses, **spec)
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"], response.json()
