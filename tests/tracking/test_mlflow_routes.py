"""Every route of the MLflow API (found by walking the URLconf, so routes added later are covered):
a non-member gets RESOURCE_DOES_NOT_EXIST, a Reader gets PERMISSION_DENIED on writes, an anonymous
caller UNAUTHENTICATED, all in MLflow's error shape."""

import json

import pytest
from rest_framework.test import APIClient

from compute.jobs.models import Job, JobStatus
from studio.services import token_create
from tests.routes import all_routes
from training.models import Experiment

pytestmark = pytest.mark.django_db

READS = {
    "experiments/search",
    "experiments/list",
    "runs/search",
    "logged-models/search",
    "registered-models/get-latest-versions",  # a read sent by POST, as MLflow does
}


# Routes that answer ENDPOINT_NOT_FOUND to any signed-in caller: nothing of a workspace is behind them.
NOT_SERVED = {"mlflow-endpoint-not-found", "mlflow-logged-models"}


def mlflow_routes():
    return [r for r in all_routes() if "/mlflow/" in r.pattern and r.name not in NOT_SERVED]


def client_of(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_create(user=user, name='routes').plaintext}")
    return client


@pytest.fixture
def ids(workspace, owner):
    experiment = Experiment.objects.create(workspace=workspace, name="walked")
    job = Job.objects.create(workspace=workspace, experiment=experiment, kind="external", status=JobStatus.RUNNING)
    return {"workspace_id": workspace.pk, "path": f"runs/{job.pk}/file.txt", "run": job, "experiment": experiment}


def call(client, route, ids, method):
    body = {"run_id": str(ids["run"].pk), "experiment_id": str(ids["experiment"].pk), "experiment_ids": ["1"]}
    url = route.url(ids)
    if method == "GET":
        return client.get(url, {**body, "path": f"runs/{ids['run'].pk}"})
    return client.generic(
        method,
        url,
        b"x" if method == "PUT" else json.dumps(body),
        content_type="application/octet-stream" if method == "PUT" else "application/json",
    )


def test_the_mlflow_api_has_its_routes():
    assert len(mlflow_routes()) >= 25


def test_every_mlflow_route_hides_the_workspace_from_non_members(outsider, workspace, ids):
    client = client_of(outsider)
    for route in mlflow_routes():
        for method in route.methods():
            response = call(client, route, ids, method)
            assert response.status_code == 404, (method, route.pattern, response.status_code)
            assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST", route.pattern


def test_every_mlflow_write_refuses_a_reader_and_anonymous_callers(reader, workspace, ids):
    client = client_of(reader)
    for route in mlflow_routes():
        for method in route.methods():
            if method == "GET" or any(route.pattern.endswith(read) for read in READS):
                continue
            response = call(client, route, ids, method)
            assert response.status_code == 403, (method, route.pattern, response.status_code)
            assert response.json()["error_code"] == "PERMISSION_DENIED"
    anonymous = APIClient()
    for route in mlflow_routes():
        for method in route.methods():
            response = call(anonymous, route, ids, method)
            assert response.status_code == 401, (method, route.pattern)
            assert response.json()["error_code"] == "UNAUTHENTICATED"
    ids["run"].refresh_from_db()
    assert ids["run"].status == JobStatus.RUNNING and ids["run"].deleted_at is None
    assert not Job.objects.exclude(pk=ids["run"].pk).exists()
