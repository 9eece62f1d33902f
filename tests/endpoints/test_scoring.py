"""The scoring route: keys, payloads, routing, throttling, monitoring — through the test client."""

import json

import pytest
from django.core.cache import cache

from endpoints import services, serving
from endpoints.models import MonitoringBucket
from tests.endpoints.conftest import register

pytestmark = pytest.mark.django_db

ROW = {"tenure": 3, "charges": 80.5, "plan": "basic", "region": "north"}


@pytest.fixture
def endpoint(owner, workspace, model_version, inference):
    created = services.endpoint_create(actor=owner, workspace=workspace, name="churn-api")
    services.deployment_create(
        actor=owner, endpoint=created.endpoint, name="blue", model_version=model_version, target=inference
    )
    cache.clear()
    return created


def post(client, name, payload, key=None, **headers):
    if key:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    body = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
    return client.post(f"/score/{name}/", body, content_type="application/json", **headers)


def test_scores_records_with_probabilities(client, endpoint):
    response = post(client, "churn-api", [ROW, {**ROW, "tenure": 60, "plan": "team"}], endpoint.primary)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["deployment"] == "blue" and body["model"] == "churn:1"
    assert len(body["predictions"]) == 2 and set(body["probabilities"][0]) == {"no", "yes"}
    assert abs(sum(body["probabilities"][0].values()) - 1) < 1e-6


@pytest.mark.parametrize(
    "payload",
    [
        ROW,
        {"inputs": [ROW]},
        {"columns": list(ROW), "data": [list(ROW.values())]},
        {k: [v] for k, v in ROW.items()},
        {"dataframe_records": [ROW]},
    ],
)
def test_accepts_record_and_columnar_shapes(client, endpoint, payload):
    response = post(client, "churn-api", payload, endpoint.secondary)
    assert response.status_code == 200, response.content
    assert len(response.json()["predictions"]) == 1


@pytest.mark.parametrize(
    ("key", "query", "code"),
    [
        (None, "", "not_authenticated"),
        ("sk_wrong_key", "", "invalid_key"),
        ("garbage", "", "invalid_key"),
        ("PRIMARY", "?key=PRIMARY", "key_in_url"),
    ],
)
def test_keys_are_checked(client, endpoint, key, query, code):
    key = endpoint.primary if key == "PRIMARY" else key
    url_key = query.replace("PRIMARY", endpoint.primary)
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
    response = client.post(f"/score/churn-api/{url_key}", json.dumps([ROW]), content_type="application/json", **headers)
    assert response.status_code == 401 and response.json()["error"]["code"] == code


def test_another_workspaces_key_and_unknown_endpoints_get_the_same_401(
    client, endpoint, outsider, other_workspace, inference
):
    theirs = services.endpoint_create(actor=outsider, workspace=other_workspace, name="theirs")
    response = post(client, "churn-api", [ROW], theirs.primary)
    assert response.status_code == 401
    assert post(client, "no-such-endpoint", [ROW], endpoint.primary).json() == response.json()


def test_a_regenerated_key_stops_working(client, endpoint, owner):
    services.key_regenerate(actor=owner, endpoint=endpoint.endpoint, which="primary")
    serving.configs.clear()  # in production other processes notice within a second
    assert post(client, "churn-api", [ROW], endpoint.primary).status_code == 401
    assert post(client, "churn-api", [ROW], endpoint.secondary).status_code == 200


@pytest.mark.parametrize(
    ("payload", "status", "field", "row"),
    [
        ([{"tenure": 3, "charges": 80.5, "plan": "basic"}], 400, "region", None),
        ([ROW, {"tenure": 3, "charges": 80.5, "plan": "basic"}], 400, "region", 2),
        ([ROW, {**ROW, "charges": "lots"}], 400, "charges", 2),
        ([ROW, {**ROW, "tenure": {"nested": 1}}], 400, "tenure", 2),
        ([], 400, None, None),
        ("{not json", 400, None, None),
        ([ROW] * 10_001, 413, None, None),
    ],
)
def test_bad_payloads_name_the_column_and_row(client, endpoint, payload, status, field, row):
    response = post(client, "churn-api", payload, endpoint.primary)
    assert response.status_code == status, response.content
    error = response.json()["error"]
    if field:
        assert field in error["fields"] and field in error["message"]
    if row:
        assert error["row"] == row


def test_safe_casts_are_accepted_and_unknown_categories_handled(client, endpoint):
    response = post(client, "churn-api", [{**ROW, "tenure": "12", "plan": "enterprise"}], endpoint.primary)
    assert response.status_code == 200, response.content


