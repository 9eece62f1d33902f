"""Compute targets, their nodes (real Celery worker processes) and metered node time."""

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator
from django.db import models

from studio.validation import name_field

TARGET_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9-]{1,63}$"
TARGET_NAME_MESSAGE = "Use 2–64 letters, digits or hyphens, starting with a letter (e.g. cpu-cluster)."


@dataclass(frozen=True)
class NodeSize:
    key: str
    label: str
    cores: int
    memory_gib: int
    price_per_hour: Decimal  # dedicated price; low priority costs LOW_PRIORITY_DISCOUNT of it


NODE_SIZES = {
    size.key: size
    for size in (
        NodeSize("small", "Small — 1 core, 2 GiB", 1, 2, Decimal("0.05")),
        NodeSize("medium", "Medium — 2 cores, 8 GiB", 2, 8, Decimal("0.19")),
        NodeSize("large", "Large — 4 cores, 16 GiB", 4, 16, Decimal("0.38")),
        NodeSize("xlarge", "X-Large — 8 cores, 32 GiB", 8, 32, Decimal("0.76")),
    )
}
LOW_PRIORITY_DISCOUNT = Decimal("0.2")


class TargetKind(models.TextChoices):
    INSTANCE = "instance", "Compute instance"
    CLUSTER = "cluster", "Compute cluster"
    INFERENCE = "inference", "Inference cluster"
    ATTACHED = "attached", "Attached compute"


class Priority(models.TextChoices):
    DEDICATED = "dedicated", "Dedicated"
    LOW = "low", "Low priority"


