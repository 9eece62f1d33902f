"""Job system benchmark: how fast jobs start and flow through a cluster of real node processes.

    .venv/bin/python bench/jobs.py                      # Redis broker (the goals), then the embedded one
    .venv/bin/python bench/jobs.py --brokers redis --database postgres://postgres@127.0.0.1:5432/bench

Measures, per broker, in one run on a fresh data directory:
  * warm node: submit → RUNNING latency, p50 and p95 over sequential jobs (goal p50 ≤ 150 ms, p95 ≤ 500 ms);
  * cold: submit → RUNNING from zero nodes (goal ≤ 5 s);
  * cold, repeated: submit → RUNNING from zero nodes, --cold-runs times (4) each for a diagnostic job
    and for a Train job (a small CSV, logistic regression), each on a new cluster whose node is
    stopped afterwards; the worst is reported (goals ≤ 2 s and ≤ 5 s). A node imports a kind's
    module (and the ML stack) when a job of it first runs, so the Train job pays that import;
    these goals count too (goals=met only when they are met);
  * throughput: 200 diagnostic jobs through a 2-node cluster (goal ≥ 20 jobs/s);
  * the studio's overhead per job: a job's submit → COMPLETED p50 divided by a bare Celery task's
    round trip (a canary task that writes one row) p50 on the same node, in the same run.
The goals hold with Redis; the embedded broker's figures are printed beside them.
"""

import argparse
import csv
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from compute.jobs.diagnostic import DIAGNOSTIC  # noqa: E402 - the studio's packages are found from REPO


def percentile(values, q):
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def setup_django(data_dir: Path, database_url: str | None):
    os.environ["STUDIO_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    else:
        os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    if database_url and database_url.startswith("postgres"):
        call_command("flush", interactive=False, verbosity=0)
    call_command("migrate", interactive=False, verbosity=0)


def use_broker(kind: str, data_dir: Path, redis_url: str) -> dict:
    from django.conf import settings

    from studio.celery import app

    if kind == "redis":
        import redis

        redis.Redis.from_url(redis_url).flushdb()
        url, options = redis_url, {"visibility_timeout": settings.CELERY_VISIBILITY_TIMEOUT}
    else:
        url, options = "filesystem://", dict(settings.CELERY_BROKER_TRANSPORT_OPTIONS)
        if "data_folder_in" not in options:
            broker = data_dir / "broker"
            for sub in ("queue", "processed", "control"):
                (broker / sub).mkdir(parents=True, exist_ok=True)
            options = {
                "data_folder_in": str(broker / "queue"),
                "data_folder_out": str(broker / "queue"),
                "processed_folder": str(broker / "processed"),
                "control_folder": str(broker / "control"),
                "store_processed": False,
                "polling_interval": settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("polling_interval", 0.05)
                if settings.EMBEDDED_BROKER
                else 0.05,
            }
    app.conf.broker_url = url
    app.conf.broker_transport_options = options
    app._after_fork()
    return {"CELERY_BROKER_URL": url}


class AgentLoop:
    def __init__(self, env: dict, log_dir: Path):
        from compute.agent import LocalAgent

        self.agent = LocalAgent(log_dir=str(log_dir), extra_env=env)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        from django.db import close_old_connections

        while not self.stop_event.wait(0.1):
            close_old_connections()
            self.agent.tick()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.thread.join()
        self.agent.stop_all()


def wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.002)
    raise TimeoutError(what)


def small_csv(path: Path, rows: int = 300) -> Path:
    """A small classification table: three numeric features and a two-class label."""
    rng = random.Random(7)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["x1", "x2", "x3", "label"])
        for _ in range(rows):
            x1, x2, x3 = rng.gauss(0, 1), rng.gauss(0, 1), rng.uniform(0, 10)
            writer.writerow(
                [f"{x1:.4f}", f"{x2:.4f}", f"{x3:.3f}", "yes" if x1 + 0.5 * x2 + rng.gauss(0, 0.5) > 0 else "no"]
            )
    return path


def cold_starts(*, user, workspace, job_kind: str, spec: dict, runs: int, name: str) -> list[float]:
    """submit → RUNNING from zero nodes, `runs` times: each on a new cluster, whose node is asked to
    leave once its job completed (and has exited before the next run starts)."""
    from compute.jobs.models import Job, JobStatus
    from compute.jobs.services import job_submit
    from compute.models import Node, NodeStatus, TargetKind
    from compute.services import node_release, target_create

    seconds = []
    for run in range(runs):
        cluster = target_create(
            actor=user,
            workspace=workspace,
            kind=TargetKind.CLUSTER,
            name=f"{name}-{run}",
            min_nodes=0,
            max_nodes=1,
            idle_seconds_before_scaledown=600,
        ).target
        job = job_submit(actor=user, workspace=workspace, kind=job_kind, target=cluster, spec=spec)
        running = wait(lambda j=job: Job.objects.filter(pk=j.pk, running_at__isnull=False).first(), 120, "running")
        seconds.append((running.running_at - running.created_at).total_seconds())
        done = wait(lambda j=job: Job.objects.filter(pk=j.pk, status__in=JobStatus.finished()).first(), 300, "done")
        if done.status != JobStatus.COMPLETED:
            raise RuntimeError(f"{job_kind} job {done.pk} {done.status}: {done.error}")
        node_release(node_id=done.node_id, reason="bench: back to zero nodes")
        wait(
            lambda c=cluster: not Node.objects.filter(target=c).exclude(status=NodeStatus.STOPPED).exists(), 60, "stop"
        )
        time.sleep(0.5)  # the agent reaps the exited process: its place on the host is free again
    return seconds


