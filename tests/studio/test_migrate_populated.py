"""Migrating a populated database of the previous schema loses no row (issue 9: models move between apps).

The old tree (main at BASE_COMMIT, from git) migrates a fresh database and fills it through its own
services: a workspace, an uploaded CSV ingested to Parquet, a Train job run by a node (events, log,
metrics, artifacts), a registered model version with its model file, a batch scoring job, a job
left queued with its message in the broker, an endpoint with a deployment and a monitoring bucket,
an API token, an upload slot (migrate_populated/populate.py). Then this tree migrates the same
database and data directory, and every table keeps its rows and their ids; the queued job runs on
this tree's code; the objects are reachable through this tree's models and served by its API and
scoring URL, and take new rows (migrate_populated/check.py); and no migration is missing.
Each tree runs in its own subprocess, so each imports its own code; no worker is needed.
"""

import io
import json
import os
import secrets
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings

from tests.conftest import CI, REPO

# main before the job models moved from training/ to compute/ and the data models from workspaces/
# to data/ (issue 9): the schema the first deployment of the moved code migrates from. Keep it pinned.
BASE_COMMIT = "f49dd87"
SCRIPTS = Path(__file__).resolve().parent / "migrate_populated"
# Tables that may gain rows when models move: the migration history, and the content types and
# permissions Django makes for a model's new app label.
GROWING_TABLES = {"django_migrations", "django_content_type", "auth_permission"}
# What populate.py fills, under the previous schema's table names (kept by the moves).
POPULATED_TABLES = [
    "auth_user",
    "workspaces_workspace",
    "workspaces_membership",
    "workspaces_dataasset",
    "workspaces_dataversion",
    "workspaces_ingest",
    "workspaces_uploadslot",
    "compute_computetarget",
    "compute_node",
    "compute_nodesession",
    "compute_servingsession",
    "training_experiment",
    "training_job",
    "training_jobevent",
    "training_joblogline",
    "training_metric",
    "training_artifact",
    "training_registeredmodel",
    "training_modelversion",
    "training_modelalias",
    "endpoints_endpoint",
    "endpoints_deployment",
    "endpoints_monitoringbucket",
    "studio_apitoken",
]


@pytest.fixture(scope="module")
def old_tree(tmp_path_factory) -> Path:
    """The previous schema's tree, checked out from this repository's history."""
    found = (
        shutil.which("git")
        and not subprocess.run(
            ["git", "-C", str(REPO), "cat-file", "-e", f"{BASE_COMMIT}^{{commit}}"], capture_output=True
        ).returncode
    )
    if not found:
        reason = f"commit {BASE_COMMIT} (the previous schema) is not in this clone: a shallow clone, or no git"
        if CI:
            pytest.fail(f"{reason}. CI=true runs in a full clone, so this is a failure.")
        pytest.skip(reason)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", BASE_COMMIT], capture_output=True, check=True)
    tree = tmp_path_factory.mktemp("old-tree")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(tree, filter="data")
    return tree


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """The URL of an empty database of each kind; a PostgreSQL one is created here and dropped after."""
    default = settings.DATABASES["default"]
    on_postgres = "postgresql" in default["ENGINE"]
    if request.param == "sqlite":
        if on_postgres:
            pytest.skip("the SQLite case runs in the suite's SQLite pass")
        yield f"sqlite:///{tmp_path / 'populated.sqlite3'}"
        return
    if not on_postgres:
        pytest.skip("the PostgreSQL case runs when the suite runs on PostgreSQL (DATABASE_URL=postgres://...)")
    import psycopg
    from psycopg import sql

    server = {
        "host": default["HOST"] or "127.0.0.1",
        "port": default["PORT"] or 5432,
        "user": default["USER"],
        "password": default["PASSWORD"] or None,
    }
    name = f"migrate_populated_{secrets.token_hex(4)}"
    with psycopg.connect(dbname="postgres", autocommit=True, **server) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    auth = quote(server["user"], safe="") + (f":{quote(server['password'], safe='')}" if server["password"] else "")
    try:
        yield f"postgres://{auth}@{server['host']}:{server['port']}/{name}"
    finally:
        with psycopg.connect(dbname="postgres", autocommit=True, **server) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def tree_env(database_url: str, data_dir: Path) -> dict:
    """Both trees share the database and the data directory, and nothing else from this process."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "STUDIO_", "CELERY_")) and k not in ("DATABASE_URL", "PYTHONPATH")
    }
    return {
        **env,
        "DJANGO_SETTINGS_MODULE": "studio.settings",
        "DATABASE_URL": database_url,
        "STUDIO_DATA_DIR": str(data_dir),
        "CELERY_BROKER_URL": "filesystem://",  # the jobs' messages stay in the data directory
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def run(tree: Path, *argv, env: dict) -> str:
    """Run the venv's python in `tree` (so it imports that tree's code); its stdout, or fail with its output."""
    done = subprocess.run(
        [sys.executable, *map(str, argv)], cwd=tree, env=env, capture_output=True, text=True, timeout=600
    )
    where = "the old tree" if tree != REPO else "this tree"
    assert done.returncode == 0, (
        f"{' '.join(map(str, argv))} in {where} exited {done.returncode}:\n{done.stdout[-4000:]}\n{done.stderr[-8000:]}"
    )
    return done.stdout


@pytest.mark.database  # its PostgreSQL case makes a database of its own on the pass's server
@pytest.mark.timeout(600)  # about a minute and a half on a quiet machine: eight subprocesses, three small jobs
def test_migrating_a_populated_database_of_the_previous_schema_keeps_every_row_and_serves_it(
    database_url, old_tree, tmp_path
):
    handoff = tmp_path / "handoff.json"
    env = tree_env(database_url, tmp_path / "studio-data")
    run(old_tree, "manage.py", "migrate", "--no-input", env=env)
    run(old_tree, SCRIPTS / "populate.py", handoff, env=env)
    before = json.loads(run(old_tree, SCRIPTS / "count_rows.py", env=env))
    empty = [table for table in POPULATED_TABLES if not before.get(table, {}).get("rows")]
    assert not empty, f"populate.py left these tables of the previous schema empty: {empty}"

    run(REPO, "manage.py", "migrate", "--no-input", env=env)
    # Counted before check.py runs: scoring and the API write rows of their own.
    assert_no_row_lost(before, json.loads(run(REPO, SCRIPTS / "count_rows.py", env=env)))
    run(REPO, SCRIPTS / "check.py", handoff, env=env)
    run(REPO, "manage.py", "makemigrations", "--check", "--dry-run", env=env)


def assert_no_row_lost(before: dict, after: dict) -> None:
    """Every table keeps its rows and their ids; the growing tables may only gain rows (a content type
    that follows its model keeps its id, so the permissions and admin history that refer to it hold)."""
    changed = {
        table: {"before": rows, "after": after.get(table, "the table is gone")}
        for table, rows in before.items()
        if table not in GROWING_TABLES and after.get(table) != rows
    }
    assert not changed, f"the migration changed the rows of {sorted(changed)}: {changed}"
    removed = {
        table: sorted(set(before[table]["ids"]) - set(after[table]["ids"]))
        for table in GROWING_TABLES
        if not set(before[table]["ids"]) <= set(after[table]["ids"])
    }
    assert not removed, f"the migration removed rows (by id) of {removed}"