class ComputeTarget(models.Model):
    """Where work runs. Clusters and instances get nodes from the local provisioner; attached
    compute brings its own nodes (machines that join with a token); inference clusters hold the
    serving replicas of deployments."""

    workspace = models.ForeignKey("workspaces.Workspace", on_delete=models.CASCADE, related_name="compute_targets")
    name = name_field(max_length=64, pattern=TARGET_NAME_PATTERN, message=TARGET_NAME_MESSAGE)
    kind = models.CharField(max_length=20, choices=TargetKind.choices)
    description = models.CharField(max_length=500, blank=True)
    size = models.CharField(max_length=20, default="small")
    priority = models.CharField(max_length=20, choices=Priority.choices, default=Priority.DEDICATED)
    min_nodes = models.PositiveIntegerField(default=0)
    max_nodes = models.PositiveIntegerField(default=1)
    idle_seconds_before_scaledown = models.PositiveIntegerField(default=120)
    # Compute instances: one user's workstation, started and stopped by hand or by the idle timer.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    instance_running = models.BooleanField(default=False)
    idle_shutdown_minutes = models.PositiveIntegerField(null=True, blank=True)
    # The last notebook activity (kernels, terminals) the instance's lab reported: idle shutdown counts it.
    instance_activity_at = models.DateTimeField(null=True, blank=True)
    # Attached compute: machines join with this token (only its hash is kept, R5).
    join_token_prefix = models.CharField(max_length=16, blank=True)
    join_token_hash = models.CharField(max_length=64, blank=True)
    is_default = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="compute_target_unique_name"),
            models.CheckConstraint(condition=models.Q(max_nodes__gte=models.F("min_nodes")), name="compute_max_ge_min"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def queue(self) -> str:
        """The Celery queue this target's nodes consume."""
        return f"compute.{self.pk}"

    @property
    def node_size(self) -> NodeSize:
        return NODE_SIZES.get(self.size, NODE_SIZES["small"])

    @property
    def price_per_node_hour(self) -> Decimal:
        price = self.node_size.price_per_hour
        return price * LOW_PRIORITY_DISCOUNT if self.priority == Priority.LOW else price

    @property
    def runs_jobs(self) -> bool:
        return self.kind in (TargetKind.CLUSTER, TargetKind.INSTANCE, TargetKind.ATTACHED)

    @property
    def is_provisioned_here(self) -> bool:
        """Nodes of this target are started and stopped by the studio's local provisioner."""
        return self.kind in (TargetKind.CLUSTER, TargetKind.INSTANCE, TargetKind.INFERENCE)


class NodeStatus(models.TextChoices):
    REQUESTED = "requested", "Requested"  # the autoscaler wants it; no process yet
    STARTING = "starting", "Starting"  # process started, not consuming yet
    IDLE = "idle", "Idle"
    BUSY = "busy", "Busy"
    LEAVING = "leaving", "Leaving"  # asked to stop
    STOPPED = "stopped", "Stopped"
    LOST = "lost", "Lost"  # stopped heartbeating or died

    @classmethod
    def live(cls) -> list[str]:
        return [cls.REQUESTED, cls.STARTING, cls.IDLE, cls.BUSY]

    @classmethod
    def taking_jobs(cls) -> list[str]:
        return [cls.STARTING, cls.IDLE, cls.BUSY]


class Node(models.Model):
    """One Celery worker process (concurrency 1) consuming its target's queue — or, on an inference
    cluster, one serving replica of one deployment (`deployment_id`): an HTTP server process that
    reports the address it answers on, its health (heartbeat) and its in-flight requests."""

    target = models.ForeignKey(ComputeTarget, on_delete=models.CASCADE, related_name="nodes")
    status = models.CharField(max_length=20, choices=NodeStatus.choices, default=NodeStatus.REQUESTED)
    reason = models.CharField(max_length=300, blank=True)
    provisioner = models.CharField(max_length=20, default="local")  # local | attached
    hostname = models.CharField(max_length=200, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    requested_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    idle_since = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    jobs_run = models.PositiveIntegerField(default=0)
    # What the sandbox enforces for command jobs on this node's host, as the node reported it.
    protections = models.JSONField(default=list, blank=True)
    # Serving replicas only. The deployment is named by id, not linked: compute sits below endpoints.
    deployment_id = models.PositiveBigIntegerField(null=True, blank=True)
    address = models.CharField(max_length=100, blank=True)  # host:port the replica answers on
    in_flight = models.PositiveIntegerField(default=0)  # requests being scored, as of the last heartbeat

    class Meta:
        ordering = ["-requested_at", "-id"]
        indexes = [
            models.Index(fields=["target", "status"]),
            models.Index(fields=["status", "provisioner"]),
            models.Index(fields=["deployment_id", "status"]),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        return f"node-{self.pk}"

    @property
    def is_live(self) -> bool:
        return self.status in NodeStatus.live()

    @property
    def failed_before_serving(self) -> bool:
        """A replica that died (or could not start) before it ever answered."""
        return self.deployment_id is not None and self.status == NodeStatus.LOST and self.ready_at is None

    @property
    def is_replica(self) -> bool:
        return self.deployment_id is not None


def failed_starts_in_a_row(stopped_replicas: Iterable[Node]) -> list[Node]:
    """Of a deployment's stopped replicas, newest first: those that failed before serving, up to
    the newest that served. The page shows how many; the next start waits longer for each."""
    return list(itertools.takewhile(lambda node: node.failed_before_serving, stopped_replicas))


class NodeSession(models.Model):
    """Metered node time: a node's life from start to stop. Cost = hours × price per node-hour."""

    node = models.OneToOneField(Node, on_delete=models.CASCADE, related_name="session")
    target = models.ForeignKey(ComputeTarget, on_delete=models.CASCADE, related_name="sessions")
    workspace = models.ForeignKey("workspaces.Workspace", on_delete=models.CASCADE, related_name="+")
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    price_per_hour = models.DecimalField(max_digits=8, decimal_places=4)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["workspace", "started_at"]), models.Index(fields=["target", "started_at"])]

    def __str__(self) -> str:
        return f"{self.node} {self.started_at:%Y-%m-%d %H:%M}–{self.ended_at or '…'}"


class ServingSession(models.Model):
    """Metered serving time: one deployment's replicas on an inference cluster, from deploy (or a
    change of replicas) to removal. Cost = hours × replicas × the cluster's price per node-hour.
    The deployment is named, not linked: compute sits below endpoints and keeps the record after
    the deployment is gone."""

    target = models.ForeignKey(ComputeTarget, on_delete=models.CASCADE, related_name="serving_sessions")
    workspace = models.ForeignKey("workspaces.Workspace", on_delete=models.CASCADE, related_name="+")
    deployment_id = models.PositiveBigIntegerField()
    deployment_name = models.CharField(max_length=130)  # endpoint/deployment
    replicas = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    price_per_hour = models.DecimalField(max_digits=8, decimal_places=4)  # per replica

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            models.Index(fields=["workspace", "started_at"]),
            models.Index(fields=["deployment_id", "ended_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.deployment_name} ×{self.replicas} {self.started_at:%Y-%m-%d %H:%M}–{self.ended_at or '…'}"


class ComputeQuota(models.Model):
    """A workspace's own limits on nodes and cores running at once across its clusters and
    instances, set by staff. An empty field means the studio-wide default from the settings."""

    workspace = models.OneToOneField("workspaces.Workspace", on_delete=models.CASCADE, related_name="compute_quota")
    max_nodes = models.PositiveIntegerField(
        null=True, blank=True, help_text="Empty: STUDIO_WORKSPACE_MAX_NODES.", validators=[MaxValueValidator(10_000)]
    )
    max_cores = models.PositiveIntegerField(
        null=True, blank=True, help_text="Empty: STUDIO_WORKSPACE_MAX_CORES.", validators=[MaxValueValidator(100_000)]
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"compute quota of {self.workspace}"


# The job engine's rows live in compute/jobs/ (the cluster owns the jobs it runs); imported here
# so Django registers them with this app.
from .jobs.models import Artifact, Job, JobEvent, JobLogLine, JobStatus, JobToken, Metric  # noqa: E402, F401
