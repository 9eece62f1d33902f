"""Runs a job inside a node's worker process: claim, heartbeat, stream logs and metrics, finish.

A watchdog thread heartbeats the job, stops it when a user cancels it or its time limit passes,
and exits the process at once if the job was taken away from this attempt (a "zombie" that woke
up). The prefork pool then starts a fresh process, so the node takes the next job.
"""

import logging
import os
import re
import threading
import time
import traceback
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import F
from django.utils import timezone

from studio import objectstore
from studio.hashing import sha256_file

from ..worker import current_node_id
from . import services
from .kinds import handler_for
from .metrics import metrics_save
from .models import Artifact, Job, JobLogLine, Metric

log = logging.getLogger("studio.runner")
# A server-chosen name, or a path of such names (a command job's outputs: "outputs/model/model.skops").
ARTIFACT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}(/[A-Za-z0-9][A-Za-z0-9._ ()+,=@-]{0,199}){0,20}$")
# How long a canceled job's code gets to notice (at its next step) before the process exits.
CANCEL_GRACE_SECONDS = 1.5


class JobCanceled(Exception):
    pass


class JobError(Exception):
    """An expected failure with a message for the user (bad data, a bad parameter)."""


class Detach:
    """Returned by a job's code whose work goes on in child jobs: the node is freed and the job
    stays RUNNING (e.g. an Automated ML run after its set-up, while its trials run)."""

    def __init__(self, result: dict, reason: str):
        self.result, self.reason = result, reason


class JobContext:
    """What a job's code sees: its job, and ways to log, record metrics and save artifacts."""

    def __init__(self, job: Job):
        self.job = job
        self._lock = threading.Lock()
        self._lines: list[JobLogLine] = []
        self._metrics: list[Metric] = []
        self._seq = job.log_lines
        self.cancel_requested = threading.Event()
        self.started = time.monotonic()
        self._on_stop: list = []

    def on_stop(self, callback) -> None:
        """Call `callback(reason)` before the watchdog ends this process (cancel, time limit): a
        job that started processes of its own stops them here."""
        self._on_stop.append(callback)

    def run_stop_callbacks(self, reason: str) -> None:
        for callback in self._on_stop:
            try:
                callback(reason)
            except Exception:  # noqa: BLE001 - the process exits next whatever happens
                log.exception("job %s: stop callback", self.job.pk)

    @property
    def spec(self) -> dict:
        return self.job.spec

    def log(self, text: str) -> None:
        now = timezone.now()
        with self._lock:
            for line in str(text).splitlines() or [""]:
                self._seq += 1
                self._lines.append(
                    JobLogLine(job_id=self.job.pk, seq=self._seq, at=now, attempt=self.job.attempt, text=line[:10_000])
                )

    def metric(self, name: str, value: float, step: int = 0) -> None:
        with self._lock:
            self._metrics.append(Metric(job_id=self.job.pk, name=name[:100], step=int(step), value=float(value)))

    def check_canceled(self) -> None:
        """Call between steps: raises JobCanceled once a user asked to cancel."""
        if self.cancel_requested.is_set():
            raise JobCanceled()

    def artifact_path(self, name: str) -> Path:
        """Where to write the artifact `name` (a server-chosen file name, never a user's path)."""
        if not ARTIFACT_NAME_RE.match(name) or ".." in name or len(name) > 1000:
            raise ValueError(f"bad artifact name {name!r}")
        path = services.job_artifact_dir(self.job) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def artifact_saved(self, name: str, kind: str = "") -> Artifact:
        """Record a file written at artifact_path(name), with its size and SHA-256, and publish it to
        object storage (when the studio has one)."""
        path = self.artifact_path(name)
        sha256 = sha256_file(path)
        objectstore.publish(path, sha256=sha256)  # readable from any host before its row says it exists
        artifact, _ = Artifact.objects.update_or_create(
            job_id=self.job.pk, name=name, defaults={"kind": kind, "size": path.stat().st_size, "sha256": sha256}
        )
        return artifact

    def flush(self) -> None:
        with self._lock:
            lines, self._lines = self._lines, []
            metrics, self._metrics = self._metrics, []
        if not lines and not metrics:
            return
        with transaction.atomic():
            if lines:
                JobLogLine.objects.bulk_create(lines)
                Job.objects.filter(pk=self.job.pk).update(log_lines=F("log_lines") + len(lines))
            if metrics:
                metrics_save(metrics)


