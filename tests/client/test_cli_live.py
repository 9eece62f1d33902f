"""The `studio` command line as a real process against a live studio with real node workers:
sign in (a 0600 file), upload a messy CSV, run a command job from a YAML file with --stream,
register its model output, create and deploy an endpoint, and score rows through it; the same
through an AutoML run; a job file with a mistake is refused with its line and field. The CLI
process imports no Django (its environment has no settings and it is tested offline too)."""

import csv
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import palmerpenguins
import pytest
import skops.io as sio
from django.core.cache import cache
from sklearn.linear_model import LogisticRegression
from studio_client import Job, Studio, StudioError

from compute.models import TargetKind
from compute.services import target_create
from endpoints import serving
from studio.services import token_create

pytestmark = [pytest.mark.worker, pytest.mark.timeout(900)]

STUDIO = Path(sys.executable).with_name("studio")

TRAIN_PY = """\
import os, sys
import pandas as pd
import skops.io as sio
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

data, c, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
frame = pd.read_parquet(data)
frame = frame[frame["label yes/no"].notna()]
features = ["größe (cm)", "weight kg"]
model = make_pipeline(SimpleImputer(), LogisticRegression(C=c, max_iter=1000))
model.fit(frame[features], frame["label yes/no"].astype(str))
sio.dump(model, os.path.join(out, "model.skops"))
print("trained on", len(frame), "rows in mode", os.environ["MODE"])
"""

JOB_YML = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
type: command
display_name: "Größe → label"
experiment_name: cli tests
code: ./src code
command: python train.py ${{inputs.train}} ${{inputs.c}} ${{outputs.model}}
environment: azureml:sklearn-cli@latest
compute: azureml:cpu
inputs:
  train:
    type: uri_file
    path: azureml:messy data (é):1
  c: 0.5
outputs:
  model:
    type: custom_model
environment_variables:
  MODE: fast
"""

ENV_YML = """\
$schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json
name: sklearn-cli
image: studio-sklearn
description: scikit-learn, pandas and skops
"""


def messy_csv(path: Path) -> None:
    """Names with spaces, symbols and unicode; blank cells; yes/no labels; a quoted comma."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["größe (cm)", "weight kg", "colour/tint", "label yes/no"])
        for i in range(80):
            size = 10 + i
            big = size > 50
            writer.writerow(
                [
                    "" if i % 7 == 3 else size,
                    "" if i % 9 == 4 else round(size * 0.6 + (i % 5), 1),
                    ["grün", "rot, hell", "", "blau"][i % 4],
                    "" if i % 11 == 5 else ("yes" if big else "no"),
                ]
            )


@pytest.fixture
def targets(owner, workspace):
    target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu", min_nodes=0, max_nodes=1)
    target_create(actor=owner, workspace=workspace, kind=TargetKind.INFERENCE, name="serving")


