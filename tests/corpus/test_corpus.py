"""Every file of the real-data corpus (tests/data/corpus/) through the product, as a user drives it.

Upload → profile → Train (one fast algorithm) → a short Automated ML run → register → deploy →
score through the scoring URL (records and split payloads) → monitoring counts and drift → batch
scoring, all through the API and on real node processes. Labels come back as they were written
("yes", "Y", "true", "TRUE", "10"), never as Python's True or a float.
"""

import csv
import io
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from compute.jobs.models import Job, JobStatus
from data.models import DataVersion, Ingest
from data.services import data_version_path
from endpoints import serving
from tests.conftest import wait_for
from tests.data.corpus.generate import FILES
from training.models import ModelVersion, TrainingJobKind

pytestmark = [pytest.mark.worker]

CORPUS = Path(__file__).resolve().parent.parent / "data" / "corpus"
SCORED_ROWS = 6  # rows of each file sent to the scoring URL, in each payload shape

# Text that must come back exactly as the file wrote it (times of day, labels).
AS_WRITTEN = {
    "sensors.csv": ["shift start", "alarm"],
    "ticket_codes.csv": ["response time", "ticket"],
    "clinic_visits.csv": ["check-in", "patient.no"],
    "long_labels.csv": ["outcome", "message"],
}
MOSTLY_MISSING = {"sparse_signs.csv": ["mostly empty"], "web_sessions.csv": ["referrer"]}
TABS = ("overview", "preview", "profile", "schema")
ENDPOINT_TABS = ("details", "test", "consume", "monitoring")

# What the profile must call some columns of each file (the rest: whatever fits).
TYPES = {
    "churn.csv": {
        "customer id": "identifier",
        "signup date": "datetime",
        "monthly charges": "numeric",  # "1,234.50"
        "notes": "text",
        "churned": "categorical",
    },
    "sensors.csv": {
        "reading.id": "identifier",
        "recorded at": "datetime",
        "local time": "datetime",
        "temp.c": "numeric",
        "pressure [kPa]": "numeric",
        "flow/min": "numeric",
        "shift start": "categorical",  # "06:00", a time of day
        "alarm": "categorical",
    },
    "unicode_names.csv": {
        "🔥 score": "integer",
        "1st_visit": "datetime",
        "città": "categorical",
        "approved": "boolean",
    },
    "case_twins.csv": {"ID": "identifier", "Value": "numeric", "value": "numeric", "source": "categorical"},
    "sparse_signs.csv": {"mostly empty": "numeric", "mixed": "categorical", "direction": "categorical"},
    "grades.csv": {"student id": "identifier", "hours/week": "numeric", "score (%)": "numeric"},
    "ticket_codes.csv": {
        "opened": "datetime",
        "opened day": "datetime",
        "response time": "categorical",
        "amount": "integer",  # "14,738"
        "escalated": "boolean",
    },
    "long_labels.csv": {"case": "identifier", "message": "text", "is_vip": "boolean", "order value": "numeric"},
    "spreadsheet_export.csv": {"Order Date": "datetime", "Revenue": "numeric", "Converted": "boolean"},
    "web_sessions.csv": {"session_id": "identifier", "duration (s)": "numeric", "referrer": "categorical"},
    "clinic_visits.csv": {
        "visit (local)": "datetime",
        "visit [utc]": "datetime",
        "BMI": "numeric",
        "bmi": "categorical",
    },
}


def read_as_written(name: str) -> tuple[list[str], list[dict[str, str]]]:
    with (CORPUS / name).open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames), list(reader)


def json_value(text: str):
    """A CSV cell as a JSON client sends it: numbers as numbers, empty as null, the rest as text."""
    if text == "":
        return None
    if re.fullmatch(r"-?\d+", text) and not (len(text) > 1 and text.startswith("0")):
        return int(text)
    if re.fullmatch(r"-?\d+\.\d+", text):
        return float(text)
    return text


# Each model the corpus produced: True when it got a verified ONNX twin, else the reason why not;
# conftest prints the share.
ONNX_SERVED: dict[str, bool | str] = {}


def finished(job_id: int, timeout: float) -> Job:
    return wait_for(
        lambda: Job.objects.filter(pk=job_id, status__in=JobStatus.finished()).first(),
        timeout=timeout,
        interval=0.2,
        message=f"job {job_id}",
    )


