"""The notebook panel of a compute instance's page: its state for every member, the JupyterLab link
only for the instance's owner while ready, the environment and schedule forms only for the owner;
instance time per owner on the usage page; the delete page warns that the home folder goes."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from compute.models import Node, NodeSession, NodeStatus
from labs.models import InstanceLab, InstanceSchedule, LabState

pytestmark = pytest.mark.django_db


def page(client, user, target, **headers):
    client.force_login(user)
    response = client.get(f"/w/{target.workspace_id}/compute/{target.pk}/", **headers)
    assert response.status_code == 200
    return response.content.decode()


def lab_url(target):
    return f"/w/{target.workspace_id}/compute/{target.pk}/lab/"


def set_lab(target, **fields):
    InstanceLab.objects.update_or_create(target=target, defaults=fields)


@pytest.mark.parametrize("who", ["contributor", "owner", "dave", "reader"])
def test_every_member_sees_the_notebook_state_but_only_its_owner_gets_the_open_button(client, people, bobs, who):
    set_lab(bobs, state=LabState.READY, address="127.0.0.1:9999", token_sealed="x")
    html = page(client, people[who], bobs)
    assert 'data-testid="lab-state">Ready<' in html
    opens = f'href="{lab_url(bobs)}" target="_blank"' in html
    assert opens == (who == "contributor")
    assert "Open JupyterLab" in html if who == "contributor" else "Open JupyterLab" not in html
    forms = 'data-testid="schedule-form"' in html
    assert forms == (who == "contributor")


def test_the_owner_gets_no_open_button_until_the_lab_is_ready(client, contributor, bobs):
    set_lab(bobs, state=LabState.STARTING, reason="preparing the environment team.env:1 (building)")
    html = page(client, contributor, bobs)
    assert "Starting…" in html and "preparing the environment team.env:1 (building)" in html
    assert "Open JupyterLab" not in html


def test_a_failed_lab_shows_why_and_its_log_tail_escaped(client, contributor, bobs):
    set_lab(bobs, state=LabState.FAILED, reason="jupyter exited (code 1)", log_tail="<script>alert(1)</script>\nboom")
    html = page(client, contributor, bobs)
    assert "Failed" in html and "jupyter exited (code 1)" in html
    assert '<details data-testid="lab-log">' in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)" not in html and "Open JupyterLab" not in html


def test_a_stopped_instance_says_to_start_it(client, contributor, bobs):
    bobs.instance_running = False
    bobs.save(update_fields=["instance_running"])
    html = page(client, contributor, bobs)
    assert 'data-testid="lab-state">Stopped<' in html and "Start the instance to open JupyterLab." in html
    assert not InstanceLab.objects.exists(), "reading the page makes no lab row"


def test_the_live_refresh_carries_the_lab_state(client, contributor, bobs):
    set_lab(bobs, state=LabState.READY)
    html = page(client, contributor, bobs, HTTP_HX_REQUEST="true")
    assert 'data-testid="lab-panel"' in html and "Open JupyterLab" in html
    assert "<html" not in html and 'data-testid="schedule-form"' not in html


def test_a_cluster_page_has_no_notebook_panel(client, owner, workspace):
    from compute.services import target_create

    cluster = target_create(actor=owner, workspace=workspace, kind="cluster", name="shared").target
    assert 'data-testid="lab-panel"' not in page(client, owner, cluster)


def test_idle_shutdown_counts_notebook_activity(client, contributor, bobs):
    bobs.idle_shutdown_minutes = 30
    bobs.save(update_fields=["idle_shutdown_minutes"])
    html = page(client, contributor, bobs)
    assert "after 30 idle minutes; it counts notebook activity" in html


def test_the_page_reads_a_bounded_number_of_queries(client, contributor, bobs, django_assert_max_num_queries):
    for hour in range(8):
        InstanceSchedule.objects.create(target=bobs, action="stop", time_of_day=f"{hour:02d}:00", weekdays="01234")
    client.force_login(contributor)
    with django_assert_max_num_queries(30):
        client.get(f"/w/{bobs.workspace_id}/compute/{bobs.pk}/")


# --- The forms -----------------------------------------------------------------------------------------
def test_the_owner_chooses_an_environment_of_the_workspace(client, contributor, bobs, team_version):
    client.force_login(contributor)
    url = f"/w/{bobs.workspace_id}/compute/{bobs.pk}/notebook/environment/"
    response = client.post(url, {"environment_version": team_version.pk}, follow=True)
    assert "used the next time the instance starts" in response.content.decode()
    assert InstanceLab.objects.get(target=bobs).environment_version == team_version
    client.post(url, {"environment_version": ""})
    assert InstanceLab.objects.get(target=bobs).environment_version is None


def test_another_workspaces_environment_is_refused(client, contributor, bobs, foreign_version):
    client.force_login(contributor)
    url = f"/w/{bobs.workspace_id}/compute/{bobs.pk}/notebook/environment/"
    response = client.post(url, {"environment_version": foreign_version.pk}, follow=True)
    assert "Choose an environment version of this workspace." in response.content.decode()
    assert not InstanceLab.objects.filter(environment_version__isnull=False).exists()


@pytest.mark.parametrize(("who", "status"), [("owner", 403), ("dave", 403), ("reader", 403), ("outsider", 404)])
def test_only_the_owner_chooses_the_environment(client, people, bobs, team_version, who, status):
    client.force_login(people[who])
    url = f"/w/{bobs.workspace_id}/compute/{bobs.pk}/notebook/environment/"
    assert client.post(url, {"environment_version": team_version.pk}).status_code == status
    assert not InstanceLab.objects.exists()


def test_the_owner_adds_and_deletes_a_schedule_with_the_form(client, contributor, bobs):
    client.force_login(contributor)
    base = f"/w/{bobs.workspace_id}/compute/{bobs.pk}/schedules/"
    form = {
        "action": "stop",
        "time_of_day": "19:30",
        "weekdays": ["0", "4"],
        "time_zone": "America/Argentina/Buenos_Aires",
    }
    html = client.post(base, form, follow=True).content.decode()
    assert "Scheduled: stop bobs-box at 19:30 America/Argentina/Buenos_Aires on Mon, Fri." in html
    schedule = InstanceSchedule.objects.get(target=bobs)
    assert (schedule.action, schedule.weekdays) == ("stop", "04")
    assert 'data-testid="schedule-row"' in html and "Mon, Fri" in html
    html = client.post(f"{base}{schedule.pk}/delete/", follow=True).content.decode()
    assert "Schedule deleted." in html and not InstanceSchedule.objects.exists()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"time_zone": "Middle Earth/Shire"}, "Unknown time zone &#x27;Middle Earth/Shire&#x27;"),
        ({"weekdays": []}, "Choose at least one weekday."),
        ({"time_of_day": "25:00"}, "Give a time as HH:MM, from 00:00 to 23:59"),
    ],
)
def test_a_bad_schedule_is_refused_with_a_message(client, contributor, bobs, fields, message):
    client.force_login(contributor)
    form = {"action": "start", "time_of_day": "08:00", "weekdays": ["1"], "time_zone": "UTC"} | fields
    html = client.post(f"/w/{bobs.workspace_id}/compute/{bobs.pk}/schedules/", form, follow=True).content.decode()
    assert message in html
    assert not InstanceSchedule.objects.exists()


@pytest.mark.parametrize(("who", "status"), [("owner", 403), ("reader", 403), ("outsider", 404)])
def test_others_cannot_add_schedules(client, people, bobs, who, status):
    client.force_login(people[who])
    form = {"action": "start", "time_of_day": "08:00", "weekdays": ["1"], "time_zone": "UTC"}
    assert client.post(f"/w/{bobs.workspace_id}/compute/{bobs.pk}/schedules/", form).status_code == status
    assert not InstanceSchedule.objects.exists()


# --- Delete and usage ----------------------------------------------------------------------------------
def test_the_delete_page_says_the_owners_home_folder_goes(client, contributor, bobs):
    client.force_login(contributor)
    html = client.get(f"/w/{bobs.workspace_id}/compute/{bobs.pk}/delete/").content.decode()
    assert "The home folder of bob on this instance is deleted with it, with every notebook" in html


def test_the_usage_page_shows_instance_time_per_owner(client, owner, contributor, workspace, bobs):
    from compute.services import target_create

    alices = target_create(actor=owner, workspace=workspace, kind="instance", name="alice-box").target
    start = timezone.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    for target, hours in ((bobs, 3), (alices, 1)):
        node = Node.objects.create(target=target, status=NodeStatus.STOPPED)
        NodeSession.objects.create(
            node=node,
            target=target,
            workspace=workspace,
            started_at=start,
            ended_at=start + timedelta(hours=hours),
            price_per_hour=target.price_per_node_hour,
        )
    client.force_login(owner)
    html = client.get(f"/w/{workspace.pk}/compute/usage/").content.decode()
    assert 'data-testid="instance-owner-table"' in html
    rows = html.split('data-testid="instance-owner-row"')[1:]
    assert [r.split("<td>")[1].split("<")[0] for r in rows] == ["bob", "alice"]
    bob_cost = (bobs.price_per_node_hour * 3).quantize(Decimal("0.01"))
    assert f'<td class="num">3.000</td><td class="num">${bob_cost}</td>' in rows[0]
