"""JSON depth and Unicode are checked before parsing on the scoring route and the Test tab (R10):
a 400 naming the problem, counted as the caller's error in monitoring, never a 500."""

import json

import pytest
from django.core.cache import cache

from endpoints import services, serving
from endpoints.models import MonitoringBucket

pytestmark = pytest.mark.django_db

DEEP = "[" * 950 + "]" * 950
LONE_SURROGATE_ESCAPED = '[{"tenure": 3, "charges": 80.5, "plan": "\\ud800", "region": "north"}]'
LONE_SURROGATE_RAW = b'[{"tenure": 3, "charges": 80.5, "plan": "\xed\xa0\x80", "region": "north"}]'


@pytest.fixture
def endpoint(owner, workspace, model_version, inference):
    created = services.endpoint_create(actor=owner, workspace=workspace, name="churn-api")
    services.deployment_create(
        actor=owner, endpoint=created.endpoint, name="blue", model_version=model_version, target=inference
    )
    cache.clear()
    return created


@pytest.fixture
def score(client, endpoint):
    def post(body):
        return client.post(
            "/score/churn-api/", body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {endpoint.primary}"
        )

    return post


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        (DEEP, "too_deep", "more than 64 levels"),
        ('{"inputs": ' * 70 + "[]" + "}" * 70, "too_deep", "more than 64 levels"),
        (LONE_SURROGATE_ESCAPED, "invalid_unicode", "lone surrogate \\ud800"),
        (LONE_SURROGATE_RAW, "invalid_unicode", "not valid UTF-8"),
    ],
    ids=["950-deep", "70-deep-envelopes", "escaped-lone-surrogate", "raw-surrogate-bytes"],
)
def test_scoring_refuses_deep_json_and_invalid_unicode_with_a_400(score, body, code, words):
    response = score(body)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == code and words in error["message"], error


def test_these_refusals_count_as_4xx_not_5xx_in_monitoring(score):
    for body in (DEEP, LONE_SURROGATE_ESCAPED, LONE_SURROGATE_RAW, "{not json"):
        assert score(body).status_code == 400
    serving.monitor.flush()
    bucket = MonitoringBucket.objects.get()
    assert (bucket.requests, bucket.errors_4xx, bucket.errors_5xx) == (4, 4, 0)


def test_valid_unicode_and_brackets_inside_strings_still_score(score):
    row = {"tenure": 3, "charges": 80.5, "plan": "b\u00e1sic \U0001f600 " + "[" * 100, "region": "north"}
    escaped = json.dumps([row])  # ensure_ascii: the emoji travels as a surrogate pair escape
    assert "\\ud83d\\ude00" in escaped
    assert score(escaped).status_code == 200, score(escaped).content
    assert score(json.dumps([row], ensure_ascii=False).encode()).status_code == 200


def test_the_depth_limit_is_configurable(score, settings):
    settings.STUDIO_JSON_MAX_DEPTH = 4
    nested = '{"inputs": {"dataframe_split": {"columns": ["tenure"], "data": [[3]]}}}'  # 5 levels
    response = score(nested)
    assert response.status_code == 400 and response.json()["error"]["code"] == "too_deep"
    assert "more than 4 levels" in response.json()["error"]["message"]
    settings.STUDIO_JSON_MAX_DEPTH = 5
    assert score(nested).json()["error"]["code"] != "too_deep"


@pytest.mark.parametrize(
    ("payload", "code"),
    [(DEEP, "too_deep"), (LONE_SURROGATE_ESCAPED, "invalid_unicode")],
    ids=["950-deep", "escaped-lone-surrogate"],
)
def test_the_test_tab_refuses_them_too(client, owner, workspace, endpoint, payload, code):
    client.force_login(owner)
    response = client.post(f"/w/{workspace.pk}/endpoints/{endpoint.endpoint.pk}/test/", {"payload": payload})
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == code
