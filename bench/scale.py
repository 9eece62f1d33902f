"""Scale inputs: what a job, a log line, a metric point and a scoring request cost the database and
the broker, measured through the studio's own paths, and a 16-node load test of the job engine.

    .venv/bin/python bench/scale.py                                  # the recorded run (~10 min on a busy machine)
    .venv/bin/python bench/scale.py --load-seconds 30 --nodes 4      # a quick look

Runs on PostgreSQL (a database of its own, `scale_bench` on --pg, created and dropped here) and a
redis-server of its own on a free port (no persistence), so that the server-wide counters it reads
see this bench only.

How it counts:
  * SQL statements: every process of the studio (this one, the agent thread in it, each node's
    Celery worker and its job process) gets a `connection.execute_wrapper` through a sitecustomize
    on PYTHONPATH that counts statements per thread and writes the counts to a file per process.
    Savepoints are statements; BEGIN/COMMIT are not (psycopg sends them without execute);
  * PostgreSQL's own counters of the database (pg_stat_database): transactions, rows inserted,
    updated, deleted and returned, and sessions (connections) opened — they cover every process;
    a backend reports them when it goes idle (up to 10 s later), so each reading waits that out;
  * bytes: the sum of the tables' sizes (pg_total_relation_size, indexes and TOAST in);
  * the broker: the Redis server's INFO commandstats (calls) and total_net_input/output_bytes.
  Each figure is the delta over a phase minus the idle background (the agent's ticks, the nodes'
  heartbeats) measured just before it for the same number of nodes, and the bench's own readings.

Phases:
  1. idle background: statements/s, connections/s and broker calls/s of 1 idle node and the agent;
  2. per job: sequential diagnostic jobs, then small Train jobs (300-row CSV, logistic regression),
     on the one warm node;
  3. per log line (JobContext.log + the watchdog's flush, 10 lines per flush) and per metric point
     (a job's ctx.metric; the MLflow-compatible REST log-metric and log-batch calls, in-process);
  4. load test: N nodes (16) on one cluster, a backlog of short diagnostic jobs (0.5 s of work each)
     kept full for --load-seconds: jobs/minute, submit → RUNNING percentiles, statements/s, broker
     calls/s and bytes/s, connections held;
  5. per scoring request: a deployed model scored through /score/<name>/ in-process, then the
     monitoring buffer's flush (the only database work scoring does).

Ends with
    BENCH scale jobs_per_min=.. queries_per_job=.. broker_bytes_per_job=.. nodes=16 ... goals=met|missed
Goal: the load test completes every job it submitted, none failed, with no node lost and no ERROR
in the nodes' logs (a connection PostgreSQL refused counts, though the reconciler recovers its
job), and the extrapolation to 100 nodes / 1,000 jobs a minute (printed) names the first resource
to run out. The full reasoning, with a recorded run, is docs/scale.md.
"""

import argparse
import json
import logging
import os
import shutil
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
sys.path.insert(0, str(REPO / "bench"))

from jobs import percentile, small_csv, wait  # noqa: E402 - the bench helpers are found from REPO/bench

# Counts SQL statements per thread of any process that imports it (a sitecustomize on PYTHONPATH),
# into <dir>/<role>-<pid>.json every 0.2 s. A forked child (Celery's pool) starts from zero.
COUNTER = """
import json, os, threading, time

_DIR = os.environ.get("SCALE_BENCH_COUNT_DIR")
_lock = threading.Lock()
_counts = {}
_writer = {"pid": None}


def _key():
    name = threading.current_thread().name
    return "watchdog" if name.endswith("-watchdog") else name


def _write_forever():
    path = os.path.join(_DIR, f"{os.environ.get('SCALE_BENCH_ROLE', 'node')}-{os.getpid()}.json")
    last = None
    while True:
        with _lock:
            snapshot = dict(_counts)
        if snapshot != last:
            with open(path + ".tmp", "w") as fh:
                json.dump(snapshot, fh)
            os.replace(path + ".tmp", path)
            last = snapshot
        time.sleep(0.2)


def _bump(key):
    with _lock:
        _counts[key] = _counts.get(key, 0) + 1
    if _writer["pid"] != os.getpid():
        _writer["pid"] = os.getpid()
        threading.Thread(target=_write_forever, name="scale-counter", daemon=True).start()


def _count(execute, sql, params, many, context):
    _bump(_key())
    return execute(sql, params, many, context)


def _created(sender, connection, **kwargs):
    _bump("connect")
    if _count not in connection.execute_wrappers:
        connection.execute_wrappers.append(_count)


def _after_fork():
    with _lock:
        _counts.clear()


if _DIR:
    from django.db.backends.signals import connection_created

    connection_created.connect(_created, weak=False)
    os.register_at_fork(after_in_child=_after_fork)
"""

