"""In Chromium: an Owner shares a workspace with a Reader, who can look but not change anything."""

import re

import pytest
from playwright.sync_api import expect

from tests.conftest import login
from workspaces.models import Membership, Role, Workspace

pytestmark = [pytest.mark.browser]


def test_owner_shares_a_workspace_and_the_reader_cannot_change_it(new_page, owner, reader):
    alice = new_page()
    login(alice, "alice")
    alice.get_by_role("link", name="+ New workspace").first.click()
    alice.fill("input[name=name]", "Credit risk")
    alice.fill("textarea[name=description]", "Scoring loan applications")
    alice.get_by_role("button", name="Create workspace").click()
    alice.wait_for_url(re.compile(r"/w/\d+/$"))
    expect(alice.get_by_text("You are Owner")).to_be_visible()
    workspace = Workspace.objects.get(name="Credit risk")

    alice.get_by_role("link", name="Members").click()
    add_form = alice.locator("form", has=alice.locator("input[name=username]"))
    add_form.locator("input[name=username]").fill("carol")
    add_form.locator("select[name=role]").select_option("reader")
    add_form.get_by_role("button", name="Add member").click()
    expect(alice.get_by_text("carol added as Reader")).to_be_visible()
    assert Membership.objects.get(workspace=workspace, user=reader).role == Role.READER

    carol = new_page()
    login(carol, "carol")
    carol.get_by_test_id("workspace-table").get_by_role("link", name="Credit risk").click()
    expect(carol.get_by_test_id("my-role")).to_have_text("You are Reader")
    for section in ("Overview", "Members", "Settings"):
        carol.locator(".sidenav").get_by_role("link", name=section).click()
        expect(carol.locator(".sidenav a[aria-current=page]")).to_have_text(section)
        main = carol.locator("main")
        # No control that changes the workspace: no buttons or editable fields in the page body.
        assert main.locator("button, input:not([type=hidden]), textarea, select").count() == 0, section
        assert main.get_by_role("link", name=re.compile("Delete|Remove")).count() == 0, section

    csrf = next(c["value"] for c in carol.context.cookies() if c["name"] == "csrftoken")
    base = carol.url.split("/w/")[0]
    for path, form in [
        ("settings/", {"name": "Pwned"}),
        ("delete/", {"confirm_name": "Credit risk"}),
        ("members/", {"username": "carol", "role": "owner"}),
    ]:
        response = carol.request.post(
            f"{base}/w/{workspace.pk}/{path}", form=form, headers={"X-CSRFToken": csrf, "Referer": carol.url}
        )
        assert response.status == 403, path
    workspace.refresh_from_db()
    assert workspace.name == "Credit risk"
    assert Membership.objects.get(workspace=workspace, user=reader).role == Role.READER
