"""Command jobs benchmark: what a user's own code waits for, through the product's own path.

    .venv/bin/python bench/command.py                 # SQLite in a fresh data directory, Redis broker
    .venv/bin/python bench/command.py --samples 40 --database postgres://postgres@127.0.0.1:5432/bench

Measures in one run:
  * submit → first log line: a command job (uploaded code, a cached environment, a data input
    materialised) submitted through the job service to a warm node of a cluster; the time until
    the job's first own output line is in the database where the job page and the API read it.
    p50 and p95 over sequential jobs (goal p50 ≤ 1 s, p95 ≤ 2 s);
  * the sandbox's overhead: a sandboxed `/bin/true` (bubblewrap, user drop, limits, monitor)
    minus a bare subprocess, medians (goal ≤ 100 ms), with bubblewrap and without;
  * an environment of 3 packages built cold (fresh build cache and a fresh uv download cache),
    then reused through `environment_prepare` as a job does (goal: reuse ≤ 200 ms).
"""

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from jobs import AgentLoop, percentile, setup_django, use_broker, wait  # noqa: E402

PACKAGES = "six==1.16.0\ntabulate==0.9.0\nidna==3.10\n"
SCRIPT = """\
import sys
print("first-line", flush=True)
import pandas as pd
print(len(pd.read_parquet(sys.argv[1])), "rows")
"""


def code_archive(path: Path) -> Path:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("job/score.py", SCRIPT)
    path.write_bytes(buffer.getvalue())
    return path


def environment_figures(user, workspace, data_dir: Path, samples: int) -> dict:
    """Cold build then reuse of a 3-package environment, on the node's path (environment_prepare)."""
    from django.test import override_settings

    from environments.services import environment_create, environment_prepare

    version = environment_create(
        actor=user, workspace=workspace, name="three-packages", base="python", requirements=PACKAGES
    )
    cold_cache = data_dir / "cold-environments"
    cold_cache.mkdir(mode=0o755)
    lines = []
    os.environ["UV_CACHE_DIR"] = str(data_dir / "cold-uv-cache")  # nothing downloaded before
    try:
        with override_settings(STUDIO_ENVIRONMENT_CACHE_DIR=str(cold_cache)):
            started = time.perf_counter()
            environment_prepare(version=version, on_line=lines.append)
            cold = time.perf_counter() - started
            reuse = []
            for _ in range(samples):
                started = time.perf_counter()
                environment_prepare(version=version, on_line=lines.append)
                reuse.append(time.perf_counter() - started)
    finally:
        os.environ.pop("UV_CACHE_DIR", None)
    return {
        "env_cold_s": cold,
        "env_reuse_p50_ms": 1000 * statistics.median(reuse),
        "env_reuse_max_ms": 1000 * max(reuse),
    }


