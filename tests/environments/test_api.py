"""The environments API: create, versions, details with lock and builds, bases, deletion, errors."""

import pytest

from compute.jobs.models import Job
from compute.models import TargetKind
from compute.services import target_create
from environments import services
from environments.models import BuildState, Environment, EnvironmentBuild

pytestmark = pytest.mark.django_db


def _url(workspace, *parts) -> str:
    tail = "".join(f"{part}/" for part in parts)
    return f"/api/v1/workspaces/{workspace.pk}/environments/{tail}"


def test_a_contributor_creates_an_environment_and_reads_it_back(api, contributor, workspace):
    client = api(contributor)
    body = {
        "name": "nlp_tools-2.0",
        "base": "python",
        "requirements": "tabulate==0.9.0\n# comment\n",
        "description": "Ünïcode ✓",
    }
    response = client.post(_url(workspace), body, format="json")
    assert response.status_code == 201, response.json()
    created = response.json()
    assert created["name"] == "nlp_tools-2.0" and created["latest_version"] == 1 and created["latest_base"] == "python"
    assert created["created_by"] == "bob" and created["description"] == "Ünïcode ✓"
    listed = client.get(_url(workspace)).json()
    assert listed["count"] == 1 and listed["results"][0]["id"] == created["id"]
    version = client.get(_url(workspace, created["id"], "versions", 1)).json()
    assert version["id"] == created["latest_version_id"]
    assert version["requirements"] == "tabulate==0.9.0\n# comment" and version["lock"] == "" and version["builds"] == []
    assert len(version["spec_hash"]) == 64


