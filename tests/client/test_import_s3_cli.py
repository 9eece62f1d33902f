"""`studio datastore create --bucket` and `studio data import --key` as real processes against a
live studio with real node workers and a real S3 API: the secret key from an environment variable,
never printed; an object imported as a version; a missing object refused on stderr."""

import json

import pytest

from studio.services import token_create
from tests import s3server
from tests.client import test_import_cli

pytestmark = [pytest.mark.worker, pytest.mark.timeout(600)]

s3_server = s3server.s3_server
s3_bucket = s3server.s3_bucket
run = test_import_cli.run  # a fixture: the real `studio` console script in a clean environment


@pytest.fixture
def node_env(node_env):
    return node_env | {"STUDIO_IMPORT_ALLOWED_NETWORKS": "127.0.0.1/32"}


@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
def test_an_s3_datastore_and_an_import_from_the_cli(
    live_server, owner, workspace, agent, broker, run, s3_server, s3_bucket
):
    body = b"id;label;price\n" + b"".join(f"{i};caf\xc3\xa9 {i};{i * 1.5}\n".encode() for i in range(25))
    s3_server.client().put_object(Bucket=s3_bucket, Key="shop/prices.csv", Body=body)
    run("login", live_server.url, "--token", token_create(user=owner, name="cli").plaintext)
    run("workspace", "use", workspace.name)
    where = ["--bucket", s3_bucket, "--region", s3_server.region, "--endpoint-url", s3_server.endpoint_url]
    key_id = ["--access-key-id", s3_server.access_key_id]

    asks = run("datastore", "create", "shop", *where, *key_id, ok=False)
    assert asks.returncode != 0 and "STUDIO_DATASTORE_SECRET_ACCESS_KEY" in asks.stderr
    secret = {"STUDIO_DATASTORE_SECRET_ACCESS_KEY": s3_server.secret_access_key}
    created = run("datastore", "create", "shop", *where, *key_id, env=secret)
    assert f"s3://{s3_bucket}" in created.stdout and "not shown again" in created.stdout
    assert s3_server.secret_access_key not in created.stdout + created.stderr
    listed = json.loads(run("datastore", "list", "--json").stdout)
    assert [(d["name"], d["kind"], d["bucket"]) for d in listed] == [("shop", "s3", s3_bucket)]

    imported = run("data", "import", "--datastore", "shop", "--key", "shop/prices.csv")
    assert "Data asset prices version 1 is ready (25 rows)." in imported.stdout
    missing = run("data", "import", "--datastore", "shop", "--key", "shop/nope.csv", "--name", "prices", ok=False)
    assert missing.returncode == 1 and "There is no object" in missing.stderr
    both = run("data", "import", "--datastore", "shop", "--key", "a.csv", "--query", "SELECT 1", ok=False)
    assert both.returncode != 0 and "not both" in both.stderr
