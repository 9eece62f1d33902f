"""The studio on several hosts of this machine (see hosts.py): host A runs the portal (web server,
the studio's worker and scheduler), Redis, and the ways to PostgreSQL and to object storage (moto's
S3 server, relayed like PostgreSQL); other hosts join over the bridge only, each with its own data
directory, so files go from host to host through object storage alone. Host B joins attached
compute; host C serves (its agent starts serving replicas only).

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
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import s3server
from tests.conftest import REPO

from .hosts import Host, NamespacesUnavailable, Network, TcpRelay

LABEL = "churned?"  # messy_csv's label
POSTGRES = ("127.0.0.1", 5432)
WEB_PORT = 8000
S3_PORT = 9000  # moto's server, relayed onto A's address
SEED = """
import json
from django.contrib.auth import get_user_model
from compute.models import ComputeTarget, TargetKind
from compute.services import target_create
from studio.services import token_create
from workspaces.models import Workspace

admin = get_user_model().objects.get(username="admin")
workspace = Workspace.objects.order_by("pk").first()
# 4: a node killed by one test counts against the limit until the reconciler declares it lost
attached = target_create(actor=admin, workspace=workspace, kind=TargetKind.ATTACHED, name="host-b", max_nodes=4)
# The studio's own jobs (data ingest) run on the workspace's default compute: here the attached
# compute, as A starts no nodes (no service changes the default: the admin shows it read-only).
ComputeTarget.objects.filter(workspace=workspace).update(is_default=False)
ComputeTarget.objects.filter(pk=attached.target.pk).update(is_default=True)
token = token_create(user=admin, name="scale-out suite")
print("SEED " + json.dumps({"workspace": workspace.pk, "attached": attached.target.pk,
                            "join_token": attached.join_token, "token": token.plaintext}))
