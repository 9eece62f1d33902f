"""The serving data plane: replicas are real processes on the inference cluster's nodes, started by
the local agent; the scoring URL forwards to them and survives a replica killed with kill -9."""

import http.client
import json
import os
import signal
import threading
import time
from datetime import timedelta
from email.utils import parsedate_to_datetime

import pytest
from django.core.cache import cache
from django.db import connections
from django.test import Client
from django.utils import timezone

from compute import agent as agent_module
from compute.models import Node, NodeStatus
from endpoints import routing, services, serving
from endpoints.models import MonitoringBucket
from tests.conftest import wait_for
from tests.endpoints.conftest import ready_replicas, start

ROW = {"tenure": 3, "charges": 80.5, "plan": "basic plan (old)", "region": None}


@pytest.fixture
def endpoint(owner, workspace, model_version, inference):
    created = services.endpoint_create(actor=owner, workspace=workspace, name="churn-api")
    services.deployment_create(
        actor=owner, endpoint=created.endpoint, name="blue", model_version=model_version, target=inference, replicas=2
    )
    cache.clear()
    return created


def score(client, key, rows=(ROW,)):
    return client.post(
        "/score/churn-api/", json.dumps(list(rows)), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}"
    )


def test_without_a_ready_replica_the_portal_answers_starting_or_scores_itself(settings, endpoint, client):
    settings.STUDIO_SERVING_IN_PROCESS = False
    response = score(client, endpoint.primary)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "starting"
    assert "starting" in response.json()["error"]["message"] and response["Retry-After"] == "2"
    settings.STUDIO_SERVING_IN_PROCESS = True  # the embedded default's fallback: this process scores
    response = score(client, endpoint.primary)
    assert response.status_code == 200 and response.json()["deployment"] == "blue"


def test_the_agent_asks_for_the_replicas_deployments_want_and_no_more(endpoint, owner):
    deployment = endpoint.endpoint.deployments.get()
    services.replicas_reconcile()
    assert Node.objects.filter(deployment_id=deployment.pk, status=NodeStatus.REQUESTED).count() == 2
    assert services.replicas_reconcile() == 0  # nothing changes: nothing asked
    services.deployment_update(actor=owner, deployment=deployment, replicas=1)
    services.replicas_reconcile()
    assert Node.objects.filter(deployment_id=deployment.pk, status__in=NodeStatus.live()).count() == 1
    Node.objects.filter(deployment_id=deployment.pk, status__in=NodeStatus.live()).update(status=NodeStatus.LOST)
    services.replicas_reconcile()  # a lost replica is replaced
    assert Node.objects.filter(deployment_id=deployment.pk, status__in=NodeStatus.live()).count() == 1
    services.deployment_delete(actor=owner, deployment=deployment)
    services.replicas_reconcile()  # a removed deployment's replicas stop
    assert not Node.objects.filter(deployment_id=deployment.pk, status__in=NodeStatus.live()).exists()