SETTLE_SECONDS = 11  # PostgreSQL 15 backends report their counters within 10 s of going idle


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Counters:
    """Readings of every counter the bench uses; `delta(a, b)` is b - a, key by key."""

    def __init__(self, count_dir: Path, redis_client, dbname: str):
        self.count_dir, self.redis, self.dbname = count_dir, redis_client, dbname

    def statements(self) -> dict:
        by_role: dict[str, int] = {}
        for path in self.count_dir.glob("*.json"):
            role = path.name.split("-")[0]
            try:
                counts = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # being replaced: the next reading has it
            for thread, n in counts.items():
                if thread == "connect":
                    key = "connects"
                elif role == "bench":
                    key = {"agent": "agent", "scheduler": "scheduler", "MainThread": "bench"}.get(thread, "bench_other")
                else:
                    key = "node"
                by_role[key] = by_role.get(key, 0) + n
        return by_role

    def read(self, settle: bool = False) -> dict:
        from django.db import connection

        if settle:
            time.sleep(SETTLE_SECONDS)
        time.sleep(0.5)  # the counter files are written every 0.2 s
        r = {f"sql_{k}": v for k, v in self.statements().items()}
        r["sql"] = sum(v for k, v in r.items() if k != "sql_connects")
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT xact_commit + xact_rollback, tup_inserted, tup_updated, tup_deleted, tup_returned,"
                " tup_fetched, sessions FROM pg_stat_database WHERE datname = %s",
                [self.dbname],
            )
            names = ("pg_xacts", "pg_inserted", "pg_updated", "pg_deleted", "pg_returned", "pg_fetched", "pg_sessions")
            r |= dict(zip(names, cursor.fetchone(), strict=True))
            cursor.execute(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'"
            )
            r["table_bytes"] = int(cursor.fetchone()[0])
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [self.dbname])
            r["pg_connections"] = cursor.fetchone()[0]
        stats = self.redis.info("stats")
        commands = self.redis.info("commandstats")
        r["redis_calls"] = sum(v["calls"] for v in commands.values())
        r["redis_in_bytes"] = stats["total_net_input_bytes"]
        r["redis_out_bytes"] = stats["total_net_output_bytes"]
        r["at"] = time.monotonic()
        return r

    @staticmethod
    def delta(a: dict, b: dict) -> dict:
        d = {k: b.get(k, 0) - a.get(k, 0) for k in set(a) | set(b) if k != "pg_connections"}
        d["seconds"] = b["at"] - a["at"]
        return d


def minus(d: dict, rate: dict, seconds: float, reading: dict) -> dict:
    """A phase's delta less the idle background over its duration and the bench's own readings."""
    out = {}
    for k, v in d.items():
        if k in ("seconds", "at", "table_bytes"):
            out[k] = v
            continue
        out[k] = v - rate.get(k, 0) * seconds - reading.get(k, 0)
    return out


class Agent:
    """The run command's agent loop (compute/agent.py), on a thread named "agent" of this process."""

    def __init__(self, env: dict, log_dir: Path):
        from compute.agent import LocalAgent

        self.agent = LocalAgent(log_dir=str(log_dir), extra_env=env)
        self.stop_event = threading.Event()
        # Paused, it skips its ticks: warm nodes take jobs from the broker without it, and the
        # per-job figures are free of its background (measured on its own).
        self.paused = threading.Event()
        self.thread = threading.Thread(target=self._run, name="agent", daemon=True)
        self.scheduler = threading.Thread(target=self._reconcile, name="scheduler", daemon=True)

    def _run(self):
        from django.conf import settings

        from studio.db import close_broken_connections

        while not self.stop_event.is_set():  # LocalAgent.run_forever, with a pause
            if not self.paused.is_set():
                close_broken_connections()
                try:
                    self.agent.tick()
                except Exception:  # noqa: BLE001 - as run_forever: the agent outlives a failed tick (DB refused)
                    logging.getLogger("studio.agent").exception("agent tick failed")
            time.sleep(settings.STUDIO_AGENT_INTERVAL)

    def _reconcile(self):
        """The scheduler's periodic reconcile (CELERY_BEAT_SCHEDULE "jobs-reconcile"), here on a
        thread: it republishes a queued job whose message a node took but could not run."""
        from django.conf import settings
        from django.db import close_old_connections

        from compute.jobs.services import jobs_reconcile

        every = settings.CELERY_BEAT_SCHEDULE["jobs-reconcile"]["schedule"]
        while not self.stop_event.wait(every):
            if not self.paused.is_set():
                close_old_connections()
                try:
                    jobs_reconcile()
                except Exception:  # noqa: BLE001 - as the scheduler's task: the next run tries again
                    logging.getLogger("studio.jobs").exception("reconcile failed")

    def __enter__(self):
        self.thread.start()
        self.scheduler.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.thread.join()
        self.scheduler.join()
        self.agent.stop_all()


