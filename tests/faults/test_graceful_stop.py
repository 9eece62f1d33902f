"""A graceful stop hands running jobs back at once (re-queued with the reason), instead of leaving
them RUNNING until the heartbeat times out. Real node processes, real run command."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from compute.jobs.diagnostic import DIAGNOSTIC
from compute.jobs.models import Job, JobEvent, JobStatus
from compute.jobs.services import job_submit
from compute.models import Node, NodeStatus, TargetKind
from compute.services import instance_stop, target_create
from tests.conftest import REPO, wait_for
from tests.faults.test_run_command_supervision import free_port
from tests.studio.test_run_command import start, wait_for_output

pytestmark = [pytest.mark.worker, pytest.mark.faults]


def test_stopping_the_agent_hands_a_running_job_back_at_once(owner, workspace, agent, broker, settings):
    settings.STUDIO_HEARTBEAT_TIMEOUT = 600  # so only a hand-back, never the reaper, can re-queue it
    cluster = target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu", max_nodes=1).target
    job = job_submit(actor=owner, workspace=workspace, kind=DIAGNOSTIC, target=cluster, spec={"sleep_seconds": 120})
    running = wait_for(
        lambda: Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).first(), timeout=60, message="the job to run"
    )
    node = running.node
    agent.loop.stop()
    started = time.monotonic()
    agent.stop_all()  # what the agent does when the run command is stopped
    took = time.monotonic() - started

    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and job.node is None
    assert job.attempt == 1 and job.max_attempts == running.max_attempts + 1, "the stop did not use up an attempt"
    event = JobEvent.objects.filter(job=job).latest("pk")
    assert event.status == JobStatus.QUEUED and "the studio is stopping: handed back and re-queued" in event.reason
    assert Node.objects.get(pk=node.pk).status == NodeStatus.STOPPED
    assert took < 10, f"the node took {took:.1f} s to stop: its job's process did not exit at once"
    node.refresh_from_db()
    assert not os.path.exists(f"/proc/{node.pid}") or open(f"/proc/{node.pid}/stat").read().split()[2] == "Z"


def test_stopping_a_compute_instance_mid_job_hands_the_job_back_at_once(owner, workspace, agent, broker, settings):
    settings.STUDIO_HEARTBEAT_TIMEOUT = 600  # so only a hand-back, never the reaper, can re-queue it
    instance = target_create(actor=owner, workspace=workspace, kind=TargetKind.INSTANCE, name="mine").target
    job = job_submit(actor=owner, workspace=workspace, kind=DIAGNOSTIC, target=instance, spec={"sleep_seconds": 120})
    running = wait_for(
        lambda: Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).first(), timeout=60, message="the job to run"
    )
    instance_stop(actor=owner, target=instance)  # the agent asks the node to leave
    node = wait_for(
        lambda: Node.objects.filter(pk=running.node_id, status=NodeStatus.STOPPED).first(),
        timeout=15,  # not the 20 s the agent waits before it kills a node whose job runs on
        message="the node to stop",
    )
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and job.attempt == 1, (job.status, job.status_reason)
    assert f"node-{node.pk} was asked to leave: handed back and re-queued" in job.status_reason


SHELL = """
import json, sys
from django.contrib.auth import get_user_model
from compute.models import TargetKind
from compute.services import instance_stop, target_create
from compute.jobs.models import Job, JobEvent
from compute.jobs.services import job_submit
from workspaces.models import Workspace

if sys.argv[1] == "submit":
    user = get_user_model().objects.get(username="admin")
    workspace = Workspace.objects.get(name="Demo")
    cluster = target_create(actor=user, workspace=workspace, kind="cluster", name="graceful", max_nodes=1).target
    job = job_submit(actor=user, workspace=workspace, kind="diagnostic", target=cluster, spec={"sleep_seconds": 300})
    print(json.dumps({"job": job.pk}))
else:
    job = Job.objects.get(pk=int(sys.argv[2]))
    events = list(JobEvent.objects.filter(job=job).order_by("pk").values_list("status", "reason"))
    print(json.dumps({"status": job.status, "attempt": job.attempt, "events": events}))
"""


def studio_shell(data_dir, *args) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env.update(STUDIO_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="studio.settings")
    code = "import django; django.setup()\n" + SHELL
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_sigterm_to_the_run_command_hands_a_running_job_back(tmp_path):
    proc, log = start(tmp_path, free_port())
    try:
        wait_for_output(log, r"Press Ctrl-C")
        job_id = studio_shell(tmp_path, "submit")["job"]
        deadline = time.monotonic() + 120
        while studio_shell(tmp_path, "show", str(job_id))["status"] != "running":
            assert time.monotonic() < deadline, "the job never ran"
            time.sleep(1)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=90)
    job = studio_shell(tmp_path, "show", str(job_id))
    assert job["status"] == "queued", job
    assert job["events"][-1][0] == "queued" and "handed back and re-queued" in job["events"][-1][1], job
