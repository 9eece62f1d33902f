"""What a running job's own code records about itself through the run API: metrics, parameters
and artifacts. The caller has authorised the write for this job (its own token); nothing here
takes a job id from a request, so a job can only ever write to itself.
"""

import hashlib
import math
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import UnreadablePostError
from django.utils import timezone

from studio import objectstore
from studio.validation import model_validate
from workspaces.services import workspace_storage_check

from .metrics import MetricRow, metrics_save
from .models import Artifact, Job, JobParam
from .recovery import job_artifact_dir

MAX_METRICS_PER_CALL = 1000
METRIC_KEY_MAX = 100  # Metric.name's length
# Metric.step is a 32-bit integer column on every database.
STEP_MIN, STEP_MAX = -(2**31), 2**31 - 1
MAX_PARAMS_PER_JOB = 100
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")

# Files sent through the run API are artifacts named "logged/<path>": the engine's own artifacts
# have flat names ("model.skops") and a command's collected outputs another prefix, so none clash.
RUN_ARTIFACT_PREFIX = "logged/"
ARTIFACT_NAME_MAX = 200  # Artifact.name's length
ARTIFACT_PATH_MAX = ARTIFACT_NAME_MAX - len(RUN_ARTIFACT_PREFIX)
ARTIFACT_PATH_MAX_DEPTH = 10
SEGMENT_MAX_BYTES = 255  # a file name on Linux file systems
# Uploads are written here first, then renamed into place: a reader never sees half a file.
STAGING_FOLDER = ".run-api-staging"
CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class MetricValue:
    key: str
    value: float
    step: int = 0
    at: datetime | None = None  # when the caller measured it (MLflow's timestamp); now if None


def _metric_problem(metric: MetricValue) -> str | None:
    key = metric.key
    if not isinstance(key, str) or not key or len(key) > METRIC_KEY_MAX or CONTROL_CHARACTERS.search(key):
        return f"the key must be 1–{METRIC_KEY_MAX} characters with no control characters"
    value = metric.value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "the value must be a number"
    try:
        if not math.isfinite(float(value)):
            return "the value must be a finite number"
    except OverflowError:
        return "the value is too large"
    step = metric.step
    if isinstance(step, bool) or not isinstance(step, int) or not STEP_MIN <= step <= STEP_MAX:
        return f"the step must be a whole number from {STEP_MIN} to {STEP_MAX}"
    return None


def job_metrics_log(*, job: Job, metrics: Sequence[MetricValue]) -> int:
    """Record a batch of metric values for the job (all or none); returns how many.

    At most MAX_METRICS_PER_CALL per call; keys of 1–100 characters; finite numbers; 32-bit steps."""
    if len(metrics) > MAX_METRICS_PER_CALL:
        raise ValidationError({"metrics": [f"Send at most {MAX_METRICS_PER_CALL} metric values per call."]})
    problems = [f"Item {i}: {problem}." for i, m in enumerate(metrics) if (problem := _metric_problem(m))]
    if problems:
        raise ValidationError({"metrics": problems})
    now = timezone.now()
    metrics_save([MetricRow(job.pk, m.key, m.step, float(m.value), m.at or now) for m in metrics])
    return len(metrics)


def job_params_log(*, job: Job, params: dict[str, str], max_params: int = MAX_PARAMS_PER_JOB) -> int:
    """Record the job's parameters; returns how many were new.

    As in MLflow, a parameter never changes: sending the value it has is a no-op, another value
    is a conflict (409). A job keeps at most `max_params` of them (MAX_PARAMS_PER_JOB through the
    run API; the MLflow API allows more, as MLflow does)."""
    problems = []
    for key, value in params.items():
        try:
            model_validate(JobParam(job=job, key=key, value=value), fields=["key", "value"])
        except ValidationError as exc:
            problems += [f"{key[:100]!r}: {m}" for messages in exc.message_dict.values() for m in messages]
    if problems:
        raise ValidationError({"params": problems})
    with transaction.atomic():
        # Locking the job serialises its writers, so two calls cannot both pass the count.
        Job.objects.select_for_update().filter(pk=job.pk).first()
        existing = dict(JobParam.objects.filter(job=job, key__in=list(params)).values_list("key", "value"))
        changed = [key for key, value in params.items() if key in existing and existing[key] != value]
        if changed:
            key = changed[0]
            raise ValidationError(
                f"The parameter {key!r} is already {existing[key]!r}: a job's parameters do not change once set.",
                code="conflict",
            )
        new = {key: value for key, value in params.items() if key not in existing}
        held = JobParam.objects.filter(job=job).count()
        if held + len(new) > max_params:
            raise ValidationError(
                f"A job keeps at most {max_params} parameters; it has {held} and this call adds {len(new)}.",
                code="conflict",
            )
        JobParam.objects.bulk_create(JobParam(job=job, key=key, value=value) for key, value in new.items())
    return len(new)


# --- Artifacts ------------------------------------------------------------------------------------
class ArtifactTooLarge(ValidationError):
    """The file is larger than STUDIO_RUN_ARTIFACT_MAX_BYTES (a 413)."""


