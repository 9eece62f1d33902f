"""Predictive services: endpoints, their deployments and keys, and the monitoring they record."""

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

BATCH_SCORE = "batch_score"  # the job kind this app registers (apps.py; its handler is in jobs.py)

# Endpoint names are part of the scoring URL; deployment names are headers and traffic keys.
# The API's input serializers document the same pattern.
ENDPOINT_NAME_PATTERN = r"^[a-z][a-z0-9-]{1,62}$"
validate_endpoint_name = RegexValidator(
    ENDPOINT_NAME_PATTERN, "Use 2–63 lower-case letters, digits or hyphens, starting with a letter."
)


class Endpoint(models.Model):
    """A stable scoring URL (/score/<name>/) with two keys, a traffic split over its deployments
    and an optional mirror. Every change bumps `config_version`; serving processes reload their
    cached copy when it moves (they check at most once a second, never per request)."""

    workspace = models.ForeignKey("workspaces.Workspace", on_delete=models.CASCADE, related_name="endpoints")
    name = models.SlugField(max_length=63, unique=True, validators=[validate_endpoint_name])
    description = models.CharField(max_length=500, blank=True)
    auth_mode = models.CharField(max_length=20, default="key")
    key1_prefix = models.CharField(max_length=16, blank=True)
    key1_hash = models.CharField(max_length=64, blank=True)
    key2_prefix = models.CharField(max_length=16, blank=True)
    key2_hash = models.CharField(max_length=64, blank=True)
    traffic = models.JSONField(default=dict, blank=True)  # {deployment name: percent}, sums to 100
    mirror_deployment = models.CharField(max_length=63, blank=True)
    mirror_percent = models.PositiveIntegerField(default=0)
    requests_per_minute = models.PositiveIntegerField(default=6000)  # per key
    config_version = models.PositiveIntegerField(default=1)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class DeploymentStatus(models.TextChoices):
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class Deployment(models.Model):
    """A registered model version served under an endpoint, on an inference cluster."""

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="deployments")
    name = models.SlugField(max_length=63, validators=[validate_endpoint_name])
    model_version = models.ForeignKey("training.ModelVersion", on_delete=models.PROTECT, related_name="deployments")
    target = models.ForeignKey("compute.ComputeTarget", on_delete=models.PROTECT, related_name="deployments")
    replicas = models.PositiveIntegerField(default=1)  # wanted now: set by the user, or by the autoscaler
    # Autoscaling (off while max_replicas is null): between min and max replicas, aiming at
    # target_in_flight requests being scored per replica; scaled in after scale_in_seconds below
    # that (last_busy_at is when the load last needed the current replicas). min 0: scale to zero.
    min_replicas = models.PositiveIntegerField(null=True, blank=True)
    max_replicas = models.PositiveIntegerField(null=True, blank=True)
    target_in_flight = models.PositiveIntegerField(default=4)
    scale_in_seconds = models.PositiveIntegerField(default=300)
    last_busy_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=DeploymentStatus.choices, default=DeploymentStatus.READY)
    status_reason = models.CharField(max_length=500, blank=True)
    backend = models.CharField(max_length=20, blank=True)  # onnx | skops | skops+onnx (forecasting)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["endpoint_id", "name"]
        constraints = [models.UniqueConstraint(fields=["endpoint", "name"], name="deployment_unique_name")]

    def __str__(self) -> str:
        return f"{self.endpoint.name}/{self.name}"

    @property
    def autoscales(self) -> bool:
        return self.max_replicas is not None


class MonitoringBucket(models.Model):
    """One serving process's counts for one deployment over one minute, flushed in batches.

    Several processes write their own rows for the same minute; pages add them up.
    """

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="buckets")
    deployment = models.ForeignKey(Deployment, null=True, on_delete=models.SET_NULL, related_name="buckets")
    deployment_name = models.CharField(max_length=63)
    minute = models.DateTimeField()
    source = models.CharField(max_length=100)  # host:pid of the serving process
    mirrored = models.BooleanField(default=False)
    requests = models.PositiveIntegerField(default=0)
    errors_4xx = models.PositiveIntegerField(default=0)
    errors_5xx = models.PositiveIntegerField(default=0)
    throttled = models.PositiveIntegerField(default=0)
    rows = models.PositiveIntegerField(default=0)
    latency_ms_sum = models.FloatField(default=0)
    latency_histogram = models.JSONField(default=list)  # counts per LATENCY_BUCKETS_MS bucket
    predicted = models.JSONField(default=dict)  # {class: rows}
    quality = models.JSONField(default=dict)  # drift counts (modelformat.drift.count_batch), sampled inputs

    class Meta:
        ordering = ["-minute"]
        indexes = [models.Index(fields=["endpoint", "minute"]), models.Index(fields=["minute"])]

    def __str__(self) -> str:
        return f"{self.deployment_name} @ {self.minute:%Y-%m-%d %H:%M}"
