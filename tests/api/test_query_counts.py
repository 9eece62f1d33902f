"""Every list API costs the same number of queries with 2 rows as with 9 (tests/query_counts.py)."""

import pytest

from compute.jobs.models import JobStatus
from compute.models import NodeStatus
from tests.query_counts import (
    api_count,
    assert_queries_flat,
    cluster,
    data_version,
    inference,
    job,
    make_activity,
    make_artifact,
    make_asset,
    make_bucket,
    make_data_version,
    make_deployment,
    make_endpoint,
    make_event,
    make_experiment,
    make_ingest,
    make_job,
    make_log_line,
    make_member,
    make_metric,
    make_model,
    make_model_version,
    make_node,
    make_target,
    make_token,
    make_trial,
    marker,
    model_version,
    node,
    numbered,
)
from training.models import TrainingJobKind
from workspaces.services import workspace_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(api, owner):
    return api(owner)


@pytest.fixture
def base(workspace):
    return f"/api/v1/workspaces/{workspace.pk}"


def _count_from(first: int):
    """The API's count, less the rows that fixtures made before the guard's first row."""
    return lambda response: api_count(response) - first


def test_workspace_list_in_fixed_queries(client, owner):
    add = numbered(lambda n: workspace_create(actor=owner, name=marker(n)))
    assert_queries_flat(client, "/api/v1/workspaces/", add, shown=api_count)


def test_member_list_in_fixed_queries(client, base, workspace, owner, make_user):
    add = numbered(lambda n: make_member(workspace, owner, make_user, n))
    assert_queries_flat(client, f"{base}/members/", add, shown=_count_from(3))


def test_activity_list_in_fixed_queries(client, base, workspace, owner):
    add = numbered(lambda n: make_activity(workspace, owner, n))
    before = workspace.activities.count()
    assert_queries_flat(client, f"{base}/activity/", add, shown=_count_from(before))


def test_compute_target_list_in_fixed_queries(client, base, workspace, owner):
    def add(n):
        make_node(make_target(workspace, owner, n), n)

    before = workspace.compute_targets.count()
    assert_queries_flat(client, f"{base}/compute/", numbered(add), shown=_count_from(before))


def test_compute_node_list_in_fixed_queries(client, base, cluster):
    statuses = [NodeStatus.IDLE, NodeStatus.STOPPED]
    add = numbered(lambda n: make_node(cluster, n, status=statuses[n % 2]))
    assert_queries_flat(client, f"{base}/compute/{cluster.pk}/nodes/", add, shown=api_count)


def test_compute_usage_in_fixed_queries(client, base, workspace, owner):
    def add(n):
        make_node(make_target(workspace, owner, n), n, status=NodeStatus.STOPPED)

    assert_queries_flat(client, f"{base}/compute/usage/", numbered(add), shown=None)


def test_job_list_in_fixed_queries(client, base, workspace, cluster, owner, node, data_version):
    def add(n):
        experiment = make_experiment(workspace, owner, 100 + n)
        make_job(workspace, cluster, owner, n, node=node, data_version=data_version, experiment=experiment)

    assert_queries_flat(client, f"{base}/jobs/", numbered(add), shown=api_count)


def test_job_list_of_a_runs_trials_in_fixed_queries(client, base, workspace, cluster, owner):
    run = make_job(workspace, cluster, owner, 0, kind=TrainingJobKind.AUTOML, status=JobStatus.RUNNING, detached=True)
    add = numbered(lambda n: make_trial(run, n))
    assert_queries_flat(client, f"{base}/jobs/?parent={run.pk}", add, shown=api_count)


def test_automl_run_leaderboard_in_fixed_queries(client, base, workspace, cluster, owner):
    run = make_job(
        workspace,
        cluster,
        owner,
        0,
        kind=TrainingJobKind.AUTOML,
        status=JobStatus.RUNNING,
        detached=True,
        spec={"automl": {}, "seed": 0},
        result={"setup": {"guardrails": []}},
    )
    add = numbered(lambda n: make_trial(run, n))
    assert_queries_flat(
        client, f"{base}/automl/{run.pk}/", add, shown=lambda response: len(response.json()["leaderboard"])
    )


def test_experiment_list_in_fixed_queries(client, base, workspace, owner):
    add = numbered(lambda n: make_experiment(workspace, owner, n))
    assert_queries_flat(client, f"{base}/experiments/", add, shown=api_count)


