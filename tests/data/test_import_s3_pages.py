"""The S3 parts of the Import and Datastores pages: an S3 datastore saved from its form (the secret
key never rendered back, errors in place), an import of a key submitted as an ingest job, the
wrong kind of datastore refused with the reason, and a reader who sees but never changes."""

import pytest

from compute.jobs.models import Job
from data.models import Datastore, DatastoreKind, Ingest, IngestSource

pytestmark = pytest.mark.django_db

SECRET = "wJalrXUtnFEMI/K7MDENG+never-shown"


def page(workspace, path=""):
    return f"/w/{workspace.pk}/data/{path}"


def s3_form(**changes):
    return {
        "kind": "s3",
        "name": "raw lake",
        "bucket": "acme-raw.data",
        "region": "eu-central-1",
        "endpoint_url": "http://minio.internal:9000",
        "access_key_id": "AKIAEXAMPLE123",
        "secret_access_key": SECRET,
    } | changes


def test_an_s3_datastore_and_an_import_of_a_key_from_the_pages(client, owner, workspace):
    client.force_login(owner)
    empty = client.get(page(workspace, "import/")).content.decode()
    assert "No S3 datastore yet." in empty and "#add-s3-datastore" in empty
    stores = client.get(page(workspace, "datastores/")).content.decode()
    assert 'data-testid="datastore-s3-form"' in stores and 'data-testid="datastore-form"' in stores

    for changes, words in (
        ({"bucket": "Bad_Bucket"}, "3–63 lowercase letters"),
        ({"endpoint_url": "http://minio.internal:9000/bucket"}, "no path"),
        ({"endpoint_url": "file:///etc"}, "http:// and https://"),
        ({"region": "EU Central"}, "us-east-1"),
        ({"access_key_id": "has space"}, "no spaces"),
    ):
        refused = client.post(page(workspace, "datastores/"), s3_form(**changes))
        text = refused.content.decode()
        assert refused.status_code == 400 and words in text and SECRET not in text, changes
    saved = client.post(page(workspace, "datastores/"), s3_form(), follow=True)
    text = saved.content.decode()
    assert "s3://acme-raw.data at minio.internal:9000 (eu-central-1), key AKIAEXAMPLE123" in text
    assert SECRET not in text and "Import a key" in text
    datastore = Datastore.objects.get()
    assert datastore.kind == DatastoreKind.S3 and SECRET not in datastore.sealed_secret
    assert (datastore.bucket, datastore.endpoint_url) == ("acme-raw.data", "http://minio.internal:9000")
    # A PostgreSQL datastore saved beside it from its own form.
    client.post(page(workspace, "datastores/"), {"kind": "postgresql", "name": "dwh", "url": "postgresql://etl@db/s"})

    form = client.get(page(workspace, "import/?source=s3&datastore=raw+lake")).content.decode()
    assert 'data-testid="import-s3-form"' in form and '<option value="raw lake" selected>' in form
    assert '<option value="dwh"' in form  # in the query form only
    bad_key = client.post(page(workspace, "import/"), {"source": "s3", "datastore": "raw lake", "key": "/abs.csv"})
    assert bad_key.status_code == 400 and "does not start with /" in bad_key.content.decode()
    wrong_kind = client.post(page(workspace, "import/"), {"source": "s3", "datastore": "dwh", "key": "a.csv"})
    assert wrong_kind.status_code == 400 and "Select a valid choice" in wrong_kind.content.decode()
    done = client.post(
        page(workspace, "import/"),
        {"source": "s3", "datastore": "raw lake", "key": "2024/Q4 sales (eu).csv", "tags": "raw"},
        follow=True,
    )
    ingest = Ingest.objects.get(source_kind=IngestSource.S3)
    assert (ingest.object_key, ingest.asset_name, ingest.tags) == ("2024/Q4 sales (eu).csv", "Q4 sales (eu)", ["raw"])
    assert ingest.source_url == "s3://acme-raw.data/2024/Q4 sales (eu).csv" and ingest.datastore == datastore
    assert Job.objects.get(pk=ingest.job_id).kind == "ingest"
    assert SECRET not in done.content.decode()
    listing = client.get(page(workspace, "datastores/")).content.decode()
    assert "s3://acme-raw.data/2024/Q4 sales (eu).csv" in listing


def test_a_reader_sees_s3_datastores_but_cannot_add_one(client, owner, reader, workspace):
    client.force_login(owner)
    client.post(page(workspace, "datastores/"), s3_form())
    client.force_login(reader)
    view = client.get(page(workspace, "datastores/")).content.decode()
    assert "raw lake" in view and 'data-testid="datastore-s3-form"' not in view and SECRET not in view
    assert client.post(page(workspace, "datastores/"), s3_form(name="mine")).status_code == 403
    assert (
        client.post(page(workspace, "import/"), {"source": "s3", "datastore": "raw lake", "key": "a"}).status_code
        == 403
    )
    assert Datastore.objects.count() == 1 and not Ingest.objects.exists()
