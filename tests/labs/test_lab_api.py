"""The REST API of an instance's notebook: the `lab` object of the target detail, the environment
choice, and the schedules; one error shape for bad input; the schema names each component once."""

import json

import pytest

from labs.models import InstanceLab, InstanceSchedule, LabState

pytestmark = pytest.mark.django_db


def base(target):
    return f"/api/v1/workspaces/{target.workspace_id}/compute/{target.pk}/"


@pytest.mark.parametrize("who", ["contributor", "owner", "dave", "reader"])
def test_the_target_detail_carries_the_lab_and_its_url_only_for_the_owner(api, people, bobs, team_version, who):
    InstanceLab.objects.create(target=bobs, state=LabState.READY, environment_version=team_version, token_sealed="x")
    lab = api(people[who]).get(base(bobs)).json()["lab"]
    assert lab["state"] == "ready" and lab["environment_version"] == team_version.pk
    assert lab["environment"] == "team.env:1"
    assert lab["url"] == (f"/w/{bobs.workspace_id}/compute/{bobs.pk}/lab/" if who == "contributor" else None)
    assert "token" not in str(lab) and "address" not in lab


def test_a_lab_that_never_ran_is_stopped_with_the_default_environment(api, contributor, bobs):
    lab = api(contributor).get(base(bobs)).json()["lab"]
    assert lab == {
        "state": "stopped",
        "reason": "",
        "log_tail": "",
        "url": None,
        "environment_version": None,
        "environment": "the studio's default (JupyterLab and MLflow)",
        "ready_at": None,
    }


def test_a_starting_lab_has_no_url_and_a_cluster_no_lab(api, owner, contributor, workspace, bobs):
    InstanceLab.objects.create(target=bobs, state=LabState.STARTING, reason="preparing the environment")
    lab = api(contributor).get(base(bobs)).json()["lab"]
    assert lab["url"] is None and lab["reason"] == "preparing the environment"
    cluster = api(owner).post(f"/api/v1/workspaces/{workspace.pk}/compute/", {"kind": "cluster", "name": "shared"})
    url = f"/api/v1/workspaces/{workspace.pk}/compute/{cluster.json()['id']}/"
    assert api(owner).get(url).json()["lab"] is None


def test_the_owner_sets_the_environment_and_null_restores_the_default(api, contributor, bobs, team_version):
    client = api(contributor)
    response = client.put(base(bobs) + "lab/environment/", {"environment_version": team_version.pk}, format="json")
    assert response.status_code == 200 and response.json()["environment_version"] == team_version.pk
    response = client.put(base(bobs) + "lab/environment/", {"environment_version": None}, format="json")
    assert response.status_code == 200 and response.json()["environment_version"] is None
    assert InstanceLab.objects.get(target=bobs).environment_version is None


def test_another_workspaces_environment_is_a_400_naming_the_field(api, contributor, bobs, foreign_version):
    response = api(contributor).put(
        base(bobs) + "lab/environment/", {"environment_version": foreign_version.pk}, format="json"
    )
    assert response.status_code == 400
    body = response.json()
    assert f"Environment version {foreign_version.pk} was not found in this workspace." in str(
        body["error"]["fields"]["environment_version"]
    )
    assert not InstanceLab.objects.exists()


@pytest.mark.parametrize(("who", "status"), [("owner", 403), ("dave", 403), ("reader", 403), ("outsider", 404)])
def test_only_the_owner_sets_the_environment(api, people, bobs, team_version, who, status):
    response = api(people[who]).put(
        base(bobs) + "lab/environment/", {"environment_version": team_version.pk}, format="json"
    )
    assert response.status_code == status
    assert not InstanceLab.objects.exists()