def upload(client, studio, name: str, asset: str = "") -> DataVersion:
    content = (CORPUS / name).read_bytes()
    f = io.BytesIO(content)
    f.name = name
    response = client.post(
        f"/api/v1/workspaces/{studio.workspace.pk}/data-assets/",
        {"file": f, "name": asset or Path(name).stem},
        format="multipart",
    )
    assert response.status_code == 202, response.content
    ingest = wait_for(
        lambda: Ingest.objects.filter(pk=response.json()["id"], status__in=["ready", "failed"]).first(),
        timeout=120,
        interval=0.2,
        message=f"the ingest of {name}",
    )
    assert ingest.status == "ready", ingest.error
    return ingest.version


@pytest.mark.parametrize("name", list(FILES))
def test_a_corpus_file_goes_from_upload_to_batch_scoring_with_its_labels_as_written(api, client, studio, name):
    _, _, target, labels = FILES[name]
    header, rows = read_as_written(name)
    rest = api(studio.owner)
    ws = f"/api/v1/workspaces/{studio.workspace.pk}"

    # Upload and profile: every column under the name it was written with.
    version = upload(rest, studio, name)
    assert version.rows == len(rows)
    assert [c["name"] for c in version.schema["columns"]] == header
    types = {c["name"]: c["semantic_type"] for c in version.schema["columns"]}
    assert {column: types[column] for column in TYPES[name]} == TYPES[name]
    detail = rest.get(f"{ws}/data-assets/{version.asset_id}/versions/{version.version}/").json()
    profiles = {c["name"]: c for c in detail["profile"]["column_profiles"]}
    assert list(profiles) == header
    for column in MOSTLY_MISSING.get(name, ()):
        assert 50 <= profiles[column]["missing_pct"] <= 70, profiles[column]
        assert "mostly_missing" in {w["code"] for w in profiles[column]["warnings"]}
    preview = rest.get(f"{ws}/data-assets/{version.asset_id}/versions/{version.version}/preview/?limit=5").json()
    assert [c["name"] if isinstance(c, dict) else c for c in preview["columns"]] == header
    for column in AS_WRITTEN.get(name, ()):
        shown = [r[header.index(column)] for r in preview["rows"]]
        assert shown == [row[column] for row in rows[:5]], column

    # Train (one fast algorithm) and a short Automated ML run, side by side on the two nodes.
    train = rest.post(
        f"{ws}/jobs/",
        {
            "kind": "train",
            "target": studio.cluster.pk,
            "spec": {
                "data_version_id": version.pk,
                "target_column": target,
                "algorithm": "logistic_regression",
                "hyperparameters": {},
                "validation": {"method": "holdout", "holdout_fraction": 0.25},
            },
        },
        format="json",
    )
    assert train.status_code == 201, train.content
    stem = Path(name).stem.replace("_", "-")
    automl = rest.post(
        f"{ws}/automl/",
        {
            "data_version": version.pk,
            "target_column": target,
            "target": studio.cluster.pk,
            "settings": {"timeout_s": 10, "max_trials": 2, "max_concurrent_trials": 1, "early_stop_trials": None},
            "register_as": f"{stem}-automl",
        },
        format="json",
    )
    assert automl.status_code == 201, automl.content
    trained = finished(train.json()["id"], timeout=120)
    assert trained.status == JobStatus.COMPLETED, (trained.status_reason, trained.error)
    registered = rest.post(f"{ws}/jobs/{trained.pk}/register/", {"name": f"{stem}-train"}, format="json")
    assert registered.status_code == 201, registered.content
    assert ModelVersion.objects.get(pk=registered.json()["id"]).classes == labels

    run = finished(automl.json()["id"], timeout=150)
    assert run.status == JobStatus.COMPLETED, (run.status_reason, run.error)
    model = ModelVersion.objects.get(model__workspace=studio.workspace, model__name=f"{stem}-automl")
    assert model.classes == labels
    trained_model = ModelVersion.objects.get(pk=registered.json()["id"])
    final_job = run.children.get(kind=TrainingJobKind.AUTOML_FINAL)
    ONNX_SERVED[f"{name} (Automated ML)"] = bool(model.onnx_sha256) or final_job.result.get("onnx_reason")
    ONNX_SERVED[f"{name} (Train)"] = bool(trained_model.onnx_sha256) or trained.result.get("onnx_reason")

    # Deploy the Automated ML model behind a new endpoint.
    endpoint = rest.post(f"{ws}/endpoints/", {"name": stem}, format="json")
    assert endpoint.status_code == 201, endpoint.content
    key, endpoint_id = endpoint.json()["primary_key"], endpoint.json()["id"]
    deployed = rest.post(
        f"{ws}/endpoints/{endpoint_id}/deployments/",
        {"name": "blue", "model_version": model.pk, "target": studio.inference.pk},
        format="json",
    )
    assert deployed.status_code == 201, deployed.content

    # Score through the scoring URL: records, then the same rows as a split payload.
    features = [c for c in header if c != target]
    sample = [{c: json_value(row[c]) for c in features} for row in rows[:SCORED_ROWS]]
    split = {"dataframe_split": {"columns": features, "data": [[r[c] for c in features] for r in sample]}}
    answers = []
    for payload in (sample, split):
        response = client.post(
            f"/score/{stem}/",
            json.dumps(payload),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {key}",
        )
        assert response.status_code == 200, response.content
        body = response.json()
        assert len(body["predictions"]) == SCORED_ROWS
        assert set(body["predictions"]) <= set(labels), body["predictions"]
        assert all(isinstance(p, str) for p in body["predictions"]), body["predictions"]
        answers.append(body["predictions"])
    assert answers[0] == answers[1]

    # The Train model beside it (no traffic), scored by pinning the deployment.
    green = rest.post(
        f"{ws}/endpoints/{endpoint_id}/deployments/",
        {"name": "green", "model_version": registered.json()["id"], "target": studio.inference.pk},
        format="json",
    )
    assert green.status_code == 201, green.content
    serving.configs.clear()  # this process checks the database at most once a second; now, please
    pinned = client.post(
        f"/score/{stem}/",
        json.dumps(sample),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
        HTTP_X_STUDIO_DEPLOYMENT="green",
    )
    assert pinned.status_code == 200, pinned.content
    assert pinned.json()["deployment"] == "green" and set(pinned.json()["predictions"]) <= set(labels)

    # Monitoring: both calls counted, the predicted classes by their text, drift per column.
    serving.monitor.flush()
    monitoring = rest.get(f"{ws}/endpoints/{endpoint_id}/monitoring/").json()
    blue = monitoring["deployments"]["blue"]
    assert (blue["requests"], blue["rows"], blue["errors_4xx"], blue["errors_5xx"]) == (2, 2 * SCORED_ROWS, 0, 0)
    assert set(blue["predicted"]) <= set(labels) and sum(blue["predicted"].values()) == 2 * SCORED_ROWS
    assert blue["drift"] and blue["drift"]["rows"] == 2 * SCORED_ROWS
    assert set(blue["drift"]["columns"]) <= set(features) and blue["drift"]["columns"]

    # The endpoint's own OpenAPI document names the columns as written.
    document = rest.get(f"{ws}/endpoints/{endpoint_id}/openapi/")
    assert document.status_code == 200, document.content
    assert set(features) <= set(json.dumps(document.json(), ensure_ascii=False).split('"'))

    # Every page about this file renders (names with brackets, slashes, emoji and case twins).
    client.force_login(studio.owner)
    pages = [f"/w/{studio.workspace.pk}/data/{version.asset_id}/v/{version.version}/?tab={tab}" for tab in TABS]
    pages += [f"/w/{studio.workspace.pk}/jobs/{job}/" for job in (trained.pk, run.pk)]
    pages += [f"/w/{studio.workspace.pk}/models/{model.model_id}/v/{model.version}/"]
    pages += [f"/w/{studio.workspace.pk}/endpoints/{endpoint_id}/?tab={tab}" for tab in ENDPOINT_TABS]
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, (page, response.content.decode()[:2000])

    # Batch scoring through the endpoint: the whole file, labels as written.
    batch = rest.post(
        f"{ws}/jobs/",
        {
            "kind": "batch_score",
            "target": studio.cluster.pk,
            "spec": {"endpoint_id": endpoint_id, "data_version_id": version.pk},
        },
        format="json",
    )
    assert batch.status_code == 201, batch.content
    scored_job = finished(batch.json()["id"], timeout=120)
    assert scored_job.status == JobStatus.COMPLETED, (scored_job.status_reason, scored_job.error)
    scored = DataVersion.objects.get(pk=scored_job.result["output_data_version_id"])
    frame = pd.read_parquet(data_version_path(scored))
    assert len(frame) == len(rows)
    assert list(frame.columns[: len(header)]) == header
    assert set(frame["prediction"]) <= set(labels) and frame["prediction"].map(type).eq(str).all()


