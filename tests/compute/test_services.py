from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.utils import timezone

from compute import services
from compute.jobs.diagnostic import DIAGNOSTIC
from compute.jobs.services import job_submit
from compute.models import ComputeTarget, Node, NodeSession, NodeStatus, TargetKind

pytestmark = pytest.mark.django_db


def cluster(owner, workspace, **kwargs):
    options = {"min_nodes": 0, "max_nodes": 2, "idle_seconds_before_scaledown": 120} | kwargs
    return services.target_create(
        actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu", **options
    ).target


def submit(owner, workspace, target, n=1):
    return [job_submit(actor=owner, workspace=workspace, kind=DIAGNOSTIC, target=target, spec={}) for _ in range(n)]


def live(target):
    return Node.objects.filter(target=target, status__in=NodeStatus.live()).count()


@pytest.mark.parametrize(("who", "error"), [("reader", PermissionDenied), ("outsider", Http404)])
def test_only_contributors_and_owners_manage_compute(persona, workspace, who, error):
    with pytest.raises(error):
        services.target_create(actor=persona[who], workspace=workspace, kind=TargetKind.CLUSTER, name="nope")
    assert not ComputeTarget.objects.exists()


def test_contributor_creates_a_cluster(contributor, workspace):
    target = cluster(contributor, workspace)
    assert target.queue == f"compute.{target.pk}" and target.price_per_node_hour > 0


@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        ({"name": "1bad"}, "name"),
        ({"name": "has space"}, "name"),
        ({"min_nodes": 3, "max_nodes": 2}, "min_nodes"),
        ({"max_nodes": 0}, "max_nodes"),
        ({"size": "huge"}, "size"),
        ({"min_nodes": -1}, "min_nodes"),
    ],
)
def test_bad_settings_name_the_field(owner, workspace, fields, bad):
    options = {"name": "ok-name", "min_nodes": 0, "max_nodes": 2} | fields
    with pytest.raises(ValidationError) as exc:
        services.target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, **options)
    assert bad in exc.value.message_dict


def test_names_are_unique_per_workspace(owner, workspace):
    cluster(owner, workspace)
    with pytest.raises(ValidationError, match="already has"):
        cluster(owner, workspace)


def test_autoscaler_scales_on_queued_work_up_to_max(owner, workspace):
    target = cluster(owner, workspace, max_nodes=3)
    services.autoscale()
    assert live(target) == 0  # nothing queued: scale to zero
    submit(owner, workspace, target, n=10)
    services.autoscale()
    services.autoscale()
    assert live(target) == 3
    assert set(Node.objects.filter(target=target).values_list("status", flat=True)) == {NodeStatus.REQUESTED}


def test_autoscaler_keeps_min_nodes_warm(owner, workspace):
    target = cluster(owner, workspace, min_nodes=2, max_nodes=4)
    services.autoscale()
    assert live(target) == 2


def test_idle_nodes_past_the_timeout_leave_down_to_min(owner, workspace):
    target = cluster(owner, workspace, min_nodes=1, max_nodes=3, idle_seconds_before_scaledown=60)
    now = timezone.now()
    for minutes in (5, 0.5, 5):
        Node.objects.create(target=target, status=NodeStatus.IDLE, idle_since=now - timedelta(minutes=minutes))
    services.autoscale(now=now)
    statuses = sorted(Node.objects.filter(target=target).values_list("status", flat=True))
    # the two idle for 5 minutes are past 60 s; one stays for min_nodes
    assert statuses.count(NodeStatus.LEAVING) == 2 and statuses.count(NodeStatus.IDLE) == 1


def test_a_compute_instance_runs_one_node_while_started_and_stops_itself_when_idle(owner, workspace):
    created = services.target_create(
        actor=owner, workspace=workspace, kind=TargetKind.INSTANCE, name="ws", idle_shutdown_minutes=10
    )
    target = created.target
    services.autoscale()
    assert live(target) == 1
    Node.objects.filter(target=target).update(status=NodeStatus.IDLE, idle_since=timezone.now() - timedelta(minutes=11))
    services.autoscale()
    target.refresh_from_db()
    assert not target.instance_running
    assert Node.objects.get(target=target).status == NodeStatus.LEAVING


def test_only_its_owner_or_a_workspace_owner_starts_an_instance(owner, contributor, workspace):
    target = services.target_create(
        actor=contributor, workspace=workspace, kind=TargetKind.INSTANCE, name="bobs"
    ).target
    services.instance_stop(actor=contributor, target=target)
    services.instance_start(actor=owner, target=target)  # a workspace Owner may
    other = services.target_create(actor=owner, workspace=workspace, kind=TargetKind.INSTANCE, name="alices").target
    with pytest.raises(PermissionDenied):
        services.instance_stop(actor=contributor, target=other)


def test_delete_is_refused_while_jobs_are_queued(owner, workspace):
    target = cluster(owner, workspace)
    jobs = submit(owner, workspace, target)
    with pytest.raises(ValidationError, match=f"#{jobs[0].pk}"):
        services.target_delete(actor=owner, target=target)
    assert ComputeTarget.objects.filter(pk=target.pk).exists()


def test_attached_compute_joins_only_with_its_token(owner, workspace):
    created = services.target_create(
        actor=owner, workspace=workspace, kind=TargetKind.ATTACHED, name="gpu-box", max_nodes=1
    )
    target = created.target
    assert created.join_token.startswith("join_") and created.join_token not in target.join_token_hash
    with pytest.raises(PermissionDenied):
        services.node_join(token="join_bad_token", target_id=target.pk, hostname="box", pid=1)
    node = services.node_join(token=created.join_token, target_id=target.pk, hostname="box", pid=1)
    assert node.provisioner == "attached" and node.status == NodeStatus.STARTING
    with pytest.raises(ValidationError, match="at most 1"):
        services.node_join(token=created.join_token, target_id=target.pk, hostname="box2", pid=2)
    services.autoscale()
    assert Node.objects.filter(target=target).count() == 1  # the studio never starts attached nodes


def test_node_time_is_metered_as_sessions(owner, workspace):
    target = cluster(owner, workspace)
    node = Node.objects.create(target=target)
    services.node_mark_started(node=node, pid=123, hostname="h")
    services.node_mark_stopped(node_id=node.pk, reason="test")
    session = NodeSession.objects.get(node=node)
    assert session.ended_at and session.price_per_hour == target.price_per_node_hour


def test_usage_sums_node_hours_and_cost_per_day(owner, workspace):
    from compute.selectors import usage

    target = cluster(owner, workspace)
    now = timezone.now()
    node = Node.objects.create(target=target, status=NodeStatus.STOPPED)
    NodeSession.objects.create(
        node=node,
        target=target,
        workspace=workspace,
        started_at=now - timedelta(hours=2),
        ended_at=now - timedelta(hours=1),
        price_per_hour=target.price_per_node_hour,
    )
    data = usage(workspace=workspace, days=3, now=now)
    assert abs(sum(data.hours["cpu"]) - 1.0) < 1e-6
    assert abs(sum(data.cost["cpu"]) - float(target.price_per_node_hour)) < 1e-6
