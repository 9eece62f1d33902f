"""Every list page costs the same number of queries with 2 rows as with 9 (tests/query_counts.py)."""

from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.utils import timezone

from compute.jobs.models import JobParam, JobStatus
from compute.models import NodeStatus
from endpoints import selectors
from endpoints.models import MonitoringBucket
from tests.query_counts import (
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
    make_world,
    marker,
    model_version,
    node,
    numbered,
    rows_shown_from,
)
from tests.studio.test_admin import PROJECT_APPS
from training.models import TrainingJobKind
from workspaces.services import workspace_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(client, owner):
    client.force_login(owner)
    return client


def test_home_lists_workspaces_and_their_activity_in_fixed_queries(signed_in, owner):
    assert_queries_flat(signed_in, "/", numbered(lambda n: workspace_create(actor=owner, name=marker(n))))


def test_home_lists_endpoints_with_their_health_in_fixed_queries(signed_in, owner, model_version, inference):
    def add(n):
        ws = workspace_create(actor=owner, name=f"ws {n}")
        make_endpoint(ws, owner, model_version, inference, n)

    assert_queries_flat(signed_in, "/", numbered(add), shown=None)


def test_workspace_page_lists_activity_in_fixed_queries(signed_in, workspace, owner):
    add = numbered(lambda n: make_activity(workspace, owner, n))
    assert_queries_flat(signed_in, f"/w/{workspace.pk}/", add)


def test_member_page_in_fixed_queries(signed_in, workspace, owner, make_user):
    add = numbered(lambda n: make_member(workspace, owner, make_user, n))
    assert_queries_flat(signed_in, f"/w/{workspace.pk}/members/", add)


def test_compute_page_lists_targets_in_fixed_queries(signed_in, workspace, owner):
    def add(n):
        target = make_target(workspace, owner, n)
        make_node(target, n)

    assert_queries_flat(signed_in, f"/w/{workspace.pk}/compute/", numbered(add))


def test_compute_target_page_lists_nodes_in_fixed_queries(signed_in, workspace, cluster):
    statuses = [NodeStatus.IDLE, NodeStatus.STOPPED]
    add = numbered(lambda n: make_node(cluster, n, status=statuses[n % 2]))
    assert_queries_flat(signed_in, f"/w/{workspace.pk}/compute/{cluster.pk}/", add)


def test_compute_usage_page_in_fixed_queries(signed_in, workspace, owner):
    def add(n):
        make_node(make_target(workspace, owner, n), n, status=NodeStatus.STOPPED)

    assert_queries_flat(signed_in, f"/w/{workspace.pk}/compute/usage/", numbered(add))


def test_job_page_lists_jobs_in_fixed_queries(signed_in, workspace, cluster, owner, node, data_version, job):
    def add(n):
        experiment = make_experiment(workspace, owner, 100 + n)
        make_job(workspace, cluster, owner, n, node=node, data_version=data_version, experiment=experiment)

    # The fixture's job (qcrow-0) is listed too.
    assert_queries_flat(
        signed_in, f"/w/{workspace.pk}/jobs/?q=qcrow", numbered(add), shown=lambda r: _jobs_shown(r) - 1
    )


def _jobs_shown(response) -> int:
    return response.content.decode().count('name="ids"')


def test_job_page_lists_a_runs_trials_in_fixed_queries(signed_in, workspace, cluster, owner):
    run = make_job(workspace, cluster, owner, 0, kind=TrainingJobKind.AUTOML, status=JobStatus.RUNNING, detached=True)
    add = numbered(lambda n: make_trial(run, n))
    assert_queries_flat(signed_in, f"/w/{workspace.pk}/jobs/?parent={run.pk}", add, shown=_jobs_shown)


def test_automl_run_page_lists_its_trials_in_fixed_queries(signed_in, workspace, cluster, owner, node):
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
    assert_queries_flat(signed_in, f"/w/{workspace.pk}/jobs/{run.pk}/", add, shown=None)


def test_job_page_lists_events_and_artifacts_in_fixed_queries(signed_in, workspace, job, node):
    def add(n):
        make_event(job, node, n)
        make_artifact(job, n)

    assert_queries_flat(signed_in, f"/w/{workspace.pk}/jobs/{job.pk}/", add, shown=None)


