from datetime import timedelta

import pytest
from django.utils import timezone

from studio import services
from studio.models import ApiToken

pytestmark = pytest.mark.django_db


def bearer(client, plaintext):
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    return client


def test_a_token_is_stored_hashed_and_shown_once(owner):
    issued = services.token_create(user=owner, name="laptop")
    token = ApiToken.objects.get(pk=issued.token.pk)
    secret = issued.plaintext.split("_", 2)[2]
    assert issued.plaintext.startswith(f"stu_{token.prefix}_")
    assert secret not in token.secret_hash and len(token.secret_hash) == 64
    assert not any(secret in str(v) for v in ApiToken.objects.values().get(pk=token.pk).values())


def test_the_api_accepts_a_live_token(api, owner, workspace):
    issued = services.token_create(user=owner, name="cli")
    response = bearer(api(), issued.plaintext).get("/api/v1/workspaces/")
    assert response.status_code == 200
    assert response.json()["results"][0]["name"] == "Team"
    assert ApiToken.objects.get(pk=issued.token.pk).last_used_at is not None


@pytest.mark.parametrize("mangle", ["revoke", "expire", "wrong_secret", "unknown_prefix", "garbage"])
def test_dead_or_forged_tokens_get_401(api, owner, mangle):
    issued = services.token_create(user=owner, name="cli")
    plaintext = issued.plaintext
    if mangle == "revoke":
        services.token_revoke(user=owner, token=issued.token)
    elif mangle == "expire":
        ApiToken.objects.filter(pk=issued.token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    elif mangle == "wrong_secret":
        plaintext = plaintext[:-4] + "AAAA"
    elif mangle == "unknown_prefix":
        plaintext = "stu_000000000000_" + plaintext.split("_", 2)[2]
    else:
        plaintext = "not-a-token"
    response = bearer(api(), plaintext).get("/api/v1/me/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_a_token_in_the_query_string_is_ignored(api, owner):
    issued = services.token_create(user=owner, name="cli")
    assert api().get(f"/api/v1/me/?token={issued.plaintext}").status_code == 401


def test_token_crud_through_the_api(api, owner, reader):
    client = api(owner)
    created = client.post("/api/v1/tokens/", {"name": "pipeline"}, format="json")
    assert created.status_code == 201
    plaintext = created.json()["token"]
    listed = client.get("/api/v1/tokens/").json()
    assert listed["count"] == 1 and "token" not in listed["results"][0]
    token_id = created.json()["id"]
    assert api(reader).delete(f"/api/v1/tokens/{token_id}/").status_code == 404  # not theirs
    assert client.delete(f"/api/v1/tokens/{token_id}/").status_code == 204
    assert bearer(api(), plaintext).get("/api/v1/me/").status_code == 401


def test_an_expiry_in_the_past_is_refused(api, owner):
    response = api(owner).post("/api/v1/tokens/", {"name": "x", "expires_at": "2000-01-01T00:00:00Z"}, format="json")
    assert response.status_code == 400
    assert "expires_at" in response.json()["error"]["fields"]


def test_token_page_shows_a_new_token_once(client, owner):
    client.force_login(owner)
    page = client.post("/account/tokens/", {"name": "notebook"})
    assert page.status_code == 200
    token = ApiToken.objects.get(name="notebook")
    assert f"stu_{token.prefix}_" in page.content.decode()
    again = client.get("/account/tokens/").content.decode()
    assert f"stu_{token.prefix}_…" in again  # only the prefix from now on
    assert page.context["issued"].plaintext not in again
    client.post(f"/account/tokens/{token.pk}/revoke/")
    token.refresh_from_db()
    assert token.revoked_at is not None
