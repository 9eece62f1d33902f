"""Soak: the embedded default (`manage.py studio`, filesystem broker, SQLite) under mixed load.

    .venv/bin/python bench/soak.py --minutes 60                 # the recorded run
    .venv/bin/python bench/soak.py --minutes 3 --port 8112      # a quick look

Starts the real run command on a fresh data directory and its own port (no Redis, no
PostgreSQL), then for the given duration, through HTTP only:
  * submits jobs through the API: a short diagnostic job every few seconds and a small train job
    (logistic regression on an uploaded CSV) every minute, on a cluster of 1–2 local nodes;
  * uploads a small CSV through the API (each becomes an ingest job);
  * scores a deployed model at its scoring URL (a model trained and registered by the soak);
  * views pages as a signed-in user (home, workspace, jobs, data, compute, models, endpoints).
It reports crashes (a child of the run command or a node process that exited on its own),
restarts, errors (HTTP answers outside 2xx/3xx, failed requests, failed jobs and ingests, and
unreadable broker messages set aside) and ends with one line:
    BENCH soak minutes=.. crashes=.. restarts=.. errors=.. goals=met|missed
Goal: no crash and no error. It stops the studio and exits by itself at the end.
"""

import argparse
import http.client
import http.cookiejar
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SINGLE = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
PASSWORD = secrets.token_urlsafe(16)  # the soak user signs in for the page views


def free_port() -> int:
    for port in range(8101, 8120):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port in 8101-8119")


def training_csv(rows: int = 300, seed: int = 0) -> bytes:
    import random

    rng = random.Random(seed)
    lines = ["tenure,charges,plan,churn"]
    for _ in range(rows):
        tenure, charges, plan = rng.randint(0, 72), round(rng.uniform(20, 120), 2), rng.choice(["basic", "pro", "team"])
        churn = "yes" if charges / 120 - tenure / 72 + rng.gauss(0, 0.3) > 0.2 else "no"
        lines.append(f"{tenure},{charges},{plan},{churn}")
    return ("\n".join(lines) + "\n").encode()


class Studio:
    """The run command as a user starts it, with its output in a log file we read."""

    def __init__(self, data_dir: Path, port: int):
        self.log_path = data_dir.parent / "studio.log"
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        env = {
            k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "STUDIO_CACHE_URL")
        }
        env.update({**SINGLE, "STUDIO_DATA_DIR": str(data_dir), "DJANGO_SETTINGS_MODULE": "studio.settings"})
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "studio", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_running(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while "Press Ctrl-C" not in self.output():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the studio did not start:\n{self.output()[-3000:]}")
            time.sleep(0.5)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


class Client:
    """HTTP with a token (API), an endpoint key (scoring) or a session (pages); counts outcomes."""

    def __init__(self, port: int):
        self.port = port
        self.lock = threading.Lock()
        self.outcomes: Counter = Counter()
        self.errors: list[str] = []
        self.token = ""
        jar = http.cookiejar.CookieJar()
        self.pages = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    def record(self, what: str, status: int | None, detail: str = "") -> bool:
        ok = status is not None and 200 <= status < 400
        with self.lock:
            self.outcomes[(what, "ok" if ok else "error")] += 1
            if not ok:
                self.errors.append(f"{time.strftime('%H:%M:%S')} {what}: {status} {detail[:300]}")
        return ok

    def call(self, what, method, path, *, body=None, headers=None, expect_json=True):
        headers = {"Authorization": f"Bearer {self.token}", **(headers or {})}
        if isinstance(body, dict | list):
            body, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        for _ in range(10):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                raw = response.read()
                conn.close()
            except OSError as exc:
                self.record(what, None, repr(exc))
                return None, None
            if response.status != 429:
                break
            # A rate limit is the studio working as configured, not an error: wait as told.
            with self.lock:
                self.outcomes[(what, "throttled")] += 1
            retry_after = response.headers.get("Retry-After") or "1"
            time.sleep(min(60.0, float(retry_after)) if retry_after.isdigit() else 1.0)
        self.record(what, response.status, raw.decode(errors="replace"))
        try:
            return response.status, json.loads(raw) if expect_json and raw else raw
        except ValueError:
            return response.status, raw

    def upload(self, workspace_id: int, name: str, content: bytes):
        boundary = uuid.uuid4().hex
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\n{name}\r\n'
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}.csv"\r\n'
                "Content-Type: text/csv\r\n\r\n"
            ).encode()
            + content
            + f"\r\n--{boundary}--\r\n".encode()
        )
        return self.call(
            "upload",
            "POST",
            f"/api/v1/workspaces/{workspace_id}/data-assets/",
            body=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )

    def sign_in(self, username: str) -> None:
        base = f"http://127.0.0.1:{self.port}"
        page = self.pages.open(base + "/login/", timeout=60).read().decode()
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        data = urllib.parse.urlencode({"username": username, "password": PASSWORD, "csrfmiddlewaretoken": csrf})
        headers = {"Referer": base + "/login/"}
        request = urllib.request.Request(base + "/login/", data=data.encode(), headers=headers)  # noqa: S310
        self.pages.open(request, timeout=60).read()

    def page(self, path: str) -> None:
        try:
            with self.pages.open(f"http://127.0.0.1:{self.port}{path}", timeout=120) as response:
                response.read()
                status = response.status
                if "/login/" in response.url:
                    status, path = 401, f"{path} (signed out)"
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError as exc:
            self.record("page", None, f"{path} {exc!r}")
            return
        self.record("page", status, path)


