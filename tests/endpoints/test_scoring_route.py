"""The scoring route's short way through the middleware (endpoints/scoring_route.py): a scoring
request gets the security headers and none of the pages' middleware, other paths under /score/
go down the whole chain, and object storage that is down is a JSON 503 to retry, not an HTML page."""

import json

import pytest
from django.core.cache import cache

from endpoints import services, serving
from endpoints.scoring.predictor import invalidate
from studio import objectstore
from tests import s3server
from tests.endpoints.conftest import register
from tests.studio import test_objectstore
from tests.studio.test_objectstore_code import store_down
from training.registry_services import model_version_dir

pytestmark = pytest.mark.django_db

s3_server = s3server.s3_server
s3_bucket = s3server.s3_bucket
object_storage = test_objectstore.object_storage

ROW = {"tenure": 3, "charges": 80.5, "plan": "basic", "region": "north"}


def deploy(owner, workspace, inference, name="churn-api"):
    version = register(workspace, owner)
    created = services.endpoint_create(actor=owner, workspace=workspace, name=name)
    services.deployment_create(
        actor=owner, endpoint=created.endpoint, name="blue", model_version=version, target=inference
    )
    cache.clear()
    return created, version


def score(client, name, key, payload=None):
    return client.post(
        f"/score/{name}/",
        json.dumps(payload or [ROW]),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )


def test_scoring_skips_the_pages_middleware_and_keeps_the_security_headers(client, owner, workspace, inference):
    created, _ = deploy(owner, workspace, inference)
    answered = score(client, "churn-api", created.primary)
    assert answered.status_code == 200, answered.content
    assert answered.json()["deployment"] == "blue"
    assert answered["X-Content-Type-Options"] == "nosniff"  # SecurityMiddleware, before the short way
    page_only = ("Content-Security-Policy", "X-Frame-Options", "Vary")  # CSP, clickjacking, sessions
    assert [header for header in page_only if answered.has_header(header)] == []
    assert not answered.cookies

    refused = score(client, "churn-api", "not-a-key")
    assert refused.status_code == 401 and refused.json()["error"]["code"]

    # Paths under /score/ that are not the scoring route go down the whole chain to its 404.
    for path in ("/score/", "/score/churn-api/extra/"):
        missing = client.post(path, "{}", content_type="application/json")
        assert missing.status_code == 404 and missing.has_header("X-Frame-Options")
    # Pages still get the whole chain.
    assert client.get("/login/").has_header("Content-Security-Policy")


def test_object_storage_down_while_scoring_is_a_json_503_to_retry(
    request, client, owner, workspace, inference, settings, tmp_path
):
    created, version = deploy(owner, workspace, inference, name="stored-churn")
    made_here = settings.ARTIFACT_ROOT
    request.getfixturevalue("object_storage")  # then published from the host that made it
    settings.ARTIFACT_ROOT = made_here
    objectstore.publish_folder(model_version_dir(version))
    assert score(client, "stored-churn", created.primary).status_code == 200

    settings.ARTIFACT_ROOT = tmp_path / "host-b" / "artifacts"  # a web process that never had the model
    store_down(settings)
    invalidate()
    serving.configs.clear()
    refused = score(client, "stored-churn", created.primary)
    assert refused.status_code == 503, refused.content
    assert refused["Content-Type"] == "application/json" and refused["Retry-After"] == "10"
    assert refused.json()["error"]["code"] == "storage_unavailable"
    assert "127.0.0.1:9" not in refused.content.decode()  # the store's address is not the key holder's business
