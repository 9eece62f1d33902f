"""The experiment API: create an experiment; list its runs with chosen metrics and parameters,
sorted like the experiment page."""

import pytest
from django.utils import timezone

from compute.jobs.models import JobStatus
from tests.training.test_experiment_pages import LOSS, LR, make_run
from training.models import Experiment

pytestmark = pytest.mark.django_db


@pytest.fixture
def experiment(workspace, owner):
    return Experiment.objects.create(workspace=workspace, name="Ünïcode runs", created_by=owner)


def runs_url(experiment, query=""):
    return f"/api/v1/workspaces/{experiment.workspace_id}/experiments/{experiment.pk}/runs/{query}"


def test_runs_sorted_by_a_metric_with_chosen_columns(api, reader, experiment):
    make_run(experiment, "mid", metrics={LOSS: 0.5}, params={LR: "0.1"})
    make_run(experiment, "none", status=JobStatus.RUNNING)
    make_run(experiment, "low", metrics={LOSS: [2, 0.1], "acc": 0.9})
    make_run(experiment, "gone", metrics={LOSS: 0.0}, deleted_at=timezone.now())
    body = api(reader).get(runs_url(experiment), {"sort": f"metrics.{LOSS}", "metrics": f"{LOSS},acc", "params": LR})
    assert body.status_code == 200, body.content
    results = body.json()["results"]
    assert [run["name"] for run in results] == ["low", "mid", "none"] and body.json()["count"] == 3
    assert results[0]["metrics"] == {LOSS: 0.1, "acc": 0.9} and results[0]["params"] == {LR: None}
    assert results[1]["params"] == {LR: "0.1"} and results[2]["metrics"] == {LOSS: None, "acc": None}
    assert results[0]["kind"] == "external" and results[0]["duration_seconds"] == pytest.approx(30, abs=5)
    descending = api(reader).get(runs_url(experiment), {"sort": f"-metrics.{LOSS}"}).json()["results"]
    assert [run["name"] for run in descending] == ["mid", "low", "none"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"sort": "bogus"}, "sort"),
        ({"metrics": ",".join(f"m{i}" for i in range(21))}, "metrics"),
        ({"trials": "x"}, "trials"),
        ({"sort": "metrics.a\x00b"}, "sort"),
        ({"metrics": "a\x00b"}, "metrics"),
        ({"params": "lr,\x7f"}, "params"),
    ],
)
def test_bad_query_is_a_400_naming_the_parameter(api, reader, experiment, query, field):
    response = api(reader).get(runs_url(experiment), query)
    assert response.status_code == 400 and field in response.json()["error"]["fields"]


def test_another_workspaces_experiment_is_not_found(api, outsider, other_workspace, experiment):
    url = f"/api/v1/workspaces/{other_workspace.pk}/experiments/{experiment.pk}/runs/"
    assert api(outsider).get(url).status_code == 404


def test_create_an_experiment(api, contributor, reader, workspace):
    url = f"/api/v1/workspaces/{workspace.pk}/experiments/"
    created = api(contributor).post(url, {"name": " Été / tests 1 ", "description": "α"}, format="json")
    assert created.status_code == 201 and created.json()["name"] == "Été / tests 1"
    again = api(contributor).post(url, {"name": "Été / tests 1"}, format="json")
    assert again.status_code == 409 and "name" in again.json()["error"]["fields"]
    assert api(reader).post(url, {"name": "r"}, format="json").status_code == 403
    assert api(contributor).post(url, {"name": "a\x00b"}, format="json").status_code == 400
    assert Experiment.objects.filter(workspace=workspace).count() == 1
