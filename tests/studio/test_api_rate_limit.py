"""API rate limits (R10): per token, per user for session calls, counted across web processes."""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from studio import services
from tests.conftest import REDIS_URL, REPO, _database_url, redis_available, require_service, wait_for

pytestmark = pytest.mark.django_db


def away_from_the_window_end(period: int, margin: float = 10) -> None:
    """A fixed window resets at its end: start a test's burst well inside one window."""
    left = period - time.time() % period
    if left < margin:
        time.sleep(left + 0.1)


def bearer(client, plaintext):
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    return client


def test_the_default_limit_is_generous(settings):
    count, period = settings.STUDIO_API_RATE_LIMIT.split("/")
    assert int(count) >= 600 and period == "minute"


def test_a_token_over_its_limit_gets_429_with_retry_after_and_the_error_body(api, owner, settings):
    settings.STUDIO_API_RATE_LIMIT = "3/hour"
    away_from_the_window_end(3600)
    cli = bearer(api(), services.token_create(user=owner, name="cli").plaintext)
    assert [cli.get("/api/v1/me/").status_code for _ in range(3)] == [200, 200, 200]
    limited = cli.get("/api/v1/workspaces/")
    assert limited.status_code == 429
    assert 1 <= int(limited["Retry-After"]) <= 3600
    assert limited.json()["error"]["code"] == "throttled"
    other = bearer(api(), services.token_create(user=owner, name="notebook").plaintext)
    assert other.get("/api/v1/me/").status_code == 200  # each token has its own budget


def test_session_calls_are_limited_per_user(api, owner, contributor, settings):
    settings.STUDIO_API_RATE_LIMIT = "2/hour"
    away_from_the_window_end(3600)
    first, second = api(owner), api(owner)  # two sessions of one user share a budget
    assert first.get("/api/v1/me/").status_code == 200
    assert second.get("/api/v1/me/").status_code == 200
    assert first.get("/api/v1/me/").status_code == 429
    assert api(contributor).get("/api/v1/me/").status_code == 200


def test_anonymous_calls_still_get_401(api, settings):
    settings.STUDIO_API_RATE_LIMIT = "1/hour"
    assert [api().get("/api/v1/me/").status_code for _ in range(3)] == [401, 401, 401]


def test_a_bad_rate_in_the_environment_fails_loudly(monkeypatch):
    from studio.settings import ImproperlyConfiguredEnv, env_rate

    for bad in ("fast", "10/fortnight", "0/minute", "-1/minute"):
        monkeypatch.setenv("X_RATE", bad)
        with pytest.raises(ImproperlyConfiguredEnv, match="X_RATE"):
            env_rate("X_RATE", "1/minute")
    monkeypatch.setenv("X_RATE", "5/second")
    assert env_rate("X_RATE", "1/minute") == "5/second"


# --- Across web processes ---------------------------------------------------------------------
def free_port() -> int:
    for port in range(8141, 8160):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError("no free port in 8141-8159")


class WebProcess:
    """A real gunicorn web process on this test's database and cache."""

    def __init__(self, port: int, data_dir, extra_env: dict):
        env = {
            **{k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"},
            "DJANGO_SETTINGS_MODULE": "studio.settings",
            "DATABASE_URL": _database_url(),
            "STUDIO_DATA_DIR": str(data_dir),
            "OMP_NUM_THREADS": "1",
            **extra_env,
        }
        self.port = port
        self.log = open(data_dir / f"web-{port}.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "portal.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1"],
            cwd=REPO,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def answering(self) -> bool:
        assert self.proc.poll() is None, "the web process exited"
        try:
            return requests.get(f"http://127.0.0.1:{self.port}/health/", timeout=10).status_code in (200, 503)
        except requests.RequestException:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()


@pytest.mark.parametrize("cache", ["files", "redis"])
def test_the_limit_is_counted_across_web_processes(cache, owner, studio_data_dir, transactional_db):
    env = {"STUDIO_API_RATE_LIMIT": "6/hour"}
    if cache == "redis":
        require_service(redis_available(), f"Redis is not reachable at {REDIS_URL}")
        import redis

        redis.Redis.from_url(REDIS_URL).flushdb()
        env["STUDIO_CACHE_URL"] = REDIS_URL
    token = services.token_create(user=owner, name="pipeline").plaintext
    webs = []
    try:
        for _ in range(2):
            webs.append(WebProcess(free_port(), studio_data_dir, env))
            wait_for(webs[-1].answering, timeout=60, interval=0.2, message="the web process")
        away_from_the_window_end(3600)
        codes = [
            requests.get(
                f"http://127.0.0.1:{webs[n % 2].port}/api/v1/me/",
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
            ).status_code
            for n in range(10)
        ]
    finally:
        for web in webs:
            web.stop()
    assert codes == [200] * 6 + [429] * 4, codes


def test_the_schema_documents_429_with_retry_after(api, owner):
    schema = api(owner).get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if isinstance(operation, dict) and "responses" in operation:
                limited = operation["responses"].get("429")
                assert limited and "Retry-After" in limited["headers"], (method, path)
