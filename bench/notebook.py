"""Notebook benchmark: a compute instance's JupyterLab through the studio's lab proxy.

    apt-get install wrk                                 # the serving part's load generator
    OMP_NUM_THREADS=1 .venv/bin/python bench/notebook.py            # about 6 minutes
    OMP_NUM_THREADS=1 .venv/bin/python bench/notebook.py --skip-serving   # the lab figures only

The product path, on a throwaway studio (SQLite, a data directory of its own): a user's compute
instance is started with the instance service, the local provisioner (compute.agent.LocalAgent,
as `make run` runs it) starts its node and its lab process, the lab process starts JupyterLab in
the sandbox in the curated lab environment, and the lab proxy (`manage.py lab_proxy`, as the run
command starts it) serves it to the owner's studio session. Measured:

  * start → lab answering: from instance_start() to the first 200 of the lab page through the
    proxy, with the environment already built on this host (its first build is reported apart);
    several stop/start cycles, the worst reported. Goal ≤ 10 s (Azure ML: minutes).
  * kernel round trip: an execute_request of `1+1` until its execute_reply, on one kernel's
    WebSocket, directly to the Jupyter server (with its token) and through the proxy (with the
    session cookie); medians of interleaved rounds. Goal: proxied ≤ 1.5× direct.
  * static asset: GET of one of JupyterLab's JavaScript files, sequential, through the proxy and
    directly; p50. Goal: proxied p50 ≤ 5 ms on loopback.
  * serving with a lab open: bench/serving.py's hand-built model through the studio's scoring
    endpoint (gunicorn, as `make run`) against `mlflow models serve`, while a notebook kernel
    runs cells through the proxy all along. Goals: bench/serving.py's (c16 ≥ 10× MLflow, c1 p50
    ≤ 1/5, 100-row rows/s ≥ 3×, no errors).

Ends with one line ``BENCH notebook ... goals=met|missed``.
"""

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
SINGLE = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
GOAL_START_S, GOAL_KERNEL_RATIO, GOAL_STATIC_P50_MS = 10.0, 1.5, 5.0