def node_log_errors(log_dir: Path) -> tuple[int, int]:
    """ERROR lines in the nodes' logs, and those of them that are PostgreSQL refusing a connection."""
    errors = refusals = 0
    for path in log_dir.glob("node-*.log"):
        for line in path.read_text(errors="replace").splitlines():
            if " ERROR " in line:
                errors += 1
                refusals += "too many clients" in line
    return errors, refusals


def per_unit(d: dict, n: int) -> dict:
    return {k: v / n for k, v in d.items() if k not in ("seconds", "at")}


def mlflow_client(workspace, token: str):
    from django.test import Client

    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_HOST="localhost")
    base = f"/w/{workspace.pk}/mlflow/api/2.0/mlflow/"

    def post(path: str, body: dict) -> dict:
        response = client.post(base + path, json.dumps(body), content_type="application/json")
        if response.status_code != 200:
            raise RuntimeError(f"{path}: {response.status_code} {response.content[:300]!r}")
        return response.json()

    return post


def register_model(workspace, owner):
    """A registered model version with the files the studio serves (as tests/endpoints do)."""
    import numpy as np
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from modelformat.drift import reference_profile
    from modelformat.modelio import save_model
    from modelformat.signature import build_signature
    from training.models import ModelVersion, RegisteredModel
    from training.registry_services import model_version_dir

    rng = np.random.default_rng(0)
    n = 400
    X = pd.DataFrame(
        {
            "tenure": rng.integers(0, 72, n).astype(float),
            "charges": rng.normal(70, 20, n).round(2),
            "plan": rng.choice(["basic", "pro", "team plan"], n),
        }
    )
    y = pd.Series(np.where((X["tenure"] < 12) | (rng.random(n) < 0.1), "yes", "no"), name="churn")
    features = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), ["tenure", "charges"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
        ]
    )
    model = Pipeline([("features", features), ("model", LogisticRegression())]).fit(X, y)
    types = {"tenure": "numeric", "charges": "numeric", "plan": "categorical"}
    signature = build_signature(X, column_types=types, target="churn", classes=sorted(y.unique()))
    registered = RegisteredModel.objects.create(workspace=workspace, name="scale churn")
    version = ModelVersion.objects.create(
        model=registered,
        version=1,
        algorithm="logistic_regression",
        target_column="churn",
        signature=signature,
        classes=signature["classes"],
        metrics={},
        sha256="pending",
        created_by=owner,
    )
    folder = model_version_dir(version)
    folder.mkdir(parents=True, exist_ok=True)
    version.sha256 = save_model(model, folder / "model.skops")
    (folder / "reference_profile.json").write_text(json.dumps(reference_profile(X, signature)))
    version.save()
    return version


def fmt(d: dict, keys) -> str:
    return "  ".join(f"{k}={d.get(k, 0):.2f}" for k in keys)


KEYS = (
    "sql",
    "sql_submit",
    "sql_agent",
    "sql_scheduler",
    "sql_node",
    "sql_connects",
    "pg_xacts",
    "pg_inserted",
    "pg_updated",
    "pg_returned",
)
KEYS += ("pg_sessions", "table_bytes", "redis_calls", "redis_in_bytes", "redis_out_bytes")


