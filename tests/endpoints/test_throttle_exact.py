"""The per-key scoring limit is exact across processes (R10): real gunicorn worker processes,
concurrent requests at limit L, L of them answered (within 5 %), the rest 429 with Retry-After.
Both stores: the embedded default (a locked file per key) and Redis."""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from endpoints import services
from endpoints.models import MonitoringBucket
from studio.ratelimit import rate_limit
from tests.conftest import REDIS_URL, REPO, _database_url, redis_available, require_service, wait_for
from tests.endpoints.conftest import register

ROW = {"tenure": 3, "charges": 80.5, "plan": "basic", "region": "north"}
PORTS = range(8181, 8200)


@pytest.fixture(params=["embedded", "redis"])
def store_url(request):
    """'' for the embedded default (files under the data directory), else a Redis URL."""
    if request.param == "redis":
        require_service(redis_available(), f"Redis is not reachable at {REDIS_URL}")
        return REDIS_URL
    return ""


def free_port() -> int:
    for port in PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 8181-8199")


def wait_for_a_fresh_minute(needed_seconds: float = 25) -> None:
    """The limit is per clock minute: start the burst with time to spare before the minute ends."""
    left = 60 - time.time() % 60
    if left < needed_seconds:
        time.sleep(left + 0.2)


def test_rate_limit_is_exact_across_threads(store_url, settings, tmp_path):
    settings.STUDIO_CACHE_URL, settings.DATA_DIR = store_url, tmp_path
    wait_for_a_fresh_minute(10)
    key = f"test:{time.monotonic_ns()}"
    allowed = []

    def hammer():
        allowed.extend(rate_limit(key, limit=60) is None for _ in range(25))

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert allowed.count(True) == 60 and len(allowed) == 200
    retry_after = rate_limit(key, limit=60)
    assert retry_after is not None and 1 <= retry_after <= 60


@pytest.fixture
def gunicorn(store_url, studio_data_dir, transactional_db):
    """start(workers) -> the base URL of real gunicorn worker processes on the test database."""
    started = []

    def start(workers: int = 3) -> str:
        port = free_port()
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "studio.settings",
            "DATABASE_URL": _database_url(),
            "STUDIO_DATA_DIR": str(studio_data_dir),
            "STUDIO_CACHE_URL": store_url,
            "STUDIO_MONITOR_FLUSH_SECONDS": "0.5",
            "OMP_NUM_THREADS": "1",
        }
        argv = [sys.executable, "-m", "gunicorn", "portal.wsgi:application", "--bind", f"127.0.0.1:{port}"]
        argv += ["--workers", str(workers), "--threads", "4", "--log-level", "warning"]
        proc = subprocess.Popen(argv, cwd=REPO, env=env, start_new_session=True)
        started.append(proc)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert proc.poll() is None, "gunicorn exited"
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/health/")
                connection.getresponse().read()
                return f"127.0.0.1:{port}"
            except OSError:
                time.sleep(0.2)
        raise TimeoutError("gunicorn did not answer")

    yield start
    for proc in started:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def score(address: str, key: str) -> tuple[int, str | None]:
    host, port = address.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    connection.request("POST", "/score/exact/", json.dumps([ROW]), headers)
    response = connection.getresponse()
    response.read()
    return response.status, response.getheader("Retry-After")


def test_the_per_key_limit_is_exact_across_gunicorn_processes(gunicorn, owner, workspace, inference):
    limit, requests, concurrency = 30, 120, 24
    created = services.endpoint_create(actor=owner, workspace=workspace, name="exact", requests_per_minute=limit)
    services.deployment_create(
        actor=owner, endpoint=created.endpoint, name="blue", model_version=register(workspace, owner), target=inference
    )
    address = gunicorn(workers=3)
    with ThreadPoolExecutor(6) as pool:  # warm the processes (models loaded) with the other key
        assert set(pool.map(lambda _: score(address, created.secondary)[0], range(12))) == {200}
    wait_for_a_fresh_minute()
    started = time.time()
    with ThreadPoolExecutor(concurrency) as pool:
        answers = list(pool.map(lambda _: score(address, created.primary), range(requests)))
    assert int(started // 60) == int(time.time() // 60), "the burst crossed a minute: the budget renewed"
    statuses = [status for status, _ in answers]
    assert set(statuses) <= {200, 429}, statuses
    assert abs(statuses.count(200) - limit) <= limit * 0.05, statuses.count(200)
    assert all(1 <= int(retry) <= 60 for status, retry in answers if status == 429)
    assert score(address, created.secondary)[0] == 200  # the other key has its own budget
    # The requests were spread over several processes (each writes its own monitoring rows).
    wait_for(
        lambda: len(set(MonitoringBucket.objects.values_list("source", flat=True))) >= 2,
        timeout=20,
        message="monitoring rows from two serving processes or more",
    )
