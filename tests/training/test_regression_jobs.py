"""Regression through the two job kinds on real nodes: a train job and a small Automated ML run on
messy house sales (a price target in dollars), and the settings refused before anything runs."""

import json

import numpy as np
import pandas as pd
import pytest
from django.core.exceptions import ValidationError

from compute.jobs.models import Artifact, Job, JobStatus
from compute.jobs.recovery import job_artifact_dir
from compute.jobs.services import job_submit
from compute.models import TargetKind
from compute.services import target_create
from tests.conftest import wait_for
from training.automl_services import automl_submit
from training.models import TrainingJobKind
from training.registry_services import model_register

SIX = ("normalized_rmse", "rmse", "mae", "r2", "spearman", "mape")
WORDS = ["sunny", "renovated", "quiet", "busy road", "garden"]


def house_sales(n: int = 300, seed: int = 0, *, zero_prices: bool = False) -> pd.DataFrame:
    """Column names with spaces and symbols, an ID, a date, yes/no, text, missing values, and a
    right-skewed price in dollars (with a few rows without a price)."""
    rng = np.random.default_rng(seed)
    area = rng.normal(1500, 400, n).clip(400)
    rooms = rng.integers(1, 7, n).astype(float)
    pool = rng.choice(["yes", "no"], n, p=[0.2, 0.8])
    price = np.exp(10 + area / 800 + 0.1 * rooms + 0.3 * (pool == "yes") + rng.normal(0, 0.3, n)).round(0)
    frame = pd.DataFrame(
        {
            "House ID": [f"H-{1000 + i}" for i in range(n)],
            "Living Area (sq ft)": area.round(1),
            "Rooms #": rooms,
            "Neighbourhood": rng.choice(["North Side", "Old Town", "Riverside", "Hills"], n),
            "Sold On": pd.date_range("2019-01-01", periods=n, freq="3D").strftime("%Y-%m-%d"),
            "Pool?": pool,
            "Agent Notes": [" ".join(rng.choice(WORDS, 3)) for _ in range(n)],
            "Sale Price ($)": price,
        }
    )
    frame.loc[::11, "Rooms #"] = np.nan
    frame.loc[::37, "Sale Price ($)"] = np.nan
    if zero_prices:
        frame.loc[1:4, "Sale Price ($)"] = 0.0
    return frame


@pytest.fixture
def houses(owner, workspace, tmp_path):
    from data.services import data_version_from_file

    source = tmp_path / "house sales.csv"
    house_sales().to_csv(source, index=False)
    return data_version_from_file(actor=owner, workspace=workspace, path=source, name="house sales")


def finished(job, timeout: float = 120) -> Job:
    return wait_for(
        lambda: Job.objects.filter(pk=job.pk, status__in=JobStatus.finished()).first(),
        timeout=timeout,
        message=f"job {job.pk} to finish",
    )


def artifact_json(job, name: str):
    return json.loads((job_artifact_dir(job) / name).read_text())


@pytest.mark.worker
@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
def test_a_regression_train_job_validates_logs_six_metrics_and_packages_its_model(
    owner, workspace, houses, agent, broker
):
    cluster = target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu").target
    job = job_submit(
        actor=owner,
        workspace=workspace,
        kind="train",
        target=cluster,
        spec={
            "task": "regression",
            "data_version_id": houses.pk,
            "target_column": "Sale Price ($)",
            "algorithm": "ridge",
            "hyperparameters": {"alpha": 2.0},
            "validation": {"method": "cv", "n_folds": 3},
        },
    )
    assert job.spec["task"] == "regression"
    done = finished(job)
    assert done.status == JobStatus.COMPLETED, done.error
    result = done.result
    assert result["task"] == "regression" and result["classes"] == []
    assert all(result["metrics"][k] is not None for k in SIX), result["metrics"]
    assert result["r2"] > 0.4 and result["rows"] == 300 - len(range(0, 300, 37))
    names = set(Artifact.objects.filter(job=done).values_list("name", flat=True))
    assert {"model.skops", "signature.json", "charts.json", "reference_profile.json"} <= names
    charts = artifact_json(done, "charts.json")
    assert charts["task"] == "regression"
    assert len(charts["predicted_vs_actual"]["actual"]) == result["rows"]  # CV: every row predicted once
    assert sum(charts["residual_histogram"]["counts"]) == result["rows"]
    assert done.metrics.filter(name="rmse").exists() and done.metrics.filter(name="fold_normalized_rmse").count() == 3


