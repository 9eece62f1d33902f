"""A regression model served: numbers out on the skops and ONNX paths, prediction drift in
monitoring, a float column from batch scoring, the pages and the OpenAPI document saying
"number", and a skops regressor uploaded from elsewhere registered as a regression."""

import io
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from django.core.cache import cache

from compute.jobs.models import Job, JobStatus
from compute.models import TargetKind
from compute.services import target_create
from data.models import DataVersion
from data.services import data_version_from_file, data_version_path
from endpoints import selectors, serving
from endpoints import services as endpoint_services
from endpoints.scoring.predictor import load_predictor
from modelformat.modelio import save_model
from tests.conftest import wait_for
from tests.training import regression_models as rm
from tests.training.test_packaging import _Artifacts
from training import packaging
from training.models import ModelVersion, RegisteredModel
from training.registry_services import model_version_dir

_BUILT: dict = {}


def _packaged(kind: str = "hist_gradient_boosting") -> dict:
    """Fit and package once per test session (the files are copied for each test)."""
    if kind not in _BUILT:
        frame = rm.messy_frame(300)
        model = rm.fitted(kind, frame)
        folder = Path(tempfile.mkdtemp(prefix="h-regserve-"))
        X = rm.features(frame)
        summary = packaging.package_model(
            _Artifacts(folder),
            model,
            X=X,
            X_check=X.tail(100),
            column_types=rm.COLUMN_TYPES,
            target=rm.TARGET,
            classes=[],
            task="regression",
            y=frame[rm.TARGET],
        )
        assert summary["onnx"], (folder / "onnx_report.json").read_text()
        _BUILT[kind] = {"folder": folder, "summary": summary, "frame": frame, "model": model}
    return _BUILT[kind]


def register_regression(workspace, owner, *, with_onnx=True, name="prices"):
    """A registered regression version with the files packaging wrote (no training job needed)."""
    built = _packaged()
    folder = built["folder"]
    signature = json.loads((folder / "signature.json").read_text())
    report = json.loads((folder / "onnx_report.json").read_text())
    registered, _ = RegisteredModel.objects.get_or_create(workspace=workspace, name=name)
    version = ModelVersion.objects.create(
        model=registered,
        version=registered.versions.count() + 1,
        algorithm="hist_gradient_boosting",
        task=signature["task"],
        target_column=rm.TARGET,
        signature=signature,
        classes=[],
        metrics={"rmse": 9000.0},
        sha256=built["summary"]["model_sha256"],
        onnx_sha256=report["sha256"] if with_onnx else "",
        onnx_max_abs_diff=report["max_abs_diff"],
        created_by=owner,
    )
    target = model_version_dir(version)
    target.mkdir(parents=True, exist_ok=True)
    names = ["model.skops", "signature.json", "reference_profile.json", "onnx_report.json"]
    for file_name in names + (["model.onnx"] if with_onnx else []):
        (target / file_name).write_bytes((folder / file_name).read_bytes())
    return version


def rows(n=20, *, shift=1.0, seed=5) -> list[dict]:
    frame = rm.features(rm.messy_frame(n, seed=seed))
    frame["floor area (m²)"] = frame["floor area (m²)"] * shift
    return json.loads(frame.to_json(orient="records", date_format="iso"))


def post(client, name, payload, key, **headers):
    return client.post(
        f"/score/{name}/",
        json.dumps(payload),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
        **headers,
    )


@pytest.fixture
def deployed(owner, workspace, inference):
    """An endpoint with two deployments of the regression: blue (ONNX twin) and green (skops only)."""
    created = endpoint_services.endpoint_create(actor=owner, workspace=workspace, name="prices-api")
    for name, with_onnx in (("blue", True), ("green", False)):
        endpoint_services.deployment_create(
            actor=owner,
            endpoint=created.endpoint,
            name=name,
            model_version=register_regression(workspace, owner, with_onnx=with_onnx),
            target=inference,
        )
    created.endpoint.refresh_from_db()
    endpoint_services.traffic_set(actor=owner, endpoint=created.endpoint, traffic={"blue": 100})
    cache.clear()
    serving.configs.clear()
    return created