def test_experiment_runs_in_fixed_queries(client, base, workspace, cluster, owner):
    experiment = make_experiment(workspace, owner, 0)

    def add(n):
        run = make_job(workspace, cluster, owner, n, experiment=experiment)
        make_metric(run, 0)

    query = "?metrics=qcrow-0&params=lr&sort=-metrics.qcrow-0"
    assert_queries_flat(client, f"{base}/experiments/{experiment.pk}/runs/{query}", numbered(add), shown=api_count)


def test_job_event_list_in_fixed_queries(client, base, job, node):
    add = numbered(lambda n: make_event(job, node, n))
    assert_queries_flat(client, f"{base}/jobs/{job.pk}/events/", add, shown=api_count)


def test_job_artifact_list_in_fixed_queries(client, base, job):
    add = numbered(lambda n: make_artifact(job, n))
    assert_queries_flat(client, f"{base}/jobs/{job.pk}/artifacts/", add, shown=api_count)


def test_job_log_in_fixed_queries(client, base, job):
    add = numbered(lambda n: make_log_line(job, n))
    assert_queries_flat(client, f"{base}/jobs/{job.pk}/log/", add, shown=lambda response: len(response.json()["lines"]))


def test_job_metrics_in_fixed_queries(client, base, job):
    add = numbered(lambda n: make_metric(job, n))
    assert_queries_flat(client, f"{base}/jobs/{job.pk}/metrics/", add, shown=lambda response: len(response.json()))


def test_data_asset_list_in_fixed_queries(client, base, workspace, owner):
    add = numbered(lambda n: make_asset(workspace, owner, n))
    assert_queries_flat(client, f"{base}/data-assets/", add, shown=api_count)


def test_data_version_list_in_fixed_queries(client, base, workspace, owner):
    asset = make_asset(workspace, owner, 0)
    add = numbered(lambda n: make_data_version(asset, owner, n + 1))
    assert_queries_flat(client, f"{base}/data-assets/{asset.pk}/versions/", add, shown=_count_from(1))


def test_ingest_list_in_fixed_queries(client, base, workspace, owner, job):
    add = numbered(lambda n: make_ingest(workspace, owner, job, n))
    assert_queries_flat(client, f"{base}/ingests/", add, shown=api_count)


def test_model_list_in_fixed_queries(client, base, workspace, owner, job, data_version):
    add = numbered(lambda n: make_model(workspace, owner, n, job=job, data_version=data_version))
    assert_queries_flat(client, f"{base}/models/", add, shown=api_count)


def test_model_version_list_in_fixed_queries(client, base, workspace, owner, job, data_version):
    model = make_model(workspace, owner, 0, job=job, data_version=data_version)
    add = numbered(lambda n: make_model_version(model, owner, n + 1, job=job, data_version=data_version))
    assert_queries_flat(client, f"{base}/models/{model.pk}/versions/", add, shown=_count_from(1))


def test_endpoint_list_in_fixed_queries(client, base, workspace, owner, model_version, inference):
    add = numbered(lambda n: make_endpoint(workspace, owner, model_version, inference, n))
    assert_queries_flat(client, f"{base}/endpoints/", add, shown=api_count)


def test_endpoint_deployments_in_fixed_queries(client, base, workspace, owner, model_version, inference):
    endpoint = make_endpoint(workspace, owner, model_version, inference, 0)
    add = numbered(lambda n: make_deployment(endpoint, owner, model_version, inference, marker(n)))
    assert_queries_flat(
        client,
        f"{base}/endpoints/{endpoint.pk}/",
        add,
        shown=lambda response: len(response.json()["deployments"]) - 1,
    )


def test_endpoint_monitoring_in_fixed_queries(client, base, workspace, owner, model_version, inference):
    endpoint = make_endpoint(workspace, owner, model_version, inference, 0)

    def add(n):
        make_bucket(make_deployment(endpoint, owner, model_version, inference, marker(n)))

    assert_queries_flat(
        client,
        f"{base}/endpoints/{endpoint.pk}/monitoring/",
        numbered(add),
        shown=lambda response: len(response.json()["deployments"]) - 1,
    )


def test_token_list_in_fixed_queries(client, owner):
    add = numbered(lambda n: make_token(owner, n))
    assert_queries_flat(client, "/api/v1/tokens/", add, shown=api_count)
