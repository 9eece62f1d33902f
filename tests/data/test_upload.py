"""Uploads through the API and the page: streamed to disk, sniffed, queued as an ingest job."""

import errno
import hashlib
import io

import pytest

from compute.jobs.models import Job
from data import uploads
from data.jobs import INGEST
from data.models import Ingest, IngestStatus
from data.services import ingest_upload_path

pytestmark = pytest.mark.django_db


def upload(client, workspace, content: bytes, filename="data.csv", **fields):
    f = io.BytesIO(content)
    f.name = filename
    return client.post(f"/api/v1/workspaces/{workspace.pk}/data-assets/", {"file": f, **fields}, format="multipart")


def test_an_upload_is_stored_under_a_generated_name_and_queued_as_a_job(api, contributor, workspace):
    response = upload(api(contributor), workspace, b"a,b\n1,2\n", filename="../../etc/passwd.csv")
    assert response.status_code == 202, response.content
    body = response.json()
    ingest = Ingest.objects.get(pk=body["id"])
    assert body["status"] == "queued" and ingest.asset_name == "passwd"
    assert ingest.source_name == "passwd.csv"  # the client's path is kept only as a display name
    path = ingest_upload_path(ingest)
    assert path.read_bytes() == b"a,b\n1,2\n" and path.name == f"{ingest.pk}.upload"
    job = Job.objects.get(pk=body["job"])
    assert job.kind == INGEST and job.target.is_default and job.spec == {"ingest_id": ingest.pk}


@pytest.mark.parametrize(
    ("content", "name", "words"),
    [
        (b"", "empty.csv", "empty"),
        (b"\x00\x01\x02\x03" * 5000, "binary.csv", "binary"),
        (b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94", "model.csv", "Pickle"),
        (b"PK\x03\x04" + b"\x00" * 100, "sheet.csv", ""),
    ],
)
def test_hopeless_files_are_refused_at_once_and_nothing_is_kept(api, owner, workspace, content, name, words, settings):
    response = upload(api(owner), workspace, content, filename=name)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert "file" in error["fields"] and words.lower() in error["fields"]["file"][0].lower()
    assert not Ingest.objects.exists()
    staging = settings.ARTIFACT_ROOT / "staging"
    assert not staging.exists() or not list(staging.iterdir())


def test_a_file_over_the_limit_is_refused_while_streaming(api, owner, workspace, settings):
    settings.STUDIO_UPLOAD_MAX_BYTES = 10_000
    response = upload(api(owner), workspace, b"a,b\n" + b"1,2\n" * 10_000)
    assert response.status_code == 413
    assert "upload limit" in response.json()["error"]["message"]
    assert not Ingest.objects.exists()
    assert not list((settings.ARTIFACT_ROOT / "staging").glob("*"))


def test_a_file_of_many_chunks_is_staged_whole_with_the_sha256_of_every_byte(api, owner, workspace):
    # 1 MiB chunks are written and hashed on a thread of their own while the next ones are parsed.
    rows = b"".join(b"%d,name %d with spaces,%d.5\n" % (i, i % 97, i) for i in range(250_000))
    content = b"id,name,amount\n" + rows
    assert len(content) > 7 * 2**20
    response = upload(api(owner), workspace, content, filename="many chunks.csv")
    assert response.status_code == 202, response.content
    ingest = Ingest.objects.get(pk=response.json()["id"])
    assert ingest.source_sha256 == hashlib.sha256(content).hexdigest()
    assert ingest_upload_path(ingest).read_bytes() == content


@pytest.mark.parametrize(
    "failure",
    [OSError(errno.ENOSPC, "No space left on device"), ValueError("No space left, said differently")],
    ids=["full disk", "any other error"],
)
def test_a_write_that_fails_mid_upload_is_an_error_and_stores_nothing(
    api, owner, workspace, settings, monkeypatch, failure
):
    # The staging file is written on the writer's thread: its error must reach the request, neither
    # lost (a truncated file would be taken with the checksum of what was written) nor leaving the
    # request waiting on a thread that stopped.
    class FillsUp:
        def __init__(self, fh):
            self.fh, self.written = fh, 0

        def write(self, data):
            if self.written > 2 * 2**20:
                raise failure
            self.written += len(data)
            return self.fh.write(data)

        def close(self):
            self.fh.close()

    real_open = open
    monkeypatch.setattr(uploads, "open", lambda *a, **k: FillsUp(real_open(*a, **k)), raising=False)
    with pytest.raises(type(failure), match="No space left"):
        upload(api(owner), workspace, b"a,b\n" + b"1,2\n" * 1_500_000)
    assert not Ingest.objects.exists()
    assert not list((settings.ARTIFACT_ROOT / "staging").glob("*"))


def test_a_reader_cannot_upload(api, reader, workspace, settings):
    response = upload(api(reader), workspace, b"a,b\n1,2\n")
    assert response.status_code == 403
    assert not Ingest.objects.exists()


def test_missing_file_and_bad_fields_name_the_field(api, owner, workspace):
    client = api(owner)
    response = client.post(f"/api/v1/workspaces/{workspace.pk}/data-assets/", {"name": "x"}, format="multipart")
    assert response.status_code == 400 and "file" in response.json()["error"]["fields"]
    bad_name = upload(client, workspace, b"a\n1\n", filename="ok.csv", name="<script>")
    assert bad_name.status_code == 400 and "name" in bad_name.json()["error"]["fields"]


def test_upload_page_accepts_the_file_and_redirects_to_its_status(client, owner, workspace):
    client.force_login(owner)
    f = io.BytesIO(b"x,y\n1,2\n3,4\n")
    f.name = "points.csv"
    response = client.post(
        f"/w/{workspace.pk}/data/upload/",
        {"file": f, "name": "", "description": "", "tags": ""},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 202
    ingest = Ingest.objects.get()
    assert response.json()["url"] == f"/w/{workspace.pk}/data/uploads/{ingest.pk}/"
    assert ingest.asset_name == "points" and ingest.status == IngestStatus.QUEUED
    page = client.get(response.json()["url"]).content.decode()
    assert "points.csv" in page and "Queued" in page


def test_upload_page_needs_csrf(client, owner, workspace):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(owner)
    f = io.BytesIO(b"x\n1\n")
    f.name = "a.csv"
    assert strict.post(f"/w/{workspace.pk}/data/upload/", {"file": f}).status_code == 403
    assert not Ingest.objects.exists()
