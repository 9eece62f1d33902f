"""Host B joins host A's studio as attached compute, over the network only (its own address, its
own data directory, no route to A's loopback): jobs submitted to A's API run on B, and killing
B's node mid-way through a Train job re-queues the job, which completes once B's node is back."""

import os
import signal
import subprocess
import sys

import pytest

from .conftest import LABEL, messy_csv, stop_node, wait_for_job

pytestmark = [pytest.mark.worker, pytest.mark.faults]


def submit(studio) -> dict:
    status, job = studio.api(
        "POST",
        f"workspaces/{studio.workspace}/jobs/",
        {"kind": "diagnostic", "target": studio.attached, "spec": {}},
    )
    assert status == 201, job
    return job


def test_host_b_reaches_the_studio_only_through_host_a(studio, network):
    """The premise: on B, this machine's loopback PostgreSQL is not there; A's address is."""
    b, a = network.hosts["b"], network.hosts["a"]
    probe = "import socket,sys; s=socket.socket(); s.settimeout(3); sys.exit(s.connect_ex((sys.argv[1], 5432)))"
    assert subprocess.run(b.argv([sys.executable, "-c", probe, "127.0.0.1"]), timeout=30).returncode != 0
    assert subprocess.run(b.argv([sys.executable, "-c", probe, a.address]), timeout=30).returncode == 0


def test_a_job_submitted_to_host_a_runs_on_host_b(studio, network):
    node, log = studio.start_node(network.hosts["b"])
    try:
        job = wait_for_job(studio, submit(studio)["id"], {"completed", "failed", "canceled"})
        assert job["status"] == "completed", (job, log.read_text(errors="replace")[-3000:])
        assert f"Joined as {job['node']};" in log.read_text(errors="replace"), job  # the node B's command made
        assert job["result"]["database"] == "postgresql" and job["result"]["artifacts_writable"]
    finally:
        stop_node(node)


def test_killing_host_bs_node_mid_train_job_requeues_the_job(studio, network):
    """A Train job long enough to be killed in (500 boosting rounds of depth 6 on 15,000 rows, ~9 s
    on a quiet core) reads its data version from object storage on B; the node dies with it, and the
    job runs again on B's next node and publishes its model to object storage."""
    a, b = network.hosts["a"], network.hosts["b"]
    version = studio.ingest(a, name="churn kill", content=messy_csv(rows=20_000))["version"]["id"]
    spec = {
        "data_version_id": version,
        "target_column": LABEL,
        "algorithm": "gradient_boosting",
        "hyperparameters": {"n_estimators": 500, "max_depth": 6, "subsample": 1.0},
        "validation": {"method": "holdout", "holdout_fraction": 0.25},
    }
    first, first_log = studio.start_node(b)
    status, job = studio.api(
        "POST", f"workspaces/{studio.workspace}/jobs/", {"kind": "train", "target": studio.attached, "spec": spec}
    )
    assert status == 201, job
    running = wait_for_job(studio, job["id"], {"running", "completed", "failed"})
    assert running["status"] == "running", (running, first_log.read_text(errors="replace")[-3000:])
    os.killpg(first.pid, signal.SIGKILL)  # the node's worker and its job process
    first.wait(timeout=30)
    # the reconciler on A declares the silent node lost and puts the job back in the queue
    queued = wait_for_job(studio, job["id"], {"queued", "completed", "failed"}, timeout=90)
    assert queued["status"] == "queued", queued
    assert not studio.stored_keys(f"workspaces/{studio.workspace}/jobs/{job['id']}/")  # killed before publishing
    second, second_log = studio.start_node(b)  # B comes back: a new node joins with the token
    try:
        done = wait_for_job(studio, job["id"], {"completed", "failed", "canceled"}, timeout=300)
        assert done["status"] == "completed", (done, second_log.read_text(errors="replace")[-3000:])
        assert done["attempt"] == 2 and done["node"] != running["node"], done
        status, events = studio.api("GET", f"workspaces/{studio.workspace}/jobs/{job['id']}/events/")
        reasons = " | ".join(str(e.get("reason", "")) for e in events.get("results", events))
        assert "re-queued" in reasons and running["node"] in reasons, reasons
    finally:
        stop_node(second)
    assert studio.stored_keys(f"workspaces/{studio.workspace}/jobs/{job['id']}/")  # the model's files, from B
    parquet = studio.root / "host-b" / f"artifacts/workspaces/{studio.workspace}/data/{version}.parquet"
    assert parquet.exists()  # B read the data version from object storage (A ingested it)