def test_job_compare_page_in_fixed_queries(signed_in, workspace, cluster, owner, node, data_version):
    jobs = []

    def add(n):
        job = make_job(workspace, cluster, owner, n, node=node, data_version=data_version, spec={"n": n})
        make_metric(job, n)
        jobs.append(job)

    def url():
        return f"/w/{workspace.pk}/jobs/compare/?" + "&".join(f"ids={job.pk}" for job in jobs)

    assert_queries_flat(signed_in, url, numbered(add))


def test_experiment_page_lists_experiments_in_fixed_queries(signed_in, workspace, cluster, owner):
    def add(n):
        experiment = make_experiment(workspace, owner, n)
        make_job(workspace, cluster, owner, 100 + n, experiment=experiment)

    assert_queries_flat(signed_in, f"/w/{workspace.pk}/experiments/", numbered(add), shown=rows_shown_from(1))


def test_experiment_page_lists_runs_with_chosen_columns_in_fixed_queries(signed_in, workspace, cluster, owner):
    experiment = make_experiment(workspace, owner, 0)

    def add(n):
        run = make_job(workspace, cluster, owner, n, experiment=experiment)
        make_metric(run, 0)  # every run logs the metric qcrow-0 ...
        JobParam.objects.create(job=run, key="lr η", value=str(n))  # ... and the parameter "lr η"

    query = "?cols=1&metrics=qcrow-0&params=lr+%CE%B7&sort=-metrics.qcrow-0"
    assert_queries_flat(signed_in, f"/w/{workspace.pk}/experiments/{experiment.pk}/{query}", numbered(add))


def test_experiment_compare_page_in_fixed_queries(signed_in, workspace, cluster, owner):
    experiment = make_experiment(workspace, owner, 0)
    runs = []

    def add(n):
        run = make_job(workspace, cluster, owner, n, experiment=experiment)
        make_metric(run, n)
        JobParam.objects.create(job=run, key=f"p {marker(n)}", value="1")
        runs.append(run)

    def url():
        ids = "&".join(f"ids={run.pk}" for run in runs)
        return f"/w/{workspace.pk}/experiments/{experiment.pk}/compare/?{ids}"

    assert_queries_flat(signed_in, url, numbered(add))


def test_job_log_in_fixed_queries(signed_in, workspace, job):
    add = numbered(lambda n: make_log_line(job, n))
    assert_queries_flat(signed_in, f"/w/{workspace.pk}/jobs/{job.pk}/log/", add)


@pytest.mark.parametrize("kind", ["train", "batch_score"])
def test_job_submit_page_lists_its_choices_in_fixed_queries(signed_in, workspace, owner, job, kind):
    """The data versions, models and targets a job can use, in the form's pickers."""

    def add(n):
        asset = make_asset(workspace, owner, n)
        make_model(workspace, owner, n, job=job, data_version=asset.versions.get())
        make_target(workspace, owner, n)

    assert_queries_flat(signed_in, f"/w/{workspace.pk}/jobs/new/?kind={kind}", numbered(add))


def test_automl_wizard_lists_its_choices_in_fixed_queries(signed_in, workspace, owner):
    def add(n):
        make_asset(workspace, owner, n)
        make_target(workspace, owner, n)

    assert_queries_flat(signed_in, f"/w/{workspace.pk}/jobs/automl/new/", numbered(add))


def test_data_page_lists_assets_and_uploads_in_fixed_queries(signed_in, workspace, owner, job):
    # The page shows the 8 newest uploads, each of its own asset.
    add = numbered(lambda n: make_ingest(workspace, owner, job, n))
    assert_queries_flat(signed_in, f"/w/{workspace.pk}/data/", add, many=8)


def test_upload_page_lists_asset_names_in_fixed_queries(signed_in, workspace, owner):
    add = numbered(lambda n: make_asset(workspace, owner, n))
    assert_queries_flat(signed_in, f"/w/{workspace.pk}/data/upload/", add)


def test_data_asset_page_lists_versions_in_fixed_queries(signed_in, workspace, owner):
    asset = make_asset(workspace, owner, 0)
    add = numbered(lambda n: make_data_version(asset, owner, n + 1))
    assert_queries_flat(signed_in, f"/w/{workspace.pk}/data/{asset.pk}/", add, shown=rows_shown_from(2))


def test_model_page_lists_models_in_fixed_queries(signed_in, workspace, owner, job, data_version):
    add = numbered(lambda n: make_model(workspace, owner, n, job=job, data_version=data_version))
    assert_queries_flat(signed_in, f"/w/{workspace.pk}/models/?q=qcrow", add)


