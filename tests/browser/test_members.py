"""In Chromium: role changes wait for Save and a confirmation; an Owner invites a new person, who
sets a password through the one-time link and lands in the workspace."""

import re

import pytest
from playwright.sync_api import expect

from tests.conftest import login
from workspaces.models import Membership, Role

pytestmark = [pytest.mark.browser]


def test_a_role_changes_only_on_save_after_a_confirmation(new_page, owner, reader, workspace):
    alice = new_page()
    login(alice, "alice")
    alice.goto(f"/w/{workspace.pk}/members/")
    select = alice.get_by_label("Role of carol")
    select.focus()
    alice.keyboard.press("ArrowUp")  # what used to submit at once
    alice.wait_for_timeout(500)
    assert Membership.objects.get(workspace=workspace, user=reader).role == Role.READER

    select.select_option("contributor")
    alice.once("dialog", lambda dialog: dialog.dismiss())
    alice.get_by_test_id("save-role-carol").click()
    alice.wait_for_timeout(500)
    assert Membership.objects.get(workspace=workspace, user=reader).role == Role.READER

    alice.once("dialog", lambda dialog: dialog.accept())
    alice.get_by_test_id("save-role-carol").click()
    expect(alice.get_by_text("carol is now Contributor")).to_be_visible()
    assert Membership.objects.get(workspace=workspace, user=reader).role == Role.CONTRIBUTOR


def test_an_invited_person_sets_a_password_and_lands_in_the_workspace(new_page, owner, workspace):
    alice = new_page()
    login(alice, "alice")
    alice.goto(f"/w/{workspace.pk}/members/")
    alice.fill("input[name=username]", "dora")
    alice.fill("input[name=email]", "dora@example.org")
    alice.locator("form", has=alice.locator("input[name=username]")).locator("select[name=role]").select_option(
        "contributor"
    )
    alice.get_by_role("button", name="Add member").click()
    link = alice.get_by_test_id("invitation-url").inner_text().strip()
    assert re.match(r"^http://.+/account/set-password/#sil_", link), link

    dora = new_page()
    dora.goto(link)
    dora.fill("input[name=new_password1]", "a-brand-new-long-passphrase")
    dora.fill("input[name=new_password2]", "a-brand-new-long-passphrase")
    dora.get_by_role("button", name="Set password").click()
    dora.wait_for_url(re.compile(rf"/w/{workspace.pk}/$"))
    expect(dora.get_by_test_id("my-role")).to_have_text("You are Contributor")
