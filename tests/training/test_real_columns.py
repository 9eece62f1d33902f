"""Ordinary tables through a real Train job: date and datetime columns, and labels written as yes/no.

Each table is ingested by the real engine, trained by a node worker, packaged, registered through
the API, and scored from the registered files with a JSON payload (dates as ISO 8601 strings).
"""

import json

import numpy as np
import pandas as pd
import pytest

from compute.jobs.models import Job, JobStatus
from compute.jobs.services import job_submit
from compute.models import TargetKind
from compute.services import target_create
from data.services import data_version_from_file
from endpoints.scoring.predictor import load_predictor
from tests.conftest import wait_for
from training.models import ModelVersion
from training.registry_services import model_version_dir

pytestmark = [pytest.mark.worker]


def churn_with_dates(n=240, seed=0) -> pd.DataFrame:
    """A churn-like table: a plain date, a naive datetime, a datetime with an offset, yes/no labels."""
    rng = np.random.default_rng(seed)
    signup = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 600, n), unit="D")
    tenure = rng.integers(1, 72, n)
    login = signup + pd.to_timedelta(rng.integers(0, 86_400, n), unit="s")
    churn = np.where((tenure < 20) ^ (rng.random(n) < 0.1), "yes", "no")
    return pd.DataFrame(
        {
            "signup date": signup.strftime("%Y-%m-%d"),
            "last_login": login.strftime("%Y-%m-%d %H:%M:%S"),
            "billed_at": (signup + pd.Timedelta(hours=9)).strftime("%Y-%m-%dT%H:%M:%S+02:00"),
            "tenure": tenure,
            "plan": rng.choice(["basic", "pro"], n),
            "Churn": churn,
        }
    )


def train_and_register(api, owner, workspace, version, target, name):
    cluster = target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu").target
    job = job_submit(
        actor=owner,
        workspace=workspace,
        kind="train",
        target=cluster,
        spec={
            "data_version_id": version.pk,
            "target_column": target,
            "algorithm": "logistic_regression",
            "hyperparameters": {},
            "validation": {"method": "holdout", "holdout_fraction": 0.25},
        },
    )
    done = wait_for(
        lambda: Job.objects.filter(pk=job.pk, status__in=JobStatus.finished()).first(),
        timeout=120,
        message="the train job",
    )
    assert done.status == JobStatus.COMPLETED, done.error
    response = api(owner).post(
        f"/api/v1/workspaces/{workspace.pk}/jobs/{done.pk}/register/", {"name": name}, format="json"
    )
    assert response.status_code == 201, response.content
    return ModelVersion.objects.get(pk=response.json()["id"])


def predictor_of(model_version):
    folder = model_version_dir(model_version)
    return load_predictor(
        model_path=folder / "model.skops",
        model_sha256=model_version.sha256,
        signature=model_version.signature,
        onnx_path=(folder / "model.onnx") if model_version.onnx_sha256 else None,
        onnx_sha256=model_version.onnx_sha256 or None,
    )


@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
def test_dates_train_package_register_and_score_with_yes_no_labels(
    api, client, owner, workspace, agent, broker, tmp_path
):
    source = tmp_path / "churn.csv"
    churn_with_dates().to_csv(source, index=False)
    version = data_version_from_file(actor=owner, workspace=workspace, path=source, name="churn")
    types = {c["name"]: c["semantic_type"] for c in version.schema["columns"]}
    assert types["signup date"] == types["last_login"] == types["billed_at"] == "datetime"
    assert types["Churn"] == "categorical"  # the text "yes"/"no", not booleans

    model_version = train_and_register(api, owner, workspace, version, "Churn", "churn")
    assert model_version.signature["classes"] == ["no", "yes"]

    rows = [
        {
            "signup date": "2024-03-01",
            "last_login": "2024-03-01T10:15:00",
            "billed_at": "2024-03-01T09:00:00+02:00",
            "tenure": 3,
            "plan": "basic",
        },
        {
            "signup date": "2023-02-11",
            "last_login": "2023-02-11 08:00:00",
            "billed_at": "2023-02-11T07:00:00Z",
            "tenure": 70,
            "plan": "pro",
        },
    ]
    predictor = predictor_of(model_version)
    scored = predictor.score(rows)
    assert scored["predictions"] == ["yes", "no"]
    assert set(scored["probabilities"][0]) == {"no", "yes"}

    # Batch scoring reads the version's Parquet file, whose dates are date32.
    from data.services import data_version_path
    from endpoints.scoring.batch import score_table

    result = score_table(predictor, data_version_path(version), tmp_path / "scored.parquet")
    assert result["rows_scored"] == 240
    assert set(pd.read_parquet(tmp_path / "scored.parquet")["prediction"]) == {"no", "yes"}

    # Deployed: the scoring URL takes the dates as ISO text, as records and as a split payload.
    from endpoints import services as endpoint_services

    inference = target_create(actor=owner, workspace=workspace, kind=TargetKind.INFERENCE, name="serving").target
    created = endpoint_services.endpoint_create(actor=owner, workspace=workspace, name="churn-dates")
    endpoint_services.deployment_create(
        actor=owner, endpoint=created.endpoint, name="blue", model_version=model_version, target=inference
    )
    split = {"dataframe_split": {"columns": list(rows[0]), "data": [list(r.values()) for r in rows]}}
    for payload in (rows, split):
        response = client.post(
            "/score/churn-dates/",
            json.dumps(payload),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {created.primary}",
        )
        assert response.status_code == 200, response.content
        assert response.json()["predictions"] == ["yes", "no"]
    from endpoints import serving
    from endpoints.models import MonitoringBucket

    serving.monitor.flush()  # now, while the test database exists
    counted = MonitoringBucket.objects.filter(endpoint=created.endpoint)
    assert sum(counted.values_list("requests", flat=True)) == 2


