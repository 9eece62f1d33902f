"""In Chromium, the whole path a data scientist takes: Bob's compute instance starts (the real
agent starts its node and its lab process, JupyterLab runs in the sandbox), he opens JupyterLab
from the instance page through the studio, runs a notebook cell that reads a data version with
pandas and logs a metric with MLflow, finds the metric on the studio's run page, runs a command in
a terminal, stops the instance and finds the lab gone, starts it again and finds his files. The
workspace's Owner and another member get not-found on his lab; a foreign origin's WebSocket is
refused."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import aiohttp
import pytest
import requests
from django.conf import settings as django_settings
from django.test import Client
from playwright.sync_api import expect

from compute.jobs.models import Job, Metric
from compute.models import TargetKind
from compute.services import target_create
from labs.models import InstanceLab, LabState
from tests.conftest import login, run_coroutine, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.worker]

REPO = Path(__file__).resolve().parents[2]
SHOTS = os.environ.get("STUDIO_TEST_SCREENSHOTS")
CELL = (
    "import os, pandas as pd, mlflow; "
    "frame = pd.read_parquet(os.path.join(os.environ['STUDIO_DATA_DIR'], 'penguins', 'v1.parquet')); "
    "mlflow.set_experiment('lab work ü'); "
    "run = mlflow.start_run(run_name='penguins in the lab'); "
    "mlflow.log_metric('rows read', len(frame)); mlflow.end_run(); "
    "open(os.path.expanduser('~/notes ü.txt'), 'w').write('kept'); "
    "print('rows', len(frame), 'logged', run.info.run_id)"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def node_env(node_env, live_server):
    """Notebooks log to this test's live server. The lab environment comes from the host's cache
    (STUDIO_ENVIRONMENT_CACHE_DIR, kept between runs), as on a real node."""
    return {**node_env, "STUDIO_PUBLIC_URL": live_server.url}


@pytest.fixture
def lab_proxy(node_env, settings, studio_data_dir, live_server):
    """The lab proxy process on its own origin, reading the test database, as the run command starts
    it: the studio's host name at another port (cookies ignore ports, not host names)."""
    port = _free_port()
    origin = f"http://{urlparse(live_server.url).hostname}:{port}"
    settings.STUDIO_LAB_URL = origin  # the studio's lab link sends the owner there
    env = {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"},
        **node_env,
        "DJANGO_SETTINGS_MODULE": "studio.settings",
        "STUDIO_LAB_URL": origin,
        "STUDIO_LAB_ROUTE_SECONDS": "0.5",
    }
    log = studio_data_dir / "lab-proxy.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "lab_proxy", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(lambda: _answers(origin), timeout=60, message="the lab proxy to answer")
        yield origin
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _answers(origin: str) -> bool:
    try:
        requests.get(origin + "/", timeout=2)
        return True
    except requests.ConnectionError:
        return False


