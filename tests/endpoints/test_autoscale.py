"""Replicas that follow the load: a deployment autoscales between min and max replicas on the
requests in flight its replicas report, out at once, in after an idle time, down to zero; the next
request wakes it and waits for a cold start. Reachable from the API, the page, the admin and the CLI."""

import json
import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.core.cache import cache
from django.db import connections
from django.test import Client
from django.utils import timezone

from compute.models import Node, NodeStatus, ServingSession
from compute.services import replica_heartbeat, replica_mark_ready
from endpoints import services
from endpoints.models import Deployment
from studio.services import token_create
from tests.conftest import wait_for
from tests.endpoints.conftest import ready_replicas, start
from tests.endpoints.test_replicas import ROW, score

CLIENT = Path(__file__).resolve().parents[2] / "client"


@pytest.fixture
def autoscaled(owner, workspace, model_version, inference):
    created = services.endpoint_create(actor=owner, workspace=workspace, name="churn-api")
    deployment = services.deployment_create(
        actor=owner,
        endpoint=created.endpoint,
        name="blue",
        model_version=model_version,
        target=inference,
        autoscale={"min_replicas": 0, "max_replicas": 3, "target_in_flight": 2, "scale_in_seconds": 60},
    )
    cache.clear()
    return SimpleNamespace(endpoint=created.endpoint, primary=created.primary, deployment=deployment)


def serving_nodes(deployment):
    return Node.objects.filter(deployment_id=deployment.pk, status__in=NodeStatus.live())


def report(node, in_flight):
    """What a replica does: say it is ready, then heartbeat with its load."""
    if node.status == NodeStatus.REQUESTED:
        Node.objects.filter(pk=node.pk).update(status=NodeStatus.STARTING)
        assert replica_mark_ready(node_id=node.pk, address=f"127.0.0.1:{40000 + node.pk}", hostname="here", pid=1)
    replica_heartbeat(node_id=node.pk, in_flight=in_flight)


def metered(deployment):
    return ServingSession.objects.get(deployment_id=deployment.pk, ended_at__isnull=True).replicas


def test_replicas_follow_the_load_out_at_once_in_after_the_idle_time_down_to_zero(autoscaled, client):
    deployment = autoscaled.deployment
    assert deployment.replicas == 1  # min 0 starts with one replica, so the first requests are served
    services.replicas_reconcile()
    (node,) = serving_nodes(deployment)
    report(node, in_flight=5)  # 5 requests in flight, 2 per replica wanted: 3 replicas
    services.replicas_reconcile()
    deployment.refresh_from_db()
    assert deployment.replicas == 3 and serving_nodes(deployment).count() == 3 and metered(deployment) == 3
    for node in serving_nodes(deployment):
        report(node, in_flight=0)
    services.replicas_reconcile()  # idle, but not for 60 s yet
    deployment.refresh_from_db()
    assert deployment.replicas == 3 and serving_nodes(deployment).count() == 3

    Deployment.objects.filter(pk=deployment.pk).update(last_busy_at=timezone.now() - timedelta(seconds=61))
    services.replicas_reconcile()
    deployment.refresh_from_db()
    assert deployment.replicas == 0 and not serving_nodes(deployment).exists() and metered(deployment) == 0

    # A request to a deployment at zero wakes it; this process scores it meanwhile (the embedded default).
    response = score(client, autoscaled.primary)
    assert response.status_code == 200 and response.json()["deployment"] == "blue"
    deployment.refresh_from_db()
    assert deployment.replicas == 1 and metered(deployment) == 1
    services.replicas_reconcile()
    assert serving_nodes(deployment).count() == 1
    assert score(client, autoscaled.primary).status_code == 200
    assert Deployment.objects.get(pk=deployment.pk).replicas == 1  # woken once, not once per request


