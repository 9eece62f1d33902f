"""R9: nothing is stored before it is authorised. Every refused upload, on the page and in the API,
is answered without a byte of it on disk; an upload cut off mid-body leaves nothing; stale staging
files are swept; a user streams a bounded number of uploads at once."""

import io
import os
import socket
import struct
import threading
import time

import pytest
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from data.models import Ingest, UploadSlot
from data.services import TooManyUploads, upload_slot_acquire, upload_slot_release
from data.uploads import remove_stale_staging, staging_dir
from studio.services import token_create
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db

CSRF_SECRET = "a" * 32  # a well-formed token; the cookie and the header must agree
CSV = b"a,b\n" + b"1,2\n" * 20_000


def stored_files(settings) -> list[str]:
    """Every file under the artifact root: staging, uploads waiting for ingest, anything."""
    root = settings.ARTIFACT_ROOT
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def csv_file(content: bytes = CSV, name: str = "data.csv"):
    f = io.BytesIO(content)
    f.name = name
    return f


def browser_like(user, *, header_token: bool = True, client_class=Client):
    """A client that enforces CSRF like a browser: the cookie, and the token in the header (or not)."""
    client = client_class(enforce_csrf_checks=True)
    if user is not None:
        client.force_login(user)
    client.cookies["csrftoken"] = CSRF_SECRET
    headers = {"HTTP_X_CSRFTOKEN": CSRF_SECRET} if header_token else {}
    return client, headers


def api_url(workspace_id) -> str:
    return f"/api/v1/workspaces/{workspace_id}/data-assets/"


def page_url(workspace_id) -> str:
    return f"/w/{workspace_id}/data/upload/"


