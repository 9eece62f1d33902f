"""Every download goes through one helper per resource: the page and the API answer alike."""

import pytest

from compute.jobs.diagnostic import DIAGNOSTIC
from compute.jobs.models import Artifact
from compute.jobs.recovery import job_artifact_dir
from compute.jobs.services import job_submit
from compute.models import TargetKind
from compute.services import target_create
from data.services import data_version_from_file, data_version_path

pytestmark = pytest.mark.django_db


@pytest.fixture
def data_version(owner, workspace, tmp_path):
    source = tmp_path / "small.csv"
    source.write_text("a,b\n1,x\n2,y\n")
    return data_version_from_file(actor=owner, workspace=workspace, path=source, name="small")


def data_download_urls(version):
    workspace_id = version.asset.workspace_id
    return [
        f"/w/{workspace_id}/data/{version.asset_id}/v/{version.version}/download.csv",
        f"/api/v1/workspaces/{workspace_id}/data-assets/{version.asset_id}/versions/{version.version}/download/",
    ]


def test_a_version_whose_stored_schema_no_longer_parses_still_downloads_as_csv_on_page_and_api(
    client, reader, data_version
):
    data_version.schema = {"columns": "not a list"}
    data_version.save(update_fields=["schema"])
    client.force_login(reader)
    for url in data_download_urls(data_version):
        response = client.get(url)
        assert response.status_code == 200, url
        assert b"".join(response.streaming_content).decode().splitlines()[:2] == ["a,b", '1,"x"']


def test_a_version_file_linked_outside_the_artifact_root_is_not_served_by_page_or_api(
    client, reader, data_version, tmp_path
):
    outside = tmp_path / "secret.parquet"
    path = data_version_path(data_version)
    path.replace(outside)
    path.symlink_to(outside)
    client.force_login(reader)
    for url in data_download_urls(data_version):
        assert client.get(url).status_code == 404, url


def test_an_artifact_linked_outside_the_artifact_root_is_not_served_by_page_or_api(client, owner, workspace, tmp_path):
    target = target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu").target
    job = job_submit(actor=owner, workspace=workspace, kind=DIAGNOSTIC, target=target, spec={})
    folder = job_artifact_dir(job)
    folder.mkdir(parents=True)
    (folder / "report.json").write_text("{}")
    (tmp_path / "secret.txt").write_text("secret")
    (folder / "secret.txt").symlink_to(tmp_path / "secret.txt")
    report = Artifact.objects.create(job=job, name="report.json", size=2, sha256="a" * 64)
    secret = Artifact.objects.create(job=job, name="secret.txt", size=6, sha256="b" * 64)
    client.force_login(owner)
    for artifact, expected in ((report, 200), (secret, 404)):
        for url in (
            f"/w/{workspace.pk}/jobs/{job.pk}/artifacts/{artifact.pk}/",
            f"/api/v1/workspaces/{workspace.pk}/jobs/{job.pk}/artifacts/{artifact.pk}/download/",
        ):
            assert client.get(url).status_code == expected, url
