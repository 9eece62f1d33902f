"""Serving replicas benchmark: the real studio (`manage.py studio`: gunicorn, the local agent) with a
deployment of two replicas, scored through the portal's URL.

    .venv/bin/python bench/replicas.py

Measures, on a fresh data directory with STUDIO_SERVING_IN_PROCESS=0 (every answer from a replica):
  * deploy → both replicas ready (the agent starts them; each loads and warms its model);
  * one-row scoring latency at concurrency 1, p50 and p95, through the portal and straight to a
    replica (the portal's cost: key check, throttle, routing, one keep-alive hop);
  * a replica killed with kill -9 under 4 concurrent clients: failed requests (goal: none — the
    requests it had in flight are retried once on the other replica) and kill → replacement ready;
  * autoscaling (0–3 replicas, 1 request in flight each): a load step to 8 clients → a second
    replica serving (no failed request), idle → zero replicas, and the first request's cold start
    (goal ≤ 2 s).
"""

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

ROW = [{"tenure": 3, "charges": 80.5, "plan": "basic", "region": "north"}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(what)


def scorer(address: str, key: str):
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    body = json.dumps(ROW)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def score() -> int:
        connection.request("POST", "/score/bench-api/", body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status

    return score


def latencies(score, n: int) -> list[float]:
    for _ in range(20):
        score()
    out = []
    for _ in range(n):
        started = time.perf_counter()
        assert score() == 200
        out.append((time.perf_counter() - started) * 1000)
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="bench-replicas-"))
    port = free_port()
    env = {
        **os.environ,
        "STUDIO_DATA_DIR": str(data_dir),
        "STUDIO_SERVING_IN_PROCESS": "0",
        "STUDIO_HEARTBEAT_SECONDS": "0.5",
        "STUDIO_HEARTBEAT_TIMEOUT": "4",
        "OMP_NUM_THREADS": "1",
    }
    env.pop("DATABASE_URL", None)
    studio = subprocess.Popen(
        [sys.executable, "manage.py", "studio", "--port", str(port), "--lab-port", str(free_port()), "--no-beat"],
        cwd=REPO,
        env=env,
        stdout=open(data_dir / "studio.log", "wb"),  # noqa: SIM115 - open for the child's life
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        run(args, data_dir, port)
    finally:
        os.killpg(studio.pid, signal.SIGTERM)
        studio.wait(timeout=60)


def run(args, data_dir: Path, port: int):
    def up():
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/health")
            return connection.getresponse().status < 500
        except OSError:
            return False

    wait(up, 180, "the studio to answer")
    os.environ["STUDIO_DATA_DIR"] = str(data_dir)
    os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
    import django

    django.setup()
    from compute.models import Node, NodeStatus, TargetKind
    from compute.services import target_create
    from endpoints import services
    from tests.endpoints.conftest import register  # the model files a Train job writes, without the job
    from workspaces.models import Workspace

    workspace = Workspace.objects.order_by("pk").first()
    owner = workspace.memberships.filter(role="owner").first().user
    version = register(workspace, owner, name="bench-churn")
    target = target_create(actor=owner, workspace=workspace, kind=TargetKind.INFERENCE, name="bench-serving").target
    created = services.endpoint_create(actor=owner, workspace=workspace, name="bench-api", requests_per_minute=10**6)
    deployed = time.perf_counter()
    services.deployment_create(
        actor=owner, endpoint=created.endpoint, name="blue", model_version=version, target=target, replicas=2
    )

    def ready(exclude=()):
        nodes = list(
            Node.objects.filter(deployment_id__isnull=False, status__in=[NodeStatus.IDLE, NodeStatus.BUSY])
            .exclude(address="")
            .exclude(pk__in=exclude)
        )
        return nodes if len(nodes) >= 2 - len(exclude) else None

    replicas = wait(ready, 180, "two replicas")
    ready_s = time.perf_counter() - deployed
    portal = scorer(f"127.0.0.1:{port}", created.primary)
    wait(lambda: portal() == 200, 30, "the portal to route to a replica")
    through_portal = latencies(portal, args.requests)
    direct = latencies(scorer(replicas[0].address, created.primary), args.requests)

    statuses, errors, stop = [], [], threading.Event()

    def load():
        score = scorer(f"127.0.0.1:{port}", created.primary)
        while not stop.is_set():
            try:
                statuses.append(score())
            except OSError as exc:
                errors.append(exc)
                score = scorer(f"127.0.0.1:{port}", created.primary)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(2)
    victim = replicas[1]
    killed = time.perf_counter()
    os.kill(victim.pid, signal.SIGKILL)
    wait(lambda: ready(exclude=[victim.pk]) and len(ready(exclude=[victim.pk])) >= 2, 180, "a replacement")
    replaced_s = time.perf_counter() - killed
    time.sleep(2)
    stop.set()
    for thread in threads:
        thread.join()
    failed = len(errors) + sum(1 for s in statuses if s != 200)

    scale_out_s, step_failed, scale_in_s, cold_s = autoscale_phase(created, port, ready)

    p50_portal, p50_direct = statistics.median(through_portal), statistics.median(direct)
    print(f"deploy → 2 replicas ready: {ready_s:.1f} s")
    print(f"c1 one row through the portal: p50 {p50_portal:.2f} ms, p95 {percentile(through_portal, 0.95):.2f} ms")
    print(f"c1 one row straight to a replica: p50 {p50_direct:.2f} ms, p95 {percentile(direct, 0.95):.2f} ms")
    print(
        f"kill -9 under 4 clients: {len(statuses)} answered, {failed} failed; replacement ready in {replaced_s:.1f} s"
    )
    print(f"autoscaling 0–3, 1 in flight per replica: 8 clients → a second replica serving in {scale_out_s:.1f} s")
    print(f"  failed during the load step: {step_failed}; autoscaling on, idle → zero replicas in {scale_in_s:.1f} s")
    print(f"  first request at zero replicas answered in {cold_s:.2f} s (cold start)")
    print(f"load average: {os.getloadavg()[0]:.1f}")
    goals = "met" if failed == 0 and step_failed == 0 and cold_s <= 2.0 else "missed"
    print(
        f"BENCH replicas ready_s={ready_s:.1f} p50_portal_ms={p50_portal:.2f} p50_direct_ms={p50_direct:.2f} "
        f"kill9_requests={len(statuses)} kill9_failed={failed} replacement_s={replaced_s:.1f} "
        f"scale_out_s={scale_out_s:.1f} step_failed={step_failed} scale_in_s={scale_in_s:.1f} "
        f"cold_start_s={cold_s:.2f} goals={goals}"
    )


def autoscale_phase(created, port: int, ready) -> tuple[float, int, float, float]:
    """The deployment (two replicas) autoscales between 0 and 3 replicas at 1 request in flight
    each: idle, its replicas leave; then one request, which waits for a cold start; then a step to
    8 clients (100-row requests) until a second replica serves. (scale-out s, failed requests,
    scale-in s, cold start s)"""
    from compute.models import Node, NodeStatus
    from endpoints import services
    from endpoints.models import Deployment

    deployment = Deployment.objects.get(endpoint=created.endpoint, name="blue")
    autoscale = {"min_replicas": 0, "max_replicas": 3, "target_in_flight": 1, "scale_in_seconds": 10}
    idle = time.perf_counter()
    services.deployment_update(actor=created.endpoint.created_by, deployment=deployment, autoscale=autoscale)
    wait(lambda: not Node.objects.filter(deployment_id=deployment.pk, status__in=NodeStatus.live()).exists(),
         180, "scale to zero")  # fmt: skip
    scale_in_s = time.perf_counter() - idle
    time.sleep(3)  # the replicas' processes are gone; the standby is ready again
    started = time.perf_counter()
    status = scorer(f"127.0.0.1:{port}", created.primary)()
    cold_s = time.perf_counter() - started
    assert status == 200, status

    body = json.dumps(ROW * 100)
    statuses, errors, stop = [], [], threading.Event()

    def load():
        host = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        headers = {"Authorization": f"Bearer {created.primary}", "Content-Type": "application/json"}
        while not stop.is_set():
            try:
                host.request("POST", "/score/bench-api/", body=body, headers=headers)
                response = host.getresponse()
                response.read()
                statuses.append(response.status)
            except OSError as exc:
                errors.append(exc)
                host = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def serving(count):
        return (
            Node.objects.filter(deployment_id=deployment.pk, status__in=[NodeStatus.IDLE, NodeStatus.BUSY])
            .exclude(address="")
            .count()
            >= count
        )

    threads = [threading.Thread(target=load) for _ in range(8)]
    stepped = time.perf_counter()
    for thread in threads:
        thread.start()
    try:
        wait(lambda: serving(2), 180, "a second replica under the load step")
        scale_out_s = time.perf_counter() - stepped
        time.sleep(2)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    step_failed = len(errors) + sum(1 for s in statuses if s != 200)
    return scale_out_s, step_failed, scale_in_s, cold_s


if __name__ == "__main__":
    main()
