"""The README's run command: it serves the login page, the printed login works, Ctrl-C stops all."""

import http.cookiejar
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.worker]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(data_dir, port, lab_port=None):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE")
    }
    env["STUDIO_DATA_DIR"] = str(data_dir)
    log = open(data_dir / f"run-{time.monotonic_ns()}.log", "w+")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "studio", "--port", str(port), "--web-workers", "1"]
        + (["--lab-port", str(lab_port)] if lab_port else []),
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return proc, log


def wait_for_output(log, pattern, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log.seek(0)
        text = log.read()
        if re.search(pattern, text):
            return text
        time.sleep(0.2)
    log.seek(0)
    raise AssertionError(f"no {pattern!r} in:\n{log.read()[-3000:]}")


def wait_for_http(url, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own server
                return response.status, response.read().decode()
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} never answered")


def lab_proxy_status(url, timeout=60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own server
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} never answered")


def sign_in(base, username, password) -> bool:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(base + "/login/").read().decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    data = urllib.parse.urlencode({"username": username, "password": password, "csrfmiddlewaretoken": csrf}).encode()
    request = urllib.request.Request(base + "/login/", data=data, headers={"Referer": base + "/login/"})
    home = opener.open(request).read().decode()
    return "Your workspaces" in home and "Demo" in home


def stop(proc):
    os.kill(proc.pid, signal.SIGINT)
    proc.wait(timeout=60)


def child_pids(pid):
    out = subprocess.run(["ps", "-eo", "pid,ppid"], capture_output=True, text=True).stdout.split()[2:]
    pairs = list(zip(out[::2], out[1::2], strict=True))
    return [int(c) for c, p in pairs if int(p) == pid]


def cmdline(pid) -> str:
    return open(f"/proc/{pid}/cmdline").read().replace("\0", " ")


def maps(pid) -> str:
    return open(f"/proc/{pid}/maps").read()


def test_run_serves_login_prints_a_working_password_and_stops_on_ctrl_c(tmp_path):
    port, lab_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    proc, log = start(tmp_path, port, lab_port)
    try:
        text = wait_for_output(log, r"Password: (\S+)")
        password = re.search(r"Password: (\S+)", text).group(1)
        assert f"http://localhost:{port}/" in text and "Login:    admin" in text
        status, html = wait_for_http(base + "/login/")
        assert status == 200 and "Sign in to Studio" in html
        assert sign_in(base, "admin", password)
        children = child_pids(proc.pid)
        assert len(children) == 5  # web server, lab proxy, worker, scheduler, compute agent
        # Only the web server's workers serve pages, and only they load the views and the ML stack with them
        # (that they have scikit-learn mapped shows what the probe sees).
        web = next(c for c in children if "gunicorn" in cmdline(c))
        assert [c for c in [proc.pid, *children] if c != web and "sklearn" in maps(c)] == []
        web_workers = child_pids(web)
        assert web_workers and all("sklearn" in maps(worker) for worker in web_workers)
        assert lab_proxy_status(f"http://127.0.0.1:{lab_port}/w/1/compute/1/lab/") == 404  # no session: no lab
    finally:
        stop(proc)
    assert proc.returncode == 0
    for child in children:
        assert not os.path.exists(f"/proc/{child}") or open(f"/proc/{child}/stat").read().split()[2] == "Z"
    with pytest.raises(OSError):
        urllib.request.urlopen(base + "/login/", timeout=2)  # noqa: S310

    # A second run reuses what exists and changes no password; the static files, unchanged, are not collected again.
    manifest = tmp_path / "static" / "staticfiles.json"
    collected = manifest.stat().st_mtime_ns
    proc, log = start(tmp_path, port, lab_port)
    try:
        text = wait_for_output(log, r"Press Ctrl-C")
        assert "the one printed on the first run" in text
        wait_for_http(base + "/login/")
        assert sign_in(base, "admin", password)
    finally:
        stop(proc)
    assert manifest.stat().st_mtime_ns == collected
