"""Upload → ingest job on a real node → a version with schema and profile; bad files fail cleanly."""

import contextlib
import gzip
import io
import os
import signal
import time
from pathlib import Path

import pytest

from compute.jobs.models import Job, JobStatus
from compute.models import Node
from compute.sandbox.tree import descendants
from data.models import DataAsset, DataVersion, Ingest, IngestStatus
from data.services import data_version_path
from tests.conftest import node_log, wait_for

pytestmark = [pytest.mark.worker]

GOOD = (
    "species;island;bill_length_mm;body_mass_g;sex;year\n"
    + "Adelie;Torgersen;39.1;3750;male;2007\n" * 20
    + "Gentoo;Biscoe;46.1;4500;female;2008\n" * 20
    + "Chinstrap;Dream;;;;2009\n" * 5
)


def upload(client, workspace, content: bytes, filename="data.csv", **fields):
    f = io.BytesIO(content)
    f.name = filename
    response = client.post(f"/api/v1/workspaces/{workspace.pk}/data-assets/", {"file": f, **fields}, format="multipart")
    assert response.status_code == 202, response.content
    return response.json()


def settled(ingest_id, timeout=90):
    return wait_for(
        lambda: Ingest.objects.filter(pk=ingest_id, status__in=["ready", "failed"]).first(),
        timeout=timeout,
        message=f"ingest {ingest_id} to finish",
    )


def test_upload_becomes_a_profiled_version_and_a_schema_edit_makes_version_2(
    api, owner, workspace, agent, broker, studio_data_dir
):
    client = api(owner)
    body = upload(client, workspace, GOOD.encode(), filename="penguins.csv", name="penguins", tags="raw, sample")
    ingest = settled(body["id"])
    node = Node.objects.first()
    assert ingest.status == IngestStatus.READY, (ingest.error, node and node_log(studio_data_dir, node))
    version = ingest.version
    assert (version.asset.name, version.version, version.rows, version.columns) == ("penguins", 1, 45, 6)
    assert version.tags == ["raw", "sample"] and version.source_format == "csv"
    assert data_version_path(version).is_file() and len(version.parquet_sha256) == 64
    columns = {c["name"]: c for c in version.profile["column_profiles"]}
    assert columns["species"]["semantic_type"] == "categorical"
    assert columns["bill_length_mm"]["missing"] == 5 and columns["bill_length_mm"]["histogram"]["counts"]

    base = f"/api/v1/workspaces/{workspace.pk}/data-assets/{version.asset_id}/versions/1/"
    preview = client.get(base + "preview/?offset=40&limit=10").json()
    assert preview["total_rows"] == 45 and len(preview["rows"]) == 5 and preview["rows"][0][0] == "Chinstrap"
    csv = b"".join(client.get(base + "download/?format=csv").streaming_content).decode()
    assert csv.splitlines()[0] == "species,island,bill_length_mm,body_mass_g,sex,year" and len(csv.splitlines()) == 46

    edit = client.post(base + "schema/", {"types": {"year": "categorical"}, "exclude": ["island"]}, format="json")
    assert edit.status_code == 202, edit.content
    second = settled(edit.json()["id"])
    assert second.status == IngestStatus.READY, second.error
    v2 = second.version
    assert v2.version == 2 and v2.derived_from == version and v2.columns == 5
    assert {c["name"]: c["semantic_type"] for c in v2.schema["columns"]}["year"] == "categorical"
    version.refresh_from_db()
    assert version.columns == 6  # version 1 is immutable


@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
@pytest.mark.parametrize(
    ("content", "filename", "words", "row"),
    [
        (b"a,b,c\n1,2,3\n4,5\n6,7,8\n", "ragged.csv", "field", 3),
        (b"a,b,c\n", "header.csv", "no data rows", None),
        (b"a,a,b\n1,2,3\n", "dupes.csv", "name", None),
        (gzip.compress(b"a,b\n" + b"1,2\n" * 60_000_000, compresslevel=9), "bomb.csv.gz", "", None),
    ],
)
def test_bad_files_fail_with_a_clear_message_leave_no_version_and_the_node_takes_the_next_job(
    api, owner, workspace, agent, broker, settings, content, filename, words, row
):
    if filename == "bomb.csv.gz":
        settings.STUDIO_UPLOAD_MAX_BYTES = 2 * 1024**3
        words = "expands"
    client = api(owner)
    body = upload(client, workspace, content, filename=filename, name="bad")
    ingest = settled(body["id"])
    assert ingest.status == IngestStatus.FAILED
    assert words.lower() in ingest.error["message"].lower(), ingest.error
    if row:
        assert ingest.error["row"] == row
    assert not DataVersion.objects.exists() and not DataAsset.objects.exists()
    job = wait_for(
        lambda: Job.objects.filter(pk=body["job"], status__in=JobStatus.finished()).first(),
        timeout=30,
        message="the ingest job to finish",
    )
    assert job.status == JobStatus.FAILED and ingest.error["message"][:50] in job.error
    good = settled(upload(client, workspace, GOOD.encode(), name="good")["id"])
    assert good.status == IngestStatus.READY


