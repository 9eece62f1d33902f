"""Who may do what through the MLflow API: roles, other workspaces, job tokens, MLflow's errors."""

import mlflow
import pytest
import requests
from mlflow.exceptions import MlflowException

from compute.jobs.models import Job, JobStatus, LatestMetric
from compute.jobs.tokens import job_token_issue
from studio.services import token_create
from training.models import Experiment

pytestmark = pytest.mark.django_db(transaction=True)


def error_code(call) -> str:
    with pytest.raises(MlflowException) as raised:
        call()
    return raised.value.error_code


def command_job(workspace, user, experiment=None) -> Job:
    return Job.objects.create(
        workspace=workspace,
        kind="command",
        status=JobStatus.RUNNING,
        submitted_by=user,
        attempt=1,
        experiment=experiment,
    )


def test_mlflow_errors_have_mlflow_codes(mlflow_as, owner, workspace):
    client = mlflow_as(owner, workspace)
    experiment_id = client.create_experiment("errors")
    run_id = client.create_run(experiment_id).info.run_id
    assert error_code(lambda: client.get_run("999999")) == "RESOURCE_DOES_NOT_EXIST"
    assert error_code(lambda: client.get_run("not-a-number")) == "RESOURCE_DOES_NOT_EXIST"
    assert error_code(lambda: client.get_experiment("424242")) == "RESOURCE_DOES_NOT_EXIST"
    for bad in [
        "metrics.x >",
        "metrics.x = 'text'",
        "params.p > 1",
        "nonsense.x = 1",
        "metrics.a = 1 OR metrics.b = 2",
    ]:
        assert error_code(lambda bad=bad: client.search_runs([experiment_id], bad)) == "INVALID_PARAMETER_VALUE", bad
    assert error_code(lambda: client.search_runs([experiment_id], order_by=["metrics.x SIDEWAYS"])) == (
        "INVALID_PARAMETER_VALUE"
    )
    client.log_param(run_id, "p", "1")
    assert error_code(lambda: client.log_param(run_id, "p", "2")) == "INVALID_PARAMETER_VALUE"
    assert error_code(lambda: client.log_metric(run_id, "x" * 300, 1)) == "INVALID_PARAMETER_VALUE"
    assert error_code(lambda: client.log_metric(run_id, "nan", float("nan"))) == "INVALID_PARAMETER_VALUE"
    assert error_code(lambda: client.set_tag(run_id, "bad\nkey", "v")) == "INVALID_PARAMETER_VALUE"
    assert error_code(lambda: client.delete_tag(run_id, "never set")) == "RESOURCE_DOES_NOT_EXIST"


