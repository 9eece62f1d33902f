"""A compute instance is one user's (as in Azure): changed only by its owner, deleted by its owner
or a workspace Owner, started and stopped by its owner or a workspace Owner (R4)."""

import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404

from compute import services
from compute.models import ComputeTarget, TargetKind
from workspaces.models import Membership, Role

pytestmark = pytest.mark.django_db

# Who acts on bob's instance -> what they may do. "dave" is a second Contributor.
EXPECTED = {
    "contributor": {"change": "ok", "delete": "ok", "use": "ok"},  # bob, its owner
    "owner": {"change": "forbidden", "delete": "ok", "use": "ok"},  # alice, a workspace Owner
    "dave": {"change": "forbidden", "delete": "forbidden", "use": "forbidden"},
    "reader": {"change": "forbidden", "delete": "forbidden", "use": "forbidden"},
    "outsider": {"change": "not_found", "delete": "not_found", "use": "not_found"},
}
CASES = [(who, action, outcome) for who, actions in EXPECTED.items() for action, outcome in actions.items()]


@pytest.fixture
def people(persona, make_user, workspace, owner):
    dave = make_user("dave")
    Membership.objects.create(workspace=workspace, user=dave, role=Role.CONTRIBUTOR, added_by=owner)
    return persona | {"dave": dave}


@pytest.fixture
def bobs(contributor, workspace):
    return services.target_create(actor=contributor, workspace=workspace, kind=TargetKind.INSTANCE, name="bobs").target


def act(action, actor, target):
    if action == "change":
        services.target_update(actor=actor, target=target, description="mine now", idle_shutdown_minutes=5)
    elif action == "delete":
        services.target_delete(actor=actor, target=target)
    else:
        services.instance_stop(actor=actor, target=target)


@pytest.mark.parametrize(("who", "action", "outcome"), CASES)
def test_who_may_change_delete_and_use_another_users_instance(people, bobs, who, action, outcome):
    if outcome == "ok":
        act(action, people[who], bobs)
        return
    with pytest.raises(PermissionDenied if outcome == "forbidden" else Http404):
        act(action, people[who], bobs)
    bobs.refresh_from_db()
    assert bobs.description == "" and bobs.idle_shutdown_minutes is None and bobs.instance_running


def test_a_contributor_still_changes_and_deletes_the_workspaces_clusters(contributor, owner, workspace):
    shared = services.target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="shared").target
    services.target_update(actor=contributor, target=shared, max_nodes=1)
    services.target_delete(actor=contributor, target=shared)
    assert not ComputeTarget.objects.filter(pk=shared.pk).exists()


STATUS = {"ok": (200, 204), "forbidden": (403,), "not_found": (404,)}


@pytest.mark.parametrize(("who", "action", "outcome"), CASES)
def test_the_api_answers_403_or_404_by_the_same_rules(api, people, bobs, workspace, who, action, outcome):
    client = api(people[who])
    url = f"/api/v1/workspaces/{workspace.pk}/compute/{bobs.pk}/"
    if action == "change":
        response = client.patch(url, {"description": "mine now"}, format="json")
    elif action == "delete":
        response = client.delete(url)
    else:
        response = client.post(url + "stop/")
    assert response.status_code in STATUS[outcome], response.content
    if outcome != "ok":
        assert response.json()["error"]["code"] in ("permission_denied", "not_found")
        bobs.refresh_from_db()
        assert bobs.description == "" and bobs.instance_running


@pytest.mark.parametrize("who", ["contributor", "owner", "dave"])
def test_the_instance_page_shows_only_the_buttons_the_user_may_press(client, people, bobs, workspace, who):
    client.force_login(people[who])
    base = f"/w/{workspace.pk}/compute/{bobs.pk}/"
    page = client.get(base).content.decode()
    expected = EXPECTED[who]
    assert (f'href="{base}edit/"' in page) is (expected["change"] == "ok")
    assert (f'href="{base}delete/"' in page) is (expected["delete"] == "ok")
    assert (f'action="{base}stop/"' in page) is (expected["use"] == "ok")
    assert client.get(base + "edit/").status_code == (200 if expected["change"] == "ok" else 403)
    assert client.get(base + "delete/").status_code == (200 if expected["delete"] == "ok" else 403)
    if expected["change"] != "ok":
        assert client.post(base + "edit/", {"description": "mine now"}).status_code == 403
    if expected["delete"] != "ok":
        assert client.post(base + "delete/").status_code == 403
        assert ComputeTarget.objects.filter(pk=bobs.pk).exists()
