"""`studio automl create --task regression` as a real process against a live studio with real
node workers: the run reaches Completed with its task, `--json` keeps the job's shape, and a
regression on a text column is refused naming the field; the registered model is deployed, answers
numbers through `studio endpoint invoke`, and its monitoring shows prediction drift. The Python
client takes `task=` too."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from studio_client import Studio

from compute.models import TargetKind
from compute.services import target_create
from data.services import data_version_from_file
from endpoints import serving
from studio.services import token_create
from tests.training.regression_data import TARGET, write_houses

pytestmark = [pytest.mark.worker, pytest.mark.timeout(300)]

CLIENT = Path(__file__).resolve().parents[2] / "client"
STUDIO = Path(sys.executable).with_name("studio")


@pytest.fixture
def run(tmp_path):
    """run(*args) -> CompletedProcess of the `studio` command, importing this repository's client."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "STUDIO_", "DATABASE"))}
    env |= {
        "HOME": str(tmp_path),
        "STUDIO_CONFIG": str(tmp_path / "studio.json"),
        "PYTHONIOENCODING": "utf-8",
        "PYTHONPATH": str(CLIENT),
    }
    argv0 = [str(STUDIO)] if STUDIO.exists() else [sys.executable, "-m", "studio_client"]

    def run(*args, ok=True):
        done = subprocess.run(
            [*argv0, *map(str, args)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=240
        )
        if ok:
            assert done.returncode == 0, (args, done.stdout[-3000:], done.stderr[-3000:])
        return done

    return run


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_automl_create_task_regression_reaches_completed(
    live_server, owner, workspace, agent, broker, reconciler, run, tmp_path
):
    source = tmp_path / "houses ü.csv"
    write_houses(source, rows=80)
    data_version_from_file(actor=owner, workspace=workspace, path=source, name="houses (é)")
    target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu", min_nodes=1, max_nodes=1)
    target_create(actor=owner, workspace=workspace, kind=TargetKind.INFERENCE, name="serving")
    token = token_create(user=owner, name="laptop (cli)").plaintext
    run("login", live_server.url, "--token", token)
    run("workspace", "use", "Team")

    refused = run(
        "automl", "create", "--data", "houses (é):1", "--target-column", "Neighbourhood / zone",
        "--task", "regression", "--compute", "cpu", "--json", ok=False,
    )  # fmt: skip
    assert refused.returncode == 1 and "target_column" in json.loads(refused.stdout)["error"]["fields"]

    started = json.loads(
        run(
            "automl", "create", "--data", "houses (é):1", "--target-column", TARGET, "--task", "regression",
            "--compute", "cpu", "--metric", "mae", "--max-trials", 2, "--max-concurrent-trials", 1,
            "--timeout", 60, "--trial-timeout", 20, "--allowed-algorithms", "ridge,lightgbm", "--name", "Prices é",
            "--register-as", "house-prices", "--wait", "--json",
        ).stdout
    )  # fmt: skip
    assert started["status"] == "completed", started
    assert started["kind"] == "automl" and started["task"] == "regression" and started["display_name"] == "Prices é"
    assert started["spec"]["automl"]["primary_metric"] == "mae"
    shown = json.loads(run("job", "show", started["id"], "--json").stdout)
    assert shown["task"] == "regression" and set(shown) == set(started)

    # Registered as a regression, deployed, invoked: numbers come back; monitoring bins them.
    models = json.loads(run("model", "list", "--json").stdout)
    assert [(m["name"], m["latest_version"]) for m in models] == [("house-prices", 1)]
    run("endpoint", "create", "prices-api")
    deployed = json.loads(
        run("endpoint", "deploy", "prices-api", "--name", "blue", "--model", "house-prices", "--compute", "serving",
            "--json").stdout
    )  # fmt: skip
    assert deployed["status"] == "ready", deployed
    run("endpoint", "traffic", "prices-api", "blue=100")
    houses = [
        {"Listing ID": "H-1", "Lot Area (sq ft)": 12000, "Neighbourhood / zone": "Süd", "Sold on": "2024-05-03",
         "Has garage? (yes/no)": "yes", "Notes": "close to the école"},
        {"Listing ID": "H-2", "Lot Area (sq ft)": None, "Neighbourhood / zone": "new zone", "Sold on": None,
         "Has garage? (yes/no)": "no", "Notes": ""},
    ]  # fmt: skip
    scored = json.loads(run("endpoint", "invoke", "prices-api", "--data", json.dumps(houses), "--json").stdout)
    predictions = scored["predictions"]
    assert len(predictions) == 2 and all(isinstance(p, float) for p in predictions), scored
    assert 20_000 < predictions[0] < 400_000 and "probabilities" not in scored
    serving.monitor.flush()
    monitoring = json.loads(run("endpoint", "monitoring", "prices-api", "--json").stdout)
    drift = monitoring["deployments"]["blue"]["prediction_drift"]
    assert drift["rows"] == 2 and drift["status"], drift
    assert "prediction drift" in run("endpoint", "monitoring", "prices-api").stdout

    # The Python client the CLI is made of.
    ws = Studio(live_server.url, token).workspace("Team")
    job = ws.automl.create("houses (é):1", TARGET, compute="cpu", task="regression", settings={"max_trials": 1})
    assert job.raw["task"] == "regression" and job.status == "queued"
    ws.jobs.cancel(job.id)
    best = ws.automl.get(started["id"])["best_model"]
    assert best["status"] == "completed" and best["test_metrics"]["r2"] is not None
