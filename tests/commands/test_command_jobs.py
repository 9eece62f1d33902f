"""Command jobs on real node workers: a user's script trains on a data version, writes a skops
model that is registered and deployed; hostile scripts find nothing of the studio's."""

import io
import json
import zipfile

import pytest
from django.core.cache import cache
from django.db import connection

from compute.jobs.models import Artifact, Job, JobStatus
from compute.jobs.recovery import job_artifact_dir
from compute.models import Node, TargetKind
from compute.services import target_create
from endpoints import services as endpoint_services
from endpoints import serving
from endpoints.models import MonitoringBucket
from tests.conftest import wait_for

pytestmark = [pytest.mark.worker]

TRAIN_PY = """\
import os, sys
import pandas as pd
import skops.io as sio
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

data, c, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
frame = pd.read_parquet(data)
X = frame[["bill_length_mm", "bill depth (mm)", "flipper_length_mm"]]
model = make_pipeline(SimpleImputer(), LogisticRegression(C=c, max_iter=1000)).fit(X, frame["species"])
sio.dump(model, os.path.join(out, "model.skops"))
with open(os.path.join(os.environ["REPORTS"], "accuracy é.txt"), "w") as fh:
    fh.write(str(model.score(X, frame["species"])))
print("trained on", len(frame), "rows; secret is", os.environ["API_KEY"])
print(open(os.path.splitext(data)[0] + ".csv").readline().strip())
"""

SNOOP_PY = """\
import os, sys
for path in sys.argv[1:]:
    try:
        with open(path, "rb") as fh:
            fh.read(1)
        print("READ", path)
    except OSError as exc:
        print("DENIED", path, type(exc).__name__)
print("ENV", " ".join(sorted(os.environ)))
"""

PICKLE_PY = "import pickle, sys\npickle.dump([1], open(sys.argv[1] + '/m.pkl', 'wb'))\n"


def code_zip(files: dict) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    buffer.seek(0)
    buffer.name = "code.zip"
    return buffer


@pytest.fixture
def penguins_spaced(owner, workspace, tmp_path):
    """Penguins with a column name a script must quote: spaces and brackets."""
    import palmerpenguins

    from data.services import data_version_from_file

    source = tmp_path / "penguins.csv"
    palmerpenguins.load_penguins().rename(columns={"bill_depth_mm": "bill depth (mm)"}).to_csv(source, index=False)
    return data_version_from_file(actor=owner, workspace=workspace, path=source, name="penguins 2024")


@pytest.fixture
def cluster(owner, workspace):
    return target_create(
        actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu", min_nodes=0, max_nodes=1
    ).target


