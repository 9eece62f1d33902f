"""Imports end to end on real node workers: a URL and a datastore query each become a profiled
version through the API, as an upload does; each limit fails its ingest with a clear error; the
datastore's connection URL is never in the database in clear, nor in an API answer or a page."""

import json

import pytest
from django.apps import apps
from django.core import serializers

from compute.jobs.models import JobStatus
from compute.models import Node
from data.models import Datastore, Ingest, IngestStatus
from data.services import data_version_path
from tests.conftest import node_log, wait_for
from tests.data import import_helpers
from tests.data.import_helpers import POSTGRES_URL

pytestmark = [pytest.mark.worker, pytest.mark.timeout(600)]

http_files = import_helpers.http_files
pg_schema = import_helpers.pg_schema

PASSWORD = "sekret-pw-4711"  # trust authentication ignores it; it must never show
SEALED_URL = POSTGRES_URL.replace("postgres@", f"postgres:{PASSWORD}@")


@pytest.fixture
def node_env(node_env):
    """The nodes' settings: loopback allowed only as 127.0.0.1, and small limits to reach."""
    return node_env | {
        "STUDIO_IMPORT_ALLOWED_NETWORKS": "127.0.0.1/32",
        "STUDIO_IMPORT_MAX_BYTES": "100000",
        "STUDIO_IMPORT_STATEMENT_TIMEOUT_MS": "1500",
        "STUDIO_IMPORT_MAX_ROWS": "50",
    }


def settled(ingest_id, timeout=120):
    return wait_for(
        # The ingest row ends inside its job, a moment before the job's own status does.
        lambda: Ingest.objects.filter(
            pk=ingest_id, status__in=["ready", "failed"], job__status__in=JobStatus.finished()
        ).first(),
        timeout=timeout,
        message=f"ingest {ingest_id} to finish",
    )


def submit(client, workspace, **payload):
    kind = "url" if "url" in payload else "query"
    response = client.post(f"/api/v1/workspaces/{workspace.pk}/data-imports/{kind}/", payload, format="json")
    assert response.status_code == 202, response.content
    return response.json()["id"]


@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
def test_url_imports_make_versions_and_each_limit_fails_its_ingest(
    api, owner, workspace, agent, broker, studio_data_dir, http_files
):
    client = api(owner)
    good = settled(submit(client, workspace, url=f"{http_files}/hop/2", name="weather", tags="web"))
    assert good.status == IngestStatus.READY, (good.error, node_log(studio_data_dir, Node.objects.first()))
    version = good.version
    assert (version.asset.name, version.version, version.rows, version.columns) == ("weather", 1, 60, 3)
    assert version.source_name == "data.csv" and version.source_format == "csv" and version.tags == ["web"]
    assert data_version_path(version).is_file()
    assert {c["name"] for c in version.profile["column_profiles"]} == {"city", "temperature", "rain"}
    body = client.get(f"/api/v1/workspaces/{workspace.pk}/ingests/{good.pk}/").json()
    assert body["source_kind"] == "url" and body["source_url"] == f"{http_files}/hop/2"
    assert body["version"]["version"] == 1

    failures = {
        "too_many_redirects": f"{http_files}/hop/5",
        "too_large": f"{http_files}/big-unannounced.csv",
        "private_address": f"http://127.0.0.2:{http_files.rsplit(':', 1)[1]}/data.csv",
    }
    ids = {code: submit(client, workspace, url=url, name="weather") for code, url in failures.items()}
    for code, ingest_id in ids.items():
        ingest = settled(ingest_id)
        assert (ingest.status, ingest.error.get("code")) == (IngestStatus.FAILED, code), ingest.error
        assert ingest.error["message"] and ingest.version is None
    assert Ingest.objects.get(pk=ids["too_large"]).job.status == "failed"

    bad = client.post(
        f"/api/v1/workspaces/{workspace.pk}/data-imports/url/", {"url": "ftp://127.0.0.1/x.csv"}, format="json"
    )
    assert bad.status_code == 400 and "http://" in json.dumps(bad.json())
    assert Ingest.objects.filter(workspace=workspace).count() == 4


@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
def test_query_imports_run_read_only_within_limits_and_the_url_never_shows(
    api, owner, reader, workspace, agent, broker, studio_data_dir, pg_schema, client
):
    owner_api = api(owner)
    base = f"/api/v1/workspaces/{workspace.pk}/datastores/"
    assert api(reader).post(base, {"name": "warehouse", "url": SEALED_URL}, format="json").status_code == 403
    created = owner_api.post(base, {"name": "warehouse", "url": SEALED_URL, "description": "sales"}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["display"] == "postgres@127.0.0.1:5432/postgres"
    refused = owner_api.post(base, {"name": "bad", "url": "mysql://x@y/z"}, format="json")
    assert refused.status_code == 400 and "postgresql://" in json.dumps(refused.json())

    good = settled(
        submit(
            owner_api,
            workspace,
            datastore="warehouse",
            query=f"SELECT region, amount, sold_on FROM {pg_schema}.sales ORDER BY id",  # noqa: S608
            name="sales",
        )
    )
    assert good.status == IngestStatus.READY, (good.error, node_log(studio_data_dir, Node.objects.first()))
    version = good.version
    assert (version.asset.name, version.rows, version.columns, version.source_name) == (
        "sales",
        40,
        3,
        "query on warehouse",
    )
    types = {c["name"]: c["semantic_type"] for c in version.profile["column_profiles"]}
    assert types["amount"] == "numeric" and types["region"] == "categorical", types

    failures = {
        "read_only": f"SELECT nextval('{pg_schema}.counter')",
        "statement_timeout": "SELECT pg_sleep(30)",
        "too_many_rows": "SELECT * FROM generate_series(1, 51)",
    }
    ids = {
        code: submit(owner_api, workspace, datastore="warehouse", query=q, name="sales") for code, q in failures.items()
    }
    for code, ingest_id in ids.items():
        ingest = settled(ingest_id)
        assert (ingest.status, ingest.error.get("code")) == (IngestStatus.FAILED, code), ingest.error
    write = owner_api.post(
        f"/api/v1/workspaces/{workspace.pk}/data-imports/query/",
        {"datastore": "warehouse", "query": f"DROP SCHEMA {pg_schema} CASCADE", "name": "x"},
        format="json",
    )
    assert write.status_code == 400 and "SELECT" in json.dumps(write.json())

    # The password is sealed: nowhere in the database in clear, in an API answer or on a page.
    datastore = Datastore.objects.get()
    assert PASSWORD not in datastore.sealed_secret and datastore.display == "postgres@127.0.0.1:5432/postgres"
    dump = "".join(serializers.serialize("json", model.objects.all()) for model in apps.get_models())
    assert "warehouse" in dump and PASSWORD not in dump
    detail = owner_api.get(f"{base}{datastore.pk}/")
    answers = [owner_api.get(base), detail, owner_api.get(f"/api/v1/workspaces/{workspace.pk}/ingests/")]
    assert [i["id"] for i in detail.json()["imports"]] == sorted([good.pk, *ids.values()], reverse=True)
    client.force_login(owner)
    pages = [
        client.get(f"/w/{workspace.pk}/data/datastores/"),
        client.get(f"/w/{workspace.pk}/data/import/"),
        client.get(f"/w/{workspace.pk}/data/uploads/{good.pk}/"),
    ]
    for response in answers + pages:
        assert response.status_code == 200 and PASSWORD not in response.content.decode()
    listing = pages[0].content.decode()
    assert f"{pg_schema}.sales" in listing and "version 1</a> (40 rows)" in listing and "read-only" in listing
