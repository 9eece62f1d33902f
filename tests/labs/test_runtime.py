"""A compute instance's lab, with real parts: the local agent starts the instance's node and its
lab process, which builds the lab environment with uv and runs a real Jupyter server in the
sandbox; a kernel runs cells through Jupyter's REST and WebSocket protocol, reads a data version
with pandas and logs to the studio's MLflow API on a live server."""

import json
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import palmerpenguins
import pytest
from django.conf import settings
from django.db import connection

from commands.sealing import unseal
from compute.agent import LocalAgent, recover_after_restart
from compute.jobs.models import Job, Metric
from compute.models import Node, NodeStatus, TargetKind
from compute.services import instance_start, instance_stop, target_create
from data.services import data_version_from_file
from labs.models import InstanceLab, LabState
from labs.runtime import lab_environment_packages, lab_home
from studio.models import ApiToken
from tests.conftest import BackgroundLoop, wait_for

pytestmark = [pytest.mark.worker]
KERNEL_CLIENT = Path(__file__).with_name("kernel_client.py")
ASSET = "penguin measurements 2024"


@pytest.fixture
def node_env(node_env, live_server, studio_data_dir):
    """The lab tells its notebooks where the studio is: this test's live server."""
    return {
        **node_env,
        "STUDIO_PUBLIC_URL": live_server.url,
        "STUDIO_ENVIRONMENT_CACHE_DIR": str(studio_data_dir / "environments"),
    }


def _direct(request, timeout=30):
    return urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=timeout)


def lab_of(target) -> InstanceLab:
    return InstanceLab.objects.filter(target=target).first()


def ready_lab(target, timeout=900) -> InstanceLab:
    def ready():
        lab = lab_of(target)
        if lab is not None and lab.state == LabState.FAILED:
            raise AssertionError(f"the lab failed: {lab.reason}\n{lab.log_tail}")
        return lab if lab is not None and lab.state == LabState.READY else None

    return wait_for(ready, timeout=timeout, interval=0.5, message="the lab to be READY")