def _session(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def _lab_state(target) -> str:
    lab = InstanceLab.objects.filter(target=target).first()
    if lab is not None and lab.state == LabState.FAILED:
        raise AssertionError(f"the lab failed: {lab.reason}\n{lab.log_tail}")
    return lab.state if lab else ""


def shot(page, name):
    if SHOTS:
        page.screenshot(path=f"{SHOTS}/{name}.png", full_page=True)


async def _foreign_websocket_status(origin: str, path: str, session: str) -> int:
    async with aiohttp.ClientSession(cookies={"sessionid": session}) as http:
        try:
            async with http.ws_connect(origin + path, headers={"Origin": "http://evil.example"}):
                return 101
        except aiohttp.WSServerHandshakeError as refused:
            return refused.status


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_a_notebook_on_an_instance_reads_data_logs_to_the_studio_and_its_home_outlives_a_restart(
    new_page, owner, contributor, reader, workspace, penguins, agent, broker, lab_proxy, live_server, studio_data_dir
):
    target = target_create(actor=contributor, workspace=workspace, kind=TargetKind.INSTANCE, name="bobs-lab").target
    instance_page = f"{live_server.url}/w/{workspace.pk}/compute/{target.pk}/"
    lab_path = f"/w/{workspace.pk}/compute/{target.pk}/lab/"
    page = new_page()
    login(page, "bob")
    page.goto(instance_page)
    wait_for(lambda: _lab_state(target) == LabState.READY, timeout=900, interval=0.5, message="the lab to be ready")
    opened = page.get_by_test_id("lab-open")
    expect(opened).to_be_visible(timeout=30_000)  # the panel refreshes itself
    expect(page.get_by_test_id("lab-state")).to_have_text("Ready")
    shot(page, "lab-1-instance-ready")

    # Open JupyterLab: a new tab on the lab's own origin, the studio's session checked on the way.
    with page.context.expect_page() as new_tab:
        opened.click()
    lab = new_tab.value
    lab.set_default_timeout(120_000)
    lab.wait_for_load_state()
    assert lab.url.startswith(lab_proxy + lab_path), lab.url

    # A notebook cell reads the data version with pandas and logs a metric with MLflow.
    problems = []
    lab.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    lab.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    try:
        lab.locator(".jp-LauncherCard[data-category='Notebook']").first.click()
    except Exception:
        shot(lab, "lab-launcher-missing")
        raise
    lab.locator("#jp-main-statusbar", has_text="Idle").wait_for(timeout=180_000)
    lab.locator(".jp-Notebook .jp-Cell .cm-content").first.click()
    lab.keyboard.insert_text(CELL)
    lab.keyboard.press("Shift+Enter")
    output = lab.locator(".jp-OutputArea-output", has_text="rows 344 logged")
    expect(lab.get_by_text("Would you like to get notified")).to_have_count(0)  # no news from the internet
    try:
        output.wait_for(timeout=180_000)
    finally:
        shot(lab, "lab-2-notebook")
    run = Job.objects.get(workspace=workspace, display_name="penguins in the lab")
    assert run.submitted_by == contributor
    assert Metric.objects.get(job=run, name="rows read").value == 344

    # The metric on the studio's run page.
    page.goto(f"{live_server.url}/w/{workspace.pk}/jobs/{run.pk}/")
    expect(page.get_by_text("rows read").first).to_be_visible()
    expect(page.get_by_text("344").first).to_be_visible()

    # A terminal runs a command in the same sandbox and home.
    lab.locator(".lm-MenuBar-itemLabel", has_text="File").click()
    lab.locator(".lm-Menu-item[data-type='submenu']", has_text="New").hover()
    lab.locator(".lm-Menu-item[data-command='terminal:create-new']").click()
    terminal = lab.locator(".jp-Terminal").last
    terminal.wait_for()
    terminal.click()
    time.sleep(1)  # the shell's prompt
    lab.keyboard.type("echo from-the-terminal-$((6*7)) > ~/terminal.txt\n")
    home = studio_data_dir / "instances" / str(target.pk) / "home"  # the lab's DATA_DIR
    try:
        wait_for(lambda: (home / "terminal.txt").exists(), timeout=60, message="the terminal's command to run")
    except AssertionError:
        shot(lab, "lab-terminal-failed")
        print("PROBLEMS", problems)
        raise
    assert (home / "terminal.txt").read_text().strip() == "from-the-terminal-42"
    shot(lab, "lab-3-terminal")

    # Nobody else reaches Bob's lab: not Alice (the workspace's Owner), not Carol; not from elsewhere.
    for user in (owner, reader):
        session = _session(user)
        assert requests.get(lab_proxy + lab_path + "lab", cookies={"sessionid": session}, timeout=30).status_code == 404
        studio = requests.get(
            live_server.url + lab_path, cookies={"sessionid": session}, timeout=30, allow_redirects=False
        )
        assert studio.status_code == 404
    handshake = _foreign_websocket_status(lab_proxy, lab_path + "api/events/subscribe", _session(contributor))
    assert run_coroutine(handshake, timeout=60) == 403

    # Stop: the lab is gone. Start again: the home is still there.
    page.goto(instance_page)
    page.get_by_role("button", name="Stop").click()
    wait_for(lambda: _lab_state(target) == LabState.STOPPED, timeout=120, interval=0.5, message="the lab to stop")
    expect(page.get_by_test_id("lab-state")).to_have_text("Stopped", timeout=30_000)
    gone = requests.get(lab_proxy + lab_path + "api/status", cookies={"sessionid": _session(contributor)}, timeout=30)
    assert gone.status_code != 200 and "stopped" in gone.text.lower()
    page.get_by_role("button", name="Start").click()
    wait_for(lambda: _lab_state(target) == LabState.READY, timeout=300, interval=0.5, message="the lab to start again")
    lab.goto(lab_proxy + lab_path + "lab")
    expect(lab.locator(".jp-DirListing-item", has_text="notes ü.txt")).to_be_visible(timeout=120_000)
    expect(lab.locator(".jp-DirListing-item", has_text="terminal.txt")).to_be_visible()
    shot(lab, "lab-4-after-restart")
    assert django_settings.STUDIO_LAB_URL == lab_proxy
