"""The scoring route and the Test tab answer through one error body and one scoring sequence."""

import json

import pytest
from django.core.cache import cache

from endpoints import services, serving
from endpoints.models import MonitoringBucket

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


def from_the_route(client, endpoint, body: str, **headers):
    return client.post(
        "/score/churn-api/",
        body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {endpoint.primary}",
        **headers,
    )


def from_the_test_tab(client, user, endpoint, body: str):
    client.force_login(user)
    return client.post(f"/w/{endpoint.endpoint.workspace_id}/endpoints/{endpoint.endpoint.pk}/test/", {"payload": body})


@pytest.mark.parametrize(
    "payload",
    [
        [ROW, {**ROW, "charges": "lots"}],  # a bad cell: the column and the row
        [{"tenure": 3, "charges": 80.5, "plan": "basic"}],  # a missing column, no single row
        [],
    ],
)
def test_a_bad_payload_gets_the_same_error_body_from_the_route_and_the_test_tab(client, reader, endpoint, payload):
    body = json.dumps(payload)
    route = from_the_route(client, endpoint, body)
    tab = from_the_test_tab(client, reader, endpoint, body)
    assert route.status_code == tab.status_code == 400
    assert tab.json() == route.json()
    assert set(route.json()["error"]) >= {"code", "message", "fields"}


def test_the_test_tab_scores_like_the_route_and_records_nothing(client, reader, endpoint):
    body = json.dumps([ROW, {**ROW, "tenure": 60, "plan": "team"}])
    serving.monitor.flush()
    tab = from_the_test_tab(client, reader, endpoint, body)
    assert tab.status_code == 200 and serving.monitor.flush() == 0  # testing is not traffic
    route = from_the_route(client, endpoint, body)
    assert route.status_code == 200 and serving.monitor.flush() == 1
    answer = tab.json()
    assert answer.pop("milliseconds") >= 0
    assert answer == route.json()
    assert MonitoringBucket.objects.get().requests == 1


def test_a_deployment_the_endpoint_lacks_is_named_in_the_error(client, reader, endpoint):
    client.force_login(reader)
    url = f"/w/{endpoint.endpoint.workspace_id}/endpoints/{endpoint.endpoint.pk}/test/"
    tab = client.post(url, {"payload": json.dumps([ROW]), "deployment": "green"})
    assert tab.status_code == 400 and tab.json()["error"]["code"] == "unknown_deployment"
    assert "deployment" in tab.json()["error"]["fields"]
    route = from_the_route(client, endpoint, json.dumps([ROW]), HTTP_X_STUDIO_DEPLOYMENT="green")
    assert route.status_code == 400 and "X-Studio-Deployment" in route.json()["error"]["fields"]
