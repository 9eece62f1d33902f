"""The studio on several hosts of this machine (see hosts.py): host A runs the portal (web server,
the studio's worker and scheduler), Redis and the way to PostgreSQL; other hosts join over the
bridge only, each with its own data directory.

The suite makes its own PostgreSQL database (several hosts cannot share SQLite), so it runs the
same whichever database the rest of the suite is on. Without namespaces (not root) it is skipped
with the reason, and fails under CI=true.
"""

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO

from .hosts import Host, NamespacesUnavailable, Network, TcpRelay

POSTGRES = ("127.0.0.1", 5432)
WEB_PORT = 8000
SEED = """
import json
from django.contrib.auth import get_user_model
from compute.models import TargetKind
from compute.services import target_create
from studio.services import token_create
from workspaces.models import Workspace

admin = get_user_model().objects.get(username="admin")
workspace = Workspace.objects.order_by("pk").first()
attached = target_create(actor=admin, workspace=workspace, kind=TargetKind.ATTACHED, name="host-b", max_nodes=2)
token = token_create(user=admin, name="scale-out suite")
print("SEED " + json.dumps({"workspace": workspace.pk, "attached": attached.target.pk,
                            "join_token": attached.join_token, "token": token.plaintext}))
"""


def _unavailable(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"the scale-out suite must run in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def network():
    if os.environ.get("DATABASE_URL", "").startswith("postgres"):
        pytest.skip("the scale-out suite makes its own PostgreSQL database: it runs once, in the SQLite pass")
    try:
        net = Network()
        net.add_host("b")
    except NamespacesUnavailable as exc:
        _unavailable(str(exc))
    yield net
    net.close()


@dataclass
class Studio:
    """The studio as host A serves it, and what the suite seeded in it."""

    url: str
    env: dict  # what every host's processes share (database, broker, secret key, timeouts)
    workspace: int
    attached: int
    join_token: str
    token: str
    root: Path
    log: Path

    def api(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        request = urllib.request.Request(
            f"{self.url}/api/v1/{path}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - the suite's own server
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def host_env(self, host: Host) -> dict:
        data_dir = self.root / f"host-{host.name}"
        data_dir.mkdir(exist_ok=True)
        return {**self.env, "STUDIO_DATA_DIR": str(data_dir)}

    def start_node(self, host: Host) -> tuple[subprocess.Popen, Path]:
        """`manage.py compute_node` on `host`, joining the attached compute with its token; the
        process becomes the node's worker (same pid, own session: killpg stops it all)."""
        log = self.root / f"node-{host.name}-{time.monotonic_ns()}.log"
        env = {**self.host_env(host), "STUDIO_JOIN_TOKEN": self.join_token}
        argv = host.argv([sys.executable, "manage.py", "compute_node", "--target", str(self.attached)])
        with open(log, "w") as out:
            proc = subprocess.Popen(
                argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        return proc, log


def _base_env(a: Host, database: str, redis_password: str) -> dict:
    dropped = ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE")
    env = {k: v for k, v in os.environ.items() if k not in dropped and not k.startswith("STUDIO_")}
    return env | {
        "DATABASE_URL": f"postgres://postgres@{a.address}:5432/{database}",
        "CELERY_BROKER_URL": f"redis://:{redis_password}@{a.address}:6379/0",
        "STUDIO_CACHE_URL": f"redis://:{redis_password}@{a.address}:6379/1",
        "SECRET_KEY": secrets.token_urlsafe(40),
        "ALLOWED_HOSTS": a.address,
        "STUDIO_PUBLIC_URL": f"http://{a.address}:{WEB_PORT}",
        "STUDIO_HEARTBEAT_TIMEOUT": "6",
        "STUDIO_REPUBLISH_AFTER": "2",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def _wait_for_log(log: Path, text: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.3)
    raise AssertionError(f"no {text!r} in {log}:\n{log.read_text(errors='replace')[-4000:]}")


def _database(name: str, *, drop: bool = False) -> None:
    import psycopg

    with psycopg.connect(host=POSTGRES[0], port=POSTGRES[1], user="postgres", dbname="postgres", autocommit=True) as c:
        if drop:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        else:
            c.execute(f'CREATE DATABASE "{name}"')


@pytest.fixture(scope="module")
def studio(network, tmp_path_factory):
    """Host A: a Redis on its address, PostgreSQL relayed to its address, and `manage.py studio`
    (web, the studio's worker, the scheduler; no local agent: A starts no nodes) on its address."""
    a = network.hosts["a"]
    root = tmp_path_factory.mktemp("scaleout")
    database = f"scaleout_{network.tag}"
    try:
        _database(database)
    except Exception as exc:  # noqa: BLE001 - any failure to reach the server means no suite
        _unavailable(f"PostgreSQL is not reachable at {POSTGRES[0]}:{POSTGRES[1]}: {exc}")
    redis_password = secrets.token_hex(16)  # Redis serves other addresses than loopback only with one
    env = _base_env(a, database, redis_password)
    a_env = {**env, "STUDIO_DATA_DIR": str(root / "host-a")}
    log = root / "studio-a.log"
    with contextlib.ExitStack() as cleanup:  # each step undone even if a later one fails
        cleanup.callback(_database, database, drop=True)
        redis = subprocess.Popen(
            ["redis-server", "--bind", a.address, "--port", "6379", "--save", "", "--appendonly", "no"]
            + ["--requirepass", redis_password],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        cleanup.callback(stop_process, redis, signal.SIGTERM)
        cleanup.callback(TcpRelay((a.address, 5432), POSTGRES).start().stop)
        with open(log, "w") as out:
            web = subprocess.Popen(
                [sys.executable, "manage.py", "studio", "--host", a.address, "--port", str(WEB_PORT)]
                + ["--no-agent", "--web-workers", "1"],
                cwd=REPO,
                env=a_env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        cleanup.callback(stop_process, web, signal.SIGINT)  # Ctrl-C: the studio stops its children
        _wait_for_log(log, "Press Ctrl-C", web, timeout=180)
        seeded = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", SEED],
            cwd=REPO,
            env=a_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        line = next((x for x in seeded.stdout.splitlines() if x.startswith("SEED ")), None)
        assert line, seeded.stdout + seeded.stderr
        yield Studio(url=f"http://{a.address}:{WEB_PORT}", env=env, root=root, log=log, **json.loads(line[5:]))


def stop_process(proc: subprocess.Popen, how: int = signal.SIGKILL) -> None:
    """Stop a process the suite started in its own session (its group), waiting; SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, how)
        proc.wait(timeout=60)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        proc.kill()
        proc.wait(timeout=30)


def stop_node(proc: subprocess.Popen) -> None:
    stop_process(proc, signal.SIGKILL)
