"""A per-workspace storage quota (R10): bytes of data versions, job artifacts, model files and
pending uploads, summed from the sizes recorded in the database; shown on the workspace page and
in the API; uploads and jobs past it refused with a clear message, before anything is stored."""

import io

import pytest
from django.template.defaultfilters import filesizeformat

from compute.jobs.diagnostic import DIAGNOSTIC
from compute.jobs.models import Artifact, Job
from compute.jobs.services import job_submit
from compute.services import default_cluster_for
from data.models import Ingest
from workspaces.selectors import workspace_storage_used

pytestmark = pytest.mark.django_db


def csv_file(content: bytes, name: str = "more.csv"):
    f = io.BytesIO(content)
    f.name = name
    return f


def stored_files(settings) -> list[str]:
    root = settings.ARTIFACT_ROOT
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_usage_sums_data_versions_artifacts_and_pending_uploads(api, owner, workspace, penguins):
    job = job_submit(actor=owner, workspace=workspace, kind=DIAGNOSTIC, target=default_cluster_for(workspace), spec={})
    Artifact.objects.create(job=job, name="report.json", size=12_345, sha256="0" * 64)
    response = api(owner).post(
        f"/api/v1/workspaces/{workspace.pk}/data-assets/", {"file": csv_file(b"x,y\n1,2\n")}, format="multipart"
    )
    assert response.status_code == 202, response.content
    pending = Ingest.objects.get(pk=response.json()["id"]).source_size
    assert penguins.parquet_size > 0 and pending > 0
    assert workspace_storage_used(workspace=workspace) == penguins.parquet_size + 12_345 + pending


def test_the_workspace_page_and_api_show_usage_and_quota(client, api, reader, workspace, penguins, settings):
    settings.STUDIO_WORKSPACE_STORAGE_QUOTA_BYTES = 10 * 1024**2
    client.force_login(reader)
    page = client.get(f"/w/{workspace.pk}/").content.decode()
    assert f"{filesizeformat(penguins.parquet_size)}</strong> of {filesizeformat(10 * 1024**2)} used" in page
    detail = api(reader).get(f"/api/v1/workspaces/{workspace.pk}/").json()
    assert detail["storage_used_bytes"] == penguins.parquet_size
    assert detail["storage_quota_bytes"] == 10 * 1024**2
    listed = api(reader).get("/api/v1/workspaces/").json()["results"][0]
    assert listed["storage_used_bytes"] == penguins.parquet_size

    workspace.storage_quota_bytes = 5_000  # set by staff in the admin
    workspace.save()
    assert api(reader).get(f"/api/v1/workspaces/{workspace.pk}/").json()["storage_quota_bytes"] == 5_000
    assert "The storage quota is reached" in client.get(f"/w/{workspace.pk}/").content.decode()


def test_staff_change_a_workspace_quota_in_the_admin(client, make_user, workspace):
    staff = make_user("root", is_staff=True, is_superuser=True)
    client.force_login(staff)
    form = client.get(f"/admin/workspaces/workspace/{workspace.pk}/change/").content.decode()
    assert 'name="storage_quota_bytes"' in form


@pytest.mark.parametrize("route", ["api", "page"])
def test_an_upload_past_the_quota_is_refused_before_it_is_stored(
    route, client, api, owner, workspace, penguins, settings
):
    workspace.storage_quota_bytes = penguins.parquet_size + 1_000
    workspace.save()
    body = {"file": csv_file(b"a,b\n" + b"1,2\n" * 100_000)}  # 400 kB announced: refused unread
    if route == "api":
        response = api(owner).post(f"/api/v1/workspaces/{workspace.pk}/data-assets/", body, format="multipart")
        error = response.json()["error"]
        assert error["code"] == "quota_exceeded"
        message = error["message"]
    else:
        client.force_login(owner)
        response = client.post(f"/w/{workspace.pk}/data/upload/", body, HTTP_ACCEPT="application/json")
        message = response.json()["errors"]["file"][0]
    assert response.status_code == 413
    assert "storage quota" in message and filesizeformat(penguins.parquet_size + 1_000) in message
    assert stored_files(settings) == [f"workspaces/{workspace.pk}/data/{penguins.pk}.parquet"]
    assert Ingest.objects.count() == 1  # the penguins' own


def test_a_small_upload_that_passes_the_quota_once_streamed_is_removed(api, owner, workspace, penguins, settings):
    """The Content-Length check leaves room for the multipart framing; the exact size is checked
    once the file is in staging, and the file removed."""
    workspace.storage_quota_bytes = penguins.parquet_size + 100
    workspace.save()
    response = api(owner).post(
        f"/api/v1/workspaces/{workspace.pk}/data-assets/",
        {"file": csv_file(b"a,b\n" + b"1,2\n" * 100)},
        format="multipart",
    )
    assert response.status_code == 413 and response.json()["error"]["code"] == "quota_exceeded"
    assert stored_files(settings) == [f"workspaces/{workspace.pk}/data/{penguins.pk}.parquet"]
    assert Ingest.objects.count() == 1  # the penguins' own


def test_a_job_is_refused_once_the_workspace_is_full(api, contributor, workspace, penguins):
    target = default_cluster_for(workspace)
    workspace.storage_quota_bytes = penguins.parquet_size
    workspace.save()
    submit = {"kind": "diagnostic", "target": target.pk, "spec": {"sleep_seconds": 1}}
    refused = api(contributor).post(f"/api/v1/workspaces/{workspace.pk}/jobs/", submit, format="json")
    assert refused.status_code == 400, refused.content
    assert "storage quota" in refused.json()["error"]["message"]
    assert not Job.objects.exists()

    workspace.storage_quota_bytes = penguins.parquet_size + 1
    workspace.save()
    accepted = api(contributor).post(f"/api/v1/workspaces/{workspace.pk}/jobs/", submit, format="json")
    assert accepted.status_code == 201, accepted.content