def run(args, work: Path, counters: Counters, env: dict) -> dict:
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from compute.jobs.diagnostic import DIAGNOSTIC
    from compute.jobs.models import Job, JobStatus
    from compute.jobs.runner import JobContext
    from compute.jobs.services import job_submit
    from compute.models import Node, NodeStatus, TargetKind
    from compute.services import target_create, target_update
    from data.services import data_version_from_file
    from studio.services import token_create
    from workspaces.services import workspace_create

    f: dict = {}
    user = get_user_model().objects.create_user(f"scale bench {time.time_ns()}")
    workspace = workspace_create(actor=user, name="scale — bench & co")
    cluster = target_create(
        actor=user,
        workspace=workspace,
        kind=TargetKind.CLUSTER,
        name="scale-nodes",
        min_nodes=1,
        max_nodes=args.nodes,
        idle_seconds_before_scaledown=600,
    ).target
    table = small_csv(work / "train table.csv")
    version = data_version_from_file(actor=user, workspace=workspace, path=table, name="scale train")
    train_spec = {
        "data_version_id": version.pk,
        "target_column": "label",
        "algorithm": "logistic_regression",
        "hyperparameters": {},
        "validation": {"method": "holdout", "holdout_fraction": 0.25},
    }

    # The bench's own reading: three readings back to back, the last two a reading apart.
    counters.read()
    r1 = counters.read()
    reading = Counters.delta(r1, counters.read())
    reading = {k: v for k, v in reading.items() if k not in ("seconds", "table_bytes")}

    def idle_rate(seconds: float) -> dict:
        a = counters.read(settle=True)
        time.sleep(seconds)
        d = Counters.delta(a, counters.read(settle=True))
        return {k: (v - reading.get(k, 0)) / d["seconds"] for k, v in d.items() if k not in ("seconds", "at")}

    def run_jobs(kind: str, spec: dict, n: int) -> dict:
        """Submit n jobs one after another, each once the last completed; the submit's statements
        are captured apart from the bench's own polling (one autocommit statement a poll)."""
        submit_sql = polls = 0
        for _ in range(n):
            with CaptureQueriesContext(connection) as submitted:
                job = job_submit(actor=user, workspace=workspace, kind=kind, target=cluster, spec=spec)
            submit_sql += len(submitted)
            while True:
                polls += 1
                done = Job.objects.filter(pk=job.pk, status__in=JobStatus.finished()).first()
                if done:
                    break
                time.sleep(0.02)
            if done.status != JobStatus.COMPLETED:
                raise RuntimeError(f"{kind} job {done.pk} {done.status}: {done.error}")
        return {"submit_sql": submit_sql, "polls": polls}

    def job_cost(d: dict, ran: dict, n: int) -> dict:
        """Per job: the submit, the agent and the node; the bench's polls are not the studio's cost."""
        cost = per_unit(minus(d, f["idle1"], d["seconds"], reading), n)
        cost["sql_submit"] = ran["submit_sql"] / n
        cost["sql"] = cost["sql_submit"] + cost.get("sql_agent", 0) + cost.get("sql_node", 0)
        cost["pg_xacts"] -= ran["polls"] / n  # a poll is one statement in a transaction of its own
        cost["pg_returned"] -= ran["polls"] / n
        return cost

    log_dir = work / "node-logs"
    log_dir.mkdir()
    with Agent(env, log_dir) as agent:
        wait(lambda: Node.objects.filter(target=cluster, status=NodeStatus.IDLE).exists(), 120, "one idle node")
        # A first job of each kind loads its module on the node: not what a job costs afterwards.
        run_jobs(DIAGNOSTIC, {}, 2)
        run_jobs("train", train_spec, 1)

        # 1. The idle background: the agent's, then (the agent paused) one idle node's.
        running = idle_rate(args.idle_seconds)
        agent.paused.set()
        f["idle1"] = idle_rate(args.idle_seconds)
        f["agent1"] = {k: v - f["idle1"].get(k, 0) for k, v in running.items()}  # with the scheduler
        f["idle1_connections"] = counters.read()["pg_connections"]
        print("agent, per second:  " + fmt(f["agent1"], KEYS), flush=True)
        print("idle, 1 node, per second:  " + fmt(f["idle1"], KEYS), flush=True)

        # 2. Per job.
        for kind, spec, n in ((DIAGNOSTIC, {}, args.diag_jobs), ("train", train_spec, args.train_jobs)):
            a = counters.read(settle=True)
            ran = run_jobs(kind, spec, n)
            d = Counters.delta(a, counters.read(settle=True))
            f[f"job_{kind}"] = job_cost(d, ran, n)
            print(f"per {kind} job ({n} jobs):  " + fmt(f[f"job_{kind}"], KEYS), flush=True)

        # 3. Per log line and per metric point, through the job's context (the node's path).
        job = Job.objects.filter(kind=DIAGNOSTIC, status=JobStatus.COMPLETED).latest("pk")
        ctx = JobContext(job)
        a = counters.read()
        for i in range(args.log_lines):
            ctx.log(f"epoch {i // 10}: loss=0.{i:04d} — a line of ordinary length, with ünïcode & symbols")
            if i % 10 == 9:
                ctx.flush()
        d = Counters.delta(a, counters.read())
        f["log_line"] = per_unit(minus(d, f["idle1"], d["seconds"], reading), args.log_lines)
        print("per log line (10 a flush):  " + fmt(f["log_line"], KEYS), flush=True)

        a = counters.read()
        for i in range(args.metric_points):
            ctx.metric("loss" if i % 2 else "accuracy", 1 / (i + 1), step=i // 2)
            if i % 10 == 9:
                ctx.flush()
        d = Counters.delta(a, counters.read())
        f["job_metric"] = per_unit(minus(d, f["idle1"], d["seconds"], reading), args.metric_points)
        print("per job metric (10 a flush):  " + fmt(f["job_metric"], KEYS), flush=True)

    # Through the MLflow-compatible REST API (what mlflow.log_metric and the studio client send).
    os.environ["STUDIO_API_RATE_LIMIT"] = "1000000/minute"
    token = token_create(user=user, name="scale bench").plaintext
    post = mlflow_client(workspace, token)
    experiment = post("experiments/create", {"name": "scale bench"})["experiment_id"]
    run_id = post("runs/create", {"experiment_id": experiment, "start_time": int(time.time() * 1000)})["run"]["info"][
        "run_id"
    ]
    now_ms = int(time.time() * 1000)
    a = counters.read()
    for i in range(args.metric_points):
        post("runs/log-metric", {"run_id": run_id, "key": "loss", "value": 1 / (i + 1), "timestamp": now_ms, "step": i})
    d = Counters.delta(a, counters.read())
    f["rest_metric"] = per_unit(minus(d, {}, 0, reading), args.metric_points)
    print("per REST log-metric call:  " + fmt(f["rest_metric"], KEYS), flush=True)
    a = counters.read()
    batches = max(1, args.metric_points // 100)
    for b in range(batches):
        metrics = [{"key": f"m{i % 5}", "value": i * 0.5, "timestamp": now_ms, "step": b * 100 + i} for i in range(100)]
        post("runs/log-batch", {"run_id": run_id, "metrics": metrics})
    d = Counters.delta(a, counters.read())
    f["rest_batch_point"] = per_unit(minus(d, {}, 0, reading), batches * 100)
    print("per point, REST log-batch of 100:  " + fmt(f["rest_batch_point"], KEYS), flush=True)

    # 4. The load test: N nodes, a full backlog of short diagnostic jobs.
    settings.STUDIO_HOST_NODE_CORES = max(settings.STUDIO_HOST_NODE_CORES, args.nodes)
    settings.STUDIO_HOST_NODE_MEMORY_MIB = max(settings.STUDIO_HOST_NODE_MEMORY_MIB, args.nodes * 1024)
    target_update(actor=user, target=cluster, min_nodes=args.nodes, max_nodes=args.nodes)
    with Agent(env, log_dir) as agent:
        t0 = time.monotonic()
        wait(
            lambda: Node.objects.filter(target=cluster, status=NodeStatus.IDLE).count() >= args.nodes,
            300,
            f"{args.nodes} idle nodes",
        )
        f["nodes_up_s"] = time.monotonic() - t0
        print(f"{args.nodes} nodes idle after {f['nodes_up_s']:.1f} s", flush=True)
        run_jobs(DIAGNOSTIC, {}, 2)
        running = idle_rate(args.idle_seconds)
        agent.paused.set()
        f["idleN"] = idle_rate(args.idle_seconds)
        f["agentN"] = {k: v - f["idleN"].get(k, 0) for k, v in running.items()}
        f["idleN_connections"] = counters.read()["pg_connections"]
        agent.paused.clear()  # the load test runs the whole engine
        print(f"agent, {args.nodes} nodes, per second:  " + fmt(f["agentN"], KEYS), flush=True)
        print(f"idle, {args.nodes} nodes, per second:  " + fmt(f["idleN"], KEYS), flush=True)

        spec = {"sleep_seconds": args.job_seconds}
        peak_connections = [0, 0]  # this database's, the server's (other users of it included)

        def stage(seconds: float, rate: float | None) -> dict:
            """Submit for `seconds`: keep the backlog full (rate None), or one job every 1/rate s."""
            submitted: list[int] = []
            a = counters.read()
            window_start = time.monotonic()
            db_start = timezone.now()
            loops = 0  # each loop's statements (the backlog count, the connection count) are the bench's
            while time.monotonic() - window_start < seconds:
                loops += 1
                if rate is None:
                    missing = args.backlog - (
                        Job.objects.filter(pk__in=submitted[-4 * args.backlog :])
                        .exclude(status__in=JobStatus.finished())
                        .count()
                    )
                else:
                    missing = int((time.monotonic() - window_start) * rate) + 1 - len(submitted)
                for _ in range(max(0, missing)):
                    submitted.append(
                        job_submit(actor=user, workspace=workspace, kind=DIAGNOSTIC, target=cluster, spec=spec).pk
                    )
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT count(*) FILTER (WHERE datname = %s), count(*) FILTER (WHERE backend_type ="
                        " 'client backend') FROM pg_stat_activity",
                        [counters.dbname],
                    )
                    ours, everyone = cursor.fetchone()
                    peak_connections[0] = max(peak_connections[0], ours)
                    peak_connections[1] = max(peak_connections[1], everyone)
                time.sleep(0.2 if rate is None else 0.02)
            db_end = timezone.now()
            window = time.monotonic() - window_start
            b = counters.read()
            wait(
                lambda: not Job.objects.filter(pk__in=submitted).exclude(status__in=JobStatus.finished()).exists(),
                300,
                "the backlog drained",
            )
            jobs = list(Job.objects.filter(pk__in=submitted))
            # A job whose message a node took but could not claim (the database refused it a
            # connection) waits for the reconciler to publish it again.
            republished = sum(1 for j in jobs if j.published_at and (j.published_at - j.queued_at).total_seconds() > 2)
            d = Counters.delta(a, b)
            bench_sql = (2 if rate is None else 1) * loops
            d["sql"] -= bench_sql
            d["pg_xacts"] -= bench_sql
            in_window = [j for j in jobs if j.finished_at and db_start <= j.finished_at <= db_end]
            queue = [(j.running_at - j.created_at).total_seconds() for j in jobs if j.running_at]
            return {
                "submitted": len(jobs),
                "republished": republished,
                "waited_over_5s": sum(
                    1 for j in jobs if j.running_at and (j.running_at - j.created_at).total_seconds() > 5
                ),
                "failed": sum(1 for j in jobs if j.status != JobStatus.COMPLETED),
                "jobs_per_min": len(in_window) / (window / 60),
                "queue_p50_ms": 1000 * statistics.median(queue),
                "queue_p95_ms": 1000 * percentile(queue, 0.95),
                "queue_p99_ms": 1000 * percentile(queue, 0.99),
                "sql_per_s": d["sql"] / d["seconds"],
                "pg_xacts_per_s": d["pg_xacts"] / d["seconds"],
                "pg_sessions_per_s": d["pg_sessions"] / d["seconds"],
                "pg_rows_written_per_s": (d["pg_inserted"] + d["pg_updated"] + d["pg_deleted"]) / d["seconds"],
                "redis_calls_per_s": d["redis_calls"] / d["seconds"],
                "redis_bytes_per_s": (d["redis_in_bytes"] + d["redis_out_bytes"]) / d["seconds"],
                "seconds": window,
                "sql_per_job": d["sql"] / max(1, len(in_window)),
                "table_bytes_per_job": d["table_bytes"] / max(1, len(in_window)),
            }

        # Saturated: the most the engine moves; then open loop at half that, for queueing latency.
        f["load"] = stage(args.load_seconds, None)
        print("load, backlog full: " + "  ".join(f"{k}={v:.1f}" for k, v in f["load"].items()), flush=True)
        half = f["load"]["jobs_per_min"] / 60 / 2
        f["load_half"] = stage(args.load_seconds, half)
        print(f"load, {half:.1f} jobs/s: " + "  ".join(f"{k}={v:.1f}" for k, v in f["load_half"].items()), flush=True)
        f["load"]["peak_connections"] = peak_connections[0]
        f["load"]["server_peak_connections"] = peak_connections[1]
        f["load"]["node_errors"], f["load"]["db_refusals"] = node_log_errors(log_dir)
        f["load"]["lost_nodes"] = Node.objects.filter(target=cluster, status=NodeStatus.LOST).count()
        # The same idle nodes after some hundreds of jobs: connections that outlive their jobs show here.
        f["load"]["connections_after"] = counters.read(settle=True)["pg_connections"]
        f["load"]["connections_before"] = f["idleN_connections"]
        keys = ("peak_connections", "server_peak_connections", "connections_before", "connections_after")
        keys += ("node_errors", "db_refusals", "lost_nodes")
        print("load, connections and errors: " + "  ".join(f"{k}={f['load'][k]}" for k in keys), flush=True)
        target_update(actor=user, target=cluster, min_nodes=0)

    # 5. Per scoring request: the request path, then the monitoring buffer's flush.
    from endpoints import services as endpoint_services
    from endpoints import serving

    settings.STUDIO_MONITOR_FLUSH_SECONDS = 0  # flushed by hand below, as the flush thread would
    model_version = register_model(workspace, user)
    inference = target_create(actor=user, workspace=workspace, kind=TargetKind.INFERENCE, name="scale-serving").target
    created = endpoint_services.endpoint_create(
        actor=user, workspace=workspace, name="scale-churn", requests_per_minute=1_000_000
    )
    endpoint_services.deployment_create(
        actor=user, endpoint=created.endpoint, name="blue", model_version=model_version, target=inference
    )
    client = Client(HTTP_HOST="localhost")
    body = json.dumps(
        [{"tenure": 3, "charges": 80.5, "plan": "team plan"}, {"tenure": 40, "charges": None, "plan": "basic"}]
    )

    def score():
        response = client.post(
            "/score/scale-churn/", body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {created.primary}"
        )
        if response.status_code != 200:
            raise RuntimeError(f"score: {response.status_code} {response.content[:300]!r}")

    score()
    serving.monitor.flush()
    with CaptureQueriesContext(connection) as requests_queries:
        for _ in range(args.score_requests):
            score()
    with CaptureQueriesContext(connection) as flush_queries:
        rows = serving.monitor.flush()
    f["scoring"] = {
        "requests": args.score_requests,
        "queries_per_request": len(requests_queries) / args.score_requests,
        "flush_queries": len(flush_queries),
        "flush_rows": rows,
    }
    print("scoring: " + "  ".join(f"{k}={v:.3f}" for k, v in f["scoring"].items()), flush=True)

    # The average stored row (a heap tuple, without indexes) of the tables that grow with use.
    from compute.jobs.models import JobEvent, JobLogLine, LatestMetric, Metric
    from endpoints.models import MonitoringBucket

    f["row_bytes"] = {}
    for model in (Job, JobEvent, JobLogLine, Metric, LatestMetric, MonitoringBucket):
        table = connection.ops.quote_name(model._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT avg(pg_column_size(t.*)), count(*) FROM {table} t")  # noqa: S608 - a model's table
            average, count = cursor.fetchone()
        f["row_bytes"][model._meta.db_table] = {"avg": float(average or 0), "rows": count}
    print("row bytes: " + "  ".join(f"{k}={v['avg']:.0f} ({v['rows']} rows)" for k, v in f["row_bytes"].items()))
    return f


def extrapolate(f: dict, nodes: int, max_connections: int) -> dict:
    """The arithmetic of docs/scale.md: 100 nodes, 1,000 jobs a minute, 100k runs."""
    idle = f["idleN"]  # the agent paused: the nodes' heartbeats only
    per_node = {k: idle.get(k, 0) / nodes for k in ("sql", "pg_xacts", "pg_sessions", "redis_calls")}
    bench_connections = 2  # this process's main thread and its agent thread
    idle_conns = (f["idleN_connections"] - bench_connections) / nodes
    busy_conns = (f["load"]["peak_connections"] - bench_connections) / nodes
    job = f["job_diagnostic"]
    train = f["job_train"]
    jobs_per_s = 1000 / 60
    agent = f["agentN"]
    e = {
        "per_node_idle_sql_per_s": per_node["sql"],
        "per_node_idle_sessions_per_s": per_node["pg_sessions"],
        "per_node_connections_idle": idle_conns,
        "per_node_connections_busy": busy_conns,
        "connections_100_nodes": 100 * busy_conns + bench_connections,
        "max_connections": max_connections,
        "sql_per_s_1000_jpm": jobs_per_s * job["sql"] + 100 * per_node["sql"] + agent["sql"],
        "xacts_per_s_1000_jpm": jobs_per_s * job["pg_xacts"] + 100 * per_node["pg_xacts"] + agent["pg_xacts"],
        "sessions_per_s_1000_jpm": jobs_per_s * job["pg_sessions"]
        + 100 * per_node["pg_sessions"]
        + agent["pg_sessions"],
        "rows_written_per_s_1000_jpm": jobs_per_s * (job["pg_inserted"] + job["pg_updated"]),
        "table_bytes_per_day_1000_jpm": 1440 * 1000 * f["load"]["table_bytes_per_job"],
        "train_rows_100k_runs": 100_000 * train["pg_inserted"],
        "broker_calls_per_s_1000_jpm": jobs_per_s * job["redis_calls"] + 100 * per_node["redis_calls"],
        "broker_bytes_per_s_1000_jpm": jobs_per_s * (job["redis_in_bytes"] + job["redis_out_bytes"]),
    }
    # The first limit crossed: PostgreSQL's connection slots are a hard limit (new connections are
    # refused); statements and connections opened per second are soft (latency grows).
    e["first_bottleneck"] = (
        "postgres_connections" if e["connections_100_nodes"] > max_connections else "postgres_connection_churn"
    )
    return e


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432/", help="a PostgreSQL server (no db)")
    parser.add_argument("--dbname", default="scale_bench")
    parser.add_argument("--nodes", type=int, default=16)
    parser.add_argument("--load-seconds", type=float, default=60, help="each of the two load stages")
    parser.add_argument("--backlog", type=int, default=32, help="jobs kept waiting or running in the load test")
    parser.add_argument("--job-seconds", type=float, default=0.5, help="work per load-test job")
    parser.add_argument("--idle-seconds", type=float, default=8)
    parser.add_argument("--diag-jobs", type=int, default=30)
    parser.add_argument("--train-jobs", type=int, default=5)
    parser.add_argument("--log-lines", type=int, default=2000)
    parser.add_argument("--metric-points", type=int, default=500)
    parser.add_argument("--score-requests", type=int, default=500)
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")

    import psycopg
    import redis

    work = Path(tempfile.mkdtemp(prefix="studio-bench-scale-"))
    count_dir = work / "counts"
    count_dir.mkdir()
    (work / "site").mkdir()
    (work / "site" / "sitecustomize.py").write_text(COUNTER)
    redis_port = free_port()
    redis_proc = subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    admin = psycopg.connect(args.pg + "postgres", autocommit=True)
    admin.execute(f'DROP DATABASE IF EXISTS "{args.dbname}"')
    admin.execute(f'CREATE DATABASE "{args.dbname}"')
    database_url = args.pg + args.dbname
    try:
        client = redis.Redis.from_url(redis_url)
        wait(lambda: _pings(client), 10, "redis-server")
        env = {
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": redis_url,
            "STUDIO_DATA_DIR": str(work / "data"),
            "PYTHONPATH": os.pathsep.join([str(work / "site"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            "SCALE_BENCH_COUNT_DIR": str(count_dir),
            "SCALE_BENCH_ROLE": "node",
        }
        os.environ.update(
            {k: v for k, v in env.items() if k != "PYTHONPATH"} | {"SCALE_BENCH_ROLE": "bench"},
        )
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
        sys.path.insert(0, str(work / "site"))
        import sitecustomize  # noqa: F401 - the counter, in this process too (it was not on the path at start)

        if not getattr(sitecustomize, "_DIR", None):
            raise RuntimeError("another sitecustomize shadows the bench's counter")
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection

        call_command("migrate", interactive=False, verbosity=0)
        with connection.cursor() as cursor:
            cursor.execute("SHOW max_connections")
            max_connections = int(cursor.fetchone()[0])
        load = os.getloadavg()
        print(f"PostgreSQL {connection.pg_version}, Redis on :{redis_port}, {os.cpu_count()} CPUs, load {load}")
        counters = Counters(count_dir, client, args.dbname)
        f = run(args, work, counters, env)
        e = extrapolate(f, args.nodes, max_connections)
        print("\nextrapolated (100 nodes, 1,000 jobs/min): " + "  ".join(f"{k}={v}" for k, v in e.items()))
        (work / "figures.json").write_text(json.dumps({"figures": f, "extrapolated": e}, indent=2, default=str))
        print(f"figures: {work / 'figures.json'}")
        load = f["load"]
        half = f["load_half"]
        met = (
            load["failed"] == half["failed"] == 0
            and load["lost_nodes"] == 0
            and load["node_errors"] == 0  # e.g. PostgreSQL refusing a connection: recovered, but an error
            and load["submitted"] > 0
            and half["submitted"] > 0
            and bool(e["first_bottleneck"])
        )
        job = f["job_diagnostic"]
        print(
            f"\nBENCH scale jobs_per_min={load['jobs_per_min']:.0f} queries_per_job={job['sql']:.1f}"
            f" train_queries_per_job={f['job_train']['sql']:.1f}"
            f" broker_bytes_per_job={job['redis_in_bytes'] + job['redis_out_bytes']:.0f}"
            f" half_rate_queue_p50_ms={half['queue_p50_ms']:.0f} half_rate_queue_p95_ms={half['queue_p95_ms']:.0f}"
            f" sql_per_s={load['sql_per_s']:.0f} broker_calls_per_s={load['redis_calls_per_s']:.0f}"
            f" failed={load['failed'] + half['failed']} db_refusals={load['db_refusals']} nodes={args.nodes} first_bottleneck={e['first_bottleneck']}"
            f" goals={'met' if met else 'missed'}"
        )
    finally:
        from django.db import connections

        connections.close_all()  # Django's connections are lazy: safe before set-up too
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [args.dbname],
        )
        admin.execute(f'DROP DATABASE IF EXISTS "{args.dbname}"')
        admin.close()
        redis_proc.send_signal(signal.SIGTERM)
        redis_proc.wait(timeout=30)
        shutil.rmtree(work / "data", ignore_errors=True)


def _pings(client) -> bool:
    try:
        return bool(client.ping())
    except Exception:  # noqa: BLE001 - not up yet
        return False


if __name__ == "__main__":
    main()
