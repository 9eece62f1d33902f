"""Tracking benchmark: the studio's MLflow-compatible API against `mlflow server`, same client, same run.

    OMP_NUM_THREADS=1 .venv/bin/python bench/tracking.py             # SQLite; sets up MLflow's venv once
    OMP_NUM_THREADS=1 .venv/bin/python bench/tracking.py --runs 2000 --search-calls 10   # a quick look
    OMP_NUM_THREADS=1 .venv/bin/python bench/tracking.py --database postgres://postgres@127.0.0.1:5432/bench

Two servers on this machine, one after the other, driven by the SAME client: mlflow-skinny
(the studio's dev requirement, 3.17.2), ``MlflowClient(tracking_uri=...)``, with
MLFLOW_TRACKING_TOKEN set to a studio personal API token (MLflow's server ignores it):

  * the studio: gunicorn as ``manage.py studio`` starts it (2 workers × 4 threads), on a fresh
    data directory (SQLite, or ``--database``), tracking URI ``<studio>/w/<workspace id>/mlflow``;
  * MLflow: ``mlflow server`` 3.17.2 (``--workers 2``) with a SQLite backend store and a local
    artifact folder, installed in its own virtualenv (``bench/.mlflow-server-venv``, git-ignored,
    made once with ``python3 -m venv`` + ``pip install mlflow==3.17.2``: the full ``mlflow``
    package pins a gunicorn the studio's requirements do not allow).

Figures:

  1. logging 10,000 metric points by ``log_batch`` (1,000 per call, 10 calls, one run):
     points/s, the median of ``--repeats`` runs; goal: the studio ≥ 3× MLflow's throughput;
  2. ``search_runs`` over 10,000 runs (each made through the client by ``create_run`` and one
     ``log_batch``: 3 parameters, 2 tags, 2 or 3 metrics, names with spaces and symbols, unicode
     values, a metric missing on some runs; ``--threads`` parallel clients to keep setup sane)
     with ``filter_string="metrics.rmse < 0.5"``, ``order_by=["metrics.rmse ASC"]``,
     ``max_results=1000``: p95 over ``--search-calls`` calls (after 2 warm-up calls); goal: the
     studio ≤ 300 ms and ≥ 5× faster than MLflow;
  3. the studio's run list page at 10,000 runs: the experiment page
     ``/w/<id>/experiments/<id>/`` when the studio has it, else the jobs list ``/w/<id>/jobs/``
     (printed), through gunicorn with a signed-in session, p95 over ``--page-calls`` calls; goal
     ≤ 300 ms; and its query count (in this process, Django's test client under
     ``CaptureQueriesContext``) the same at 100 runs and at 10,000 runs.

The last line: ``BENCH tracking log_batch_points_per_s=... goals=met|missed``.
"""

import argparse
import math
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from jobs import percentile, setup_django  # noqa: E402

MLFLOW_VERSION = "3.17.2"
MLFLOW_VENV = Path(os.environ.get("STUDIO_BENCH_MLFLOW_SERVER_VENV", REPO / "bench" / ".mlflow-server-venv"))
SINGLE = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
GOAL_LOG_RATIO, GOAL_SEARCH_MS, GOAL_SEARCH_RATIO, GOAL_PAGE_MS = 3.0, 300.0, 5.0, 300.0
SEARCH = {"filter_string": "metrics.rmse < 0.5", "order_by": ["metrics.rmse ASC"], "max_results": 1000}
MODELS = ["forêt aléatoire 🌲", "gradient boosting", "k-NN (k=5)", "", "réseau / MLP"]


# --- processes -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(port: int, path: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    import http.client

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server on port {port} exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", path)
            conn.getresponse().read()
            return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"nothing answers on port {port}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def ensure_mlflow_venv() -> Path:
    """`mlflow server` in its own virtualenv (once): the full package, pinned."""
    mlflow = MLFLOW_VENV / "bin" / "mlflow"
    if not mlflow.exists():
        print(f"setting up mlflow=={MLFLOW_VERSION} in {MLFLOW_VENV} (once)", flush=True)
        subprocess.run(["python3", "-m", "venv", str(MLFLOW_VENV)], check=True)
        subprocess.run(
            [str(MLFLOW_VENV / "bin" / "python"), "-m", "pip", "install", "-q", f"mlflow=={MLFLOW_VERSION}"], check=True
        )
    return mlflow


