"""A compute instance's lab: JupyterLab in the sandbox, beside the instance's node, for its owner.

`manage.py instance_lab --node <id>` runs `lab_run` for one node of a compute instance (the local
agent starts it right after the node's worker and stops it with the node). It:

1. prepares the lab's environment: the instance's chosen environment version with JupyterLab and
   the MLflow client added where it lacks them, or the curated default (the studio's scientific
   stack + LAB_PACKAGES), from this host's environment cache (built once per specification);
2. keeps the owner's home (`DATA_DIR/instances/<target>/home`, across stops and starts) and a
   read-only view of the workspace's data versions (`<asset name>/v<N>.parquet`), refreshed while
   the lab runs;
3. starts the Jupyter server in the sandbox (another user, scrubbed variables, bubblewrap: the
   studio's folders and the node's variables are invisible) with the network on for MLflow, bound
   to 127.0.0.1:<free port> under the base URL the lab proxy serves, with a random token that only
   the proxy learns (sealed in InstanceLab.token_sealed);
4. gives the notebooks a fresh API token of the owner limited to the workspace, for MLflow and the
   studio's API, revoked when the lab stops;
5. reads Jupyter's status every few seconds: READY once it answers, and its last activity (kernels,
   terminals) recorded on the instance, which idle shutdown counts;
6. stops the server (gracefully, then the whole sandbox) on SIGTERM or when its node is no longer
   live, and records STOPPED (or FAILED with the reason and the log's last lines).

Every write to InstanceLab is fenced by the node: a lab left behind by an earlier node changes
nothing of the lab that replaced it.
"""

import collections
import hashlib
import json
import logging
import os
import secrets
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from commands.sealing import seal
from compute.models import Node, NodeStatus, TargetKind
from compute.sandbox import Limits, Mount, Sandbox, SandboxError, SandboxSpec
from compute.services import instance_activity_record, instance_folder
from data.models import DataVersion
from data.services import data_version_path
from environments import builder
from environments.bases import base_get
from environments.services import environment_cache_dir, environment_install_list
from studio.db import close_broken_connections
from studio.models import ApiToken
from studio.services import token_create

from .models import InstanceLab, LabState

log = logging.getLogger("studio.labs")

# What every lab environment holds on top of its packages (pinned: the MLflow client is the one
# the studio's tracking API is checked against).
LAB_PACKAGES = ("jupyterlab==4.6.6", "mlflow-skinny==3.17.2")
DEFAULT_BASE = "studio-sklearn"
SANDBOX_ROOT = "/lab"  # inside the sandbox: /lab/home, /lab/data, /lab/env
STATUS_SECONDS = 2.0  # how often Jupyter's status (readiness, last activity) is read
DATA_REFRESH_SECONDS = 20.0
LOG_TAIL_LINES = 40
LOG_WRITE_SECONDS = 5.0
GRACEFUL_SHUTDOWN_SECONDS = 5.0
PREPARING = "preparing the environment …"
MIB = 2**20


class LabFailed(Exception):
    """The lab cannot run; the message is the reason shown on the instance's page."""


def lab_home(target_id: int) -> Path:
    return instance_folder(target_id) / "home"


def lab_data_dir(target_id: int) -> Path:
    return instance_folder(target_id) / "data"


def lab_base_url(*, workspace_id: int, target_id: int) -> str:
    """The path the lab proxy serves the lab under (and the Jupyter server's base_url)."""
    return f"/w/{int(workspace_id)}/compute/{int(target_id)}/lab/"


def lab_token_name(target) -> str:
    """The name of the API token a lab gives its notebooks (one live at a time per instance)."""
    return f"lab of {target.name} (#{int(target.pk)})"[:100]


def lab_tokens_revoke(target) -> int:
    """Revoke the notebooks' tokens of this instance's labs that are still live."""
    if target.owner_id is None:
        return 0
    return ApiToken.objects.filter(
        user_id=target.owner_id, workspace_id=target.workspace_id, name=lab_token_name(target), revoked_at__isnull=True
    ).update(revoked_at=timezone.now())