@pytest.mark.django_db
def test_a_regression_deployment_answers_floats_on_both_backends(client, deployed):
    payload = rows(12)
    payload[0]["floor area (m²)"], payload[1]["district/zone"], payload[2]["has garden?"] = None, "new town", None
    answers = {}
    for name in ("blue", "green"):
        response = post(client, "prices-api", payload, deployed.primary, HTTP_X_STUDIO_DEPLOYMENT=name)
        assert response.status_code == 200, response.content
        body = response.json()
        assert set(body) == {"predictions", "deployment", "model"}  # no probabilities
        assert len(body["predictions"]) == 12 and all(type(v) is float for v in body["predictions"])
        answers[name] = body["predictions"]
    runtime = serving.configs.get("prices-api")
    assert runtime.deployments["blue"].predictor().backend == "onnx"
    assert runtime.deployments["green"].predictor().backend == "skops"
    np.testing.assert_allclose(answers["blue"], answers["green"], rtol=1e-5)
    built = _packaged()
    expected = built["model"].predict(rm.features(rm.messy_frame(12, seed=5)))
    assert abs(answers["green"][5] - expected[5]) <= 1e-6 * abs(expected[5])

    bad = post(client, "prices-api", [{**payload[3], "n rooms": "many"}], deployed.primary)
    assert bad.status_code == 400 and "n rooms" in bad.json()["error"]["fields"]


@pytest.mark.django_db
def test_the_endpoint_list_says_insufficient_data_until_enough_rows_are_scored(client, owner, workspace, deployed):
    def health():
        serving.monitor.flush()
        return selectors.endpoint_health(endpoint=deployed.endpoint)

    assert selectors.endpoints_health(endpoints=[deployed.endpoint])[0].drift_status == "Insufficient data"  # idle
    assert post(client, "prices-api", rows(3, seed=40), deployed.primary).status_code == 200
    assert health().drift_status == "Insufficient data"  # three rows have not passed anything yet
    client.force_login(owner)
    page = client.get(f"/w/{workspace.pk}/endpoints/").content.decode()
    assert '<span class="badge drift-insufficientdata">Insufficient data</span>' in page
    for i in range(3):
        shifted = rows(60, shift=2.5, seed=50 + i)
        assert (
            post(client, "prices-api", shifted, deployed.primary, HTTP_X_STUDIO_DEPLOYMENT="green").status_code == 200
        )
    assert health().drift_status == "Alerted"


@pytest.mark.django_db
def test_monitoring_shows_prediction_drift_higher_for_shifted_inputs(api, client, owner, workspace, deployed):
    for i in range(3):
        usual = post(client, "prices-api", rows(60, seed=20 + i), deployed.primary, HTTP_X_STUDIO_DEPLOYMENT="blue")
        shifted = rows(60, shift=2.5, seed=30 + i)
        moved = post(client, "prices-api", shifted, deployed.primary, HTTP_X_STUDIO_DEPLOYMENT="green")
        assert usual.status_code == moved.status_code == 200
    serving.monitor.flush()
    url = f"/api/v1/workspaces/{workspace.pk}/endpoints/{deployed.endpoint.pk}/monitoring/"
    body = api(owner).get(url).json()["deployments"]
    usual, moved = body["blue"]["prediction_drift"], body["green"]["prediction_drift"]
    assert usual["rows"] == moved["rows"] == 180, (usual, moved)
    assert usual["status"] in ("Passed", "Warning") and moved["status"] == "Alerted"
    assert moved["psi"] > usual["psi"] + 0.25
    assert body["blue"]["predicted"] == {}  # numbers are binned for drift, not counted as classes

    client.force_login(owner)
    page = client.get(f"/w/{workspace.pk}/endpoints/{deployed.endpoint.pk}/?tab=monitoring").content.decode()
    assert "Prediction drift — green" in page and "predictions drifted" in page
    assert 'data-chart="mon-prediction-green"' in page and "served predictions" in page
    assert abs(sum(moved["observed"]) - 1) < 1e-4 and len(moved["observed"]) == len(moved["edges"]) + 2