def start_mlflow(work: Path, port: int, workers: int, log) -> subprocess.Popen:
    mlflow = ensure_mlflow_venv()
    store = work / "mlflow"
    store.mkdir()
    proc = subprocess.Popen(
        [
            str(mlflow),
            "server",
            "--backend-store-uri",
            f"sqlite:///{store / 'mlflow.db'}",
            "--artifacts-destination",
            str(store / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        cwd=store,
        env={**os.environ, **SINGLE, "PATH": f"{MLFLOW_VENV / 'bin'}:{os.environ.get('PATH', '')}"},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_http(port, "/health", proc)
    return proc


def start_studio(port: int, workers: int, threads: int, log) -> subprocess.Popen:
    """gunicorn as `manage.py studio` starts it, on this process's database and data directory."""
    from portal.management.commands.studio import web_server_argv  # deferred: Django is set up by now

    proc = subprocess.Popen(
        web_server_argv(f"127.0.0.1:{port}", workers=workers, threads=threads),
        cwd=REPO,
        env={**os.environ, **SINGLE},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_http(port, "/health/", proc)
    return proc


# --- the measurements (the same code for both servers) -----------------------------------------


def client_for(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def log_batch_figure(client, experiment_id: str, *, points: int, batch: int, repeats: int) -> dict:
    """points/s logging `points` metric points by log_batch, `batch` per call, into one run."""
    from mlflow.entities import Metric

    rates = []
    for repeat in range(repeats):
        run = client.create_run(experiment_id, run_name=f"log batch #{repeat} — ✓")
        now = int(time.time() * 1000)
        batches = [
            [
                Metric(
                    key="train loss" if step % 2 == 0 else "val/accuracy",
                    value=1.0 / (1 + step) + 0.001 * (step % 7),
                    timestamp=now + step,
                    step=step,
                )
                for step in range(start, min(start + batch, points))
            ]
            for start in range(0, points, batch)
        ]
        started = time.perf_counter()
        for metrics in batches:
            client.log_batch(run.info.run_id, metrics=metrics)
        rates.append(points / (time.perf_counter() - started))
        history = client.get_metric_history(run.info.run_id, "train loss")
        if len(history) != points // 2:
            raise RuntimeError(f"run {run.info.run_id} has {len(history)} 'train loss' points, not {points // 2}")
    return {"points_per_s": statistics.median(rates), "all": rates}


def make_run(client, experiment_id: str, index: int) -> None:
    from mlflow.entities import Metric, Param, RunTag

    rng = random.Random(index)
    rmse = rng.random()  # first: search_matches() counts the runs under the filter
    now = int(time.time() * 1000)
    run = client.create_run(experiment_id, run_name=f"run {index} · α={rng.random():.2f}")
    metrics = [
        Metric("rmse", rmse, now, 0),
        Metric("mae: hold-out set", rng.random() * 10, now, 0),
    ]
    if index % 7:  # a missing value: some runs never log r2
        metrics.append(Metric("r2", rng.uniform(-1, 1), now, 0))
    client.log_batch(
        run.info.run_id,
        metrics=metrics,
        params=[
            Param("learning rate", f"{10 ** -rng.randint(1, 5):g}"),
            Param("max_depth", str(rng.randint(1, 12))),
            Param("model", MODELS[index % len(MODELS)]),
        ],
        tags=[RunTag("team", "vision & NLP" if index % 2 else "tabular"), RunTag("note", f"seed={index} ✓")],
    )


def populate(client, experiment_id: str, start: int, stop_at: int, threads: int, label: str) -> float:
    """Runs start..stop_at-1 through the client, `threads` at a time; returns the seconds taken."""
    started = time.perf_counter()
    done = [0]
    lock = threading.Lock()

    def one(index):
        make_run(client, experiment_id, index)
        with lock:
            done[0] += 1
            if done[0] % 2000 == 0:
                print(f"    {label}: {start + done[0]} runs, {time.perf_counter() - started:.0f} s", flush=True)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(start, stop_at)))
    return time.perf_counter() - started


def search_figure(client, uri: str, experiment_id: str, *, calls: int, expected_runs: int) -> dict:
    """p50/p95 of search_runs through the client (the goal), and of the same request over plain
    HTTP (the server and the transport, without the client turning 1,000 runs into objects)."""
    import requests

    def once():
        started = time.perf_counter()
        runs = client.search_runs([experiment_id], **SEARCH)
        return time.perf_counter() - started, runs

    body = {
        "experiment_ids": [experiment_id],
        "filter": SEARCH["filter_string"],
        "order_by": SEARCH["order_by"],
        "max_results": SEARCH["max_results"],
    }
    session = requests.Session()
    if os.environ.get("MLFLOW_TRACKING_TOKEN"):
        session.headers["Authorization"] = f"Bearer {os.environ['MLFLOW_TRACKING_TOKEN']}"

    def raw():
        started = time.perf_counter()
        response = session.post(f"{uri}/api/2.0/mlflow/runs/search", json=body)
        response.raise_for_status()
        return time.perf_counter() - started, len(response.content)

    once()
    once()  # warm-up
    times, runs = [], None
    for _ in range(calls):
        took, runs = once()
        times.append(took)
    values = [run.data.metrics["rmse"] for run in runs]
    if values != sorted(values) or any(v >= 0.5 for v in values):
        raise RuntimeError("search_runs answered runs out of order or outside the filter")
    if len(runs) != min(1000, expected_runs):
        raise RuntimeError(f"search_runs answered {len(runs)} runs, expected {min(1000, expected_runs)}")
    raw()
    http = [raw() for _ in range(calls)]
    http_times = [t for t, _ in http]
    return {
        "p50_ms": 1000 * statistics.median(times),
        "p95_ms": 1000 * percentile(times, 0.95),
        "http_p50_ms": 1000 * statistics.median(http_times),
        "http_p95_ms": 1000 * percentile(http_times, 0.95),
        "bytes": http[-1][1],
        "runs": len(runs),
    }


def search_matches(experiment_runs: int) -> int:
    return sum(1 for i in range(experiment_runs) if random.Random(i).random() < 0.5)


# --- the studio's page ------------------------------------------------------------------------


def run_page_path(workspace, experiment_id: str) -> tuple[str, str]:
    """The experiment page when the studio has it (helper D's), else the jobs list."""
    from django.urls import Resolver404, resolve

    path = f"/w/{workspace.pk}/experiments/{experiment_id}/"
    try:
        resolve(path)
        return path, "experiment page"
    except Resolver404:
        return f"/w/{workspace.pk}/jobs/", "jobs list (no experiment page in this build)"


def page_queries(user, path: str) -> int:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(SERVER_NAME="localhost")  # an allowed host
    client.force_login(user)
    client.get(path)  # warm caches (templates, content types) once
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    if response.status_code != 200:
        raise RuntimeError(f"{path} answered {response.status_code}")
    return len(queries)


def page_figure(port: int, user, path: str, calls: int) -> dict:
    import requests
    from django.conf import settings
    from django.test import Client

    signed_in = Client(SERVER_NAME="localhost")
    signed_in.force_login(user)  # a real session row in the database gunicorn reads
    session = requests.Session()
    session.headers["Cookie"] = (
        f"{settings.SESSION_COOKIE_NAME}={signed_in.cookies[settings.SESSION_COOKIE_NAME].value}"
    )
    url = f"http://127.0.0.1:{port}{path}"
    times = []
    for i in range(calls + 2):
        started = time.perf_counter()
        response = session.get(url, allow_redirects=False)
        took = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"{path} answered {response.status_code} through gunicorn")
        if i >= 2:
            times.append(took)
    return {
        "p50_ms": 1000 * statistics.median(times),
        "p95_ms": 1000 * percentile(times, 0.95),
        "bytes": len(response.content),
    }


# --- main -------------------------------------------------------------------------------------


def fmt(value: float, digits: int = 1) -> str:
    return "nan" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default=None, help="DATABASE_URL (default: SQLite in a fresh data directory)")
    parser.add_argument("--runs", type=int, default=10_000, help="runs searched (and listed on the page)")
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5, help="log_batch runs (the median is kept)")
    parser.add_argument("--search-calls", type=int, default=30)
    parser.add_argument("--page-calls", type=int, default=30)
    parser.add_argument("--threads", type=int, default=8, help="parallel clients making the runs")
    parser.add_argument("--mlflow-workers", type=int, default=2)
    parser.add_argument("--studio-workers", type=int, default=2)
    parser.add_argument("--studio-threads", type=int, default=4)
    parser.add_argument("--skip-mlflow", action="store_true")
    parser.add_argument("--skip-studio", action="store_true")
    args = parser.parse_args()
    for var, value in SINGLE.items():
        os.environ.setdefault(var, value)
    work = Path(tempfile.mkdtemp(prefix="studio-bench-tracking-"))
    print(f"work: {work}; load {os.getloadavg()[0]:.1f}; runs {args.runs}; points {args.points}", flush=True)
    f: dict = {}

    # The studio's side first sets up Django (its user, workspace and token), so that both
    # servers are driven by the same client with the same environment.
    if not args.skip_studio:
        data_dir = work / "studio-data"
        data_dir.mkdir()
        setup_django(data_dir, args.database)
        from django.contrib.auth import get_user_model
        from django.core.management import call_command
        from django.db import connection

        from studio.services import token_create
        from workspaces.services import workspace_create

        os.environ["DATABASE_URL"] = os.environ.get("DATABASE_URL") or f"sqlite:///{data_dir / 'studio.sqlite3'}"
        call_command("collectstatic", interactive=False, verbosity=0)  # as `manage.py studio` does
        os.environ["STUDIO_API_RATE_LIMIT"] = "1000000/minute"  # a bench drives the API flat out
        user = get_user_model().objects.create_user(f"bench tracking {time.time_ns()}")
        workspace = workspace_create(actor=user, name="bench tracking — ünïcode & co")
        os.environ["MLFLOW_TRACKING_TOKEN"] = token_create(user=user, name="bench tracking").plaintext
        print(f"studio: {connection.vendor}, data {data_dir}", flush=True)

    logs = work / "logs"
    logs.mkdir()
    if not args.skip_mlflow:
        port = free_port()
        with open(logs / "mlflow.log", "wb") as log:
            proc = start_mlflow(work, port, args.mlflow_workers, log)
            try:
                uri = f"http://127.0.0.1:{port}"
                client = client_for(uri)
                print(f"mlflow server {MLFLOW_VERSION}, {args.mlflow_workers} workers, SQLite: port {port}", flush=True)
                m = run_side(client, uri, args, "mlflow")
                f |= {f"mlflow_{k}": v for k, v in m.items()}
            finally:
                stop(proc)

    if not args.skip_studio:
        port = free_port()
        with open(logs / "studio.log", "wb") as log:
            proc = start_studio(port, args.studio_workers, args.studio_threads, log)
            try:
                uri = f"http://127.0.0.1:{port}/w/{workspace.pk}/mlflow"
                client = client_for(uri)
                print(f"studio gunicorn {args.studio_workers}×{args.studio_threads}: {uri}", flush=True)
                s = run_side(client, uri, args, "studio", page=(user, workspace, port))
                f |= s
            finally:
                stop(proc)

    report(f, args)


