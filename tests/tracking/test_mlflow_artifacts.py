"""Artifacts through MLflow's artifact proxy: the run's files are the job's "logged/..." artifacts."""

import pytest
import requests
from mlflow.exceptions import MlflowException

from compute.jobs.models import Artifact
from compute.jobs.recovery import job_artifact_dir
from studio.services import token_create

pytestmark = pytest.mark.django_db(transaction=True)


def test_files_and_folders_go_up_list_and_come_back(mlflow_as, owner, workspace, tmp_path):
    client = mlflow_as(owner, workspace)
    run = client.create_run(client.create_experiment("artifacts"))
    run_id = run.info.run_id
    odd = tmp_path / "résumé final (v2) ✓.txt"
    odd.write_text("ünïcode content\n", encoding="utf-8")
    client.log_artifact(run_id, str(odd))
    folder = tmp_path / "plots"
    (folder / "deep dir").mkdir(parents=True)
    (folder / "loss.csv").write_text("step,loss\n0,1\n")
    (folder / "deep dir" / "weights.bin").write_bytes(b"\x00\x01")
    client.log_artifacts(run_id, str(folder), artifact_path="charts")

    top = client.list_artifacts(run_id)
    assert [(f.path, f.is_dir) for f in top] == [("charts", True), ("résumé final (v2) ✓.txt", False)]
    assert top[1].file_size == len("ünïcode content\n".encode())
    inner = client.list_artifacts(run_id, "charts")
    assert [(f.path, f.is_dir) for f in inner] == [("charts/deep dir", True), ("charts/loss.csv", False)]

    job_dir = job_artifact_dir(run_id and Artifact.objects.filter(job_id=int(run_id)).first().job)
    names = set(Artifact.objects.filter(job_id=int(run_id)).values_list("name", flat=True))
    assert names == {"logged/résumé final (v2) ✓.txt", "logged/charts/loss.csv", "logged/charts/deep dir/weights.bin"}
    assert (job_dir / "logged" / "charts" / "loss.csv").read_text() == "step,loss\n0,1\n"

    out = tmp_path / "out"
    out.mkdir()
    path = client.download_artifacts(run_id, "résumé final (v2) ✓.txt", str(out))
    assert open(path, encoding="utf-8").read() == "ünïcode content\n"
    whole = client.download_artifacts(run_id, "charts", str(out))
    assert open(f"{whole}/loss.csv").read() == "step,loss\n0,1\n"


def test_escaping_paths_oversized_files_and_other_runs_are_refused(live_server, mlflow_as, owner, workspace, settings):
    client = mlflow_as(owner, workspace)
    run_id = client.create_run(client.create_experiment("safe")).info.run_id
    key = token_create(user=owner, name="raw").plaintext
    headers = {"Authorization": f"Bearer {key}"}
    base = f"{live_server.url}/w/{workspace.pk}/mlflow/api/2.0/mlflow-artifacts/artifacts"
    for bad in [
        f"runs/{run_id}/a/%2e%2e/%2e%2e/escape.txt",
        f"runs/{run_id}/a/..%2F..%2Fescape",
        f"runs/{run_id}/a\\b",
    ]:
        response = requests.put(f"{base}/{bad}", data=b"x", headers=headers, timeout=30)
        assert response.status_code in (400, 404), (bad, response.status_code)
        assert "error_code" in response.json()
    assert not Artifact.objects.filter(job_id=int(run_id)).exists()
    settings.STUDIO_RUN_ARTIFACT_MAX_BYTES = 10
    response = requests.put(f"{base}/runs/{run_id}/big.bin", data=b"x" * 11, headers=headers, timeout=30)
    assert response.status_code == 413 and response.json()["error_code"] == "RESOURCE_EXHAUSTED"
    response = requests.get(f"{base}/runs/{run_id}/never.txt", headers=headers, timeout=30)
    assert response.status_code == 404 and response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    response = requests.get(base, params={"path": "experiments/1"}, headers=headers, timeout=30)
    assert response.status_code == 404
    with pytest.raises(MlflowException):
        client.list_artifacts("999999")
