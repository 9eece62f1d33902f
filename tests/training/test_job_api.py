import pytest

from compute.jobs.models import Job, JobStatus
from compute.models import ComputeTarget

pytestmark = pytest.mark.django_db


def make_cluster(client, workspace, **fields):
    body = {"kind": "cluster", "name": "cpu", "min_nodes": 0, "max_nodes": 2} | fields
    return client.post(f"/api/v1/workspaces/{workspace.pk}/compute/", body, format="json")


def test_create_cluster_and_submit_a_job_through_the_api(api, contributor, workspace):
    client = api(contributor)
    created = make_cluster(client, workspace)
    assert created.status_code == 201, created.content
    target = created.json()
    assert target["nodes"] == {"starting": 0, "idle": 0, "busy": 0, "leaving": 0} and target["join_token"] is None
    job = client.post(
        f"/api/v1/workspaces/{workspace.pk}/jobs/",
        {"kind": "diagnostic", "target": target["id"], "spec": {"sleep_seconds": 1}},
        format="json",
    )
    assert job.status_code == 201, job.content
    body = job.json()
    assert body["status"] == "queued" and body["target"]["name"] == "cpu" and body["attempt"] == 0
    events = client.get(f"/api/v1/workspaces/{workspace.pk}/jobs/{body['id']}/events/").json()
    assert events["results"][0]["status"] == "queued"
    listed = client.get(f"/api/v1/workspaces/{workspace.pk}/compute/").json()
    assert listed["results"][0]["jobs_queued"] == 1
    canceled = client.post(f"/api/v1/workspaces/{workspace.pk}/jobs/{body['id']}/cancel/")
    assert canceled.json()["status"] == "canceled"
    log = client.get(f"/api/v1/workspaces/{workspace.pk}/jobs/{body['id']}/log/?after=0").json()
    assert log == {"lines": [], "last": 0, "active": False}


def test_attached_compute_returns_its_join_token_once(api, owner, workspace):
    created = make_cluster(api(owner), workspace, kind="attached", name="lab-box")
    token = created.json()["join_token"]
    assert token.startswith("join_")
    again = api(owner).get(f"/api/v1/workspaces/{workspace.pk}/compute/{created.json()['id']}/").json()
    assert "join_token" not in again and token[-10:] not in str(again)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"kind": "shell", "target": 1}, "kind"),
        ({"kind": "diagnostic"}, "target"),
        ({"kind": "diagnostic", "target": "abc"}, "target"),
        ({"kind": "diagnostic", "target": 1, "spec": "not an object"}, "spec"),
        ({"kind": "diagnostic", "target": 1, "spec": {"sleep_seconds": -5}}, "sleep_seconds"),
    ],
)
def test_bad_job_submissions_name_the_field(api, owner, workspace, payload, field):
    client = api(owner)
    target = make_cluster(client, workspace).json()
    if payload.get("target") == 1:
        payload["target"] = target["id"]
    response = client.post(f"/api/v1/workspaces/{workspace.pk}/jobs/", payload, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]
    assert not Job.objects.exists()


def test_a_job_cannot_target_another_workspaces_compute(api, owner, outsider, workspace, other_workspace):
    theirs = make_cluster(api(outsider), other_workspace).json()
    response = api(owner).post(
        f"/api/v1/workspaces/{workspace.pk}/jobs/", {"kind": "diagnostic", "target": theirs["id"]}, format="json"
    )
    # Not in this workspace is not found, as an unknown id is: the other workspace's target is not revealed.
    assert response.status_code == 404 and "target" in response.json()["error"]["fields"]
    assert not Job.objects.exists()


def test_scale_settings_are_validated(api, owner, workspace):
    client = api(owner)
    target = make_cluster(client, workspace).json()
    response = client.patch(
        f"/api/v1/workspaces/{workspace.pk}/compute/{target['id']}/", {"min_nodes": 5, "max_nodes": 2}, format="json"
    )
    assert response.status_code == 400 and "min_nodes" in response.json()["error"]["fields"]
    ok = client.patch(f"/api/v1/workspaces/{workspace.pk}/compute/{target['id']}/", {"max_nodes": 4}, format="json")
    assert ok.json()["max_nodes"] == 4
    assert ComputeTarget.objects.get().max_nodes == 4


def test_delete_a_finished_job_reports_bytes_freed(api, owner, workspace):
    client = api(owner)
    target = make_cluster(client, workspace).json()
    job = client.post(
        f"/api/v1/workspaces/{workspace.pk}/jobs/", {"kind": "diagnostic", "target": target["id"]}, format="json"
    ).json()
    client.post(f"/api/v1/workspaces/{workspace.pk}/jobs/{job['id']}/cancel/")
    response = client.delete(f"/api/v1/workspaces/{workspace.pk}/jobs/{job['id']}/")
    assert response.json() == {"deleted": True, "bytes_freed": 0}
    assert not Job.objects.filter(status=JobStatus.CANCELED).exists()
