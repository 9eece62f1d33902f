"""Deploying, splitting traffic and replacing a model drop no request (a real HTTP server and
client threads firing throughout); a new deployment answers within 5 s of being created."""

import json
import threading
import time
import urllib.error
import urllib.request

import pytest

from endpoints import services
from tests.endpoints.conftest import register

pytestmark = pytest.mark.django_db(transaction=True)

ROW = {"tenure": 3, "charges": 80.5, "plan": "basic", "region": "north"}


def call(url, key, deployment=None):
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    if deployment:
        headers["X-Studio-Deployment"] = deployment
    request = urllib.request.Request(url, data=json.dumps([ROW]).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_no_request_is_dropped_while_deploying_splitting_and_replacing(live_server, owner, workspace, inference):
    v1 = register(workspace, owner)
    created = services.endpoint_create(actor=owner, workspace=workspace, name="live-svc")
    endpoint = created.endpoint
    services.deployment_create(actor=owner, endpoint=endpoint, name="blue", model_version=v1, target=inference)
    url = f"{live_server.url}/score/live-svc/"
    assert call(url, created.primary)[0] == 200

    results: list[tuple[int, str]] = []
    stop = threading.Event()

    def fire():
        while not stop.is_set():
            status, body = call(url, created.primary)
            results.append((status, body.get("deployment", body.get("error", {}).get("code", ""))))

    threads = [threading.Thread(target=fire) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        v2 = register(workspace, owner, max_iter=20)
        clicked = time.monotonic()
        green = services.deployment_create(
            actor=owner, endpoint=endpoint, name="green", model_version=v2, target=inference
        )
        while call(url, created.primary, deployment="green")[0] != 200:
            time.sleep(0.05)
        first_answer = time.monotonic() - clicked
        services.traffic_set(actor=owner, endpoint=endpoint, traffic={"blue": 90, "green": 10})
        time.sleep(1.5)
        services.deployment_update(actor=owner, deployment=green, model_version=v1)  # replace the model in place
        time.sleep(1.0)
        services.traffic_set(actor=owner, endpoint=endpoint, traffic={"green": 100})
        time.sleep(1.5)
        services.deployment_delete(actor=owner, deployment=endpoint.deployments.get(name="blue"))
        time.sleep(1.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    failures = [r for r in results if r[0] != 200]
    assert not failures, failures[:5]
    served = {name for _, name in results}
    assert {"blue", "green"} <= served and len(results) > 50
    assert results[-1][1] == "green"
    assert first_answer < 5, first_answer