def first_line_figures(user, workspace, data_dir: Path, args) -> dict:
    import palmerpenguins

    from commands.code_services import code_snapshot_create_from_archive
    from compute.jobs.models import Job, JobLogLine, JobStatus
    from compute.jobs.services import job_submit
    from compute.models import Node, NodeStatus, TargetKind
    from compute.services import target_create
    from data.services import data_version_from_file
    from environments.services import environment_create

    csv = data_dir / "penguins.csv"
    palmerpenguins.load_penguins().to_csv(csv, index=False)
    data = data_version_from_file(actor=user, workspace=workspace, path=csv, name="penguins")
    snapshot = code_snapshot_create_from_archive(
        actor=user, workspace=workspace, path=code_archive(data_dir / "code.zip"), filename="code.zip"
    )
    environment = environment_create(
        actor=user, workspace=workspace, name="sklearn", base="studio-sklearn", requirements=""
    )
    cluster = target_create(
        actor=user,
        workspace=workspace,
        kind=TargetKind.CLUSTER,
        name="bench",
        min_nodes=1,
        max_nodes=1,
        idle_seconds_before_scaledown=600,
    ).target
    spec = {
        "code_snapshot_id": snapshot.pk,
        "command": "python score.py ${{inputs.data}}",
        "environment_version_id": environment.pk,
        "inputs": {"data": {"type": "data", "data_version_id": data.pk}},
    }

    def run_one() -> tuple[float, float]:
        started = time.perf_counter()
        job = job_submit(actor=user, workspace=workspace, kind="command", target=cluster, spec=spec)
        line = wait(lambda: JobLogLine.objects.filter(job=job, text="first-line").first(), 300, "the first line")
        seen = time.perf_counter() - started
        done = wait(lambda: Job.objects.filter(pk=job.pk, status__in=JobStatus.finished()).first(), 300, "done")
        if done.status != JobStatus.COMPLETED:
            raise RuntimeError(f"job {done.pk} {done.status}: {done.error}")
        return seen, (line.at - done.created_at).total_seconds()

    log_dir = data_dir / "logs"
    log_dir.mkdir(exist_ok=True)
    with AgentLoop(args.env, log_dir):
        wait(lambda: Node.objects.filter(target=cluster, status=NodeStatus.IDLE).exists(), 120, "an idle node")
        build_started = time.perf_counter()
        run_one()  # builds the environment on the node (the cache is cold for this data directory)
        first_build = time.perf_counter() - build_started
        seen, stamped = [], []
        for _ in range(args.samples):
            a, b = run_one()
            seen.append(a)
            stamped.append(b)
    return {
        "first_job_with_build_s": first_build,
        "first_line_p50_s": statistics.median(seen),
        "first_line_p95_s": percentile(seen, 0.95),
        "first_line_node_p50_s": statistics.median(stamped),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default=None, help="DATABASE_URL (default: SQLite in a fresh data directory)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--samples", type=int, default=30)
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    data_dir = Path(tempfile.mkdtemp(prefix="studio-bench-command-"))
    os.environ["STUDIO_ENVIRONMENT_CACHE_DIR"] = str(data_dir / "environments")
    (data_dir / "environments").mkdir(mode=0o755)
    data_dir.chmod(0o755)
    setup_django(data_dir, args.database)
    from django.contrib.auth import get_user_model
    from django.db import connection

    from compute.sandbox.bench import measure_overhead
    from workspaces.services import workspace_create

    args.env = use_broker("redis", data_dir, args.redis_url)
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{data_dir / 'studio.sqlite3'}"
    args.env |= {
        "DATABASE_URL": database_url,
        "STUDIO_DATA_DIR": str(data_dir),
        "STUDIO_ENVIRONMENT_CACHE_DIR": str(data_dir / "environments"),
    }
    print(f"database: {connection.vendor}; data: {data_dir}; samples: {args.samples}; load {os.getloadavg()[0]:.1f}")
    user = get_user_model().objects.create_user(f"bench-{time.time_ns()}")
    workspace = workspace_create(actor=user, name="bench command jobs")

    f = {}
    f["sandbox_overhead_ms"] = measure_overhead(n=args.samples)
    f["sandbox_overhead_fallback_ms"] = measure_overhead(n=args.samples, bubblewrap=False)
    print(f"  sandbox overhead over a bare subprocess: {f['sandbox_overhead_ms']:.1f} ms with bubblewrap,"
          f" {f['sandbox_overhead_fallback_ms']:.1f} ms without")  # fmt: skip
    f |= environment_figures(user, workspace, data_dir, args.samples)
    print(f"  3-package environment: cold {f['env_cold_s']:.2f} s, reuse p50 {f['env_reuse_p50_ms']:.1f} ms"
          f" (max {f['env_reuse_max_ms']:.1f} ms)")  # fmt: skip
    f |= first_line_figures(user, workspace, data_dir, args)
    print(f"  first job on the node (builds studio-sklearn): {f['first_job_with_build_s']:.1f} s")
    print(f"  submit → first log line (in the database): p50 {f['first_line_p50_s']:.3f} s,"
          f" p95 {f['first_line_p95_s']:.3f} s; on the node p50 {f['first_line_node_p50_s']:.3f} s")  # fmt: skip
    met = (
        f["first_line_p50_s"] <= 1.0
        and f["first_line_p95_s"] <= 2.0
        and f["sandbox_overhead_ms"] <= 100
        and f["env_reuse_p50_ms"] <= 200
    )
    print(
        f"\nBENCH command first_line_p50_s={f['first_line_p50_s']:.3f} first_line_p95_s={f['first_line_p95_s']:.3f}"
        f" sandbox_overhead_ms={f['sandbox_overhead_ms']:.1f} env_cold_s={f['env_cold_s']:.2f}"
        f" env_reuse_ms={f['env_reuse_p50_ms']:.1f} goals={'met' if met else 'missed'}"
    )


if __name__ == "__main__":
    main()