@pytest.fixture
def run(tmp_path):
    """run(*args) -> CompletedProcess of the real `studio` console script, in a clean environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "STUDIO_", "DATABASE"))}
    env |= {"HOME": str(tmp_path), "STUDIO_CONFIG": str(tmp_path / "conf" / "studio.json"), "PYTHONIOENCODING": "utf-8"}
    argv0 = [str(STUDIO)] if STUDIO.exists() else [sys.executable, "-m", "studio_client"]

    def run(*args, ok=True, timeout=600):
        done = subprocess.run(
            [*argv0, *map(str, args)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=timeout
        )
        if ok:
            assert done.returncode == 0, (args, done.stdout[-3000:], done.stderr[-3000:])
        return done

    return run


def as_json(done):
    return json.loads(done.stdout)


def sign_in_and_upload(run, live_server, owner, tmp_path) -> Path:
    token = token_create(user=owner, name="laptop (cli)").plaintext
    signed_in = as_json(run("login", live_server.url, "--token", token, "--json"))
    assert signed_in["user"] == "alice"
    config = tmp_path / "conf" / "studio.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert json.loads(config.read_text())["token"] == token

    listed = as_json(run("workspace", "list", "--json"))
    assert [w["name"] for w in listed] == ["Team"]
    run("workspace", "use", "Team")

    source = tmp_path / "messy data ü.csv"
    messy_csv(source)
    uploaded = run("data", "upload", source.name, "--name", "messy data (é)")
    assert "Uploading messy data ü.csv" in uploaded.stderr and "100.0%" in uploaded.stderr
    assert "messy data (é) version 1 is ready (80 rows)" in uploaded.stdout
    assets = as_json(run("data", "list", "--json"))
    assert [(a["name"], a["latest_rows"]) for a in assets] == [("messy data (é)", 80)]
    (tmp_path / "dl").mkdir()
    downloaded = as_json(run("data", "download", "messy data (é)@latest", "-o", "dl", "--json"))["path"]
    with open(downloaded, newline="", encoding="utf-8") as fh:
        table = list(csv.reader(fh))
    assert table[0] == ["größe (cm)", "weight kg", "colour/tint", "label yes/no"] and len(table) == 81
    assert ["11", "7.6", "rot, hell", "no"] in table
    return config


def deploy_and_invoke(run, model_ref: str, config: Path, name: str, **extra) -> None:
    created = as_json(run("endpoint", "create", name, "--json"))
    assert created["primary_key"] and created["scoring_url"].endswith(f"/score/{name}/")
    assert created["primary_key"] in config.read_text()  # kept for `invoke`, in the 0600 file
    deployed = as_json(
        run("endpoint", "deploy", name, "--name", "blue", "--model", model_ref, "--compute", "serving", "--json")
    )
    assert deployed["status"] == "ready", deployed
    traffic = as_json(run("endpoint", "traffic", name, "blue=100", "--json"))
    assert traffic["traffic"] == {"blue": 100}
    listed = run("endpoint", "list").stdout
    assert f"/score/{name}/  blue=100" in listed, listed

    cache.clear()
    rows = [{"größe (cm)": 85, "weight kg": 55.0, **extra}, {"größe (cm)": 12, "weight kg": None, **extra}]
    scored = as_json(run("endpoint", "invoke", name, "--data", json.dumps(rows), "--json"))
    assert scored["predictions"] == ["yes", "no"], scored
    wrong = run("endpoint", "invoke", name, "--data", json.dumps(rows), "--key", "nope", ok=False)
    assert wrong.returncode == 1 and "not valid" in wrong.stderr
    serving.monitor.flush()  # the requests counted while the test database exists


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_upload_command_job_register_deploy_and_invoke_from_the_cli(
    live_server, owner, workspace, targets, agent, broker, run, tmp_path
):
    config = sign_in_and_upload(run, live_server, owner, tmp_path)
    (tmp_path / "bad quote.csv").write_text('name,value\n"unclosed,1\n2,3\n', encoding="utf-8")
    refused = run("data", "upload", "bad quote.csv", "-q", ok=False)
    assert refused.returncode == 1 and "The ingest failed: Row 2 has 1 fields; the header has 2." in refused.stderr
    assert "{'code'" not in refused.stderr, refused.stderr
    assert as_json(run("data", "upload", "bad quote.csv", "--json", ok=False))["error"]["code"] == "ragged_row"
    (tmp_path / "env.yml").write_text(ENV_YML, encoding="utf-8")
    env = as_json(run("env", "create", "-f", "env.yml", "--json"))
    assert env["name"] == "sklearn-cli" and env["latest_version_id"]

    code = tmp_path / "src code"
    (code / "__pycache__").mkdir(parents=True)
    (code / "train.py").write_text(TRAIN_PY, encoding="utf-8")
    (code / "__pycache__" / "train.cpython-312.pyc").write_bytes(b"junk")
    (tmp_path / "job.yml").write_text(JOB_YML, encoding="utf-8")
    streamed = run("job", "create", "-f", "job.yml", "--stream")
    assert "trained on" in streamed.stdout and "rows in mode fast" in streamed.stdout, streamed.stdout
    job_id = int(streamed.stdout.split("Job ", 1)[1].split()[0])
    shown = as_json(run("job", "show", job_id, "--json"))
    assert shown["status"] == "completed" and shown["display_name"] == "Größe → label"
    assert shown["experiment"] == "cli tests"
    assert shown["spec"]["env"] == {"MODE": "fast"}
    text = run("job", "show", job_id).stdout  # what a person reads: where it ran, who sent it, how long
    assert "compute: cpu\n" in text and "by alice\n" in text and "attempt: 1 of " in text, text
    assert " s\n" in text.split("duration: ", 1)[1][:20], text
    assert "trained on" in run("job", "logs", job_id).stdout
    jobs = as_json(run("job", "list", "--kind", "command", "--json"))
    assert [j["id"] for j in jobs] == [job_id]
    files = as_json(run("job", "download", job_id, "--output", "model", "-o", "out dir", "--json"))["files"]
    assert [Path(f).name for f in files] == ["model.skops"]

    version = as_json(run("model", "register", "--job", job_id, "--output", "model", "--name", "messy-model", "--json"))
    assert version["version"] == 1 and version["job"] == job_id
    assert [c["name"] for c in version["signature"]["columns"]] == ["größe (cm)", "weight kg"]
    assert [m["name"] for m in as_json(run("model", "list", "--json"))] == ["messy-model"]
    saved = as_json(run("model", "download", "messy-model:1", "-o", tmp_path, "--json"))["path"]
    assert Path(saved).stat().st_size > 0
    deploy_and_invoke(run, "messy-model@latest", config, "messy-api")


@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
def test_automl_from_the_cli_registers_a_model_that_deploys_and_a_bad_job_file_names_its_line(
    live_server, owner, workspace, targets, agent, broker, reconciler, run, tmp_path
):
    config = sign_in_and_upload(run, live_server, owner, tmp_path)
    (tmp_path / "env.yml").write_text(ENV_YML, encoding="utf-8")
    run("env", "create", "-f", "env.yml")
    (tmp_path / "src code").mkdir()

    # Mistakes the file alone cannot show: an environment or a data version the workspace has not got.
    (tmp_path / "bad.yml").write_text(JOB_YML.replace("sklearn-cli@latest", "no-such-env@latest"), encoding="utf-8")
    refused = run("job", "create", "-f", "bad.yml", ok=False)
    assert refused.returncode == 2
    assert "bad.yml:7: environment: No environment named 'no-such-env'" in refused.stderr
    (tmp_path / "bad.yml").write_text(JOB_YML.replace("messy data (é):1", "messy data (é):9"), encoding="utf-8")
    refused = run("job", "create", "-f", "bad.yml", "--json", ok=False)
    assert refused.returncode == 2 and as_json(refused)["error"] | {"message": ""} == {
        "code": "invalid_file",
        "message": "",
        "file": "bad.yml",
        "line": 10,
        "field": "inputs.train",
    }
    (tmp_path / "bad.yml").write_text(JOB_YML.replace("compute: azureml:cpu", "compute: gpu"), encoding="utf-8")
    refused = run("job", "create", "-f", "bad.yml", ok=False)
    assert "bad.yml:8: compute: No compute target named 'gpu'" in refused.stderr

    # A job file whose names all resolve is submitted with the ids they name, then cancelled (or it
    # has already finished: then the studio's 409 is the answer, with exit code 1).
    (tmp_path / "src code" / "train.py").write_text(TRAIN_PY, encoding="utf-8")
    (tmp_path / "job.yml").write_text(JOB_YML, encoding="utf-8")
    queued = as_json(run("job", "create", "-f", "job.yml", "--json"))
    assert queued["kind"] == "command" and queued["target"]["name"] == "cpu"
    spec = as_json(run("job", "show", queued["id"], "--json"))["spec"]
    assert spec["inputs"]["train"]["type"] == "data" and spec["inputs"]["c"] == {"type": "number", "value": 0.5}
    assert spec["outputs"] == {"model": {"type": "model"}} and spec["env"] == {"MODE": "fast"}
    assert spec["code_snapshot_id"] and spec["environment_version_id"]
    cancelled = run("job", "cancel", queued["id"], "--json", ok=False)
    if cancelled.returncode == 0:  # canceled, or (already on its node) stopped by the node within seconds
        answer = as_json(cancelled)
        assert answer["status"] == "canceled" or answer["cancel_requested_at"], answer
    else:
        assert cancelled.returncode == 1 and as_json(cancelled)["error"]["code"] == "conflict", cancelled.stdout

    # --stream prints the log as it is written, and a failed job exits 1 with the studio's reason.
    failing = JOB_YML.replace(
        "command: python train.py ${{inputs.train}} ${{inputs.c}} ${{outputs.model}}",
        'command: echo "streamed line é ${{inputs.c}}" && exit 3',
    )
    (tmp_path / "fail.yml").write_text(failing.replace("code: ./src code\n", ""), encoding="utf-8")
    refused = run("job", "create", "-f", "fail.yml", ok=False)  # the studio wants code: named, with no line
    assert refused.returncode == 2 and "fail.yml: code: Upload the code first" in refused.stderr, refused.stderr
    (tmp_path / "fail.yml").write_text(failing, encoding="utf-8")
    streamed = run("job", "create", "-f", "fail.yml", "--stream", ok=False)
    assert streamed.returncode == 1, (streamed.stdout, streamed.stderr)
    assert "streamed line é 0.5" in streamed.stdout
    assert "failed" in streamed.stderr and "3" in streamed.stderr, streamed.stderr
    failed_id = int(streamed.stdout.split("Job ", 1)[1].split()[0])
    assert "streamed line é 0.5" in run("job", "logs", failed_id, "--follow").stdout
    assert failed_id in [j["id"] for j in as_json(run("job", "list", "--status", "failed", "--json"))]

    # The Python API the CLI is made of: typed results, lists as iterators over pages.
    ws = Studio(live_server.url, json.loads(config.read_text())["token"]).workspace("Team")
    failed = ws.jobs.get(failed_id)
    assert isinstance(failed, Job) and failed.finished and failed.status == "failed"
    assert any("streamed line é" in line.text for line in ws.jobs.follow(failed_id))
    assert [a.name for a in ws.data.list()] == ["messy data (é)"]
    assert ws.data.version("messy data (é)@latest").rows == 80
    with pytest.raises(StudioError) as caught:
        ws.jobs.get(10**9)
    assert caught.value.status == 404 and caught.value.code == "not_found"

    started = as_json(
        run(
            "automl", "create", "--data", "messy data (é):1", "--target-column", "label yes/no", "--compute", "cpu",
            "--metric", "accuracy", "--max-trials", 2, "--max-concurrent-trials", 1, "--timeout", 60,
            "--trial-timeout", 30, "--register-as", "messy-automl", "--name", "AutoML é", "--wait", "--json",
        )
    )  # fmt: skip
    assert started["status"] == "completed", started
    assert as_json(run("job", "show", started["id"], "--json"))["display_name"] == "AutoML é"
    # `job list` shows what the Jobs page shows (top-level jobs); a run's trials with --parent, all with --all.
    top = as_json(run("job", "list", "--json"))
    assert started["id"] in [j["id"] for j in top] and not [j for j in top if j["parent"]], top
    trials = as_json(run("job", "list", "--parent", started["id"], "--json"))
    assert trials and {j["kind"] for j in trials} <= {"automl_trial", "automl_final"}, trials
    assert {j["id"] for j in trials} <= {j["id"] for j in as_json(run("job", "list", "--all", "--json"))}
    models = as_json(run("model", "list", "--json"))
    assert [(m["name"], m["latest_version"]) for m in models] == [("messy-automl", 1)]
    deploy_and_invoke(run, "messy-automl", config, "messy-automl-api", **{"colour/tint": "grün"})
    # A job that does not exist here is a 404 with the studio's message.
    missing = run("job", "show", 999999, "--json", ok=False)
    assert missing.returncode == 1 and as_json(missing)["error"]["status"] == 404


def test_compute_is_listed_and_created_from_the_cli_and_a_wrong_name_says_which_exist(
    live_server, owner, workspace, run, tmp_path
):
    run("login", live_server.url, "--token", token_create(user=owner, name="cli").plaintext)
    run("workspace", "use", "Team")
    assert "(none)" in run("compute", "list").stdout  # the empty state

    bad = run("compute", "create", "GPU pool!", ok=False)
    assert bad.returncode == 1 and "2–64 letters, digits or hyphens" in bad.stderr, bad.stderr
    created = run("compute", "create", "gpu-pool", "--size", "medium", "--max-nodes", 3)
    assert "Created the compute cluster gpu-pool (medium, 0–3 nodes)." in created.stdout, created.stdout
    serving_ = as_json(run("compute", "create", "serving", "--kind", "inference", "--json"))
    assert (serving_["kind"], serving_["size"]) == ("inference", "small")
    listed = as_json(run("compute", "list", "--json"))
    assert [(t["name"], t["kind"], t["max_nodes"]) for t in listed] == [
        ("gpu-pool", "cluster", 3),
        ("serving", "inference", serving_["max_nodes"]),
    ]
    table = run("compute", "list").stdout
    assert "gpu-pool" in table and "0–3" in table and "0 running, 0 queued" in table, table
    attached = run("compute", "create", "laptop-2", "--kind", "attached").stdout
    assert "manage.py compute_node --target " in attached and "Join token (shown once): join_" in attached, attached
    again = run("compute", "create", "serving", ok=False)
    assert again.returncode == 1 and "serving" in again.stderr

    run("endpoint", "create", "churn-api")
    wrong = run("endpoint", "deploy", "churn-api", "--name", "blue", "--model", "churn", "--compute", "gpu", ok=False)
    assert wrong.returncode == 1
    assert "No model named 'churn' in this workspace (there is none yet)." in wrong.stderr, wrong.stderr
    ws = Studio(live_server.url, json.loads((tmp_path / "conf" / "studio.json").read_text())["token"]).workspace("Team")
    with pytest.raises(StudioError) as caught:
        ws.compute.get("gpu")
    assert str(caught.value) == (
        "No compute target named 'gpu' in this workspace (there are: laptop-2, gpu-pool, serving)."
    )


def test_a_model_file_made_elsewhere_is_registered_from_the_cli(live_server, owner, workspace, penguins, run, tmp_path):
    frame = palmerpenguins.load_penguins().dropna(subset=["bill_length_mm", "flipper_length_mm"])
    model = LogisticRegression(max_iter=1000).fit(frame[["bill_length_mm", "flipper_length_mm"]], frame["species"])
    path = tmp_path / "my model ü.skops"
    sio.dump(model, path)
    token = token_create(user=owner, name="cli").plaintext
    run("login", live_server.url, "--token", token)
    version = as_json(
        run(
            "-w", "Team", "model", "register", "--file", path, "--name", "from-laptop",
            "--signature", json.dumps([{"name": "bill_length_mm", "type": "numeric"},
                                       {"name": "flipper_length_mm", "type": "numeric"}]),
            "--description", "trained elsewhere, é", "--json",
        )
    )  # fmt: skip
    assert version["version"] == 1
    assert [m["name"] for m in as_json(run("-w", workspace.pk, "model", "list", "--json"))] == ["from-laptop"]
    refused = run(
        "-w", "Team", "model", "register", "--file", tmp_path / "conf" / "studio.json", "--name", "x", ok=False
    )
    assert refused.returncode == 1 and "error:" in refused.stderr