def test_the_demo_seed_ingests_the_penguins(owner, workspace, agent, broker):
    from portal.demo import demo_data_seed

    demo_data_seed(actor=owner, workspace=workspace)
    ingest = settled(Ingest.objects.get(asset_name="penguins").pk)
    assert ingest.status == IngestStatus.READY and ingest.version.rows == 344


MESSY = "Customer ID,Full name,Signed up,Monthly £,Churned?,Notes\n" + "".join(
    f"C-{i:05d},{['Ana Lima', 'Jo Smith', ''][i % 3]},2024-0{i % 9 + 1}-1{i % 9},"
    f'{"" if i % 7 == 0 else f"{i * 1.25:.2f}"},{["yes", "no"][i % 2]},"said ""hi"", then left"\n'
    for i in range(3_000)
)


def test_a_large_upload_is_parsed_in_a_process_of_its_own_and_its_errors_still_name_the_row(
    api, owner, workspace, agent, broker, node_env, studio_data_dir
):
    node_env["STUDIO_INGEST_OWN_PROCESS_FROM_BYTES"] = "1"  # every file counts as large on this node
    client = api(owner)
    body = upload(client, workspace, MESSY.encode(), filename="customers 2024.csv", name="customers")
    ingest = settled(body["id"])
    node = Node.objects.first()
    assert ingest.status == IngestStatus.READY, (ingest.error, node and node_log(studio_data_dir, node))
    # The job's log lines are flushed in batches, possibly after the ingest turned ready.
    said = "Parsed in a process of its own: peak memory"
    wait_for(
        lambda: Job.objects.get(pk=body["job"]).log.filter(text__startswith=said).exists(),
        timeout=30,
        message="the job's log to say the file was parsed in a process of its own",
    )
    version = ingest.version
    assert (version.rows, version.columns) == (3_000, 6)
    types = {c["name"]: c["semantic_type"] for c in version.schema["columns"]}
    assert types["Signed up"] == "datetime" and types["Monthly £"] == "numeric"
    columns = {c["name"]: c for c in version.profile["column_profiles"]}
    assert columns["Monthly £"]["missing"] == 429 and columns["Full name"]["missing"] == 1_000

    bad = settled(upload(client, workspace, b"a,b\n1,2\n3,4,5\n", filename="bad.csv", name="bad")["id"])
    assert bad.status == IngestStatus.FAILED
    assert (bad.error["code"], bad.error["row"]) == ("ragged_row", 3), bad.error


def _own_processes_under(pid: int) -> list[int]:
    """The ingest helpers among ``pid``'s descendants (the node's job process starts them)."""
    found = []
    for process in descendants(pid):
        with contextlib.suppress(OSError):
            if b"data.dataio.own_process" in Path(f"/proc/{process}/cmdline").read_bytes():
                found.append(process)
    return found


def test_an_ingest_whose_own_process_is_killed_fails_with_a_message_and_the_node_ingests_the_next(
    api, owner, workspace, agent, broker, node_env, studio_data_dir
):
    node_env["STUDIO_INGEST_OWN_PROCESS_FROM_BYTES"] = "1"
    client = api(owner)
    rows = "".join(f"{i},{i * 0.37:.3f},city {i % 90},2024-01-{i % 28 + 1:02d}\n" for i in range(400_000))
    body = upload(client, workspace, ("id,amount,city,day\n" + rows).encode(), filename="big.csv", name="big")
    node = wait_for(lambda: Node.objects.filter(pid__isnull=False).first(), timeout=60, message="a node")
    deadline = time.monotonic() + 60
    while Ingest.objects.get(pk=body["id"]).status not in ("ready", "failed") and time.monotonic() < deadline:
        for pid in _own_processes_under(node.pid):  # the one parsing, and any the job starts instead
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)
    ingest = settled(body["id"])
    assert ingest.status == IngestStatus.FAILED, node_log(studio_data_dir, node)
    assert ingest.error["code"] == "ingest_process_died"
    assert "stopped unexpectedly (signal 9)" in ingest.error["message"], ingest.error
    good = settled(upload(client, workspace, GOOD.encode(), name="good")["id"])
    assert good.status == IngestStatus.READY, good.error
