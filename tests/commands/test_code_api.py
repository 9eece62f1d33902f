"""The code API: uploads (an archive, a folder's parts), stored once, roles, isolation, the file viewer."""

import io
import os
import zipfile

import pytest

from commands.models import CodeSnapshot
from data.uploads import staging_dir
from tests.commands.test_code_snapshots import FILES
from tests.data.test_upload_admission import browser_like

pytestmark = pytest.mark.django_db


def url(workspace, rest="") -> str:
    return f"/api/v1/workspaces/{workspace.pk}/code/{rest}"


def zip_bytes(files=FILES, top="my project") -> bytes:
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(f"{top}/{name}" if top else name, data)
    return raw.getvalue()


def upload(name: str, data: bytes):
    f = io.BytesIO(data)
    f.name = name
    return f


def folder_parts(files=FILES, top="my project") -> dict:
    return {
        "files": [upload(name.rsplit("/", 1)[-1], data) for name, data in files.items()],
        "paths": [f"{top}/{name}" for name in files],
    }


def nothing_staged(settings) -> bool:
    code = settings.ARTIFACT_ROOT / "workspaces"
    staged = [p for p in code.rglob(".staging/*")] if code.exists() else []
    return staged == [] and list(staging_dir().glob("*.part")) == []


def test_an_archive_then_the_same_folder_is_stored_once(api, contributor, workspace, settings):
    client = api(contributor)
    first = client.post(url(workspace), {"file": upload("my project.zip", zip_bytes())}, format="multipart")
    assert first.status_code == 201, first.json()
    body = first.json()
    assert body["name"] == "my project" and body["file_count"] == 3 and len(body["sha256"]) == 64
    assert [f["path"] for f in body["files"]] == sorted(FILES)
    again = client.post(url(workspace), {**folder_parts(), "name": "ignored: already stored"}, format="multipart")
    assert again.status_code == 200, again.json()
    assert again.json()["id"] == body["id"] and CodeSnapshot.objects.count() == 1
    assert nothing_staged(settings)


def test_a_folder_of_parts_with_unicode_paths_and_a_name(api, contributor, workspace):
    response = api(contributor).post(
        url(workspace),
        {**folder_parts(top="dossier \u00e9t\u00e9"), "name": "r\u00e9sum\u00e9 code"},
        format="multipart",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["name"] == "r\u00e9sum\u00e9 code"
    assert [f["path"] for f in response.json()["files"]] == sorted(FILES)


def test_flat_parts_without_paths_use_their_filenames(api, contributor, workspace):
    parts = {"files": [upload("a b.py", b"a"), upload("c.py", b"c")]}
    response = api(contributor).post(url(workspace), parts, format="multipart")
    assert response.status_code == 201 and [f["path"] for f in response.json()["files"]] == ["a b.py", "c.py"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "file"),
        ({"paths": ["a.py"]}, "file"),
        ({"files": [upload("a.py", b"a")], "paths": ["a.py", "b.py"]}, "paths"),
        ({"files": [upload("a.py", b"a")], "paths": ["../../etc/cron.d/x"]}, "files"),
        ({"files": [upload("a.py", b"a")], "paths": ["/etc/passwd"]}, "files"),
        ({"file": upload("notes.zip", b"just text, not a zip")}, "file"),
    ],
)
def test_bad_uploads_get_a_400_naming_the_field(api, contributor, workspace, body, field, settings):
    response = api(contributor).post(url(workspace), body, format="multipart")
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["code"] == "invalid" and field in error["fields"], error
    assert not CodeSnapshot.objects.exists() and nothing_staged(settings)


def test_a_hostile_archive_is_a_400_naming_the_member(api, contributor, workspace, settings):
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w") as zf:
        zf.writestr("ok.py", b"ok")
        zf.writestr("../../outside.py", b"evil")
    response = api(contributor).post(url(workspace), {"file": upload("evil.zip", raw.getvalue())}, format="multipart")
    assert response.status_code == 400
    assert "../../outside.py" in response.json()["error"]["message"]
    assert nothing_staged(settings)


def test_a_reader_gets_403_and_an_outsider_404_before_anything_is_stored(api, reader, outsider, workspace, settings):
    for user, status in ((reader, 403), (outsider, 404)):
        response = api(user).post(url(workspace), {"file": upload("a.zip", zip_bytes())}, format="multipart")
        assert response.status_code == status
    assert not CodeSnapshot.objects.exists() and nothing_staged(settings)


def test_a_session_upload_without_the_csrf_header_is_refused(contributor, workspace):
    client, _ = browser_like(contributor, header_token=False)
    response = client.post(url(workspace), {"file": upload("a.zip", zip_bytes())})
    assert response.status_code == 403 and "CSRF" in response.json()["error"]["message"]
    client, headers = browser_like(contributor)
    assert client.post(url(workspace), {"file": upload("a.zip", zip_bytes())}, **headers).status_code == 201


