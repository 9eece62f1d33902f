"""Fixtures for every suite: personas, workspaces, API clients, real Celery workers, a real browser.

Real parts only: workers are real `celery worker` processes against real Redis or the embedded
(filesystem) broker; the browser is Debian's Chromium driven by Playwright. With CI=true a missing
service or browser fails the test instead of skipping it.
"""

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.db import connection

from workspaces.models import Membership, Role
from workspaces.services import workspace_create

CI = os.environ.get("CI", "").lower() == "true"
REDIS_URL = os.environ.get("STUDIO_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
CHROMIUM = os.environ.get("STUDIO_TEST_CHROMIUM", "/usr/bin/chromium")
PASSWORD = "correct-horse-battery-staple"
REPO = Path(__file__).resolve().parent.parent


def require_service(available: bool, reason: str) -> None:
    """Skip a test whose service is missing on a laptop; fail it in CI (never a silent skip)."""
    if available:
        return
    if CI:
        pytest.fail(f"{reason} — CI=true, so a missing service or browser is a failure.")
    pytest.skip(reason)


def redis_available() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


# --- Files --------------------------------------------------------------------------------------
@pytest.fixture
def studio_data_dir(tmp_path) -> Path:
    """A fresh data directory per test, shared by the test process and the workers it starts."""
    path = tmp_path / "studio-data"
    (path / "artifacts").mkdir(parents=True)
    return path


@pytest.fixture(scope="session", autouse=True)
def _embedded_broker_by_default(tmp_path_factory):
    """Messages published by tests that start no worker go to a throwaway embedded broker."""
    _use_broker(_embedded_broker(tmp_path_factory.mktemp("default-broker")))


@pytest.fixture(autouse=True)
def _test_settings(settings, studio_data_dir):
    settings.ARTIFACT_ROOT = studio_data_dir / "artifacts"
    # Environments are built into the test's own cache (uv's download cache is shared, so downloads are reused).
    settings.STUDIO_ENVIRONMENT_CACHE_DIR = studio_data_dir / "environments"
    settings.STUDIO_MONITOR_FLUSH_SECONDS = 0  # tests flush the monitoring buffer themselves
    # Argon2 is slow on purpose; the personas' passwords need not be (test_settings checks the real list).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Tests render templates without a collectstatic manifest.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


# --- Personas -----------------------------------------------------------------------------------
@pytest.fixture
def make_user(db):
    def make(username: str, **extra):
        return get_user_model().objects.create_user(username=username, password=PASSWORD, **extra)

    return make


@pytest.fixture
def owner(make_user):
    return make_user("alice")


@pytest.fixture
def contributor(make_user):
    return make_user("bob")


@pytest.fixture
def reader(make_user):
    return make_user("carol")


@pytest.fixture
def outsider(make_user):
    return make_user("mallory")


@pytest.fixture
def workspace(owner, contributor, reader):
    """A workspace with one member of each role: alice (Owner), bob (Contributor), carol (Reader)."""
    ws = workspace_create(actor=owner, name="Team", description="The team's workspace")
    Membership.objects.create(workspace=ws, user=contributor, role=Role.CONTRIBUTOR, added_by=owner)
    Membership.objects.create(workspace=ws, user=reader, role=Role.READER, added_by=owner)
    return ws


@pytest.fixture
def other_workspace(outsider):
    """A workspace that only mallory belongs to."""
    return workspace_create(actor=outsider, name="Elsewhere")


@pytest.fixture
def persona(owner, contributor, reader, outsider):
    return {"owner": owner, "contributor": contributor, "reader": reader, "outsider": outsider}


@pytest.fixture
def api():
    """api(user) -> a DRF test client signed in as that user (session authentication)."""
    from rest_framework.test import APIClient

    def client_for(user=None):
        client = APIClient()
        if user is not None:
            client.force_login(user)
        return client

    return client_for


# --- Brokers and real Celery workers ------------------------------------------------------------
def _database_url() -> str:
    """The URL of the test database this process uses, for worker processes to share."""
    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


class Broker:
    def __init__(self, kind: str, url: str, transport_options: dict):
        self.kind, self.url, self.transport_options = kind, url, transport_options


def _embedded_broker(data_dir: Path) -> Broker:
    for sub in ("queue", "processed", "control"):
        (data_dir / "broker" / sub).mkdir(parents=True, exist_ok=True)
    return Broker(
        "embedded",
        "filesystem://",
        {
            "data_folder_in": str(data_dir / "broker" / "queue"),
            "data_folder_out": str(data_dir / "broker" / "queue"),
            "processed_folder": str(data_dir / "broker" / "processed"),
            "control_folder": str(data_dir / "broker" / "control"),
            "store_processed": False,
            "polling_interval": 0.05,
        },
    )


def _use_broker(broker: Broker) -> None:
    """Point this process's Celery app (which publishes on commit) at the broker."""
    from studio.celery import app

    app.conf.broker_url = broker.url
    app.conf.broker_transport_options = broker.transport_options
    app._after_fork()  # drop pooled connections to the previous broker


@pytest.fixture(params=["redis", "embedded"])
def broker(request, studio_data_dir, settings):
    """Each test using it runs twice: against real Redis and against the embedded broker."""
    if request.param == "redis":
        require_service(redis_available(), f"Redis is not reachable at {REDIS_URL}")
        import redis

        redis.Redis.from_url(REDIS_URL).flushdb()
        chosen = Broker("redis", REDIS_URL, {"visibility_timeout": django_settings.CELERY_VISIBILITY_TIMEOUT})
    else:
        shutil.rmtree(studio_data_dir / "broker", ignore_errors=True)
        chosen = _embedded_broker(studio_data_dir)
    settings.CELERY_BROKER_URL = chosen.url
    settings.EMBEDDED_BROKER = chosen.kind == "embedded"
    _use_broker(chosen)
    yield chosen
    _use_broker(_embedded_broker(studio_data_dir / "after"))


class WorkerProcess:
    """A real `celery worker` process in its own session (so a test can kill -9 its group)."""

    def __init__(
        self,
        *,
        broker: Broker,
        data_dir: Path,
        queues: str,
        name: str,
        concurrency: int = 1,
        extra_env: dict | None = None,
    ):
        self.log_path = data_dir / f"worker-{name}-{time.monotonic_ns()}.log"
        env = {
            **{k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"},
            "DJANGO_SETTINGS_MODULE": "studio.settings",
            "DATABASE_URL": _database_url(),
            "STUDIO_DATA_DIR": str(data_dir),
            "STUDIO_ENVIRONMENT_CACHE_DIR": str(data_dir / "environments"),
            "CELERY_BROKER_URL": broker.url,
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            **(extra_env or {}),
        }
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "studio",
            "worker",
            "--queues",
            queues,
            "--hostname",
            f"{name}@%h",
            "--concurrency",
            str(concurrency),
            "--loglevel",
            "INFO",
            "--without-mingle",
            "--without-gossip",
        ]
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv, cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_ready(self, timeout: float = 60) -> "WorkerProcess":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.output()}")
            if " ready." in self.output():
                return self
            time.sleep(0.1)
        raise TimeoutError(f"worker not ready after {timeout}s:\n{self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self, sig=signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def stop(self) -> None:
        """At the end of a test: no job needs a warm shutdown, so the worker goes at once."""
        if self.proc.poll() is None:
            self.kill(signal.SIGKILL)
            self.proc.wait()
        self.log.close()


@pytest.fixture
def start_worker(broker, studio_data_dir, transactional_db):
    """start_worker(queues="studio", name="w1") -> a ready WorkerProcess, stopped after the test."""
    started: list[WorkerProcess] = []

    def start(queues: str = django_settings.CELERY_TASK_DEFAULT_QUEUE, name: str = "test", **kwargs) -> WorkerProcess:
        worker = WorkerProcess(broker=broker, data_dir=studio_data_dir, queues=queues, name=name, **kwargs)
        started.append(worker)
        return worker.wait_ready()

    yield start
    for worker in started:
        worker.stop()


def wait_for(predicate, timeout: float = 20, interval: float = 0.05, message: str = "condition"):
    """Poll the database (never AsyncResult) until predicate() is truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


# --- Browser ------------------------------------------------------------------------------------
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest.fixture(scope="session")
def browser():
    require_service(os.path.exists(CHROMIUM), f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; Django's ORM calls in the test
    # body are still synchronous and safe.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test, so a fixture's teardown knows whether the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def new_page(request, browser, live_server):
    """new_page() -> a Playwright page in a fresh context (its own cookies) on the live server.
    When the test fails, its pages' requests (with their timing) and this process's threads are
    printed: a wait that timed out shows whether the server answered and where it was stuck."""
    contexts, network = [], []
    started = time.monotonic()

    def note(what: str, detail: str) -> None:
        network.append(f"{time.monotonic() - started:8.3f}s {what} {detail}")

    def make():
        context = browser.new_context(base_url=live_server.url, viewport={"width": 1366, "height": 800})
        context.set_default_timeout(15000)
        contexts.append(context)
        page = context.new_page()
        page.on("request", lambda r: note("->", f"{r.method} {r.url}"))
        page.on("response", lambda r: note("<-", f"{r.status} {r.url}"))
        page.on("requestfailed", lambda r: note("!!", f"{r.failure} {r.url}"))
        page.on("framenavigated", lambda f: f.parent_frame is None and note("at", f.url))
        return page

    yield make
    call = getattr(request.node, "report_call", None)
    if call is not None and call.failed:
        _print_failure_context(network)
    for context in contexts:
        context.close()


def _print_failure_context(network: list[str]) -> None:
    print("--- the pages' requests (static files left out) ---")
    print("\n".join(line for line in network if "/static/" not in line))
    print("--- this process's threads ---")
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    for ident, frame in sys._current_frames().items():
        stack = traceback.format_stack(frame)
        if "handle_one_request" in "".join(stack[-3:]):
            continue  # a server thread waiting for the browser's next request on a kept-alive connection
        print(f"thread {names.get(ident, ident)}:")
        print("".join(stack[-8:]))


def login(page, username: str, password: str = PASSWORD):
    page.goto("/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login/" not in url)


def htmx_settled(page, live: str | None = None) -> None:
    """Wait until htmx has no request, swap or settle under way; with `live` (a selector), also
    until htmx has processed that element, so a swapped-in field reacts to the next change."""
    page.wait_for_function("() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')")
    if live:
        page.wait_for_function("s => !!(htmx.find(s)?.['htmx-internal-data'] || {}).initHash", arg=live)


# --- Compute: the local agent and the reconciler, running as they do in production ------------
class BackgroundLoop:
    """Runs `tick()` every `interval` seconds in a thread until stopped."""

    def __init__(self, tick, interval: float):
        self.tick, self.interval = tick, interval
        self.stop_event = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        from django.db import connection as thread_connection

        while not self.stop_event.wait(self.interval):
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - reported by the fixture
                self.errors.append(exc)
        thread_connection.close()

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stop_event.set()
        self.thread.join(timeout=30)


@pytest.fixture
def node_env(broker, studio_data_dir):
    """Environment of node processes: the test database, data directory and broker."""
    return {
        "DATABASE_URL": _database_url(),
        "STUDIO_DATA_DIR": str(studio_data_dir),
        "CELERY_BROKER_URL": broker.url,
        "STUDIO_HEARTBEAT_SECONDS": "0.5",
        "STUDIO_HEARTBEAT_TIMEOUT": "4",
        # The studio's key, as every process of one studio shares it (a command job's sealed secrets).
        "SECRET_KEY": django_settings.SECRET_KEY,
    }


@pytest.fixture
def agent(node_env, studio_data_dir, settings, transactional_db):
    """The local provisioner in a thread: it autoscales and starts real node worker processes."""
    from compute.agent import LocalAgent

    settings.STUDIO_HEARTBEAT_TIMEOUT = 4
    # No serving replicas: these tests' deployments score in this process, whose monitoring they
    # flush and read (a replica counts its own, flushed later). tests/endpoints' replica_agent serves.
    settings.STUDIO_HOST_MAX_REPLICAS = 0
    log_dir = studio_data_dir / "node-logs"
    log_dir.mkdir(exist_ok=True)
    local = LocalAgent(log_dir=str(log_dir), extra_env=node_env)
    loop = BackgroundLoop(local.tick, 0.1).start()
    local.loop = loop
    yield local
    loop.stop()
    local.stop_all(kill=True)  # the test is over: no job needs a warm shutdown
    assert not loop.errors, loop.errors


@pytest.fixture
def reconciler(settings, agent):
    """The reconciler that Celery beat runs every few seconds in production, here every 0.5 s."""
    from compute.jobs.services import jobs_reconcile

    settings.STUDIO_HEARTBEAT_TIMEOUT = 4
    settings.STUDIO_REPUBLISH_AFTER = 2
    loop = BackgroundLoop(jobs_reconcile, 0.5).start()
    yield loop
    loop.stop()
    assert not loop.errors, loop.errors


def node_log(studio_data_dir, node) -> str:
    path = studio_data_dir / "node-logs" / f"node-{node.pk}.log"
    return path.read_text(errors="replace") if path.exists() else ""


# --- Data ---------------------------------------------------------------------------------------------
@pytest.fixture
def penguins(workspace, owner, tmp_path):
    """The penguins as a data version, made by the real ingest engine (no worker needed)."""
    import palmerpenguins

    from data.services import data_version_from_file

    source = tmp_path / "penguins.csv"
    palmerpenguins.load_penguins().to_csv(source, index=False)
    return data_version_from_file(actor=owner, workspace=workspace, path=source, name="penguins")


def _uses_the_database(item) -> bool:
    if item.get_closest_marker("django_db") or item.get_closest_marker("database"):
        return True
    return bool({"db", "transactional_db", "django_db_reset_sequences", "live_server"} & set(item.fixturenames))


def _starts_workers(item) -> bool:
    """Tests of real worker processes (the job engine's flows and faults) run in the SQLite pass;
    on PostgreSQL the engine with real workers is exercised by tests/scaleout (its own database)."""
    if item.get_closest_marker("database"):
        return False
    markers = ("worker", "faults")
    return "broker" in item.fixturenames or any(item.get_closest_marker(m) for m in markers)


def pytest_collection_modifyitems(config, items):
    """The PostgreSQL pass runs the core suites: the tests that use the database, without real
    worker processes. A test that touches no database (the ML engine, the ingest engine, ONNX,
    signatures, the sandbox) ran in the SQLite pass already, and would only run again."""
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        return
    kept, dropped = [], []
    for item in items:
        if not _uses_the_database(item) or _starts_workers(item):
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def run_coroutine(coroutine, timeout: float = 300):
    """asyncio.run in a thread of its own: Playwright's sync API keeps an event loop running in the
    main thread once a browser test has run in this process."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result(timeout=timeout)