def test_unknown_endpoints_and_missing_credentials(live_server, owner, workspace):
    base = f"{live_server.url}/w/{workspace.pk}/mlflow/api/2.0/mlflow"
    key = token_create(user=owner, name="raw").plaintext
    response = requests.get(f"{base}/traces/abc", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert response.status_code == 404 and response.json()["error_code"] == "ENDPOINT_NOT_FOUND"
    response = requests.get(f"{base}/runs/get", params={"run_id": "1"}, timeout=30)
    assert response.status_code == 401 and response.json()["error_code"] == "UNAUTHENTICATED"
    response = requests.get(
        f"{base}/runs/get", params={"run_id": "1"}, headers={"Authorization": "Bearer nope"}, timeout=30
    )
    assert response.status_code == 401 and response.json()["error_code"] == "UNAUTHENTICATED"
    response = requests.post(
        f"{base}/runs/search",
        data=b"[1, 2",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 400 and response.json()["error_code"] in ("BAD_REQUEST", "INVALID_PARAMETER_VALUE")


def test_another_workspace_s_run_and_experiment_are_not_found(mlflow_as, owner, workspace, outsider, other_workspace):
    client = mlflow_as(owner, workspace)
    experiment_id = client.create_experiment("ours")
    run_id = client.create_run(experiment_id).info.run_id
    theirs = mlflow_as(outsider, other_workspace)
    assert error_code(lambda: theirs.get_run(run_id)) == "RESOURCE_DOES_NOT_EXIST"
    assert error_code(lambda: theirs.log_metric(run_id, "x", 1)) == "RESOURCE_DOES_NOT_EXIST"
    assert error_code(lambda: theirs.get_experiment(experiment_id)) == "RESOURCE_DOES_NOT_EXIST"
    assert theirs.search_runs([experiment_id]) == []
    # The outsider pointed at our workspace: not a member, so the workspace itself is not found.
    intruder = mlflow_as(outsider, workspace)
    assert error_code(lambda: intruder.get_run(run_id)) == "RESOURCE_DOES_NOT_EXIST"
    assert not LatestMetric.objects.filter(job_id=int(run_id)).exists()


def test_a_reader_reads_but_cannot_write(mlflow_as, owner, reader, workspace):
    experiment_id = mlflow_as(owner, workspace).create_experiment("read me")
    owners = mlflow_as(owner, workspace)
    run_id = owners.create_run(experiment_id).info.run_id
    client = mlflow_as(reader, workspace)
    assert client.get_run(run_id).info.run_id == run_id
    assert len(client.search_runs([experiment_id])) == 1
    assert error_code(lambda: client.log_metric(run_id, "x", 1)) == "PERMISSION_DENIED"
    assert error_code(lambda: client.create_experiment("mine")) == "PERMISSION_DENIED"
    assert error_code(lambda: client.create_run(experiment_id)) == "PERMISSION_DENIED"
    assert error_code(lambda: client.delete_run(run_id)) == "PERMISSION_DENIED"
    assert error_code(lambda: client.set_terminated(run_id)) == "PERMISSION_DENIED"


def test_a_job_token_touches_its_own_run_only(mlflow_as, owner, workspace):
    owners = mlflow_as(owner, workspace)
    experiment_id = owners.create_experiment("jobs")
    other_run = owners.create_run(experiment_id).info.run_id
    job = command_job(workspace, owner)
    client = mlflow_as(owner, workspace, key=job_token_issue(job=job))
    own = str(job.pk)
    client.log_metric(own, "from inside", 0.5, step=3)
    client.set_tag(own, "phase", "train")
    assert client.get_run(own).data.metrics == {"from inside": 0.5}
    client.set_terminated(own, "FINISHED")  # the job's process ends the job, not its MLflow run
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING
    assert error_code(lambda: client.get_run(other_run)) == "PERMISSION_DENIED"
    assert error_code(lambda: client.log_metric(other_run, "x", 1)) == "PERMISSION_DENIED"
    assert error_code(lambda: client.create_run(experiment_id)) == "PERMISSION_DENIED"
    assert error_code(lambda: client.create_experiment("new")) == "PERMISSION_DENIED"
    assert error_code(lambda: client.delete_run(own)) == "PERMISSION_DENIED"
    assert [r.info.run_id for r in client.search_runs([experiment_id])] == []
    assert not LatestMetric.objects.filter(job_id=int(other_run)).exists()


def test_a_job_token_is_refused_on_another_workspace(mlflow_as, owner, workspace, outsider, other_workspace):
    job = command_job(workspace, owner)
    client = mlflow_as(owner, other_workspace, key=job_token_issue(job=job))
    assert error_code(lambda: client.get_run(str(job.pk))) == "RESOURCE_DOES_NOT_EXIST"


def test_the_job_s_variables_make_start_run_log_to_the_job(mlflow_as, owner, workspace, monkeypatch):
    """What a command job's code does with the variables its node sets (the e2e test runs it in
    the sandbox): `mlflow.start_run()` resumes the job's run, and ending it leaves the job running."""
    experiment = Experiment.objects.create(workspace=workspace, name="job runs")
    job = command_job(workspace, owner, experiment=experiment)
    mlflow_as(owner, workspace, key=job_token_issue(job=job))
    monkeypatch.setenv("MLFLOW_RUN_ID", str(job.pk))
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", str(experiment.pk))
    with mlflow.start_run() as run:
        for step in range(5):
            mlflow.log_metric("inside loss", 1 / (step + 1), step=step)
        mlflow.log_param("where from", "the sandbox ✓")
    assert run.info.run_id == str(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING
    assert LatestMetric.objects.get(job=job, name="inside loss").step == 4