@pytest.mark.parametrize(
    ("labels", "expected"),
    [(("yes", "no"), ["no", "yes"]), (("Y", "N"), ["N", "Y"])],
    ids=["yes-no", "Y-N"],
)
def test_yes_no_labels_keep_their_text_in_the_schema(owner, workspace, tmp_path, labels, expected):
    source = tmp_path / "labels.csv"
    frame = pd.DataFrame({"x": range(60), "label": [labels[i % 2] for i in range(60)]})
    frame.to_csv(source, index=False)
    version = data_version_from_file(actor=owner, workspace=workspace, path=source, name="labels")
    column = next(c for c in version.schema["columns"] if c["name"] == "label")
    assert (column["semantic_type"], column["physical_type"]) == ("categorical", "string")
    from training.datasets import load_training_data

    assert sorted(load_training_data(version, "label").y.unique()) == expected


@pytest.mark.parametrize(
    ("labels", "expected"),
    [((1, 2, 3), ["1", "2", "3"]), ((-1, 1), ["-1", "1"]), ((0, 1), ["0", "1"])],
    ids=["1-2-3", "minus-one-one", "zero-one"],
)
def test_whole_number_labels_stay_whole_when_some_targets_are_missing(owner, workspace, tmp_path, labels, expected):
    from training.datasets import load_training_data

    source = tmp_path / "codes.csv"
    rows = [f"{i},{'' if i % 10 == 0 else labels[i % len(labels)]}" for i in range(60)]
    source.write_text("x,code\n" + "\n".join(rows) + "\n")
    version = data_version_from_file(actor=owner, workspace=workspace, path=source, name="codes")
    data = load_training_data(version, "code")
    assert sorted(data.y.unique()) == expected and data.dropped_rows == 6


@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
def test_automated_ml_with_dates_completes_registers_and_keeps_yes_no_labels(owner, workspace, agent, broker, tmp_path):
    from training.automl_services import automl_submit

    source = tmp_path / "churn.csv"
    churn_with_dates().to_csv(source, index=False)
    version = data_version_from_file(actor=owner, workspace=workspace, path=source, name="churn")
    cluster = target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu").target
    parent = automl_submit(
        actor=owner,
        workspace=workspace,
        target=cluster,
        data_version=version,
        target_column="Churn",
        settings={"timeout_s": 60, "max_trials": 3, "trial_timeout_s": 30, "early_stop_trials": None},
        test_fraction=0.2,
        register_as="churn-dates",
    )
    done = wait_for(
        lambda: Job.objects.filter(pk=parent.pk, status__in=JobStatus.finished()).first(),
        timeout=180,
        message="the Automated ML run",
    )
    assert done.status == JobStatus.COMPLETED, (done.status_reason, done.error)
    model_version = ModelVersion.objects.get(model__name="churn-dates")
    assert model_version.classes == ["no", "yes"]
    scored = predictor_of(model_version).score(
        {
            "signup date": ["2024-03-01"],
            "last_login": ["2024-03-01T10:15:00"],
            "billed_at": ["2024-03-01T09:00:00+02:00"],
            "tenure": [3],
            "plan": ["basic"],
        }
    )
    assert scored["predictions"][0] in ("no", "yes")
