"""The Import and Datastores pages: forms, empty states, errors in place, the connection URL never
rendered back, deletion after a confirmation, and roles (a reader sees, never changes)."""

import pytest

from compute.jobs.models import Job
from data import services
from data.dataio import DataError
from data.models import Datastore, Ingest, IngestSource

pytestmark = pytest.mark.django_db

PASSWORD = "pw-never-shown-93"


def page(client, workspace, path=""):
    return f"/w/{workspace.pk}/data/{path}"


def test_empty_states_then_a_datastore_and_both_imports_from_the_pages(client, owner, workspace):
    client.force_login(owner)
    listing = client.get(page(client, workspace)).content.decode()
    assert page(client, workspace, "import/") in listing and page(client, workspace, "datastores/") in listing
    empty = client.get(page(client, workspace, "import/")).content.decode()
    assert "No datastore yet." in empty and 'data-testid="import-url-form"' in empty
    stores = client.get(page(client, workspace, "datastores/")).content.decode()
    assert "No datastore yet." in stores and "Nothing imported from a URL yet." in stores

    url = f"postgresql://etl:{PASSWORD}@db.internal:5433/sales"
    wrong = client.post(page(client, workspace, "datastores/"), {"name": "dwh", "url": "mysql://etl@db/sales"})
    assert wrong.status_code == 400 and "postgresql://" in wrong.content.decode()
    bad_name = client.post(page(client, workspace, "datastores/"), {"name": "bad/name", "url": url})
    assert bad_name.status_code == 400 and PASSWORD not in bad_name.content.decode()  # not rendered back
    saved = client.post(page(client, workspace, "datastores/"), {"name": "dwh", "url": url}, follow=True)
    text = saved.content.decode()
    assert "etl@db.internal:5433/sales" in text and PASSWORD not in text and "Nothing imported from this" in text
    twice = client.post(page(client, workspace, "datastores/"), {"name": "dwh", "url": url})
    assert twice.status_code == 400 and "already has a datastore named dwh" in twice.content.decode()

    form = client.get(page(client, workspace, "import/?source=query&datastore=dwh")).content.decode()
    assert 'data-testid="import-query-form"' in form and '<option value="dwh" selected>' in form
    refused = client.post(
        page(client, workspace, "import/"),
        {"source": "query", "datastore": "dwh", "query": "DELETE FROM sales", "name": "sales"},
    )
    assert refused.status_code == 400 and "Only a SELECT" in refused.content.decode()
    done = client.post(
        page(client, workspace, "import/"),
        {"source": "query", "datastore": "dwh", "query": "SELECT * FROM sales;", "name": "sales"},
        follow=True,
    )
    ingest = Ingest.objects.get(source_kind=IngestSource.QUERY)
    assert (ingest.query, ingest.datastore.name, ingest.asset_name) == ("SELECT * FROM sales", "dwh", "sales")
    assert Job.objects.get(pk=ingest.job_id).kind == "ingest"
    assert "SELECT * FROM sales" in done.content.decode() and PASSWORD not in done.content.decode()

    scheme = client.post(page(client, workspace, "import/"), {"source": "url", "url": "file:///etc/passwd"})
    assert scheme.status_code == 400 and "http:// and https://" in scheme.content.decode()
    client.post(page(client, workspace, "import/"), {"source": "url", "url": "https://example.org/d/rain%20fall.csv"})
    by_url = Ingest.objects.get(source_kind=IngestSource.URL)
    assert (by_url.asset_name, by_url.source_name) == ("rain fall", "rain fall.csv")
    stores = client.get(page(client, workspace, "datastores/")).content.decode()
    assert "https://example.org/d/rain%20fall.csv" in stores and "SELECT * FROM sales" in stores


def test_deleting_a_datastore_asks_first_and_keeps_its_imports(client, owner, reader, workspace):
    client.force_login(owner)
    client.post(page(client, workspace, "datastores/"), {"name": "dwh", "url": "postgresql://etl@db/sales"})
    datastore = Datastore.objects.get()
    client.post(
        page(client, workspace, "import/"),
        {"source": "query", "datastore": "dwh", "query": "SELECT 1 AS one", "name": "one"},
    )
    delete_url = page(client, workspace, f"datastores/{datastore.pk}/delete/")
    confirm = client.get(delete_url)
    assert confirm.status_code == 200 and "Delete the datastore dwh?" in confirm.content.decode()
    assert Datastore.objects.exists()  # a GET only asks

    client.force_login(reader)
    assert client.get(delete_url).status_code == 403 and client.post(delete_url).status_code == 403
    readers_view = client.get(page(client, workspace, "datastores/")).content.decode()
    assert "dwh" in readers_view and 'data-testid="datastore-form"' not in readers_view
    assert (
        client.post(page(client, workspace, "datastores/"), {"name": "x", "url": "postgresql://a@b/c"}).status_code
        == 403
    )

    client.force_login(owner)
    assert client.post(delete_url).status_code == 302
    assert not Datastore.objects.exists()
    ingest = Ingest.objects.get()
    assert ingest.datastore is None and ingest.query == "SELECT 1 AS one"


def test_the_admin_console_shows_a_datastore_without_its_url(client, make_user, owner, workspace):
    client.force_login(owner)
    client.post(page(client, workspace, "datastores/"), {"name": "dwh", "url": f"postgresql://etl:{PASSWORD}@db/s"})
    datastore = Datastore.objects.get()
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    for url in ("/admin/data/datastore/", f"/admin/data/datastore/{datastore.pk}/change/"):
        response = client.get(url)
        assert response.status_code == 200 and "etl@db:5432/s" in response.content.decode()
        assert PASSWORD not in response.content.decode() and datastore.sealed_secret not in response.content.decode()
    assert client.post(f"/admin/data/datastore/{datastore.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not Datastore.objects.exists()


def test_a_fetched_file_past_the_storage_quota_fails_the_import(client, owner, workspace):
    client.force_login(owner)
    client.post(page(client, workspace, "import/"), {"source": "url", "url": "https://example.org/big.csv"})
    ingest = Ingest.objects.get()
    workspace.storage_quota_bytes = 1000
    workspace.save(update_fields=["storage_quota_bytes"])
    with pytest.raises(DataError) as caught:
        services.ingest_source_fetched(ingest=ingest, name="big.csv", size=5000, sha256="0" * 64)
    assert caught.value.code == "quota_exceeded" and "this import would pass it" in caught.value.message
    services.ingest_source_fetched(ingest=Ingest.objects.get(), name="big.csv", size=900, sha256="1" * 64)
    ingest.refresh_from_db()
    assert (ingest.source_name, ingest.source_size, ingest.source_sha256) == ("big.csv", 900, "1" * 64)
