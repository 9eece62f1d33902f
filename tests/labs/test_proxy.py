"""The lab proxy, in front of a real Jupyter server: only the instance's owner reaches the lab,
HTTP and WebSockets pass both ways, big bodies round-trip, and Jupyter's token never comes back.

The proxy runs as its own process (`manage.py lab_proxy`) against the test database; Jupyter runs
from a throwaway environment kept under /var/cache/studio-lab-tests (made on first use).
"""

import asyncio
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
import requests
from django.conf import settings as django_settings
from django.test import Client

from commands.sealing import seal
from compute.models import ComputeTarget, TargetKind
from labs.models import InstanceLab, LabState
from labs.proxy import TokenMask
from tests.conftest import CI, REPO, _database_url, run_coroutine, wait_for
from workspaces.models import Membership, Role, Workspace

JUPYTERLAB = "jupyterlab==4.6.6"
LAB_ENV = Path("/var/cache/studio-lab-tests") / JUPYTERLAB.replace("==", "-")
# Jupyter's base URL holds the ids, and one server serves the whole module: fixed, unlikely ids.
WORKSPACE_ID, TARGET_ID = 7_700_001, 7_700_002
BASE = f"/w/{WORKSPACE_ID}/compute/{TARGET_ID}/lab/"
TOKEN = "jupyter-" + uuid.uuid4().hex + uuid.uuid4().hex
ROUTE_SECONDS = 0.3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_http(url: str, *, timeout: float, proc: subprocess.Popen, log: Path, **kwargs) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            requests.get(url, timeout=5, **kwargs)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} not answering after {timeout}s:\n{log.read_text()[-4000:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _lab_python() -> Path:
    python = LAB_ENV / "bin" / "python"
    if not python.exists():
        uv = Path(sys.executable).parent / "uv"
        LAB_ENV.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([uv, "venv", "--python", sys.executable, str(LAB_ENV)], check=True)
        subprocess.run([uv, "pip", "install", "--python", str(python), JUPYTERLAB], check=True, timeout=900)
    return python


@pytest.fixture(scope="module")
def jupyter(tmp_path_factory):
    """A real Jupyter server (JupyterLab) on loopback, as the lab process starts it."""
    if not CI and not (LAB_ENV / "bin" / "python").exists() and shutil.which("uv") is None:
        pytest.skip("no JupyterLab environment")
    python = _lab_python()
    home = tmp_path_factory.mktemp("lab home")
    root = home / "my notebooks"
    root.mkdir()
    port = _free_port()
    log = home / "jupyter.log"
    env = {
        "PATH": f"{python.parent}:/usr/bin:/bin",
        "HOME": str(home),
        "JUPYTER_CONFIG_DIR": str(home / ".jupyter"),
        "JUPYTER_DATA_DIR": str(home / ".local/share/jupyter"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "OMP_NUM_THREADS": "1",
    }
    argv = [
        str(python),
        "-m",
        "jupyterlab",
        "--no-browser",
        "--allow-root",  # the tests run as root here; the lab process runs it in the sandbox
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--ServerApp.base_url={BASE}",
        f"--IdentityProvider.token={TOKEN}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.extension_manager=readonly",
    ]
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, env=env, cwd=home, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_http(f"http://127.0.0.1:{port}{BASE}api/status", timeout=120, proc=proc, log=log)
        yield {"address": f"127.0.0.1:{port}", "root": root}
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def proxy_process(django_db_setup, tmp_path_factory):
    """The lab proxy process, reading the test database: (its URL, its process)."""
    port = _free_port()
    data_dir = tmp_path_factory.mktemp("proxy-data")
    log = data_dir / "proxy.log"
    env = {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"},
        "DJANGO_SETTINGS_MODULE": "studio.settings",
        "DATABASE_URL": _database_url(),
        "STUDIO_DATA_DIR": str(data_dir),
        "SECRET_KEY": django_settings.SECRET_KEY,  # to unseal the lab's token
        "STUDIO_LAB_ROUTE_SECONDS": str(ROUTE_SECONDS),
        "STUDIO_LAB_URL": f"http://127.0.0.1:{port}",
        "OMP_NUM_THREADS": "1",
    }
    argv = [sys.executable, "manage.py", "lab_proxy", "--host", "127.0.0.1", "--port", str(port)]
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_http(f"http://127.0.0.1:{port}/", timeout=60, proc=proc, log=log)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        _stop(proc)


@pytest.fixture
def proxy(proxy_process) -> str:
    return proxy_process[0]


def _peak_memory_bytes(proc: subprocess.Popen) -> int:
    for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.fixture
def lab(transactional_db, jupyter, make_user):
    """Bob's compute instance, its lab READY on the Jupyter server; Alice owns the workspace."""
    alice, bob, carol, mallory = (make_user(n) for n in ("alice", "bob", "carol", "mallory"))
    workspace = Workspace.objects.create(pk=WORKSPACE_ID, name="Lab team ü")
    Membership.objects.create(workspace=workspace, user=alice, role=Role.OWNER)
    Membership.objects.create(workspace=workspace, user=bob, role=Role.CONTRIBUTOR)
    Membership.objects.create(workspace=workspace, user=carol, role=Role.CONTRIBUTOR)
    target = ComputeTarget.objects.create(
        pk=TARGET_ID, workspace=workspace, name="bobs-box", kind=TargetKind.INSTANCE, owner=bob, instance_running=True
    )
    lab = InstanceLab.objects.create(
        target=target, state=LabState.READY, address=jupyter["address"], token_sealed=seal(TOKEN)
    )
    return {"lab": lab, "target": target, "people": {"alice": alice, "bob": bob, "carol": carol, "mallory": mallory}}


def _cookies(user) -> dict:
    client = Client()
    client.force_login(user)
    return {"sessionid": client.cookies["sessionid"].value}


def _assert_no_token(response: requests.Response) -> None:
    assert TOKEN not in response.text
    assert all(TOKEN not in value for value in response.headers.values())


def test_the_owner_gets_the_lab_page_and_the_server_status(proxy, lab):
    cookies = _cookies(lab["people"]["bob"])
    page = requests.get(f"{proxy}{BASE}", cookies=cookies, timeout=30)
    assert page.status_code == 200, page.text[:500]
    assert page.url.startswith(proxy)  # Jupyter's redirect (to .../lab) stayed on the proxy
    assert "JupyterLab" in page.text
    _assert_no_token(page)
    assert "0" * len(TOKEN) in page.text  # the page config's copy was masked
    status = requests.get(f"{proxy}{BASE}api/status", cookies=cookies, timeout=30)
    assert status.status_code == 200
    assert "started" in status.json()
    _assert_no_token(status)


def test_the_lab_without_the_trailing_slash_redirects_to_it(proxy, lab):
    response = requests.get(f"{proxy}{BASE[:-1]}", cookies=_cookies(lab["people"]["bob"]), allow_redirects=False)
    assert response.status_code == 302
    assert response.headers["Location"] == BASE


@pytest.mark.parametrize("who", ["alice", "carol", "mallory", "anonymous", "forged"])
def test_anyone_but_the_owner_gets_404(proxy, lab, who):
    special = {"anonymous": {}, "forged": {"sessionid": "x" * 32}}
    cookies = special[who] if who in special else _cookies(lab["people"][who])
    for path in ("", "api/status", "api/contents"):
        response = requests.get(f"{proxy}{BASE}{path}", cookies=cookies, timeout=30)
        assert response.status_code == 404, (who, path)
        assert "JupyterLab" not in response.text
        _assert_no_token(response)


def test_a_signed_out_session_stops_working_within_the_cache_time(proxy, lab):
    client = Client()
    client.force_login(lab["people"]["bob"])
    cookies = {"sessionid": client.cookies["sessionid"].value}
    assert requests.get(f"{proxy}{BASE}api/status", cookies=cookies).status_code == 200
    client.logout()
    wait_for(
        lambda: requests.get(f"{proxy}{BASE}api/status", cookies=cookies).status_code == 404,
        timeout=ROUTE_SECONDS * 20,
        message="the signed-out session refused",
    )


def test_a_lab_not_ready_shows_its_state_to_the_owner(proxy, lab):
    cookies = _cookies(lab["people"]["bob"])
    InstanceLab.objects.filter(pk=lab["lab"].pk).update(
        state=LabState.STARTING, reason="preparing the environment <jupyterlab>", address="", token_sealed=""
    )
    time.sleep(ROUTE_SECONDS * 2)
    starting = requests.get(f"{proxy}{BASE}", cookies=cookies)
    assert starting.status_code == 503
    assert starting.headers["Retry-After"] == "5"
    assert "starting" in starting.text and "preparing the environment &lt;jupyterlab&gt;" in starting.text
    ComputeTarget.objects.filter(pk=TARGET_ID).update(instance_running=False)
    time.sleep(ROUTE_SECONDS * 2)
    stopped = requests.get(f"{proxy}{BASE}api/status", cookies=cookies)
    assert stopped.status_code == 404
    assert "stopped" in stopped.text
    # Others still learn nothing.
    other = requests.get(f"{proxy}{BASE}", cookies=_cookies(lab["people"]["alice"]))
    assert other.status_code == 404 and "stopped" not in other.text


def _execute_request(code: str) -> dict:
    return {
        "header": {
            "msg_id": uuid.uuid4().hex,
            "username": "bob",
            "session": uuid.uuid4().hex,
            "msg_type": "execute_request",
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "content": {
            "code": code,
            "silent": False,
            "store_history": False,
            "user_expressions": {},
            "allow_stdin": False,
        },
        "channel": "shell",
        "buffers": [],
    }


async def _run_code(proxy: str, cookies: dict, kernel_id: str, code: str, *, origin: str) -> tuple[str, str]:
    """Execute `code` over the kernel's WebSocket through the proxy: (its stdout, the reply's status)."""
    url = f"{proxy.replace('http', 'ws', 1)}{BASE}api/kernels/{kernel_id}/channels"
    async with aiohttp.ClientSession(cookies=cookies) as session:
        async with session.ws_connect(url, headers={"Origin": origin}) as ws:
            request = _execute_request(code)
            await ws.send_str(json.dumps(request))
            stdout, status, idle = "", None, False
            async with asyncio.timeout(120):
                async for message in ws:
                    assert TOKEN not in message.data
                    reply = json.loads(message.data)
                    if reply.get("parent_header", {}).get("msg_id") != request["header"]["msg_id"]:
                        continue
                    if reply["msg_type"] == "stream":
                        stdout += reply["content"]["text"]
                    elif reply["msg_type"] == "execute_reply":
                        status = reply["content"]["status"]
                    elif reply["msg_type"] == "status" and reply["content"]["execution_state"] == "idle":
                        idle = True
                    # the reply (shell) may overtake the output (iopub): done when both say so
                    if status is not None and idle:
                        return stdout, status
    raise AssertionError("no execute_reply")


def test_a_kernel_runs_code_over_a_websocket_through_the_proxy(proxy, lab):
    cookies = _cookies(lab["people"]["bob"])
    kernel = requests.post(f"{proxy}{BASE}api/kernels", cookies=cookies, json={"name": "python3"}, timeout=60)
    assert kernel.status_code == 201, kernel.text
    kernel_id = kernel.json()["id"]
    try:
        stdout, status = run_coroutine(_run_code(proxy, cookies, kernel_id, "print(6 * 7, 'ü')", origin=proxy))
        assert (stdout, status) == ("42 ü\n", "ok")
    finally:
        requests.delete(f"{proxy}{BASE}api/kernels/{kernel_id}", cookies=cookies, timeout=60)


def test_a_websocket_or_a_write_from_a_foreign_origin_is_refused(proxy, lab):
    cookies = _cookies(lab["people"]["bob"])
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        run_coroutine(_run_code(proxy, cookies, "0" * 8, "print(1)", origin="http://evil.example"))
    assert refused.value.status == 403
    write = requests.post(
        f"{proxy}{BASE}api/kernels", cookies=cookies, json={}, headers={"Origin": "http://evil.example"}
    )
    assert write.status_code == 403
    sneaky = requests.post(
        f"{proxy}{BASE}api/kernels", cookies=cookies, json={}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert sneaky.status_code == 403
    assert requests.get(f"{proxy}{BASE}api/kernels", cookies=cookies).json() == []  # nothing was started


def test_a_multi_mib_file_goes_up_and_comes_back_whole_never_whole_in_the_proxy(proxy_process, lab, jupyter):
    proxy, process = proxy_process
    cookies = _cookies(lab["people"]["bob"])
    peak_before = _peak_memory_bytes(process)
    payload = os.urandom(24 * 2**20) + TOKEN.encode()[:10]
    name = "big data ü.bin"
    body = {"type": "file", "format": "base64", "content": base64.b64encode(payload).decode()}
    upload = requests.put(f"{proxy}{BASE}api/contents/{quote(name)}", cookies=cookies, json=body, timeout=120)
    assert upload.status_code in (200, 201), upload.text[:500]
    assert (jupyter["root"] / name).read_bytes() == payload
    download = requests.get(f"{proxy}{BASE}files/{quote(name)}", cookies=cookies, timeout=120)
    assert download.status_code == 200
    assert download.content == payload
    # A body without Content-Length (chunked) streams through too.
    encoded = json.dumps(body).encode()
    raw = requests.put(
        f"{proxy}{BASE}api/contents/{quote('chunked ü.bin')}",
        cookies=cookies,
        data=(encoded[i : i + 2**20] for i in range(0, len(encoded), 2**20)),
        headers={"Content-Type": "application/json"},
        timeout=120,
    )
    assert raw.status_code in (200, 201), raw.text[:500]
    assert (jupyter["root"] / "chunked ü.bin").read_bytes() == payload
    # 32 MiB of JSON went up twice and 24 MiB came down: streamed, the proxy's peak barely moved.
    assert _peak_memory_bytes(process) - peak_before < 12 * 2**20


def test_the_studio_sends_the_owner_to_the_lab_origin_and_others_to_404(lab, settings):
    settings.STUDIO_LAB_URL = ""
    bob = Client()
    bob.force_login(lab["people"]["bob"])
    response = bob.get(f"{BASE}tree/notes.ipynb?x=1")
    assert response.status_code == 302
    assert response["Location"] == f"http://testserver:{settings.STUDIO_LAB_PORT}{BASE}tree/notes.ipynb?x=1"
    settings.STUDIO_LAB_URL = "https://labs.example.org"
    assert bob.get(BASE)["Location"] == f"https://labs.example.org{BASE}"
    for who in ("alice", "carol", "mallory"):
        other = Client()
        other.force_login(lab["people"][who])
        assert other.get(BASE).status_code == 404, who
    assert Client().get(BASE).status_code == 302  # anonymous: to the sign-in page, as everywhere
    assert "/login/" in Client().get(BASE)["Location"]


@pytest.mark.parametrize("cut", [1, 3, 7, 64, 1000])
def test_the_token_mask_finds_the_token_across_chunk_boundaries(cut):
    secret = "abc" + TOKEN
    stream = (b"x" * 5 + secret.encode() + b"abab" + secret.encode() + b"ab") * 3
    mask = TokenMask(secret)
    out = b"".join(mask.feed(stream[i : i + cut]) for i in range(0, len(stream), cut)) + mask.flush()
    assert len(out) == len(stream)
    assert secret.encode() not in out
    assert out == stream.replace(secret.encode(), b"0" * len(secret))


class RecordingUpstream:
    """A small HTTP/WebSocket server standing in for Jupyter where the test must see what arrives
    upstream (headers, close codes), in a thread with its own event loop."""

    def __init__(self):
        self.seen: dict = {}
        self.loop = asyncio.new_event_loop()
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    async def headers(self, request):
        self.seen["headers"] = dict(request.headers)
        self.seen["query"] = dict(request.query)
        response = aiohttp.web.json_response({"ok": True}, headers={"X-Echo": f"token {TOKEN}"})
        response.headers["Connection"] = "X-Hop"
        response.headers["X-Hop"] = "hop-by-hop"
        response.headers["Location"] = f"http://{self.address}{BASE}tree"
        response.set_cookie("sessionid", "planted-by-the-lab")
        response.set_cookie("username-127-0-0-1-8888", "works-like-the-token")
        response.headers.add("Set-Cookie", "=sessionid=planted-without-a-name; Path=/")
        response.set_cookie("_xsrf", "ok")
        return response

    async def websocket(self, request):
        ws = aiohttp.web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            if message.data.startswith("close "):
                await ws.close(code=int(message.data.split()[1]))
                break
            await ws.send_str(message.data)
        self.seen["close_code"] = ws.close_code
        return ws

    def _serve(self):
        asyncio.set_event_loop(self.loop)
        app = aiohttp.web.Application()
        app.router.add_get(BASE + "headers", self.headers)
        app.router.add_get(BASE + "ws", self.websocket)
        self.runner = aiohttp.web.AppRunner(app)
        self.loop.run_until_complete(self.runner.setup())
        self.loop.run_until_complete(aiohttp.web.TCPSite(self.runner, "127.0.0.1", self.port).start())
        self.ready.set()
        self.loop.run_forever()

    def start(self):
        self.thread.start()
        assert self.ready.wait(30)
        return self

    def stop(self):
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)


@pytest.fixture
def recorded(lab):
    upstream = RecordingUpstream().start()
    InstanceLab.objects.filter(pk=lab["lab"].pk).update(address=upstream.address)
    yield upstream
    upstream.stop()


def test_headers_are_rewritten_for_the_lab_and_filtered_on_the_way_back(proxy, lab, recorded):
    cookies = {**_cookies(lab["people"]["bob"]), "csrftoken": "studio-csrf", "_xsrf": "lab-xsrf"}
    response = requests.get(
        f"{proxy}{BASE}headers?token=guess&path=a%20b",
        cookies=cookies,
        headers={"Connection": "keep-alive, X-Private", "X-Private": "hop", "Origin": proxy, "X-Kept": "yes"},
        allow_redirects=False,
    )
    assert response.status_code == 200
    seen = recorded.seen["headers"]
    assert seen["Authorization"] == f"token {TOKEN}"
    assert seen["Host"] == recorded.address and seen["Origin"] == f"http://{recorded.address}"
    assert seen["Cookie"] == "_xsrf=lab-xsrf"  # the studio's session and CSRF cookies stay behind
    assert "X-Private" not in seen and "Accept-Encoding" not in seen and seen["X-Kept"] == "yes"
    assert recorded.seen["query"] == {"path": "a b"}  # a token in the URL would beat the proxy's
    assert response.headers["Location"] == f"{BASE}tree"
    assert "X-Hop" not in response.headers
    assert response.headers["X-Echo"] == "token " + "0" * len(TOKEN)
    # Only Jupyter's XSRF cookie comes back: not the session, not Jupyter's login cookie, not a
    # nameless cookie that the browser would send as the studio's session.
    assert set(response.cookies.keys()) == {"_xsrf"} and response.cookies["_xsrf"] == "ok"
    assert "planted" not in str(response.raw.headers) and "works-like-the-token" not in str(response.raw.headers)


async def _close_codes(proxy: str, cookies: dict) -> tuple[int, str]:
    url = f"{proxy.replace('http', 'ws', 1)}{BASE}ws"
    async with aiohttp.ClientSession(cookies=cookies) as session:
        async with session.ws_connect(url, headers={"Origin": proxy}) as ws:
            await ws.send_str("hello")
            echoed = (await ws.receive(timeout=30)).data
            await ws.send_str("close 4321")
            closing = await ws.receive(timeout=30)
            assert closing.type == aiohttp.WSMsgType.CLOSE
            from_lab = ws.close_code
        async with session.ws_connect(url, headers={"Origin": proxy}) as ws:
            await ws.send_str("bye")
            await ws.receive(timeout=30)
            await ws.close(code=4455)
    return from_lab, echoed


def test_websocket_close_codes_pass_both_ways(proxy, lab, recorded):
    from_lab, echoed = run_coroutine(_close_codes(proxy, _cookies(lab["people"]["bob"])))
    assert echoed == "hello"
    assert from_lab == 4321
    wait_for(lambda: recorded.seen.get("close_code") == 4455, timeout=30, message="the browser's close code upstream")


def test_a_lab_that_does_not_answer_is_a_502_page(proxy, lab):
    InstanceLab.objects.filter(pk=lab["lab"].pk).update(address=f"127.0.0.1:{_free_port()}")
    response = requests.get(f"{proxy}{BASE}api/status", cookies=_cookies(lab["people"]["bob"]))
    assert response.status_code == 502
    assert "not answering" in response.text
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        run_coroutine(_run_code(proxy, _cookies(lab["people"]["bob"]), "0" * 8, "print(1)", origin=proxy))
    assert refused.value.status == 502


def test_jupyterlab_runs_a_notebook_in_chromium_through_the_proxy(proxy, lab, browser):
    """The real front end: its page config's token masked, its XSRF cookie and its kernel
    WebSocket all through the proxy."""
    context = browser.new_context(viewport={"width": 1366, "height": 800})
    context.set_default_timeout(60_000)
    try:
        session = _cookies(lab["people"]["bob"])["sessionid"]
        context.add_cookies([{"name": "sessionid", "value": session, "url": proxy}])
        page = context.new_page()
        refused = []
        page.on("response", lambda r: refused.append(r.url) if r.status in (401, 403) else None)
        page.goto(f"{proxy}{BASE}")
        page.locator(".jp-LauncherCard[data-category='Notebook']").first.click()
        # A cell run before the kernel is connected is not run: wait for the kernel's "Idle".
        page.locator("#jp-main-statusbar", has_text="Idle").wait_for(timeout=180_000)
        cell = page.locator(".jp-Notebook .jp-Cell .cm-content").first
        cell.click()
        page.keyboard.type("print(6 * 7, 'ü')")
        try:
            page.locator(".jp-Notebook .jp-Cell .cm-content", has_text="print(6 * 7").first.wait_for()
            page.keyboard.press("Shift+Enter")
            page.locator(".jp-OutputArea-output", has_text="42 ü").wait_for(timeout=180_000)
        except Exception:
            page.screenshot(path=str(Path(os.environ.get("STUDIO_DATA_DIR", "/tmp")) / "lab-proxy-failure.png"))
            raise
        assert not refused, refused
        assert TOKEN not in page.content()
    finally:
        context.close()


def test_the_route_is_two_queries_and_an_owner_demoted_to_reader_loses_the_lab(lab, django_assert_num_queries):
    from labs.routes import lab_route

    bob = lab["people"]["bob"]
    with django_assert_num_queries(2):
        route = lab_route(workspace_id=WORKSPACE_ID, target_id=TARGET_ID, user=bob)
    assert route.ready and route.token == TOKEN and TOKEN not in repr(route)
    Membership.objects.filter(user=bob).update(role=Role.READER)
    client = Client()
    client.force_login(bob)
    assert client.get(BASE).status_code == 404