@pytest.fixture
def environment(api, owner, workspace):
    response = api(owner).post(
        f"/api/v1/workspaces/{workspace.pk}/environments/",
        {"name": "sklearn", "base": "studio-sklearn", "requirements": ""},
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()


def upload(api, user, workspace, files) -> dict:
    response = api(user).post(f"/api/v1/workspaces/{workspace.pk}/code/", {"file": code_zip(files)}, format="multipart")
    assert response.status_code in (200, 201), response.content
    return response.json()


def submit(api, user, workspace, cluster, spec, **extra):
    return api(user).post(
        f"/api/v1/workspaces/{workspace.pk}/jobs/",
        {"kind": "command", "target": cluster.pk, "spec": spec, **extra},
        format="json",
    )


def finished(job_id, timeout=300):
    return wait_for(
        lambda: Job.objects.filter(pk=job_id, status__in=JobStatus.finished()).first(),
        timeout=timeout,
        message=f"command job {job_id} to finish",
    )


def env_version_id(environment) -> int:
    return environment["latest_version_id"]


def log_text(job) -> str:
    return "\n".join(job.log.order_by("seq").values_list("text", flat=True))


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_a_script_trains_on_a_data_version_and_its_skops_model_is_registered_and_deployed(
    api, client, owner, workspace, cluster, environment, penguins_spaced, agent, broker
):
    code = upload(api, owner, workspace, {"train.py": TRAIN_PY, "README.md": "# penguins\n"})
    response = submit(
        api,
        owner,
        workspace,
        cluster,
        {
            "code_snapshot_id": code["id"],
            "command": "python train.py ${{inputs.train}} ${{inputs.c}} ${{outputs.model}}",
            "environment_version_id": env_version_id(environment),
            "inputs": {"train": {"type": "data", "data_version_id": penguins_spaced.pk}, "c": 0.5},
            "outputs": {"model": {"type": "model"}, "reports": {"type": "folder"}},
            "env": {"REPORTS": "${{outputs.reports}}"},
            "secret_env": {"API_KEY": "hunter2-secret"},
        },
        display_name="penguins script",
    )
    assert response.status_code == 201, response.content
    assert response.json()["spec"]["secret_env"] == {"API_KEY": "***"}
    job = finished(response.json()["id"])
    text = log_text(job)
    assert job.status == JobStatus.COMPLETED, (job.error, text)
    assert "trained on 344 rows" in text and "hunter2-secret" not in text and "secret is ***" in text
    assert '"bill depth (mm)"' in text or "bill depth (mm)" in text  # the CSV beside the Parquet file
    assert job.result["exit_code"] == 0
    assert "python train.py /job/inputs/train/train.parquet 0.5" in job.result["command"]
    names = set(Artifact.objects.filter(job=job).values_list("name", flat=True))
    assert "outputs/model/model.skops" in names
    assert any(n.startswith("outputs/reports/accuracy") for n in names)

    page = client
    page.force_login(owner)
    html = page.get(f"/w/{workspace.pk}/jobs/{job.pk}/").content.decode()
    assert "hunter2" not in html and "API_KEY=***" in html and "train.py" in html

    registered = api(owner).post(
        f"/api/v1/workspaces/{workspace.pk}/jobs/{job.pk}/outputs/model/register/", {"name": "penguins"}, format="json"
    )
    assert registered.status_code == 201, registered.content
    version = registered.json()
    columns = [c["name"] for c in json.loads(json.dumps(version.get("signature", {}))).get("columns", [])] or None

    inference = target_create(actor=owner, workspace=workspace, kind=TargetKind.INFERENCE, name="serving").target
    from training.models import ModelVersion

    model_version = ModelVersion.objects.get(pk=version["id"])
    assert [c["name"] for c in model_version.signature["columns"]] == [
        "bill_length_mm",
        "bill depth (mm)",
        "flipper_length_mm",
    ], columns
    created = endpoint_services.endpoint_create(actor=owner, workspace=workspace, name="penguins-api")
    endpoint_services.deployment_create(
        actor=owner, endpoint=created.endpoint, name="blue", model_version=model_version, target=inference
    )
    cache.clear()
    scored = client.post(
        "/score/penguins-api/",
        json.dumps([{"bill_length_mm": 39.1, "bill depth (mm)": 18.7, "flipper_length_mm": 181}]),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {created.primary}",
    )
    assert scored.status_code == 200, scored.content
    assert scored.json()["predictions"] == ["Adelie"]
    serving.monitor.flush()  # while the test database exists
    wait_for(lambda: MonitoringBucket.objects.filter(endpoint=created.endpoint).exists(), message="the request counted")


@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
def test_a_hostile_script_reads_nothing_of_the_studio_and_a_pickle_is_not_registered(
    api, owner, workspace, cluster, environment, agent, broker, studio_data_dir
):
    canary = studio_data_dir / "canary.txt"
    canary.write_text("the studio's own file")
    pickle_job = submit(
        api,
        owner,
        workspace,
        cluster,
        {
            "code_snapshot_id": upload(api, owner, workspace, {"p.py": PICKLE_PY})["id"],
            "command": "python p.py ${{outputs.model}}",
            "environment_version_id": env_version_id(environment),
            "outputs": {"model": "model"},
        },
    )
    first = finished(pickle_job.json()["id"])
    assert first.status == JobStatus.COMPLETED, (first.error, log_text(first))
    refused = api(owner).post(
        f"/api/v1/workspaces/{workspace.pk}/jobs/{first.pk}/outputs/model/register/", {"name": "pickled"}, format="json"
    )
    assert refused.status_code == 400 and "skops" in refused.content.decode() and "ONNX" in refused.content.decode()

    node = Node.objects.filter(target=cluster).exclude(pid=None).first()
    db_name = connection.settings_dict["NAME"]
    targets = [
        str(canary),
        str(studio_data_dir / "secret_key"),
        str(job_artifact_dir(first) / "outputs" / "model" / "m.pkl"),
        f"/proc/{node.pid}/environ",
        f"/proc/{node.pid}/cmdline",
    ]
    if connection.vendor == "sqlite":
        targets.append(str(db_name))
    response = submit(
        api,
        owner,
        workspace,
        cluster,
        {
            "code_snapshot_id": upload(api, owner, workspace, {"snoop.py": SNOOP_PY})["id"],
            "command": "python snoop.py " + " ".join(f"'{t}'" for t in targets),
            "environment_version_id": env_version_id(environment),
        },
    )
    job = finished(response.json()["id"])
    text = log_text(job)
    assert job.status == JobStatus.COMPLETED, (job.error, text)
    for target in targets:
        assert f"DENIED {target}" in text, text
    env_line = next(line for line in text.splitlines() if line.startswith("ENV "))
    for name in ("DATABASE_URL", "SECRET_KEY", "CELERY_BROKER_URL", "STUDIO_DATA_DIR", "STUDIO_NODE_ID"):
        assert name not in env_line.split(), env_line


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_the_demo_example_runs_as_a_new_user_would_run_it(api, owner, workspace, cluster, penguins, agent, broker):
    from commands.models import CodeSnapshot
    from environments.models import EnvironmentVersion
    from portal.demo import DEMO_CODE, DEMO_ENVIRONMENT, demo_command_seed

    demo_command_seed(actor=owner, workspace=workspace)
    demo_command_seed(actor=owner, workspace=workspace)  # once only
    snapshot = CodeSnapshot.objects.get(workspace=workspace, name=DEMO_CODE)
    version = EnvironmentVersion.objects.get(environment__workspace=workspace, environment__name=DEMO_ENVIRONMENT)
    response = submit(
        api,
        owner,
        workspace,
        cluster,
        {
            "code_snapshot_id": snapshot.pk,
            "command": "python train.py ${{inputs.train}} ${{outputs.model}}",
            "environment_version_id": version.pk,
            "inputs": {"train": {"type": "data", "data_version_id": penguins.pk}},
            "outputs": {"model": "model"},
        },
    )
    job = finished(response.json()["id"])
    assert job.status == JobStatus.COMPLETED, (job.error, log_text(job))
    assert "accuracy on the training rows: 0.9" in log_text(job)
    registered = api(owner).post(
        f"/api/v1/workspaces/{workspace.pk}/jobs/{job.pk}/outputs/model/register/", {"name": "demo"}, format="json"
    )
    assert registered.status_code == 201, registered.content
