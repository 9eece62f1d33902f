"""The local provisioner's per-host capacity (R10), with real node processes: never more node
processes than the host holds by cores and memory; the rest wait and say why."""

import time
from pathlib import Path

import pytest

from compute.agent import host_node_capacity
from compute.jobs.diagnostic import DIAGNOSTIC
from compute.jobs.models import Job, JobEvent, JobStatus
from compute.jobs.services import job_submit
from compute.models import Node, NodeStatus, TargetKind
from compute.services import WAITING_FOR_HOST, target_create
from tests.conftest import wait_for


def test_capacity_is_the_fewer_of_cores_and_memory_per_node(settings):
    settings.STUDIO_NODE_MEMORY_MIB = 1024
    settings.STUDIO_HOST_NODE_CORES, settings.STUDIO_HOST_NODE_MEMORY_MIB = 8, 3000
    assert host_node_capacity() == 2  # memory binds
    settings.STUDIO_HOST_NODE_CORES, settings.STUDIO_HOST_NODE_MEMORY_MIB = 3, 64_000
    assert host_node_capacity() == 3  # cores bind


def test_the_default_capacity_comes_from_the_host():
    import os

    from django.conf import settings

    assert settings.STUDIO_HOST_NODE_CORES == len(os.sched_getaffinity(0))
    assert 0 < settings.STUDIO_HOST_NODE_MEMORY_MIB < os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20


def running_node_processes() -> int:
    """Node processes alive now (a zombie that the agent has not reaped yet is gone)."""
    count = 0
    for pid in Node.objects.filter(provisioner="local", pid__isnull=False).values_list("pid", flat=True):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        count += state != "Z"
    return count


def make_cluster(owner, workspace, name, **kwargs):
    options = {"min_nodes": 0, "max_nodes": 2, "idle_seconds_before_scaledown": 300} | kwargs
    return target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name=name, **options).target


def submit(owner, workspace, target, sleep):
    spec = {"sleep_seconds": sleep}
    return job_submit(actor=owner, workspace=workspace, kind=DIAGNOSTIC, target=target, spec=spec)


@pytest.fixture
def one_node_host(settings):
    settings.STUDIO_HOST_NODE_CORES = 1


@pytest.mark.worker
@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_nodes_past_the_hosts_capacity_wait_and_say_why(one_node_host, owner, workspace, broker, agent):
    cluster = make_cluster(owner, workspace, "cpu")
    jobs = [submit(owner, workspace, cluster, sleep=2) for _ in range(2)]
    most = 0
    saw_node_wait = False
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        most = max(most, running_node_processes())
        saw_node_wait |= Node.objects.filter(target=cluster, reason=WAITING_FOR_HOST).exists()
        if Job.objects.filter(pk__in=[j.pk for j in jobs], status=JobStatus.COMPLETED).count() == 2:
            break
        time.sleep(0.05)
    statuses = list(Job.objects.filter(pk__in=[j.pk for j in jobs]).values_list("status", "status_reason"))
    assert all(status == JobStatus.COMPLETED for status, _ in statuses), statuses
    assert most == 1  # the autoscaler asked for 2 nodes; the host holds 1
    assert saw_node_wait
    assert JobEvent.objects.filter(job__in=jobs, reason=WAITING_FOR_HOST).exists()


@pytest.mark.worker
@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_an_idle_node_gives_its_place_to_another_clusters_work(one_node_host, owner, workspace, broker, agent):
    first = make_cluster(owner, workspace, "first")
    done = submit(owner, workspace, first, sleep=0)
    wait_for(lambda: Job.objects.filter(pk=done.pk, status=JobStatus.COMPLETED).exists(), timeout=120, message="job 1")
    idle = wait_for(
        lambda: Node.objects.filter(target=first, status=NodeStatus.IDLE).first(), timeout=30, message="an idle node"
    )
    second = make_cluster(owner, workspace, "second")
    waiting = submit(owner, workspace, second, sleep=0)
    # first's idle timeout is 300 s: the node leaves long before, because work waits for its place
    wait_for(
        lambda: Job.objects.filter(pk=waiting.pk, status=JobStatus.COMPLETED).exists(), timeout=120, message="job 2"
    )
    idle.refresh_from_db()
    assert idle.status == NodeStatus.STOPPED  # asked to leave, not lost
    reasons = list(JobEvent.objects.filter(job=waiting).values_list("reason", flat=True))
    assert WAITING_FOR_HOST in reasons, reasons


@pytest.mark.django_db
def test_only_idle_nodes_no_queued_work_needs_give_up_their_place(owner, workspace):
    from datetime import timedelta

    from django.utils import timezone

    from compute.services import nodes_release_idle

    long_ago = timezone.now() - timedelta(minutes=5)

    def idle_node(target, minutes_idle):
        return Node.objects.create(
            target=target, status=NodeStatus.IDLE, idle_since=timezone.now() - timedelta(minutes=minutes_idle)
        )

    warm = make_cluster(owner, workspace, "warm", min_nodes=1)
    kept_warm = idle_node(warm, 9)  # its cluster's only node: min_nodes keeps it
    queued = make_cluster(owner, workspace, "queued")
    needed = idle_node(queued, 8)
    submit(owner, workspace, queued, sleep=0)  # it is about to take this job
    spare = make_cluster(owner, workspace, "spare")
    older, newer = idle_node(spare, 5), idle_node(spare, 1)
    instance = target_create(actor=owner, workspace=workspace, kind=TargetKind.INSTANCE, name="mine").target
    personal = Node.objects.create(target=instance, status=NodeStatus.IDLE, idle_since=long_ago)
    ids = [n.pk for n in (kept_warm, needed, older, newer, personal)]

    assert nodes_release_idle(node_ids=ids, count=1) == 1
    assert Node.objects.get(pk=older.pk).status == NodeStatus.LEAVING  # the longest idle that may go
    assert nodes_release_idle(node_ids=ids, count=5) == 1
    statuses = dict(Node.objects.filter(pk__in=ids).values_list("pk", "status"))
    assert statuses[newer.pk] == NodeStatus.LEAVING
    assert [statuses[n.pk] for n in (kept_warm, needed, personal)] == [NodeStatus.IDLE] * 3
