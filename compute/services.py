"""Compute targets, node life cycle and the autoscaler. Roles are checked here (R4)."""

import shutil
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, F, Q
from django.http import Http404
from django.utils import timezone

from studio.secrets import secret_matches, secret_new, secret_split
from studio.validation import model_validate
from workspaces.models import Membership, Role, Workspace
from workspaces.policy import Action, PersonalAction, require, require_personal
from workspaces.services import activity_record

from . import selectors
from .jobs.models import Job, JobEvent, JobStatus
from .jobs.recovery import jobs_hand_back, jobs_recover_from_lost_node
from .models import (
    NODE_SIZES,
    ComputeQuota,
    ComputeTarget,
    Node,
    NodeSession,
    NodeStatus,
    Priority,
    ServingSession,
    TargetKind,
    failed_starts_in_a_row,
)

JOIN_TOKEN_LABEL = "join"  # noqa: S105 - a label, not a secret
DEFAULT_CLUSTER_NAME = "cpu-cluster"
WAITING_FOR_HOST = "waiting for capacity on this host"
REPLICA_RETRY_FIRST_SECONDS, REPLICA_RETRY_MAX_SECONDS = 2, 300  # after replicas die before serving
WAITING_FOR_QUOTA = "waiting: workspace quota of"  # how every quota reason on a job starts


@dataclass(frozen=True)
class TargetCreated:
    target: ComputeTarget
    join_token: str | None  # attached compute only; shown once


def _busy_job_statuses():
    return JobStatus.active()


