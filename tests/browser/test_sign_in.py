"""In Chromium: a locked-out sign-in shows its page; staff issue a one-time link that sets a password."""

import pytest
from playwright.sync_api import expect

from tests.conftest import PASSWORD, login

pytestmark = [pytest.mark.browser]

NEW_PASSWORD = "a-brand-new-long-passphrase"


def test_staff_send_a_one_time_link_that_sets_a_forgotten_password(new_page, make_user, owner, settings):
    make_user("root", is_staff=True, is_superuser=True)
    staff = new_page()
    login(staff, "root")  # first: every page here comes from one address, which the failures lock too
    alice = new_page()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        alice.goto("/login/")
        alice.fill("input[name=username]", "alice")
        alice.fill("input[name=password]", "forgotten")
        alice.click("button[type=submit]")
    expect(alice.get_by_test_id("locked-out")).to_contain_text("Too many failed sign-ins")

    staff.goto("/admin/auth/user/?q=alice")
    staff.locator("input[name=_selected_action]").first.check()
    staff.select_option("select[name=action]", "issue_password_reset_link")
    staff.get_by_role("button", name="Go").click()
    link = staff.get_by_test_id("sign-in-link").inner_text()
    assert "/account/set-password/#sil_" in link

    alice.goto(link)
    expect(alice.get_by_role("heading", name="Set your password")).to_be_visible()
    assert "#" not in alice.url  # the script moved the secret out of the address bar
    alice.fill("input[name=new_password1]", NEW_PASSWORD)
    alice.fill("input[name=new_password2]", NEW_PASSWORD)
    alice.get_by_role("button", name="Set password").click()
    alice.wait_for_url("**/login/")
    expect(alice.get_by_text("Your password is set")).to_be_visible()
    login(alice, "alice", NEW_PASSWORD)  # the lock on alice went with the old password
    expect(alice.get_by_role("link", name="Home")).to_be_visible()

    again = new_page()
    again.goto(link)
    again.fill("input[name=new_password1]", PASSWORD + "-again")
    again.fill("input[name=new_password2]", PASSWORD + "-again")
    again.get_by_role("button", name="Set password").click()
    expect(again.get_by_test_id("link-refused")).to_contain_text("already been used")
