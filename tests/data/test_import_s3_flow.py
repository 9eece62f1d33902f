"""S3 imports end to end on real node workers against a real S3 API (moto's server, with IAM
authentication): a datastore saved through the API and an object imported as a profiled version;
a wrong key pair and a missing key fail their ingests with a clear error; bad input is a 400 with
the reason; the secret key is never in the database in clear, in an API answer or on a page."""

import json

import pytest
from django.apps import apps
from django.core import serializers

from compute.models import Node
from data.models import Datastore, IngestStatus
from data.services import data_version_path
from tests import s3server
from tests.conftest import node_log
from tests.data.test_import_flow import settled

pytestmark = [pytest.mark.worker, pytest.mark.timeout(600)]

s3_server = s3server.s3_server
s3_bucket = s3server.s3_bucket

CSV = (
    "station,reading date,temp °C,note\n"
    + "".join(
        f"Zürich #{i % 4},2024-03-{1 + i % 28:02d},{'' if i % 9 == 0 else 12 + i % 6},{'ok' * (i % 2)}\n"
        for i in range(80)
    )
).encode()


@pytest.fixture
def node_env(node_env):
    """The nodes may reach the S3 server on 127.0.0.1, as an administrator allows a private MinIO."""
    return node_env | {"STUDIO_IMPORT_ALLOWED_NETWORKS": "127.0.0.1/32", "STUDIO_IMPORT_MAX_BYTES": "100000"}


def create_datastore(client, workspace, server, in_bucket, **changes):
    payload = {
        "name": "lake",
        "kind": "s3",
        "bucket": in_bucket,
        "region": server.region,
        "endpoint_url": server.endpoint_url,
        "access_key_id": server.access_key_id,
        "secret_access_key": server.secret_access_key,
    } | changes
    return client.post(f"/api/v1/workspaces/{workspace.pk}/datastores/", payload, format="json")


def import_s3(client, workspace, **payload):
    return client.post(f"/api/v1/workspaces/{workspace.pk}/data-imports/s3/", payload, format="json")


@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
def test_an_s3_object_becomes_a_version_and_failures_are_clear(
    api, owner, reader, workspace, agent, broker, studio_data_dir, s3_server, s3_bucket, client
):
    s3_server.client().put_object(Bucket=s3_bucket, Key="exports/weather 2024.csv", Body=CSV)
    owner_api = api(owner)
    assert create_datastore(api(reader), workspace, s3_server, s3_bucket).status_code == 403
    missing_bucket = create_datastore(owner_api, workspace, s3_server, s3_bucket, bucket="")
    assert missing_bucket.status_code == 400 and "bucket" in json.dumps(missing_bucket.json())
    no_key = create_datastore(owner_api, workspace, s3_server, s3_bucket, access_key_id="")
    assert no_key.status_code == 400 and "access_key_id" in json.dumps(no_key.json())
    created = create_datastore(owner_api, workspace, s3_server, s3_bucket)
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["kind"], body["bucket"], body["region"]) == ("s3", s3_bucket, s3_server.region)
    assert body["display"].startswith(f"s3://{s3_bucket} at 127.0.0.1:") and s3_server.access_key_id in body["display"]
    wrong = create_datastore(owner_api, workspace, s3_server, s3_bucket, name="wrong", secret_access_key="nope-nope")
    assert wrong.status_code == 201

    good = import_s3(owner_api, workspace, datastore="lake", key="exports/weather 2024.csv", tags="s3")
    assert good.status_code == 202, good.content
    assert good.json()["source_url"] == f"s3://{s3_bucket}/exports/weather 2024.csv"
    denied = import_s3(owner_api, workspace, datastore="wrong", key="exports/weather 2024.csv", name="weather 2024")
    missing = import_s3(owner_api, workspace, datastore="lake", key="exports/nope.csv", name="weather 2024")

    ready = settled(good.json()["id"])
    assert ready.status == IngestStatus.READY, (ready.error, node_log(studio_data_dir, Node.objects.first()))
    version = ready.version
    assert (version.asset.name, version.version, version.rows, version.columns) == ("weather 2024", 1, 80, 4)
    assert version.source_name == "weather 2024.csv" and version.tags == ["s3"] and version.source_size == len(CSV)
    assert data_version_path(version).is_file()
    profiles = {c["name"]: c for c in version.profile["column_profiles"]}
    assert set(profiles) == {"station", "reading date", "temp °C", "note"}
    for ingest_id, code, words in (
        (denied.json()["id"], "access_denied", "access key"),
        (missing.json()["id"], "no_such_key", "no object"),
    ):
        failed = settled(ingest_id)
        assert (failed.status, failed.error.get("code")) == (IngestStatus.FAILED, code), failed.error
        assert words in failed.error["message"] and failed.version is None and failed.job.status == "failed"

    # Bad input is refused before any job, with the reason.
    base = f"/api/v1/workspaces/{workspace.pk}/data-imports/s3/"
    no_object = owner_api.post(base, {"datastore": "lake"}, format="json")
    assert no_object.status_code == 400 and "key" in json.dumps(no_object.json())
    absolute = owner_api.post(base, {"datastore": "lake", "key": "/etc/passwd"}, format="json")
    assert absolute.status_code == 400 and "leading /" in json.dumps(absolute.json())
    assert owner_api.post(base, {"datastore": "nowhere", "key": "a.csv"}, format="json").status_code == 404
    assert api(reader).post(base, {"datastore": "lake", "key": "a.csv"}, format="json").status_code == 403

    # The datastore lists what was imported from it; the secret key shows nowhere.
    lake = Datastore.objects.get(name="lake")
    detail = owner_api.get(f"/api/v1/workspaces/{workspace.pk}/datastores/{lake.pk}/")
    assert [i["id"] for i in detail.json()["imports"]] == sorted([ready.pk, missing.json()["id"]], reverse=True)
    assert detail.json()["imports"][-1]["object_key"] == "exports/weather 2024.csv"
    secret = s3_server.secret_access_key
    dump = "".join(serializers.serialize("json", model.objects.all()) for model in apps.get_models())
    assert "lake" in dump and secret not in dump
    client.force_login(owner)
    pages = [client.get(f"/w/{workspace.pk}/data/datastores/"), client.get(f"/w/{workspace.pk}/data/import/")]
    for response in [detail, owner_api.get(f"/api/v1/workspaces/{workspace.pk}/datastores/"), *pages]:
        assert response.status_code == 200 and secret not in response.content.decode()
    listing = pages[0].content.decode()
    assert "exports/weather 2024.csv" in listing and "version 1</a> (80 rows)" in listing