def lab_process_ended(node_id: int, code: int | None) -> None:
    """The agent saw this node's lab process end (or found it gone after a restart). A lab that
    ended normally has recorded it; one that was killed did not: it is stopped now, its address
    and token cleared, its notebooks' token revoked."""
    lab = InstanceLab.objects.filter(node_id=node_id).select_related("target").first()
    if lab is None or lab.state in (LabState.STOPPED, LabState.FAILED):
        return
    why = "the lab's process was lost" if code is None else f"the lab's process ended (code {code})"
    InstanceLab.objects.filter(pk=lab.pk, node_id=node_id).update(
        state=LabState.STOPPED if code in (None, 0) or code < 0 else LabState.FAILED,
        reason=why,
        address="",
        token_sealed="",
        pid=None,
        stopped_at=timezone.now(),
    )
    lab_tokens_revoke(lab.target)


# --- The environment ---------------------------------------------------------------------------------
def _package_name(line: str) -> str | None:
    try:
        return canonicalize_name(Requirement(line).name)
    except InvalidRequirement:
        return None


def _missing_lab_packages(packages: list[str]) -> list[str]:
    """LAB_PACKAGES the package list does not already name (a chosen environment may pin its own)."""
    named = {_package_name(line) for line in packages}
    return [pin for pin in LAB_PACKAGES if _package_name(pin) not in named]


def lab_environment_packages(lab: InstanceLab) -> tuple[str, list[str]]:
    """(the cache key, the package lines) of the lab's environment."""
    if lab.environment_version is None:
        packages = [*base_get(DEFAULT_BASE).packages, *LAB_PACKAGES]
        spec = {"lab": 1, "default": DEFAULT_BASE, "packages": sorted(packages)}
    else:
        version = lab.environment_version
        own = environment_install_list(version=version)
        packages = [*own, *_missing_lab_packages(own)]
        spec = {"lab": 1, "version": version.spec_hash, "lock": version.lock, "packages": sorted(packages)}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest(), packages


def lab_environment_prepare(lab: InstanceLab, on_line) -> Path:
    """The lab environment's python on this host: from the cache, or built now (uv, wheels only)."""
    key, packages = lab_environment_packages(lab)
    prepared = builder.prepare(
        spec_hash=key,
        base_packages=[],
        requirements=packages,
        cache_dir=environment_cache_dir(),
        size_limit_bytes=settings.STUDIO_ENVIRONMENT_CACHE_BYTES,
        on_line=on_line,
    )
    return prepared.python


# --- The data view -----------------------------------------------------------------------------------
def data_view_refresh(*, workspace_id: int, folder: Path) -> int:
    """Make `folder` hold every data version of the workspace as `<asset name>/v<N>.parquet`
    (hard links where the sandbox user cannot write through them, else copies) and nothing else.
    Returns how many files were added."""
    folder.mkdir(mode=0o755, parents=True, exist_ok=True)
    wanted: dict[Path, DataVersion] = {}
    for version in DataVersion.objects.filter(asset__workspace_id=workspace_id).select_related("asset"):
        wanted[folder / version.asset.name / f"v{int(version.version)}.parquet"] = version
    added = 0
    for path, version in wanted.items():
        if path.exists():
            continue
        source = data_version_path(version)
        if not source.exists():
            continue
        path.parent.mkdir(mode=0o755, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            # Root's files reached by the sandbox's own user only through a read-only mount: a link
            # is safe. A node that is not root runs the lab as itself: it gets copies.
            if os.geteuid() == 0 and source.stat().st_mode & 0o004:
                os.link(source, temporary)
            else:
                shutil.copyfile(source, temporary)
                os.chmod(temporary, 0o644)
            os.replace(temporary, path)
            added += 1
        except OSError:
            temporary.unlink(missing_ok=True)
            shutil.copyfile(source, path)
            os.chmod(path, 0o644)
            added += 1
    for child in folder.rglob("*"):  # deleted versions and assets go from the view
        if child.is_file() and child not in wanted:
            child.unlink(missing_ok=True)
    for child in folder.iterdir():
        if child.is_dir() and not any(child.iterdir()):
            child.rmdir()
    return added


# --- Jupyter -----------------------------------------------------------------------------------------
# JupyterLab's own defaults that a studio's lab does not want: no question about fetching news from
# the internet (a studio may have none), no update checks. Written once; the owner may change them.
LAB_USER_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
}


