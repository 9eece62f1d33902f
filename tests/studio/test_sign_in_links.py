"""One-time sign-in links: a staff user issues a password-reset link, shown once, stored hashed,
expiring, working once; anything else is a clear refusal, never a 500."""

import re
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.utils import timezone

from studio import services
from studio.models import SignInLink, SignInLinkPurpose
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a-brand-new-long-passphrase"


@pytest.fixture
def staff(make_user):
    return make_user("root", is_staff=True, is_superuser=True)


PAGE = "/account/set-password/"


def set_password(client, secret, password=NEW_PASSWORD, confirm=None):
    """What the page's script does: the secret from after "#" goes in the form's body."""
    data = {"secret": secret, "new_password1": password, "new_password2": confirm or password}
    return client.post(PAGE, data)


def can_sign_in(username, password) -> bool:
    return Client().post("/login/", {"username": username, "password": password}).status_code == 302


def test_staff_issue_a_link_from_the_users_admin_and_it_is_shown_once(client, staff, owner):
    client.force_login(staff)
    page = client.post("/admin/auth/user/", {"action": "issue_password_reset_link", "_selected_action": [owner.pk]})
    assert page.status_code == 200 and "no-store" in page["Cache-Control"]
    url = re.search(r"http://testserver/account/set-password/#([^<\s]+)<", page.content.decode())
    assert url, page.content.decode()
    secret = url.group(1)
    link = SignInLink.objects.get(user=owner)
    assert link.purpose == SignInLinkPurpose.PASSWORD_RESET and link.created_by == staff
    random_part = secret.split("_", 2)[2]
    assert len(link.secret_hash) == 64 and not any(random_part in str(v) for v in SignInLink.objects.values().get())
    listed = (
        client.get("/admin/studio/signinlink/").content.decode()
        + client.get(f"/admin/studio/signinlink/{link.pk}/change/").content.decode()
    )
    assert link.prefix in listed and random_part not in listed  # never shown again


def test_the_link_sets_a_password_once(owner, staff):
    issued = services.sign_in_link_issue(actor=staff, user=owner)
    anonymous = Client()
    assert anonymous.get(PAGE).status_code == 200
    done = set_password(anonymous, issued.secret)
    assert done.status_code == 302 and done["Location"] == "/login/"
    assert can_sign_in("alice", NEW_PASSWORD) and not can_sign_in("alice", PASSWORD)
    again = set_password(Client(), issued.secret, password="yet-another-long-passphrase")
    assert again.status_code == 410 and "already been used" in again.content.decode()
    assert can_sign_in("alice", NEW_PASSWORD)


def test_a_weak_password_is_refused_by_the_validators_and_the_link_stays_usable(owner, staff):
    issued = services.sign_in_link_issue(actor=staff, user=owner)
    for weak in ("password", "12345678901", "alice"):
        response = set_password(Client(), issued.secret, password=weak)
        page = response.content.decode()
        assert response.status_code == 200 and 'class="error"' in page and "alice" in page
    assert set_password(Client(), issued.secret, password=NEW_PASSWORD, confirm="something-else").status_code == 200
    assert SignInLink.objects.get().used_at is None
    assert set_password(Client(), issued.secret).status_code == 302


def test_the_link_expires_after_the_configured_time(owner, staff, settings):
    settings.STUDIO_SIGN_IN_LINK_HOURS = 2
    issued = services.sign_in_link_issue(actor=staff, user=owner)
    expected = timezone.now() + timedelta(hours=2)
    assert abs((issued.link.expires_at - expected).total_seconds()) < 60
    SignInLink.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = set_password(Client(), issued.secret)
    assert response.status_code == 410 and "expired" in response.content.decode()
    assert can_sign_in("alice", PASSWORD)


def test_a_newer_link_replaces_the_older_one(owner, staff):
    first = services.sign_in_link_issue(actor=staff, user=owner)
    second = services.sign_in_link_issue(actor=staff, user=owner)
    response = set_password(Client(), first.secret)
    assert response.status_code == 410 and "replaced by a newer one" in response.content.decode()
    assert set_password(Client(), second.secret).status_code == 302


@pytest.mark.parametrize(
    "forge",
    ["wrong_secret", "unknown_prefix", "wrong_label", "garbage", "very_long", "unicode", "missing"],
)
def test_forged_links_get_a_clear_404(owner, staff, forge):
    secret = services.sign_in_link_issue(actor=staff, user=owner).secret
    label, prefix, random_part = secret.split("_", 2)
    forged = {
        "wrong_secret": f"{label}_{prefix}_{random_part[:-4]}AAAA",
        "unknown_prefix": f"{label}_000000000000_{random_part}",
        "wrong_label": f"stu_{prefix}_{random_part}",
        "garbage": "not-a-link",
        "very_long": "sil_" + "x" * 5000,
        "unicode": None,  # bytes that are not UTF-8, as a form body
        "missing": "",
    }[forge]
    if forged is None:
        body = f"secret=sil_%F0%9F%94%91_%ED%A0%80&new_password1={NEW_PASSWORD}&new_password2={NEW_PASSWORD}"
        response = Client().post(PAGE, body, content_type="application/x-www-form-urlencoded")
    else:
        response = set_password(Client(), forged)
    assert response.status_code == 404, (forge, response.status_code)
    assert "This link is not valid" in response.content.decode()
    assert can_sign_in("alice", PASSWORD)


def test_only_staff_issue_links_and_not_for_disabled_accounts(owner, contributor, staff):
    with pytest.raises(PermissionDenied):
        services.sign_in_link_issue(actor=contributor, user=owner)
    issued = services.sign_in_link_issue(actor=staff, user=owner)
    services.user_disable(actor=staff, user=owner)
    assert set_password(Client(), issued.secret).status_code == 410  # disabling revoked it
    assert not SignInLink.objects.filter(revoked_at__isnull=True).exists()


def test_setting_a_password_by_link_lifts_a_lock_out(owner, staff, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        Client().post("/login/", {"username": "alice", "password": "wrong"}, REMOTE_ADDR="10.0.0.7")
    assert Client().post("/login/", {"username": "alice", "password": PASSWORD}).status_code == 429
    issued = services.sign_in_link_issue(actor=staff, user=owner)
    assert set_password(Client(), issued.secret).status_code == 302
    assert not AccessAttempt.objects.filter(username="alice").exists()
    assert can_sign_in("alice", NEW_PASSWORD)