def _clean_target_fields(*, kind, name, size, priority, min_nodes, max_nodes, idle_seconds, idle_shutdown_minutes):
    errors = {}
    if kind not in TargetKind.values:
        errors["kind"] = [f"Choose one of: {', '.join(TargetKind.values)}."]
    try:
        model_validate(ComputeTarget(name=name if isinstance(name, str) else ""), fields=["name"])
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if size not in NODE_SIZES:
        errors["size"] = [f"Choose one of: {', '.join(NODE_SIZES)}."]
    if priority not in Priority.values:
        errors["priority"] = [f"Choose one of: {', '.join(Priority.values)}."]
    for field, value, low, high in (
        ("min_nodes", min_nodes, 0, 100),
        ("max_nodes", max_nodes, 1, 100),
        ("idle_seconds_before_scaledown", idle_seconds, 0, 7 * 24 * 3600),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            errors[field] = [f"Give a whole number from {low} to {high}."]
    if not errors and min_nodes > max_nodes:
        errors["min_nodes"] = ["The minimum cannot exceed the maximum number of nodes."]
    if idle_shutdown_minutes is not None and (
        not isinstance(idle_shutdown_minutes, int) or not 1 <= idle_shutdown_minutes <= 7 * 24 * 60
    ):
        errors["idle_shutdown_minutes"] = ["Give a number of minutes from 1 to 10,080, or leave it empty."]
    if errors:
        raise ValidationError(errors)


def target_require(actor, target: ComputeTarget, action: str) -> str:
    """May `actor` do `action` (a PersonalAction) to this target? A compute instance is its owner's
    (R4, as in Azure); any other target is the workspace's, changed by Owners and Contributors."""
    if target.kind == TargetKind.INSTANCE:
        return require_personal(
            actor, target.workspace, owner_id=target.owner_id, action=action, noun="compute instance"
        )
    return require(actor, target.workspace, Action.WRITE)


def target_allows(actor, target: ComputeTarget, action: str) -> bool:
    """target_require as a yes/no, for pages that hide what the user may not do."""
    try:
        target_require(actor, target, action)
    except (PermissionDenied, Http404):
        return False
    return True


def _check_quota(*, workspace: Workspace, kind: str, size: str, min_nodes: int, max_nodes: int, target_id=None):
    """Refuse scale settings the workspace's compute quota could never hold: a maximum above the
    quota, or a minimum (kept running at all times) above what the other clusters' minimums leave."""
    if kind not in selectors.QUOTA_KINDS:
        return
    quota_nodes, quota_cores = selectors.quota_limits(workspace_ids=[workspace.pk])[workspace.pk]
    cores = NODE_SIZES[size].cores
    quota = f"The workspace's compute quota is {quota_nodes} nodes and {quota_cores} cores"
    errors = {}
    if max_nodes > quota_nodes or max_nodes * cores > quota_cores:
        most = min(quota_nodes, quota_cores // cores)
        field = "size" if kind == TargetKind.INSTANCE else "max_nodes"
        errors[field] = [f"{quota}: at most {most} {size} nodes ({cores} cores each)."]
    reserved_nodes, reserved_cores = selectors.quota_reserved(workspace=workspace, exclude_target_id=target_id)
    allowed_min = max(0, min(quota_nodes - reserved_nodes, (quota_cores - reserved_cores) // cores))
    if min_nodes > allowed_min:
        errors["min_nodes"] = [
            f"{quota}; its other clusters keep {reserved_nodes} nodes ({reserved_cores} cores) running, "
            f"so this cluster can keep at most {allowed_min} {size} nodes running."
        ]
    if errors:
        raise ValidationError(errors)


def compute_quota_set(*, actor, workspace: Workspace, max_nodes: int | None, max_cores: int | None) -> ComputeQuota:
    """Set a workspace's own compute quota (staff only; None: the studio-wide default). Lowering it
    stops no running node: the autoscaler starts no more until use is under the new quota."""
    if not getattr(actor, "is_staff", False):
        raise PermissionDenied("Only staff set compute quotas.")
    quota = ComputeQuota.objects.filter(workspace=workspace).first() or ComputeQuota(workspace=workspace)
    quota.max_nodes, quota.max_cores, quota.updated_by = max_nodes, max_cores, actor
    quota.full_clean()
    with transaction.atomic():
        quota.save()
        activity_record(
            workspace=workspace,
            actor=actor,
            verb="compute_quota_set",
            summary=f"{actor} set the compute quota to {max_nodes or 'default'} nodes, {max_cores or 'default'} cores",
        )
    return quota


def target_create(
    *,
    actor,
    workspace: Workspace,
    kind: str,
    name: str,
    description: str = "",
    size: str = "small",
    priority: str = Priority.DEDICATED,
    min_nodes: int = 0,
    max_nodes: int = 2,
    idle_seconds_before_scaledown: int = 120,
    idle_shutdown_minutes: int | None = None,
) -> TargetCreated:
    """Create a compute target (Owners and Contributors). A compute instance belongs to `actor`
    and holds one node; attached compute gets a join token, returned once."""
    require(actor, workspace, Action.WRITE)
    name = name.strip() if isinstance(name, str) else name
    if kind == TargetKind.INSTANCE:
        min_nodes, max_nodes = 0, 1
    if kind == TargetKind.ATTACHED:
        min_nodes, max_nodes = 0, max(max_nodes, 1) if isinstance(max_nodes, int) else 1
    _clean_target_fields(
        kind=kind,
        name=name,
        size=size,
        priority=priority,
        min_nodes=min_nodes,
        max_nodes=max_nodes,
        idle_seconds=idle_seconds_before_scaledown,
        idle_shutdown_minutes=idle_shutdown_minutes,
    )
    description = description or ""
    model_validate(ComputeTarget(description=description), fields=["description"])  # refused, never cut
    _check_quota(workspace=workspace, kind=kind, size=size, min_nodes=min_nodes, max_nodes=max_nodes)
    if ComputeTarget.objects.filter(workspace=workspace, name=name).exists():
        raise ValidationError(
            {"name": ValidationError(f"This workspace already has a compute target called {name}.", code="conflict")}
        )
    token = secret_new(JOIN_TOKEN_LABEL) if kind == TargetKind.ATTACHED else None
    with transaction.atomic():
        target = ComputeTarget.objects.create(
            workspace=workspace,
            kind=kind,
            name=name,
            description=description,
            size=size,
            priority=priority,
            min_nodes=min_nodes,
            max_nodes=max_nodes,
            idle_seconds_before_scaledown=idle_seconds_before_scaledown,
            idle_shutdown_minutes=idle_shutdown_minutes if kind == TargetKind.INSTANCE else None,
            owner=actor if kind == TargetKind.INSTANCE else None,
            instance_running=kind == TargetKind.INSTANCE,
            join_token_prefix=token.prefix if token else "",
            join_token_hash=token.hash if token else "",
            created_by=actor,
        )
        activity_record(
            workspace=workspace,
            actor=actor,
            verb="compute_created",
            summary=f"{actor} created the {target.get_kind_display().lower()} {target.name}",
        )
    return TargetCreated(target=target, join_token=token.plaintext if token else None)


def target_update(
    *,
    actor,
    target: ComputeTarget,
    description: str | None = None,
    min_nodes: int | None = None,
    max_nodes: int | None = None,
    idle_seconds_before_scaledown: int | None = None,
    priority: str | None = None,
    idle_shutdown_minutes: int | None = None,
) -> ComputeTarget:
    """Change a target's scale settings (a compute instance: its owner only), within the
    workspace's compute quota. The autoscaler applies them on its next tick."""
    target_require(actor, target, PersonalAction.CHANGE)
    new = {
        "min_nodes": target.min_nodes if min_nodes is None else min_nodes,
        "max_nodes": target.max_nodes if max_nodes is None else max_nodes,
        "idle_seconds": target.idle_seconds_before_scaledown
        if idle_seconds_before_scaledown is None
        else idle_seconds_before_scaledown,
        "priority": target.priority if priority is None else priority,
        "idle_shutdown_minutes": idle_shutdown_minutes
        if idle_shutdown_minutes is not None
        else target.idle_shutdown_minutes,
    }
    if target.kind == TargetKind.INSTANCE:
        new["min_nodes"], new["max_nodes"] = 0, 1
    _clean_target_fields(kind=target.kind, name=target.name, size=target.size, **new)
    if description is not None:
        model_validate(ComputeTarget(description=description), fields=["description"])  # refused, never cut
    _check_quota(
        workspace=target.workspace,
        kind=target.kind,
        size=target.size,
        min_nodes=new["min_nodes"],
        max_nodes=new["max_nodes"],
        target_id=target.pk,
    )
    target.min_nodes, target.max_nodes = new["min_nodes"], new["max_nodes"]
    target.idle_seconds_before_scaledown = new["idle_seconds"]
    target.priority = new["priority"]
    target.idle_shutdown_minutes = new["idle_shutdown_minutes"] if target.kind == TargetKind.INSTANCE else None
    if description is not None:
        target.description = description
    with transaction.atomic():
        target.save()
        activity_record(
            workspace=target.workspace,
            actor=actor,
            verb="compute_updated",
            summary=f"{actor} changed the settings of {target.name}",
        )
    return target


def target_delete(*, actor, target: ComputeTarget) -> None:
    """Delete a target: refused while jobs are queued or running on it. Its live node processes
    are stopped by the agent (their rows go with the target). A compute instance is deleted by its
    owner or a workspace Owner."""
    target_require(actor, target, PersonalAction.DELETE)

    with transaction.atomic():
        active = list(
            Job.objects.filter(target=target, status__in=_busy_job_statuses()).values_list("pk", flat=True)[:5]
        )
        if active:
            raise ValidationError(
                f"{target.name} has queued or running jobs ({', '.join(f'#{pk}' for pk in active)}). "
                "Cancel them or wait for them to finish first.",
                code="conflict",
            )
        _nodes_leave(target.nodes.filter(status__in=NodeStatus.live()), reason="the compute target was deleted")
        name = target.name
        workspace = target.workspace
        folder = instance_folder(target.pk) if target.kind == TargetKind.INSTANCE else None
        target.delete()  # finished jobs keep their history; their target shows as deleted
        if folder is not None:
            # The lab's home goes with the instance (the delete page says so); its lab process has
            # seen the node leave by then or stops within seconds, so nothing writes there any more.
            transaction.on_commit(lambda: shutil.rmtree(folder, ignore_errors=True))
        activity_record(workspace=workspace, actor=actor, verb="compute_deleted", summary=f"{actor} deleted {name}")


def _require_instance_control(actor, target: ComputeTarget) -> None:
    target_require(actor, target, PersonalAction.USE)
    if target.kind != TargetKind.INSTANCE:
        raise ValidationError("Only compute instances are started and stopped by hand.", code="conflict")


def instance_start(*, actor, target: ComputeTarget) -> ComputeTarget:
    _require_instance_control(actor, target)
    ComputeTarget.objects.filter(pk=target.pk).update(instance_running=True)
    target.instance_running = True
    return target


def instance_stop(*, actor, target: ComputeTarget, reason: str = "stopped by its owner") -> ComputeTarget:
    _require_instance_control(actor, target)
    with transaction.atomic():
        ComputeTarget.objects.filter(pk=target.pk).update(instance_running=False)
        _nodes_leave(target.nodes.filter(status__in=NodeStatus.live()), reason=reason)
    target.instance_running = False
    return target


def instance_restart(*, actor, target: ComputeTarget) -> ComputeTarget:
    """Replace the instance's node with a fresh one."""
    instance_stop(actor=actor, target=target, reason="restarted by its owner")
    return instance_start(actor=actor, target=target)


def instance_activity_record(*, target_id: int, at) -> None:
    """The instance's lab saw notebook activity at `at` (kept only if later than what is known)."""
    ComputeTarget.objects.filter(pk=target_id, kind=TargetKind.INSTANCE).filter(
        Q(instance_activity_at__isnull=True) | Q(instance_activity_at__lt=at)
    ).update(instance_activity_at=at)


def instance_folder(target_id: int) -> Path:
    """The instance's own files on the studio's disk (its lab's home, its data view), computed
    from its id (R1); removed when the instance is deleted."""
    return Path(settings.DATA_DIR) / "instances" / str(int(target_id))


def join_token_regenerate(*, actor, target: ComputeTarget) -> str:
    require(actor, target.workspace, Action.WRITE)
    if target.kind != TargetKind.ATTACHED:
        raise ValidationError("Only attached compute has a join token.", code="conflict")
    token = secret_new(JOIN_TOKEN_LABEL)
    ComputeTarget.objects.filter(pk=target.pk).update(join_token_prefix=token.prefix, join_token_hash=token.hash)
    return token.plaintext


def default_cluster_for(workspace: Workspace) -> ComputeTarget:
    """The workspace's default cluster (created on first use: 0 to 2 small nodes), where data
    ingest and other studio-made jobs run."""
    target = ComputeTarget.objects.filter(workspace=workspace, is_default=True).first()
    if target is not None:
        return target
    with transaction.atomic():
        target = ComputeTarget.objects.filter(workspace=workspace, name=DEFAULT_CLUSTER_NAME).first()
        if target is None:
            target = ComputeTarget.objects.create(
                workspace=workspace,
                kind=TargetKind.CLUSTER,
                name=DEFAULT_CLUSTER_NAME,
                description="Created by the studio for data ingest and jobs that name no target.",
                size="medium",
                min_nodes=0,
                max_nodes=2,
                idle_seconds_before_scaledown=120,
                is_default=True,
            )
        elif not target.is_default:
            ComputeTarget.objects.filter(pk=target.pk).update(is_default=True)
    return target


# --- Serving replicas, metered like nodes (called by the endpoint services) ---------------------
def serving_session_open(*, target: ComputeTarget, deployment_id: int, deployment_name: str, replicas: int) -> None:
    """Start metering a deployment's replicas on an inference cluster; an open session of the same
    deployment (a change of replicas) ends now. Call inside the deployment's transaction."""
    now = timezone.now()
    ServingSession.objects.filter(deployment_id=deployment_id, ended_at__isnull=True).update(ended_at=now)
    ServingSession.objects.create(
        target=target,
        workspace_id=target.workspace_id,
        deployment_id=deployment_id,
        deployment_name=deployment_name[:130],
        replicas=replicas,
        started_at=now,
        price_per_hour=target.price_per_node_hour,
    )


def serving_session_close(*, deployment_ids: list[int]) -> None:
    """Stop metering removed deployments."""
    ServingSession.objects.filter(deployment_id__in=deployment_ids, ended_at__isnull=True).update(
        ended_at=timezone.now()
    )


def replicas_scale(*, target: ComputeTarget, deployment_id: int, want: int) -> tuple[int, int]:
    """Make `want` replica nodes of a deployment live on an inference cluster: request the missing
    ones (the local agent starts them), ask the surplus to leave (those not started first). A replica
    lost (killed, stopped heartbeating) is no longer live, so the next call replaces it. Returns
    (requested, leaving). Called by the endpoint services each agent tick."""
    if target.kind != TargetKind.INFERENCE:
        raise ValidationError("Serving replicas run on inference clusters only.")
    with transaction.atomic():
        nodes = list(
            Node.objects.select_for_update()
            .filter(target=target, deployment_id=deployment_id, status__in=NodeStatus.live())
            .order_by("requested_at", "pk")
        )
        missing = want - len(nodes)
        if missing > 0 and replica_retry_in(deployment_id=deployment_id)[1] > 0:
            missing = 0  # its last replicas died before serving: wait before the next try
        for _ in range(max(0, missing)):
            Node.objects.create(
                target=target,
                deployment_id=deployment_id,
                status=NodeStatus.REQUESTED,
                reason=f"a serving replica of deployment {deployment_id} is wanted",
            )
        surplus = sorted(nodes, key=lambda n: (n.status != NodeStatus.REQUESTED, -n.pk))[: max(0, -missing)]
        _nodes_leave(surplus, reason="fewer replicas wanted" if want else "its deployment was removed")
    return max(0, missing), len(surplus)


def replica_retry_in(*, deployment_id: int) -> tuple[int, float]:
    """(replicas of the deployment that died before serving, in a row, newest first; seconds before
    another may be requested). A model that cannot load, or a replica that crashes on start, is
    retried after 2 s, then 4, 8, ... up to REPLICA_RETRY_MAX_SECONDS, not on every agent tick."""
    gone = Node.objects.filter(deployment_id=deployment_id, status__in=[NodeStatus.STOPPED, NodeStatus.LOST])
    recent = list(gone.order_by("-pk").only("deployment_id", "status", "ready_at", "stopped_at")[:10])
    failed = failed_starts_in_a_row(recent)
    if not failed or failed[0].stopped_at is None:
        return len(failed), 0.0
    wait = min(REPLICA_RETRY_FIRST_SECONDS * 2 ** (len(failed) - 1), REPLICA_RETRY_MAX_SECONDS)
    return len(failed), max(0.0, wait - (timezone.now() - failed[0].stopped_at).total_seconds())


def host_serves_inference() -> bool:
    """Are there inference clusters, whose replicas the local provisioner starts?"""
    return ComputeTarget.objects.filter(kind=TargetKind.INFERENCE).exists()  # inference nodes are local


def replica_nodes_orphaned(*, deployment_ids: set[int]) -> int:
    """Ask live replica nodes whose deployment is not among `deployment_ids` (removed) to leave."""
    orphans = list(
        Node.objects.filter(deployment_id__isnull=False, status__in=NodeStatus.live()).exclude(
            deployment_id__in=deployment_ids
        )
    )
    _nodes_leave(orphans, reason="its deployment was removed")
    return len(orphans)


def replica_mark_ready(*, node_id: int, address: str, hostname: str, pid: int) -> bool:
    """The replica answers on `address`: it takes traffic from now on. False unless the node is
    STARTING (the agent has not recorded the start yet, or the node was asked to stop meanwhile)."""
    now = timezone.now()
    return bool(
        Node.objects.filter(pk=node_id, status=NodeStatus.STARTING).update(
            status=NodeStatus.IDLE,
            address=address[:100],
            hostname=hostname[:200],
            pid=pid,
            ready_at=now,
            idle_since=now,
            last_heartbeat_at=now,
            reason=f"serving on {address}"[:300],
        )
    )


def replica_heartbeat(*, node_id: int, in_flight: int) -> str | None:
    """A replica is alive with `in_flight` requests; returns its node's status (a status other than
    idle or busy tells it to stop)."""
    now = timezone.now()
    busy = in_flight > 0
    Node.objects.filter(pk=node_id, status__in=[NodeStatus.IDLE, NodeStatus.BUSY]).update(
        last_heartbeat_at=now,
        in_flight=in_flight,
        status=NodeStatus.BUSY if busy else NodeStatus.IDLE,
    )
    return Node.objects.filter(pk=node_id).values_list("status", flat=True).first()


# --- Node life cycle (called by the local agent and by the node's own worker process) -----------
def _close_session(node: Node, now) -> None:
    NodeSession.objects.filter(node=node, ended_at__isnull=True).update(ended_at=now)


def node_claim(*, node_id: int, hostname: str) -> bool:
    """Take a REQUESTED node for this host's agent before starting its process (STARTING, on
    `hostname`). Several agents see the same requested nodes (a portal's and a serving host's):
    only one wins the update, and False tells the others to leave the node alone."""
    return bool(
        Node.objects.filter(pk=node_id, status=NodeStatus.REQUESTED).update(
            status=NodeStatus.STARTING,
            hostname=hostname[:200],
            started_at=timezone.now(),
            reason=f"starting on {hostname}"[:300],
        )
    )


def node_mark_started(*, node: Node, pid: int, hostname: str) -> None:
    """The node's process runs as `pid` on `hostname`: its metered session begins. A node already
    past STARTING (a replica that said it is ready first) keeps its status."""
    now = timezone.now()
    with transaction.atomic():
        Node.objects.filter(pk=node.pk, status__in=[NodeStatus.REQUESTED, NodeStatus.STARTING]).update(
            status=NodeStatus.STARTING, pid=pid, hostname=hostname, started_at=now, reason="worker process started"
        )
        NodeSession.objects.get_or_create(
            node=node,
            defaults={
                "target_id": node.target_id,
                "workspace_id": node.target.workspace_id,
                "started_at": now,
                "price_per_hour": node.target.price_per_node_hour,
            },
        )


def node_mark_ready(
    *, node_id: int, hostname: str | None = None, pid: int | None = None, protections: list[str] | None = None
) -> None:
    now = timezone.now()
    fields = {
        "status": NodeStatus.IDLE,
        "ready_at": now,
        "idle_since": now,
        "last_heartbeat_at": now,
        "reason": "consuming its queue",
    }
    if hostname:
        fields["hostname"] = hostname
    if pid:
        fields["pid"] = pid
    if protections is not None:
        fields["protections"] = protections
    Node.objects.filter(pk=node_id, status__in=[NodeStatus.REQUESTED, NodeStatus.STARTING]).update(**fields)


def node_heartbeat(*, node_id: int) -> str | None:
    """Record that the node is alive; returns its status (LEAVING/STOPPED tell it to stop)."""
    Node.objects.filter(pk=node_id, status__in=[NodeStatus.STARTING, NodeStatus.IDLE, NodeStatus.BUSY]).update(
        last_heartbeat_at=timezone.now()
    )
    return Node.objects.filter(pk=node_id).values_list("status", flat=True).first()


def node_mark_busy(*, node_id: int) -> None:
    Node.objects.filter(pk=node_id).exclude(
        status__in=[NodeStatus.LEAVING, NodeStatus.STOPPED, NodeStatus.LOST]
    ).update(status=NodeStatus.BUSY, idle_since=None, reason="running a job")


def node_mark_idle(*, node_id: int) -> None:
    Node.objects.filter(pk=node_id, status=NodeStatus.BUSY).update(
        status=NodeStatus.IDLE, idle_since=timezone.now(), jobs_run=F("jobs_run") + 1, reason="waiting for work"
    )


def node_mark_stopped(*, node_id: int, reason: str, lost: bool = False) -> None:
    """The node's process is gone: close its metered session; re-queue a job it was running."""
    now = timezone.now()
    with transaction.atomic():
        node = Node.objects.select_for_update().filter(pk=node_id).first()
        if node is None or node.status in (NodeStatus.STOPPED, NodeStatus.LOST):
            return
        node.status = NodeStatus.LOST if lost else NodeStatus.STOPPED
        node.reason = reason[:300]
        node.stopped_at = now
        node.save(update_fields=["status", "reason", "stopped_at"])
        _close_session(node, now)
    if lost:
        jobs_recover_from_lost_node(node=node, reason=reason)
    else:
        jobs_hand_back(node_id=node.pk, reason=f"its node {node.name} stopped ({reason})")


def node_release(*, node_id: int, reason: str) -> int:
    """A node about to be stopped on purpose takes no new job (LEAVING), and its running jobs go
    back to the queue at once. Returns how many jobs it handed back."""
    Node.objects.filter(pk=node_id, status__in=NodeStatus.taking_jobs()).update(
        status=NodeStatus.LEAVING, reason=reason
    )
    return jobs_hand_back(node_id=node_id, reason=reason)


def _nodes_leave(nodes, *, reason: str) -> None:
    """Ask nodes to stop. Nodes that never got a process stop at once."""
    now = timezone.now()
    for node in nodes:
        if node.status == NodeStatus.REQUESTED:
            Node.objects.filter(pk=node.pk).update(status=NodeStatus.STOPPED, stopped_at=now, reason=reason)
        else:
            Node.objects.filter(pk=node.pk, status__in=NodeStatus.live()).update(
                status=NodeStatus.LEAVING, reason=reason
            )


def node_join(*, token: str, target_id: int, hostname: str, pid: int) -> Node:
    """An attached machine joins its target with the target's join token."""
    parts = secret_split(token or "", JOIN_TOKEN_LABEL)
    target = ComputeTarget.objects.filter(pk=target_id, kind=TargetKind.ATTACHED).first()
    if (
        parts is None
        or target is None
        or parts[0] != target.join_token_prefix
        or not secret_matches(target.join_token_hash, parts[1])
    ):
        raise PermissionDenied("The join token is not valid for this compute target.")
    live = target.nodes.filter(status__in=NodeStatus.live()).count()
    if live >= target.max_nodes:
        raise ValidationError(f"{target.name} already has {live} of at most {target.max_nodes} nodes.")
    node = Node.objects.create(target=target, status=NodeStatus.STARTING, provisioner="attached")
    node_mark_started(node=node, pid=pid, hostname=hostname or settings.STUDIO_HOSTNAME)
    return node


# --- The autoscaler ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScaleDecision:
    target_id: int
    started: int
    stopping: int


def autoscale(*, now=None) -> list[ScaleDecision]:
    """One tick of the autoscaler: for each provisioned target, request nodes for queued work up
    to max_nodes, and stop nodes idle past the timeout down to min_nodes (zero allowed).

    Nodes are requested only within the workspace's compute quota (nodes and cores across its
    clusters and instances, R10); the jobs left waiting say so. Runs in one transaction with the
    targets locked, so two ticks never over-provision.
    """

    now = now or timezone.now()
    decisions = {}
    with transaction.atomic():
        targets = list(ComputeTarget.objects.select_for_update().filter(kind__in=selectors.QUOTA_KINDS).order_by("pk"))
        # Counted apart: PostgreSQL refuses FOR UPDATE together with GROUP BY.
        demand = dict(
            Job.objects.filter(target__in=targets, status__in=JobStatus.active())
            .values("target")
            .annotate(n=Count("pk"))
            .values_list("target", "n")
        )
        for target in targets:
            target.demand = demand.get(target.pk, 0)
        live_nodes: dict[int, list[Node]] = {}
        for node in Node.objects.filter(target__in=targets, status__in=NodeStatus.live()).order_by("requested_at"):
            live_nodes.setdefault(node.target_id, []).append(node)
        wants = {}
        orphaned = _instances_whose_owner_lost_access(targets)
        for target in targets:
            nodes = live_nodes.get(target.pk, [])
            if target.kind == TargetKind.INSTANCE:
                wants[target.pk] = 0 if target.pk in orphaned else _instance_want(target, nodes, now)
            else:
                wants[target.pk] = max(target.min_nodes, min(target.max_nodes, target.demand))
            if len(nodes) > wants[target.pk]:
                stopping = _scale_down(target, nodes, wants[target.pk], now)
                if stopping:
                    decisions[target.pk] = ScaleDecision(target.pk, 0, stopping)
        # Scale up second, so nodes just stopped (never started) no longer count against the quota.
        use = {
            ws: [q.max_nodes, q.max_cores, q.nodes, q.cores]
            for ws, q in selectors.quota_use_by_workspace(workspace_ids={t.workspace_id for t in targets}).items()
        }
        for target in targets:
            missing = wants[target.pk] - len(live_nodes.get(target.pk, []))
            if missing <= 0:
                continue
            max_nodes, max_cores, used_nodes, used_cores = use[target.workspace_id]
            cores = target.node_size.cores
            granted = max(0, min(missing, max_nodes - used_nodes, (max_cores - used_cores) // cores))
            for _ in range(granted):
                Node.objects.create(target=target, status=NodeStatus.REQUESTED, reason=_scale_up_reason(target))
            use[target.workspace_id][2:] = [used_nodes + granted, used_cores + granted * cores]
            if granted < missing:
                if max_nodes - used_nodes - granted < 1:
                    reason = f"{WAITING_FOR_QUOTA} {max_nodes} nodes reached ({used_nodes + granted} in use)"
                else:
                    reason = f"{WAITING_FOR_QUOTA} {max_cores} cores reached ({used_cores + granted * cores} in use)"
                target_jobs_waiting(target=target, reason=reason)
            elif granted:
                target_jobs_waiting(target=target, reason=None)
            if granted:
                decisions[target.pk] = ScaleDecision(target.pk, granted, 0)
    return list(decisions.values())


def _scale_down(target: ComputeTarget, nodes: list[Node], want: int, now) -> int:
    """Ask surplus nodes to leave: those not yet started first, then the longest idle past the timeout."""
    idle_cutoff = now - timedelta(seconds=target.idle_seconds_before_scaledown)
    surplus = len(nodes) - want
    candidates = [n for n in nodes if n.status == NodeStatus.REQUESTED] + sorted(
        (n for n in nodes if n.status == NodeStatus.IDLE and n.idle_since and n.idle_since <= idle_cutoff),
        key=lambda n: n.idle_since,
    )
    if target.kind == TargetKind.INSTANCE and want == 0:
        candidates = nodes
    reason = (
        "the instance was stopped"
        if target.kind == TargetKind.INSTANCE
        else f"idle for {target.idle_seconds_before_scaledown} s: scaling down"
    )
    _nodes_leave(candidates[:surplus], reason=reason)
    return min(surplus, len(candidates))


def target_jobs_waiting(*, target: ComputeTarget, reason: str | None) -> int:
    """Say on the target's queued jobs why they wait for a node (a quota, the host's capacity);
    with None, put back the usual reason on jobs that waited for one. Changes only what differs."""

    queued = Job.objects.filter(target=target, status=JobStatus.QUEUED)
    if reason == WAITING_FOR_HOST:  # the quota is the first thing to wait for: say that one
        queued = queued.exclude(status_reason__startswith=WAITING_FOR_QUOTA)
    if reason is None:
        reason = f"waiting for a node of {target.name} to start"
        queued = queued.filter(Q(status_reason__startswith=WAITING_FOR_QUOTA) | Q(status_reason=WAITING_FOR_HOST))
    changed = list(queued.exclude(status_reason=reason).values_list("pk", "attempt"))
    if changed:
        Job.objects.filter(pk__in=[pk for pk, _ in changed], status=JobStatus.QUEUED).update(status_reason=reason)
        JobEvent.objects.bulk_create(
            JobEvent(job_id=pk, status=JobStatus.QUEUED, reason=reason, attempt=attempt) for pk, attempt in changed
        )
    return len(changed)


def nodes_wait_for_host(*, nodes: list[Node]) -> None:
    """Requested nodes the host has no room for yet: say so on them and on their targets' jobs."""
    Node.objects.filter(pk__in=[n.pk for n in nodes], status=NodeStatus.REQUESTED).exclude(
        reason=WAITING_FOR_HOST
    ).update(reason=WAITING_FOR_HOST)
    for target in {n.target_id: n.target for n in nodes}.values():
        target_jobs_waiting(target=target, reason=WAITING_FOR_HOST)


IDLE_GRACE = timedelta(seconds=2)  # a node between two jobs of a queue is not idle


def nodes_release_idle(*, node_ids: list[int], count: int, now=None) -> int:
    """Ask up to `count` of these idle cluster nodes to leave so waiting nodes get their place on the
    host: the longest idle first, only where the cluster has no queued work and stays at or above
    its min_nodes. Returns how many were asked."""

    now = now or timezone.now()
    idle = list(
        Node.objects.filter(
            pk__in=node_ids, status=NodeStatus.IDLE, idle_since__lte=now - IDLE_GRACE, target__kind=TargetKind.CLUSTER
        )
        .exclude(target__in=Job.objects.filter(status=JobStatus.QUEUED, target__isnull=False).values("target"))
        .select_related("target")
        .order_by("idle_since")
    )
    if not idle or count <= 0:
        return 0
    live = dict(
        Node.objects.filter(target__in={n.target_id for n in idle}, status__in=NodeStatus.live())
        .values("target")
        .annotate(n=Count("pk"))
        .values_list("target", "n")
    )
    chosen = []
    for node in idle:
        if len(chosen) < count and live.get(node.target_id, 0) > node.target.min_nodes:
            live[node.target_id] -= 1
            chosen.append(node)
    _nodes_leave(chosen, reason="idle: its place on this host went to a waiting node")
    return len(chosen)


def _scale_up_reason(target: ComputeTarget) -> str:
    if target.kind == TargetKind.INSTANCE:
        return "the instance was started"
    return f"queued work on {target.name}: scaling up (max {target.max_nodes})"


def _instances_whose_owner_lost_access(targets: list[ComputeTarget]) -> set[int]:
    """Running instances whose owner may no longer use them (removed from the workspace, made a
    Reader, disabled): they are stopped, so their lab stops reading the workspace's data. One query."""
    running = [t for t in targets if t.kind == TargetKind.INSTANCE and t.instance_running]
    if not running:
        return set()
    allowed = set(
        Membership.objects.filter(
            workspace_id__in={t.workspace_id for t in running},
            user_id__in={t.owner_id for t in running if t.owner_id},
            user__is_active=True,
            role__in=[Role.OWNER, Role.CONTRIBUTOR],
        ).values_list("workspace_id", "user_id")
    )
    orphaned = {t.pk for t in running if (t.workspace_id, t.owner_id) not in allowed}
    if orphaned:
        ComputeTarget.objects.filter(pk__in=orphaned).update(instance_running=False)
    return orphaned


def _instance_want(target: ComputeTarget, nodes: list[Node], now) -> int:
    """An instance runs one node while started; it stops itself after its idle timeout: no job
    and no notebook activity (reported by its lab) for that long."""
    if not target.instance_running:
        return 0
    if target.idle_shutdown_minutes and target.demand == 0:
        cutoff = now - timedelta(minutes=target.idle_shutdown_minutes)
        idle = [n for n in nodes if n.status == NodeStatus.IDLE and n.idle_since]
        # Notebook activity (a kernel busy, a terminal used) keeps the instance up as jobs do.
        notebook_busy = target.instance_activity_at is not None and target.instance_activity_at > cutoff
        if idle and not notebook_busy and all(n.idle_since <= cutoff for n in idle):
            ComputeTarget.objects.filter(pk=target.pk).update(instance_running=False)
            return 0
    return 1


def heartbeat_timeout() -> timedelta:
    return timedelta(seconds=settings.STUDIO_HEARTBEAT_TIMEOUT)


def nodes_reap(*, now=None) -> int:
    """Declare nodes lost whose heartbeat stopped (a machine died, a process hung)."""
    now = now or timezone.now()
    cutoff = now - heartbeat_timeout()
    stale = Node.objects.filter(
        status__in=[NodeStatus.STARTING, NodeStatus.IDLE, NodeStatus.BUSY, NodeStatus.LEAVING]
    ).filter(
        Q(last_heartbeat_at__lt=cutoff)
        | Q(last_heartbeat_at__isnull=True, started_at__lt=cutoff - timedelta(seconds=60))
    )
    count = 0
    for node in stale:
        node_mark_stopped(node_id=node.pk, reason="stopped heartbeating", lost=True)
        count += 1
    return count
