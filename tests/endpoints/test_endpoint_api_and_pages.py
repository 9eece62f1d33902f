import ast
import copy
import html
import json
import re
import shlex

import pytest

from endpoints import services as endpoint_services
from endpoints import serving
from endpoints.models import Deployment, Endpoint, MonitoringBucket
from training.registry_services import model_version_dir

pytestmark = pytest.mark.django_db

ROW = {"tenure": 3, "charges": 80.5, "plan": "basic", "region": "north"}


def create(client, workspace, name="churn-api"):
    response = client.post(f"/api/v1/workspaces/{workspace.pk}/endpoints/", {"name": name}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_create_deploy_split_and_monitor_through_the_api(api, contributor, workspace, model_version, inference, client):
    rest = api(contributor)
    body = create(rest, workspace)
    assert body["primary_key"].startswith("sk_") and body["scoring_url"].endswith("/score/churn-api/")
    base = f"/api/v1/workspaces/{workspace.pk}/endpoints/{body['id']}/"
    deployed = rest.post(
        base + "deployments/",
        {"name": "blue", "model_version": model_version.pk, "target": inference.pk},
        format="json",
    )
    assert deployed.status_code == 201, deployed.content
    assert deployed.json()["backend"] == "onnx" and deployed.json()["status"] == "ready"
    assert rest.get(base).json()["traffic"] == {"blue": 100}
    assert "primary_key" not in rest.get(base).json()
    scored = client.post(
        "/score/churn-api/",
        json.dumps([ROW]),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {body['primary_key']}",
    )
    assert scored.status_code == 200
    serving.monitor.flush()
    monitoring = rest.get(base + "monitoring/?range=hour").json()
    assert monitoring["deployments"]["blue"]["requests"] == 1
    assert monitoring["deployments"]["blue"]["p50_ms"] is not None
    openapi = rest.get(base + "openapi/").json()
    assert set(openapi["components"]["schemas"]["Record"]["properties"]) == set(ROW)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "blue", "model_version": 999999, "target": 0}, None),
        ({"name": "Bad Name", "model_version": 1, "target": 1}, "name"),
        ({"name": "blue", "model_version": "x", "target": 1}, "model_version"),
    ],
)
def test_bad_deployments_are_refused(api, owner, workspace, model_version, inference, payload, field):
    rest = api(owner)
    body = create(rest, workspace)
    if payload.get("target") == 1:
        payload["target"] = inference.pk
    response = rest.post(
        f"/api/v1/workspaces/{workspace.pk}/endpoints/{body['id']}/deployments/", payload, format="json"
    )
    assert response.status_code in (400, 404)
    if field:
        assert field in response.json()["error"]["fields"]
    assert not Deployment.objects.exists()


def test_traffic_must_add_up_and_a_mirror_takes_no_live_traffic(api, owner, workspace, model_version, inference):
    rest = api(owner)
    body = create(rest, workspace)
    base = f"/api/v1/workspaces/{workspace.pk}/endpoints/{body['id']}/"
    for name in ("blue", "green"):
        rest.post(
            base + "deployments/",
            {"name": name, "model_version": model_version.pk, "target": inference.pk},
            format="json",
        )
    bad = rest.put(base + "traffic/", {"traffic": {"blue": 60, "green": 30}}, format="json")
    assert bad.status_code == 400 and "100" in bad.json()["error"]["message"]
    mirror = rest.put(
        base + "traffic/",
        {"traffic": {"blue": 90, "green": 10}, "mirror_deployment": "green", "mirror_percent": 50},
        format="json",
    )
    assert mirror.status_code == 400 and "mirror_deployment" in mirror.json()["error"]["fields"]
    ok = rest.put(base + "traffic/", {"traffic": {"blue": 90, "green": 10}}, format="json")
    assert ok.json()["traffic"] == {"blue": 90, "green": 10}
    green = Deployment.objects.get(name="green")
    refused = rest.delete(base + f"deployments/{green.pk}/")
    assert refused.status_code == 409 and "Set its share to 0" in refused.json()["error"]["message"]


def test_a_reader_sees_but_cannot_change(api, reader, owner, workspace, model_version, inference):
    body = create(api(owner), workspace)
    rest = api(reader)
    assert rest.get(f"/api/v1/workspaces/{workspace.pk}/endpoints/").status_code == 200
    for method, path, data in [
        ("post", "deployments/", {"name": "x", "model_version": model_version.pk, "target": inference.pk}),
        ("put", "traffic/", {"traffic": {}}),
        ("post", "keys/", {"which": "primary"}),
    ]:
        response = getattr(rest, method)(
            f"/api/v1/workspaces/{workspace.pk}/endpoints/{body['id']}/{path}", data, format="json"
        )
        assert response.status_code == 403


