"""A token limited to one workspace (a lab's notebooks get one) reaches that workspace only: every
other workspace of its user is not found, through the API and MLflow alike, and it cannot make
workspaces or tokens."""

import pytest
from django.core.exceptions import PermissionDenied
from rest_framework.test import APIClient

from studio.credentials import credential_limit
from studio.services import token_create
from training.models import Experiment
from workspaces.models import Membership, Role
from workspaces.services import workspace_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def second_workspace(owner):
    """Another workspace alice owns: her personal token reaches it, her lab's token must not."""
    return workspace_create(actor=owner, name="Alice's other team ✓")


def client_with(plaintext: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    return client


@pytest.fixture
def lab_client(owner, workspace):
    return client_with(token_create(user=owner, name="lab of alice box", workspace=workspace).plaintext)


def test_a_workspace_token_works_in_its_own_workspace(lab_client, workspace):
    assert lab_client.get(f"/api/v1/workspaces/{workspace.pk}/").status_code == 200
    assert lab_client.get(f"/api/v1/workspaces/{workspace.pk}/data-assets/").status_code == 200
    search = lab_client.post(f"/w/{workspace.pk}/mlflow/api/2.0/mlflow/experiments/search", {}, format="json")
    assert search.status_code == 200, search.content


def test_a_workspace_token_finds_no_other_workspace_of_its_user(owner, lab_client, second_workspace):
    personal = client_with(token_create(user=owner, name="laptop").plaintext)
    assert personal.get(f"/api/v1/workspaces/{second_workspace.pk}/").status_code == 200
    assert lab_client.get(f"/api/v1/workspaces/{second_workspace.pk}/").status_code == 404
    assert lab_client.get(f"/api/v1/workspaces/{second_workspace.pk}/data-assets/").status_code == 404
    search = lab_client.post(f"/w/{second_workspace.pk}/mlflow/api/2.0/mlflow/experiments/search", {}, format="json")
    assert search.status_code == 404 and search.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    create = lab_client.post(
        f"/w/{second_workspace.pk}/mlflow/api/2.0/mlflow/experiments/create", {"name": "sneaky"}, format="json"
    )
    assert create.status_code == 404
    assert not Experiment.objects.filter(workspace=second_workspace).exists()


def test_a_workspace_token_lists_only_its_workspace(lab_client, workspace, second_workspace):
    listed = lab_client.get("/api/v1/workspaces/").json()
    names = [item["name"] for item in listed.get("results", listed)]
    assert names == [workspace.name]


def test_a_workspace_token_cannot_make_workspaces_or_tokens(owner, lab_client):
    made = lab_client.post("/api/v1/workspaces/", {"name": "escape hatch"}, format="json")
    assert made.status_code == 403
    token = lab_client.post("/api/v1/tokens/", {"name": "a wider one"}, format="json")
    assert token.status_code == 403
    assert owner.api_tokens.count() == 1
    assert not Membership.objects.filter(workspace__name="escape hatch").exists()
    listed = lab_client.get("/api/v1/tokens/").json()
    assert listed.get("results", listed) == []


def test_a_workspace_token_keeps_its_users_role_there(contributor, workspace, reader):
    reader_lab = client_with(token_create(user=reader, name="reader lab", workspace=workspace).plaintext)
    made = reader_lab.post(f"/w/{workspace.pk}/mlflow/api/2.0/mlflow/experiments/create", {"name": "x"}, format="json")
    assert made.status_code == 403


def test_the_services_refuse_a_limited_actor(owner, workspace):
    credential_limit(owner, workspace.pk)
    with pytest.raises(PermissionDenied):
        workspace_create(actor=owner, name="nope")
    with pytest.raises(PermissionDenied):
        token_create(user=owner, name="nope")
    assert Membership.objects.filter(user=owner, role=Role.OWNER).count() == 1


def test_an_owners_workspace_token_does_a_contributors_work_only(owner, lab_client, workspace, outsider):
    """Code in a notebook must not add members or make credentials that outlive its token."""
    added = lab_client.post(
        f"/api/v1/workspaces/{workspace.pk}/members/", {"username": outsider.username, "role": "owner"}, format="json"
    )
    assert added.status_code == 403, added.content
    assert not Membership.objects.filter(workspace=workspace, user=outsider).exists()
    assert lab_client.get(f"/api/v1/workspaces/{workspace.pk}/data-assets/").status_code == 200
