"""A large upload is ingested while it arrives: its job runs on a real node before the last byte is
in, the form's name (sent after the file) and the file's checksum reach the version; an upload cut
off, identical to a version, or hopeless ends its ingest with the reason and leaves no file."""

import hashlib
import io
import socket
import struct

import pytest
from django.urls import reverse

from compute.jobs.models import Job, JobStatus
from data.dataio.arriving import state_path
from data.models import DataAsset, Ingest, IngestStatus, UploadSlot
from data.services import ingest_upload_path
from data.uploads import ingest_starts_now
from studio.services import token_create
from tests.conftest import wait_for

CUSTOMERS = (
    "Customer ID,Full name,Signed up,Monthly £,Churned?,Notes\n"
    + "".join(
        f"C-{i:05d},{['Ana Lima', 'Jo Smith', ''][i % 3]},2024-0{i % 9 + 1}-1{i % 9},"
        f'{"" if i % 7 == 0 else f"{i * 1.25:.2f}"},{["yes", "no"][i % 2]},"said ""hi"", then left"\n'
        for i in range(60_000)
    )
).encode()
BOUNDARY = "studio-test-boundary"


def multipart(*parts: tuple[str, str | bytes, str | None]) -> bytes:
    """A multipart/form-data body from (field, value, file name or None) in the order given."""
    body = b""
    for field, value, filename in parts:
        disposition = f'form-data; name="{field}"' + (f'; filename="{filename}"' if filename else "")
        content_type = "Content-Type: text/csv\r\n" if filename else ""
        value = value.encode() if isinstance(value, str) else value
        body += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n{content_type}\r\n".encode() + value + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode()


