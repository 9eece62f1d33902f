"""Code snapshots through object storage (moto's server), and object storage that is down.

An uploaded snapshot's files are published with their SHA-256; a host that never had them (a node,
another web process) fetches and checks them before a job copies the code or the viewer shows a
file. With the store unreachable, an upload is refused with a 503 that says so and keeps nothing,
and a page that needs a file answers a 503 page, not a server error."""

import hashlib

import pytest
from django.urls import reverse

from commands.code_services import code_snapshot_create_from_files, code_snapshot_dir, code_snapshot_local
from commands.models import CodeSnapshot
from tests import s3server
from tests.studio import test_objectstore

pytestmark = pytest.mark.django_db

s3_server = s3server.s3_server
s3_bucket = s3server.s3_bucket
object_storage = test_objectstore.object_storage

FILES = {"train.py": b"print('training')\n", "my lib/\u00fcber caf\u00e9.py": "x = '\u65e5\u672c'\n".encode()}


def upload(actor, workspace, tmp_path):
    root = tmp_path / "my project"
    files = []
    for name, data in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
        files.append((f"my project/{name}", root / name))
    return code_snapshot_create_from_files(actor=actor, workspace=workspace, name="", files=files)


def store_down(settings):
    """The same storage settings, pointed at a port where nothing listens."""
    options = dict(settings.STORAGES["artifacts"]["OPTIONS"])
    options["endpoint_url"] = "http://127.0.0.1:9"
    settings.STORAGES = settings.STORAGES | {"artifacts": {**settings.STORAGES["artifacts"], "OPTIONS": options}}


def test_a_snapshot_is_published_and_read_on_a_host_that_never_had_it(
    object_storage, s3_server, api, owner, workspace, settings, tmp_path
):
    snapshot = upload(owner, workspace, tmp_path)
    for name, data in FILES.items():
        relative = (code_snapshot_dir(snapshot) / name).relative_to(settings.ARTIFACT_ROOT).as_posix()
        stored = s3_server.client().head_object(Bucket=object_storage, Key=f"studio prefix/{relative}")
        assert stored["Metadata"] == {"sha256": hashlib.sha256(data).hexdigest()}

    settings.ARTIFACT_ROOT = tmp_path / "host-b" / "artifacts"  # a node on another host
    assert not code_snapshot_dir(snapshot).exists()
    folder = code_snapshot_local(snapshot)
    assert {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()} == FILES

    settings.ARTIFACT_ROOT = tmp_path / "host-c" / "artifacts"  # a web process: the viewer fetches the one file
    url = f"/api/v1/workspaces/{workspace.pk}/code/{snapshot.pk}/files/"
    shown = api(owner).get(url, {"path": "my lib/\u00fcber caf\u00e9.py"})
    assert shown.status_code == 200 and shown.json()["text"] == FILES["my lib/\u00fcber caf\u00e9.py"].decode()
    assert not (code_snapshot_dir(snapshot) / "train.py").exists()


def test_with_the_store_down_an_upload_is_a_503_that_keeps_nothing_and_pages_say_so(
    object_storage, api, client, owner, workspace, settings, tmp_path
):
    snapshot = upload(owner, workspace, tmp_path / "first")  # published while the store was up
    settings.ARTIFACT_ROOT = tmp_path / "host-b" / "artifacts"
    store_down(settings)

    root = tmp_path / "other"
    root.mkdir()
    (root / "main.py").write_bytes(b"print(1)\n")
    with (root / "main.py").open("rb") as fh:
        refused = api(owner).post(
            f"/api/v1/workspaces/{workspace.pk}/code/", {"files": [fh], "paths": ["other/main.py"]}, format="multipart"
        )
    assert refused.status_code == 503, refused.content
    assert refused.json()["error"]["code"] == "storage_unavailable" and refused["Retry-After"] == "10"
    assert "Nothing was lost" in refused.json()["error"]["message"]
    assert list(CodeSnapshot.objects.all()) == [snapshot]  # the refused upload left no row
    code_root = code_snapshot_dir(snapshot).parent
    assert not any(p.is_file() for p in code_root.rglob("*"))  # nor files (staging removed too)

    client.force_login(owner)
    page = client.get(
        reverse("code-detail", kwargs={"workspace_id": workspace.pk, "snapshot_id": snapshot.pk}), {"path": "train.py"}
    )
    assert page.status_code == 503 and page["Retry-After"] == "10"
    assert "Storage cannot be reached right now" in page.content.decode()
