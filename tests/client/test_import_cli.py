"""`studio datastore` and `studio data import` as real processes against a live studio with real
node workers: a datastore saved from an environment variable (its password never printed), a
query and a URL imported as versions, refusals on stderr with a non-zero exit."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from studio.services import token_create
from tests.data import import_helpers
from tests.data.import_helpers import POSTGRES_URL

pytestmark = [pytest.mark.worker, pytest.mark.timeout(600)]

STUDIO = Path(sys.executable).with_name("studio")
PASSWORD = "cli-pw-never-printed-5"

http_files = import_helpers.http_files
pg_schema = import_helpers.pg_schema


@pytest.fixture
def node_env(node_env):
    return node_env | {"STUDIO_IMPORT_ALLOWED_NETWORKS": "127.0.0.1/32"}


@pytest.fixture
def run(tmp_path):
    """run(*args, env=...) -> CompletedProcess of the real `studio` console script, in a clean environment."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "STUDIO_", "DATABASE"))}
    base |= {"HOME": str(tmp_path), "STUDIO_CONFIG": str(tmp_path / "studio.json"), "PYTHONIOENCODING": "utf-8"}
    argv0 = [str(STUDIO)] if STUDIO.exists() else [sys.executable, "-m", "studio_client"]

    def run(*args, ok=True, env=None):
        done = subprocess.run(
            [*argv0, *map(str, args)],
            capture_output=True,
            text=True,
            env=base | (env or {}),
            cwd=tmp_path,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )
        if ok:
            assert done.returncode == 0, (args, done.stdout[-3000:], done.stderr[-3000:])
        return done

    return run


@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
def test_datastore_and_imports_from_the_cli(live_server, owner, workspace, agent, broker, run, http_files, pg_schema):
    run("login", live_server.url, "--token", token_create(user=owner, name="cli").plaintext)
    run("workspace", "use", workspace.name)

    asks = run("datastore", "create", "warehouse", ok=False)
    assert asks.returncode != 0 and "STUDIO_DATASTORE_URL" in asks.stderr  # no terminal to ask on
    sealed = POSTGRES_URL.replace("postgres@", f"postgres:{PASSWORD}@")
    created = run("datastore", "create", "warehouse", env={"STUDIO_DATASTORE_URL": sealed})
    assert "postgres@127.0.0.1:5432/postgres" in created.stdout and "not shown again" in created.stdout
    listed = json.loads(run("datastore", "list", "--json").stdout)
    assert [(d["name"], d["display"]) for d in listed] == [("warehouse", "postgres@127.0.0.1:5432/postgres")]

    query = f"SELECT id, region, amount FROM {pg_schema}.sales WHERE id <= 30"  # noqa: S608
    imported = run("data", "import", "--datastore", "warehouse", "--query", query, "--name", "sales")
    assert "Data asset sales version 1 is ready (30 rows)." in imported.stdout
    by_url = run("data", "import", "--url", f"{http_files}/data.csv", "--tags", "web")
    assert "Data asset data version 1 is ready (60 rows)." in by_url.stdout  # named after the file
    redirected = run("data", "import", "--url", f"{http_files}/hop/1", "--name", "7", "--json")
    assert json.loads(redirected.stdout)["version"]["rows"] == 60  # a name that looks like an id
    assert json.loads(run("datastore", "list", "--json").stdout)[0]["import_count"] == 1

    scheme = run("data", "import", "--url", "ftp://127.0.0.1/data.csv", ok=False)
    assert scheme.returncode == 1 and "http://" in scheme.stderr
    redirects = run("data", "import", "--url", f"{http_files}/hop/5", "--name", "x", ok=False)
    assert redirects.returncode == 1 and "redirects more than 5 times" in redirects.stderr
    write = run("data", "import", "--datastore", "warehouse", "--query", "DELETE FROM t", "--name", "x", ok=False)
    assert write.returncode == 1 and "Only a SELECT" in write.stderr
    usage = run("data", "import", "--datastore", "warehouse", ok=False)
    assert usage.returncode != 0 and "--query" in usage.stderr
    for done in (created, imported, by_url, scheme, redirects, write):
        assert PASSWORD not in done.stdout + done.stderr
    run("datastore", "delete", "warehouse")
    assert json.loads(run("datastore", "list", "--json").stdout) == []
