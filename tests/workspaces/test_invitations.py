"""An Owner invites someone from the Members page: the studio makes the account and a one-time link
(shown once, stored hashed, expiring) with which the person sets a password and lands in the workspace."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.utils import timezone

from studio.models import SignInLink, SignInLinkPurpose
from tests.conftest import PASSWORD
from workspaces import services
from workspaces.models import Activity, Membership, Role

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a-brand-new-long-passphrase"
User = get_user_model()


def invite(client, workspace, **data):
    return client.post(f"/w/{workspace.pk}/members/", {"role": Role.CONTRIBUTOR, **data})


def link_secret(response) -> str:
    found = re.search(r"http://testserver/account/set-password/#([^<\s\"]+)", response.content.decode())
    assert found, response.content.decode()[-3000:]
    return found.group(1)


def test_an_owner_invites_a_new_person_who_sets_a_password_and_lands_in_the_workspace(client, owner, workspace):
    client.force_login(owner)
    response = invite(client, workspace, username="dora", email="dora@example.org")
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    secret = link_secret(response)

    dora = User.objects.get(username="dora")
    assert dora.email == "dora@example.org" and not dora.has_usable_password()
    assert Membership.objects.get(workspace=workspace, user=dora).role == Role.CONTRIBUTOR
    link = SignInLink.objects.get(user=dora)
    assert link.purpose == SignInLinkPurpose.INVITATION and link.created_by == owner
    assert link.expires_at > timezone.now() + timedelta(hours=1)
    assert secret.split("_", 2)[2] not in str(SignInLink.objects.values().get())  # stored hashed
    assert Activity.objects.filter(workspace=workspace, verb="member_invited").exists()
    # Shown once: the Members page does not show it again.
    assert secret not in client.get(f"/w/{workspace.pk}/members/").content.decode()

    dora_browser = Client()
    form = {"secret": secret, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    landed = dora_browser.post("/account/set-password/", form)
    assert landed.status_code == 302 and landed["Location"] == f"/w/{workspace.pk}/"
    assert dora_browser.get(landed["Location"]).status_code == 200  # signed in, a member
    assert Client().post("/login/", {"username": "dora", "password": NEW_PASSWORD}).status_code == 302
    assert dora_browser.post("/account/set-password/", form).status_code == 410  # works once


def test_inviting_an_existing_user_adds_them_without_a_link(client, owner, outsider, workspace):
    client.force_login(owner)
    response = invite(client, workspace, username="mallory")
    assert response.status_code == 302
    assert Membership.objects.get(workspace=workspace, user=outsider).role == Role.CONTRIBUTOR
    assert not SignInLink.objects.filter(user=outsider).exists()
    outsider.refresh_from_db()
    assert outsider.check_password(PASSWORD)  # their account is untouched


def test_only_owners_invite(contributor, reader, workspace, outsider):
    for actor in (contributor, reader):
        with pytest.raises(PermissionDenied):
            services.member_invite(actor=actor, workspace=workspace, username="eve", role=Role.READER)
    with pytest.raises(Exception) as exc:  # not a member: the workspace does not exist for them
        services.member_invite(actor=outsider, workspace=workspace, username="eve", role=Role.READER)
    assert exc.type.__name__ == "Http404"
    assert not User.objects.filter(username="eve").exists()


def test_a_reader_posting_an_invitation_gets_403(client, reader, workspace):
    client.force_login(reader)
    assert invite(client, workspace, username="eve").status_code == 403
    assert not User.objects.filter(username="eve").exists()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"username": "bad name!"}, "username"),
        ({"username": "x" * 151}, "username"),
        ({"username": "eve", "email": "not-an-email"}, "email"),
        ({"username": "eve", "role": "emperor"}, "role"),
    ],
)
def test_bad_invitations_are_form_errors_and_make_no_account(client, owner, workspace, data, field):
    client.force_login(owner)
    response = invite(client, workspace, **data)
    assert response.status_code == 200
    assert response.context["form"].errors.get(field), response.context["form"].errors
    assert not User.objects.filter(username=data["username"]).exists()
    assert not SignInLink.objects.exists()


def test_an_expired_invitation_is_refused(client, owner, workspace):
    invitation = services.member_invite(actor=owner, workspace=workspace, username="dora", role=Role.READER)
    SignInLink.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    form = {"secret": invitation.secret, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    response = Client().post("/account/set-password/", form)
    assert response.status_code == 410 and "expired" in response.content.decode()


def test_role_changes_need_an_explicit_save_with_a_confirmation(client, owner, reader, workspace):
    client.force_login(owner)
    html = client.get(f"/w/{workspace.pk}/members/").content.decode()
    carol_form = html.split(f'aria-label="Role of {reader.username}"')[0].rsplit("<form", 1)[1]
    assert "data-confirm=" in carol_form
    row = html.split(f'aria-label="Role of {reader.username}"')[1].split("</form>")[0]
    assert "data-autosubmit" not in carol_form + row  # choosing a role submits nothing by itself
    assert f'data-testid="save-role-{reader.username}"' in row and "<noscript>" not in row


def test_invitation_validation_error_keeps_nothing(owner, workspace):
    with pytest.raises(ValidationError):
        services.member_invite(actor=owner, workspace=workspace, username="", role=Role.READER)


def test_inviting_an_invited_member_again_replaces_a_lost_link(owner, workspace):
    first = services.member_invite(actor=owner, workspace=workspace, username="dora", role=Role.READER)
    again = services.member_invite(actor=owner, workspace=workspace, username="dora", role=Role.READER)
    assert again.secret and again.secret != first.secret
    live = SignInLink.objects.filter(user__username="dora", revoked_at__isnull=True)
    assert live.count() == 1 and live.get().prefix in again.secret
    form = {"secret": first.secret, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    assert Client().post("/account/set-password/", form).status_code == 410  # the old link is replaced


def test_a_member_who_has_signed_in_gets_no_new_link(owner, reader, workspace):
    with pytest.raises(ValidationError, match="already a member"):
        services.member_invite(actor=owner, workspace=workspace, username=reader.username, role=Role.READER)
    assert not SignInLink.objects.exists()