@pytest.mark.django_db
def test_pages_and_openapi_say_the_model_predicts_a_number(api, client, owner, workspace, deployed):
    version = ModelVersion.objects.exclude(onnx_sha256="").get(model__name="prices")
    client.force_login(owner)
    page = client.get(f"/w/{workspace.pk}/models/{version.model_id}/v/{version.version}/").content.decode()
    assert "Regression · hist_gradient_boosting predicts <strong>Sale Price ($)</strong> (number)" in page
    assert "relative of scikit-learn" in page and "classes:" not in page
    listing = client.get(f"/w/{workspace.pk}/models/{version.model_id}/").content.decode()
    assert "Normalised RMSE" in listing and "AUC" not in listing
    consume = client.get(f"/w/{workspace.pk}/endpoints/{deployed.endpoint.pk}/?tab=consume").content.decode()
    assert "one number per row" in consume and '"probabilities"' not in consume
    document = api(owner).get(f"/api/v1/workspaces/{workspace.pk}/endpoints/{deployed.endpoint.pk}/openapi/").json()
    answer = document["paths"]["/score/prices-api/"]["post"]["responses"]["200"]["content"]["application/json"]
    assert answer["schema"]["properties"]["predictions"]["items"] == {"type": "number"}
    assert "probabilities" not in answer["schema"]["properties"]


def _packaged_predictor() -> tuple[dict, object]:
    """The packaged model and its skops predictor, as a batch job loads it."""
    built = _packaged()
    folder = built["folder"]
    predictor = load_predictor(
        model_path=folder / "model.skops",
        model_sha256=built["summary"]["model_sha256"],
        signature=json.loads((folder / "signature.json").read_text()),
    )
    return built, predictor


def test_batch_scoring_a_table_writes_a_float_prediction_column(tmp_path):
    from endpoints.scoring.batch import score_table

    built, predictor = _packaged_predictor()
    table = rm.messy_frame(50, seed=2)
    table.to_parquet(tmp_path / "in.parquet")
    summary = score_table(predictor, tmp_path / "in.parquet", tmp_path / "out.parquet", chunk_rows=20)
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert summary["probability_columns"] == [] and summary["chunks"] == 3
    assert list(out.columns) == [*table.columns, "prediction"] and out["prediction"].dtype == np.float64
    np.testing.assert_allclose(out["prediction"], built["model"].predict(rm.features(table)), rtol=1e-9)


def test_predictions_are_plain_floats_and_an_overflow_is_null():
    _, predictor = _packaged_predictor()
    answer = predictor.format_numbers(np.array([1.25, np.inf, np.nan, -2.0, -np.inf]))
    assert answer == {"predictions": [1.25, None, None, -2.0, None]}
    assert json.dumps(answer, allow_nan=False)  # strict JSON
    finite = predictor.format_numbers(np.array([3.5, 0.0], dtype=np.float32))["predictions"]
    assert finite == [3.5, 0.0] and all(type(value) is float for value in finite)