def test_scoring_goes_through_replicas_and_a_replica_killed_under_load_costs_no_request(
    settings, replica_agent, endpoint, studio_data_dir, client
):
    settings.STUDIO_SERVING_IN_PROCESS = False  # every answer below comes from a replica
    settings.STUDIO_HOST_MAX_REPLICAS = 3
    # A fast machine sends more than the default 6,000 requests a minute: not what is tested here.
    services.endpoint_update(actor=endpoint.endpoint.created_by, endpoint=endpoint.endpoint, requests_per_minute=10**6)
    start(replica_agent)
    first = ready_replicas(2, studio_data_dir=studio_data_dir)
    assert {n.address.split(":")[0] for n in first} == {"127.0.0.1"}
    deadline = time.monotonic() + 10
    response = score(client, endpoint.primary, rows=[ROW, {**ROW, "tenure": 60, "plan": "team"}])
    while response.status_code == 503 and time.monotonic() < deadline:  # the directory is read once a second
        time.sleep(0.2)
        response = score(client, endpoint.primary)
    assert response.status_code == 200, response.content
    assert response.json()["deployment"] == "blue" and len(response.json()["predictions"]) in (1, 2)
    # Bad input and a wrong key are still refused, with the same error bodies as before.
    refused = score(client, endpoint.primary, rows=[{**ROW, "charges": "lots"}])
    assert refused.status_code == 400 and refused.json()["error"]["fields"]
    assert score(client, "sk_wrong").status_code == 401

    # A small concurrent load; one replica is killed with kill -9 in the middle of it.
    statuses, errors, stop = [], [], threading.Event()

    def load():
        own = Client()
        while not stop.is_set():
            try:
                statuses.append(score(own, endpoint.primary).status_code)
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
        connections.close_all()  # this thread's: the test database is dropped after the test

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    victim = first[0]
    os.killpg(victim.pid, signal.SIGKILL)
    time.sleep(2.0)
    replacement = ready_replicas(1, exclude=[n.pk for n in first], studio_data_dir=studio_data_dir)
    time.sleep(1.5)  # traffic reaches the replacement too
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert len(statuses) > 20
    assert set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
    victim.refresh_from_db()
    assert victim.status == NodeStatus.LOST
    assert replacement[0].deployment_id == victim.deployment_id

    # Monitoring was counted by the replicas (their own sources), not by this process. The killed
    # replica's counts not yet flushed (at most STUDIO_MONITOR_FLUSH_SECONDS of them) died with it.
    assert not serving.monitor._data
    time.sleep(2.0)  # the survivors flush every 0.5 s
    buckets = list(MonitoringBucket.objects.filter(endpoint=endpoint.endpoint))
    assert serving.monitor.source not in {b.source for b in buckets}
    assert len({b.source for b in buckets}) >= 2
    counted = sum(b.requests for b in buckets)
    assert len(statuses) // 2 < counted <= len(statuses) + 2
    assert sum(b.errors_4xx for b in buckets) >= 1  # the refused payload


def test_the_standby_follows_the_first_replicas_without_waiting_for_the_hosts_next_check(
    monkeypatch, replica_agent, endpoint, studio_data_dir
):
    """A replica killed soon after its deployment is replaced from a standby that has had the time
    to import the serving stack: the host starting replicas is reason enough to keep one."""
    monkeypatch.setattr(agent_module, "STANDBY_CHECK_SECONDS", 3600)  # no periodic check during the test
    replica_agent.inference_checked = (time.monotonic(), False)  # looked before the deployment: nothing served
    start(replica_agent)
    serving_now = ready_replicas(2, studio_data_dir=studio_data_dir)
    standby = wait_for(lambda: replica_agent.standby, timeout=60, message="a standby replica")
    assert standby.poll() is None and standby.pid not in {n.pid for n in serving_now}


def test_a_replica_reached_directly_checks_the_key_and_throttles(settings, replica_agent, endpoint, studio_data_dir):
    services.endpoint_update(actor=endpoint.endpoint.created_by, endpoint=endpoint.endpoint, requests_per_minute=3)
    start(replica_agent)
    replica = ready_replicas(1, studio_data_dir=studio_data_dir)[0]
    host, port = replica.address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=30)

    def post(key, extra=None):
        connection.request(
            "POST",
            "/score/churn-api/",
            body=json.dumps([ROW]),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json", **(extra or {})},
        )
        response = connection.getresponse()
        dates.append(parsedate_to_datetime(response.getheader("Date")))
        return response.status, json.loads(response.read())

    dates = []
    assert post("sk_wrong")[0] == 401
    connection.request("POST", f"/score/churn-api/?key={endpoint.primary}", body=b"[]")
    refused = connection.getresponse()
    assert refused.status == 401 and json.loads(refused.read())["error"]["code"] == "key_in_url"  # not counted
    assert post(endpoint.primary, {"X-Studio-Forwarded": "forged"})[0] == 200  # counted: 1 of 3
    status, body = post(endpoint.primary)  # the same keep-alive connection
    assert status == 200 and body["deployment"] == "blue"
    status, body = post(endpoint.primary, {"X-Studio-Deployment": "green"})  # only its own model is here
    assert status == 404 and body["error"]["code"] == "not_served_here"
    status, body = post(endpoint.primary)
    assert status == 429 and body["error"]["code"] == "throttled"
    assert all(abs(date - timezone.now()) < timedelta(minutes=1) for date in dates)  # a current Date on each
    connection.request("GET", "/health")
    health = json.loads(connection.getresponse().read())
    assert health == {"endpoint": "churn-api", "deployment": "blue", "node": replica.pk, "in_flight": 0}


