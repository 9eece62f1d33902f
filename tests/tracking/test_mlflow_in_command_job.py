"""A command job's code logs with the plain MLflow client, to the job itself (a real node worker,
a live server the sandbox reaches over the network)."""

import pytest

from compute.jobs.models import Job, JobParam, JobStatus, LatestMetric, Metric
from compute.models import TargetKind
from compute.services import target_create
from tests.commands.test_command_jobs import env_version_id, finished, log_text, submit, upload
from tracking.models import RunTag

pytestmark = [pytest.mark.worker]

LOG_PY = """\
import os
import mlflow

with mlflow.start_run() as run:  # MLFLOW_RUN_ID: the job itself
    for step in range(20):
        mlflow.log_metric("inside loss", 1 / (step + 1), step=step)
    mlflow.log_param("where from", "the sandbox ✓")
    mlflow.set_tag("phase", "train")
print("logged to run", run.info.run_id, "job", os.environ["STUDIO_JOB_ID"])
"""


@pytest.fixture
def node_env(node_env, live_server):
    """Nodes tell the job's code where the studio is: this test's live server."""
    return {**node_env, "STUDIO_PUBLIC_URL": live_server.url}


@pytest.fixture
def cluster(owner, workspace):
    return target_create(
        actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu", min_nodes=0, max_nodes=1
    ).target


@pytest.fixture
def mlflow_environment(api, owner, workspace):
    response = api(owner).post(
        f"/api/v1/workspaces/{workspace.pk}/environments/",
        {"name": "mlflow-client", "base": "studio-sklearn", "requirements": "mlflow-skinny==3.17.2\n"},
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_mlflow_in_a_command_job_logs_to_the_job(
    api, owner, workspace, cluster, mlflow_environment, node_env, agent, broker
):
    code = upload(api, owner, workspace, {"log.py": LOG_PY})
    response = submit(
        api,
        owner,
        workspace,
        cluster,
        {
            "code_snapshot_id": code["id"],
            "command": "python log.py",
            "environment_version_id": env_version_id(mlflow_environment),
            "network": True,
        },
        display_name="mlflow inside",
        experiment_name="inside jobs",
    )
    assert response.status_code == 201, response.content
    job = finished(response.json()["id"], timeout=600)
    text = log_text(job)
    assert job.status == JobStatus.COMPLETED, (job.error, text)
    assert f"logged to run {job.pk} job {job.pk}" in text
    assert Metric.objects.filter(job=job, name="inside loss").count() == 20
    assert LatestMetric.objects.get(job=job, name="inside loss").step == 19
    assert JobParam.objects.get(job=job, key="where from").value == "the sandbox ✓"
    assert RunTag.objects.get(job=job, key="phase").value == "train"
    assert Job.objects.get(pk=job.pk).experiment.name == "inside jobs"
