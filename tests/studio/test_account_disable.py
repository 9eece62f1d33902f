"""A staff user disables an account: its API tokens and sessions stop working at once."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from studio import services

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(make_user):
    return make_user("root", is_staff=True, is_superuser=True)


def test_disabling_an_account_in_the_admin_stops_its_tokens_and_sessions_at_once(api, client, staff, owner):
    plaintext = services.token_create(user=owner, name="pipeline").plaintext
    program = api()
    program.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    browser_session = api(owner)
    assert program.get("/api/v1/me/").status_code == 200
    assert browser_session.get("/api/v1/me/").status_code == 200

    client.force_login(staff)
    done = client.post("/admin/auth/user/", {"action": "disable_accounts", "_selected_action": [owner.pk]}, follow=True)
    assert "Alice is disabled" in done.content.decode()
    owner.refresh_from_db()
    assert owner.is_active is False

    refused = program.get("/api/v1/me/")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "authentication_failed"
    assert browser_session.get("/api/v1/me/").status_code in (401, 403)
    assert browser_session.get("/").status_code == 302  # the page asks to sign in again


def test_only_staff_disable_accounts_and_never_their_own(staff, owner, contributor):
    with pytest.raises(PermissionDenied):
        services.user_disable(actor=contributor, user=owner)
    with pytest.raises(ValidationError):
        services.user_disable(actor=staff, user=staff)
    owner.refresh_from_db()
    assert owner.is_active is True
