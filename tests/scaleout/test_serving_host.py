"""A model goes from host to host through object storage only, and host C serves it: a messy CSV
uploaded to A's API is ingested on A, a Train job runs on B (which fetches the data version from
object storage and publishes its model there), the model is registered on A, and a deployment on
an inference cluster runs its replica on C (`compute_agent --replicas-only`), which answers A's
scoring URL: A scores nothing itself (STUDIO_SERVING_IN_PROCESS=0)."""

import signal

import pytest

from .conftest import LABEL, messy_csv, stop_node, stop_process, wait_for, wait_for_job

pytestmark = [pytest.mark.worker]


def test_a_model_trained_on_b_through_object_storage_is_served_by_c(studio, network):
    a, b, c = (network.hosts[name] for name in "abc")
    ws = f"workspaces/{studio.workspace}"

    # Uploaded to A, ingested on A (a node of the workspace's default compute, the attached one).
    ingest = studio.ingest(a, name="churn c", content=messy_csv())
    version = ingest["version"]["id"]
    parquet = f"artifacts/workspaces/{studio.workspace}/data/{version}.parquet"
    assert studio.stored_keys(f"workspaces/{studio.workspace}/data/{version}.parquet")
    assert not (studio.root / "host-b" / parquet).exists()

    # Trained on B: the data version comes from object storage, the model goes back there.
    train_node, train_log = studio.start_node(b)
    try:
        spec = {
            "data_version_id": version,
            "target_column": LABEL,
            "algorithm": "logistic_regression",
            "hyperparameters": {},
            "validation": {"method": "holdout", "holdout_fraction": 0.25},
        }
        status, job = studio.api("POST", f"{ws}/jobs/", {"kind": "train", "target": studio.attached, "spec": spec})
        assert status == 201, job
        job = wait_for_job(studio, job["id"], {"completed", "failed", "canceled"}, timeout=180)
        assert job["status"] == "completed", (job, train_log.read_text(errors="replace")[-3000:])
    finally:
        stop_node(train_node)
    assert (studio.root / "host-b" / parquet).exists()  # fetched: only A made it
    assert studio.stored_keys(f"workspaces/{studio.workspace}/jobs/{job['id']}/")  # the model's files, from B
    status, registered = studio.api("POST", f"{ws}/jobs/{job['id']}/register/", {"name": "churn-c"})
    assert status == 201, registered

    # Served by C: its agent starts the deployment's replica, which A's scoring URL forwards to.
    agent, agent_log = studio.start_agent(c)
    try:
        status, cluster = studio.api("POST", f"{ws}/compute/", {"kind": "inference", "name": "serving-c"})
        assert status == 201, cluster
        status, endpoint = studio.api("POST", f"{ws}/endpoints/", {"name": "churn-c"})
        assert status == 201, endpoint
        deployment = {"name": "blue", "model_version": registered["id"], "target": cluster["id"], "replicas": 1}
        status, deployed = studio.api("POST", f"{ws}/endpoints/{endpoint['id']}/deployments/", deployment)
        assert status == 201, deployed

        rows = [
            {"monthly charges": 95, "tenure months": 2, "plan type": "basic plan"},
            {"monthly charges": None, "tenure months": 60, "plan type": None},
        ]

        def scored():
            status, answer = studio.score("churn-c", endpoint["primary_key"], rows)
            assert status in (200, 503), answer  # 503: the replica is still starting
            return answer if status == 200 else None

        answer = wait_for(f"a replica's answer (agent log: {agent_log})", scored, timeout=120, interval=1)
        assert len(answer["predictions"]) == 2 and set(answer["predictions"]) <= {"yes", "no"}, answer
        status, nodes = studio.api("GET", f"{ws}/compute/{cluster['id']}/nodes/")
        assert status == 200, nodes
        serving = [n for n in nodes.get("results", nodes) if n["status"] in ("idle", "busy")]
        assert [(n["hostname"], n["address"].split(":")[0]) for n in serving] == [("host-c", c.address)], nodes
        model = f"artifacts/workspaces/{studio.workspace}/models/{registered['id']}"
        assert (studio.root / "host-c" / model).is_dir()  # C fetched the model from object storage
    finally:
        stop_process(agent, signal.SIGTERM)  # the agent stops its replicas