def test_a_replica_runs_as_many_models_at_once_as_it_has_cores_and_validates_the_waiting_requests_meanwhile(
    transactional_db, monkeypatch, endpoint
):
    """Requests are read, parsed and validated on their own threads but scored `cores` at a time:
    sixteen threads scoring at once hand Python's lock to one another and serve fewer requests a
    second. A request waiting for the model is validated already, so it is scored the moment the
    model is free."""
    from endpoints.replica import ReplicaServer
    from endpoints.scoring.predictor import Predictor
    from modelformat.signature import Signature

    server = ReplicaServer(("127.0.0.1", 0), endpoint_name="churn-api", deployment_name="blue", node_id=0, cores=1)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    real_predict, real_validate, lock = Predictor.predict_batch, Signature.validate_columns, threading.Lock()
    scoring, most_at_once, validated, first = [0], [0], [0], threading.Event()

    def validate(self, *args, **kwargs):  # the real validation, counted
        batch = real_validate(self, *args, **kwargs)
        with lock:
            validated[0] += 1
        return batch

    def predict(self, batch):  # the real model run, watched
        with lock:
            scoring[0] += 1
            most_at_once[0] = max(most_at_once[0], scoring[0])
        try:
            if not first.is_set():  # hold the first until every request has arrived and been validated
                wait_for(lambda: validated[0] == server.in_flight == 8, timeout=30, message="8 requests in, validated")
                first.set()
            return real_predict(self, batch)
        finally:
            with lock:
                scoring[0] -= 1

    monkeypatch.setattr(Signature, "validate_columns", validate)
    monkeypatch.setattr(Predictor, "predict_batch", predict)
    answers = []

    def post():
        connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=60)
        connection.request(
            "POST", "/score/churn-api/", body=json.dumps([ROW]), headers={"Authorization": f"Bearer {endpoint.primary}"}
        )
        response = connection.getresponse()
        answers.append((response.status, json.loads(response.read())))
        connections.close_all()

    try:
        clients = [threading.Thread(target=post) for _ in range(8)]
        for client_thread in clients:
            client_thread.start()
        for client_thread in clients:
            client_thread.join(timeout=60)
    finally:
        server.shutdown()
        server.server_close()
    assert [status for status, _ in answers] == [200] * 8, answers
    assert all(len(body["predictions"]) == 1 for _, body in answers)
    assert first.is_set() and most_at_once[0] == 1
    assert server.in_flight == 0


def test_replicas_that_die_before_serving_are_retried_ever_later(endpoint, owner, client, inference):
    from compute.services import replica_retry_in

    deployment = endpoint.endpoint.deployments.get()

    def requested():
        services.replicas_reconcile()
        return Node.objects.filter(deployment_id=deployment.pk, status=NodeStatus.REQUESTED).count()

    def die_before_serving(seconds_ago=0):
        Node.objects.filter(deployment_id=deployment.pk, status__in=NodeStatus.live()).update(
            status=NodeStatus.LOST, stopped_at=timezone.now() - timedelta(seconds=seconds_ago)
        )

    assert requested() == 2
    die_before_serving()  # both could not load the model: 2 failures, 4 s
    assert replica_retry_in(deployment_id=deployment.pk)[0] == 2 and requested() == 0
    client.force_login(owner)
    page = client.get(f"/w/{inference.workspace_id}/compute/{inference.pk}/").content.decode()
    assert "2 replicas in a row stopped before serving" in page
    Node.objects.filter(deployment_id=deployment.pk).update(stopped_at=timezone.now() - timedelta(seconds=5))
    assert requested() == 2  # the wait is over
    die_before_serving()
    failures, wait = replica_retry_in(deployment_id=deployment.pk)
    assert failures == 4 and 15 < wait <= 16 and requested() == 0
    Node.objects.filter(deployment_id=deployment.pk).update(stopped_at=timezone.now() - timedelta(seconds=17))
    assert requested() == 2
    Node.objects.filter(deployment_id=deployment.pk, status=NodeStatus.REQUESTED).update(
        status=NodeStatus.IDLE, ready_at=timezone.now()
    )
    die_before_serving()  # served, then killed: replaced at once
    assert replica_retry_in(deployment_id=deployment.pk) == (0, 0.0) and requested() == 2