"""


def _unavailable(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"the scale-out suite must run in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="package")  # one set of hosts and one studio for every test module here
def network():
    if os.environ.get("DATABASE_URL", "").startswith("postgres"):
        pytest.skip("the scale-out suite makes its own PostgreSQL database: it runs once, in the SQLite pass")
    try:
        net = Network()
        net.add_host("b")
        net.add_host("c")
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
    s3: s3server.S3Server  # as this (the root) namespace reaches it; the hosts go through A's relay
    bucket: str
    prefix: str

    def request(self, method: str, url: str, *, data: bytes | None, content_type: str, bearer: str):
        request = urllib.request.Request(
            url, method=method, data=data, headers={"Authorization": f"Bearer {bearer}", "Content-Type": content_type}
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - the suite's own server
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def api(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        return self.request(
            method, f"{self.url}/api/v1/{path}", data=data, content_type="application/json", bearer=self.token
        )

    def upload(self, *, name: str, filename: str, content: bytes) -> tuple[int, dict]:
        """A file posted as a new data asset, as a browser's form would (multipart)."""
        boundary = secrets.token_hex(16)
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\n{name}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            "Content-Type: text/csv\r\n\r\n"
        )
        data = head.encode() + content + f"\r\n--{boundary}--\r\n".encode()
        return self.request(
            "POST",
            f"{self.url}/api/v1/workspaces/{self.workspace}/data-assets/",
            data=data,
            content_type=f"multipart/form-data; boundary={boundary}",
            bearer=self.token,
        )

    def score(self, endpoint: str, key: str, rows: list[dict]) -> tuple[int, dict]:
        url = f"{self.url}/score/{endpoint}/"
        return self.request("POST", url, data=json.dumps(rows).encode(), content_type="application/json", bearer=key)

    def stored_keys(self, under: str) -> list[str]:
        """The keys object storage holds under `under` (relative to the studio's prefix)."""
        pages = (
            self.s3.client()
            .get_paginator("list_objects_v2")
            .paginate(Bucket=self.bucket, Prefix=f"{self.prefix}/{under}")
        )
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def host_env(self, host: Host) -> dict:
        data_dir = self.root / f"host-{host.name}"
        data_dir.mkdir(exist_ok=True)
        # Network namespaces share the machine's host name: each host says its own.
        return {**self.env, "STUDIO_DATA_DIR": str(data_dir), "STUDIO_HOSTNAME": f"host-{host.name}"}

    def start_agent(self, host: Host) -> tuple[subprocess.Popen, Path]:
        """`manage.py compute_agent --replicas-only` on `host`: a serving host, its replicas listening
        on the host's address (where A's portal reaches them). SIGTERM stops it and its replicas."""
        log, node_logs = self.root / f"agent-{host.name}.log", self.root / f"node-logs-{host.name}"
        node_logs.mkdir(exist_ok=True)
        env = {**self.host_env(host), "STUDIO_REPLICA_BIND": host.address}
        argv = [sys.executable, "manage.py", "compute_agent", "--replicas-only", "--log-dir", str(node_logs)]
        with open(log, "w") as out:
            proc = subprocess.Popen(
                host.argv(argv), cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        return proc, log

    def ingest(self, host: Host, *, name: str, content: bytes) -> dict:
        """A CSV uploaded to A's API and ingested by a node on `host` (the default compute is the
        attached one), which is stopped after; the ingest as the API shows it, ready."""
        node, log = self.start_node(host)
        try:
            status, ingest = self.upload(name=name, filename=f"{name}.csv", content=content)
            assert status == 202, ingest

            def ingested():
                status, found = self.api("GET", f"workspaces/{self.workspace}/ingests/{ingest['id']}/")
                assert status == 200, found
                return found if found["status"] in ("ready", "failed") else None

            ingest = wait_for(f"the ingest (node log: {log})", ingested, timeout=150)
            assert ingest["status"] == "ready", (ingest, log.read_text(errors="replace")[-3000:])
            return ingest
        finally:
            stop_node(node)

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


def _base_env(a: Host, database: str, redis_password: str, storage: dict) -> dict:
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
        **storage,
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


@pytest.fixture(scope="package")
def studio(network, tmp_path_factory):
    """Host A: a Redis on its address, PostgreSQL and object storage (a bucket on moto's S3 server)
    relayed to its address, and `manage.py studio` (web, the studio's worker, the scheduler; no local
    agent: A starts no nodes; every scoring answer comes from a replica) on its address."""
    a = network.hosts["a"]
    root = tmp_path_factory.mktemp("scaleout")
    database = f"scaleout_{network.tag}"
    try:
        _database(database)
    except Exception as exc:  # noqa: BLE001 - any failure to reach the server means no suite
        _unavailable(f"PostgreSQL is not reachable at {POSTGRES[0]}:{POSTGRES[1]}: {exc}")
    redis_password = secrets.token_hex(16)  # Redis serves other addresses than loopback only with one
    s3, prefix = s3server._start(), "studio"
    bucket = s3.new_bucket()
    storage = {
        "STUDIO_STORAGE_URL": f"s3://{bucket}/{prefix}?endpoint_url=http://{a.address}:{S3_PORT}&region={s3.region}",
        "AWS_ACCESS_KEY_ID": s3.access_key_id,
        "AWS_SECRET_ACCESS_KEY": s3.secret_access_key,
    }
    env = _base_env(a, database, redis_password, storage)
    a_env = {**env, "STUDIO_DATA_DIR": str(root / "host-a"), "STUDIO_HOSTNAME": "host-a"}
    a_env["STUDIO_SERVING_IN_PROCESS"] = "0"
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
        moto = urllib.parse.urlsplit(s3.endpoint_url)
        cleanup.callback(TcpRelay((a.address, S3_PORT), (moto.hostname, moto.port)).start().stop)
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
        yield Studio(
            url=f"http://{a.address}:{WEB_PORT}",
            env=env,
            root=root,
            log=log,
            s3=s3,
            bucket=bucket,
            prefix=prefix,
            **json.loads(line[5:]),
        )


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


def wait_for(what: str, check, timeout: float, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(interval)
    raise AssertionError(f"waited {timeout} s for {what}")


def messy_csv(rows: int = 80) -> bytes:
    """Column names with spaces, a yes/no label, missing values in a number and a category."""
    lines = [f"monthly charges,tenure months,plan type,{LABEL}"]
    for i in range(rows):
        charges, tenure = 20 + (i * 37) % 90, (i * 13) % 72
        churned = "yes" if charges - tenure > 30 else "no"
        plan = "" if i % 7 == 3 else ("basic plan", "pro", "team")[i % 3]
        lines.append(f"{'' if i % 11 == 5 else charges},{tenure},{plan},{churned}")
    return ("\n".join(lines) + "\n").encode()


def wait_for_job(studio, job_id: int, statuses: set[str], timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    job = {}
    while time.monotonic() < deadline:
        status, job = studio.api("GET", f"workspaces/{studio.workspace}/jobs/{job_id}/")
        assert status == 200, job
        if job["status"] in statuses:
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} never reached {statuses}: {job}")