def test_schedules_are_listed_created_and_deleted(api, contributor, reader, bobs):
    client = api(contributor)
    body = {"action": "start", "time_of_day": "08:30", "weekdays": [0, 1, 2, 3, 4], "time_zone": "Europe/Paris"}
    response = client.post(base(bobs) + "schedules/", body, format="json")
    assert response.status_code == 201, response.json()
    created = response.json()
    assert created["time_of_day"] == "08:30" and created["weekdays"] == [0, 1, 2, 3, 4]
    assert created["description"] == "start bobs-box at 08:30 Europe/Paris on Mon, Tue, Wed, Thu, Fri"
    listed = api(reader).get(base(bobs) + "schedules/").json()
    assert [s["id"] for s in listed["results"]] == [created["id"]]
    assert api(reader).delete(base(bobs) + f"schedules/{created['id']}/").status_code == 403
    assert client.delete(base(bobs) + f"schedules/{created['id']}/").status_code == 204
    assert not InstanceSchedule.objects.exists()
    assert client.get(base(bobs) + f"schedules/{created['id']}/").status_code == 404


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"time_zone": "Europe/Atlantis"}, "time_zone", "Unknown time zone 'Europe/Atlantis'"),
        ({"weekdays": []}, "weekdays", "Choose at least one weekday."),
        ({"weekdays": [9]}, "weekdays", "less than or equal to 6"),
        ({"time_of_day": "25:00"}, "time_of_day", "Give a time as HH:MM, from 00:00 to 23:59."),
        ({"action": "explode"}, "action", "not a valid choice"),
        ({"weekdays": "01234"}, "weekdays", "Expected a list"),
    ],
)
def test_bad_schedules_get_a_400_naming_the_field(api, contributor, bobs, change, field, message):
    body = {"action": "start", "time_of_day": "08:30", "weekdays": [0], "time_zone": "UTC"} | change
    response = api(contributor).post(base(bobs) + "schedules/", body, format="json")
    assert response.status_code == 400
    assert message in str(response.json()["error"]["fields"][field])
    assert not InstanceSchedule.objects.exists()


def test_the_eleventh_schedule_is_a_409(api, contributor, bobs):
    client = api(contributor)
    for minute in range(10):
        body = {"action": "stop", "time_of_day": f"18:{minute:02d}", "weekdays": [4], "time_zone": "UTC"}
        assert client.post(base(bobs) + "schedules/", body, format="json").status_code == 201
    body = {"action": "stop", "time_of_day": "19:00", "weekdays": [4], "time_zone": "UTC"}
    response = client.post(base(bobs) + "schedules/", body, format="json")
    assert response.status_code == 409 and "at most 10 schedules" in str(response.json())


@pytest.mark.parametrize(("who", "status"), [("owner", 403), ("dave", 403), ("reader", 403), ("outsider", 404)])
def test_only_the_owner_creates_schedules(api, people, bobs, who, status):
    body = {"action": "start", "time_of_day": "08:30", "weekdays": [0], "time_zone": "UTC"}
    assert api(people[who]).post(base(bobs) + "schedules/", body, format="json").status_code == status
    assert not InstanceSchedule.objects.exists()


def test_the_schema_documents_the_lab_and_schedules_with_unique_names(api, owner):
    response = api(owner).get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    schema = json.loads(response.content)
    components = schema["components"]["schemas"]
    names = {"InstanceLabOut", "ScheduleInRequest", "ScheduleOut", "LabEnvironmentInRequest", "TargetDetailOut"}
    assert names | {"ScheduleActionEnum"} <= set(components) and "ActionEnum" not in components
    paths = schema["paths"]
    assert "put" in paths["/api/v1/workspaces/{workspace_id}/compute/{target_id}/lab/environment/"]
    assert {"get", "post"} <= set(paths["/api/v1/workspaces/{workspace_id}/compute/{target_id}/schedules/"])
    lab = components["TargetDetailOut"]["properties"]["lab"]
    assert "InstanceLabOut" in str(lab)


def test_the_schedule_list_costs_the_same_queries_for_few_and_many(api, contributor, bobs):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = api(contributor)

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(base(bobs) + "schedules/").status_code == 200
        return len(queries)

    InstanceSchedule.objects.create(target=bobs, action="start", time_of_day="07:00", weekdays="0")
    few = count()
    for hour in range(8, 16):
        InstanceSchedule.objects.create(target=bobs, action="stop", time_of_day=f"{hour}:00", weekdays="01234")
    assert count() == few