def test_a_replica_that_cannot_load_its_model_says_why_and_is_not_restarted_every_tick(
    replica_agent, endpoint, model_version
):
    from training.registry_services import model_version_dir

    for name in ("model.skops", "model.onnx"):  # tampered with: neither checksum matches
        with open(model_version_dir(model_version) / name, "ab") as file:
            file.write(b"tampered")
    deployment = endpoint.endpoint.deployments.get()
    start(replica_agent)
    deadline = time.monotonic() + 90
    nodes = Node.objects.filter(deployment_id=deployment.pk)
    while nodes.count() < 3 or nodes.filter(status=NodeStatus.LOST).count() < 2:  # two failed, a retry asked
        assert time.monotonic() < deadline, list(Node.objects.values("status", "reason"))
        time.sleep(0.2)
    nodes = list(nodes.order_by("pk"))
    lost = [n for n in nodes if n.status == NodeStatus.LOST]
    assert len(lost) >= 2 and all(
        n.ready_at is None and n.reason.startswith(f"could not load {model_version}") for n in lost
    ), [n.reason for n in lost]
    # The agent ticks every 0.1 s; a retry waits at least 2 s after the last replica that failed.
    retry = nodes[2]
    failed_before = [n.stopped_at for n in lost if n.pk < retry.pk and n.stopped_at <= retry.requested_at]
    assert (retry.requested_at - max(failed_before)).total_seconds() >= 1.9


def test_the_inference_cluster_page_and_api_list_deployments_and_replicas(client, owner, endpoint, inference):
    from compute.services import replica_mark_ready

    services.replicas_reconcile()
    nodes = list(Node.objects.filter(target=inference).order_by("pk"))
    Node.objects.filter(pk=nodes[0].pk).update(status=NodeStatus.STARTING)
    assert replica_mark_ready(node_id=nodes[0].pk, address="127.0.0.1:45678", hostname="here", pid=1)
    client.force_login(owner)
    page = client.get(f"/w/{inference.workspace_id}/compute/{inference.pk}/")
    html = page.content.decode()
    assert page.status_code == 200
    assert 'data-testid="replica-table"' in html and "churn-api/blue" in html
    assert "127.0.0.1:45678" in html and "1 of 2 ready" in html
    api = client.get(f"/api/v1/workspaces/{inference.workspace_id}/compute/{inference.pk}/nodes/")
    assert api.status_code == 200
    rows = {row["id"]: row for row in api.json()["results"]}
    assert rows[nodes[0].pk]["address"] == "127.0.0.1:45678" and rows[nodes[0].pk]["in_flight"] == 0
    assert rows[nodes[1].pk]["status"] == "requested" and rows[nodes[1].pk]["deployment_id"] is not None


def test_routing_prefers_the_replica_with_fewest_outstanding_requests():
    pool = routing.ReplicaPool()
    pool.outstanding = {"a:1": 3, "b:1": 1, "c:1": 2}
    assert pool.choose(("a:1", "b:1", "c:1")) == "b:1"
    assert pool.outstanding["b:1"] == 2
    assert pool.choose(("a:1", "b:1", "c:1"), avoid="b:1") == "c:1"
    pool.mark_down("c:1")
    assert pool.choose(("c:1",)) is None