class ArtifactCutOff(ValidationError):
    """The body ended before the announced length: nothing was stored."""


def run_artifact_name(path: str) -> str:
    """The artifact name for a path the job's code chose ("plots/loss.png" → "logged/plots/loss.png").

    The path never reaches the file system as given (R1): each segment is checked ("." and "..",
    empty segments, control characters and backslashes are refused) and the file lands under the
    job's own folder, which the name is joined to."""

    def refuse(message: str):
        return ValidationError({"path": [message]})

    if not isinstance(path, str) or not path:
        raise refuse("Give the artifact's path, e.g. plots/loss.png.")
    if len(path) > ARTIFACT_PATH_MAX:
        raise refuse(f"Use a path of at most {ARTIFACT_PATH_MAX} characters.")
    segments = path.split("/")
    if len(segments) > ARTIFACT_PATH_MAX_DEPTH:
        raise refuse(f"Use at most {ARTIFACT_PATH_MAX_DEPTH} folder levels.")
    for segment in segments:
        if segment in ("", ".", ".."):
            raise refuse("Each part of the path must be a name: no empty parts, '.' or '..'.")
        if CONTROL_CHARACTERS.search(segment) or "\\" in segment:
            raise refuse("The path may not contain control characters or backslashes.")
        if len(segment.encode()) > SEGMENT_MAX_BYTES:
            raise refuse(f"Each part of the path must be at most {SEGMENT_MAX_BYTES} bytes long.")
    return RUN_ARTIFACT_PREFIX + path


def _too_large_message(size: int) -> str:
    limit = settings.STUDIO_RUN_ARTIFACT_MAX_BYTES
    return f"The file is {size:,} bytes, larger than the limit of {limit:,} bytes per artifact."


def _receive(stream, *, size: int, folder) -> tuple[str, str]:
    """Write `size` bytes of `stream` to a new file in `folder`; (its path, its SHA-256)."""
    folder.mkdir(parents=True, exist_ok=True)
    descriptor, staged = tempfile.mkstemp(dir=folder, prefix="upload-")
    digest, received = hashlib.sha256(), 0
    try:
        with os.fdopen(descriptor, "wb") as out:
            while received < size:
                chunk = stream.read(min(CHUNK_BYTES, size - received)) if stream is not None else b""
                if not chunk:
                    break
                received += len(chunk)
                digest.update(chunk)
                out.write(chunk)
    except (UnreadablePostError, OSError):
        received = -1
    if received != size:
        os.unlink(staged)
        raise ArtifactCutOff("The upload was cut off before the whole file arrived; nothing was stored.")
    return staged, digest.hexdigest()


def _destination(job: Job, name: str):
    """The artifact's file, its folders made; a conflict if a file stands where a folder must be
    (or the reverse), and never outside the job's folder (a symbolic link counts as outside)."""
    root = job_artifact_dir(job)
    destination = root / name
    here = root
    for part in destination.relative_to(root).parts[:-1]:
        here = here / part
        if here.is_symlink() or (here.exists() and not here.is_dir()):
            raise ValidationError(
                f"{here.relative_to(root)} is a file of this job, not a folder: choose another path.", code="conflict"
            )
    destination.parent.mkdir(parents=True, exist_ok=True)
    if destination.is_symlink() or destination.is_dir():
        raise ValidationError(f"{name} is a folder of this job's artifacts: choose another path.", code="conflict")
    if not destination.parent.resolve().is_relative_to(root.resolve()):
        raise ValidationError("The path leads outside the job's folder.")
    return destination


def job_artifact_store(*, job: Job, path: str, stream, size: int) -> Artifact:
    """Store `size` bytes read from `stream` as the job's artifact "logged/<path>", replacing a
    file sent earlier under that path; the Artifact row keeps its size and SHA-256 (R2).

    Refused before a byte is stored: a bad path (400), a file larger than
    STUDIO_RUN_ARTIFACT_MAX_BYTES (ArtifactTooLarge), a full workspace (StorageQuotaExceeded). A
    body cut short stores nothing (ArtifactCutOff)."""
    name = run_artifact_name(path)
    if size > settings.STUDIO_RUN_ARTIFACT_MAX_BYTES:
        raise ArtifactTooLarge(_too_large_message(size))
    workspace_storage_check(workspace=job.workspace, adding=size)
    root = job_artifact_dir(job)
    staged, sha256 = _receive(stream, size=size, folder=root / STAGING_FOLDER)
    try:
        with transaction.atomic():
            # Locking the job serialises two uploads of one path: the row describes the file that won.
            Job.objects.select_for_update().filter(pk=job.pk).first()
            destination = _destination(job, name)
            os.replace(staged, destination)
            objectstore.publish(destination, sha256=sha256)
            artifact, _ = Artifact.objects.update_or_create(
                job=job, name=name, defaults={"kind": "logged", "size": size, "sha256": sha256}
            )
    finally:
        if os.path.exists(staged):
            os.unlink(staged)
    return artifact