@pytest.mark.worker
@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
def test_a_node_batch_scores_a_regression_into_a_numeric_column(api, owner, workspace, agent, broker, tmp_path):
    version = register_regression(workspace, owner)
    source = tmp_path / "houses to price.csv"
    rm.messy_frame(80, seed=7).drop(columns=[rm.TARGET]).to_csv(source, index=False)
    data = data_version_from_file(actor=owner, workspace=workspace, path=source, name="houses to price")
    cluster = target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu").target
    response = api(owner).post(
        f"/api/v1/workspaces/{workspace.pk}/jobs/",
        {
            "kind": "batch_score",
            "target": cluster.pk,
            "spec": {"model_version_id": version.pk, "data_version_id": data.pk},
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    job_id = response.json()["id"]
    done = wait_for(
        lambda: Job.objects.filter(pk=job_id, status__in=JobStatus.finished()).first(),
        timeout=120,
        message="the batch scoring job",
    )
    assert done.status == JobStatus.COMPLETED, done.error
    scored = DataVersion.objects.get(pk=done.result["output_data_version_id"])
    frame = pd.read_parquet(data_version_path(scored))
    assert frame["prediction"].dtype == np.float64 and frame["prediction"].between(10_000, 2_000_000).all()
    assert not any(c.startswith("probability_") for c in frame.columns)
    types = {c["name"]: c["semantic_type"] for c in scored.schema["columns"]}
    assert types["prediction"] == "numeric"


@pytest.mark.django_db
def test_an_uploaded_skops_regressor_registers_as_a_regression(api, owner, contributor, workspace, tmp_path):
    frame = rm.messy_frame(120, seed=11)
    csv = tmp_path / "house prices.csv"
    frame.to_csv(csv, index=False)
    data = data_version_from_file(actor=owner, workspace=workspace, path=csv, name="house prices")
    path = tmp_path / "ridge.skops"
    save_model(rm.fitted("ridge", pd.read_csv(csv, parse_dates=["listed on"])), path)
    upload = io.BytesIO(path.read_bytes())
    upload.name = "ridge.skops"
    response = api(contributor).post(
        f"/api/v1/workspaces/{workspace.pk}/models/upload/",
        {"file": upload, "name": "uploaded-prices", "data_version": data.pk, "target_column": rm.TARGET},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    version = ModelVersion.objects.get(pk=response.json()["id"])
    assert (version.task, version.classes, version.target_column) == ("regression", [], rm.TARGET)
    assert version.signature["task"] == "regression" and rm.TARGET not in {
        c["name"] for c in version.signature["columns"]
    }
    profile = json.loads((model_version_dir(version) / "reference_profile.json").read_text())
    assert profile["prediction"]["kind"] == "numeric"


@pytest.mark.django_db
def test_an_uploaded_onnx_regressor_registers_and_scores_numbers(api, owner, contributor, workspace, inference, client):
    from skl2onnx import to_onnx
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline

    frame = rm.messy_frame(120, seed=12)
    X = frame[["floor area (m²)", "n rooms"]].to_numpy(dtype=np.float32)
    model = make_pipeline(SimpleImputer(), Ridge()).fit(X, frame[rm.TARGET])
    upload = io.BytesIO(to_onnx(model, X[:1]).SerializeToString())
    upload.name = "prices.onnx"
    signature = [{"name": "floor area (m²)", "type": "numeric"}, {"name": "n rooms", "type": "integer"}]
    response = api(contributor).post(
        f"/api/v1/workspaces/{workspace.pk}/models/upload/",
        {"file": upload, "name": "onnx-prices", "signature": json.dumps(signature), "target_column": rm.TARGET},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    version = ModelVersion.objects.get(pk=response.json()["id"])
    assert (version.task, version.classes, version.onnx_only) == ("regression", [], True)

    created = endpoint_services.endpoint_create(actor=owner, workspace=workspace, name="onnx-prices")
    endpoint_services.deployment_create(
        actor=owner, endpoint=created.endpoint, name="blue", model_version=version, target=inference
    )
    cache.clear()
    answer = post(
        client,
        "onnx-prices",
        [{"floor area (m²)": 80.5, "n rooms": 3}, {"floor area (m²)": None, "n rooms": 2}],
        created.primary,
    )
    assert answer.status_code == 200, answer.content
    predictions = answer.json()["predictions"]
    expected = model.predict(np.array([[80.5, 3], [np.nan, 2]], dtype=np.float32))
    np.testing.assert_allclose(predictions, expected, rtol=1e-5)
    assert all(type(v) is float for v in predictions)
