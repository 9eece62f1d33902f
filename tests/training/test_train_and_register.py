"""A train job on a real node packages its model; registering copies it with its lineage."""

import pytest

from compute.jobs.models import Artifact, Job, JobStatus
from compute.jobs.services import job_submit
from compute.models import TargetKind
from compute.services import target_create
from tests.conftest import wait_for
from training.models import ModelVersion
from training.registry_services import model_version_dir

pytestmark = [pytest.mark.worker]


@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
@pytest.mark.parametrize(
    ("algorithm", "validation"),
    [
        ("logistic_regression", {"method": "cv", "n_folds": 3}),
        ("hist_gradient_boosting", {"method": "holdout", "holdout_fraction": 0.25}),
    ],
)
def test_train_package_and_register(api, owner, workspace, penguins, agent, broker, algorithm, validation):
    cluster = target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu").target
    job = job_submit(
        actor=owner,
        workspace=workspace,
        kind="train",
        target=cluster,
        spec={
            "data_version_id": penguins.pk,
            "target_column": "species",
            "algorithm": algorithm,
            "hyperparameters": {},
            "validation": validation,
        },
    )
    done = wait_for(
        lambda: Job.objects.filter(pk=job.pk, status__in=JobStatus.finished()).first(),
        timeout=120,
        message="the train job",
    )
    assert done.status == JobStatus.COMPLETED, done.error
    assert done.result["accuracy"] > 0.9 and done.result["auc_weighted"] > 0.95
    names = set(Artifact.objects.filter(job=done).values_list("name", flat=True))
    assert {"model.skops", "signature.json", "charts.json", "reference_profile.json", "onnx_report.json"} <= names
    assert done.metrics.filter(name="accuracy").exists()

    response = api(owner).post(
        f"/api/v1/workspaces/{workspace.pk}/jobs/{done.pk}/register/",
        {"name": "penguins", "aliases": ["champion"]},
        format="json",
    )
    assert response.status_code == 201, response.content
    version = ModelVersion.objects.get(pk=response.json()["id"])
    assert version.data_version == penguins and version.job == done and version.algorithm == algorithm
    assert version.lineage["libraries"]["skops"] and version.aliases.get().name == "champion"
    folder = model_version_dir(version)
    assert (folder / "model.skops").exists() and (folder / "signature.json").exists()
    import json

    from compute.jobs.recovery import job_artifact_dir

    report = json.loads((job_artifact_dir(done) / "onnx_report.json").read_text())
    # An ONNX twin where the pipeline converts and matches; otherwise the reason, and the skops file serves.
    assert (version.onnx_sha256 and (folder / "model.onnx").exists()) or (report["reason"] and not version.onnx_sha256)
    refused = api(owner).delete(f"/api/v1/workspaces/{workspace.pk}/jobs/{done.pk}/")
    assert refused.status_code == 409 and "penguins:1" in refused.json()["error"]["message"]