def test_a_load_within_the_target_keeps_the_replicas_and_never_goes_below_the_minimum(autoscaled, owner):
    deployment = services.deployment_update(
        actor=owner, deployment=autoscaled.deployment, autoscale={"min_replicas": 2, "scale_in_seconds": 10}
    )
    assert deployment.replicas == 2 and (deployment.max_replicas, deployment.target_in_flight) == (3, 2)
    services.replicas_reconcile()
    for node in serving_nodes(deployment):
        report(node, in_flight=2)  # 4 in flight over 2 replicas: on target
    Deployment.objects.filter(pk=deployment.pk).update(last_busy_at=timezone.now() - timedelta(seconds=30))
    services.replicas_reconcile()
    deployment.refresh_from_db()
    assert deployment.replicas == 2 and timezone.now() - deployment.last_busy_at < timedelta(seconds=5)
    for node in serving_nodes(deployment):
        report(node, in_flight=0)
    Deployment.objects.filter(pk=deployment.pk).update(last_busy_at=timezone.now() - timedelta(seconds=30))
    services.replicas_reconcile()
    assert Deployment.objects.get(pk=deployment.pk).replicas == 2  # the minimum


def test_the_api_sets_checks_and_turns_off_autoscaling(client, owner, workspace, model_version, inference):
    created = services.endpoint_create(actor=owner, workspace=workspace, name="churn-api")
    client.force_login(owner)
    base = f"/api/v1/workspaces/{workspace.pk}/endpoints/{created.endpoint.pk}/deployments/"
    body = {"name": "blue", "model_version": model_version.pk, "target": inference.pk}

    def post(autoscale):
        return client.post(base, {**body, "autoscale": autoscale}, content_type="application/json")

    refused = post({"min_replicas": 3, "max_replicas": 2})
    assert refused.status_code == 400 and "min_replicas must not be more than max_replicas" in refused.content.decode()
    refused = post({"max_replicas": 2, "target_in_flight": 0})
    assert refused.status_code == 400 and "target_in_flight" in refused.content.decode()
    assert not Deployment.objects.exists()  # nothing half-made

    made = post({"min_replicas": 0, "max_replicas": 4})
    assert made.status_code == 201, made.content
    assert made.json()["replicas"] == 1
    assert made.json()["autoscale"] == {
        "min_replicas": 0,
        "max_replicas": 4,
        "target_in_flight": 4,
        "scale_in_seconds": 300,
    }
    detail = f"{base}{made.json()['id']}/"
    refused = client.patch(detail, {"replicas": 2}, content_type="application/json")
    assert refused.status_code == 400 and "autoscales between 0 and 4" in refused.content.decode()
    changed = client.patch(detail, {"autoscale": {"target_in_flight": 8}}, content_type="application/json")
    assert changed.status_code == 200 and changed.json()["autoscale"]["target_in_flight"] == 8
    assert changed.json()["autoscale"]["max_replicas"] == 4  # the rest kept
    off = client.patch(detail, {"autoscale": None}, content_type="application/json")
    assert off.status_code == 200 and off.json()["autoscale"] is None and off.json()["replicas"] == 1
    fixed = client.patch(detail, {"replicas": 2}, content_type="application/json")
    assert fixed.status_code == 200 and fixed.json()["replicas"] == 2


def test_the_page_shows_and_changes_a_deployments_scaling(client, owner, autoscaled, workspace):
    client.force_login(owner)
    page = f"/w/{workspace.pk}/endpoints/{autoscaled.endpoint.pk}/"
    html = client.get(page).content.decode()
    assert 'data-testid="scale-blue"' in html and "auto 0–3" in html
    url = f"{page}deployments/{autoscaled.deployment.pk}/scale/"
    form = {"replicas": 1, "autoscale": "on", "min_replicas": 1, "max_replicas": "", "target_in_flight": 2}
    answer = client.post(url, form, follow=True)
    assert "Give the most replicas to scale out to." in answer.content.decode()
    answer = client.post(url, {**form, "max_replicas": 5, "scale_in_seconds": 120}, follow=True)
    assert "blue autoscales between 1 and 5 replicas." in answer.content.decode()
    deployment = Deployment.objects.get(pk=autoscaled.deployment.pk)
    assert (deployment.min_replicas, deployment.max_replicas, deployment.scale_in_seconds) == (1, 5, 120)
    answer = client.post(url, {"replicas": 3}, follow=True)  # the box unticked: a fixed count
    assert "blue has 3 replicas." in answer.content.decode()
    deployment.refresh_from_db()
    assert not deployment.autoscales and deployment.replicas == 3