class Lab:
    """The studio side: a user, a workspace, a compute instance, the agent in a thread, the proxy."""

    def __init__(self, work: Path):
        # The throwaway studio's settings before Django starts (bench/automl.py imports models).
        data_dir = work / "studio-data"
        data_dir.mkdir(parents=True)
        os.environ.update({"STUDIO_DATA_DIR": str(data_dir), "DJANGO_SETTINGS_MODULE": "studio.settings"})
        os.environ.pop("DATABASE_URL", None)
        os.environ.pop("CELERY_BROKER_URL", None)
        import django

        django.setup()
        from automl import _Studio

        self.studio = _Studio(data_dir=data_dir, with_cluster=False)
        from django.test import Client

        from compute.agent import LocalAgent
        from compute.models import TargetKind
        from compute.services import target_create

        self.user, self.workspace = self.studio.user, self.studio.workspace
        self.target = target_create(
            actor=self.user, workspace=self.workspace, kind=TargetKind.INSTANCE, name="my-lab", size="medium"
        ).target
        self.target.refresh_from_db()
        client = Client()
        client.force_login(self.user)
        self.cookie = client.cookies["sessionid"].value
        from serving import free_port

        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, **SINGLE, "STUDIO_LAB_URL": self.origin, "DJANGO_SETTINGS_MODULE": "studio.settings"}
        self.proxy = subprocess.Popen(
            [sys.executable, "manage.py", "lab_proxy", "--port", str(self.port)],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.agent = LocalAgent(log_dir=str(work))
        self.stop_agent = threading.Event()
        threading.Thread(target=self._agent_loop, daemon=True).start()

    def _agent_loop(self):
        from django.db import close_old_connections

        while not self.stop_agent.wait(0.1):
            close_old_connections()
            try:
                self.agent.tick()
            except Exception as exc:  # noqa: BLE001 - a bench reports and goes on
                print(f"agent tick failed: {exc}", flush=True)

    @property
    def base(self) -> str:
        from labs.runtime import lab_base_url

        return lab_base_url(workspace_id=self.workspace.pk, target_id=self.target.pk)

    def direct(self) -> tuple[str, str]:
        """The Jupyter server's own address and token (what the proxy adds; never the browser's)."""
        from commands.sealing import unseal
        from labs.models import InstanceLab

        lab = InstanceLab.objects.get(target=self.target)
        return lab.address, unseal(lab.token_sealed)

    def start_and_time(self, timeout: float = 600) -> float:
        """instance_start() → the lab page answering 200 through the proxy, in seconds."""
        import urllib.error
        import urllib.request

        from compute.services import instance_start

        started = time.monotonic()
        instance_start(actor=self.user, target=self.target)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        request = urllib.request.Request(  # noqa: S310 - our own proxy
            f"{self.origin}{self.base}lab", headers={"Cookie": f"sessionid={self.cookie}"}
        )
        while time.monotonic() - started < timeout:
            try:
                with opener.open(request, timeout=5) as response:
                    if response.status == 200:
                        return time.monotonic() - started
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        raise TimeoutError(f"the lab did not answer within {timeout:.0f} s: {self.lab_state()}")

    def lab_state(self) -> str:
        from labs.models import InstanceLab

        lab = InstanceLab.objects.filter(target=self.target).first()
        return f"{lab.state}: {lab.reason}\n{lab.log_tail[-2000:]}" if lab else "no lab row"

    def stop_and_wait(self, timeout: float = 60) -> None:
        from compute.models import Node, NodeStatus
        from compute.services import instance_stop
        from labs.models import InstanceLab, LabState

        instance_stop(actor=self.user, target=self.target)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            live = Node.objects.filter(target=self.target, status__in=[*NodeStatus.live(), NodeStatus.LEAVING])
            lab = InstanceLab.objects.filter(target=self.target).first()
            if not live.exists() and (lab is None or lab.state != LabState.READY) and not self.agent.children:
                return
            time.sleep(0.1)
        raise TimeoutError("the instance did not stop")

    def close(self):
        self.stop_agent.set()
        self.agent.stop_all(kill=True)
        self.proxy.terminate()
        self.proxy.wait(timeout=10)


# --- The Jupyter kernel protocol over WebSocket (JSON messages, as JupyterLab's own front end) ---
def _execute_request(code: str, session: str) -> tuple[str, str]:
    msg_id = uuid.uuid4().hex
    message = {
        "header": {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "username": "bench",
            "session": session,
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {}},
        "channel": "shell",
    }
    return msg_id, json.dumps(message)


async def _round_trip(ws, code: str, session: str) -> float:
    msg_id, text = _execute_request(code, session)
    started = time.perf_counter()
    await ws.send_str(text)
    while True:
        message = json.loads((await ws.receive()).data)
        if message.get("parent_header", {}).get("msg_id") == msg_id and message["msg_type"] == "execute_reply":
            return time.perf_counter() - started


async def kernel_round_trips(lab: Lab, rounds: int, address: str, token: str) -> dict:
    """Medians of interleaved execute round trips, direct and through the proxy, on one kernel."""
    import aiohttp

    direct_headers = {"Authorization": f"token {token}"}
    proxied_headers = {"Cookie": f"sessionid={lab.cookie}", "Origin": lab.origin}
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"http://{address}{lab.base}api/kernels", json={"name": "python3"}, headers=direct_headers
        ) as r:
            kernel = (await r.json())["id"]
        channels = f"{lab.base}api/kernels/{kernel}/channels"
        session = uuid.uuid4().hex
        direct = await http.ws_connect(f"ws://{address}{channels}?session_id={session}", headers=direct_headers)
        proxied = await http.ws_connect(
            f"ws://127.0.0.1:{lab.port}{channels}?session_id={session}b", headers=proxied_headers
        )
        for ws in (direct, proxied):  # the kernel's first execution imports things
            await _round_trip(ws, "1+1", session)
        times = {"direct": [], "proxied": []}
        for _ in range(rounds):
            times["direct"].append(await _round_trip(direct, "1+1", session))
            times["proxied"].append(await _round_trip(proxied, "1+1", session))
        await direct.close()
        await proxied.close()
        await http.delete(f"http://{address}{lab.base}api/kernels/{kernel}", headers=direct_headers)
    return {name: statistics.median(values) * 1000 for name, values in times.items()}


async def static_p50(lab: Lab, requests: int, address: str, token: str) -> dict:
    """p50 of sequential GETs of one of JupyterLab's JavaScript files, through the proxy and directly."""
    import aiohttp

    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://{address}{lab.base}lab", headers={"Authorization": f"token {token}"}) as r:
            page = await r.text()
        match = re.search(r'src="([^"]+\.js[^"]*)"', page)
        if not match:
            raise RuntimeError("the lab page names no script")
        asset = match.group(1)
        path = asset if asset.startswith("/") else f"{lab.base}{asset}"
        targets = {
            "direct": (f"http://{address}{path}", {"Authorization": f"token {token}"}),
            "proxied": (f"http://127.0.0.1:{lab.port}{path}", {"Cookie": f"sessionid={lab.cookie}"}),
        }
        figures = {}
        for name, (url, headers) in targets.items():
            times = []
            for i in range(requests + 20):
                started = time.perf_counter()
                async with http.get(url, headers=headers) as r:
                    body = await r.read()
                    assert r.status == 200, (name, r.status)
                if i >= 20:  # warm-up
                    times.append(time.perf_counter() - started)
            figures[name] = statistics.median(times) * 1000
            figures["bytes"] = len(body)
    figures["asset"] = path.rsplit("/", 1)[-1]
    return figures


