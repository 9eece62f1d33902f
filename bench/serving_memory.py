"""Serving memory benchmark: where the memory of 20 deployed models goes, in the web processes
(STUDIO_SERVING_IN_PROCESS=1, the embedded default's path) and with inference replicas
(STUDIO_SERVING_IN_PROCESS=0: the portal forwards, each replica loads only its own model).

    .venv/bin/python bench/serving_memory.py
    .venv/bin/python bench/serving_memory.py --models 8 --workers 1,2     # a quick look

The models: 20 registered versions of bench/serving_engine.py's hand-built pipeline (a
ColumnTransformer and a HistGradientBoostingClassifier with its verified ONNX twin), each its own
endpoint with one deployment on one inference cluster. A process loads each version it scores
once, so 20 versions cost what 20 models of that size cost.

For each path and each count of gunicorn web processes (default 1 and 4), the portal is started
fresh, every endpoint is scored once to import the serving stack, then the growth of the web
processes' resident memory (gunicorn's master and workers) is measured from the first model to all
of them: each model is asked 12 requests per web process from as many clients as processes, so that
every process serves every model. With replicas, the replicas' own memory is reported too (one per
deployment, plus the agent's standby replica).

Goal: the models' memory grows with replicas, not with web processes: through the replicas, the
web processes grow by at most 5 % of what they grow in process at the largest worker count, and
the replicas' memory does not depend on the number of web processes. One line:

    BENCH serving_memory models=20 inproc_growth_mb_w1=.. inproc_growth_mb_w4=.. replicas_web_growth_mb_w4=..
        replica_mb=.. replicas_total_mb=.. goals=met|missed
"""

import argparse
import http.client
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

import serving  # noqa: E402 - bench/serving.py: the model, the studio, gunicorn and the replicas' agent

GOAL_SHARE = 0.05
REQUESTS_PER_PROCESS = 12


def score_all(port: int, keys: dict, body: bytes, workers: int) -> None:
    """Every endpoint, REQUESTS_PER_PROCESS requests per web process from `workers` clients at
    once (a new connection each, so that gunicorn spreads them); every answer must be 200."""
    failures = []

    def client(name: str, count: int) -> None:
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {keys[name]}"}
        for _ in range(count):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            connection.request("POST", f"/score/{name}/", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            connection.close()
            if response.status != 200:
                failures.append((name, response.status))

    for name in keys:
        threads = [threading.Thread(target=client, args=(name, REQUESTS_PER_PROCESS)) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if failures:
        raise RuntimeError(f"scoring failed: {failures[:5]}")


def web_growth(port: int, keys: dict, body: bytes, workers: int, *, through_replicas: bool) -> float:
    """The web processes' growth (MB) from serving the first model to serving every model."""
    proc = serving.start_gunicorn(port, workers, 4, through_replicas=through_replicas)
    try:
        first = dict(list(keys.items())[:1])
        score_all(port, first, body, workers)
        score_all(port, first, body, workers)  # after the first model's load and the stack's imports
        before = serving.rss_mb(proc.pid)
        score_all(port, keys, body, workers)
        time.sleep(1)
        after = serving.rss_mb(proc.pid)
    finally:
        serving.stop(proc)
    path = "replicas" if through_replicas else "in process"
    print(f"  {path}, {workers} web process(es): {before:.0f} MB → {after:.0f} MB", flush=True)
    return after - before


def replicas_mb() -> tuple[int, float, float]:
    """(replicas serving a deployment, their resident memory in MB, the standby's)."""
    from compute.models import Node, NodeStatus

    pids = list(
        Node.objects.filter(deployment_id__isnull=False, status__in=NodeStatus.live())
        .exclude(pid=None)
        .values_list("pid", flat=True)
    )
    return len(pids), sum(serving.rss_mb(pid) for pid in pids), standby_mb()


def standby_mb() -> float:
    """The agent's standby replica: a `serve_replica --standby` process."""
    total = 0.0
    for status in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b"--standby" in status.read_bytes():
                total += serving.rss_mb(int(status.parent.name))
        except OSError:
            pass
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--workers", default="1,4", help="web process counts, comma-separated")
    args = parser.parse_args()
    os.environ.update({**serving.SINGLE, "STUDIO_HOST_MAX_REPLICAS": str(args.models + 4)})
    worker_counts = [int(w) for w in args.workers.split(",")]
    work = Path(tempfile.mkdtemp(prefix="studio-bench-serving-memory-"))
    manifest = serving.export_model(work)
    body = json.dumps(json.loads((work / "payload_1.json").read_text())).encode()
    studio = serving.make_studio(work, with_cluster=False)
    versions = {
        f"model-{i:02d}": serving.register_hand_built(studio, work, manifest, name=f"model-{i:02d}")
        for i in range(args.models)
    }
    keys = serving.deploy(studio, versions)
    print(f"{args.models} endpoints, one deployment each, of the hand-built model", flush=True)

    inproc = {w: web_growth(serving.free_port(), keys, body, w, through_replicas=False) for w in worker_counts}
    agent = serving.start_replicas(studio, work)
    try:
        started = replicas_mb()
        through = {w: web_growth(serving.free_port(), keys, body, w, through_replicas=True) for w in worker_counts}
        count, total, standby = replicas_mb()
    finally:
        serving.stop(agent)

    most = max(worker_counts)
    print()
    print(f"{'web processes':>14} {'in process':>12} {'through replicas':>17}   (web processes' growth, MB)")
    for w in worker_counts:
        print(f"{w:>14} {inproc[w]:>12.0f} {through[w]:>17.0f}")
    print(
        f"replicas: {count} serving, {total:.0f} MB in all ({total / max(count, 1):.0f} MB each) after the "
        f"runs, {started[1]:.0f} MB before them; the standby {standby:.0f} MB"
    )
    share = through[most] / inproc[most] if inproc[most] > 0 else float("inf")
    steady = abs(total - started[1]) <= 0.1 * started[1]
    met = share <= GOAL_SHARE and steady and count == args.models
    figures = " ".join(f"inproc_growth_mb_w{w}={inproc[w]:.0f}" for w in worker_counts)
    figures += " " + " ".join(f"replicas_web_growth_mb_w{w}={through[w]:.0f}" for w in worker_counts)
    print(
        f"BENCH serving_memory models={args.models} {figures} replicas_web_share={share:.3f} "
        f"replica_mb={total / max(count, 1):.0f} replicas_total_mb={total:.0f} standby_mb={standby:.0f} "
        f"goals={'met' if met else 'missed'}"
    )


if __name__ == "__main__":
    main()