def lab_settings_default(home: Path) -> None:
    folder = home / ".jupyter" / "lab" / "user-settings"
    for name, values in LAB_USER_SETTINGS.items():
        path = folder / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def jupyter_argv(*, python: str, port: int, base_url: str, root_dir: str) -> list[str]:
    argv = [
        python,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.base_url={base_url}",
        f"--ServerApp.root_dir={root_dir}",
        # The proxy sends the lab's own Host; only it reaches 127.0.0.1:<port> with the token.
        "--ServerApp.allow_remote_access=True",
        "--LabApp.extension_manager=readonly",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    lab_url = getattr(settings, "STUDIO_LAB_URL", "")
    if lab_url:
        argv.append(f"--ServerApp.allow_origin={lab_url.rstrip('/')}")
    return argv


_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1: never through a proxy


def jupyter_request(address: str, path: str, token: str, *, method: str = "GET", timeout: float = 3) -> dict | None:
    """One call to the Jupyter server's REST API; None when it does not answer (yet)."""
    request = urllib.request.Request(
        f"http://{address}{path}", method=method, headers={"Authorization": f"token {token}"}
    )
    try:
        with _direct.open(request, timeout=timeout) as response:
            body = response.read()
    except (urllib.error.URLError, OSError, TimeoutError):
        return None
    try:
        return json.loads(body) if body else {}
    except ValueError:
        return None


# --- The run -----------------------------------------------------------------------------------------
class LabRun:
    """One lab process's life: prepare, start, watch, stop. `stop_requested` is set on SIGTERM."""

    def __init__(self, node_id: int, stop_requested: threading.Event, out=None):
        self.node_id = int(node_id)
        self.stop_requested = stop_requested
        self.out = out
        self.tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
        self.tail_changed = False
        self.tail_lock = threading.Lock()
        self.sandbox: Sandbox | None = None
        self.api_token: ApiToken | None = None
        self.lab: InstanceLab | None = None
        self.target = None

    # The lab's log: this process's output (lab-<node>.log) and the tail kept on InstanceLab.
    def line(self, text: str) -> None:
        with self.tail_lock:
            self.tail.append(text)
            self.tail_changed = True
        if self.out is not None:
            self.out.write(text + "\n")
            self.out.flush()

    def _tail_text(self) -> str:
        with self.tail_lock:
            self.tail_changed = False
            return "\n".join(self.tail)

    def _set(self, **fields) -> bool:
        """Update this node's lab row (fenced: a newer node's lab is never touched)."""
        return bool(InstanceLab.objects.filter(pk=self.lab.pk, node_id=self.node_id).update(**fields))

    def _node_live(self) -> bool:
        status = Node.objects.filter(pk=self.node_id).values_list("status", flat=True).first()
        return status in NodeStatus.taking_jobs()

    def run(self) -> int:
        nodes = Node.objects.select_related("target", "target__workspace", "target__owner")
        node = nodes.filter(pk=self.node_id).first()
        if node is None or node.target.kind != TargetKind.INSTANCE:
            self.line(f"node-{self.node_id} is not a node of a compute instance: no lab.")
            return 2
        self.target = node.target
        if not self._node_live():
            self.line(f"node-{self.node_id} is no longer running: no lab.")  # a newer node may own the lab now
            return 0
        self.lab, _ = InstanceLab.objects.get_or_create(target=self.target)
        now = timezone.now()
        InstanceLab.objects.filter(pk=self.lab.pk).update(
            node_id=self.node_id,
            state=LabState.STARTING,
            reason=PREPARING,
            log_tail="",
            host=settings.STUDIO_HOSTNAME,
            address="",
            token_sealed="",
            pid=os.getpid(),
            started_at=now,
            ready_at=None,
            stopped_at=None,
        )
        self.lab.refresh_from_db()
        try:
            self._start()
            outcome = self._watch()
        except LabFailed as exc:
            self.line(f"The lab failed: {exc}")
            self._end(LabState.FAILED, str(exc))
            return 1
        except Exception as exc:  # noqa: BLE001 - recorded on the instance, then the process ends
            log.exception("the lab of node-%s failed", self.node_id)
            self._end(LabState.FAILED, f"the lab failed unexpectedly ({type(exc).__name__}: {exc})")
            return 1
        if outcome is not None:  # the server ended on its own
            self._end(LabState.FAILED, f"JupyterLab {outcome.reason}")
            return 1
        self._end(LabState.STOPPED, "stopped with the instance")
        return 0

    def _start(self) -> None:
        target, owner = self.target, self.target.owner
        if owner is None or not owner.is_active:
            raise LabFailed("the instance has no active owner")
        self.line(f"Preparing the lab environment ({self.lab.environment_version or 'the curated default'})")
        try:
            python = lab_environment_prepare(self.lab, self.line)
        except builder.BuildFailed as exc:
            if self.stop_requested.is_set():
                return  # the SIGTERM that stops the lab ended the installer too: not a failure
            raise LabFailed(f"the environment failed to build: {exc}") from None
        if self.stop_requested.is_set() or not self._node_live():
            return
        home, data = lab_home(target.pk), lab_data_dir(target.pk)
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        lab_settings_default(home)
        data_view_refresh(workspace_id=target.workspace_id, folder=data)
        lab_tokens_revoke(target)  # one left by a lab that was killed
        issued = token_create(user=owner, name=lab_token_name(target), workspace=target.workspace)
        self.api_token, issued_plaintext = issued.token, issued.plaintext
        jupyter_token = secrets.token_urlsafe(32)
        port = free_port()
        base_url = lab_base_url(workspace_id=target.workspace_id, target_id=target.pk)
        environment = Mount(python.parent.parent, f"{SANDBOX_ROOT}/env")
        interpreter = Path(os.path.realpath(python)).parent.parent
        size = target.node_size
        spec = SandboxSpec(
            argv=["jupyter"],  # the real command needs the paths the sandbox gives (below)
            workdir=Mount(home, f"{SANDBOX_ROOT}/home", writable=True),
            mounts=[Mount(data, f"{SANDBOX_ROOT}/data"), environment, Mount(interpreter, str(interpreter))],
            env={},
            limits=Limits(
                memory_bytes=min(size.memory_gib * 1024 * MIB, settings.STUDIO_COMMAND_MAX_MEMORY_BYTES),
                processes=settings.STUDIO_COMMAND_MAX_PROCESSES,
                open_files=max(settings.STUDIO_COMMAND_MAX_OPEN_FILES, 4096),
                output_bytes=settings.STUDIO_COMMAND_MAX_OUTPUT_BYTES,  # the home's size, with /tmp
                threads=size.cores,
                log_bytes=2**62,  # a lab runs for days: its log is not a limit
            ),
            hide=[Path(settings.DATA_DIR), Path(settings.BASE_DIR), Path.home()],
            network=True,  # MLflow and the studio's API; pip for the session
            secrets=[jupyter_token, issued_plaintext],
            # Never without bubblewrap: labs run for days side by side as one user, and without its
            # namespaces each would see the others' processes, homes and kernels.
            bubblewrap=True,
        )
        try:
            sandbox = Sandbox(spec, on_line=lambda stream, text: self.line(text))
        except SandboxError as exc:
            raise LabFailed(f"this host cannot isolate a lab ({exc}): install bubblewrap") from None
        env_prefix = sandbox.path_of(environment)
        home_path = sandbox.path_of(spec.workdir)
        public = settings.STUDIO_PUBLIC_URL.rstrip("/")
        spec.argv = jupyter_argv(python=f"{env_prefix}/bin/python", port=port, base_url=base_url, root_dir=home_path)
        if sandbox.protections.bubblewrap:
            # Kernels talk over Unix sockets in the sandbox's private /tmp, not TCP ports every
            # process of the host could reach (without bubblewrap the path would be too long).
            spec.argv.append("--KernelManager.transport=ipc")
            spec.env["JUPYTER_RUNTIME_DIR"] = "/tmp/jupyter-runtime"  # noqa: S108 - the sandbox's own /tmp
        spec.env.update(
            {
                "PATH": f"{env_prefix}/bin:/usr/local/bin:/usr/bin:/bin",
                "VIRTUAL_ENV": env_prefix,
                "HOME": home_path,
                "SHELL": "/bin/bash",
                "PYTHONUNBUFFERED": "1",
                "JUPYTER_TOKEN": jupyter_token,  # not in the command line, which other users can read
                "STUDIO_API_URL": public,
                "STUDIO_WORKSPACE_ID": str(target.workspace_id),
                # The names the studio's own client and CLI read.
                "STUDIO_URL": public,
                "STUDIO_WORKSPACE": str(target.workspace_id),
                "STUDIO_DATA_DIR": sandbox.path_of(spec.mounts[0]),
                "STUDIO_TOKEN": issued_plaintext,
                "MLFLOW_TRACKING_URI": f"{public}/w/{target.workspace_id}/mlflow",
                "MLFLOW_TRACKING_TOKEN": issued_plaintext,
            }
        )
        self.line(f"Protections: {' '.join(sandbox.protections.describe())}")
        self.line(f"Starting JupyterLab on 127.0.0.1:{port}{base_url}")
        self.sandbox = sandbox
        self.jupyter_token = jupyter_token
        self.address = f"127.0.0.1:{port}"
        self.base_url = base_url
        sandbox.start()
        self._set(
            reason="starting JupyterLab",
            address=self.address,
            token_sealed=seal(jupyter_token),
            log_tail=self._tail_text(),
        )

    def _watch(self):
        """Until asked to stop (or the node leaves): readiness, activity, the data view, the log.
        Returns the sandbox's outcome if the server ended on its own, else None."""
        if self.sandbox is None:
            return None
        ready = False
        next_status = next_data = time.monotonic()
        next_log = time.monotonic() + LOG_WRITE_SECONDS
        next_data += DATA_REFRESH_SECONDS
        while not self.stop_requested.is_set():
            # Until it answers, the server is asked often: its owner is waiting to open it.
            outcome = self.sandbox.wait(timeout=0.5 if ready else 0.1)
            if outcome is not None:
                return outcome
            try:
                close_broken_connections()
                if not self._node_live():
                    self.line("The instance's node is no longer running: stopping the lab.")
                    return None
                now = time.monotonic()
                if now >= next_status:
                    next_status = now + (STATUS_SECONDS if ready else 0.1)
                    status = jupyter_request(self.address, f"{self.base_url}api/status", self.jupyter_token)
                    if status is not None:
                        if not ready:
                            self.line("JupyterLab is ready.")
                            self._set(
                                state=LabState.READY, reason="", ready_at=timezone.now(), log_tail=self._tail_text()
                            )
                            ready = True
                        self._record_activity(status.get("last_activity"))
                if now >= next_data:
                    next_data = now + DATA_REFRESH_SECONDS
                    data_view_refresh(workspace_id=self.target.workspace_id, folder=lab_data_dir(self.target.pk))
                if now >= next_log and self.tail_changed:
                    next_log = now + LOG_WRITE_SECONDS
                    self._set(log_tail=self._tail_text())
            except (DatabaseError, OSError) as exc:
                # The notebooks keep running through a database or disk hiccup; the next round tries again.
                self.line(f"[lab] a round of checks failed ({type(exc).__name__}: {exc}); retrying")
                time.sleep(2)
        return None

    def _record_activity(self, value) -> None:
        if not isinstance(value, str):
            return
        try:
            at = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return
        if timezone.is_naive(at):
            at = timezone.make_aware(at, timezone.utc)
        instance_activity_record(target_id=self.target.pk, at=at)

    def _end(self, state: str, reason: str) -> None:
        if self.sandbox is not None:
            # Ask Jupyter to shut its kernels down first; then end whatever is left of the sandbox.
            jupyter_request(self.address, f"{self.base_url}api/shutdown", self.jupyter_token, method="POST")
            if self.sandbox.wait(timeout=GRACEFUL_SHUTDOWN_SECONDS) is None:
                self.sandbox.stop("the lab was stopped")
                self.sandbox.wait(timeout=30)
        if self.api_token is not None:
            ApiToken.objects.filter(pk=self.api_token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        if self.lab is not None:
            self._set(
                state=state,
                reason=reason[:500],
                log_tail=self._tail_text(),
                address="",
                token_sealed="",
                pid=None,
                stopped_at=timezone.now(),
            )
        if self.target is not None and not type(self.target).objects.filter(pk=self.target.pk).exists():
            # The instance was deleted while the lab ran: its home goes (files written since the delete too).
            shutil.rmtree(instance_folder(self.target.pk), ignore_errors=True)
        self.line(f"The lab is {state}: {reason}")
