import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404

from workspaces import services
from workspaces.models import Activity, Membership, Role, Workspace

pytestmark = pytest.mark.django_db


def test_creator_becomes_the_owner_and_the_creation_is_recorded(owner):
    ws = services.workspace_create(actor=owner, name="  Fraud models  ", description="Card fraud")
    assert ws.name == "Fraud models"
    assert Membership.objects.get(workspace=ws, user=owner).role == Role.OWNER
    assert Activity.objects.filter(workspace=ws, verb="created").exists()


@pytest.mark.parametrize("name", ["", "   ", None, "x" * 101])
def test_a_workspace_needs_a_sensible_name(owner, name):
    with pytest.raises(ValidationError) as exc:
        services.workspace_create(actor=owner, name=name)
    assert "name" in exc.value.message_dict
    assert not Workspace.objects.exists()


def test_owner_renames_and_describes(owner, workspace):
    services.workspace_update(actor=owner, workspace=workspace, name="Renamed", description="New words")
    workspace.refresh_from_db()
    assert (workspace.name, workspace.description) == ("Renamed", "New words")
    assert Activity.objects.filter(workspace=workspace, verb="updated").exists()


@pytest.mark.parametrize(
    ("who", "error"), [("contributor", PermissionDenied), ("reader", PermissionDenied), ("outsider", Http404)]
)
def test_only_owners_rename(persona, workspace, who, error):
    with pytest.raises(error):
        services.workspace_update(actor=persona[who], workspace=workspace, name="Hijacked")
    workspace.refresh_from_db()
    assert workspace.name == "Team"


@pytest.mark.parametrize(
    ("who", "error"), [("contributor", PermissionDenied), ("reader", PermissionDenied), ("outsider", Http404)]
)
def test_only_owners_delete(persona, workspace, who, error):
    with pytest.raises(error):
        services.workspace_delete(actor=persona[who], workspace=workspace)
    assert Workspace.objects.filter(pk=workspace.pk).exists()


def test_owner_deletes_the_workspace_and_its_files(owner, workspace, django_capture_on_commit_callbacks):
    folder = services.workspace_artifact_dir(workspace.pk)
    folder.mkdir(parents=True)
    (folder / "data.parquet").write_bytes(b"x")
    with django_capture_on_commit_callbacks(execute=True):
        services.workspace_delete(actor=owner, workspace=workspace)
    assert not Workspace.objects.filter(pk=workspace.pk).exists()
    assert not Membership.objects.filter(workspace_id=workspace.pk).exists()
    assert not folder.exists()


def test_owner_adds_a_member_by_username(owner, workspace, outsider):
    membership = services.member_add(actor=owner, workspace=workspace, username="mallory", role=Role.READER)
    assert membership.user == outsider and membership.role == Role.READER


def test_adding_an_unknown_or_existing_user_names_the_problem(owner, workspace):
    with pytest.raises(ValidationError, match="No active user"):
        services.member_add(actor=owner, workspace=workspace, username="nobody", role=Role.READER)
    with pytest.raises(ValidationError, match="already a member"):
        services.member_add(actor=owner, workspace=workspace, username="bob", role=Role.READER)
    with pytest.raises(ValidationError) as exc:
        services.member_add(actor=owner, workspace=workspace, username="mallory", role="emperor")
    assert "role" in exc.value.message_dict


def test_contributor_cannot_add_members(contributor, workspace):
    with pytest.raises(PermissionDenied):
        services.member_add(actor=contributor, workspace=workspace, username="mallory", role=Role.OWNER)
    assert not Membership.objects.filter(workspace=workspace, user__username="mallory").exists()


def test_last_owner_cannot_be_demoted_or_removed_or_leave(owner, workspace):
    mine = Membership.objects.get(workspace=workspace, user=owner)
    with pytest.raises(ValidationError, match="last Owner"):
        services.member_change_role(actor=owner, workspace=workspace, membership=mine, role=Role.READER)
    with pytest.raises(ValidationError, match="last Owner"):
        services.member_remove(actor=owner, workspace=workspace, membership=mine)
    mine.refresh_from_db()
    assert mine.role == Role.OWNER


def test_with_a_second_owner_the_first_may_leave(owner, contributor, workspace):
    theirs = Membership.objects.get(workspace=workspace, user=contributor)
    services.member_change_role(actor=owner, workspace=workspace, membership=theirs, role=Role.OWNER)
    services.member_remove(
        actor=owner, workspace=workspace, membership=Membership.objects.get(workspace=workspace, user=owner)
    )
    assert not Membership.objects.filter(workspace=workspace, user=owner).exists()


def test_a_reader_may_leave_but_not_remove_others(reader, contributor, workspace):
    other = Membership.objects.get(workspace=workspace, user=contributor)
    with pytest.raises(PermissionDenied):
        services.member_remove(actor=reader, workspace=workspace, membership=other)
    services.member_remove(
        actor=reader, workspace=workspace, membership=Membership.objects.get(workspace=workspace, user=reader)
    )
    assert not Membership.objects.filter(workspace=workspace, user=reader).exists()
    assert Membership.objects.filter(workspace=workspace, user=contributor).exists()


def test_a_membership_of_another_workspace_cannot_be_changed_through_mine(owner, workspace, other_workspace):
    foreign = Membership.objects.get(workspace=other_workspace)
    with pytest.raises(ValidationError):
        services.member_change_role(actor=owner, workspace=workspace, membership=foreign, role=Role.READER)
    foreign.refresh_from_db()
    assert foreign.role == Role.OWNER