@pytest.mark.worker
@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
def test_a_regression_automl_run_tries_log_targets_ensembles_and_scores_the_test_part(
    owner, workspace, houses, agent, broker, reconciler
):
    cluster = target_create(
        actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu", min_nodes=1, max_nodes=1
    ).target
    parent = automl_submit(
        actor=owner,
        workspace=workspace,
        target=cluster,
        data_version=houses,
        target_column="Sale Price ($)",
        settings={
            "task": "regression",
            "timeout_s": 45,
            "max_trials": 5,
            "trial_timeout_s": 20,
            "n_folds": 3,
            "validation": "cv",
            "early_stop_trials": None,
            "allowed_algorithms": ["ridge", "lightgbm", "extra_trees"],
            "infer_limit_ms": None,
        },
        test_fraction=0.25,
        seed=0,
    )
    assert parent.spec["task"] == "regression" and parent.spec["automl"]["primary_metric"] == "normalized_rmse"
    done = finished(parent, timeout=150)
    assert done.status == JobStatus.COMPLETED, (done.status_reason, done.error)
    guardrails = {g["name"]: g for g in done.result["setup"]["guardrails"]}
    assert guardrails["skewed_target"]["status"] == "done" and guardrails["missing_target"]["details"]["rows"] == 9
    assert guardrails["identifier_columns"]["details"]["columns"] == ["House ID"]
    trials = Job.objects.filter(parent=done, kind=TrainingJobKind.AUTOML_TRIAL).order_by("id")
    specs = [t.spec["trial"] for t in trials]
    assert {s["task"] for s in specs} == {"regression"}
    assert any(s["target_transform"] == "log1p" for s in specs)  # a log1p variant of a good candidate
    assert trials.filter(status=JobStatus.COMPLETED).count() >= 4
    final = Job.objects.get(parent=done, kind=TrainingJobKind.AUTOML_FINAL)
    metrics = done.result["test_metrics"]
    assert set(metrics) == set(SIX) and all(metrics[k] is not None for k in SIX), metrics
    assert metrics["r2"] > 0.3
    assert final.result["task"] == "regression" and final.result["r2"] == metrics["r2"]
    assert artifact_json(final, "charts.json")["task"] == "regression"
    importance = artifact_json(final, "importance.json")
    assert {row["feature"] for row in importance} >= {"Living Area (sq ft)", "Pool?"}
    assert importance[0]["feature"] == "Living Area (sq ft)"
    leaderboard = artifact_json(final, "leaderboard.json")
    assert leaderboard[0]["score"] <= leaderboard[-1]["score"] or leaderboard[-1]["score"] is None
    # a trial's own model registers as a regression too (its signature says so)
    trial = trials.filter(status=JobStatus.COMPLETED).first()
    assert artifact_json(trial, "signature.json")["task"] == "regression"
    version = model_register(actor=owner, job=trial, name="one-trial")
    assert version.task == "regression" and version.classes == []
    assert np.load(job_artifact_dir(trial) / "oof.npy").dtype == np.float64


@pytest.mark.django_db
def test_bad_regression_settings_are_refused_with_the_field_named(api, owner, workspace, houses, tmp_path):
    from data.services import data_version_from_file

    cluster = target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu").target
    train = {
        "task": "regression",
        "data_version_id": houses.pk,
        "target_column": "Sale Price ($)",
        "algorithm": "ridge",
        "hyperparameters": {},
        "validation": {"method": "cv", "n_folds": 3},
    }
    client = api(owner)

    def submit(**changes):
        body = {"kind": "train", "target": cluster.pk, "spec": {**train, **changes}}
        return client.post(f"/api/v1/workspaces/{workspace.pk}/jobs/", body, format="json")

    for changes, field in (
        ({"task": "clustering"}, "task"),
        ({"target_column": "Neighbourhood"}, "target_column"),  # text is no regression target
        ({"algorithm": "logistic_regression"}, "algorithm"),  # a classifier
        ({"hyperparameters": {"alpha": -1}}, "hyperparameters"),
    ):
        response = submit(**changes)
        assert response.status_code == 400, (changes, response.content)
        assert field in response.json()["error"]["fields"], (changes, response.json())
    assert submit().status_code == 201
    assert submit(task=None, target_column="Pool?", algorithm="logistic_regression").status_code == 201

    source = tmp_path / "with zeros.csv"
    house_sales(zero_prices=True).to_csv(source, index=False)
    zeros = data_version_from_file(actor=owner, workspace=workspace, path=source, name="with zeros")

    def automl(version, **settings):
        return automl_submit(
            actor=owner,
            workspace=workspace,
            target=cluster,
            data_version=version,
            target_column=settings.pop("target_column", "Sale Price ($)"),
            settings={"task": "regression", **settings},
        )

    for version, settings, field in (
        (zeros, {"primary_metric": "mape"}, "primary_metric"),
        (houses, {"primary_metric": "auc_weighted"}, "primary_metric"),
        (houses, {"task": "ranking"}, "task"),
        (houses, {"target_column": "Agent Notes"}, "target_column"),
    ):
        with pytest.raises(ValidationError) as refused:
            automl(version, **settings)
        assert field in refused.value.message_dict, (settings, refused.value.message_dict)
    assert automl(houses, primary_metric="mape").spec["automl"]["primary_metric"] == "mape"
    assert automl(zeros, primary_metric="r2").spec["task"] == "regression"