def run_broker(kind: str, args, data_dir: Path) -> dict:
    from django.contrib.auth import get_user_model

    from compute.jobs.models import Job, JobStatus
    from compute.jobs.services import job_submit
    from compute.models import Node, NodeStatus, TargetKind
    from compute.services import target_create, target_update
    from data.services import data_version_from_file
    from studio.models import WorkerCheck
    from studio.tasks import worker_canary_task
    from workspaces.services import workspace_create

    env = use_broker(kind, data_dir, args.redis_url)
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{data_dir / 'studio.sqlite3'}"
    env |= {"DATABASE_URL": database_url, "STUDIO_DATA_DIR": str(data_dir)}
    user = get_user_model().objects.create_user(f"bench-{kind}-{time.time_ns()}")
    workspace = workspace_create(actor=user, name=f"bench {kind}")
    cluster = target_create(
        actor=user,
        workspace=workspace,
        kind=TargetKind.CLUSTER,
        name="bench",
        min_nodes=0,
        max_nodes=2,
        idle_seconds_before_scaledown=600,
    ).target

    def submit():
        return job_submit(actor=user, workspace=workspace, kind=DIAGNOSTIC, target=cluster, spec={})

    def latency_to_running(job):
        job = wait(lambda: Job.objects.filter(pk=job.pk, running_at__isnull=False).first(), 60, "running")
        return (job.running_at - job.created_at).total_seconds()

    figures = {}
    log_dir = data_dir / f"logs-{kind}"
    log_dir.mkdir(exist_ok=True)
    with AgentLoop(env, log_dir):
        # Cold: zero nodes → the autoscaler requests one, the agent starts it, it claims the job.
        cold = submit()
        figures["cold_s"] = latency_to_running(cold)
        wait(lambda: Job.objects.filter(pk=cold.pk, status=JobStatus.COMPLETED).exists(), 60, "cold done")

        # Cold, repeated, for a diagnostic job and for a Train job (which imports the ML stack).
        if args.cold_runs:
            table = small_csv(data_dir / f"cold-{kind}.csv")
            version = data_version_from_file(actor=user, workspace=workspace, path=table, name=f"cold-{kind}")
            train_spec = {
                "data_version_id": version.pk,
                "target_column": "label",
                "algorithm": "logistic_regression",
                "hyperparameters": {},
                "validation": {"method": "holdout", "holdout_fraction": 0.25},
            }
            figures["cold_diagnostic_s"] = cold_starts(
                user=user, workspace=workspace, job_kind=DIAGNOSTIC, spec={}, runs=args.cold_runs, name="cold-diag"
            )
            figures["cold_train_s"] = cold_starts(
                user=user,
                workspace=workspace,
                job_kind="train",
                spec=train_spec,
                runs=args.cold_runs,
                name="cold-train",
            )
        if args.cold_only:
            return figures

        # Warm: one idle node, sequential jobs.
        warm, total = [], []
        for _ in range(args.samples):
            job = submit()
            warm.append(latency_to_running(job))
            job = wait(lambda j=job: Job.objects.filter(pk=j.pk, status=JobStatus.COMPLETED).first(), 60, "done")
            total.append((job.finished_at - job.created_at).total_seconds())
        figures["warm_p50_ms"] = 1000 * statistics.median(warm)
        figures["warm_p95_ms"] = 1000 * percentile(warm, 0.95)
        figures["job_roundtrip_p50_ms"] = 1000 * statistics.median(total)

        # A bare Celery task round trip on the same node: the canary writes one row.
        bare = []
        for _ in range(args.samples):
            check = WorkerCheck.objects.create(broker=kind)
            worker_canary_task.apply_async(args=[check.pk], queue=cluster.queue, routing_key=cluster.queue)
            check = wait(
                lambda c=check: WorkerCheck.objects.filter(pk=c.pk, completed_at__isnull=False).first(), 30, "canary"
            )
            bare.append((check.completed_at - check.requested_at).total_seconds())
        figures["bare_task_p50_ms"] = 1000 * statistics.median(bare)
        figures["overhead_ratio"] = figures["job_roundtrip_p50_ms"] / figures["bare_task_p50_ms"]

        # Throughput: 2 warm nodes, 200 jobs submitted at once.
        target_update(actor=user, target=cluster, min_nodes=2)
        wait(lambda: Node.objects.filter(target=cluster, status=NodeStatus.IDLE).count() >= 2, 60, "two idle nodes")
        started = time.monotonic()
        jobs = [submit().pk for _ in range(args.burst)]
        wait(lambda: Job.objects.filter(pk__in=jobs, status=JobStatus.COMPLETED).count() == len(jobs), 300, "burst")
        elapsed = time.monotonic() - started
        figures["burst_jobs_per_s"] = len(jobs) / elapsed
        figures["burst_failed"] = Job.objects.filter(pk__in=jobs).exclude(status=JobStatus.COMPLETED).count()
        target_update(actor=user, target=cluster, min_nodes=0)
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--brokers", default="redis,embedded")
    parser.add_argument("--database", default=None, help="DATABASE_URL (default: SQLite in a fresh data directory)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--samples", type=int, default=60)
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--cold-runs", type=int, default=4, help="cold starts of each job kind (0: none)")
    parser.add_argument("--cold-only", action="store_true", help="measure only the cold starts")
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")

    data_dir = Path(tempfile.mkdtemp(prefix="studio-bench-jobs-"))
    setup_django(data_dir, args.database)
    from django.db import connection

    print(f"database: {connection.vendor}; data: {data_dir}; samples: {args.samples}; burst: {args.burst}")
    results = {}
    for kind in args.brokers.split(","):
        results[kind] = run_broker(kind, args, data_dir)
        f = results[kind]
        print(f"\n[{kind} broker]")
        print(f"  submit → RUNNING, zero nodes:  {f['cold_s']:.2f} s")
        for label, key in (("diagnostic", "cold_diagnostic_s"), ("Train", "cold_train_s")):
            if key in f:
                runs = ", ".join(f"{s:.2f}" for s in f[key])
                print(f"  … zero nodes, {label} job:    worst {max(f[key]):.2f} s  (runs: {runs})")
        if args.cold_only:
            continue
        print(f"  submit → RUNNING, warm node:   p50 {f['warm_p50_ms']:.1f} ms   p95 {f['warm_p95_ms']:.1f} ms")
        print(
            f"  200 jobs through 2 nodes:      {f['burst_jobs_per_s']:.1f} jobs/s ({f['burst_failed']} not completed)"
        )
        print(f"  job submit → COMPLETED p50:    {f['job_roundtrip_p50_ms']:.1f} ms")
        print(
            f"  bare Celery task round trip:   {f['bare_task_p50_ms']:.1f} ms  (overhead ratio {f['overhead_ratio']:.2f}×)"
        )

    main_kind = "redis" if "redis" in results else next(iter(results))
    f = results[main_kind]
    cold_diag = max(f["cold_diagnostic_s"]) if f.get("cold_diagnostic_s") else None
    cold_train = max(f["cold_train_s"]) if f.get("cold_train_s") else None
    cold_figures = (f" cold_diagnostic_worst_s={cold_diag:.2f}" if cold_diag is not None else "") + (
        f" cold_train_worst_s={cold_train:.2f}" if cold_train is not None else ""
    )
    cold_met = (cold_diag is None or cold_diag <= 2) and (cold_train is None or cold_train <= 5)
    if args.cold_only:
        print(
            f"\nBENCH jobs_cold broker={main_kind} cold_s={f['cold_s']:.2f}{cold_figures} runs={args.cold_runs}"
            f" goals={'met' if cold_met and f['cold_s'] <= 5 else 'missed'}"
        )
        return
    met = (
        f["warm_p50_ms"] <= 150
        and f["warm_p95_ms"] <= 500
        and f["cold_s"] <= 5
        and f["burst_jobs_per_s"] >= 20
        and f["burst_failed"] == 0
        and cold_met
    )
    extra = ""
    if "embedded" in results and main_kind != "embedded":
        e = results["embedded"]
        extra = (
            f" embedded_warm_p50_ms={e['warm_p50_ms']:.1f} embedded_cold_s={e['cold_s']:.2f}"
            f" embedded_jobs_per_s={e['burst_jobs_per_s']:.1f}"
        )
    print(
        f"\nBENCH jobs broker={main_kind} warm_p50_ms={f['warm_p50_ms']:.1f} warm_p95_ms={f['warm_p95_ms']:.1f}"
        f" cold_s={f['cold_s']:.2f}{cold_figures} jobs_per_s={f['burst_jobs_per_s']:.1f}"
        f" overhead_ratio={f['overhead_ratio']:.2f}{extra} goals={'met' if met else 'missed'}"
    )


if __name__ == "__main__":
    main()
