"""Read queries for compute pages and the API, scoped to one workspace."""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404
from django.utils import timezone

from workspaces.models import Workspace

from .jobs.models import Job, JobStatus
from .models import (
    NODE_SIZES,
    ComputeQuota,
    ComputeTarget,
    Node,
    NodeSession,
    NodeStatus,
    ServingSession,
    TargetKind,
    failed_starts_in_a_row,
)

# Targets whose nodes count against a workspace's quota: those the studio provisions itself.
QUOTA_KINDS = (TargetKind.CLUSTER, TargetKind.INSTANCE)
# Nodes that hold quota: every node with (or about to have) a process, a leaving one included.
QUOTA_NODE_STATUSES = (*NodeStatus.live(), NodeStatus.LEAVING)


def _count(model, status_field: str, statuses, fk: str = "target"):
    return Coalesce(
        Subquery(
            model.objects.filter(**{fk: OuterRef("pk"), f"{status_field}__in": statuses})
            .order_by()
            .values(fk)
            .annotate(n=Count("pk"))
            .values("n")[:1],
            output_field=IntegerField(),
        ),
        0,
    )


def target_list(*, workspace: Workspace) -> QuerySet[ComputeTarget]:
    """Targets with their live state: nodes by status, queued and running jobs (one query)."""
    return (
        ComputeTarget.objects.filter(workspace=workspace)
        .select_related("owner")
        .annotate(
            nodes_starting=_count(Node, "status", [NodeStatus.REQUESTED, NodeStatus.STARTING]),
            nodes_idle=_count(Node, "status", [NodeStatus.IDLE]),
            nodes_busy=_count(Node, "status", [NodeStatus.BUSY]),
            nodes_leaving=_count(Node, "status", [NodeStatus.LEAVING]),
            jobs_queued=_count(Job, "status", [JobStatus.QUEUED]),
            jobs_running=_count(Job, "status", JobStatus.on_node()),
        )
        .order_by("kind", "name")
    )


def target_get(*, workspace: Workspace, target_id) -> ComputeTarget:
    try:
        return target_list(workspace=workspace).get(pk=int(target_id))
    except (ComputeTarget.DoesNotExist, TypeError, ValueError, OverflowError):
        raise Http404("Compute target not found.") from None


@dataclass(frozen=True)
class ServedDeployment:
    """A deployment on an inference cluster with its replica nodes (live first, then recently gone)."""

    deployment: object  # endpoints.Deployment, reached through the target (endpoints sits above compute)
    replicas: list[Node]
    failed_starts: int = 0  # its latest replicas that died before serving, in a row (retried ever later)

    @property
    def ready(self) -> int:
        return sum(1 for node in self.replicas if node.status in (NodeStatus.IDLE, NodeStatus.BUSY))


def served_deployments(*, target: ComputeTarget, include_stopped: int = 3) -> list[ServedDeployment]:
    """An inference cluster's deployments and their replicas, for its page. Three queries."""
    deployments = list(target.deployments.select_related("endpoint", "model_version__model").order_by("pk"))
    live = NodeStatus.live() + [NodeStatus.LEAVING]
    nodes: dict[int, list[Node]] = {}
    for node in target.nodes.filter(deployment_id__in=[d.pk for d in deployments]).order_by("-requested_at")[:500]:
        nodes.setdefault(node.deployment_id, []).append(node)
    served = []
    for deployment in deployments:
        mine = nodes.get(deployment.pk, [])
        gone = [n for n in mine if n.status not in live]
        failed = len(failed_starts_in_a_row(gone))
        replicas = [n for n in mine if n.status in live] + gone[:include_stopped]
        served.append(ServedDeployment(deployment, replicas, failed))
    return served


def node_list(*, target: ComputeTarget, include_stopped: int = 10) -> list[Node]:
    """Live nodes, then the most recently stopped ones."""
    live = list(target.nodes.filter(status__in=NodeStatus.live() + [NodeStatus.LEAVING]).order_by("requested_at"))
    gone = list(
        target.nodes.exclude(status__in=NodeStatus.live() + [NodeStatus.LEAVING]).order_by("-stopped_at")[
            :include_stopped
        ]
    )
    return live + gone


