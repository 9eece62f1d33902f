"""Query-count guards for lists: a list page or list API costs the same number of queries whether
it shows a few rows or many (no query per row, the N+1 that only shows once a workspace is busy).

Each guard renders a list with FEW rows, adds rows up to MANY, renders it again and compares the
two counts. Rows are made with the ORM (fast, no worker); every row's name holds a marker
(`qcrow-<n>`, n from 1) so a guard also checks the list really shows the rows it counted.

The model imports are here, in one place, for the guards of both the pages and the API.
"""

import itertools
import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from commands.models import CodeSnapshot
from compute.jobs.diagnostic import DIAGNOSTIC
from compute.jobs.metrics import metrics_save
from compute.jobs.models import Artifact, Job, JobEvent, JobLogLine, JobParam, JobStatus, JobToken, Metric
from compute.models import ComputeQuota, ComputeTarget, Node, NodeSession, NodeStatus, ServingSession, TargetKind
from data.models import DataAsset, Datastore, DataVersion, Ingest, IngestStatus, UploadSlot
from endpoints.models import Deployment, Endpoint, MonitoringBucket
from environments.models import BuildState, Environment, EnvironmentBuild, EnvironmentVersion
from labs.models import InstanceLab, InstanceSchedule, LabState
from studio.models import ApiToken, SignInLink, SignInLinkPurpose, WorkerCheck
from tracking.models import ExperimentTag, RunTag
from training.models import Experiment, ModelAlias, ModelVersion, RegisteredModel, TrainingJobKind
from workspaces.models import Activity, Membership, Role, Workspace

FEW, MANY = 2, 9
_MARKER = re.compile(r"qcrow-(\d+)")


def marker(n: int) -> str:
    return f"qcrow-{n}"


def rows_shown_from(first: int):
    """shown(response): how many distinct rows an answer shows, by their markers from `first` on."""

    def shown(response) -> int:
        return len({n for n in _MARKER.findall(response.content.decode()) if int(n) >= first})

    return shown


# Rows that fixtures make (a job's cluster, data, model) are numbered 0, and not counted.
rows_shown = rows_shown_from(1)


def api_count(response) -> int:
    return response.json()["count"]


def numbered(make: Callable[[int], object]) -> Callable[[int], None]:
    """add(n): make n more rows, numbered on from the previous call (1, 2, ... across calls)."""
    counter = itertools.count(1)

    def add(n: int) -> None:
        for _ in range(n):
            make(next(counter))

    return add


def _get(client, url):
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response, [q["sql"] for q in captured.captured_queries]


def assert_queries_flat(
    client,
    url: str | Callable[[], str],
    add: Callable[[int], None],
    *,
    shown: Callable | None = rows_shown,
    few: int = FEW,
    many: int = MANY,
) -> int:
    """Same number of queries for `url` with `few` rows as with `many` (`add(n)` adds n rows);
    `shown(response)` must count the rows. A callable `url` is asked again once rows are added
    (a page that names its rows in the query string). Returns the two answers."""
    url_now = url if callable(url) else lambda: url
    add(few)
    client.get(url_now())  # the first request fills per-process caches (content types, the session)
    few_response, few_queries = _get(client, url_now())
    add(many - few)
    url = url_now()
    many_response, many_queries = _get(client, url)
    if shown is not None:
        counted = (shown(few_response), shown(many_response))
        assert counted == (few, many), f"{url} shows {counted} rows, not {(few, many)}"
    assert len(many_queries) == len(few_queries), (
        f"{url}: {len(few_queries)} queries for {few} rows, {len(many_queries)} for {many}:\n" + "\n".join(many_queries)
    )
    return few_response, many_response


# --- Rows ---------------------------------------------------------------------------------------
def make_member(workspace, owner, make_user, n: int) -> Membership:
    user = make_user(marker(n))
    return Membership.objects.create(workspace=workspace, user=user, role=Role.READER, added_by=owner)


def make_activity(workspace, actor, n: int) -> Activity:
    return Activity.objects.create(workspace=workspace, actor=actor, verb="test", summary=f"did {marker(n)}")


def make_target(workspace, owner, n: int, kind: str = TargetKind.CLUSTER, name: str = "") -> ComputeTarget:
    return ComputeTarget.objects.create(
        workspace=workspace, name=name or marker(n), kind=kind, owner=owner, created_by=owner, max_nodes=2
    )


def make_node(target, n: int, status: str = NodeStatus.IDLE) -> Node:
    now = timezone.now()
    stopped = status in (NodeStatus.STOPPED, NodeStatus.LOST)
    node = Node.objects.create(
        target=target,
        status=status,
        hostname=marker(n),
        reason=f"reason {marker(n)}",
        started_at=now,
        ready_at=now,
        last_heartbeat_at=now,
        stopped_at=now if stopped else None,
    )
    NodeSession.objects.create(
        node=node,
        target=target,
        workspace=target.workspace,
        started_at=now - timedelta(hours=1),
        ended_at=now if stopped else None,
        price_per_hour=target.price_per_node_hour,
    )
    return node


