"""Every workspace-scoped API route: a non-member gets 404 and a Reader gets 403 on writes.

Routes are found by walking the URLconf, so a route added later is covered (or this test fails
until `sample_ids` knows how to fill its parameters).
"""

import pytest

from compute.jobs.diagnostic import DIAGNOSTIC
from tests.routes import all_routes
from workspaces.models import Membership

pytestmark = pytest.mark.django_db

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def sample_ids(workspace) -> dict:
    """Real ids of objects inside `workspace`, one per URL parameter name."""
    from compute.jobs.models import Artifact
    from compute.jobs.services import job_submit
    from compute.models import TargetKind
    from compute.services import target_create

    owner = workspace.memberships.get(user__username="alice").user
    target = target_create(actor=owner, workspace=workspace, kind=TargetKind.INSTANCE, name="mine").target
    job = job_submit(actor=owner, workspace=workspace, kind=DIAGNOSTIC, target=target, spec={})
    artifact = Artifact.objects.create(job=job, name="report.json", size=2, sha256="0" * 64)
    from data.models import DataAsset, Datastore, DataVersion, Ingest

    asset = DataAsset.objects.create(workspace=workspace, name="table")
    datastore = Datastore.objects.create(workspace=workspace, name="warehouse", sealed_secret="sealed", display="db")
    version = DataVersion.objects.create(asset=asset, version=1, schema={"version": 1, "columns": []})
    ingest = Ingest.objects.create(workspace=workspace, asset_name="table")
    from endpoints.models import Deployment, Endpoint
    from training.models import ModelVersion, RegisteredModel

    model = RegisteredModel.objects.create(workspace=workspace, name="churn")
    model_version = ModelVersion.objects.create(model=model, version=1, sha256="0" * 64)
    inference = target_create(actor=owner, workspace=workspace, kind=TargetKind.INFERENCE, name="serving").target
    endpoint = Endpoint.objects.create(workspace=workspace, name=f"iso-{workspace.pk}")
    deployment = Deployment.objects.create(
        endpoint=endpoint, name="blue", model_version=model_version, target=inference
    )
    from environments.services import environment_create

    environment = environment_create(
        actor=owner, workspace=workspace, name="tools", base="python", requirements="six"
    ).environment

    from commands.models import CodeSnapshot

    snapshot = CodeSnapshot.objects.create(workspace=workspace, sha256="0" * 64, name="code")
    from training.models import Experiment

    experiment = Experiment.objects.create(workspace=workspace, name="trials of ü")
    from labs.services import schedule_create

    schedule = schedule_create(
        actor=owner, target=target, action="stop", time_of_day="18:00", weekdays="01234", time_zone="UTC"
    )
    return {
        "schedule_id": schedule.pk,
        "workspace_id": workspace.pk,
        "snapshot_id": snapshot.pk,
        "output": "model",
        "member_id": Membership.objects.get(workspace=workspace, user__username="alice").pk,
        "target_id": target.pk,
        "job_id": job.pk,
        "artifact_id": artifact.pk,
        "asset_id": asset.pk,
        "version": version.version,
        "ingest_id": ingest.pk,
        "datastore_id": datastore.pk,
        "model_id": model.pk,
        "endpoint_id": endpoint.pk,
        "deployment_id": deployment.pk,
        "environment_id": environment.pk,  # its version 1 is "version" too
        "experiment_id": experiment.pk,
    }


def workspace_routes():
    return [r for r in all_routes() if r.pattern.startswith("api/") and "workspace_id" in r.params]


def test_the_api_has_workspace_scoped_routes():
    assert len(workspace_routes()) >= 4


def test_every_workspace_route_hides_the_workspace_from_non_members(api, outsider, reader, workspace):
    client = api(outsider)
    ids = sample_ids(workspace)
    checked = 0
    for route in workspace_routes():
        missing = set(route.params) - set(ids)
        assert not missing, f"sample_ids() cannot fill {missing} for {route.pattern}"
        for method in route.methods():
            response = client.generic(method, route.url(ids), "{}", content_type="application/json")
            assert response.status_code == 404, (method, route.pattern, response.status_code)
            assert response.json()["error"]["code"] == "not_found"
            checked += 1
    assert checked >= 8


def test_every_workspace_route_refuses_writes_to_a_reader(api, reader, workspace):
    client = api(reader)
    ids = sample_ids(workspace)
    for route in workspace_routes():
        for method in set(route.methods()) & WRITE_METHODS:
            response = client.generic(method, route.url(ids), "{}", content_type="application/json")
            assert response.status_code == 403, (method, route.pattern, response.status_code)
    assert Membership.objects.filter(workspace=workspace).count() == 3
    from compute.jobs.models import Job, JobStatus
    from compute.models import ComputeTarget

    assert ComputeTarget.objects.filter(workspace=workspace).count() == 2
    assert Job.objects.get(workspace=workspace).status == JobStatus.QUEUED
