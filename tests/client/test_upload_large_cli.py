"""`studio data upload` of a large messy CSV against a live studio with a real node: the file is
ingested while it arrives (the job's log says so) and the version is the one the form named."""

import hashlib

import pytest

from compute.jobs.models import JobLogLine
from data.models import DataVersion
from studio.services import token_create
from tests.client.test_regression_cli import run  # noqa: F401 - the `studio` command as a fixture
from tests.data.test_ingest_while_uploading import CUSTOMERS

pytestmark = [pytest.mark.worker, pytest.mark.timeout(600)]


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_the_cli_uploads_a_large_file_that_is_ingested_while_it_arrives(
    live_server,
    owner,
    workspace,
    agent,
    broker,
    run,  # noqa: F811 - the fixture imported above
    tmp_path,
    settings,
):
    settings.STUDIO_INGEST_WHILE_UPLOADING_FROM_BYTES = 100_000  # the live server runs in this process
    (tmp_path / "customers 2024.csv").write_bytes(CUSTOMERS)
    run("login", live_server.url, "--token", token_create(user=owner, name="laptop").plaintext)
    run("workspace", "use", "Team")

    uploaded = run("data", "upload", "customers 2024.csv", "--name", "customers (crm)")
    assert "customers (crm) version 1 is ready (60000 rows)" in uploaded.stdout, uploaded.stdout
    version = DataVersion.objects.get(asset__name="customers (crm)")
    assert version.source_sha256 == hashlib.sha256(CUSTOMERS).hexdigest() and version.source_size == len(CUSTOMERS)
    said = JobLogLine.objects.filter(text__startswith="Reading customers 2024.csv (about ").values_list(
        "text", flat=True
    )
    assert [text for text in said if "as it arrives" in text], list(said)