def make_experiment(workspace, owner, n: int) -> Experiment:
    return Experiment.objects.create(workspace=workspace, name=marker(n), created_by=owner)


def make_job(workspace, target, owner, n: int, **fields) -> Job:
    """A finished job with everything a list joins in: its experiment, node, data version."""
    now = timezone.now()
    defaults = {
        "kind": DIAGNOSTIC,
        "status": JobStatus.COMPLETED,
        "display_name": marker(n),
        "running_at": now,
        "finished_at": now,
        "result": {"accuracy": 0.5},
    }
    return Job.objects.create(workspace=workspace, target=target, submitted_by=owner, **(defaults | fields))


def make_trial(run, n: int) -> Job:
    """A finished Automated ML trial of `run` (a child job)."""
    now = timezone.now()
    return Job.objects.create(
        workspace=run.workspace,
        target=run.target,
        parent=run,
        kind=TrainingJobKind.AUTOML_TRIAL,
        status=JobStatus.COMPLETED,
        display_name=marker(n),
        submitted_by=run.submitted_by,
        node=run.node,
        running_at=now,
        finished_at=now,
        spec={"trial": {"trial_id": n, "algorithm": marker(n), "params": {"n": n}, "origin": "search"}},
        result={"trial_result": {"score": n / 100, "metrics": {"accuracy": n / 100}, "duration_seconds": 1.0}},
    )


def make_event(job, node, n: int) -> JobEvent:
    return JobEvent.objects.create(job=job, status=JobStatus.RUNNING, reason=marker(n), node=node)


def make_artifact(job, n: int) -> Artifact:
    return Artifact.objects.create(job=job, name=f"{marker(n)}.json", kind="report", size=2, sha256="0" * 64)


def make_log_line(job, n: int) -> JobLogLine:
    return JobLogLine.objects.create(job=job, seq=n, at=timezone.now(), text=marker(n))


def make_metric(job, n: int) -> Metric:
    metric = Metric(job=job, name=marker(n), step=0, value=n)
    metrics_save([metric])
    return metric


def make_asset(workspace, owner, n: int) -> DataAsset:
    """A data asset with one version."""
    asset = DataAsset.objects.create(workspace=workspace, name=marker(n), created_by=owner)
    make_data_version(asset, owner, 1)
    return asset


def make_data_version(asset, owner, n: int) -> DataVersion:
    previous = asset.versions.order_by("-version").first()
    return DataVersion.objects.create(
        asset=asset,
        version=n,
        description=marker(n),
        source_name=f"{marker(n)}.csv",
        rows=10 * n,
        columns=3,
        schema={"version": 1, "columns": []},
        derived_from=previous,
        created_by=owner,
    )


def make_ingest(workspace, owner, job, n: int) -> Ingest:
    """A finished upload that made a version of its own asset."""
    asset = make_asset(workspace, owner, n)
    return Ingest.objects.create(
        workspace=workspace,
        asset_name=asset.name,
        source_name=f"{marker(n)}.csv",
        status=IngestStatus.READY,
        job=job,
        version=asset.versions.get(),
        created_by=owner,
        finished_at=timezone.now(),
    )


def make_model(workspace, owner, n: int, job=None, data_version=None) -> RegisteredModel:
    """A registered model with one version, aliased `champion`."""
    model = RegisteredModel.objects.create(workspace=workspace, name=marker(n), created_by=owner)
    version = make_model_version(model, owner, 1, job=job, data_version=data_version)
    ModelAlias.objects.create(model=model, name="champion", version=version)
    return model


def make_model_version(model, owner, n: int, job=None, data_version=None) -> ModelVersion:
    version = ModelVersion.objects.create(
        model=model,
        version=n,
        description=marker(n),
        job=job,
        data_version=data_version,
        algorithm="hist_gradient_boosting",
        target_column="churn",
        metrics={"accuracy": 0.9},
        sha256="0" * 64,
        created_by=owner,
    )
    ModelAlias.objects.create(model=model, name=f"alias-{n}", version=version)
    return version


def make_endpoint(workspace, owner, model_version, inference, n: int) -> Endpoint:
    """An endpoint with one deployment taking all its traffic, and a minute of monitoring."""
    endpoint = Endpoint.objects.create(
        workspace=workspace, name=f"{marker(n)}-ws{workspace.pk}", traffic={"blue": 100}, created_by=owner
    )
    make_bucket(make_deployment(endpoint, owner, model_version, inference, "blue"))
    return endpoint


def make_deployment(endpoint, owner, model_version, inference, name: str) -> Deployment:
    return Deployment.objects.create(
        endpoint=endpoint, name=name, model_version=model_version, target=inference, created_by=owner
    )


