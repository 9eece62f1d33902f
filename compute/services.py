"""Compute targets, node life cycle and the autoscaler. Roles are checked here (R4)."""

import re
import socket
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from studio.secrets import secret_matches, secret_new, secret_split
from workspaces.models import Role, Workspace
from workspaces.policy import Action, require
from workspaces.services import activity_record

from .models import NODE_SIZES, ComputeTarget, Node, NodeSession, NodeStatus, Priority, TargetKind

JOIN_TOKEN_LABEL = "join"  # noqa: S105 - a label, not a secret
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,63}$")
DEFAULT_CLUSTER_NAME = "cpu-cluster"


@dataclass(frozen=True)
class TargetCreated:
    target: ComputeTarget
    join_token: str | None  # attached compute only; shown once


def _busy_job_statuses():
    from training.models import JobStatus

    return JobStatus.active()


def _clean_target_fields(*, kind, name, size, priority, min_nodes, max_nodes, idle_seconds, idle_shutdown_minutes):
    errors = {}
    if kind not in TargetKind.values:
        errors["kind"] = [f"Choose one of: {', '.join(TargetKind.values)}."]
    if not isinstance(name, str) or not NAME_RE.match(name):
        errors["name"] = ["Use 2–64 letters, digits or hyphens, starting with a letter (e.g. cpu-cluster)."]
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
    if ComputeTarget.objects.filter(workspace=workspace, name=name).exists():
        raise ValidationError({"name": [f"This workspace already has a compute target called {name}."]})
    token = secret_new(JOIN_TOKEN_LABEL) if kind == TargetKind.ATTACHED else None
    with transaction.atomic():
        target = ComputeTarget.objects.create(
            workspace=workspace,
            kind=kind,
            name=name,
            description=(description or "")[:500],
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
    """Change a target's scale settings. The autoscaler applies them on its next tick."""
    require(actor, target.workspace, Action.WRITE)
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
    target.min_nodes, target.max_nodes = new["min_nodes"], new["max_nodes"]
    target.idle_seconds_before_scaledown = new["idle_seconds"]
    target.priority = new["priority"]
    target.idle_shutdown_minutes = new["idle_shutdown_minutes"] if target.kind == TargetKind.INSTANCE else None
    if description is not None:
        target.description = description[:500]
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
    are stopped by the agent (their rows go with the target)."""
    require(actor, target.workspace, Action.WRITE)
    from training.models import Job

    with transaction.atomic():
        active = list(
            Job.objects.filter(target=target, status__in=_busy_job_statuses()).values_list("pk", flat=True)[:5]
        )
        if active:
            raise ValidationError(
                f"{target.name} has queued or running jobs ({', '.join(f'#{pk}' for pk in active)}). "
                "Cancel them or wait for them to finish first."
            )
        _nodes_leave(target.nodes.filter(status__in=NodeStatus.live()), reason="the compute target was deleted")
        name = target.name
        workspace = target.workspace
        target.delete()  # finished jobs keep their history; their target shows as deleted
        activity_record(workspace=workspace, actor=actor, verb="compute_deleted", summary=f"{actor} deleted {name}")


def _require_instance_control(actor, target: ComputeTarget) -> None:
    role = require(actor, target.workspace, Action.WRITE)
    if target.kind != TargetKind.INSTANCE:
        raise ValidationError("Only compute instances are started and stopped by hand.")
    if target.owner_id != actor.pk and role != Role.OWNER:
        raise PermissionDenied("A compute instance is started and stopped by its owner (or a workspace Owner).")


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


def join_token_regenerate(*, actor, target: ComputeTarget) -> str:
    require(actor, target.workspace, Action.WRITE)
    if target.kind != TargetKind.ATTACHED:
        raise ValidationError("Only attached compute has a join token.")
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


# --- Node life cycle (called by the local agent and by the node's own worker process) -----------
def _close_session(node: Node, now) -> None:
    NodeSession.objects.filter(node=node, ended_at__isnull=True).update(ended_at=now)


def node_mark_started(*, node: Node, pid: int, hostname: str) -> None:
    now = timezone.now()
    with transaction.atomic():
        Node.objects.filter(pk=node.pk).update(
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


def node_mark_ready(*, node_id: int, hostname: str | None = None, pid: int | None = None) -> None:
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
    from django.db.models import F

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
        from training.services import jobs_recover_from_lost_node

        jobs_recover_from_lost_node(node=node, reason=reason)
    else:
        from training.services import jobs_hand_back

        jobs_hand_back(node_id=node.pk, reason=f"its node {node.name} stopped ({reason})")


def node_release(*, node_id: int, reason: str) -> int:
    """A node about to be stopped on purpose takes no new job (LEAVING), and its running jobs go
    back to the queue at once. Returns how many jobs it handed back."""
    from training.services import jobs_hand_back

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
    node_mark_started(node=node, pid=pid, hostname=hostname or socket.gethostname())
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

    Runs in one transaction with the targets locked, so two ticks never over-provision.
    """
    from training.models import Job, JobStatus

    now = now or timezone.now()
    decisions = []
    with transaction.atomic():
        targets = list(
            ComputeTarget.objects.select_for_update().filter(kind__in=[TargetKind.CLUSTER, TargetKind.INSTANCE])
        )
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
        for target in targets:
            nodes = live_nodes.get(target.pk, [])
            if target.kind == TargetKind.INSTANCE:
                want = _instance_want(target, nodes, now)
            else:
                want = max(target.min_nodes, min(target.max_nodes, target.demand))
            started = stopping = 0
            if len(nodes) < want:
                for _ in range(want - len(nodes)):
                    Node.objects.create(target=target, status=NodeStatus.REQUESTED, reason=_scale_up_reason(target))
                    started += 1
            elif len(nodes) > want:
                idle_cutoff = now - timedelta(seconds=target.idle_seconds_before_scaledown)
                surplus = len(nodes) - want
                # Nodes not yet started go first, then the longest idle ones past the timeout.
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
                stopping = min(surplus, len(candidates))
            if started or stopping:
                decisions.append(ScaleDecision(target.pk, started, stopping))
    return decisions


def _scale_up_reason(target: ComputeTarget) -> str:
    if target.kind == TargetKind.INSTANCE:
        return "the instance was started"
    return f"queued work on {target.name}: scaling up (max {target.max_nodes})"


def _instance_want(target: ComputeTarget, nodes: list[Node], now) -> int:
    """An instance runs one node while started; it stops itself after its idle timeout."""
    if not target.instance_running:
        return 0
    if target.idle_shutdown_minutes and target.demand == 0:
        idle = [n for n in nodes if n.status == NodeStatus.IDLE and n.idle_since]
        if idle and all(n.idle_since <= now - timedelta(minutes=target.idle_shutdown_minutes) for n in idle):
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
