"""Code pages: the list with its upload box, a snapshot's files, a file shown or downloaded."""

import zipfile

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from commands.code_services import code_snapshot_create_from_archive
from commands.models import CodeSnapshot

pytestmark = pytest.mark.django_db

FILES = {
    "run me.py": b"print('<script>alert(1)</script>')\n",
    "lib/\u00e9t\u00e9.py": "x = '\u65e5\u672c'\n".encode(),
    "model.bin": b"\0\1\2" * 100,
}


@pytest.fixture
def snapshot(contributor, workspace, tmp_path):
    path = tmp_path / "code.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in FILES.items():
            zf.writestr(f"proj/{name}", data)
    return code_snapshot_create_from_archive(actor=contributor, workspace=workspace, path=path, filename="my code.zip")


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def queries_for(client, url) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def test_the_list_costs_the_same_queries_for_one_snapshot_or_many(contributor, workspace, snapshot):
    client = client_for(contributor)
    one = queries_for(client, f"/w/{workspace.pk}/code/")
    for i in range(8):
        CodeSnapshot.objects.create(workspace=workspace, sha256=f"{i:064x}", name=f"v{i}", created_by=contributor)
    assert queries_for(client, f"/w/{workspace.pk}/code/") == one


def test_the_list_shows_snapshots_and_the_upload_box_to_contributors_only(contributor, reader, workspace, snapshot):
    page = client_for(contributor).get(f"/w/{workspace.pk}/code/")
    text = page.content.decode()
    assert page.status_code == 200 and "my code" in text and 'data-testid="code-upload"' in text
    assert 'name="code_snapshot_id"' in text and f"/api/v1/workspaces/{workspace.pk}/code/" in text
    assert "code_upload.js" in text and "<script>" not in text.split("</head>")[1].replace("<script src", "")
    as_reader = client_for(reader).get(f"/w/{workspace.pk}/code/").content.decode()
    assert "my code" in as_reader and 'data-testid="code-upload"' not in as_reader


def test_the_detail_lists_files_and_shows_one_escaped(reader, workspace, snapshot):
    client = client_for(reader)
    page = client.get(f"/w/{workspace.pk}/code/{snapshot.pk}/").content.decode()
    for name in ("run me.py", "lib/\u00e9t\u00e9.py", "model.bin"):
        assert name in page
    shown = client.get(f"/w/{workspace.pk}/code/{snapshot.pk}/", {"path": "run me.py"}).content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown and "<script>alert" not in shown
    binary = client.get(f"/w/{workspace.pk}/code/{snapshot.pk}/", {"path": "model.bin"}).content.decode()
    assert "binary file" in binary and "download/?path=model.bin" in binary


def test_paths_outside_the_manifest_and_other_workspaces_are_404(
    reader, outsider, workspace, other_workspace, snapshot
):
    client = client_for(reader)
    for path in ("nope.py", "../../../etc/passwd", "lib"):
        assert client.get(f"/w/{workspace.pk}/code/{snapshot.pk}/", {"path": path}).status_code == 404
        assert client.get(f"/w/{workspace.pk}/code/{snapshot.pk}/download/", {"path": path}).status_code == 404
    assert client_for(outsider).get(f"/w/{workspace.pk}/code/{snapshot.pk}/").status_code == 404
    assert client_for(outsider).get(f"/w/{other_workspace.pk}/code/{snapshot.pk}/").status_code == 404


def test_a_download_is_an_attachment_never_a_page(reader, workspace, snapshot):
    response = client_for(reader).get(f"/w/{workspace.pk}/code/{snapshot.pk}/download/", {"path": "run me.py"})
    assert response.status_code == 200 and response["Content-Type"] == "application/octet-stream"
    assert "attachment" in response["Content-Disposition"]
    assert b"".join(response.streaming_content) == FILES["run me.py"]
