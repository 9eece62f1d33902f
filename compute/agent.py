"""The local provisioner: makes the autoscaler's decisions real on this machine.

Each tick it runs the autoscaler, starts a Celery worker process for every node in REQUESTED
state that the host has room for, stops the processes of nodes asked to leave (or deleted), and
reports processes that died on their own as lost (their jobs are re-queued at once). Node
processes are children of the agent: when the agent stops, they stop.

A compute instance's node gets a second process beside it: its lab (`manage.py instance_lab`,
JupyterLab in the sandbox), started right after the node's worker, logging to lab-<node>.log, and
stopped with it. A lab also stops itself when its node is no longer live, so one left behind by an
agent that died ends when the restarted agent declares that node lost.

A node of an inference cluster is a serving replica of one deployment instead of a worker:
`manage.py serve_replica` (an HTTP server, endpoints/replica.py), logging to node-<node>.log.
Which replicas are wanted is the endpoints app's business: it registers a tick hook
(`tick_hook_register`) that requests and releases replica nodes; the agent only starts and stops
their processes like any node's. While the host serves inference clusters the agent keeps one
standby replica (`serve_replica --standby`, STUDIO_REPLICA_STANDBY): a process that has imported
the serving stack and waits for a node; the next replica wanted takes it and only loads its model,
so a replica is ready in well under the seconds a fresh interpreter takes (a deployment scaled to
zero wakes within its first request).

Host capacity (R10): a node process runs one job at a time with single-threaded math libraries,
so it takes one core and STUDIO_NODE_MEMORY_MIB of memory; the agent never runs more than
STUDIO_HOST_NODE_CORES and STUDIO_HOST_NODE_MEMORY_MIB hold. Nodes that do not fit wait, with
the reason on them and their jobs, and an idle node no queued work needs gives up its place.
"""

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connections

from studio.db import close_broken_connections

from . import services
from .models import Node, NodeStatus, TargetKind

log = logging.getLogger("studio.agent")

# scikit-learn's OpenMP/BLAS threads in several processes on a few cores slow everything down.
SINGLE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}
# Celery runs Django's system checks when a worker starts, and they load every URLconf and so every
# view, with pandas, scikit-learn and LightGBM (seconds, ~170 MB a process). Only the web server serves
# pages (it loads them as it starts); a node imports what a job needs when the job runs, and the run
# command's other processes need no view either. (tests/studio/test_settings.py runs the checks.)
SKIP_CHECKS_ENV = {"CELERY_SKIP_CHECKS": "1"}
# The environment of a node's worker.
NODE_WORKER_ENV = {**SINGLE_THREAD_ENV, **SKIP_CHECKS_ENV}


# Called with (node id, exit code or None) when a lab process has ended without saying so itself
# (killed, or left by an agent that died): the labs app registers what to record (labs/apps.py).
LAB_ENDED_HOOKS: list[Callable[[int, int | None], None]] = []


# Called at every tick after the autoscaler, before requested nodes are started: apps above compute
# register what else asks for nodes (the endpoints app: serving replicas, endpoints/apps.py).
TICK_HOOKS: list[Callable[[], None]] = []


def tick_hook_register(hook: Callable[[], None]) -> None:
    if hook not in TICK_HOOKS:
        TICK_HOOKS.append(hook)


def _run_tick_hooks() -> None:
    for hook in TICK_HOOKS:
        try:
            hook()
        except Exception:  # noqa: BLE001 - one app's failed hook must not stop nodes from starting
            log.exception("agent tick hook %s failed", getattr(hook, "__name__", hook))


def lab_ended_register(hook: Callable[[int, int | None], None]) -> None:
    if hook not in LAB_ENDED_HOOKS:
        LAB_ENDED_HOOKS.append(hook)


def _lab_ended(node_id: int, code: int | None) -> None:
    for hook in LAB_ENDED_HOOKS:
        try:
            hook(node_id, code)
        except Exception:  # noqa: BLE001 - the agent must outlive a failed record; the next lab overwrites it
            log.exception("recording the end of the lab of node-%s failed", node_id)


