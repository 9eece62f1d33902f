"""In Chromium: a compute instance's notebook panel follows its lab live (Starting… with the reason,
Ready with "Open JupyterLab" for the owner only, Failed with the log tail); the owner adds start and
stop schedules (a bad time zone is refused with a message) and deletes one after a confirmation."""

import pytest
from playwright.sync_api import expect

from compute import services as compute_services
from compute.models import TargetKind
from labs.models import InstanceLab, InstanceSchedule, LabState
from tests.conftest import login

pytestmark = [pytest.mark.browser]


@pytest.fixture
def bobs(contributor, workspace):
    return compute_services.target_create(
        actor=contributor, workspace=workspace, kind=TargetKind.INSTANCE, name="bobs-box"
    ).target


def set_lab(target, **fields):
    InstanceLab.objects.update_or_create(target=target, defaults=fields)


def test_the_notebook_panel_follows_the_lab_live(new_page, owner, contributor, workspace, bobs):
    bob = new_page()
    login(bob, "bob")
    bob.goto(f"/w/{workspace.pk}/compute/{bobs.pk}/")
    state = bob.get_by_test_id("lab-state")
    expect(state).to_have_text("Stopped")

    set_lab(bobs, state=LabState.STARTING, reason="preparing the environment team env:1 (3 of 40 packages)")
    expect(state).to_have_text("Starting…", timeout=15_000)  # the page's live part refreshes every 2 s
    expect(bob.get_by_test_id("lab-reason")).to_have_text("preparing the environment team env:1 (3 of 40 packages)")
    expect(bob.get_by_test_id("lab-open")).to_have_count(0)

    set_lab(bobs, state=LabState.READY, reason="")
    open_button = bob.get_by_test_id("lab-open")
    expect(open_button).to_have_text("Open JupyterLab", timeout=15_000)
    expect(open_button).to_have_attribute("href", f"/w/{workspace.pk}/compute/{bobs.pk}/lab/")
    expect(open_button).to_have_attribute("target", "_blank")

    alice = new_page()  # a workspace Owner sees the state, never the way in
    login(alice, "alice")
    alice.goto(f"/w/{workspace.pk}/compute/{bobs.pk}/")
    expect(alice.get_by_test_id("lab-state")).to_have_text("Ready")
    expect(alice.get_by_test_id("lab-open")).to_have_count(0)
    expect(alice.get_by_test_id("schedule-form")).to_have_count(0)

    set_lab(
        bobs, state=LabState.FAILED, reason="jupyter exited (code 1)", log_tail="Traceback …\nOSError: port <in use>"
    )
    expect(state).to_have_text("Failed", timeout=15_000)
    expect(bob.get_by_test_id("lab-open")).to_have_count(0)
    expect(bob.get_by_test_id("lab-reason")).to_have_text("jupyter exited (code 1)")
    log = bob.get_by_test_id("lab-log")
    expect(log.locator("pre")).not_to_be_visible()
    log.locator("summary").click()
    expect(log.locator("pre")).to_contain_text("OSError: port <in use>")


def test_the_owner_adds_and_deletes_schedules(new_page, contributor, workspace, bobs):
    bob = new_page()
    login(bob, "bob")
    bob.goto(f"/w/{workspace.pk}/compute/{bobs.pk}/")
    form = bob.get_by_test_id("schedule-form")
    form.get_by_label("Action", exact=True).select_option("stop")
    form.get_by_label("Time of day", exact=True).fill("18:30")
    form.get_by_label("Mon", exact=True).check()
    form.get_by_label("Fri", exact=True).check()
    form.get_by_label("Time zone", exact=True).fill("Europe/Pariss")
    form.get_by_role("button", name="Add schedule").click()
    expect(bob.get_by_text("Unknown time zone 'Europe/Pariss'")).to_be_visible()
    assert not InstanceSchedule.objects.exists()

    form = bob.get_by_test_id("schedule-form")
    form.get_by_label("Action", exact=True).select_option("stop")
    form.get_by_label("Time of day", exact=True).fill("18:30")
    form.get_by_label("Mon", exact=True).check()
    form.get_by_label("Fri", exact=True).check()
    form.get_by_label("Time zone", exact=True).fill("Europe/Paris")
    form.get_by_role("button", name="Add schedule").click()
    expect(bob.get_by_text("Scheduled: stop bobs-box at 18:30 Europe/Paris on Mon, Fri.")).to_be_visible()
    row = bob.get_by_test_id("schedule-row")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Mon, Fri")
    expect(row).to_contain_text("Europe/Paris")
    schedule = InstanceSchedule.objects.get()
    assert (schedule.action, schedule.weekdays, schedule.time_zone) == ("stop", "04", "Europe/Paris")

    bob.once("dialog", lambda dialog: dialog.dismiss())
    row.get_by_role("button", name="Delete").click()
    bob.wait_for_timeout(500)
    assert InstanceSchedule.objects.exists()

    bob.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Delete").click()
    expect(bob.get_by_text("Schedule deleted.")).to_be_visible()
    expect(bob.get_by_test_id("schedule-row")).to_have_count(0)
    assert not InstanceSchedule.objects.exists()
