"""Compute quotas (R10): nodes and cores per workspace across its targets, enforced when scale
settings are saved and by the autoscaler; the local provisioner's per-host capacity."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from compute import selectors, services
from compute.jobs.diagnostic import DIAGNOSTIC
from compute.jobs.models import Job, JobEvent, JobStatus
from compute.jobs.services import job_submit
from compute.models import ComputeQuota, Node, NodeStatus, TargetKind

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _quota(settings):
    settings.STUDIO_WORKSPACE_MAX_NODES = 4
    settings.STUDIO_WORKSPACE_MAX_CORES = 6


def cluster(actor, workspace, name="cpu", **kwargs):
    options = {"min_nodes": 0, "max_nodes": 2, "size": "small"} | kwargs
    return services.target_create(
        actor=actor, workspace=workspace, kind=TargetKind.CLUSTER, name=name, **options
    ).target


def submit(actor, workspace, target, n=1):
    return [job_submit(actor=actor, workspace=workspace, kind=DIAGNOSTIC, target=target, spec={}) for _ in range(n)]


def live(workspace):
    return Node.objects.filter(target__workspace=workspace, status__in=NodeStatus.live())


def test_max_nodes_above_the_workspace_quota_is_refused_naming_the_limit(contributor, workspace):
    with pytest.raises(ValidationError) as exc:
        cluster(contributor, workspace, max_nodes=5)
    assert "quota is 4 nodes and 6 cores" in exc.value.message_dict["max_nodes"][0]
    with pytest.raises(ValidationError) as exc:
        cluster(contributor, workspace, size="medium", max_nodes=4)  # 8 cores > 6
    assert "at most 3 medium nodes" in exc.value.message_dict["max_nodes"][0]


def test_min_nodes_across_clusters_cannot_exceed_the_quota(contributor, workspace):
    cluster(contributor, workspace, name="warm", min_nodes=3, max_nodes=3)
    with pytest.raises(ValidationError) as exc:
        cluster(contributor, workspace, name="also-warm", min_nodes=2, max_nodes=2)
    message = exc.value.message_dict["min_nodes"][0]
    assert "keep 3 nodes (3 cores) running" in message and "at most 1" in message
    other = cluster(contributor, workspace, name="also-warm", min_nodes=1, max_nodes=2)
    with pytest.raises(ValidationError, match="at most 1"):
        services.target_update(actor=contributor, target=other, min_nodes=2)
    other.refresh_from_db()
    assert other.min_nodes == 1


def test_a_staff_quota_overrides_the_default_and_only_staff_set_it(owner, make_user, workspace):
    with pytest.raises(PermissionDenied):
        services.compute_quota_set(actor=owner, workspace=workspace, max_nodes=50, max_cores=100)
    staff = make_user("root", is_staff=True)
    services.compute_quota_set(actor=staff, workspace=workspace, max_nodes=10, max_cores=None)
    assert ComputeQuota.objects.get(workspace=workspace).max_nodes == 10
    use = selectors.quota_use(workspace=workspace)
    assert (use.max_nodes, use.max_cores) == (10, 6)  # cores keep the default
    cluster(owner, workspace, max_nodes=6)


def test_the_autoscaler_never_starts_nodes_past_the_quota_and_says_so_on_the_job(owner, workspace):
    busy = cluster(owner, workspace, name="busy", size="medium", max_nodes=2)  # 2 nodes x 2 cores
    other = cluster(owner, workspace, name="other", size="medium", max_nodes=2)
    submit(owner, workspace, busy, n=2)
    services.autoscale()
    assert live(workspace).count() == 2  # 4 of 6 cores
    waiting = submit(owner, workspace, other, n=2)
    services.autoscale()
    services.autoscale()
    assert live(workspace).filter(target=other).count() == 1  # 6 of 6 cores
    for job in waiting:
        job.refresh_from_db()
        assert job.status == JobStatus.QUEUED
        assert job.status_reason == "waiting: workspace quota of 6 cores reached (6 in use)"
    # said once, not at every tick
    assert JobEvent.objects.filter(job=waiting[0], reason__startswith="waiting: workspace quota").count() == 1
    # the busy cluster's nodes stop: the waiting jobs get a node and their usual reason back
    Node.objects.filter(target=busy).update(status=NodeStatus.STOPPED)
    Job.objects.filter(target=busy).update(status=JobStatus.COMPLETED)
    services.autoscale()
    assert live(workspace).filter(target=other).count() == 2
    waiting[1].refresh_from_db()
    assert waiting[1].status_reason == "waiting for a node of other to start"


def test_the_node_quota_counts_every_cluster_and_instance(owner, contributor, workspace, other_workspace, outsider):
    services.target_create(actor=contributor, workspace=workspace, kind=TargetKind.INSTANCE, name="bobs")
    target = cluster(owner, workspace, max_nodes=4)
    submit(owner, workspace, target, n=10)
    services.autoscale()
    assert live(workspace).count() == 4  # the instance's node and 3 of the cluster's
    job = Job.objects.filter(target=target).order_by("pk").last()
    assert job.status_reason == "waiting: workspace quota of 4 nodes reached (4 in use)"
    theirs = cluster(outsider, other_workspace, max_nodes=2)  # another workspace has its own quota
    submit(outsider, other_workspace, theirs, n=2)
    services.autoscale()
    assert live(other_workspace).count() == 2


def test_the_quota_is_shown_on_the_compute_pages(client, owner, workspace):
    target = cluster(owner, workspace, size="medium", max_nodes=2)
    submit(owner, workspace, target)
    services.autoscale()
    client.force_login(owner)
    for url in (f"/w/{workspace.pk}/compute/", f"/w/{workspace.pk}/compute/{target.pk}/"):
        page = client.get(url).content.decode()
        assert "1 of 4 nodes" in page and "2 of 6 cores" in page, url


def test_the_api_refuses_a_cluster_past_the_quota_with_400_naming_the_field(api, contributor, workspace):
    response = api(contributor).post(
        f"/api/v1/workspaces/{workspace.pk}/compute/",
        {"kind": "cluster", "name": "big", "min_nodes": 5, "max_nodes": 5},
        format="json",
    )
    assert response.status_code == 400, response.content
    fields = response.json()["error"]["fields"]
    assert "quota is 4 nodes" in fields["max_nodes"][0] and "at most 4" in fields["min_nodes"][0]


def test_the_api_reports_quota_use(api, reader, owner, workspace):
    target = cluster(owner, workspace, max_nodes=2)
    submit(owner, workspace, target)
    services.autoscale()
    response = api(reader).get(f"/api/v1/workspaces/{workspace.pk}/compute/quota/")
    assert response.status_code == 200, response.content
    assert response.json() == {"max_nodes": 4, "max_cores": 6, "nodes": 1, "cores": 1}


def test_staff_set_a_workspace_quota_in_the_admin(client, make_user, workspace):
    staff = make_user("root", is_staff=True, is_superuser=True)
    client.force_login(staff)
    response = client.post(
        "/admin/compute/computequota/add/", {"workspace": workspace.pk, "max_nodes": "8", "max_cores": ""}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    quota = ComputeQuota.objects.get(workspace=workspace)
    assert (quota.max_nodes, quota.max_cores, quota.updated_by) == (8, None, staff)
    assert selectors.quota_use(workspace=workspace).max_nodes == 8


def test_the_create_form_shows_the_quota_refusal_on_the_field(client, contributor, workspace):
    client.force_login(contributor)
    form = {"kind": "cluster", "name": "big", "size": "small", "priority": "dedicated"}
    form |= {"min_nodes": "0", "max_nodes": "5", "idle_seconds_before_scaledown": "120"}
    response = client.post(f"/w/{workspace.pk}/compute/new/", form)
    assert response.status_code == 200
    assert (
        "The workspace&#x27;s compute quota is 4 nodes and 6 cores: at most 4 small nodes" in response.content.decode()
    )


def test_a_page_says_when_a_node_waits_for_the_quota(client, owner, contributor, workspace):
    full = cluster(owner, workspace, size="medium", min_nodes=3, max_nodes=3)  # all 6 cores
    services.autoscale()
    instance = services.target_create(
        actor=contributor, workspace=workspace, kind=TargetKind.INSTANCE, name="bobs"
    ).target
    services.autoscale()
    client.force_login(contributor)
    page = client.get(f"/w/{workspace.pk}/compute/{instance.pk}/").content.decode()
    assert "Its node waits: the workspace quota is reached." in page
    assert live(workspace).count() == 3 and live(workspace).filter(target=full).count() == 3