def run_cell(lab: InstanceLab, code: str) -> dict:
    python = Path(settings.STUDIO_ENVIRONMENT_CACHE_DIR) / lab_environment_packages(lab)[0] / "bin" / "python"
    done = subprocess.run(
        [str(python), str(KERNEL_CLIENT), lab.address, f"/w/{lab.target.workspace_id}/compute/{lab.target_id}/lab/"]
        + [unseal(lab.token_sealed)],
        input=code,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


READ_AND_LOG = f"""
import os, pandas as pd, mlflow
frame = pd.read_parquet(os.path.join(os.environ["STUDIO_DATA_DIR"], {ASSET!r}, "v1.parquet"))
mlflow.set_experiment("from the lab ✓")
with mlflow.start_run(run_name="notebook run") as run:
    mlflow.log_metric("rows read", len(frame))
with open(os.path.expanduser("~/notes.txt"), "w") as notes:
    notes.write("kept across restarts ✓")
print("rows", len(frame), "run", run.info.run_id)
"""

FORBIDDEN = """
import json, os
tried = {}
for path in PATHS:
    try:
        with open(path, "rb") as fh:
            fh.read(10)
        tried[path] = "read"
    except OSError as exc:
        tried[path] = type(exc).__name__
secrets = [name for name in ("SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL") if name in os.environ]
print(json.dumps({"tried": tried, "secrets": secrets, "user": os.getuid()}))
"""


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_an_instance_lab_runs_notebooks_that_read_data_log_to_mlflow_and_keep_their_home(
    owner, workspace, agent, broker, tmp_path, live_server, studio_data_dir
):
    source = tmp_path / "penguins.csv"
    palmerpenguins.load_penguins().to_csv(source, index=False)
    data_version_from_file(actor=owner, workspace=workspace, path=source, name=ASSET)
    (studio_data_dir / "secret_key").write_text("not for notebooks")  # the nodes' DATA_DIR
    target = target_create(actor=owner, workspace=workspace, kind=TargetKind.INSTANCE, name="alice-box").target

    lab = ready_lab(target)
    token = unseal(lab.token_sealed)
    base = f"http://{lab.address}/w/{workspace.pk}/compute/{target.pk}/lab/"
    with _direct(urllib.request.Request(base + "api/status", headers={"Authorization": f"token {token}"})) as r:
        assert r.status == 200 and "last_activity" in json.loads(r.read())
    with pytest.raises(urllib.error.HTTPError) as refused:
        _direct(urllib.request.Request(base + "api/status"))
    assert refused.value.code == 403
    # The Jupyter token is kept only sealed, and masked in the log.
    row = InstanceLab.objects.filter(pk=lab.pk).values().get()
    assert token not in json.dumps(row, default=str) and lab.token_sealed != token

    out = run_cell(lab, READ_AND_LOG)
    assert out["error"] is None, out
    assert "rows 344 run" in out["stdout"]
    run = Job.objects.get(display_name="notebook run", workspace=workspace)
    assert Metric.objects.get(job=run, name="rows read").value == 344
    assert run.submitted_by == owner and run.experiment.name == "from the lab ✓"
    lab_token = ApiToken.objects.get(user=owner, workspace=workspace)
    assert lab_token.revoked_at is None
    target.refresh_from_db()
    wait_for(lambda: lab_of(target).target.instance_activity_at, message="notebook activity recorded")

    secret_paths = [
        str(studio_data_dir / "secret_key"),
        str(Path(settings.BASE_DIR) / "studio" / "settings.py"),
        str(connection.settings_dict["NAME"]),
        f"/proc/{lab.pid}/environ",
    ]
    out = run_cell(lab, f"PATHS = {secret_paths!r}\n" + FORBIDDEN)
    assert out["error"] is None, out
    seen = json.loads(out["stdout"])
    assert set(seen["tried"].values()) <= {"FileNotFoundError", "PermissionError"}, seen
    assert seen["secrets"] == [] and seen["user"] != 0
    lab_log = (studio_data_dir / "node-logs" / f"lab-{lab.node_id}.log").read_text()
    assert "Kernel started" in lab_log and "over TCP" not in lab_log  # kernels on Unix sockets only
    assert token not in lab_log and lab_token.prefix not in lab_log

    # Stopped: the server goes, the notebooks' token is revoked, the home stays.
    instance_stop(actor=owner, target=target)
    stopped = wait_for(
        lambda: (lab := lab_of(target)).state == LabState.STOPPED and lab, timeout=120, message="the lab to stop"
    )
    assert stopped.address == "" and stopped.token_sealed == "" and stopped.pid is None
    assert ApiToken.objects.get(pk=lab_token.pk).revoked_at is not None
    home = studio_data_dir / lab_home(target.pk).relative_to(settings.DATA_DIR)
    assert (home / "notes.txt").read_text() == "kept across restarts ✓"
    wait_for(lambda: not Node.objects.filter(target=target, status__in=NodeStatus.live()).exists(), timeout=60)

    # Started again: a new node, a new lab, the same home.
    instance_start(actor=owner, target=target)
    wait_for(lambda: lab_of(target).state != LabState.STOPPED, timeout=60, message="the lab to start again")
    again = ready_lab(target)
    assert unseal(again.token_sealed) != token
    out = run_cell(again, "import os; print(open(os.path.expanduser('~/notes.txt')).read())")
    assert out["stdout"].strip() == "kept across restarts ✓", out
    assert os.path.isdir(home)


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_a_lab_left_by_a_dead_agent_stops_and_the_restarted_agent_starts_a_new_one(
    owner, workspace, agent, broker, node_env, studio_data_dir
):
    target = target_create(actor=owner, workspace=workspace, kind=TargetKind.INSTANCE, name="box-two").target
    first = ready_lab(target)
    # The agent dies without a word (kill -9): its node and lab processes live on, orphaned.
    agent.loop.stop()
    orphans = {**agent.children, **{f"lab-{k}": v for k, v in agent.labs.items()}}
    agent.children.clear()
    agent.labs.clear()

    assert recover_after_restart() == 1
    for process in orphans.values():
        process.wait(timeout=60)
    stopped = lab_of(target)
    assert stopped.state == LabState.STOPPED and stopped.address == "" and stopped.node_id == first.node_id
    assert Node.objects.get(pk=first.node_id).status == NodeStatus.LOST

    restarted = LocalAgent(log_dir=str(studio_data_dir / "node-logs"), extra_env=node_env)
    loop = BackgroundLoop(restarted.tick, 0.1).start()
    try:
        wait_for(lambda: lab_of(target).node_id != first.node_id, timeout=60, message="a new node's lab")
        again = ready_lab(target)
        assert again.address != "" and again.pid != first.pid
    finally:
        loop.stop()
        restarted.stop_all(kill=True)
    assert not loop.errors, loop.errors
