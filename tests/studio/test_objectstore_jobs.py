"""Job outputs through object storage (moto's server): a file a running job sends through the run
API is published with its SHA-256 as it is recorded, and a host that never had it serves its
download after fetching and checking it."""

import hashlib

import pytest

from compute.jobs.models import Artifact, Job, JobStatus
from compute.jobs.recovery import job_artifact_dir
from compute.jobs.tokens import job_token_issue
from tests import s3server
from tests.commands.test_run_api import client_with, put
from tests.studio import test_objectstore

pytestmark = pytest.mark.django_db

s3_server = s3server.s3_server
s3_bucket = s3server.s3_bucket
object_storage = test_objectstore.object_storage


def test_a_job_output_is_published_and_downloaded_on_another_host(
    object_storage, s3_server, api, owner, workspace, settings, tmp_path
):
    job = Job.objects.create(
        workspace=workspace, kind="command", status=JobStatus.RUNNING, submitted_by=owner, attempt=1
    )
    content = "epoch,loss\n" + "".join(f"{i},{1 / (i + 1):.4f}\n" for i in range(500))
    response = put(client_with(job_token_issue(job=job)), "metrics/loss ü.csv", content.encode())
    assert response.status_code == 201, response.content
    artifact = Artifact.objects.get(job=job)
    relative = (job_artifact_dir(job) / artifact.name).relative_to(settings.ARTIFACT_ROOT).as_posix()
    stored = s3_server.client().head_object(Bucket=object_storage, Key=f"studio prefix/{relative}")
    assert stored["Metadata"] == {"sha256": hashlib.sha256(content.encode()).hexdigest()}

    settings.ARTIFACT_ROOT = tmp_path / "portal" / "artifacts"  # the portal host never had the file
    url = f"/api/v1/workspaces/{workspace.pk}/jobs/{job.pk}/artifacts/{artifact.pk}/download/"
    download = api(owner).get(url)
    assert download.status_code == 200 and b"".join(download.streaming_content) == content.encode()
    assert (job_artifact_dir(job) / artifact.name).is_file()