@pytest.mark.parametrize(
    ("body", "field", "text"),
    [
        ({"requirements": "six\n--extra-index-url https://evil.example"}, "requirements", "Line 2"),
        ({"requirements": "git+https://github.com/x/y.git"}, "requirements", "Line 1"),
        ({"requirements": "ok\n../secrets"}, "requirements", "Line 2"),
        ({"base": "ubuntu"}, "base", "not a valid choice"),
        ({"base": 1}, "base", "Not a valid choice"),
        ({"name": "spaces are bad"}, "name", "letters, digits"),
        ({"name": "../../etc"}, "name", "letters, digits"),
        ({"requirements": ["six"]}, "requirements", "Expected a string"),
        ({"name": None}, "name", "null"),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_line(api, owner, workspace, body, field, text):
    response = api(owner).post(_url(workspace), {"name": "env", "base": "python", **body}, format="json")
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert text.lower() in " ".join(error["fields"][field]).lower(), error
    assert not Environment.objects.exists()


def test_a_taken_name_is_409(api, owner, workspace):
    client = api(owner)
    assert client.post(_url(workspace), {"name": "env", "base": "python"}, format="json").status_code == 201
    response = client.post(_url(workspace), {"name": "env", "base": "python"}, format="json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "conflict"


def test_versions_are_made_and_an_identical_spec_answers_200_with_the_latest(api, owner, workspace):
    client = api(owner)
    environment = client.post(_url(workspace), {"name": "env", "base": "python", "requirements": "six"}, format="json")
    env_id = environment.json()["id"]
    made = client.post(
        _url(workspace, env_id, "versions"), {"base": "studio-sklearn", "requirements": "six"}, format="json"
    )
    assert made.status_code == 201 and made.json()["version"] == 2
    same = client.post(
        _url(workspace, env_id, "versions"), {"base": "studio-sklearn", "requirements": "Six\n"}, format="json"
    )
    assert same.status_code == 200 and same.json()["id"] == made.json()["id"]
    listed = client.get(_url(workspace, env_id, "versions")).json()
    assert [v["version"] for v in listed["results"]] == [2, 1]
    bad = client.post(
        _url(workspace, env_id, "versions"),
        {"base": "studio-sklearn", "requirements": "scikit-learn==0.1"},
        format="json",
    )
    assert bad.status_code == 400 and "pins scikit-learn" in bad.json()["error"]["fields"]["requirements"][0]


def test_a_version_shows_its_lock_and_builds(api, owner, reader, workspace):
    version = services.environment_create(actor=owner, workspace=workspace, name="env", base="python", requirements="")
    version.lock = "six==1.17.0\n"
    version.save()
    EnvironmentBuild.objects.create(
        version=version, host="node-ä", state=BuildState.READY, size_bytes=1234, seconds=1.5
    )
    body = api(reader).get(_url(workspace, version.environment_id, "versions", 1)).json()
    assert body["lock"] == "six==1.17.0\n"
    assert body["builds"][0]["host"] == "node-ä" and body["builds"][0]["state"] == "ready"
    assert api(reader).get(_url(workspace, version.environment_id, "versions", 2)).status_code == 404


def test_a_reader_cannot_create_or_delete(api, owner, reader, workspace):
    version = services.environment_create(actor=owner, workspace=workspace, name="env", base="python", requirements="")
    client = api(reader)
    assert client.post(_url(workspace), {"name": "x", "base": "python"}, format="json").status_code == 403
    assert client.delete(_url(workspace, version.environment_id)).status_code == 403
    assert Environment.objects.count() == 1


def test_delete_is_409_while_a_job_names_a_version_then_204(api, owner, workspace):
    version = services.environment_create(actor=owner, workspace=workspace, name="env", base="python", requirements="")
    target = target_create(actor=owner, workspace=workspace, kind=TargetKind.INSTANCE, name="mine").target
    job = Job.objects.create(
        workspace=workspace, kind="command", target=target, spec={"environment_version_id": version.pk}
    )
    client = api(owner)
    response = client.delete(_url(workspace, version.environment_id))
    assert response.status_code == 409 and f"#{job.pk}" in response.json()["error"]["message"]
    job.delete()
    assert client.delete(_url(workspace, version.environment_id)).status_code == 204
    assert client.get(_url(workspace, version.environment_id)).status_code == 404


def test_another_workspaces_environment_is_404(api, owner, workspace, outsider, other_workspace):
    theirs = services.environment_create(
        actor=outsider, workspace=other_workspace, name="env", base="python", requirements=""
    )
    client = api(owner)
    assert client.get(_url(workspace, theirs.environment_id)).status_code == 404
    assert client.get(_url(workspace, theirs.environment_id, "versions", 1)).status_code == 404
    assert (
        client.post(_url(workspace, theirs.environment_id, "versions"), {"base": "python"}, format="json").status_code
        == 404
    )
    assert client.delete(_url(workspace, theirs.environment_id)).status_code == 404
    assert api(outsider).get(_url(workspace)).status_code == 404
    assert Environment.objects.filter(pk=theirs.environment_id).exists()


def test_the_bases_are_listed_with_their_pinned_versions(api, reader):
    import importlib.metadata

    body = api(reader).get("/api/v1/environment-bases/").json()
    by_key = {base["key"]: base for base in body["results"]}
    assert set(by_key) == {"studio-sklearn", "python"}
    packages = {p["name"]: p["version"] for p in by_key["studio-sklearn"]["packages"]}
    assert packages["lightgbm"] == importlib.metadata.version("lightgbm")
    assert by_key["python"]["packages"] == []
    assert api().get("/api/v1/environment-bases/").status_code in (401, 403)


def test_the_routes_are_in_the_openapi_schema(api, reader):
    schema = api(reader).get("/api/schema/", HTTP_ACCEPT="application/json").json()
    paths = schema["paths"]
    assert "/api/v1/environment-bases/" in paths
    assert {"get", "post"} <= set(paths["/api/v1/workspaces/{workspace_id}/environments/"])
    assert "delete" in paths["/api/v1/workspaces/{workspace_id}/environments/{environment_id}/"]
    assert "/api/v1/workspaces/{workspace_id}/environments/{environment_id}/versions/{version}/" in paths


def test_lists_take_a_fixed_number_of_queries(api, owner, workspace, django_assert_max_num_queries):
    for i in range(6):
        version = services.environment_create(
            actor=owner, workspace=workspace, name=f"env-{i}", base="python", requirements=f"pkg{i}"
        )
        services.environment_version_create(
            actor=owner, environment=version.environment, base="python", requirements="six"
        )
        EnvironmentBuild.objects.create(version=version, host=f"node-{i}", state=BuildState.READY)
    client = api(owner)
    client.get(_url(workspace))  # the session and the workspace's membership warm up
    with django_assert_max_num_queries(8):
        assert client.get(_url(workspace)).json()["count"] == 6
    with django_assert_max_num_queries(8):
        assert client.get(_url(workspace, version.environment_id, "versions")).json()["count"] == 2
