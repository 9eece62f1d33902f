"""Numbers too large for a database id give a 404 or an empty list, never a 500 (SQLite overflow)."""

import pytest

from compute.jobs import services
from compute.jobs.diagnostic import DIAGNOSTIC
from compute.models import TargetKind
from compute.services import target_create

pytestmark = pytest.mark.django_db

HUGE = "9" * 30


@pytest.mark.parametrize("key", ["parent", "q"])
def test_job_filters_with_huge_numbers_list_nothing(api, owner, workspace, key):
    response = api(owner).get(f"/api/v1/workspaces/{workspace.pk}/jobs/", {key: HUGE})
    assert response.status_code == 200
    assert response.json()["results"] == []


@pytest.mark.parametrize("key", ["experiment", "target"])
def test_id_filters_beyond_the_documented_range_are_refused(api, owner, workspace, key):
    response = api(owner).get(f"/api/v1/workspaces/{workspace.pk}/jobs/", {key: HUGE})
    assert response.status_code == 400
    assert key in response.json()["error"]["fields"]


@pytest.mark.parametrize(
    "path",
    [
        f"/api/v1/workspaces/{HUGE}/",
        "/api/v1/workspaces/{ws}/jobs/" + "9" * 19 + "/",
        "/w/{ws}/jobs/new/?clone=" + HUGE,
        "/w/{ws}/models/" + HUGE + "/",
    ],
)
def test_huge_ids_in_paths_are_not_found(api, owner, workspace, path):
    response = api(owner).get(path.format(ws=workspace.pk))
    assert response.status_code == 404


def test_a_huge_log_cursor_returns_no_lines(api, owner, workspace):
    target = target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu").target
    job = services.job_submit(actor=owner, workspace=workspace, kind=DIAGNOSTIC, target=target, spec={})
    response = api(owner).get(f"/api/v1/workspaces/{workspace.pk}/jobs/{job.pk}/log/", {"after": HUGE})
    assert response.status_code == 200
    assert response.json()["lines"] == []
