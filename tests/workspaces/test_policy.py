"""The one policy table: role x action x workspace object, enforced by services."""

import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404

from workspaces.models import Role
from workspaces.policy import ALLOWED_ACTIONS, Action, require, role_allows

EXPECTED = {
    (Role.OWNER, Action.VIEW): True,
    (Role.OWNER, Action.WRITE): True,
    (Role.OWNER, Action.ADMINISTER): True,
    (Role.CONTRIBUTOR, Action.VIEW): True,
    (Role.CONTRIBUTOR, Action.WRITE): True,
    (Role.CONTRIBUTOR, Action.ADMINISTER): False,
    (Role.READER, Action.VIEW): True,
    (Role.READER, Action.WRITE): False,
    (Role.READER, Action.ADMINISTER): False,
}


def test_policy_table_is_exactly_the_documented_one():
    assert set(ALLOWED_ACTIONS) == set(Role.values)
    for (role, action), allowed in EXPECTED.items():
        assert role_allows(role, action) is allowed, (role, action)


def test_no_role_allows_nothing():
    assert not any(role_allows(None, action) for action in Action.ALL)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("who", "action", "outcome"),
    [
        ("owner", Action.ADMINISTER, "ok"),
        ("contributor", Action.WRITE, "ok"),
        ("contributor", Action.ADMINISTER, "forbidden"),
        ("reader", Action.VIEW, "ok"),
        ("reader", Action.WRITE, "forbidden"),
        ("outsider", Action.VIEW, "not_found"),
        ("outsider", Action.ADMINISTER, "not_found"),
    ],
)
def test_require_gives_404_to_outsiders_and_403_to_roles_without_the_action(persona, workspace, who, action, outcome):
    user = persona[who]
    if outcome == "ok":
        assert require(user, workspace, action) in Role.values
    elif outcome == "forbidden":
        with pytest.raises(PermissionDenied):
            require(user, workspace, action)
    else:
        with pytest.raises(Http404):
            require(user, workspace, action)


PERSONAL = {  # (role, is the resource's owner) -> the personal actions allowed
    (Role.OWNER, True): {"use", "change", "delete"},
    (Role.OWNER, False): {"use", "delete"},
    (Role.CONTRIBUTOR, True): {"use", "change", "delete"},
    (Role.CONTRIBUTOR, False): set(),
    (Role.READER, True): set(),
    (Role.READER, False): set(),
}


def test_personal_resources_follow_the_documented_table():
    from workspaces.policy import PersonalAction, personal_allows

    for (role, is_owner), allowed in PERSONAL.items():
        got = {a for a in PersonalAction.ALL if personal_allows(role=role, is_owner=is_owner, action=a)}
        assert got == allowed, (role, is_owner)
    assert not any(personal_allows(role=None, is_owner=True, action=a) for a in PersonalAction.ALL)


def test_only_the_admin_console_gives_staff_owner_rights(make_user, workspace):
    from workspaces.policy import console_actor

    staff = make_user("root", is_staff=True)
    with pytest.raises(Http404):  # staff outside the console are ordinary (non-)members
        require(staff, workspace, Action.VIEW)
    assert require(console_actor(staff), workspace, Action.ADMINISTER) == "owner"
    with pytest.raises(PermissionDenied):
        console_actor(make_user("plain"))
    staff.is_active = False
    with pytest.raises(PermissionDenied):
        console_actor(staff)