def run_side(client, uri: str, args, label: str, page=None) -> dict:
    out = {}
    warm_up = client.create_experiment(f"warm-up — {label} {time.time_ns()}")  # a fresh server's first calls
    populate(client, warm_up, 0, 2 * args.threads, args.threads, label)
    experiment = client.create_experiment(f"log batch — {label} ✓ #{time.time_ns()}")
    lb = log_batch_figure(client, experiment, points=args.points, batch=args.batch, repeats=args.repeats)
    out["log_batch_points_per_s"] = lb["points_per_s"]
    print(f"  {label}: log_batch {args.points} points: {lb['points_per_s']:.0f} points/s"
          f" (runs: {', '.join(f'{r:.0f}' for r in lb['all'])})", flush=True)  # fmt: skip

    experiment = client.create_experiment(f"search — {label} & 10k runs 🔎 {time.time_ns()}")
    first = min(100, args.runs)
    took = populate(client, experiment, 0, first, args.threads, label)
    if page is not None:
        user, workspace, port = page
        path, what = run_page_path(workspace, experiment)
        out["run_page"] = what
        out["run_page_queries_100"] = page_queries(user, path)
        print(
            f"  {label}: run list page {path} ({what}): {out['run_page_queries_100']} queries at {first} runs",
            flush=True,
        )
    took += populate(client, experiment, first, args.runs, args.threads, label)
    out["populate_runs_per_s"] = args.runs / took
    print(f"  {label}: {args.runs} runs made in {took:.0f} s ({out['populate_runs_per_s']:.0f} runs/s)", flush=True)
    search = search_figure(client, uri, experiment, calls=args.search_calls, expected_runs=search_matches(args.runs))
    for key in ("p50_ms", "p95_ms", "http_p50_ms", "http_p95_ms"):
        out[f"search_{key}"] = search[key]
    print(f"  {label}: search_runs ({SEARCH['filter_string']}, {search['runs']} runs answered):"
          f" through the client p50 {search['p50_ms']:.0f} ms, p95 {search['p95_ms']:.0f} ms;"
          f" plain HTTP ({search['bytes']} bytes) p50 {search['http_p50_ms']:.0f} ms,"
          f" p95 {search['http_p95_ms']:.0f} ms", flush=True)  # fmt: skip
    if page is not None:
        out["run_page_queries"] = page_queries(user, path)
        pf = page_figure(port, user, path, args.page_calls)
        out["run_page_p50_ms"], out["run_page_p95_ms"] = pf["p50_ms"], pf["p95_ms"]
        print(f"  {label}: run list page at {args.runs} runs: {out['run_page_queries']} queries,"
              f" p50 {pf['p50_ms']:.0f} ms, p95 {pf['p95_ms']:.0f} ms ({pf['bytes']} bytes)", flush=True)  # fmt: skip
    return out