class BusyNotebook:
    """A notebook at work through the proxy while serving is measured: a cell every 50 ms."""

    def __init__(self, lab: Lab):
        self.lab, self.stop, self.cells = lab, threading.Event(), 0
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self):
        import aiohttp

        lab = self.lab
        headers = {"Cookie": f"sessionid={lab.cookie}", "Origin": lab.origin}
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{lab.origin}{lab.base}api/kernels", json={"name": "python3"}, headers=headers) as r:
                kernel = (await r.json())["id"]
            session = uuid.uuid4().hex
            ws = await http.ws_connect(
                f"ws://127.0.0.1:{lab.port}{lab.base}api/kernels/{kernel}/channels", headers=headers
            )
            while not self.stop.is_set():
                await _round_trip(ws, "sum(range(10000))", session)
                self.cells += 1
                await asyncio.sleep(0.05)
            await ws.close()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=30)


def serving_with_lab(lab: Lab, work: Path, seconds: int) -> dict:
    """bench/serving.py's hand-built model, the studio measured while the notebook works."""
    import serving

    manifest = serving.export_model(work)
    version = serving.register_hand_built(lab.studio, work, manifest)
    port = serving.free_port()
    mlflow_proc = serving.start_mlflow(work, manifest["model_sha256"], port)
    try:
        mlflow = serving.measure("mlflow", f"http://127.0.0.1:{port}/invocations", None, work, seconds)
    finally:
        serving.stop(mlflow_proc)
    port = serving.free_port()
    proc, keys = serving.start_studio(lab.studio, {"bench": version}, port, 2, 4)
    try:
        with BusyNotebook(lab) as notebook:
            studio = serving.measure("studio", f"http://127.0.0.1:{port}/score/bench/", keys["bench"], work, seconds)
        print(f"  (the notebook ran {notebook.cells} cells through the proxy meanwhile)", flush=True)
    finally:
        serving.stop(proc)
    figures = serving.ratios(studio, mlflow)
    figures["cells"] = notebook.cells
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--starts", type=int, default=3, help="timed stop/start cycles after the first start")
    parser.add_argument("--rounds", type=int, default=300, help="kernel round trips, each way")
    parser.add_argument("--requests", type=int, default=500, help="static asset requests, each way")
    parser.add_argument("--seconds", type=int, default=10, help="wrk seconds per serving figure")
    parser.add_argument("--skip-serving", action="store_true")
    args = parser.parse_args()
    os.environ.update(SINGLE)
    work = Path(tempfile.mkdtemp(prefix="studio-bench-notebook-"))
    lab = Lab(work)
    try:
        first = lab.start_and_time()
        print(f"first start (environment built on this host if not cached): {first:.1f} s", flush=True)
        starts = []
        for _ in range(args.starts):
            lab.stop_and_wait()
            starts.append(lab.start_and_time())
            print(f"start → lab answering: {starts[-1]:.2f} s", flush=True)
        kernel = asyncio.run(kernel_round_trips(lab, args.rounds, *lab.direct()))
        kernel_ratio = kernel["proxied"] / kernel["direct"]
        print(f"kernel round trip: direct {kernel['direct']:.2f} ms, proxied {kernel['proxied']:.2f} ms", flush=True)
        static = asyncio.run(static_p50(lab, args.requests, *lab.direct()))
        print(
            f"static asset {static['asset']} ({static['bytes']:,} bytes): direct p50 {static['direct']:.2f} ms, "
            f"proxied p50 {static['proxied']:.2f} ms",
            flush=True,
        )
        serving = None if args.skip_serving else serving_with_lab(lab, work, args.seconds)
    finally:
        lab.close()
    start_worst = max(starts)
    met = (
        start_worst <= GOAL_START_S
        and kernel_ratio <= GOAL_KERNEL_RATIO
        and static["proxied"] <= GOAL_STATIC_P50_MS
        and serving is not None
        and serving["met"]
    )
    serving_text = (
        "serving=skipped"
        if serving is None
        else f"serving_c16_ratio={serving['c16_ratio']:.1f} serving_p50_ratio={serving['p50_ratio']:.3f} "
        f"serving_rows100_ratio={serving['rows100_ratio']:.1f} serving_errors={serving['errors']}"
    )
    print(
        f"BENCH notebook start_to_lab_s={start_worst:.2f} first_start_s={first:.1f} "
        f"kernel_direct_ms={kernel['direct']:.2f} kernel_proxied_ms={kernel['proxied']:.2f} "
        f"kernel_ratio={kernel_ratio:.2f} static_p50_ms={static['proxied']:.2f} "
        f"static_direct_p50_ms={static['direct']:.2f} {serving_text} goals={'met' if met else 'missed'}"
    )


if __name__ == "__main__":
    main()