def test_a_body_over_the_limit_is_413(client, endpoint, settings):
    settings.STUDIO_SCORING_MAX_BODY_BYTES = 1000
    response = post(client, "churn-api", [ROW] * 50, endpoint.primary)
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"


def test_throttling_per_key_with_retry_after(client, endpoint, owner):
    services.endpoint_update(actor=owner, endpoint=endpoint.endpoint, requests_per_minute=3)
    serving.configs.clear()
    codes = [post(client, "churn-api", [ROW], endpoint.primary).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    limited = post(client, "churn-api", [ROW], endpoint.primary)
    assert 1 <= int(limited["Retry-After"]) <= 60
    assert post(client, "churn-api", [ROW], endpoint.secondary).status_code == 200  # the other key has its own budget


def test_traffic_split_pinning_and_mirror(client, endpoint, owner, workspace, inference):
    v2 = register(workspace, owner, max_iter=20)
    services.deployment_create(
        actor=owner, endpoint=endpoint.endpoint, name="green", model_version=v2, target=inference
    )
    services.traffic_set(actor=owner, endpoint=endpoint.endpoint, traffic={"blue": 90, "green": 10})
    serving.configs.clear()
    served = [post(client, "churn-api", [ROW], endpoint.primary).json()["deployment"] for _ in range(200)]
    assert 140 < served.count("blue") < 200 and served.count("green") > 5
    pinned = post(client, "churn-api", [ROW], endpoint.primary, HTTP_X_STUDIO_DEPLOYMENT="green")
    assert pinned.json()["deployment"] == "green"
    services.traffic_set(
        actor=owner, endpoint=endpoint.endpoint, traffic={"blue": 100}, mirror_deployment="green", mirror_percent=100
    )
    serving.configs.clear()
    body = post(client, "churn-api", [ROW], endpoint.primary).json()
    assert body["deployment"] == "blue"
    import time

    time.sleep(0.5)  # the mirror scores in a thread
    serving.monitor.flush()
    assert MonitoringBucket.objects.filter(mirrored=True, deployment_name="green", requests__gte=1).exists()


def test_monitoring_is_buffered_and_flushed_in_batches(client, endpoint, django_assert_max_num_queries):
    post(client, "churn-api", [ROW], endpoint.primary)  # warm the config and the model
    with django_assert_max_num_queries(0):
        for _ in range(20):
            assert post(client, "churn-api", [ROW, ROW], endpoint.primary).status_code == 200
    post(client, "churn-api", [{"tenure": "x"}], endpoint.primary)
    assert not MonitoringBucket.objects.exists()
    assert serving.monitor.flush() == 1
    bucket = MonitoringBucket.objects.get()
    assert bucket.requests == 22 and bucket.rows == 41 and bucket.errors_4xx == 1
    assert sum(bucket.predicted.values()) == 41 and sum(bucket.latency_histogram) == 22
    assert bucket.quality["rows"] == 41


def test_a_tampered_model_file_is_refused(owner, workspace, inference):
    from django.core.exceptions import ValidationError

    from training.registry_services import model_version_dir

    version = register(workspace, owner, name="tampered", with_onnx=False)
    path = model_version_dir(version) / "model.skops"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    endpoint = services.endpoint_create(actor=owner, workspace=workspace, name="tampered-svc").endpoint
    with pytest.raises(ValidationError, match="could not be loaded"):
        services.deployment_create(actor=owner, endpoint=endpoint, name="blue", model_version=version, target=inference)
    assert not endpoint.deployments.exists()


def test_an_endpoint_made_again_under_its_name_is_not_served_from_the_old_ones_cache(
    client, owner, workspace, model_version, inference, endpoint, monkeypatch
):
    assert post(client, "churn-api", ROW, endpoint.primary).status_code == 200  # cached in this process
    services.endpoint_delete(actor=owner, endpoint=endpoint.endpoint)
    again = services.endpoint_create(actor=owner, workspace=workspace, name="churn-api")
    services.deployment_create(
        actor=owner, endpoint=again.endpoint, name="blue", model_version=model_version, target=inference
    )
    monkeypatch.setattr(serving.configs, "ttl", 0)  # the once-a-second re-check, now
    cache.clear()
    assert post(client, "churn-api", ROW, endpoint.primary).status_code == 401  # the old key is gone
    assert post(client, "churn-api", ROW, again.primary).status_code == 200
