"""Sign-in throttling (R10): failures counted per account and per address on both sign-in pages."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.utils import timezone

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

LIMIT = 10  # the default STUDIO_LOGIN_FAILURE_LIMIT


def sign_in(client, username, password, address, path="/login/"):
    data = {"username": username, "password": password}
    if path.startswith("/admin/"):
        data["next"] = "/admin/"
    return client.post(path, data, REMOTE_ADDR=address)


def signed_in(response) -> bool:
    return response.status_code == 302


def test_a_correct_password_works_before_the_limit(client, owner):
    for _ in range(LIMIT - 1):
        assert sign_in(client, "alice", "wrong", "10.0.0.1").status_code == 200
    assert signed_in(sign_in(client, "alice", PASSWORD, "10.0.0.1"))


def test_signing_into_ones_own_account_does_not_reset_a_spray_from_the_same_address(client, outsider):
    for n in range(LIMIT - 1):
        sign_in(client, f"victim{n}", "wrong", "10.0.0.8")
    assert signed_in(sign_in(type(client)(), "mallory", PASSWORD, "10.0.0.8"))
    assert sign_in(client, "victim-last", "wrong", "10.0.0.8").status_code == 429
    assert sign_in(type(client)(), "mallory", PASSWORD, "10.0.0.8").status_code == 429


def test_wrong_passwords_lock_the_account_from_every_address(client, owner):
    for _ in range(LIMIT):
        sign_in(client, "alice", "wrong", "10.0.0.1")
    locked = sign_in(client, "alice", PASSWORD, "10.0.0.2")  # the right password, from elsewhere
    assert locked.status_code == 429
    page = locked.content.decode()
    assert "Too many failed sign-ins" in page and "alice" in page and "Try again in" in page
    assert "_auth_user_id" not in client.session


def test_wrong_passwords_from_one_address_lock_that_address_for_every_account(client, owner, contributor):
    for n in range(LIMIT):
        sign_in(client, f"guess{n}", "wrong", "10.0.0.9")  # a password spray: one try per name
    assert sign_in(client, "bob", PASSWORD, "10.0.0.9").status_code == 429
    assert signed_in(sign_in(client, "bob", PASSWORD, "10.0.0.10"))  # bob himself is not locked


def test_the_admin_sign_in_page_is_throttled_too(client, make_user):
    make_user("root", is_staff=True, is_superuser=True)
    for _ in range(LIMIT - 1):
        assert sign_in(client, "root", "wrong", "10.0.0.3", path="/admin/login/").status_code == 200
    assert sign_in(client, "root", "wrong", "10.0.0.3", path="/admin/login/").status_code == 429  # the last straw
    locked = sign_in(client, "root", PASSWORD, "10.0.0.4", path="/admin/login/")
    assert locked.status_code == 429 and "Too many failed sign-ins" in locked.content.decode()
    assert sign_in(client, "root", PASSWORD, "10.0.0.4").status_code == 429  # one count for both pages


def test_the_lock_ends_after_the_cool_off(client, owner, settings):
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)
    for _ in range(LIMIT):
        sign_in(client, "alice", "wrong", "10.0.0.1")
    assert sign_in(client, "alice", PASSWORD, "10.0.0.1").status_code == 429
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    assert signed_in(sign_in(client, "alice", PASSWORD, "10.0.0.1"))


def test_staff_see_the_lock_in_the_admin_and_lift_it(client, owner, make_user):
    for _ in range(LIMIT):
        sign_in(client, "alice", "wrong", "10.0.0.1")
    assert sign_in(client, "alice", PASSWORD, "10.0.0.5").status_code == 429
    staff = make_user("root", is_staff=True, is_superuser=True)
    admin_client = type(client)()
    admin_client.force_login(staff)
    listed = admin_client.get("/admin/axes/accessattempt/?locked_out=yes").content.decode()
    assert "alice" in listed and "10.0.0.1" in listed
    lifted = admin_client.post(
        "/admin/auth/user/", {"action": "lift_sign_in_lockouts", "_selected_action": [owner.pk]}, follow=True
    )
    assert "Lock-outs lifted" in lifted.content.decode()
    assert signed_in(sign_in(client, "alice", PASSWORD, "10.0.0.5"))