# The corpus files that suit the other tasks: (file, task, target, settings beyond the budget).
TASK_FILES = [
    ("web_sessions.csv", "regression", "duration (s)", {}),
    ("spreadsheet_export.csv", "regression", "Revenue", {}),  # "4,355.36": separators in the target
    # readings every ~17 minutes at jittered times, some with a zone: forecast hourly
    ("sensors.csv", "forecasting", "temp.c", {"time_column": "recorded at", "frequency": "h", "horizon": 6}),
    # orders on random days, several a day: daily revenue with gaps and repeated days
    ("spreadsheet_export.csv", "forecasting", "Revenue", {"time_column": "Order Date", "horizon": 7}),
]


@pytest.mark.parametrize(("name", "task", "target", "given"), TASK_FILES)
def test_a_corpus_file_is_a_regression_or_a_forecast_from_upload_to_monitoring(
    api, client, studio, name, task, target, given
):
    rest = api(studio.owner)
    ws = f"/api/v1/workspaces/{studio.workspace.pk}"
    stem = f"{Path(name).stem.replace('_', '-')}-{task}"
    version = upload(rest, studio, name, asset=stem)
    budget = {"timeout_s": 30, "backtest_windows": 2} if task == "forecasting" else {"timeout_s": 15, "max_trials": 3}
    automl = rest.post(
        f"{ws}/automl/",
        {
            "data_version": version.pk,
            "target_column": target,
            "task": task,
            "target": studio.cluster.pk,
            "settings": {**budget, **given},
            "register_as": stem,
        },
        format="json",
    )
    assert automl.status_code == 201, automl.content
    run = finished(automl.json()["id"], timeout=150)
    assert run.status == JobStatus.COMPLETED, (run.status_reason, run.error)
    model = ModelVersion.objects.get(model__workspace=studio.workspace, model__name=stem)
    assert model.task == task

    endpoint = rest.post(f"{ws}/endpoints/", {"name": stem}, format="json")
    assert endpoint.status_code == 201, endpoint.content
    key, endpoint_id = endpoint.json()["primary_key"], endpoint.json()["id"]
    deployed = rest.post(
        f"{ws}/endpoints/{endpoint_id}/deployments/",
        {"name": "blue", "model_version": model.pk, "target": studio.inference.pk},
        format="json",
    )
    assert deployed.status_code == 201, deployed.content
    header, rows = read_as_written(name)
    if task == "regression":
        payload = [{c: json_value(row[c]) for c in header if c != target} for row in rows[:SCORED_ROWS]]
        expected = SCORED_ROWS
    else:
        payload, expected = {}, given["horizon"]  # from the end of the stored history
    response = client.post(
        f"/score/{stem}/", json.dumps(payload), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    if task == "regression":
        assert len(body["predictions"]) == expected and all(isinstance(p, float) for p in body["predictions"])
    else:
        forecasts = body["forecasts"]
        assert len(forecasts) == expected
        assert all(f["lower"] <= f["forecast"] <= f["upper"] for f in forecasts)
        assert pd.Timestamp(forecasts[1][given["time_column"]]) > pd.Timestamp(forecasts[0][given["time_column"]])

    serving.monitor.flush()
    monitoring = rest.get(f"{ws}/endpoints/{endpoint_id}/monitoring/").json()
    blue = monitoring["deployments"]["blue"]
    assert (blue["requests"], blue["errors_4xx"], blue["errors_5xx"]) == (1, 0, 0)
    client.force_login(studio.owner)
    for page in (
        f"/w/{studio.workspace.pk}/jobs/{run.pk}/",
        f"/w/{studio.workspace.pk}/models/{model.model_id}/v/{model.version}/",
        *(f"/w/{studio.workspace.pk}/endpoints/{endpoint_id}/?tab={tab}" for tab in ENDPOINT_TABS),
    ):
        response = client.get(page)
        assert response.status_code == 200, (page, response.content.decode()[:2000])