def job_targets(*, workspace: Workspace, user) -> QuerySet[ComputeTarget]:
    """Targets a user may submit jobs to: clusters, attached compute and their own instances."""
    return (
        ComputeTarget.objects.filter(workspace=workspace)
        .filter(Q(kind__in=[TargetKind.CLUSTER, TargetKind.ATTACHED]) | Q(kind=TargetKind.INSTANCE, owner=user))
        .order_by("-is_default", "name")
    )


@dataclass(frozen=True)
class QuotaUse:
    """A workspace's compute quota and how much of it its nodes hold now."""

    max_nodes: int
    max_cores: int
    nodes: int = 0
    cores: int = 0

    @property
    def nodes_free(self) -> int:
        return max(0, self.max_nodes - self.nodes)

    @property
    def cores_free(self) -> int:
        return max(0, self.max_cores - self.cores)


def quota_limits(*, workspace_ids) -> dict[int, tuple[int, int]]:
    """(max nodes, max cores) per workspace: its staff-set quota, else the settings' defaults."""
    own = {q.workspace_id: q for q in ComputeQuota.objects.filter(workspace_id__in=list(workspace_ids))}
    limits = {}
    for workspace_id in workspace_ids:
        quota = own.get(workspace_id)
        max_nodes = quota.max_nodes if quota and quota.max_nodes is not None else settings.STUDIO_WORKSPACE_MAX_NODES
        max_cores = quota.max_cores if quota and quota.max_cores is not None else settings.STUDIO_WORKSPACE_MAX_CORES
        limits[workspace_id] = (max_nodes, max_cores)
    return limits


def quota_use_by_workspace(*, workspace_ids) -> dict[int, QuotaUse]:
    """Quota and use (nodes, and cores by node size) of several workspaces, in two queries."""
    workspace_ids = set(workspace_ids)
    use = {ws: [0, 0] for ws in workspace_ids}
    held = (
        Node.objects.filter(
            target__workspace_id__in=workspace_ids, target__kind__in=QUOTA_KINDS, status__in=QUOTA_NODE_STATUSES
        )
        .values("target__workspace_id", "target__size")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for row in held:
        size = NODE_SIZES.get(row["target__size"], NODE_SIZES["small"])
        use[row["target__workspace_id"]][0] += row["n"]
        use[row["target__workspace_id"]][1] += row["n"] * size.cores
    limits = quota_limits(workspace_ids=workspace_ids)
    return {ws: QuotaUse(*limits[ws], nodes=use[ws][0], cores=use[ws][1]) for ws in workspace_ids}


def quota_use(*, workspace: Workspace) -> QuotaUse:
    return quota_use_by_workspace(workspace_ids=[workspace.pk])[workspace.pk]


def quota_reserved(*, workspace: Workspace, exclude_target_id: int | None = None) -> tuple[int, int]:
    """Nodes and cores the workspace's clusters keep running at all times (their min_nodes)."""
    nodes = cores = 0
    clusters = ComputeTarget.objects.filter(workspace=workspace, kind=TargetKind.CLUSTER, min_nodes__gt=0)
    for target in clusters.exclude(pk=exclude_target_id):
        nodes += target.min_nodes
        cores += target.min_nodes * target.node_size.cores
    return nodes, cores


HOURS_SHOWN = Decimal("0.001")  # node-hours as the page and the API show them
COST_SHOWN = Decimal("0.01")


@dataclass
class Usage:
    """Node-hours (replica-hours on inference clusters) and cost per target per day over a period,
    and this month's totals. The month's figures per target are rounded as shown, and the totals
    are the sums of those rows, so the table adds up."""

    days: list[date]
    targets: list[str]
    hours: dict[str, list[float]]  # target name -> hours per day
    cost: dict[str, list[float]]
    month_hours: dict[str, Decimal] = field(default_factory=dict)
    month_cost: dict[str, Decimal] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)  # target name -> kind label
    owners: dict[str, str] = field(default_factory=dict)  # compute instance name -> its owner's username

    def instances_by_owner(self) -> list[tuple[str, Decimal, Decimal]]:
        """This month's instance time per owner: (username, hours, cost), most hours first."""
        hours: dict[str, Decimal] = defaultdict(lambda: Decimal("0"))
        cost: dict[str, Decimal] = defaultdict(lambda: Decimal("0"))
        for name, owner in self.owners.items():
            hours[owner] += self.month_hours.get(name, Decimal("0"))
            cost[owner] += self.month_cost.get(name, Decimal("0"))
        return sorted(((o, hours[o], cost[o]) for o in hours), key=lambda row: (-row[1], row[0]))

    @property
    def month_total_hours(self) -> Decimal:
        return sum(self.month_hours.values(), Decimal("0"))

    @property
    def month_total_cost(self) -> Decimal:
        return sum(self.month_cost.values(), Decimal("0"))