def instance_lab_argv(*, node_id: int) -> list[str]:
    """The command that runs a compute instance's lab beside its node (labs/runtime.py)."""
    return [sys.executable, str(settings.BASE_DIR / "manage.py"), "instance_lab", "--node", str(int(node_id))]


def serving_replica_argv(*, node_id: int) -> list[str]:
    """The command that runs a serving replica (endpoints/replica.py) for an inference cluster's node."""
    return [sys.executable, str(settings.BASE_DIR / "manage.py"), "serve_replica", "--node", str(int(node_id))]


def serving_standby_argv() -> list[str]:
    """A standby replica: imports the serving stack, then serves the node the agent names on its stdin."""
    return [sys.executable, str(settings.BASE_DIR / "manage.py"), "serve_replica", "--standby"]


STANDBY_CMDLINE = b"\0".join(arg.encode() for arg in serving_standby_argv()[2:]) + b"\0"
STANDBY_PAUSE_SECONDS = 2.0  # after a replica starts, the next standby waits so it does not slow it
STANDBY_CHECK_SECONDS = 5.0  # how often the agent looks whether the host serves inference clusters


def node_worker_argv(*, queue: str, node_name: str) -> list[str]:
    """The command that makes this machine a node: one Celery worker, one job at a time."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "studio",
        "worker",
        "--queues",
        queue,
        "--hostname",
        f"{node_name}@%h",
        "--concurrency",
        "1",
        "--prefetch-multiplier",
        "1",
        "--pool",
        "prefork",
        "--without-mingle",
        "--without-gossip",
        "--loglevel",
        "INFO",
    ]


@dataclass
class LocalAgent:
    log_dir: str | None = None
    # A serving host (`compute_agent --replicas-only`): starts replica nodes only, and leaves job
    # nodes and the clusters' autoscaler to the agent of a host that runs jobs.
    replicas_only: bool = False
    extra_env: dict = field(default_factory=dict)
    children: dict[int, subprocess.Popen] = field(default_factory=dict)
    stopping: dict[int, float] = field(default_factory=dict)  # node id -> when we sent SIGTERM
    labs: dict[int, subprocess.Popen] = field(default_factory=dict)  # node id -> its instance's lab
    labs_stopping: dict[int, float] = field(default_factory=dict)  # node id -> when its lab got SIGTERM
    replicas: set[int] = field(default_factory=set)  # node ids whose process is a serving replica
    standby: subprocess.Popen | None = None  # a replica process waiting for its node
    replica_started_at: float = float("-inf")  # the last replica started, from the standby or fresh
    inference_checked: tuple[float, bool] = (float("-inf"), False)  # (when, does the host serve)

    def tick(self) -> None:
        if not self.replicas_only:
            services.autoscale()
        _run_tick_hooks()
        self._start_requested()
        self._keep_standby()
        self._stop_leaving()
        self._reap_exited()
        self._reap_labs()

    def run_forever(self, should_stop=lambda: False) -> None:
        try:
            while not should_stop():
                close_broken_connections()
                try:
                    self.tick()
                except Exception:  # noqa: BLE001 - the agent must outlive a failed tick (e.g. DB busy)
                    log.exception("agent tick failed")
                time.sleep(settings.STUDIO_AGENT_INTERVAL)
        finally:
            connections.close_all()  # this thread's, now: not when the thread is collected

    def _start_requested(self) -> None:
        requested = list(
            Node.objects.filter(status=NodeStatus.REQUESTED, provisioner="local")
            .select_related("target", "target__workspace")
            .order_by("requested_at", "pk")
        )
        # Serving replicas have their own places on the host (STUDIO_HOST_MAX_REPLICAS), so a
        # deployment never keeps a job from a core, nor a queue of jobs a deployment from serving.
        replicas = [node for node in requested if node.deployment_id is not None]
        requested = [] if self.replicas_only else [node for node in requested if node.deployment_id is None]
        running = [node_id for node_id, proc in self.children.items() if proc.poll() is None]
        replica_room = settings.STUDIO_HOST_MAX_REPLICAS - sum(1 for node_id in running if node_id in self.replicas)
        if replicas[max(0, replica_room) :]:
            services.nodes_wait_for_host(nodes=replicas[max(0, replica_room) :])
        # A process asked to stop still holds its core and memory until it has exited.
        room = host_node_capacity() - sum(1 for node_id in running if node_id not in self.replicas)
        waiting = requested[max(0, room) :]
        if waiting:
            services.nodes_wait_for_host(nodes=waiting)
            # Nodes already on their way out free their places soon: ask only for the rest.
            leaving = sum(1 for node_id in self.stopping if node_id in self.children)
            services.nodes_release_idle(node_ids=list(self.children), count=len(waiting) - leaving)
        for node in requested[: max(0, room)] + replicas[: max(0, replica_room)]:
            if not services.node_claim(node_id=node.pk, hostname=settings.STUDIO_HOSTNAME):
                continue  # another host's agent took it
            env = {
                **os.environ,
                **NODE_WORKER_ENV,
                **self.extra_env,
                "STUDIO_NODE_ID": str(node.pk),
                "DJANGO_SETTINGS_MODULE": "studio.settings",
            }
            env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
            log_path = os.path.join(self.log_dir, f"node-{node.pk}.log") if self.log_dir else ""
            proc = self._take_standby(node.pk, log_path) if node.deployment_id is not None else None
            if proc is None:
                out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
                if node.deployment_id is not None:
                    argv = serving_replica_argv(node_id=node.pk)
                else:
                    argv = node_worker_argv(queue=node.target.queue, node_name=node.name)
                try:
                    proc = subprocess.Popen(
                        argv,
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                        cwd=settings.BASE_DIR,
                    )
                except OSError as exc:  # claimed, so no other agent retries it: it is lost (and replaced)
                    services.node_mark_stopped(node_id=node.pk, reason=f"could not start: {exc}", lost=True)
                    continue
            if node.deployment_id is not None:
                self.replicas.add(node.pk)
                # A host that starts a replica serves inference: its next standby starts after the
                # pause, not at the next check up to 5 s later (a replica killed meanwhile waited
                # for a standby still importing: 8-9 s to a replacement under load instead of 2).
                self.replica_started_at = time.monotonic()
                self.inference_checked = (self.replica_started_at, True)
            self.children[node.pk] = proc
            services.node_mark_started(node=node, pid=proc.pid, hostname=settings.STUDIO_HOSTNAME)
            if node.target.kind == TargetKind.INSTANCE:
                self._start_lab(node, env)
            if node.reason == services.WAITING_FOR_HOST:
                services.target_jobs_waiting(target=node.target, reason=None)
            log.info("started %s for %s (pid %s)", node.name, node.target.name, proc.pid)

    def _take_standby(self, node_id: int, log_path: str) -> subprocess.Popen | None:
        """Hand the node to the standby replica (it logs to the node's log from now on), if one is alive."""
        standby, self.standby = self.standby, None
        if standby is None or standby.poll() is not None:
            return None
        try:
            standby.stdin.write(f"{node_id}\t{log_path}\n".encode())
            standby.stdin.close()
        except OSError:  # it died just now
            return None
        return standby

    def _keep_standby(self) -> None:
        """Keep one standby replica while the host serves inference clusters (and has room for one)."""
        if self.standby is not None and self.standby.poll() is not None:
            log.warning("the standby replica exited with %s", self.standby.returncode)
            self.standby = None
        now = time.monotonic()
        if self.standby is not None or settings.STUDIO_REPLICA_STANDBY < 1:
            return
        if now - self.replica_started_at < STANDBY_PAUSE_SECONDS:
            return
        checked_at, serves = self.inference_checked
        if now - checked_at >= STANDBY_CHECK_SECONDS:
            serves = services.host_serves_inference()
            self.inference_checked = (now, serves)
        running = sum(1 for node_id, proc in self.children.items() if node_id in self.replicas and proc.poll() is None)
        if not serves or running >= settings.STUDIO_HOST_MAX_REPLICAS:
            return
        env = {**os.environ, **NODE_WORKER_ENV, **self.extra_env, "DJANGO_SETTINGS_MODULE": "studio.settings"}
        env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        env.pop("STUDIO_NODE_ID", None)
        out = open(os.path.join(self.log_dir, "replica-standby.log"), "ab") if self.log_dir else subprocess.DEVNULL  # noqa: SIM115
        self.standby = subprocess.Popen(
            serving_standby_argv(),
            env=env,
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=settings.BASE_DIR,
        )
        log.info("started a standby replica (pid %s)", self.standby.pid)

    def _stop_standby(self, *, kill: bool = False) -> None:
        standby, self.standby = self.standby, None
        if standby is None or standby.poll() is not None:
            return
        try:
            os.killpg(standby.pid, signal.SIGKILL if kill else signal.SIGTERM)
            standby.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass

    def _start_lab(self, node: Node, env: dict) -> None:
        out = subprocess.DEVNULL
        if self.log_dir:
            out = open(os.path.join(self.log_dir, f"lab-{node.pk}.log"), "ab")  # noqa: SIM115
        self.labs[node.pk] = subprocess.Popen(
            instance_lab_argv(node_id=node.pk),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=settings.BASE_DIR,
        )
        log.info("started the lab of %s beside %s (pid %s)", node.target.name, node.name, self.labs[node.pk].pid)

    def _stop_lab(self, node_id: int, *, kill: bool = False) -> None:
        """SIGTERM: the lab stops its Jupyter server and says STOPPED; SIGKILL if it has not within 20 s."""
        lab = self.labs.get(node_id)
        if lab is None or lab.poll() is not None:
            return
        sent = self.labs_stopping.setdefault(node_id, time.monotonic())
        # A repeated SIGTERM is harmless: the lab is already stopping.
        sig = signal.SIGKILL if kill or time.monotonic() - sent > 20 else signal.SIGTERM
        try:
            os.killpg(lab.pid, sig)
        except OSError:
            pass

    def _reap_labs(self) -> None:
        for node_id, lab in list(self.labs.items()):
            if lab.poll() is None:
                if node_id not in self.children or node_id in self.labs_stopping:
                    self._stop_lab(node_id)  # its node is gone or going: the lab goes too
                continue
            del self.labs[node_id]
            self.labs_stopping.pop(node_id, None)
            _lab_ended(node_id, lab.returncode)  # a lab that could record its own end has done so

    def _stop_leaving(self) -> None:
        if not self.children:
            return
        wanted = dict(Node.objects.filter(pk__in=list(self.children)).values_list("pk", "status"))
        now = time.monotonic()
        for node_id, proc in list(self.children.items()):
            status = wanted.get(node_id)  # None: the node (or its target) was deleted
            if status in (NodeStatus.STARTING, NodeStatus.IDLE, NodeStatus.BUSY):
                continue
            if proc.poll() is not None:
                continue
            sent = self.stopping.get(node_id)
            if sent is None:
                # Its job (if any) goes back to the queue now; the job's process then exits.
                _hand_back(node_id, f"node-{node_id} was asked to leave")
                proc.terminate()  # Celery's warm shutdown
                self._stop_lab(node_id)
                self.stopping[node_id] = now
            elif now - sent > 20:
                os.killpg(proc.pid, signal.SIGKILL)
                self._stop_lab(node_id, kill=True)

    def _reap_exited(self) -> None:
        for node_id, proc in list(self.children.items()):
            code = proc.poll()
            if code is None:
                continue
            del self.children[node_id]
            self.replicas.discard(node_id)
            self._stop_lab(node_id)
            asked = self.stopping.pop(node_id, None) is not None
            if asked:
                services.node_mark_stopped(node_id=node_id, reason="stopped by the autoscaler")
            else:
                services.node_mark_stopped(node_id=node_id, reason=f"worker process exited (code {code})", lost=True)
                log.warning("node-%s exited unexpectedly with code %s", node_id, code)

    def stop_all(self, timeout: float = 10, *, kill: bool = False) -> None:
        """Stop every node process this agent started (on Ctrl-C of the run command). Running jobs
        are handed back to the queue at once, which makes their processes exit; then a warm
        shutdown within `timeout`, or at once with `kill`."""
        self._stop_standby(kill=kill)
        for node_id in self.labs:
            self._stop_lab(node_id, kill=kill)
        for node_id, proc in self.children.items():
            if proc.poll() is None:
                if kill:
                    os.killpg(proc.pid, signal.SIGKILL)
                else:
                    _hand_back(node_id, "the studio is stopping")
                    proc.terminate()
        deadline = time.monotonic() + timeout
        for node_id, proc in list(self.children.items()):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            services.node_mark_stopped(node_id=node_id, reason="the studio was stopped")
        self.children.clear()
        self.replicas.clear()
        for lab in self.labs.values():
            try:
                lab.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(lab.pid, signal.SIGKILL)
                lab.wait()
        self.labs.clear()


def host_node_capacity() -> int:
    """How many node processes this host holds: one core and STUDIO_NODE_MEMORY_MIB each."""
    by_memory = settings.STUDIO_HOST_NODE_MEMORY_MIB // max(1, settings.STUDIO_NODE_MEMORY_MIB)
    return max(0, min(settings.STUDIO_HOST_NODE_CORES, by_memory))


def _hand_back(node_id: int, reason: str) -> None:
    try:
        services.node_release(node_id=node_id, reason=reason)
    except Exception:  # noqa: BLE001 - the node must still be stopped; the reconciler re-queues later
        log.exception("could not hand back the jobs of node-%s", node_id)


def recover_after_restart() -> int:
    """At start-up, nodes this host's previous agent left behind have no process any more. Only
    this host's (STUDIO_HOSTNAME): the nodes other hosts' agents run are theirs."""
    count = 0
    left_behind = Node.objects.filter(
        provisioner="local",
        hostname=settings.STUDIO_HOSTNAME,
        status__in=[NodeStatus.STARTING, NodeStatus.IDLE, NodeStatus.BUSY, NodeStatus.LEAVING],
    )
    for node in left_behind:
        if node.pid and _is_node_process(node.pid, node.pk, node.name):
            try:
                os.killpg(node.pid, signal.SIGTERM)
            except OSError:
                pass
        for pid in _lab_processes(node.pk):
            try:
                os.killpg(pid, signal.SIGTERM)  # it stops its Jupyter server and says STOPPED
            except OSError:
                pass
        _lab_ended(node.pk, None)  # a lab whose process is gone without a word (a reboot) is stopped
        services.node_mark_stopped(node_id=node.pk, reason="the studio restarted", lost=True)
        count += 1
    return count


def _is_node_process(pid: int, node_id: int, node_name: str) -> bool:
    """Is `pid` still that node's worker or replica (and not a process that reused the number)?"""
    replica = b"\0".join(arg.encode() for arg in serving_replica_argv(node_id=node_id)[2:]) + b"\0"
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read()
    except OSError:
        return False
    # A replica that began as the standby keeps the standby's command line.
    return f"{node_name}@".encode() in cmdline or cmdline.endswith(replica) or cmdline.endswith(STANDBY_CMDLINE)


def _lab_processes(node_id: int) -> list[int]:
    """The pids of lab processes still running for this node (started by a previous agent)."""
    wanted = b"\0".join(arg.encode() for arg in instance_lab_argv(node_id=node_id)[2:]) + b"\0"
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                if fh.read().endswith(wanted):
                    found.append(int(entry.name))
        except OSError:
            continue
    return found
