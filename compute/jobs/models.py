"""The job engine's rows: a job, its status history, logs, metrics and artifacts.

The engine knows no job kind: `kind` names a handler that an app registered (see `kinds.py`).
Table names are the ones these models had in `training/`, so moving them lost no row.
"""

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from .kinds import client_runs_it, kind_label, public_spec


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    STARTING = "starting", "Starting"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"

    @classmethod
    def active(cls) -> list[str]:
        return [cls.QUEUED, cls.STARTING, cls.RUNNING]

    @classmethod
    def on_node(cls) -> list[str]:
        return [cls.STARTING, cls.RUNNING]

    @classmethod
    def finished(cls) -> list[str]:
        return [cls.COMPLETED, cls.FAILED, cls.CANCELED]


class Job(models.Model):
    """A unit of work run on a compute target. The database row is the truth; a Celery message
    carrying only its id is the wake-up. Every status change is a `JobEvent` with its reason."""

    workspace = models.ForeignKey("workspaces.Workspace", on_delete=models.CASCADE, related_name="jobs")
    # The grouping of runs lives in training; a lazy reference, so the engine imports no app above it.
    experiment = models.ForeignKey(
        "training.Experiment", null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children")
    kind = models.CharField(max_length=20)
    display_name = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=20, choices=JobStatus.choices, default=JobStatus.QUEUED)
    status_reason = models.CharField(max_length=500, blank=True)
    target = models.ForeignKey(
        "compute.ComputeTarget", null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    node = models.ForeignKey("compute.Node", null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs")
    spec = models.JSONField(default=dict)
    data_version = models.ForeignKey(
        "data.DataVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="jobs"
    )
    attempt = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=3)
    time_limit_seconds = models.PositiveIntegerField(default=3600)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    running_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    # RUNNING without a node: an Automated ML run whose trials (its children) do the work.
    detached = models.BooleanField(default=False)
    result = models.JSONField(default=dict, blank=True)  # summary metrics and outputs, for lists and compare
    error = models.TextField(blank=True)
    log_lines = models.PositiveIntegerField(default=0)
    # A run deleted through the MLflow API: hidden from lists, restorable, its rows kept.
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "training_job"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["workspace", "-created_at"]),
            models.Index(fields=["target", "status"]),
            models.Index(fields=["status", "heartbeat_at"]),
            models.Index(fields=["parent", "status"]),
        ]

    def __str__(self) -> str:
        return self.display_name or f"job #{self.pk}"

    def get_kind_display(self) -> str:
        return kind_label(self.kind)

    @property
    def name(self) -> str:
        return self.display_name or f"{self.get_kind_display()} #{self.pk}"

    @property
    def is_active(self) -> bool:
        return self.status in JobStatus.active()

    @property
    def client_runs_it(self) -> str:
        """The client that runs this job itself (an external run's MLflow client); "" for a job on compute."""
        return client_runs_it(self.kind)

    @property
    def public_spec(self) -> dict:
        """The spec as pages and the API show it: a kind may hide parts (a command job's secrets)."""
        return public_spec(self.kind, self.spec)

    @property
    def duration_seconds(self) -> float | None:
        if self.running_at is None:
            return None
        end = self.finished_at or timezone.now()
        return (end - self.running_at).total_seconds()


class JobEvent(models.Model):
    """One status transition of a job, with why it happened ("why is my job waiting?")."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(max_length=20, choices=JobStatus.choices)
    reason = models.CharField(max_length=500)
    attempt = models.PositiveIntegerField(default=0)
    node = models.ForeignKey("compute.Node", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        db_table = "training_jobevent"
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.job_id} → {self.status}: {self.reason}"


class JobLogLine(models.Model):
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="log")
    seq = models.PositiveIntegerField()
    at = models.DateTimeField()
    attempt = models.PositiveIntegerField(default=0)
    text = models.TextField()

    class Meta:
        db_table = "training_joblogline"
        ordering = ["job_id", "seq"]
        indexes = [models.Index(fields=["job", "seq"])]

    def __str__(self) -> str:
        return self.text[:80]


class Metric(models.Model):
    """A metric value logged by a job at a step (a fold, an iteration, a trial)."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="metrics")
    name = models.CharField(max_length=100)
    step = models.IntegerField(default=0)
    value = models.FloatField()
    # When the value was measured: the caller's clock where it says (MLflow's timestamp), else now.
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "training_metric"
        ordering = ["job_id", "name", "step"]
        indexes = [models.Index(fields=["job", "name", "step"])]

    def __str__(self) -> str:
        return f"{self.name}[{self.step}]={self.value}"


class LatestMetric(models.Model):
    """A job's latest value of each metric (highest step, then latest time, then largest value,
    as MLflow ranks them), kept as metrics arrive: run lists, sorting and filtering read this
    one row per metric instead of a job's whole history."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="latest_metrics")
    name = models.CharField(max_length=100)
    step = models.IntegerField(default=0)
    value = models.FloatField()
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["job_id", "name"]
        constraints = [models.UniqueConstraint(fields=["job", "name"], name="latest_metric_unique_name")]
        indexes = [models.Index(fields=["name", "value"])]

    def __str__(self) -> str:
        return f"{self.name}={self.value}"

    def rank(self) -> tuple:
        return (self.step, self.at, self.value)


class Artifact(models.Model):
    """A file a job wrote. Its path is computed from the row (R1); its SHA-256 is kept (R2)."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="artifacts")
    name = models.CharField(max_length=200)  # server-chosen file name, e.g. "model.skops"
    kind = models.CharField(max_length=50, blank=True)  # model | chart | report | data
    size = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "training_artifact"
        ordering = ["job_id", "name"]
        constraints = [models.UniqueConstraint(fields=["job", "name"], name="artifact_unique_name")]

    def __str__(self) -> str:
        return self.name


# A parameter's name: printable text (no control characters, so no NUL for PostgreSQL), as MLflow allows.
PARAM_KEY_MAX = 250
PARAM_VALUE_MAX = 500
PARAM_KEY_RULE = "Use 1–250 characters, with no control characters."


class JobParam(models.Model):
    """A parameter a job's code recorded (a learning rate, a seed): one value per name, and like a
    run's parameters in MLflow it never changes once set. Shown on the job's page."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="params")
    key = models.CharField(
        max_length=PARAM_KEY_MAX,
        validators=[RegexValidator(r"^[^\x00-\x1f\x7f]{1,250}\Z", PARAM_KEY_RULE)],
        error_messages={"blank": PARAM_KEY_RULE, "max_length": PARAM_KEY_RULE},
    )
    value = models.CharField(
        max_length=PARAM_VALUE_MAX,
        blank=True,
        validators=[RegexValidator(r"^[^\x00]*\Z", "The value may not contain the NUL character.")],
        error_messages={"max_length": f"Use at most {PARAM_VALUE_MAX} characters."},
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["job_id", "key"]
        constraints = [models.UniqueConstraint(fields=["job", "key"], name="job_param_unique_key")]

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


class JobToken(models.Model):
    """A short-lived key that a running job's own code uses to reach the API for that job only
    (its metrics, parameters and artifacts; its inputs). Only the key's hash is kept; the key is
    handed to the job's process and revoked when the job ends."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="tokens")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"token of job {self.job_id}"

    @property
    def prefix(self) -> str:
        # What the API's rate limit counts calls by (studio.api.throttling reads `prefix`): each
        # job's token spends a budget of its own, not its submitter's. With the issue time: ids of
        # a database made again (tests, a restore) repeat, and the counters outlive it.
        return f"job-{self.job_id}-{int(self.created_at.timestamp() * 1e6)}"
