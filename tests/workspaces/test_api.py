import pytest

from workspaces.models import Membership, Role, Workspace

pytestmark = pytest.mark.django_db


def error_of(response):
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "fields"}, body
    return body["error"]


def test_list_shows_only_my_workspaces_with_my_role(api, reader, workspace, other_workspace):
    response = api(reader).get("/api/v1/workspaces/")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 1
    assert body["results"][0]["name"] == "Team"
    assert body["results"][0]["role"] == "reader"
    assert body["results"][0]["member_count"] == 3


def test_list_is_paginated(api, owner):
    from workspaces.services import workspace_create

    for i in range(7):
        workspace_create(actor=owner, name=f"ws {i}")
    body = api(owner).get("/api/v1/workspaces/?page_size=3&page=2").json()
    assert body["count"] == 7 and len(body["results"]) == 3 and body["next"] and body["previous"]


def test_create_makes_me_owner(api, contributor):
    response = api(contributor).post("/api/v1/workspaces/", {"name": "Churn", "description": "Q4"}, format="json")
    assert response.status_code == 201, response.content
    ws = Workspace.objects.get(pk=response.json()["id"])
    assert ws.memberships.get().role == Role.OWNER
    assert response.json()["role"] == "owner"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": 12345678901234 * 10**100}, "name"),
        ({"name": ["a"]}, "name"),
        ({"name": "ok", "description": "x" * 2001}, "description"),
    ],
)
def test_bad_input_gets_the_error_shape_naming_the_field(api, owner, payload, field):
    response = api(owner).post("/api/v1/workspaces/", payload, format="json")
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid"
    assert field in error["fields"]
    assert not Workspace.objects.exists()


def test_malformed_json_is_a_400_with_the_error_shape(api, owner):
    response = api(owner).generic("POST", "/api/v1/workspaces/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert error_of(response)["code"] == "parse_error"


def test_anonymous_gets_401_with_the_error_shape(api):
    response = api().get("/api/v1/workspaces/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert error_of(response)["code"] == "not_authenticated"


def test_owner_renames_through_the_api(api, owner, workspace):
    response = api(owner).patch(f"/api/v1/workspaces/{workspace.pk}/", {"name": "Renamed"}, format="json")
    assert response.status_code == 200
    workspace.refresh_from_db()
    assert workspace.name == "Renamed"


def test_contributor_gets_403_renaming_and_nothing_changes(api, contributor, workspace):
    response = api(contributor).patch(f"/api/v1/workspaces/{workspace.pk}/", {"name": "Nope"}, format="json")
    assert response.status_code == 403
    assert error_of(response)["code"] == "permission_denied"
    assert "Contributor" in error_of(response)["message"]
    workspace.refresh_from_db()
    assert workspace.name == "Team"


def test_members_add_change_remove(api, owner, outsider, workspace):
    client = api(owner)
    added = client.post(
        f"/api/v1/workspaces/{workspace.pk}/members/", {"username": "mallory", "role": "reader"}, format="json"
    )
    assert added.status_code == 201, added.content
    member_id = added.json()["id"]
    changed = client.patch(
        f"/api/v1/workspaces/{workspace.pk}/members/{member_id}/", {"role": "contributor"}, format="json"
    )
    assert changed.status_code == 200 and changed.json()["role"] == "contributor"
    assert client.delete(f"/api/v1/workspaces/{workspace.pk}/members/{member_id}/").status_code == 204
    assert not Membership.objects.filter(workspace=workspace, user=outsider).exists()


def test_demoting_the_last_owner_is_a_409_conflict_naming_role(api, owner, workspace):
    mine = Membership.objects.get(workspace=workspace, user=owner)
    response = api(owner).patch(
        f"/api/v1/workspaces/{workspace.pk}/members/{mine.pk}/", {"role": "reader"}, format="json"
    )
    assert response.status_code == 409
    assert error_of(response)["code"] == "conflict"
    assert "role" in error_of(response)["fields"]


def test_reader_can_leave_through_the_api(api, reader, workspace):
    mine = Membership.objects.get(workspace=workspace, user=reader)
    assert api(reader).delete(f"/api/v1/workspaces/{workspace.pk}/members/{mine.pk}/").status_code == 204
    assert api(reader).get(f"/api/v1/workspaces/{workspace.pk}/").status_code == 404


def test_a_member_id_from_another_workspace_is_404(api, owner, workspace, other_workspace):
    foreign = Membership.objects.get(workspace=other_workspace)
    response = api(owner).patch(
        f"/api/v1/workspaces/{workspace.pk}/members/{foreign.pk}/", {"role": "reader"}, format="json"
    )
    assert response.status_code == 404
    foreign.refresh_from_db()
    assert foreign.role == Role.OWNER


def test_activity_feed(api, owner, workspace):
    body = api(owner).get(f"/api/v1/workspaces/{workspace.pk}/activity/").json()
    assert body["results"][0]["verb"] == "created"
