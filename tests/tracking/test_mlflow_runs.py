"""The unmodified MLflow client logs runs to a workspace: params, metrics, tags, search, history."""

import mlflow
import pytest
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException

from compute.jobs.models import Job, JobParam, JobStatus, LatestMetric
from tracking.jobs import EXTERNAL

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_run_logged_with_the_fluent_api_is_an_external_job(mlflow_as, contributor, workspace):
    mlflow_as(contributor, workspace)
    mlflow.set_experiment("Churn model — ünïcode & spaces")
    with mlflow.start_run(run_name="baseline #1 ✓") as run:
        mlflow.log_param("learning rate", 0.1)
        mlflow.log_params({"model": "tree", "depth": None})
        mlflow.set_tag("team", "data & ops")
        for step in range(0, 1000, 250):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.log_metrics({"accuracy": 0.91, "f1 score": 0.87})
    job = Job.objects.get(pk=int(run.info.run_id))
    assert job.kind == EXTERNAL and job.status == JobStatus.COMPLETED and job.finished_at is not None
    assert job.display_name == "baseline #1 ✓" and job.submitted_by == contributor
    assert job.experiment.name == "Churn model — ünïcode & spaces" and job.target is None
    assert dict(JobParam.objects.filter(job=job).values_list("key", "value")) == {
        "learning rate": "0.1",
        "model": "tree",
        "depth": "None",
    }
    assert LatestMetric.objects.get(job=job, name="loss").step == 750
    fetched = mlflow.get_run(run.info.run_id)
    assert fetched.info.status == "FINISHED" and fetched.info.run_name == "baseline #1 ✓"
    assert fetched.info.artifact_uri == f"mlflow-artifacts:/runs/{job.pk}"
    assert fetched.data.params["learning rate"] == "0.1"
    assert fetched.data.tags["team"] == "data & ops" and fetched.data.tags["mlflow.user"] == "bob"
    assert fetched.data.metrics == {"loss": 1 / 751, "accuracy": 0.91, "f1 score": 0.87}


def test_a_1000_step_metric_in_one_batch_and_its_history(mlflow_as, owner, workspace):
    client = mlflow_as(owner, workspace)
    experiment_id = client.create_experiment("history")
    run = client.create_run(experiment_id, run_name="long")
    metrics = [Metric("val loss", 1000 - step, 1_700_000_000_000 + step, step) for step in range(1000)]
    client.log_batch(run.info.run_id, metrics=metrics, params=[Param("seed", "42")], tags=[RunTag("a b", "ç")])
    history = client.get_metric_history(run.info.run_id, "val loss")
    assert [m.step for m in history] == list(range(1000))
    assert history[0].value == 1000 and history[-1].value == 1
    assert history[10].timestamp == 1_700_000_000_010
    paged = client._tracking_client.store.get_metric_history(run.info.run_id, "val loss", max_results=300)
    assert len(paged) == 300 and paged.token
    assert client.get_run(run.info.run_id).data.metrics == {"val loss": 1.0}
    assert client.get_metric_history(run.info.run_id, "never logged") == []


def test_search_runs_with_filters_and_order(mlflow_as, owner, workspace):
    client = mlflow_as(owner, workspace)
    experiment_id = client.create_experiment("search")
    runs = {}
    for name, accuracy, model, team in [
        ("tree small", 0.7, "tree", "red team"),
        ("tree big", 0.9, "tree", "blue"),
        ("forest", 0.8, "forest", "blue"),
        ("no metric", None, "linear", None),
    ]:
        run = client.create_run(experiment_id, run_name=name)
        if accuracy is not None:
            client.log_metric(run.info.run_id, "accuracy", accuracy)
        client.log_param(run.info.run_id, "model", model)
        if team:
            client.set_tag(run.info.run_id, "team name", team)
        runs[name] = run.info.run_id
    client.set_terminated(runs["forest"], "FAILED")

    def names(filter_string="", order_by=None, **extra):
        found = client.search_runs([experiment_id], filter_string, order_by=order_by, **extra)
        return [run.info.run_name for run in found]

    assert names("metrics.accuracy > 0.75", ["metrics.accuracy DESC"]) == ["tree big", "forest"]
    assert names("metrics.accuracy >= 0.7 and params.model = 'tree'", ["metrics.accuracy"]) == [
        "tree small",
        "tree big",
    ]
    assert set(names("params.model != 'tree'")) == {"forest", "no metric"}
    assert names("tags.`team name` LIKE '%team'") == ["tree small"]
    assert set(names("tags.`team name` ILIKE 'BLUE'")) == {"tree big", "forest"}
    assert set(names("params.model IN ('forest', 'linear')")) == {"forest", "no metric"}
    assert set(names("params.model NOT IN ('forest', 'linear')")) == {"tree small", "tree big"}
    assert names("attributes.status = 'FAILED'") == ["forest"]
    assert names("attributes.run_name = 'tree big'") == ["tree big"]
    assert names("tags.mlflow.runName = 'forest'") == ["forest"]
    assert names("", ["metrics.accuracy ASC"])[-1] == "no metric"  # a run without the metric sorts last
    assert names("", ["attributes.run_name"]) == sorted(runs)
    page = client.search_runs([experiment_id], max_results=3, order_by=["attributes.run_name"])
    assert len(page) == 3 and page.token
    rest = client.search_runs([experiment_id], max_results=3, order_by=["attributes.run_name"], page_token=page.token)
    assert [r.info.run_name for r in rest] == ["tree small"] and not rest.token
    found = client.search_runs([experiment_id], "attributes.run_name = 'forest'")[0]
    assert found.data.params == {"model": "forest"} and found.data.tags["team name"] == "blue"


def test_deleted_runs_are_hidden_and_restorable(mlflow_as, owner, workspace):
    client = mlflow_as(owner, workspace)
    experiment_id = client.create_experiment("deletions")
    run_id = client.create_run(experiment_id).info.run_id
    client.delete_run(run_id)
    assert client.search_runs([experiment_id]) == []
    assert [r.info.run_id for r in client.search_runs([experiment_id], run_view_type=ViewType.DELETED_ONLY)] == [run_id]
    assert client.get_run(run_id).info.lifecycle_stage == "deleted"
    with pytest.raises(MlflowException) as refused:
        client.log_metric(run_id, "x", 1)
    assert refused.value.error_code == "INVALID_PARAMETER_VALUE"
    client.restore_run(run_id)
    assert [r.info.run_id for r in client.search_runs([experiment_id])] == [run_id]


def test_every_job_of_the_workspace_is_a_run(mlflow_as, owner, workspace):
    client = mlflow_as(owner, workspace)
    experiment_id = client.create_experiment("mixed")
    job = Job.objects.create(
        workspace=workspace,
        kind="command",
        status=JobStatus.COMPLETED,
        submitted_by=owner,
        experiment_id=int(experiment_id),
    )
    JobParam.objects.create(job=job, key="lr", value="0.3")
    run = client.get_run(str(job.pk))
    assert run.info.status == "FINISHED" and run.data.params == {"lr": "0.3"}
    assert [r.info.run_id for r in client.search_runs([experiment_id])] == [str(job.pk)]
    client.set_terminated(str(job.pk), "FAILED")  # the engine owns a command job's status
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED
