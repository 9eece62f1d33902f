"""Submitting a command job through the API: every mistake is a 400 naming it, every id is the
workspace's own (404 otherwise), secrets are never echoed, and the routes are in the schema."""

import json

import pytest
from django.core.exceptions import ValidationError

from commands.models import CodeSnapshot
from compute.jobs.models import Job, JobStatus
from compute.jobs.services import job_submit
from compute.models import TargetKind
from compute.services import target_create
from environments.services import environment_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def cluster(owner, workspace):
    return target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu").target


@pytest.fixture
def snapshot(workspace):
    return CodeSnapshot.objects.create(workspace=workspace, sha256="a" * 64, name="my code", file_count=1)


@pytest.fixture
def env_version(owner, workspace):
    return environment_create(actor=owner, workspace=workspace, name="plain", base="python", requirements="")


@pytest.fixture
def spec(snapshot, env_version, penguins):
    return {
        "code_snapshot_id": snapshot.pk,
        "command": "python train.py --data ${{inputs.train}} --lr ${{inputs.lr}} --out ${{outputs.model}}",
        "environment_version_id": env_version.pk,
        "inputs": {"train": {"type": "data", "data_version_id": penguins.pk}, "lr": 0.1},
        "outputs": {"model": {"type": "model"}},
        "env": {"MODE": "fast", "REPORT": "${{outputs.model}}/report.txt"},
        "secret_env": {"API_KEY": "s3cr3t-value"},
    }


def submit(api, user, workspace, cluster, spec):
    return api(user).post(
        f"/api/v1/workspaces/{workspace.pk}/jobs/",
        {"kind": "command", "target": cluster.pk, "spec": spec},
        format="json",
    )


def test_a_command_job_is_queued_with_its_inputs_and_its_secret_sealed(api, owner, workspace, cluster, spec, penguins):
    response = submit(api, owner, workspace, cluster, spec)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["kind"] == "command" and body["status"] == JobStatus.QUEUED
    assert body["spec"]["secret_env"] == {"API_KEY": "***"}
    assert body["spec"]["inputs"] == {
        "train": {"type": "data", "data_version_id": penguins.pk},
        "lr": {"type": "number", "value": 0.1},
    }
    job = Job.objects.get(pk=body["id"])
    assert job.data_version == penguins
    stored = job.spec["secret_env"]["API_KEY"]
    assert "s3cr3t" not in stored and stored != "***"  # sealed at rest, not masked: the node opens it
    detail = api(owner).get(f"/api/v1/workspaces/{workspace.pk}/jobs/{job.pk}/")
    assert "s3cr3t" not in detail.content.decode()


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"command": "python x.py ${{inputs.nope}}"}, "command", "${{inputs.nope}}"),
        ({"command": "python x.py ${{outputs.missing}}"}, "command", "${{outputs.missing}}"),
        ({"command": "python x.py ${{input.train}}"}, "command", "not a placeholder"),
        ({"command": "python x.py ${{inputs.train"}, "command", "not closed"),
        ({"command": ""}, "command", "command"),
        ({"command": "x" * 10_001}, "command", "10,000"),
        ({"code_snapshot_id": None}, "code_snapshot_id", "Upload the code"),
        ({"environment_version_id": "1"}, "environment_version_id", "environment"),
        ({"inputs": {"1bad name": 3}}, "inputs", "1bad name"),
        ({"inputs": {"lr": {"type": "number", "value": float("nan")}}}, "inputs", "finite"),
        ({"inputs": {"lr": {"type": "integer", "value": 1.5}}}, "inputs", "whole"),
        ({"inputs": {"lr": {"type": "boolean", "value": "yes"}}}, "inputs", "true or false"),
        ({"inputs": {"lr": {"type": "tensor", "value": 1}}}, "inputs", "type"),
        ({"outputs": {"model": "pickle"}}, "outputs", "folder or model"),
        ({"env": {"STUDIO_TOKEN": "x"}}, "env", "STUDIO_"),
        ({"env": {"A": 1}}, "env", "text"),
        ({"env": {"A": "${{inputs.nope}}"}}, "env", "${{inputs.nope}}"),
        ({"secret_env": {"MODE": "x"}}, "secret_env", "both"),
        ({"network": "yes"}, "network", "true or false"),
    ],
)
def test_a_bad_spec_is_a_400_that_names_the_field_and_the_problem(
    api, owner, workspace, cluster, spec, change, field, words
):
    payload = {**spec, **change}
    if "nan" in str(change):  # JSON has no NaN: send it as the service gets it
        with pytest.raises(ValidationError) as refused:
            job_submit(actor=owner, workspace=workspace, kind="command", target=cluster, spec=payload)
        assert words in str(refused.value)
        return
    response = submit(api, owner, workspace, cluster, payload)
    assert response.status_code == 400, response.content
    assert words in response.content.decode(), response.content
    assert field in response.content.decode()
    assert not Job.objects.exists()


def test_another_workspaces_code_environment_or_data_is_not_found(
    api, owner, outsider, workspace, other_workspace, cluster, spec, tmp_path
):
    theirs_code = CodeSnapshot.objects.create(workspace=other_workspace, sha256="b" * 64, name="theirs")
    theirs_env = environment_create(
        actor=outsider, workspace=other_workspace, name="theirs", base="python", requirements=""
    )
    for change in (
        {"code_snapshot_id": theirs_code.pk},
        {"environment_version_id": theirs_env.pk},
        {"inputs": {"train": {"type": "data", "data_version_id": 10**12}}},
    ):
        response = submit(api, owner, workspace, cluster, {**spec, **change})
        assert response.status_code == 404, (change, response.content)
    assert not Job.objects.exists()


def test_a_reader_cannot_submit_and_a_stranger_cannot_see_the_workspace(
    api, reader, outsider, workspace, cluster, spec
):
    assert submit(api, reader, workspace, cluster, spec).status_code == 403
    assert submit(api, outsider, workspace, cluster, spec).status_code == 404


def test_registering_needs_a_completed_command_job_and_a_model_output(api, owner, workspace, cluster, spec):
    job = Job.objects.get(pk=submit(api, owner, workspace, cluster, spec).json()["id"])
    url = f"/api/v1/workspaces/{workspace.pk}/jobs/{job.pk}/outputs/model/register/"
    response = api(owner).post(url, {"name": "m"}, format="json")
    assert response.status_code == 400 and "only completed jobs" in response.content.decode()
    Job.objects.filter(pk=job.pk).update(status=JobStatus.COMPLETED)
    response = api(owner).post(url.replace("/model/", "/other/"), {"name": "m"}, format="json")
    assert response.status_code == 400 and "no model output named 'other'" in response.content.decode()
    response = api(owner).post(url, {"name": "m"}, format="json")
    assert response.status_code == 400 and "holds no model file" in response.content.decode()


def test_the_command_routes_are_in_the_schema(api, owner):
    response = api(owner).get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    schema = json.loads(response.content)
    paths = schema["paths"]
    assert "/api/v1/workspaces/{workspace_id}/jobs/{job_id}/outputs/{output}/register/" in paths
    assert "/api/v1/workspaces/{workspace_id}/code/" in paths
    assert "/api/v1/workspaces/{workspace_id}/environments/" in paths
    assert "/api/v1/run/metrics/" in paths
    assert "command" in schema["components"]["schemas"]["JobInKindEnum"]["enum"]