def test_model_page_lists_versions_in_fixed_queries(signed_in, workspace, owner, job, data_version):
    model = make_model(workspace, owner, 0, job=job, data_version=data_version)
    add = numbered(lambda n: make_model_version(model, owner, n + 1, job=job, data_version=data_version))
    assert_queries_flat(signed_in, f"/w/{workspace.pk}/models/{model.pk}/", add, shown=None)


def test_endpoint_page_lists_endpoints_in_fixed_queries(signed_in, workspace, owner, model_version, inference):
    add = numbered(lambda n: make_endpoint(workspace, owner, model_version, inference, n))
    assert_queries_flat(signed_in, f"/w/{workspace.pk}/endpoints/", add)


def test_endpoint_alerts_page_in_fixed_queries(signed_in, workspace, owner, model_version, inference):
    add = numbered(lambda n: make_endpoint(workspace, owner, model_version, inference, n))
    assert_queries_flat(signed_in, f"/w/{workspace.pk}/endpoints/alerts/", add, shown=None)


def test_endpoint_page_lists_deployments_in_fixed_queries(signed_in, workspace, owner, model_version, inference):
    endpoint = make_endpoint(workspace, owner, model_version, inference, 0)
    add = numbered(lambda n: make_deployment(endpoint, owner, model_version, inference, marker(n)))
    assert_queries_flat(signed_in, f"/w/{workspace.pk}/endpoints/{endpoint.pk}/", add)


def test_endpoint_page_lists_model_versions_to_deploy_in_fixed_queries(
    signed_in, workspace, owner, model_version, inference, job, data_version
):
    endpoint = make_endpoint(workspace, owner, model_version, inference, 0)
    add = numbered(lambda n: make_model(workspace, owner, n, job=job, data_version=data_version))
    assert_queries_flat(signed_in, f"/w/{workspace.pk}/endpoints/{endpoint.pk}/?tab=details", add)


def test_endpoint_monitoring_tab_in_fixed_queries(signed_in, workspace, owner, model_version, inference):
    endpoint = make_endpoint(workspace, owner, model_version, inference, 0)

    def add(n):
        deployment = make_deployment(endpoint, owner, model_version, inference, marker(n))
        make_bucket(deployment)

    url = f"/w/{workspace.pk}/endpoints/{endpoint.pk}/?tab=monitoring"
    assert_queries_flat(signed_in, url, numbered(add))


def test_token_page_lists_tokens_in_fixed_queries(signed_in, owner):
    assert_queries_flat(signed_in, "/account/tokens/", numbered(lambda n: make_token(owner, n)))


def test_endpoint_health_read_for_a_list_is_each_endpoints_own(workspace, owner, model_version, inference):
    """The list's one query gives each endpoint the health its own page computes."""
    failing, healthy = (make_endpoint(workspace, owner, model_version, inference, n) for n in (1, 2))
    minute = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=2)
    for endpoint, errors in ((failing, 20), (healthy, 0)):
        for ago in (0, 90, 60 * 20):  # this hour, this day, and a bucket older than a day
            MonitoringBucket.objects.create(
                endpoint=endpoint,
                deployment=endpoint.deployments.get(),
                deployment_name="blue",
                minute=minute - timedelta(minutes=ago),
                requests=100,
                errors_5xx=errors,
                latency_histogram=[60, 30, 10],
            )
    idle = make_endpoint(workspace, owner, model_version, inference, 3)
    idle.buckets.all().delete()
    now = timezone.now()
    endpoints = list(selectors.endpoint_list(workspace=workspace))

    together = selectors.endpoints_health(endpoints=endpoints, now=now)

    assert together == [selectors.endpoint_health(endpoint=e, now=now) for e in endpoints]
    assert [(h.endpoint, h.status, h.requests) for h in together] == [
        (failing, "alerted", 110),  # the last hour: 10 + 100 requests
        (healthy, "ok", 110),
        (idle, "idle", 0),
    ]
    assert [a["endpoint"] for a in selectors.alerts_for_workspace(workspace=workspace)] == [failing]


@pytest.mark.parametrize(
    "model",
    [m for m in admin.site._registry if m._meta.app_label in PROJECT_APPS or m is get_user_model()],
    ids=lambda m: m.__name__,
)
def test_admin_changelist_in_fixed_queries(client, make_user, model):
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
    few, many = assert_queries_flat(client, url, numbered(lambda n: make_world(make_user, n)), shown=None)
    assert _rows(many) > _rows(few) > 0, "the changelist does not list the rows"


def _rows(response) -> int:
    return response.content.decode().count("<tr")
