"""Hostile input to the MLflow API gets MLflow's INVALID_PARAMETER_VALUE (never a 500, never a
worker held for seconds): backtracking patterns, NUL, huge numbers, ids compared by LIKE."""

import base64
import json
import time

import pytest
from django.test import Client

from compute.jobs.models import Job, JobParam, JobStatus
from compute.jobs.tokens import job_token_issue
from studio.services import token_create
from tracking.models import RunTag

pytestmark = pytest.mark.django_db


@pytest.fixture
def mlflow_api(owner, workspace):
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token_create(user=owner, name='hostile').plaintext}")
    base = f"/w/{workspace.pk}/mlflow/api/2.0"

    def call(method: str, route: str, body=None, **query):
        if method == "GET":
            return client.get(base + route, query)
        return getattr(client, method.lower())(base + route, json.dumps(body), content_type="application/json")

    return call


@pytest.fixture
def run_id(mlflow_api):
    response = mlflow_api("POST", "/mlflow/runs/create", {"experiment_id": "0", "run_name": "hostile ✓"})
    assert response.status_code == 200, response.content
    return response.json()["run"]["info"]["run_id"]


def refused(response) -> str:
    assert response.status_code == 400, response.content
    return response.json()["error_code"]


def test_like_patterns_cannot_backtrack_for_seconds(mlflow_api, run_id):
    JobParam.objects.create(job_id=run_id, key="p", value="a" * 400)
    RunTag.objects.create(job_id=run_id, key="note", value="line one\nline two")
    search = "/mlflow/runs/search"
    started = time.monotonic()
    body = {"experiment_ids": ["0"], "filter": "params.p LIKE '" + "%a" * 12 + "%b'"}
    assert mlflow_api("POST", search, body).json()["runs"] == []  # no match, and soon
    assert time.monotonic() - started < 10
    assert (
        len(mlflow_api("POST", search, {"experiment_ids": ["0"], "filter": "params.p LIKE '%a%a_a%'"}).json()["runs"])
        == 1
    )
    # LIKE's % matches across lines, as in SQL.
    assert (
        len(mlflow_api("POST", search, {"experiment_ids": ["0"], "filter": "tags.note LIKE '%one%two'"}).json()["runs"])
        == 1
    )
    started = time.monotonic()
    assert refused(mlflow_api("POST", search, {"experiment_ids": ["0"], "filter": "metrics.m < " + "1" * 9000 + "x"}))
    assert time.monotonic() - started < 10


def test_nul_huge_numbers_and_ids_by_like_are_refused(mlflow_api, run_id):
    search = "/mlflow/runs/search"
    for body in [
        {"experiment_ids": ["0"], "filter": "params.p = 'a\x00'"},
        {"experiment_ids": ["0"], "filter": "attributes.run_id LIKE '1%'"},
        {"experiment_ids": ["0"], "max_results": 10**30},
        {
            "experiment_ids": ["0"],
            "page_token": base64.urlsafe_b64encode(b'{"offset": 1000000000000000000000000000000}').decode(),
        },
        {"experiment_ids": ["0"], "order_by": ["params.`a\x00` ASC"]},
    ]:
        assert refused(mlflow_api("POST", search, body)) == "INVALID_PARAMETER_VALUE", body
    for timestamp in ("--1", "²", "1" * 30):
        body = {"run_id": run_id, "key": "m", "value": 1, "timestamp": timestamp}
        assert refused(mlflow_api("POST", "/mlflow/runs/log-metric", body)) == "INVALID_PARAMETER_VALUE", timestamp
    assert refused(mlflow_api("GET", "/mlflow/metrics/get-history", run_id=run_id, metric_key="a\x00")) == (
        "INVALID_PARAMETER_VALUE"
    )
    assert refused(mlflow_api("GET", "/mlflow/experiments/get-by-name", experiment_name="x\x00")) == (
        "INVALID_PARAMETER_VALUE"
    )


def test_a_long_tag_value_is_kept(mlflow_api, run_id):
    value = "é" * 3000  # longer than a PostgreSQL index entry may be
    assert (
        mlflow_api("POST", "/mlflow/runs/set-tag", {"run_id": run_id, "key": "long", "value": value}).status_code == 200
    )
    assert RunTag.objects.get(job_id=run_id, key="long").value == value


def test_artifact_listing_keeps_the_case_of_paths(mlflow_api, run_id, owner):
    client_put = Client(HTTP_AUTHORIZATION=f"Bearer {token_create(user=owner, name='files').plaintext}")
    job = Job.objects.get(pk=run_id)
    for path in ("plots/a.txt", "Plots/b.txt"):
        url = f"/w/{job.workspace_id}/mlflow/api/2.0/mlflow-artifacts/artifacts/runs/{run_id}/{path}"
        assert client_put.put(url, b"x", content_type="application/octet-stream").status_code == 200
    listing = mlflow_api("GET", "/mlflow-artifacts/artifacts", path=f"runs/{run_id}/plots").json()["files"]
    assert [entry["path"] for entry in listing] == ["a.txt"]


def test_a_job_token_cannot_register_a_model(workspace, owner):
    job = Job.objects.create(
        workspace=workspace, kind="command", status=JobStatus.RUNNING, submitted_by=owner, attempt=1
    )
    client = Client(HTTP_AUTHORIZATION=f"Bearer {job_token_issue(job=job)}")
    response = client.post(
        f"/w/{workspace.pk}/mlflow/api/2.0/mlflow/model-versions/create",
        json.dumps({"name": "from-a-job", "source": f"runs:/{job.pk}/model", "run_id": str(job.pk)}),
        content_type="application/json",
    )
    assert response.status_code == 403 and response.json()["error_code"] == "PERMISSION_DENIED"
