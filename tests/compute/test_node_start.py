"""A node claims its first job without importing the ML stack (issue 15, "Node start"): job kinds
and submit forms are registered by dotted path and imported when first needed, and a node's
worker skips Django's system checks (which load every view). Importing pandas, scikit-learn,
LightGBM and the rest took a node ~3 s before its first job."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from compute.agent import NODE_WORKER_ENV
from compute.jobs import kinds, runner
from compute.jobs.diagnostic import DIAGNOSTIC, ML_LIBRARIES
from compute.jobs.kinds import handler_for
from compute.jobs.models import Job, JobStatus
from compute.jobs.services import job_submit
from compute.models import TargetKind
from compute.services import target_create
from tests.conftest import node_log, wait_for

REPO = Path(__file__).resolve().parents[2]
# pyarrow still comes with Django start: the data app's services import the ingest engine (data.dataio),
# whose package imports pyarrow (~0.1 s). The rest must wait for a job that needs them.
NOT_AT_START = tuple(name for name in ML_LIBRARIES if name != "pyarrow")
# Nor boto3 (~10 MB a process) without object storage: only the S3 backend and S3 imports load it.
NOT_WITHOUT_OBJECT_STORAGE = ("boto3", "botocore", "storages.backends.s3")

# What a node's worker process does before it takes a job: set Django up (every app's ready()
# and the admin's modules), then import every app's tasks as Celery does on its start.
WORKER_START = """
import json, sys
import django
django.setup()
from studio.celery import app
app.loader.import_default_modules()
print(json.dumps({"loaded": sorted(m for m in sys.argv[1].split(",") if m in sys.modules),
                  "tasks": [m for m in ("compute.jobs.tasks", "data.tasks", "commands.tasks") if m in sys.modules]}))
"""


def test_a_nodes_worker_starts_without_the_ml_stack(tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_ALLOW_ASYNC_UNSAFE")},
        **NODE_WORKER_ENV,
        "DJANGO_SETTINGS_MODULE": "studio.settings",
        "STUDIO_DATA_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-c", WORKER_START, ",".join(ML_LIBRARIES + NOT_WITHOUT_OBJECT_STORAGE)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["tasks"] == ["compute.jobs.tasks", "data.tasks", "commands.tasks"]  # it did import them
    assert [name for name in report["loaded"] if name in NOT_AT_START + NOT_WITHOUT_OBJECT_STORAGE] == []


def test_a_kinds_module_is_imported_when_its_handler_is_first_needed():
    handler = handler_for("train")
    assert type(handler).__module__ == "training.kinds.train"
    assert handler_for("train") is handler  # built once


@pytest.mark.worker
@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_a_node_claims_its_first_job_with_no_ml_library_loaded(owner, workspace, broker, agent, studio_data_dir):
    cluster = target_create(
        actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cold", min_nodes=0, max_nodes=1
    ).target
    job = job_submit(actor=owner, workspace=workspace, kind=DIAGNOSTIC, target=cluster, spec={})
    done = wait_for(
        lambda: Job.objects.filter(pk=job.pk, status__in=JobStatus.finished()).first(), timeout=120, message="done"
    )
    assert done.status == JobStatus.COMPLETED, (done.error, node_log(studio_data_dir, done.node))
    loaded = done.result["ml_libraries_loaded"]
    assert [name for name in loaded if name in NOT_AT_START] == [], loaded


def test_a_kind_whose_module_fails_to_import_fails_its_job(owner, workspace, transactional_db, monkeypatch):
    """The kind's module is imported by its job on the node: an import error fails the job with
    its traceback in the log (it used to stop Django from starting), and the node goes on."""
    monkeypatch.setitem(kinds._PATHS, "broken_import", "tests.compute.no_such_module.BrokenJob")
    cluster = target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu").target
    job = job_submit(actor=owner, workspace=workspace, kind=DIAGNOSTIC, target=cluster, spec={})
    Job.objects.filter(pk=job.pk).update(kind="broken_import")  # as if its kind's module broke since
    runner.run_job(job.pk)  # what the node's task does with the job's id: it returns
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error == "ModuleNotFoundError: No module named 'tests.compute.no_such_module'"
    assert "Traceback" in "\n".join(job.log.values_list("text", flat=True))