def test_too_large_code_and_the_quota_are_413(api, contributor, workspace, settings):
    settings.STUDIO_CODE_MAX_BYTES = 1000
    big = {"file": upload("big.zip", zip_bytes({"noise.bin": os.urandom(5000)}))}
    response = api(contributor).post(url(workspace), big, format="multipart")
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"
    # Small when packed, too big unpacked: refused while unpacking, naming the member.
    small = {"file": upload("zeros.zip", zip_bytes({"zeros.bin": b"\0" * 5000}))}
    response = api(contributor).post(url(workspace), small, format="multipart")
    assert response.status_code == 400 and "zeros.bin" in response.json()["error"]["message"]
    settings.STUDIO_CODE_MAX_BYTES = 10**6
    workspace.storage_quota_bytes = 10
    workspace.save()
    response = api(contributor).post(url(workspace), {"file": upload("a.zip", zip_bytes())}, format="multipart")
    assert response.status_code == 413 and response.json()["error"]["code"] == "quota_exceeded"
    assert not CodeSnapshot.objects.exists() and nothing_staged(settings)


def test_more_parts_than_django_takes_is_a_clear_413(api, contributor, workspace, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 3
    parts = {"files": [upload(f"f{i}.py", b"x") for i in range(5)]}
    response = api(contributor).post(url(workspace), parts, format="multipart")
    assert response.status_code == 413 and ".zip" in response.json()["error"]["message"]
    assert nothing_staged(settings)


def test_list_detail_and_other_workspaces_ids(api, contributor, reader, outsider, workspace, other_workspace):
    client = api(contributor)
    ids = []
    for i in range(3):
        response = client.post(
            url(workspace), {"file": upload(f"v{i}.zip", zip_bytes({"a.py": b"%d" % i}))}, format="multipart"
        )
        ids.append(response.json()["id"])
    theirs = api(outsider).post(url(other_workspace), {"file": upload("x.zip", zip_bytes())}, format="multipart")
    page = api(reader).get(url(workspace), {"page_size": 2}).json()
    assert page["count"] == 3 and [s["id"] for s in page["results"]] == ids[::-1][:2]
    assert "files" not in page["results"][0]
    detail = api(reader).get(url(workspace, f"{ids[0]}/")).json()
    assert detail["files"] == [{"path": "a.py", "size": 1, "sha256": detail["files"][0]["sha256"]}]
    other = theirs.json()["id"]
    for rest in (f"{other}/", f"{other}/files/?path=train.py", f"{other}/files/download/?path=train.py"):
        assert api(contributor).get(url(workspace, rest)).status_code == 404
    assert api(outsider).get(url(workspace, f"{ids[0]}/")).status_code == 404


def test_the_file_viewer_gives_text_binary_downloads_and_404_outside_the_manifest(api, reader, contributor, workspace):
    snapshot = api(contributor).post(url(workspace), {"file": upload("a.zip", zip_bytes())}, format="multipart").json()
    client = api(reader)
    base = url(workspace, f"{snapshot['id']}/files/")
    text = client.get(base, {"path": "my lib/\u00fcber caf\u00e9.py"}).json()
    assert (
        text["text"] == FILES["my lib/\u00fcber caf\u00e9.py"].decode() and not text["binary"] and not text["truncated"]
    )
    binary = client.get(base, {"path": "weights.bin"}).json()
    assert binary["binary"] and binary["text"] is None and binary["size"] == 2048
    download = client.get(base + "download/", {"path": "train.py"})
    assert download.status_code == 200 and download["Content-Type"] == "application/octet-stream"
    assert "attachment" in download["Content-Disposition"] and b"".join(download.streaming_content) == FILES["train.py"]
    for path in ("missing.py", "../../../etc/passwd", "my lib"):
        assert client.get(base, {"path": path}).status_code == 404
        assert client.get(base + "download/", {"path": path}).status_code == 404
    assert client.get(base).status_code == 400  # no path


def test_the_schema_documents_the_multipart_upload(api, reader):
    schema = api(reader).get("/api/schema/", HTTP_ACCEPT="application/json").json()
    post = schema["paths"]["/api/v1/workspaces/{workspace_id}/code/"]["post"]
    body = post["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert body["$ref"].endswith("/CodeUploadInRequest")
    fields = schema["components"]["schemas"]["CodeUploadInRequest"]["properties"]
    assert fields["file"]["format"] == "binary" and fields["files"]["items"]["format"] == "binary"
    assert {"200", "201", "413"} <= set(post["responses"])
