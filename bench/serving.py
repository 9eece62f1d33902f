"""Serving benchmark: the studio's scoring endpoint against `mlflow models serve`, same model, same run.

    apt-get install wrk                                   # the load generator (Debian package)
    .venv/bin/python bench/serving.py                     # sets up a throwaway MLflow venv once
    .venv/bin/python bench/serving.py --seconds 10 --soak 600   # also the 10-minute soak

The model: a scikit-learn Pipeline (ColumnTransformer: impute, scale, one-hot; then a
HistGradientBoostingClassifier) on a 20-column table, built by bench/serving_engine.py. The
studio serves it from a registered model version through a real endpoint (a key, the traffic
split, validation against the signature, monitoring) in gunicorn, as `make run` does; it uses the
verified ONNX twin. MLflow serves the same fitted pipeline (`mlflow.sklearn`), installed in its
own virtualenv for this benchmark only. Both run with OMP_NUM_THREADS=1 on this machine, measured
one after the other with wrk over loopback:

  * 1-row requests at concurrency 1 and 16, and 100-row requests at concurrency 4;
  * the in-process floor: the engine scoring one row (validation + ONNX);
  * load: 60 s at concurrency 32 against the studio (no error, no 5xx allowed);
  * soak (--soak SECONDS): half of the measured capacity for that long, memory sampled.

Goals: 1-row throughput at concurrency 16 ≥ 10× MLflow's; p50 at concurrency 1 ≤ 1/5 of MLflow's;
100-row rows/s ≥ 3× MLflow's.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
MLFLOW_VENV = Path(os.environ.get("STUDIO_BENCH_MLFLOW_VENV", "/tmp/studio-bench-mlflow-venv"))
SINGLE = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
WRK_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
{auth}
wrk.body = io.open("{body}", "r"):read("*a")
done = function(summary, latency, requests)
  io.write(string.format("STATS %d %d %d %d %f %f %f %f\\n", summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.duration, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(port: int, path: str, timeout: float = 120) -> None:
    import http.client

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            conn.getresponse().read()
            return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"nothing answers on port {port}")


def wrk(url: str, body: Path, *, connections: int, seconds: int, key: str | None, work: Path) -> dict:
    script = work / f"wrk-{connections}-{body.stem}.lua"
    auth = f'wrk.headers["Authorization"] = "Bearer {key}"' if key else ""
    script.write_text(WRK_LUA.format(auth=auth, body=body))
    out = subprocess.run(
        [
            "wrk",
            "-t",
            str(min(connections, 2)),
            "-c",
            str(connections),
            "-d",
            f"{seconds}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"STATS (\d+) (\d+) (\d+) (\d+) ([\d.]+) ([\d.]+) ([\d.]+) ([\d.]+)", out)
    if not match:
        raise RuntimeError(f"wrk printed no stats:\n{out}")
    requests, bad_status, socket_errors, duration_us = (int(match.group(i)) for i in range(1, 5))
    p50, p90, p99, mean = (float(match.group(i)) / 1000 for i in range(5, 9))
    return {
        "requests": requests,
        "rps": requests / (duration_us / 1e6),
        "non_2xx": bad_status,
        "socket_errors": socket_errors,
        "p50_ms": p50,
        "p90_ms": p90,
        "p99_ms": p99,
        "mean_ms": mean,
    }


def ensure_mlflow_venv() -> Path:
    python = MLFLOW_VENV / "bin" / "python"
    if not (MLFLOW_VENV / "bin" / "mlflow").exists():
        print(f"setting up MLflow in {MLFLOW_VENV} (once)")
        subprocess.run([sys.executable, "-m", "venv", str(MLFLOW_VENV)], check=True)
        pins = [
            f"{name}=={__import__('importlib.metadata').metadata.version(name)}"
            for name in ("scikit-learn", "skops", "pandas", "numpy", "scipy")
        ]
        subprocess.run([str(python), "-m", "pip", "install", "-q", "mlflow", *pins], check=True)
    return python


def export_model(work: Path) -> dict:
    subprocess.run(
        [sys.executable, str(REPO / "bench" / "serving_engine.py"), "--quick", "--export", str(work)],
        check=True,
        env={**os.environ, **SINGLE},
        capture_output=True,
    )
    return json.loads((work / "manifest.json").read_text())


def start_mlflow(work: Path, manifest: dict, port: int) -> subprocess.Popen:
    python = ensure_mlflow_venv()
    model_dir = work / "mlflow-model"
    if not (model_dir / "MLmodel").exists():
        shutil.rmtree(model_dir, ignore_errors=True)
        # The competitor's own format: load our skops file (trusted types, in MLflow's venv) and
        # save it the way MLflow serves sklearn models.
        # MLflow 3 saves sklearn models with skops too, and asks to name the types it should trust.
        code = (
            "import sys, mlflow.sklearn\n"
            "from training.ml.modelio import load_model\n"
            "mlflow.sklearn.save_model(load_model(sys.argv[1], sys.argv[2]), sys.argv[3], skops_trusted_types=[\n"
            "    'numpy.dtype', 'sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor'])\n"
        )
        subprocess.run(
            [str(python), "-c", code, str(work / "model.skops"), manifest["model_sha256"], str(model_dir)],
            check=True,
            capture_output=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
    env = {
        **os.environ,
        **SINGLE,
        "MLFLOW_TRACKING_URI": f"file://{work}/mlruns",
        "PATH": f"{MLFLOW_VENV / 'bin'}:{os.environ.get('PATH', '')}",
    }
    proc = subprocess.Popen(
        [
            str(MLFLOW_VENV / "bin" / "mlflow"),
            "models",
            "serve",
            "-m",
            str(model_dir),
            "-p",
            str(port),
            "-h",
            "127.0.0.1",
            "--env-manager",
            "local",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_http(port, "/ping")
    return proc


def start_studio(work: Path, manifest: dict, port: int, workers: int, threads: int) -> tuple[subprocess.Popen, str]:
    data_dir = work / "studio-data"
    os.environ.update({"STUDIO_DATA_DIR": str(data_dir), "DJANGO_SETTINGS_MODULE": "studio.settings", **SINGLE})
    os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    from compute.models import TargetKind
    from compute.services import target_create
    from endpoints.services import deployment_create, endpoint_create
    from training.models import ModelVersion, RegisteredModel
    from training.registry_services import model_version_dir
    from workspaces.services import workspace_create

    user = get_user_model().objects.create_user("bench")
    workspace = workspace_create(actor=user, name="bench")
    signature = json.loads((work / "signature.json").read_text())
    model = RegisteredModel.objects.create(workspace=workspace, name="bench-model")
    version = ModelVersion.objects.create(
        model=model,
        version=1,
        algorithm="hist_gradient_boosting",
        signature=signature,
        classes=signature["classes"],
        sha256=manifest["model_sha256"],
        onnx_sha256=manifest["onnx_sha256"],
    )
    folder = model_version_dir(version)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("model.skops", "model.onnx", "signature.json"):
        shutil.copyfile(work / name, folder / name)
    inference = target_create(actor=user, workspace=workspace, kind=TargetKind.INFERENCE, name="serving").target
    created = endpoint_create(actor=user, workspace=workspace, name="bench", requests_per_minute=1_000_000)
    deployment_create(actor=user, endpoint=created.endpoint, name="blue", model_version=version, target=inference)
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "studio.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--log-level",
            "warning",
        ],
        cwd=REPO,
        env={**os.environ},
        start_new_session=True,
    )
    wait_http(port, "/health/")
    return proc, created.primary


def rss_mb(pid: int) -> float:
    total = 0
    pids = [pid] + [
        int(p) for p in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    ]
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def measure(name: str, url: str, key: str | None, work: Path, seconds: int) -> dict:
    one, hundred = work / "payload_1.json", work / "payload_100.json"
    wrk(url, one, connections=1, seconds=2, key=key, work=work)  # warm up
    results = {
        "c1": wrk(url, one, connections=1, seconds=seconds, key=key, work=work),
        "c16": wrk(url, one, connections=16, seconds=seconds, key=key, work=work),
        "rows100_c4": wrk(url, hundred, connections=4, seconds=seconds, key=key, work=work),
    }
    results["rows100_c4"]["rows_per_s"] = results["rows100_c4"]["rps"] * 100
    for label, r in results.items():
        print(
            f"  {name:<7} {label:<11} {r['rps']:>9.1f} req/s  p50 {r['p50_ms']:>7.2f} ms  p90 {r['p90_ms']:>7.2f} ms  "
            f"p99 {r['p99_ms']:>8.2f} ms  non-2xx {r['non_2xx']}  socket errors {r['socket_errors']}"
        )
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--load-seconds", type=int, default=60)
    parser.add_argument("--soak", type=int, default=0, help="soak for this many seconds at half capacity")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--skip-mlflow", action="store_true")
    args = parser.parse_args()
    os.environ.update(SINGLE)
    work = Path(tempfile.mkdtemp(prefix="studio-bench-serving-"))
    manifest = export_model(work)
    print(
        f"model: {manifest['model']} with a verified ONNX twin (max diff {manifest['conversion']['max_abs_diff']:.1e}); "
        f"in-process score of 1 row (validation + ONNX): {manifest['figures_ms']['score_1row_ms']:.3f} ms"
    )
    mlflow = None
    if not args.skip_mlflow:
        port = free_port()
        proc = start_mlflow(work, manifest, port)
        try:
            mlflow = measure("mlflow", f"http://127.0.0.1:{port}/invocations", None, work, args.seconds)
        finally:
            stop(proc)
    port = free_port()
    proc, key = start_studio(work, manifest, port, args.workers, args.threads)
    url = f"http://127.0.0.1:{port}/score/bench/"
    try:
        studio = measure("studio", url, key, work, args.seconds)
        load = wrk(url, work / "payload_1.json", connections=32, seconds=args.load_seconds, key=key, work=work)
        print(
            f"  load c32 {args.load_seconds} s: {load['rps']:.1f} req/s, p99 {load['p99_ms']:.1f} ms, "
            f"non-2xx {load['non_2xx']}, socket errors {load['socket_errors']}"
        )
        soak = None
        if args.soak:
            # Half capacity: wrk cannot pace requests, so use fewer connections than the c16 run saturates.
            samples = []
            started = time.monotonic()
            soak_proc = subprocess.Popen(
                ["wrk", "-t", "1", "-c", "2", "-d", f"{args.soak}s", "-s", str(work / "wrk-1-payload_1.lua"), url],
                stdout=subprocess.PIPE,
                text=True,
            )
            while soak_proc.poll() is None:
                samples.append((round(time.monotonic() - started), rss_mb(proc.pid)))
                time.sleep(max(1, args.soak // 60))
            out = soak_proc.stdout.read()
            match = re.search(r"STATS (\d+) (\d+) (\d+)", out)
            first = samples[len(samples) // 10][1] if samples else 0
            last = samples[-1][1] if samples else 0
            soak = {
                "requests": int(match.group(1)) if match else 0,
                "non_2xx": int(match.group(2)) if match else -1,
                "rss_start_mb": first,
                "rss_end_mb": last,
                "samples": samples,
            }
            print(
                f"  soak {args.soak} s at c2: {soak['requests']:,} requests, non-2xx {soak['non_2xx']}; memory "
                f"{first:.0f} MB (after warm-up) → {last:.0f} MB at the end"
            )
    finally:
        stop(proc)

    print()
    if mlflow:
        c16_ratio = studio["c16"]["rps"] / mlflow["c16"]["rps"]
        p50_ratio = studio["c1"]["p50_ms"] / mlflow["c1"]["p50_ms"]
        rows_ratio = studio["rows100_c4"]["rows_per_s"] / mlflow["rows100_c4"]["rows_per_s"]
        print(f"1-row throughput at c16: {c16_ratio:.1f}× MLflow's (goal ≥ 10×)")
        print(f"p50 at c1: {p50_ratio:.3f} of MLflow's (goal ≤ 0.2)")
        print(f"100-row rows/s at c4: {rows_ratio:.1f}× MLflow's (goal ≥ 3×)")
        met = (
            c16_ratio >= 10
            and p50_ratio <= 0.2
            and rows_ratio >= 3
            and load["non_2xx"] == 0
            and load["socket_errors"] == 0
        )
        print(
            f"BENCH serving c16_ratio={c16_ratio:.1f} p50_ratio={p50_ratio:.3f} rows100_ratio={rows_ratio:.1f} "
            f"studio_c16_rps={studio['c16']['rps']:.0f} mlflow_c16_rps={mlflow['c16']['rps']:.0f} "
            f"studio_c1_p50_ms={studio['c1']['p50_ms']:.2f} mlflow_c1_p50_ms={mlflow['c1']['p50_ms']:.2f} "
            f"load_c32_errors={load['non_2xx'] + load['socket_errors']} goals={'met' if met else 'missed'}"
        )
    else:
        print(
            f"BENCH serving studio_c16_rps={studio['c16']['rps']:.0f} studio_c1_p50_ms={studio['c1']['p50_ms']:.2f} "
            f"goals=missed"
        )


if __name__ == "__main__":
    main()