def wait_job(client: Client, workspace_id: int, job_id: int, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, job = client.call("poll", "GET", f"/api/v1/workspaces/{workspace_id}/jobs/{job_id}/")
        if status == 200 and job["status"] in ("completed", "failed", "canceled"):
            return job
        time.sleep(1)
    raise TimeoutError(f"job {job_id} did not finish in {timeout} s")


def wait_ingest(client: Client, workspace_id: int, ingest_id: int, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, ingest = client.call("poll", "GET", f"/api/v1/workspaces/{workspace_id}/ingests/{ingest_id}/")
        if status == 200 and ingest["status"] in ("ready", "failed"):
            return ingest
        time.sleep(1)
    raise TimeoutError(f"ingest {ingest_id} did not finish in {timeout} s")


def setup(client: Client, data_dir: Path) -> dict:
    """A user, a workspace, a token, a cluster, a data version, a trained model and an endpoint."""
    os.environ.update({"STUDIO_DATA_DIR": str(data_dir), "DJANGO_SETTINGS_MODULE": "studio.settings", **SINGLE})
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "STUDIO_CACHE_URL"):
        os.environ.pop(name, None)
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from compute.models import TargetKind
    from compute.services import target_create
    from endpoints.services import deployment_create, endpoint_create
    from studio.services import token_create
    from training.models import ModelVersion
    from workspaces.services import workspace_create

    user = get_user_model().objects.create_user("soak", password=PASSWORD)
    workspace = workspace_create(actor=user, name="Soak")
    client.token = token_create(user=user, name="soak").plaintext
    ws = workspace.pk
    status, cluster = client.call(
        "setup",
        "POST",
        f"/api/v1/workspaces/{ws}/compute/",
        body={"kind": "cluster", "name": "cpu", "min_nodes": 1, "max_nodes": 2},
    )
    assert status == 201, cluster
    status, ingest = client.upload(ws, "churn", training_csv())
    assert status == 202, ingest
    ingest = wait_ingest(client, ws, ingest["id"])
    assert ingest["status"] == "ready", ingest
    train_spec = {
        "data_version_id": ingest["version"]["id"],
        "target_column": "churn",
        "algorithm": "logistic_regression",
        "hyperparameters": {},
        "validation": {"method": "holdout", "holdout_fraction": 0.25},
    }
    status, job = client.call(
        "setup",
        "POST",
        f"/api/v1/workspaces/{ws}/jobs/",
        body={"kind": "train", "target": cluster["id"], "spec": train_spec},
    )
    assert status == 201, job
    job = wait_job(client, ws, job["id"])
    assert job["status"] == "completed", job
    status, version = client.call(
        "setup", "POST", f"/api/v1/workspaces/{ws}/jobs/{job['id']}/register/", body={"name": "churn"}
    )
    assert status == 201, version
    inference = target_create(actor=user, workspace=workspace, kind=TargetKind.INFERENCE, name="serving").target
    created = endpoint_create(actor=user, workspace=workspace, name=f"soak-{ws}", requests_per_minute=100_000)
    deployment_create(
        actor=user,
        endpoint=created.endpoint,
        name="blue",
        model_version=ModelVersion.objects.get(pk=version["id"]),
        target=inference,
    )
    client.sign_in("soak")
    return {
        "workspace": ws,
        "cluster": cluster["id"],
        "train_spec": train_spec,
        "endpoint": created.endpoint.name,
        "key": created.primary,
    }


def load(client: Client, world: dict, until: float, jobs: list, ingests: list) -> None:
    """The mixed load, each kind on its own schedule, in one thread per kind."""
    ws = world["workspace"]

    def every(seconds, action):
        def run():
            next_at = time.monotonic()
            while time.monotonic() < until:
                try:
                    action()
                except Exception as exc:  # noqa: BLE001 - a soak counts failures, it does not stop at one
                    client.record("soak", None, repr(exc))
                next_at += seconds
                time.sleep(max(0.0, next_at - time.monotonic()))

        return threading.Thread(target=run, daemon=True)

    def diagnostic_job():
        body = {"kind": "diagnostic", "target": world["cluster"], "spec": {"sleep_seconds": 1}}
        status, job = client.call("job submit", "POST", f"/api/v1/workspaces/{ws}/jobs/", body=body)
        if status == 201:
            jobs.append(job["id"])

    def train_job():
        body = {"kind": "train", "target": world["cluster"], "spec": world["train_spec"]}
        status, job = client.call("job submit", "POST", f"/api/v1/workspaces/{ws}/jobs/", body=body)
        if status == 201:
            jobs.append(job["id"])

    counter = iter(range(1_000_000))

    def upload():
        status, ingest = client.upload(ws, f"upload-{next(counter)}", training_csv(rows=200, seed=next(counter)))
        if status == 202:
            ingests.append(ingest["id"])

    def score():
        row = {"tenure": 12, "charges": 70.5, "plan": "pro"}
        client.call(
            "score",
            "POST",
            f"/score/{world['endpoint']}/",
            body=[row],
            headers={"Authorization": f"Bearer {world['key']}"},
        )

    pages = ["/", f"/w/{ws}/", f"/w/{ws}/jobs/", f"/w/{ws}/data/", f"/w/{ws}/compute/", f"/w/{ws}/models/"]
    pages.append(f"/w/{ws}/endpoints/")
    page_cycle = iter(pages * 1_000_000)

    threads = [
        every(8, diagnostic_job),
        every(60, train_job),
        every(30, upload),
        every(0.5, score),
        every(2, lambda: client.page(next(page_cycle))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def crashes_in(text: str, data_dir: Path) -> tuple[list[str], int, int]:
    """(crash lines, restarts, unreadable broker messages) from the run command's and nodes' logs."""
    crashes = re.findall(r"Studio: the \w+ process \(pid \d+\) exited with code -?\d+.*", text)
    crashes += re.findall(r".*node-\d+ exited unexpectedly with code -?\d+.*", text)
    restarts = len(re.findall(r"Studio: restarted the \w+ process", text))
    logs = [text] + [p.read_text(errors="replace") for p in (data_dir / "logs").glob("*.log")]
    unreadable = sum(log.count("unreadable message") for log in logs)
    return crashes, restarts, unreadable


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--port", type=int, default=None, help="default: the first free port in 8101-8119")
    parser.add_argument("--work", default=None, help="a folder for the data directory and logs (default: a new one)")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="studio-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    data_dir = work / "data"
    port = args.port or free_port()
    print(f"soak: {args.minutes:g} min on port {port}; data and logs in {work}", flush=True)

    started = time.monotonic()
    studio = Studio(data_dir, port)
    jobs: list[int] = []
    ingests: list[int] = []
    client = Client(port)
    try:
        studio.wait_running()
        world = setup(client, data_dir)
        print(f"soak: set up in {time.monotonic() - started:.0f} s; load for {args.minutes:g} min", flush=True)
        until = time.monotonic() + args.minutes * 60

        def report():
            while time.monotonic() < until:
                time.sleep(60)
                crashes, restarts, _ = crashes_in(studio.output(), data_dir)
                done = sum(n for (what, _), n in client.outcomes.items())
                print(
                    f"soak: {(time.monotonic() - (until - args.minutes * 60)) / 60:.0f} min: {done} requests, "
                    f"{len(client.errors)} errors, {len(crashes)} crashes, {restarts} restarts, {len(jobs)} jobs; "
                    f"load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )

        threading.Thread(target=report, daemon=True).start()
        load(client, world, until, jobs, ingests)
        # Everything submitted finishes (or fails) before the studio stops.
        failed_jobs = [j for j in jobs if wait_job(client, world["workspace"], j)["status"] != "completed"]
        failed_ingests = [i for i in ingests if wait_ingest(client, world["workspace"], i)["status"] != "ready"]
        for job_id in failed_jobs:
            client.errors.append(f"job {job_id} did not complete")
        for ingest_id in failed_ingests:
            client.errors.append(f"ingest {ingest_id} did not become ready")
    finally:
        studio.stop()

    crashes, restarts, unreadable = crashes_in(studio.output(), data_dir)
    if unreadable:
        client.errors.append(f"{unreadable} unreadable broker messages set aside")
    print("\nrequests by kind:")
    for (what, outcome), n in sorted(client.outcomes.items()):
        print(f"  {what:<12} {outcome:<6} {n}")
    print(f"jobs: {len(jobs)} submitted; ingests: {len(ingests)} uploads; load average {os.getloadavg()[0]:.1f}")
    for line in crashes[:20]:
        print("crash:", line)
    for line in client.errors[:30]:
        print("error:", line)
    errors = len(client.errors)
    met = not crashes and errors == 0
    print(
        f"BENCH soak minutes={args.minutes:g} crashes={len(crashes)} restarts={restarts} errors={errors} "
        f"goals={'met' if met else 'missed'}"
    )


if __name__ == "__main__":
    main()
