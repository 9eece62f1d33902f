"""A model registered from an ONNX file deploys, scores through /score/ and is monitored like any other."""

import io

import pytest
from django.core.cache import cache

from data.services import data_version_from_file
from endpoints import services, serving
from endpoints.models import MonitoringBucket
from endpoints.scoring.predictor import invalidate
from tests.training import model_files as mf
from training.models import ModelVersion

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_serving_caches():
    serving.configs.clear()
    invalidate()
    serving.monitor._data.clear()
    yield
    serving.configs.clear()
    serving.monitor._data.clear()


def test_an_onnx_model_from_skl2onnx_deploys_and_scores_messy_rows(api, client, contributor, workspace, tmp_path):
    from compute.models import TargetKind
    from compute.services import target_create

    frame = mf.messy_frame()
    pipeline = mf.fitted_pipeline(frame)
    path = tmp_path / "messy customers.csv"
    frame.to_csv(path, index=False)
    data_version = data_version_from_file(actor=contributor, workspace=workspace, path=path, name="customers")
    onnx_file = io.BytesIO(mf.onnx_bytes(pipeline, frame))
    onnx_file.name = "churn pipeline.onnx"
    response = api(contributor).post(
        f"/api/v1/workspaces/{workspace.pk}/models/upload/",
        {"file": onnx_file, "name": "churn-onnx", "data_version": data_version.pk, "target_column": mf.TARGET},
        format="multipart",
    )
    assert response.status_code == 201, response.json()
    version = ModelVersion.objects.get(pk=response.json()["id"])

    target = target_create(actor=contributor, workspace=workspace, kind=TargetKind.INFERENCE, name="serving").target
    created = services.endpoint_create(actor=contributor, workspace=workspace, name="churn-onnx-api")
    deployment = services.deployment_create(
        actor=contributor, endpoint=created.endpoint, name="blue", model_version=version, target=target
    )
    deployment.refresh_from_db()
    assert deployment.status == "ready", deployment.status_reason
    assert "onnx" in deployment.status_reason
    cache.clear()

    rows = frame.drop(columns=[mf.TARGET]).head(25)
    records = [
        {k: (None if v != v else v) for k, v in row.items()}  # NaN → null, as JSON has it
        for row in rows.astype(object).to_dict("records")
    ]
    records[0]["plan type"] = "never seen ✨"
    records[1]["mean radius (mm)"] = None
    del records[2]["customer id"]  # a column the model does not read may be left out
    response = client.post(
        "/score/churn-onnx-api/",
        {"inputs": records},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {created.primary}",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["model"] == "churn-onnx:1" and len(body["predictions"]) == 25
    assert set(body["predictions"]) <= {"no", "yes"}
    X = rows[mf.FEATURES].copy().iloc[3:]
    X["plan type"] = X["plan type"].fillna("nan").astype(str)
    assert body["predictions"][3:] == list(pipeline.predict(X))
    expected = pipeline.predict_proba(X)[:, 1]
    got = [p["yes"] for p in body["probabilities"][3:]]
    assert max(abs(a - b) for a, b in zip(got, expected, strict=True)) < 1e-4

    bad = client.post(
        "/score/churn-onnx-api/",
        [{"mean radius (mm)": "lots", "plan type": "pro", "n visits": 1}],
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {created.primary}",
    )
    assert bad.status_code == 400 and bad.json()["error"]["fields"]["mean radius (mm)"]

    serving.monitor.flush()
    buckets = MonitoringBucket.objects.filter(endpoint=created.endpoint)
    assert sum(b.requests for b in buckets) == 2 and sum(b.rows for b in buckets) == 25
    assert sum(b.errors_4xx for b in buckets) == 1
    assert any(b.quality for b in buckets)  # drift counted against the data version's profile
