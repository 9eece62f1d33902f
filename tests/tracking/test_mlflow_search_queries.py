"""runs/search fetches a page in a fixed number of queries, however many runs it holds."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from compute.jobs.metrics import metrics_save
from compute.jobs.models import Job, JobParam, JobStatus, Metric
from studio.services import token_create
from tracking.models import RunTag
from training.models import Experiment

pytestmark = pytest.mark.django_db


def make_runs(workspace, user, experiment, count: int, start: int = 0) -> None:
    jobs = Job.objects.bulk_create(
        Job(
            workspace=workspace,
            experiment=experiment,
            kind="external",
            status=JobStatus.COMPLETED,
            display_name=f"run {i} — ✓",
            submitted_by=user,
        )
        for i in range(start, start + count)
    )
    JobParam.objects.bulk_create(JobParam(job=job, key="model type", value=f"m{job.pk % 3}") for job in jobs)
    RunTag.objects.bulk_create(RunTag(job=job, key="team", value="ops & data") for job in jobs)
    metrics_save([Metric(job=job, name=name, value=job.pk / 10, step=1) for job in jobs for name in ("acc", "loss")])


def search(client, workspace, experiment, **body):
    body = {"experiment_ids": [str(experiment.pk)], **body}
    response = client.post(f"/w/{workspace.pk}/mlflow/api/2.0/mlflow/runs/search", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def test_search_queries_do_not_grow_with_the_page(workspace, owner):
    experiment = Experiment.objects.create(workspace=workspace, name="counted")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_create(user=owner, name='t').plaintext}")
    body = {"filter": "metrics.acc > 0.05 and params.`model type` != 'zz'", "order_by": ["metrics.loss DESC"]}
    make_runs(workspace, owner, experiment, 3)
    search(client, workspace, experiment)  # the token's first use is recorded once
    with CaptureQueriesContext(connection) as few:
        assert len(search(client, workspace, experiment, **body)["runs"]) == 3
    make_runs(workspace, owner, experiment, 60, start=3)
    with CaptureQueriesContext(connection) as many:
        runs = search(client, workspace, experiment, **body)["runs"]
    assert len(runs) == 63
    assert len(many.captured_queries) == len(few.captured_queries) <= 12
    first = runs[0]
    assert first["data"]["params"] == [{"key": "model type", "value": f"m{int(first['info']['run_id']) % 3}"}]
    assert {"key": "team", "value": "ops & data"} in first["data"]["tags"]
    values = [next(m["value"] for m in run["data"]["metrics"] if m["key"] == "loss") for run in runs]
    assert values == sorted(values, reverse=True)
