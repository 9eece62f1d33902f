"""Serving benchmark: the studio's scoring endpoint against `mlflow models serve`, same models, same run.

    apt-get install wrk                                   # the load generator (Debian package)
    .venv/bin/python bench/serving.py                     # sets up a throwaway MLflow venv once
    .venv/bin/python bench/serving.py --seconds 10 --soak 600   # also the 10-minute soak
    .venv/bin/python bench/serving.py --seconds 3 --load-seconds 5 --automl-budget 20   # a quick look
    .venv/bin/python bench/serving.py --replicas          # the studio through its inference replicas

The models:

  * hand-built: a scikit-learn Pipeline (ColumnTransformer: impute, scale, one-hot; then a
    HistGradientBoostingClassifier) on a 20-column table, built by bench/serving_engine.py;
  * the AutoML best model of two bench data sets (``--automl``, default breast_cancer, whose
    columns are named like "mean radius", and penguins: text columns, missing values), made by
    the product path: an Automated ML run through the services on a warm 2-node cluster (real
    node processes), registered by the run (model.skops, signature.json, model.onnx when it
    converted); the cluster is stopped before anything is measured. Requests are rows of the
    data set's test part, under their real column names.

The studio serves every model from a registered model version through a real endpoint (a key,
the traffic split, validation against the signature, monitoring) in gunicorn, as `make run`
does; it uses the verified ONNX twin when there is one (reported per model). MLflow serves the
same fitted estimators (`mlflow.sklearn`; mlflow 3.17.2, pinned), installed in its own virtualenv for this benchmark
only. Both run with OMP_NUM_THREADS=1 on this machine, measured one after the other with wrk
over loopback:

  * per model: 1-row requests at concurrency 1 and 16, and 100-row requests at concurrency 4;
  * the in-process floor: the engine scoring one row of the hand-built model (validation + ONNX);
  * load: 60 s at concurrency 32 against the hand-built model (no error, no 5xx allowed);
  * soak (--soak SECONDS): half of the measured capacity for that long, memory sampled.

Goals, for every model: 1-row throughput at concurrency 16 ≥ 10× MLflow's; p50 at concurrency 1
≤ 1/5 of MLflow's; 100-row rows/s ≥ 3× MLflow's. One ``BENCH serving_automl model=...`` line per
AutoML model, then ``BENCH serving ...`` (hand-built figures, ``automl_goals``, ``goals``).
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
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
MLFLOW_VENV = Path(os.environ.get("STUDIO_BENCH_MLFLOW_VENV", "/tmp/studio-bench-mlflow-venv"))
SINGLE = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# Two bench data sets whose AutoML best models are served too: breast cancer's 30 columns have
# spaces in their names ("mean radius"); penguins has text columns and missing values.
AUTOML_DATASETS = ("breast_cancer", "penguins")
# The AutoML regression models served: house prices (79 columns named like "Gr Liv Area", text
# columns, missing values) and city housing medians (a text city column).
REGRESSION_DATASETS = ("ames_price", "txhousing_median")
# The forecasting model served: one model over eight monthly series of different spans.
FORECAST_SERIES = (
    "air_passengers",
    "nottingham_temp",
    "us_accidental_deaths",
    "uk_lung_deaths_male",
    "uk_lung_deaths_female",
    "uk_driver_deaths",
    "au_antidiabetic",
    "iceland_debit_cards",
)
FORECAST_HISTORY_ROWS = 48  # each series' recent history a forecasting request sends: four years
GOAL_C16, GOAL_P50, GOAL_ROWS = 10.0, 0.2, 3.0
ONNX_WORDS = {"onnx": "yes", "skops+onnx": "members"}  # a deployment's backend in the BENCH line
# MLflow at the version bench/tracking.py measures (its server, uvicorn since 3.x, sets the
# baseline: an unpinned install moves every ratio), and the studio's versions of what the served
# models need (statsmodels and patsy: the forecasting model refits its members on a request's history).
MLFLOW_VERSION = "3.17.2"
MLFLOW_VENV_PINS = [
    f"mlflow=={MLFLOW_VERSION}",
    *(
        f"{name}=={metadata.version(name)}"
        for name in ("scikit-learn", "skops", "pandas", "numpy", "scipy", "lightgbm", "statsmodels", "patsy")
    ),
]
PORTS: range | None = None  # None: any free port
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
    for port in PORTS or [0]:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError(f"no free port in {PORTS}")


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
            # wrk gives up on a request after 2 s and counts it a socket error, not a latency: MLflow's
            # pyfunc forecasting at c16 answers in ~1.7 s at p50, and its slowest answers were dropped
            # from its figures and counted as errors against the studio's goals
            "--timeout",
            "30s",
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
    installed = MLFLOW_VENV / "studio-pins.txt"  # what the venv was set up with
    wanted = "\n".join(MLFLOW_VENV_PINS)
    if not (MLFLOW_VENV / "bin" / "mlflow").exists() or not installed.exists() or installed.read_text() != wanted:
        print(f"setting up MLflow in {MLFLOW_VENV} (once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(MLFLOW_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *MLFLOW_VENV_PINS], check=True)
        installed.write_text(wanted)
    return python


def export_model(work: Path) -> dict:
    subprocess.run(
        [sys.executable, str(REPO / "bench" / "serving_engine.py"), "--quick", "--export", str(work)],
        check=True,
        env={**os.environ, **SINGLE},
        capture_output=True,
    )
    return json.loads((work / "manifest.json").read_text())


def start_mlflow(folder: Path, model_sha256: str, port: int, *, forecasting: bool = False) -> subprocess.Popen:
    """`mlflow models serve` of the fitted estimator in ``folder/model.skops`` (its own venv); a
    forecasting model is served as the pyfunc a user would write (bench/serving_forecast_mlflow.py)."""
    python = ensure_mlflow_venv()
    model_dir = folder / "mlflow-model"
    if not (model_dir / "MLmodel").exists():
        shutil.rmtree(model_dir, ignore_errors=True)
        # The competitor's own format: load our skops file (checked by its SHA-256, in MLflow's venv)
        # and save it the way MLflow serves sklearn models. MLflow 3 saves sklearn models with skops
        # too and asks to name the types it should trust: those the file holds.
        code = (
            "import sys, mlflow.sklearn, skops.io\n"
            "from modelformat.modelio import load_model\n"
            "model = load_model(sys.argv[1], sys.argv[2])\n"
            "mlflow.sklearn.save_model(model, sys.argv[3],\n"
            "    skops_trusted_types=skops.io.get_untrusted_types(file=sys.argv[1]))\n"
        )
        if forecasting:
            code = "import sys, serving_forecast_mlflow as m\nm.save(sys.argv[1], sys.argv[2], sys.argv[3])\n"
        subprocess.run(
            [str(python), "-c", code, str(folder / "model.skops"), model_sha256, str(model_dir)],
            check=True,
            capture_output=True,
            env={**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'bench'}"},
        )
    env = {
        **os.environ,
        **SINGLE,
        "MLFLOW_TRACKING_URI": f"file://{folder}/mlruns",
        "PATH": f"{MLFLOW_VENV / 'bin'}:{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(REPO),  # the studio's own transformers inside AutoML pipelines
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


def make_studio(work: Path, *, with_cluster: bool):
    """Django set up on a throwaway data directory, a user and a workspace (bench/automl.py's
    studio); with a warm 2-node cluster when AutoML models are to be made."""
    from automl import _Studio

    return _Studio(data_dir=work / "studio-data", with_cluster=with_cluster)


def register_hand_built(studio, work: Path, manifest: dict, name: str = "bench-model"):
    """The hand-built pipeline as a registered model version (its files copied in)."""
    from training.models import ModelVersion, RegisteredModel
    from training.registry_services import model_version_dir

    signature = json.loads((work / "signature.json").read_text())
    model = RegisteredModel.objects.create(workspace=studio.workspace, name=name)
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
    return version


def automl_models(
    studio, work: Path, datasets: list[str], *, budget: float, seed: int, task: str = "classification"
) -> list[dict]:
    """The AutoML best model of each bench data set (of the classification or the regression suite),
    made by the product path (a run through the services on the studio's cluster, registered by the
    run), with request bodies from the data set's test part under its real column names."""
    import automl_public_suite
    import pandas as pd
    import regression_public_suite
    from automl import studio_automl

    from training.models import ModelVersion
    from training.registry_services import model_version_dir

    suite = regression_public_suite if task == "regression" else automl_public_suite
    models = []
    for dataset in datasets:
        X_train, X_test, y_train, _ = suite.train_test(dataset)
        name = "automl-" + dataset.replace("_", "-")
        made = studio_automl(studio, X_train, y_train, budget=budget, seed=seed, register_as=name, task=task)
        version = ModelVersion.objects.get(model__workspace=studio.workspace, model__name=name)
        folder = work / name
        folder.mkdir()
        for file in ("model.skops", "signature.json"):
            shutil.copyfile(model_version_dir(version) / file, folder / file)
        rows = pd.concat([X_test] * (100 // len(X_test) + 1)).head(100)  # a small test part repeats
        write_payloads(folder, rows)
        print(
            f"AutoML {dataset}: {made['note']}; ready {made['facts']['ready_s']:.1f} s after submit "
            f"(budget {budget:g} s); registered as {version}",
            flush=True,
        )
        models.append(
            {
                "name": name,
                "dataset": dataset,
                "task": task,
                "version": version,
                "folder": folder,
                "model_sha256": version.sha256,
                "onnx": bool(version.onnx_sha256),
                "onnx_reason": made["facts"]["onnx_reason"],
                "final_kind": made["final"].result.get("final_kind"),
                "columns": list(X_test.columns),
            }
        )
    return models


def forecast_model(studio, work: Path, series: list[str], *, budget: float, seed: int) -> dict:
    """One forecasting model over several monthly series of bench/forecast_public_suite.py (a panel,
    ``Series`` naming each), made by the product path: the histories as a data version, an Automated
    ML run with task "forecasting" on the studio's cluster, registered by the run. Requests send
    each series' last ``FORECAST_HISTORY_ROWS`` rows: one series (12 forecasts back) for the 1-row
    figures, eight for the rows figure (96 forecasts); the studio takes ``{"history": rows}``,
    MLflow the same rows as ``dataframe_records``."""
    import forecast_public_suite
    import pandas as pd
    from automl import forecast_run

    from data.services import data_version_from_file
    from training.models import ModelVersion
    from training.registry_services import model_version_dir

    parts = []
    for name in series:
        history_ts, history_y, _, _ = forecast_public_suite.train_test(name)
        parts.append(pd.DataFrame({"Series": name, "Date": history_ts, "Value": history_y}))
    panel = pd.concat(parts, ignore_index=True)
    source = studio.data_dir / "forecast-panel.parquet"
    panel.to_parquet(source, index=False)
    version = data_version_from_file(
        actor=studio.user,
        workspace=studio.workspace,
        path=source,
        name="bench-forecast-panel",
        column_types={"Value": "numeric"},
    )
    name = "automl-forecast-monthly"
    # a forecasting run takes at least 30 s (the settings' floor)
    settings = {"time_column": "Date", "series_columns": ["Series"], "horizon": 12, "timeout_s": max(budget, 30.0)}
    run, ready_s = forecast_run(studio, version, settings, seed=seed, register_as=name)
    version = ModelVersion.objects.get(model__workspace=studio.workspace, model__name=name)
    folder = work / name
    folder.mkdir()
    for file in ("model.skops", "signature.json"):
        shutil.copyfile(model_version_dir(version) / file, folder / file)
    recent = panel.groupby("Series", sort=False).tail(FORECAST_HISTORY_ROWS).copy()
    recent["Date"] = recent["Date"].map(lambda t: t.strftime("%Y-%m-%d"))
    records = {key: part.to_dict(orient="records") for key, part in recent.groupby("Series", sort=False)}
    one = records[series[0]]
    many = [row for key in series[:8] for row in records[key]]
    for prefix, wrap in (("", lambda rows: {"history": rows}), ("mlflow_", lambda rows: {"dataframe_records": rows})):
        (folder / f"{prefix}payload_1.json").write_text(json.dumps(wrap(one)))
        (folder / f"{prefix}payload_100.json").write_text(json.dumps(wrap(many)))
    result = run.result or {}
    members = "+".join(m["algorithm"] for m in result.get("members") or []) or result.get("algorithm")
    print(
        f"AutoML forecasting over {len(series)} monthly series ({len(panel):,} rows): {members}, backtest "
        f"{result.get('primary_metric')}={result.get('validation_score')}; ready {ready_s:.1f} s after submit "
        f"(budget {budget:g} s); registered as {version}",
        flush=True,
    )
    return {
        "name": name,
        "dataset": "monthly panel",
        "task": "forecasting",
        "version": version,
        "folder": folder,
        "model_sha256": version.sha256,
        "onnx": bool(version.onnx_sha256),  # its boosting members' twins (the studio's side only)
        "onnx_reason": result.get("onnx_reason") or "",
        "final_kind": members,
        "columns": ["Series", "Date", "Value"],
        "rows_per_request": 12 * min(len(series), 8),
    }


def write_payloads(folder: Path, rows) -> None:
    """payload_1.json and payload_100.json as ``dataframe_records`` (accepted by both servers):
    labels as text, missing values as null."""
    frame = rows.copy()
    for column in frame.columns:
        if str(frame[column].dtype) == "category":
            frame[column] = frame[column].astype(object)
    records = json.loads(frame.to_json(orient="records"))
    (folder / "payload_1.json").write_text(json.dumps({"dataframe_records": records[:1]}))
    (folder / "payload_100.json").write_text(json.dumps({"dataframe_records": records[:100]}))


def serving_backend(version) -> str:
    """What the studio's scoring path serves this version with ("onnx" or "skops"), as a serving
    process loads it."""
    from endpoints.scoring.predictor import load_predictor
    from training.registry_services import model_version_dir

    folder = model_version_dir(version)
    return load_predictor(
        model_path=folder / "model.skops",
        model_sha256=version.sha256,
        signature=version.signature,
        onnx_path=folder / "model.onnx" if version.onnx_sha256 else None,
        onnx_sha256=version.onnx_sha256 or None,
    ).backend


def start_replicas(studio, work: Path) -> subprocess.Popen:
    """The local agent, serving replicas only (`compute_agent --replicas-only`), until every
    deployment has a ready replica."""
    from compute.models import Node, NodeStatus
    from endpoints.models import Deployment

    log_dir = work / "replica-logs"
    log_dir.mkdir(exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "compute_agent", "--replicas-only", "--log-dir", str(log_dir)],
        cwd=REPO,
        env={**os.environ},
        stdout=open(work / "replica-agent.log", "wb"),  # noqa: SIM115 - open for the child's life
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wanted = set(Deployment.objects.values_list("pk", flat=True))
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ready = set(
            Node.objects.filter(deployment_id__in=wanted, status__in=[NodeStatus.IDLE, NodeStatus.BUSY])
            .exclude(address="")
            .values_list("deployment_id", flat=True)
        )
        if ready >= wanted:
            return proc
        time.sleep(0.5)
    stop(proc)
    raise TimeoutError("the deployments' replicas were not ready in 300 s")


def start_studio(
    studio, versions: dict, port: int, workers: int, threads: int, *, through_replicas: bool = False
) -> tuple[subprocess.Popen, dict]:
    """One endpoint per model version (its name), deployed on an inference cluster, served by
    gunicorn as `make run` does; returns the process and each endpoint's key. `through_replicas`:
    the portal forwards every request to the deployment's replica (STUDIO_SERVING_IN_PROCESS=0)."""
    keys = deploy(studio, versions)
    return start_gunicorn(port, workers, threads, through_replicas=through_replicas), keys


def deploy(studio, versions: dict) -> dict:
    """One endpoint per model version (its name), each with one deployment on an inference
    cluster; returns each endpoint's key."""
    from compute.models import TargetKind
    from compute.services import target_create
    from endpoints.services import deployment_create, endpoint_create

    inference = target_create(
        actor=studio.user, workspace=studio.workspace, kind=TargetKind.INFERENCE, name="serving"
    ).target
    keys = {}
    for name, version in versions.items():
        created = endpoint_create(
            actor=studio.user, workspace=studio.workspace, name=name, requests_per_minute=1_000_000
        )
        deployment_create(
            actor=studio.user, endpoint=created.endpoint, name="blue", model_version=version, target=inference
        )
        keys[name] = created.primary
    return keys


def start_gunicorn(port: int, workers: int, threads: int, *, through_replicas: bool = False) -> subprocess.Popen:
    """The portal in gunicorn, as `make run` runs it (its command line, access log included)."""
    from portal.management.commands.studio import web_server_argv  # deferred: Django is set up by now

    proc = subprocess.Popen(
        web_server_argv(f"127.0.0.1:{port}", workers=workers, threads=threads),
        cwd=REPO,
        env={**os.environ, "STUDIO_SERVING_IN_PROCESS": "0" if through_replicas else "1"},
        stdout=subprocess.DEVNULL,  # the access log: written as the studio writes it, not kept
        start_new_session=True,
    )
    wait_http(port, "/health/")
    return proc


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


def warm_up(url: str, key: str | None, body: Path, requests: int = 8) -> None:
    """Requests until every server process has loaded the model (a cold load can take seconds,
    longer than a short wrk run): each must answer 200."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    for _ in range(requests):
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        conn.request("POST", parts.path, body=body.read_bytes(), headers=headers)
        response = conn.getresponse()
        response.read()
        conn.close()
        if response.status != 200:
            raise RuntimeError(f"{url} answered {response.status} while warming up")


def measure(
    name: str, url: str, key: str | None, work: Path, seconds: int, *, prefix: str = "", rows: int = 100
) -> dict:
    """1 row at c1 and c16, 100 rows at c4, with the request bodies in ``work`` (named with
    ``prefix`` when the servers take different bodies); ``rows``: the rows a 100-row answer holds."""
    one, hundred = work / f"{prefix}payload_1.json", work / f"{prefix}payload_100.json"
    warm_up(url, key, one)
    wrk(url, one, connections=1, seconds=2, key=key, work=work)  # warm up
    results = {
        "c1": wrk(url, one, connections=1, seconds=seconds, key=key, work=work),
        "c16": wrk(url, one, connections=16, seconds=seconds, key=key, work=work),
        "rows100_c4": wrk(url, hundred, connections=4, seconds=seconds, key=key, work=work),
    }
    results["rows100_c4"]["rows_per_s"] = results["rows100_c4"]["rps"] * rows
    for label, r in results.items():
        print(
            f"  {name:<7} {label:<11} {r['rps']:>9.1f} req/s  p50 {r['p50_ms']:>7.2f} ms  p90 {r['p90_ms']:>7.2f} ms  "
            f"p99 {r['p99_ms']:>8.2f} ms  non-2xx {r['non_2xx']}  socket errors {r['socket_errors']}"
        )
    return results


def ratios(studio: dict, mlflow: dict) -> dict:
    figures = {
        "c16_ratio": studio["c16"]["rps"] / mlflow["c16"]["rps"],
        "p50_ratio": studio["c1"]["p50_ms"] / mlflow["c1"]["p50_ms"],
        "rows100_ratio": studio["rows100_c4"]["rows_per_s"] / mlflow["rows100_c4"]["rows_per_s"],
    }
    runs = (*studio.values(), *mlflow.values())
    # A run that completed no request has no figures (its p50 reads 0): it counts as an error.
    errors = sum(r["non_2xx"] + r["socket_errors"] + (r["requests"] == 0) for r in runs)
    figures["errors"] = errors
    figures["met"] = (
        figures["c16_ratio"] >= GOAL_C16 and figures["p50_ratio"] <= GOAL_P50 and figures["rows100_ratio"] >= GOAL_ROWS
    ) and errors == 0
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="wrk seconds per figure")
    parser.add_argument("--load-seconds", type=int, default=60)
    parser.add_argument("--soak", type=int, default=0, help="soak for this many seconds at half capacity")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--skip-mlflow", action="store_true")
    parser.add_argument(
        "--replicas",
        action="store_true",
        help="serve through the inference cluster's replicas (the portal forwards; no model in the web processes)",
    )
    parser.add_argument(
        "--automl",
        default=",".join(AUTOML_DATASETS),
        help="bench data sets whose AutoML best model is also served (comma-separated; empty: none)",
    )
    parser.add_argument(
        "--automl-regression",
        default=",".join(REGRESSION_DATASETS),
        help="regression bench data sets whose AutoML best model is also served (comma-separated; empty: none)",
    )
    parser.add_argument(
        "--forecast-series",
        default=",".join(FORECAST_SERIES),
        help="monthly series of the forecasting suite one AutoML forecasting model is made over and served "
        "(comma-separated; empty: none)",
    )
    parser.add_argument("--automl-budget", type=float, default=60.0, help="each AutoML run's time budget, seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ports", default=None, help="pick the servers' ports in this range, e.g. 18400-18499")
    args = parser.parse_args()
    os.environ.update(SINGLE)
    if args.ports:
        global PORTS
        low, high = (int(p) for p in args.ports.split("-"))
        PORTS = range(low, high + 1)
    datasets = [d for d in args.automl.split(",") if d]
    regression_datasets = [d for d in args.automl_regression.split(",") if d]
    series = [s for s in args.forecast_series.split(",") if s]
    work = Path(tempfile.mkdtemp(prefix="studio-bench-serving-"))
    manifest = export_model(work)
    print(
        f"hand-built model: {manifest['model']} with a verified ONNX twin "
        f"(max diff {manifest['conversion']['max_abs_diff']:.1e}); "
        f"in-process score of 1 row (validation + ONNX): {manifest['figures_ms']['score_1row_ms']:.3f} ms",
        flush=True,
    )
    studio_env = make_studio(work, with_cluster=bool(datasets or regression_datasets or series))
    try:
        automl = automl_models(studio_env, work, datasets, budget=args.automl_budget, seed=args.seed)
        automl += automl_models(
            studio_env, work, regression_datasets, budget=args.automl_budget, seed=args.seed, task="regression"
        )
        if series:
            automl.append(forecast_model(studio_env, work, series, budget=args.automl_budget, seed=args.seed))
    finally:
        studio_env.close()  # the cluster's nodes are stopped before anything is measured
    served = [{"name": "bench", "folder": work, "model_sha256": manifest["model_sha256"], "onnx": True}, *automl]
    versions = {"bench": register_hand_built(studio_env, work, manifest)}
    versions.update({m["name"]: m["version"] for m in automl})
    for model in served:
        model["backend"] = serving_backend(versions[model["name"]])
        if model is not served[0]:
            print(
                f"{model['name']}: {model['final_kind']} on {len(model['columns'])} columns "
                f"({', '.join(repr(c) for c in model['columns'][:4])}, ...), served by {model['backend']}"
                + ("" if model["onnx"] else f" - no ONNX twin: {model['onnx_reason']}"),
                flush=True,
            )

    mlflow = {}
    if not args.skip_mlflow:
        for model in served:
            port = free_port()
            forecasting = model.get("task") == "forecasting"
            proc = start_mlflow(model["folder"], model["model_sha256"], port, forecasting=forecasting)
            try:
                mlflow[model["name"]] = measure(
                    f"mlflow {model['name']}",
                    f"http://127.0.0.1:{port}/invocations",
                    None,
                    model["folder"],
                    args.seconds,
                    prefix="mlflow_" if forecasting else "",
                    rows=model.get("rows_per_request", 100),
                )
            finally:
                stop(proc)
    port = free_port()
    proc, keys = start_studio(studio_env, versions, port, args.workers, args.threads, through_replicas=args.replicas)
    replicas = start_replicas(studio_env, work) if args.replicas else None
    path = "replicas" if args.replicas else "in_process"
    print(f"studio serving path: {path}", flush=True)
    studio = {}
    try:
        for model in served:
            url = f"http://127.0.0.1:{port}/score/{model['name']}/"
            studio[model["name"]] = measure(
                f"studio {model['name']}",
                url,
                keys[model["name"]],
                model["folder"],
                args.seconds,
                rows=model.get("rows_per_request", 100),
            )
        url = f"http://127.0.0.1:{port}/score/bench/"
        load = wrk(
            url, work / "payload_1.json", connections=32, seconds=args.load_seconds, key=keys["bench"], work=work
        )
        print(
            f"  load c32 {args.load_seconds} s: {load['rps']:.1f} req/s, p99 {load['p99_ms']:.1f} ms, "
            f"non-2xx {load['non_2xx']}, socket errors {load['socket_errors']}"
        )
        if args.soak:
            soak_run(url, proc, work, args.soak)
    finally:
        stop(proc)
        if replicas is not None:
            stop(replicas)

    print()
    if not mlflow:
        print(
            f"BENCH serving studio_c16_rps={studio['bench']['c16']['rps']:.0f} "
            f"studio_c1_p50_ms={studio['bench']['c1']['p50_ms']:.2f} goals=missed"
        )
        return
    compared = {model["name"]: ratios(studio[model["name"]], mlflow[model["name"]]) for model in served}
    print(f"{'model':<22} {'served by':>9} {'c16 ×':>7} {'c1 p50 ratio':>13} {'100 rows ×':>11}  goals")
    for model in served:
        r = compared[model["name"]]
        print(
            f"{model['name']:<22} {model['backend']:>9} {r['c16_ratio']:>7.1f} {r['p50_ratio']:>13.3f} "
            f"{r['rows100_ratio']:>11.1f}  {'met' if r['met'] else 'missed'}"
        )
    print(
        f"goals: 1-row throughput at c16 ≥ {GOAL_C16:g}× MLflow's; p50 at c1 ≤ {GOAL_P50:g} of MLflow's; "
        f"100-row rows/s ≥ {GOAL_ROWS:g}× MLflow's; no errors"
    )
    for model in automl:
        r = compared[model["name"]]
        print(
            f"BENCH serving_automl model={model['name']} task={model['task']} path={path} "
            f"onnx={ONNX_WORDS.get(model['backend'], 'no')} "
            f"c16_ratio={r['c16_ratio']:.1f} p50_ratio={r['p50_ratio']:.3f} rows100_ratio={r['rows100_ratio']:.1f} "
            f"studio_c1_p50_ms={studio[model['name']]['c1']['p50_ms']:.2f} "
            f"mlflow_c1_p50_ms={mlflow[model['name']]['c1']['p50_ms']:.2f} goals={'met' if r['met'] else 'missed'}"
        )
    hand = compared["bench"]
    hand_met = hand["met"] and load["non_2xx"] == 0 and load["socket_errors"] == 0
    automl_met = all(compared[m["name"]]["met"] for m in automl)
    tabular = [m for m in automl if m["task"] != "forecasting"]  # a forecasting model is skops (+ ONNX members)
    onnx_share = sum(m["backend"] == "onnx" for m in tabular) / len(tabular) if tabular else float("nan")
    print(
        f"BENCH serving path={path} c16_ratio={hand['c16_ratio']:.1f} p50_ratio={hand['p50_ratio']:.3f} "
        f"rows100_ratio={hand['rows100_ratio']:.1f} "
        f"studio_c16_rps={studio['bench']['c16']['rps']:.0f} mlflow_c16_rps={mlflow['bench']['c16']['rps']:.0f} "
        f"studio_c1_p50_ms={studio['bench']['c1']['p50_ms']:.2f} mlflow_c1_p50_ms={mlflow['bench']['c1']['p50_ms']:.2f} "
        f"load_c32_errors={load['non_2xx'] + load['socket_errors']} "
        f"automl_models={len(automl)} automl_onnx={onnx_share:.2f} automl_goals={'met' if automl_met else 'missed'} "
        f"goals={'met' if hand_met and automl_met and automl else 'missed'}"
    )


def soak_run(url: str, proc: subprocess.Popen, work: Path, seconds: int) -> dict:
    """Half capacity for ``seconds``, memory sampled: wrk cannot pace requests, so fewer
    connections than the c16 run saturates."""
    samples = []
    started = time.monotonic()
    soak_proc = subprocess.Popen(
        ["wrk", "-t", "1", "-c", "2", "-d", f"{seconds}s", "-s", str(work / "wrk-1-payload_1.lua"), url],
        stdout=subprocess.PIPE,
        text=True,
    )
    while soak_proc.poll() is None:
        samples.append((round(time.monotonic() - started), rss_mb(proc.pid)))
        time.sleep(max(1, seconds // 60))
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
        f"  soak {seconds} s at c2: {soak['requests']:,} requests, non-2xx {soak['non_2xx']}; memory "
        f"{first:.0f} MB (after warm-up) → {last:.0f} MB at the end"
    )
    return soak


if __name__ == "__main__":
    main()
