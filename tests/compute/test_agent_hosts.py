"""Several hosts' agents on one studio: each claims a requested node before starting its process
(one agent wins), a serving host's agent (`compute_agent --replicas-only`) leaves job nodes and the
clusters' autoscaler to the agent of a host that runs jobs, and an agent restarting recovers only
the nodes of its own host (STUDIO_HOSTNAME)."""

import pytest

from compute import services
from compute.agent import LocalAgent, recover_after_restart
from compute.jobs.diagnostic import DIAGNOSTIC
from compute.jobs.services import job_submit
from compute.models import Node, NodeSession, NodeStatus, TargetKind

pytestmark = pytest.mark.django_db


def cluster(owner, workspace):
    return services.target_create(
        actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu", min_nodes=0, max_nodes=2
    ).target


def test_only_one_agent_claims_a_requested_node(owner, workspace):
    node = Node.objects.create(target=cluster(owner, workspace), status=NodeStatus.REQUESTED)
    assert services.node_claim(node_id=node.pk, hostname="serving-host")
    assert not services.node_claim(node_id=node.pk, hostname="portal-host")
    node.refresh_from_db()
    assert node.status == NodeStatus.STARTING and node.hostname == "serving-host" and node.started_at


def test_a_replica_ready_before_the_agent_records_its_start_stays_ready(owner, workspace):
    node = Node.objects.create(target=cluster(owner, workspace), status=NodeStatus.REQUESTED)
    assert services.node_claim(node_id=node.pk, hostname="serving-host")
    # A standby replica is fast: it may say it is ready before its agent records the process.
    assert services.replica_mark_ready(node_id=node.pk, address="10.0.0.3:4321", hostname="serving-host", pid=42)
    services.node_mark_started(node=node, pid=42, hostname="serving-host")
    node.refresh_from_db()
    assert node.status == NodeStatus.IDLE and node.address == "10.0.0.3:4321"
    assert NodeSession.objects.filter(node=node, ended_at__isnull=True).exists()  # metered from now on


def test_a_replicas_only_agent_starts_no_job_node_and_does_not_autoscale(owner, workspace):
    target = cluster(owner, workspace)
    job_submit(actor=owner, workspace=workspace, kind=DIAGNOSTIC, target=target, spec={})
    requested = Node.objects.create(target=target, status=NodeStatus.REQUESTED)  # by the other host's autoscaler
    agent = LocalAgent(replicas_only=True)
    agent.tick()
    assert not agent.children and agent.standby is None
    assert list(Node.objects.filter(target=target)) == [requested]  # the queued job asked for no node here
    requested.refresh_from_db()
    assert requested.status == NodeStatus.REQUESTED and requested.reason != services.WAITING_FOR_HOST


def test_a_restarting_agent_recovers_only_its_own_hosts_nodes(owner, workspace, settings):
    settings.STUDIO_HOSTNAME = "host-c"
    target = cluster(owner, workspace)
    mine = Node.objects.create(target=target, status=NodeStatus.IDLE, hostname="host-c")
    theirs = Node.objects.create(target=target, status=NodeStatus.IDLE, hostname="host-a")
    requested = Node.objects.create(target=target, status=NodeStatus.REQUESTED)
    assert recover_after_restart() == 1
    statuses = dict(Node.objects.values_list("pk", "status"))
    assert statuses == {mine.pk: NodeStatus.LOST, theirs.pk: NodeStatus.IDLE, requested.pk: NodeStatus.REQUESTED}