def make_bucket(deployment) -> MonitoringBucket:
    """This minute's traffic of a deployment."""
    return MonitoringBucket.objects.create(
        endpoint=deployment.endpoint,
        deployment=deployment,
        deployment_name=deployment.name,
        minute=timezone.now().replace(second=0, microsecond=0),
        requests=10,
        rows=10,
        latency_histogram=[6, 3, 1],
    )


def make_token(user, n: int) -> ApiToken:
    return ApiToken.objects.create(user=user, name=marker(n), prefix=f"qc{n:06d}", secret_hash="0" * 64)


def make_world(make_user, n: int) -> Workspace:
    """One row of every kind the studio keeps, in a workspace and for a user of their own (for
    the admin's lists, which show every workspace's rows)."""
    now = timezone.now()
    user = make_user(marker(n))
    workspace = Workspace.objects.create(name=marker(n), created_by=user)
    Membership.objects.create(workspace=workspace, user=user, role=Role.OWNER, added_by=user)
    make_activity(workspace, user, n)
    ComputeQuota.objects.create(workspace=workspace, max_nodes=4, updated_by=user)
    cluster = make_target(workspace, user, n)
    inference = make_target(workspace, user, n, kind=TargetKind.INFERENCE, name=f"serving-{n}")
    node = make_node(cluster, n)
    data_version = make_asset(workspace, user, n).versions.get()
    experiment = make_experiment(workspace, user, n)
    job = make_job(workspace, cluster, user, n, node=node, data_version=data_version, experiment=experiment)
    make_event(job, node, n)
    make_log_line(job, n)
    make_metric(job, n)
    make_artifact(job, n)
    make_ingest(workspace, user, job, 1000 + n)
    JobToken.objects.create(job=job, key_hash=f"{n:064d}", expires_at=now + timedelta(hours=1))
    JobParam.objects.create(job=job, key=f"lr {marker(n)}", value="0.1")
    RunTag.objects.create(job=job, key=f"team {marker(n)}", value="ünïcode & co")
    ExperimentTag.objects.create(experiment=experiment, key=f"goal {marker(n)}", value="")
    CodeSnapshot.objects.create(workspace=workspace, sha256=f"{n:064d}", name=f"code {marker(n)}", created_by=user)
    environment = Environment.objects.create(workspace=workspace, name=f"env-{n}", created_by=user)
    environment_version = EnvironmentVersion.objects.create(
        environment=environment, version=1, base="python", spec_hash=f"{n:064d}", created_by=user
    )
    EnvironmentBuild.objects.create(version=environment_version, host=f"host-{n}", state=BuildState.READY)
    instance = make_target(workspace, user, n, kind=TargetKind.INSTANCE, name=f"box-{n}")
    InstanceLab.objects.create(
        target=instance, environment_version=environment_version, state=LabState.READY, host=marker(n)
    )
    InstanceSchedule.objects.create(target=instance, action="stop", time_of_day="18:00", time_zone="Europe/Paris")
    model_version = make_model(workspace, user, n, job=job, data_version=data_version).versions.get()
    endpoint = make_endpoint(workspace, user, model_version, inference, n)
    ServingSession.objects.create(
        target=inference,
        workspace=workspace,
        deployment_id=endpoint.deployments.get().pk,
        deployment_name=f"{endpoint.name}/blue",
        replicas=1,
        started_at=now,
        price_per_hour=1,
    )
    make_token(user, n)
    WorkerCheck.objects.create(requested_by=user, completed_at=now, worker=marker(n))
    SignInLink.objects.create(
        user=user,
        purpose=SignInLinkPurpose.INVITATION,
        prefix=f"sl{n:06d}",
        secret_hash="0" * 64,
        created_by=user,
        expires_at=now + timedelta(days=1),
    )
    UploadSlot.objects.create(user=user, number=0, touched_at=now)
    Datastore.objects.create(
        workspace=workspace,
        name=f"warehouse-{n}",
        sealed_secret="sealed",
        display=f"reader@db-{n}:5432/sales",
        created_by=user,
    )
    return workspace


# The rows most guards hang theirs on, shared by the page and the API guards.
@pytest.fixture
def cluster(workspace, owner):
    return make_target(workspace, owner, 0)


@pytest.fixture
def node(cluster):
    return make_node(cluster, 0, status=NodeStatus.BUSY)


@pytest.fixture
def data_version(workspace, owner):
    return make_asset(workspace, owner, 0).versions.get()


@pytest.fixture
def job(workspace, cluster, owner, node, data_version):
    return make_job(workspace, cluster, owner, 0, node=node, data_version=data_version)


@pytest.fixture
def model_version(workspace, owner, job, data_version):
    return make_model(workspace, owner, 0, job=job, data_version=data_version).versions.get()


@pytest.fixture
def inference(workspace, owner):
    return make_target(workspace, owner, 0, kind=TargetKind.INFERENCE, name="serving")
