"""An identical re-upload is spotted by its SHA-256: it makes no duplicate version, and the answer
names the version that already holds the same bytes; "Make a new version anyway" still makes one."""

import io

import pytest

from data.models import DataVersion, Ingest
from data.services import data_version_from_file

pytestmark = pytest.mark.django_db

CSV = b"x,y\n1,2\n3,4\n5,6\n"


def csv_file(content=CSV, name="points.csv"):
    f = io.BytesIO(content)
    f.name = name
    return f


@pytest.fixture
def points_v1(owner, workspace, tmp_path):
    source = tmp_path / "points.csv"
    source.write_bytes(CSV)
    return data_version_from_file(actor=owner, workspace=workspace, path=source, name="points")


def page_upload(client, workspace, content=CSV, **fields):
    body = {"file": csv_file(content), "name": "points", "description": "", "tags": "", **fields}
    return client.post(f"/w/{workspace.pk}/data/upload/", body, HTTP_ACCEPT="application/json")


def test_the_upload_page_answers_same_as_the_version_and_stores_nothing(client, owner, workspace, points_v1, settings):
    client.force_login(owner)
    response = page_upload(client, workspace)
    assert response.status_code == 409, response.content
    body = response.json()
    assert "identical to points v1" in body["errors"]["file"][0]
    assert body["same_as"]["version"] == 1
    assert body["same_as"]["url"] == f"/w/{workspace.pk}/data/{points_v1.asset_id}/v/1/"
    assert Ingest.objects.count() == 1 and DataVersion.objects.count() == 1
    assert not list((settings.ARTIFACT_ROOT / "staging").glob("*"))


def test_make_a_new_version_anyway(client, owner, workspace, points_v1):
    client.force_login(owner)
    response = page_upload(client, workspace, allow_identical="on")
    assert response.status_code == 202, response.content
    assert Ingest.objects.count() == 2


def test_a_changed_file_or_another_asset_is_a_new_version(client, owner, workspace, points_v1):
    client.force_login(owner)
    assert page_upload(client, workspace, content=CSV + b"7,8\n").status_code == 202
    assert page_upload(client, workspace, name="other").status_code == 202


def test_an_identical_file_still_being_ingested_is_named(client, owner, workspace):
    client.force_login(owner)
    first = page_upload(client, workspace)
    assert first.status_code == 202
    again = page_upload(client, workspace)
    assert again.status_code == 409 and again.json()["same_as"]["ingest"] == first.json()["ingest"]


def test_the_api_answers_409_naming_the_version(api, owner, workspace, points_v1):
    client = api(owner)
    url = f"/api/v1/workspaces/{workspace.pk}/data-assets/"
    response = client.post(url, {"file": csv_file(), "name": "points"}, format="multipart")
    assert response.status_code == 409, response.content
    error = response.json()["error"]
    assert error["code"] == "identical_upload" and "points v1" in error["message"]
    forced = client.post(url, {"file": csv_file(), "name": "points", "allow_identical": True}, format="multipart")
    assert forced.status_code == 202


def test_the_page_without_script_shows_the_version_link(client, owner, workspace, points_v1):
    client.force_login(owner)
    body = {"file": csv_file(), "name": "points", "description": "", "tags": ""}
    html = client.post(f"/w/{workspace.pk}/data/upload/", body).content.decode()
    assert "identical to points v1" in html and 'data-testid="same-as"' in html
    assert "Make a new version anyway" in html