def start_upload(live_server, workspace_id: int, token: str, body: bytes) -> socket.socket:
    host, port = live_server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=60)
    sock.sendall(
        (
            f"POST /api/v1/workspaces/{workspace_id}/data-assets/ HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
    )
    return sock


def running_while_arriving() -> Ingest:
    """The ingest the upload started, once a node runs its job (the upload is not complete yet)."""
    return wait_for(
        lambda: Ingest.objects.filter(status=IngestStatus.RUNNING, job__status=JobStatus.RUNNING).first(),
        timeout=60,
        message="the node to run the ingest while the upload arrives",
    )


def settled(ingest_id: int) -> Ingest:
    return wait_for(
        lambda: Ingest.objects.filter(pk=ingest_id, status__in=["ready", "failed"]).first(),
        timeout=90,
        message=f"ingest {ingest_id} to finish",
    )


def files_under(settings) -> list[str]:
    return sorted(str(p.relative_to(settings.ARTIFACT_ROOT)) for p in settings.ARTIFACT_ROOT.rglob("*") if p.is_file())


@pytest.mark.worker
def test_a_large_upload_is_ingested_while_it_arrives_and_named_by_the_form_at_the_end(
    live_server, owner, workspace, agent, broker, settings
):
    settings.STUDIO_INGEST_WHILE_UPLOADING_FROM_BYTES = 100_000
    token = token_create(user=owner, name="cli").plaintext
    body = multipart(
        ("description", "Customers, as exported", None),
        ("file", CUSTOMERS, "customers 2024.csv"),
        ("name", "customers", None),  # after the file: known only once the whole body is in
        ("tags", "crm, raw", None),
    )
    sock = start_upload(live_server, workspace.pk, token, body)
    part = len(body) * 3 // 4  # two of the MiB chunks the server reads: the link's speed is judged
    sock.sendall(body[:part])
    arriving = running_while_arriving()
    assert arriving.source_name == "customers 2024.csv" and not arriving.source_sha256
    sock.sendall(body[part:])
    answer = sock.makefile("rb").read1(65536).decode()
    sock.close()
    assert answer.startswith("HTTP/1.1 202"), answer

    ingest = settled(arriving.pk)
    assert ingest.status == IngestStatus.READY, ingest.error
    version = ingest.version
    assert (version.asset.name, version.rows, version.columns) == ("customers", 60_000, 6)
    assert version.tags == ["crm", "raw"] and version.description == "Customers, as exported"
    assert version.source_sha256 == hashlib.sha256(CUSTOMERS).hexdigest()
    assert version.source_size == len(CUSTOMERS) and version.source_name == "customers 2024.csv"
    types = {c["name"]: c["semantic_type"] for c in version.schema["columns"]}
    assert types["Signed up"] == "datetime" and types["Monthly £"] == "numeric"
    assert Job.objects.get(pk=ingest.job_id).display_name == "Ingest customers (customers 2024.csv)"
    wait_for(lambda: not any("uploads" in f for f in files_under(settings)), message="the upload to be removed")


@pytest.mark.worker
def test_an_upload_cut_off_while_its_ingest_runs_fails_it_and_the_node_goes_on(
    live_server, api, owner, workspace, agent, broker, settings
):
    settings.STUDIO_INGEST_WHILE_UPLOADING_FROM_BYTES = 100_000
    token = token_create(user=owner, name="cli").plaintext
    body = multipart(("name", "customers", None), ("file", CUSTOMERS, "customers.csv"))
    sock = start_upload(live_server, workspace.pk, token, body)
    sock.sendall(body[: len(body) * 3 // 4])
    arriving = running_while_arriving()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # the client goes away
    sock.close()

    ingest = settled(arriving.pk)
    assert ingest.status == IngestStatus.FAILED and ingest.error["code"] == "upload_refused"
    assert "cut off" in ingest.error["message"]
    assert not DataAsset.objects.exists()
    wait_for(lambda: not UploadSlot.objects.exists(), message="the upload slot to be freed")
    wait_for(lambda: not any("uploads" in f for f in files_under(settings)), message="the cut-off upload to be removed")
    wait_for(lambda: not Job.objects.get(pk=ingest.job_id).is_active, timeout=60, message="the job to end")

    small = io.BytesIO(b"a,b\n1,yes\n2,no\n")
    small.name = "small.csv"
    response = api(owner).post(
        f"/api/v1/workspaces/{workspace.pk}/data-assets/", {"file": small, "name": "small"}, format="multipart"
    )
    assert response.status_code == 202, response.content
    assert settled(response.json()["id"]).status == IngestStatus.READY


@pytest.mark.django_db
def test_an_identical_or_hopeless_file_read_as_it_arrived_is_refused_and_its_ingest_says_why(
    api, owner, workspace, settings
):
    settings.STUDIO_INGEST_WHILE_UPLOADING_FROM_BYTES = 100_000
    client = api(owner)

    def post(content: bytes, **fields):
        f = io.BytesIO(content)
        f.name = "customers.csv"
        return client.post(f"/api/v1/workspaces/{workspace.pk}/data-assets/", {"file": f, **fields}, format="multipart")

    first = post(CUSTOMERS, name="customers")
    assert first.status_code == 202, first.content
    queued = Ingest.objects.get(pk=first.json()["id"])  # no node here: it waits in the queue
    assert queued.source_sha256 == hashlib.sha256(CUSTOMERS).hexdigest() and queued.asset_name == "customers"

    again = post(CUSTOMERS, name="customers")
    assert again.status_code == 409, again.content
    error = again.json()["error"]
    assert error["code"] == "identical_upload" and f"the upload being ingested (#{queued.pk})" in error["message"]
    hopeless = post(b"PK\x03\x04" + bytes(range(256)) * 12_000, name="archive")
    assert hopeless.status_code == 400, hopeless.content
    bad_name = post(CUSTOMERS + b"C-99999,,,,,\n", name="x" * 500)
    assert bad_name.status_code == 400, bad_name.content

    refused = Ingest.objects.exclude(pk=queued.pk).order_by("pk")
    assert [i.status for i in refused] == [IngestStatus.FAILED] * 3
    assert "identical" in refused[0].error["message"] and refused[0].error["code"] == "upload_refused"
    assert all(Job.objects.get(pk=i.job_id).status == JobStatus.CANCELED for i in refused)
    upload = ingest_upload_path(queued)  # the queued one's file and its state: nothing of the refused
    expected = sorted(str(p.relative_to(settings.ARTIFACT_ROOT)) for p in (upload, state_path(upload)))
    assert files_under(settings) == expected


@pytest.mark.django_db
def test_the_upload_page_reads_a_large_file_as_it_arrives_and_names_an_identical_one(
    client, owner, workspace, settings
):
    settings.STUDIO_INGEST_WHILE_UPLOADING_FROM_BYTES = 100_000
    client.force_login(owner)

    def page_upload(name: str):
        f = io.BytesIO(CUSTOMERS)
        f.name = "customers 2024.csv"
        body = {"file": f, "name": name, "description": "", "tags": "crm"}
        return client.post(f"/w/{workspace.pk}/data/upload/", body)

    first = page_upload("customers")
    ingest = Ingest.objects.get()
    assert first.status_code == 302 and first["Location"] == reverse("data-ingest", args=[workspace.pk, ingest.pk])
    assert (ingest.asset_name, ingest.tags, ingest.source_size) == ("customers", ["crm"], len(CUSTOMERS))
    assert state_path(ingest_upload_path(ingest)).read_text().startswith("received ")

    again = page_upload("customers")
    assert again.status_code == 409 and "identical to the upload being ingested" in again.content.decode()


def test_a_slow_upload_is_ingested_only_for_its_last_stretch():
    """The ingest starts once the rest of the upload should take no longer than parsing the whole
    file (at 50 MB/s): at once on a fast link, near the end on a slow one, so no node waits long."""
    gigabyte = 1_000_000_000
    assert ingest_starts_now(received=4 << 20, expected=132_000_000, elapsed=0.01)  # 400 MB/s: at once
    assert not ingest_starts_now(received=1 << 20, expected=132_000_000, elapsed=0.001)  # too early to tell
    assert ingest_starts_now(received=1 << 20, expected=3_500_000, elapsed=0.01)  # a quarter of a small file
    # 10 MB/s: 20 s of parsing for 1 GB, so from about 800 MB on (20 s of upload left).
    assert not ingest_starts_now(received=100_000_000, expected=gigabyte, elapsed=10.0)
    assert not ingest_starts_now(received=780_000_000, expected=gigabyte, elapsed=78.0)
    assert ingest_starts_now(received=810_000_000, expected=gigabyte, elapsed=81.0)