class Watchdog(threading.Thread):
    def __init__(self, ctx: JobContext):
        super().__init__(name=f"job-{ctx.job.pk}-watchdog", daemon=True)
        self.ctx = ctx
        self.done = threading.Event()

    def run(self) -> None:
        job = self.ctx.job
        last_beat = 0.0
        cancel_seen_at = None
        while not self.done.wait(0.25):
            try:
                self.ctx.flush()
                now = time.monotonic()
                if now - last_beat >= min(settings.STUDIO_HEARTBEAT_SECONDS, 1.0):
                    last_beat = now
                    mine, cancel = services.job_heartbeat(job=job)
                    if not mine:
                        log.warning("job %s attempt %s is no longer ours: exiting", job.pk, job.attempt)
                        os._exit(3)
                    if cancel and not self.ctx.cancel_requested.is_set():
                        self.ctx.cancel_requested.set()
                        cancel_seen_at = now
                if cancel_seen_at is not None and now - cancel_seen_at > CANCEL_GRACE_SECONDS:
                    self.ctx.log("Canceled: stopping the job's process.")
                    self.ctx.run_stop_callbacks("canceled")
                    self.ctx.flush()
                    services.job_finish_canceled(job=job)
                    os._exit(0)
                if now - self.ctx.started > job.time_limit_seconds:
                    self.ctx.log(f"Time limit of {job.time_limit_seconds} s exceeded: stopping the job.")
                    self.ctx.run_stop_callbacks("time limit")
                    self.ctx.flush()
                    services.job_fail(
                        job=job,
                        error=f"The job ran past its time limit of {job.time_limit_seconds} s.",
                        reason=f"time limit of {job.time_limit_seconds} s exceeded",
                    )
                    os._exit(0)
            except Exception:  # noqa: BLE001 - keep watching; the reconciler covers a dead database
                log.exception("watchdog of job %s", job.pk)
        # this thread's own connection: left open, it lingers until garbage collection, one more per job
        connection.close()


def run_job(job_id: int) -> None:
    close_old_connections()
    job = services.job_claim(job_id=job_id, node_id=current_node_id())
    if job is None:
        return  # a duplicate or stale message: the database says there is nothing to do
    ctx = JobContext(job)
    watchdog = Watchdog(ctx)
    watchdog.start()
    try:
        # The kind's module, and the libraries it needs, load with the first job of the kind on this
        # node (the job is STARTING meanwhile); a module that fails to import fails the job, not the node.
        handler = handler_for(job.kind)
        services.job_mark_running(job=job)
        # The time limit counts from RUNNING: loading the kind's code is the node's time, not the job's.
        ctx.started = time.monotonic()
        outcome, detail = "completed", handler.run(ctx)
    except JobCanceled:
        outcome, detail = "canceled", "Canceled."
    except JobError as exc:
        outcome, detail = "failed", str(exc)
    except MemoryError:
        outcome, detail = "failed", "The job ran out of memory. Try a larger node size or less data."
    except Exception as exc:  # noqa: BLE001 - any failure of the job's code fails the job, not the node
        ctx.log(traceback.format_exc())
        outcome, detail = "failed", f"{type(exc).__name__}: {exc}"
    # Stop the watchdog before the job's status changes: it would take the change for a zombie's.
    watchdog.done.set()
    watchdog.join()
    if outcome == "completed":
        ctx.flush()
        if isinstance(detail, Detach):
            if services.job_detach(job=job, result=detail.result, reason=detail.reason):
                try:
                    handler.on_detached(job_id=job.pk)
                except Exception:  # noqa: BLE001 - the reconciler retries; the node must go on
                    log.exception("job %s: after detaching", job.pk)
        else:
            services.job_complete(job=job, result=detail or {})
    elif outcome == "canceled":
        ctx.log(detail)
        ctx.flush()
        services.job_finish_canceled(job=job)
    else:
        ctx.log(f"Error: {detail}")
        ctx.flush()
        services.job_fail(job=job, error=detail)