def _overlap_hours(start: datetime, end: datetime, day_start: datetime, day_end: datetime) -> float:
    lo, hi = max(start, day_start), min(end, day_end)
    return max(0.0, (hi - lo).total_seconds() / 3600)


def usage(*, workspace: Workspace, days: int = 30, now: datetime | None = None) -> Usage:
    """Metered time of every target: node sessions of clusters, instances and attached compute,
    and replica sessions of deployments on inference clusters (replicas × hours)."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    first_day = today - timedelta(days=days - 1)
    month_start = today.replace(day=1)
    period_start = min(first_day, month_start)
    tz = timezone.get_current_timezone()
    period_start_dt = datetime.combine(period_start, datetime.min.time(), tzinfo=tz)
    in_period = Q(ended_at__isnull=True) | Q(ended_at__gte=period_start_dt)
    sessions = [
        (s.target, s.started_at, s.ended_at, 1, s.price_per_hour)
        # a serving replica's node session is counted in its deployment's serving session already
        for s in NodeSession.objects.filter(in_period, workspace=workspace)
        .exclude(target__kind=TargetKind.INFERENCE)
        .select_related("target__owner")
    ] + [
        (s.target, s.started_at, s.ended_at, s.replicas, s.price_per_hour)
        for s in ServingSession.objects.filter(in_period, workspace=workspace).select_related("target")
    ]
    day_list = [first_day + timedelta(days=i) for i in range(days)]
    hours: dict[str, list[float]] = defaultdict(lambda: [0.0] * days)
    cost: dict[str, list[float]] = defaultdict(lambda: [0.0] * days)
    month_hours: dict[str, Decimal] = defaultdict(lambda: Decimal("0"))
    month_cost: dict[str, Decimal] = defaultdict(lambda: Decimal("0"))
    kinds: dict[str, str] = {}
    owners: dict[str, str] = {}
    month_start_dt = datetime.combine(month_start, datetime.min.time(), tzinfo=tz)
    for target, started_at, ended_at, count, price in sessions:
        name = target.name
        kinds[name] = target.get_kind_display()
        if target.kind == TargetKind.INSTANCE:
            owners[name] = target.owner.username if target.owner else "(no owner)"
        end = ended_at or now
        for i, day in enumerate(day_list):
            day_start = datetime.combine(day, datetime.min.time(), tzinfo=tz)
            h = _overlap_hours(started_at, end, day_start, day_start + timedelta(days=1)) * count
            if h:
                hours[name][i] += h
                cost[name][i] += h * float(price)
        h_month = Decimal(str(_overlap_hours(started_at, end, month_start_dt, now))) * count
        month_hours[name] += h_month
        month_cost[name] += h_month * price
    names = sorted(set(hours) | set(month_hours))
    return Usage(
        days=day_list,
        targets=names,
        hours=dict(hours),
        cost=dict(cost),
        month_hours={k: v.quantize(HOURS_SHOWN, ROUND_HALF_UP) for k, v in month_hours.items()},
        month_cost={k: v.quantize(COST_SHOWN, ROUND_HALF_UP) for k, v in month_cost.items()},
        kinds=kinds,
        owners=owners,
    )