# --- Refused before the body is read -----------------------------------------------------------
REFUSALS = {
    # who, which workspace, CSRF token in the header?, expected status
    "anonymous": (None, "team", True, 401),
    "no CSRF header (token in the body only)": ("owner", "team", False, 403),
    "outsider": ("outsider", "team", True, 404),
    "workspace that does not exist": ("owner", "missing", True, 404),
    "reader": ("reader", "team", True, 403),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_refused_api_upload_stores_nothing(case, persona, workspace, settings):
    who, where, header_token, status = REFUSALS[case]
    client, headers = browser_like(persona.get(who), header_token=header_token, client_class=APIClient)
    workspace_id = workspace.pk if where == "team" else 999_999
    body = {"file": csv_file(), "csrfmiddlewaretoken": CSRF_SECRET}
    response = client.post(api_url(workspace_id), body, format="multipart", **headers)
    assert response.status_code == status, response.content
    assert "error" in response.json()
    assert stored_files(settings) == [] and not Ingest.objects.exists()


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_refused_page_upload_stores_nothing(case, persona, workspace, settings):
    who, where, header_token, status = REFUSALS[case]
    client, headers = browser_like(persona.get(who), header_token=header_token)
    workspace_id = workspace.pk if where == "team" else 999_999
    body = {"file": csv_file(), "csrfmiddlewaretoken": CSRF_SECRET}
    response = client.post(page_url(workspace_id), body, HTTP_ACCEPT="application/json", **headers)
    expected = 302 if who is None else status  # the page sends an anonymous visitor to sign in
    assert response.status_code == expected, response.content
    assert stored_files(settings) == [] and not Ingest.objects.exists()


def test_a_form_posted_without_javascript_is_refused_unread_with_the_csrf_page(owner, workspace, settings):
    """Without the page's script the token is only in the body, which is not read before the check."""
    client, _ = browser_like(owner, header_token=False)
    response = client.post(page_url(workspace.pk), {"file": csv_file(), "csrfmiddlewaretoken": CSRF_SECRET})
    assert response.status_code == 403 and b"CSRF" in response.content
    assert stored_files(settings) == []


def test_an_outsider_with_an_api_token_stores_nothing(outsider, workspace, settings):
    token = token_create(user=outsider, name="probe").plaintext
    client = APIClient()
    response = client.post(
        api_url(workspace.pk), {"file": csv_file()}, format="multipart", HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    assert response.status_code == 404
    assert stored_files(settings) == []


@pytest.mark.parametrize("route", ["api", "page"])
def test_a_body_announced_over_the_cap_is_refused_unread(route, owner, workspace, settings):
    settings.STUDIO_UPLOAD_MAX_BYTES = 10_000
    client, headers = browser_like(owner, client_class=APIClient if route == "api" else Client)
    url = api_url(workspace.pk) if route == "api" else page_url(workspace.pk)
    kwargs = {"format": "multipart"} if route == "api" else {"HTTP_ACCEPT": "application/json"}
    response = client.post(url, {"file": csv_file(b"a\n" + b"1\n" * 50_000)}, **kwargs, **headers)
    assert response.status_code == 413
    assert "upload limit" in response.content.decode()
    assert stored_files(settings) == []


def test_the_page_upload_with_the_header_token_is_accepted(owner, workspace, settings):
    client, headers = browser_like(owner)
    response = client.post(
        page_url(workspace.pk), {"file": csv_file(name="points.csv")}, HTTP_ACCEPT="application/json", **headers
    )
    assert response.status_code == 202, response.content
    ingest = Ingest.objects.get()
    assert stored_files(settings) == [f"workspaces/{workspace.pk}/uploads/{ingest.pk}.upload"]


def test_extra_files_in_one_upload_are_not_kept(api, owner, workspace, settings):
    """Only the `file` field becomes an ingest; anything else sent along is removed at once."""
    response = api(owner).post(
        api_url(workspace.pk),
        {"file": csv_file(), "other": csv_file(name="other.csv"), "third": csv_file(name="third.csv")},
        format="multipart",
    )
    assert response.status_code == 202, response.content
    ingest = Ingest.objects.get()
    assert stored_files(settings) == [f"workspaces/{workspace.pk}/uploads/{ingest.pk}.upload"]


def test_a_refused_file_is_removed_with_everything_sent_along(api, owner, workspace, settings):
    response = api(owner).post(
        api_url(workspace.pk),
        {"file": csv_file(b"\x80\x04\x95pickle"), "other": csv_file(name="other.csv")},
        format="multipart",
    )
    assert response.status_code == 400
    assert stored_files(settings) == []


# --- Cut off mid-body, on a real socket --------------------------------------------------------
def _send_partial_upload(live_server, workspace_id: int, token: str, *, reset: bool, staging) -> None:
    """Announce 8 MB, send 4 MB, wait until the server is writing the file, then hang up."""
    boundary = "studio-test-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()
    data = b"a,b\n" + b"1,2\n" * 2_000_000
    body = head + data + f"\r\n--{boundary}--\r\n".encode()
    host, port = live_server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(
        (
            f"POST {api_url(workspace_id)} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
    )
    sock.sendall(body[: len(body) // 2])
    wait_for(lambda: list(staging.glob("*.part")), timeout=20, message="the server to stage the upload")
    time.sleep(0.3)
    if reset:  # an abortive close: the server's next read fails with ECONNRESET
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    else:  # an orderly close: the body just ends short of its Content-Length
        sock.shutdown(socket.SHUT_WR)
    sock.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("reset", [True, False], ids=["connection-reset", "body-cut-short"])
def test_an_interrupted_upload_leaves_nothing_behind(reset, live_server, owner, workspace, settings):
    token = token_create(user=owner, name="cli").plaintext
    staging = staging_dir()
    _send_partial_upload(live_server, workspace.pk, token, reset=reset, staging=staging)
    wait_for(lambda: stored_files(settings) == [], timeout=20, message="the partial file to be removed")
    wait_for(lambda: not UploadSlot.objects.exists(), timeout=20, message="the upload slot to be freed")
    assert not Ingest.objects.exists()


# --- Stale staging files ----------------------------------------------------------------------
def test_stale_staging_files_are_swept_and_live_ones_kept(settings):
    settings.STUDIO_UPLOAD_STALE_SECONDS = 900
    staging = staging_dir()
    dead, live = staging / "dead.part", staging / "live.part"
    dead.write_bytes(b"x" * 1000)
    live.write_bytes(b"y" * 1000)
    an_hour_ago = time.time() - 3600
    os.utime(dead, (an_hour_ago, an_hour_ago))
    assert remove_stale_staging() == 1
    assert not dead.exists() and live.exists()


def test_the_scheduler_sweeps_staging_and_upload_slots(settings, contributor):
    from django.utils import timezone

    from data.tasks import remove_stale_staging_task
    from studio.celery import app

    entries = [e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"].endswith("remove_stale_staging_task")]
    assert len(entries) == 1 and entries[0]["schedule"] <= 900
    assert entries[0]["task"] in app.tasks
    dead = staging_dir() / "dead.part"
    dead.write_bytes(b"x")
    os.utime(dead, (time.time() - 2 * settings.STUDIO_UPLOAD_STALE_SECONDS,) * 2)
    slot = upload_slot_acquire(user=contributor)
    UploadSlot.objects.filter(pk=slot.pk).update(
        touched_at=timezone.now() - timezone.timedelta(seconds=2 * settings.STUDIO_UPLOAD_STALE_SECONDS)
    )
    remove_stale_staging_task()
    assert not dead.exists() and not UploadSlot.objects.exists()


# --- Concurrent uploads per user ---------------------------------------------------------------
def test_a_user_past_the_concurrent_upload_limit_gets_429_and_nothing_is_stored(api, contributor, workspace, settings):
    settings.STUDIO_UPLOAD_MAX_CONCURRENT = 2
    held = [upload_slot_acquire(user=contributor) for _ in range(2)]  # two uploads streaming elsewhere
    client = api(contributor)
    refused = client.post(api_url(workspace.pk), {"file": csv_file()}, format="multipart")
    assert refused.status_code == 429, refused.content
    error = refused.json()["error"]
    assert error["code"] == "too_many_uploads" and "2 uploads in progress" in error["message"]
    assert stored_files(settings) == []
    page = Client()
    page.force_login(contributor)
    refused_page = page.post(page_url(workspace.pk), {"file": csv_file()}, HTTP_ACCEPT="application/json")
    assert refused_page.status_code == 429 and "in progress" in refused_page.json()["errors"]["file"][0]

    upload_slot_release(slot=held[0])
    accepted = client.post(api_url(workspace.pk), {"file": csv_file()}, format="multipart")
    assert accepted.status_code == 202, accepted.content
    assert UploadSlot.objects.count() == 1  # the finished upload gave its slot back


def test_a_slot_left_by_a_dead_process_is_reclaimed(contributor, settings):
    from django.utils import timezone

    settings.STUDIO_UPLOAD_MAX_CONCURRENT = 1
    slot = upload_slot_acquire(user=contributor)
    with pytest.raises(TooManyUploads):
        upload_slot_acquire(user=contributor)
    UploadSlot.objects.filter(pk=slot.pk).update(
        touched_at=timezone.now() - timezone.timedelta(seconds=settings.STUDIO_UPLOAD_STALE_SECONDS + 1)
    )
    assert upload_slot_acquire(user=contributor).number == 0


@pytest.mark.django_db(transaction=True)
def test_the_concurrent_upload_limit_is_exact_under_a_race(contributor, settings):
    """Eight requests (threads with their own database connections) race for three slots."""
    settings.STUDIO_UPLOAD_MAX_CONCURRENT = 3
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def race():
        barrier.wait()
        try:
            upload_slot_acquire(user=contributor)
            outcomes.append("slot")
        except TooManyUploads:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=race) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["refused"] * 5 + ["slot"] * 3
    assert sorted(UploadSlot.objects.values_list("number", flat=True)) == [0, 1, 2]