def test_deleting_a_deployed_model_version_is_refused(owner, workspace, model_version, inference):
    from django.core.exceptions import ValidationError

    from endpoints import services
    from training.registry_services import model_version_delete

    endpoint = services.endpoint_create(actor=owner, workspace=workspace, name="svc").endpoint
    services.deployment_create(
        actor=owner, endpoint=endpoint, name="blue", model_version=model_version, target=inference
    )
    with pytest.raises(ValidationError, match="svc/blue"):
        model_version_delete(actor=owner, version=model_version)


def test_pages_render_with_keys_shown_once(client, owner, workspace, model_version, inference):
    client.force_login(owner)
    created = client.post(f"/w/{workspace.pk}/endpoints/", {"name": "web-svc", "description": "from the page"})
    endpoint = Endpoint.objects.get(name="web-svc")
    assert created.status_code == 302
    page = client.get(f"/w/{workspace.pk}/endpoints/{endpoint.pk}/").content.decode()
    assert "shown once" in page and f"sk_{endpoint.key1_prefix}_" in page
    assert (
        f"sk_{endpoint.key1_prefix}_" not in client.get(f"/w/{workspace.pk}/endpoints/{endpoint.pk}/").content.decode()
    )
    client.post(
        f"/w/{workspace.pk}/endpoints/{endpoint.pk}/deployments/",
        {"name": "blue", "model_version": model_version.pk, "target": inference.pk, "replicas": 1},
    )
    assert Deployment.objects.filter(endpoint=endpoint).exists()
    for tab in ("details", "test", "consume", "monitoring"):
        html = client.get(f"/w/{workspace.pk}/endpoints/{endpoint.pk}/?tab={tab}").content.decode()
        assert "web-svc" in html, tab
    consume = client.get(f"/w/{workspace.pk}/endpoints/{endpoint.pk}/?tab=consume").content.decode()
    assert "curl -s -X POST" in consume and "/score/web-svc/" in consume and "tenure" in consume
    test = client.post(f"/w/{workspace.pk}/endpoints/{endpoint.pk}/test/", {"payload": json.dumps([ROW])})
    assert test.status_code == 200 and len(test.json()["predictions"]) == 1
    assert not MonitoringBucket.objects.exists() and not serving.monitor._data  # tests are not recorded
    assert client.get(f"/w/{workspace.pk}/endpoints/alerts/").status_code == 200


def test_the_consume_snippets_run_as_written_with_quotes_and_booleans_in_the_sample(
    client, owner, workspace, model_version, inference
):
    """The curl body is one shell word even when a label has an apostrophe, and the Python snippet is
    Python (False, None), not JSON (false, null)."""
    folder = model_version_dir(model_version)
    reference = json.loads((folder / "reference_profile.json").read_text())
    reference["columns"]["plan"]["categories"] = ["team's plan", "basic"]
    (folder / "reference_profile.json").write_text(json.dumps(reference))
    signature = copy.deepcopy(model_version.signature)  # the built model's signature is shared between tests
    signature["columns"].append({"name": "active?", "type": "boolean", "dtype": "bool"})
    model_version.signature = signature
    model_version.save(update_fields=["signature"])
    endpoint = endpoint_services.endpoint_create(actor=owner, workspace=workspace, name="quotes").endpoint
    endpoint_services.deployment_create(
        actor=owner, endpoint=endpoint, name="blue", model_version=model_version, target=inference
    )
    client.force_login(owner)
    page = client.get(f"/w/{workspace.pk}/endpoints/{endpoint.pk}/?tab=consume").content.decode()

    curl = html.unescape(re.search(r'<pre class="code" id="curl-snippet"[^>]*>(.*?)</pre>', page, re.S).group(1))
    words = shlex.split(curl)
    rows = json.loads(words[words.index("-d") + 1])
    assert rows[0]["plan"] == "team's plan" and rows[0]["active?"] is False, rows
    python = html.unescape(re.search(r'<pre class="code" id="python-snippet">(.*?)</pre>', page, re.S).group(1))
    literal = python.split("rows = ", 1)[1].split("\nrequest = ", 1)[0]
    assert ast.literal_eval(literal) == rows