def test_the_cli_deploys_autoscaled_and_scales(live_server, owner, workspace, model_version, inference, tmp_path):
    services.endpoint_create(actor=owner, workspace=workspace, name="churn-api")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "STUDIO_", "DATABASE"))}
    env |= {"HOME": str(tmp_path), "STUDIO_CONFIG": str(tmp_path / "studio.json"), "PYTHONPATH": str(CLIENT)}

    def run(*args, ok=True):
        argv = [sys.executable, "-m", "studio_client", *map(str, args)]
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
        assert (done.returncode == 0) == ok, (args, done.stdout[-2000:], done.stderr[-2000:])
        return done

    run("login", live_server.url, "--token", token_create(user=owner, name="cli").plaintext)
    run("workspace", "use", workspace.name)
    model = f"{model_version.model.name}:{model_version.version}"
    deployed = run(
        "endpoint", "deploy", "churn-api", "--name", "blue", "--model", model, "--compute", "serving",
        "--min-replicas", 0, "--max-replicas", 3,
    )  # fmt: skip
    assert "1 replica now, autoscaling between 0 and 3" in deployed.stdout
    scaled = json.loads(run("endpoint", "scale", "churn-api", "blue", "--target-in-flight", 6, "--json").stdout)
    assert scaled["autoscale"]["target_in_flight"] == 6 and scaled["autoscale"]["max_replicas"] == 3
    refused = run("endpoint", "scale", "churn-api", "blue", "--replicas", 2, ok=False)
    assert "autoscales between 0 and 3" in refused.stdout + refused.stderr
    assert "2 replicas" in run("endpoint", "scale", "churn-api", "blue", "--no-autoscale", "--replicas", 2).stdout
    assert not Deployment.objects.get(name="blue").autoscales


def test_a_load_step_scales_out_and_an_idle_deployment_scales_to_zero_then_wakes_cold(
    settings, replica_agent, owner, autoscaled, studio_data_dir, client
):
    """Real replica processes: a load of 4 concurrent clients with a target of 1 in flight per
    replica brings a second replica; idle for 10 s, both leave; the next request waits for a cold
    start, which the agent's standby replica takes."""
    settings.STUDIO_SERVING_IN_PROCESS = False  # every answer comes from a replica
    settings.STUDIO_REPLICA_WAIT_SECONDS = 120  # a cold start on a busy machine
    deployment = services.deployment_update(
        actor=owner,
        deployment=autoscaled.deployment,
        autoscale={"min_replicas": 0, "max_replicas": 2, "target_in_flight": 1, "scale_in_seconds": 10},
    )
    start(replica_agent)
    first = ready_replicas(1, studio_data_dir=studio_data_dir)
    statuses, stop = [], threading.Event()

    def load():  # requests of 1,000 rows: the replica's scoring, not this process, takes the time
        own = Client()
        while not stop.is_set():
            statuses.append(score(own, autoscaled.primary, rows=[ROW] * 1000).status_code)
        connections.close_all()

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        second = ready_replicas(1, exclude=[n.pk for n in first], studio_data_dir=studio_data_dir)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    nodes = list(Node.objects.values("pk", "status", "in_flight", "reason"))
    assert second[0].deployment_id == deployment.pk, nodes
    assert Deployment.objects.get(pk=deployment.pk).replicas == 2, nodes
    assert statuses and set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}

    deadline = time.monotonic() + 120  # 10 s idle, then the replicas leave
    while serving_nodes(deployment).exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not serving_nodes(deployment).exists(), list(Node.objects.values("pk", "status", "in_flight"))
    assert Deployment.objects.get(pk=deployment.pk).replicas == 0

    standby = wait_for(lambda: replica_agent.standby, timeout=60, message="a standby replica")
    started = time.monotonic()
    response = score(client, autoscaled.primary)  # held until a replica has started
    assert response.status_code == 200, response.content
    assert response.json()["deployment"] == "blue"
    assert time.monotonic() - started < settings.STUDIO_REPLICA_WAIT_SECONDS
    (woken,) = serving_nodes(deployment)
    assert woken.pid == standby.pid  # the standby became the replica: only the model was loaded