def report(f: dict, args) -> None:
    nan = float("nan")
    studio_lb, mlflow_lb = f.get("log_batch_points_per_s", nan), f.get("mlflow_log_batch_points_per_s", nan)
    studio_s, mlflow_s = f.get("search_p95_ms", nan), f.get("mlflow_search_p95_ms", nan)
    log_ratio = studio_lb / mlflow_lb if mlflow_lb == mlflow_lb else nan
    search_ratio = mlflow_s / studio_s if studio_s == studio_s else nan
    page_ms = f.get("run_page_p95_ms", nan)
    queries, queries_100 = f.get("run_page_queries"), f.get("run_page_queries_100")
    met = (
        log_ratio >= GOAL_LOG_RATIO
        and studio_s <= GOAL_SEARCH_MS
        and search_ratio >= GOAL_SEARCH_RATIO
        and page_ms <= GOAL_PAGE_MS
        and queries is not None
        and queries == queries_100
    )
    studio_h, mlflow_h = f.get("search_http_p95_ms", nan), f.get("mlflow_search_http_p95_ms", nan)
    print(
        f"\nsearch_runs over plain HTTP (no client parsing), p95: studio {fmt(studio_h)} ms, mlflow {fmt(mlflow_h)} ms,"
        f" ratio {fmt(mlflow_h / studio_h if studio_h == studio_h else nan, 2)}"
    )
    if "run_page" in f:
        print(f"\nrun list page: {f['run_page']}; queries {queries_100} at 100 runs, {queries} at {args.runs} runs")
    print(
        f"\nBENCH tracking log_batch_points_per_s={fmt(studio_lb, 0)} mlflow_log_batch_points_per_s={fmt(mlflow_lb, 0)}"
        f" log_batch_ratio={fmt(log_ratio, 2)} search_p95_ms={fmt(studio_s)} mlflow_search_p95_ms={fmt(mlflow_s)}"
        f" search_ratio={fmt(search_ratio, 2)} run_page_p95_ms={fmt(page_ms)}"
        f" run_page_queries={queries if queries is not None else 'nan'} goals={'met' if met else 'missed'}"
    )


if __name__ == "__main__":
    main()
