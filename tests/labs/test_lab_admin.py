"""The admin console: labs are read-only (their sealed token never shown); staff delete a schedule
through schedule_delete, which records it in the workspace's history."""

import pytest

from labs.models import InstanceLab, InstanceSchedule, LabState
from labs.services import schedule_create
from workspaces.models import Activity

pytestmark = pytest.mark.django_db


@pytest.fixture
def console(client, make_user):
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    return client


def test_a_lab_is_read_only_and_hides_its_sealed_token(console, bobs):
    lab = InstanceLab.objects.create(target=bobs, state=LabState.READY, token_sealed="sealed-secret-xyz")
    html = console.get(f"/admin/labs/instancelab/{lab.pk}/change/").content.decode()
    assert "sealed-secret-xyz" not in html and "Ready" in html
    assert console.post(f"/admin/labs/instancelab/{lab.pk}/delete/", {"post": "yes"}).status_code == 403
    assert InstanceLab.objects.filter(pk=lab.pk).exists()


def test_staff_delete_a_schedule_through_the_service(console, contributor, bobs):
    schedule = schedule_create(
        actor=contributor, target=bobs, action="start", time_of_day="07:00", weekdays="01234", time_zone="UTC"
    )
    response = console.post(f"/admin/labs/instanceschedule/{schedule.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not InstanceSchedule.objects.exists()
    assert Activity.objects.filter(verb="lab_schedule_deleted", summary__contains="start bobs-box at 07:00").exists()
