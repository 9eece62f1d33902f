"""In Chromium: a Contributor creates an environment from the nav, a node builds it, and the page
shows the lock file and the build on that host; a new version starts from the latest."""

import os
import socket

import pytest
from playwright.sync_api import expect

from environments.models import Environment
from environments.services import environment_prepare
from tests.conftest import login

pytestmark = [pytest.mark.browser]

SHOTS = os.environ.get("STUDIO_TEST_SCREENSHOTS")  # a folder to keep screenshots in, when set


def test_create_build_and_read_an_environment(new_page, contributor, workspace):
    bob = new_page()
    login(bob, "bob")
    bob.goto(f"/w/{workspace.pk}/")
    bob.get_by_role("link", name="Environments").click()
    expect(bob.get_by_test_id("environments-empty")).to_be_visible()
    bob.get_by_role("link", name="+ New environment").click()
    bob.get_by_label("Name").fill("tables ✓")
    bob.get_by_label("Base").select_option("python")
    bob.get_by_label("Requirements").fill("tabulate\n-r secrets.txt")
    bob.get_by_role("button", name="Create").click()
    expect(bob.get_by_role("alert").filter(has_text="letters, digits, dots")).to_be_visible()
    expect(bob.get_by_role("alert").filter(has_text="Line 2")).to_be_visible()
    if SHOTS:
        bob.screenshot(path=f"{SHOTS}/environment-create.png", full_page=True)
    bob.get_by_label("Name").fill("tables")
    bob.get_by_label("Requirements").fill("tabulate\n# for pretty tables")
    bob.get_by_role("button", name="Create").click()
    expect(bob.get_by_text("Not resolved yet")).to_be_visible()

    version = Environment.objects.get(name="tables").versions.get()
    environment_prepare(version=version, on_line=lambda line: None)  # what a node does for the first job
    bob.reload()
    expect(bob.get_by_test_id("lock-file")).to_contain_text("tabulate==")
    expect(bob.get_by_test_id("builds")).to_contain_text(socket.gethostname())
    expect(bob.get_by_test_id("builds")).to_contain_text("Ready")
    if SHOTS:
        bob.screenshot(path=f"{SHOTS}/environment-detail.png", full_page=True)

    bob.get_by_role("link", name="New version").click()
    expect(bob.get_by_label("Requirements")).to_have_value("tabulate\n# for pretty tables")
    bob.get_by_label("Requirements").fill("tabulate\nsix")
    bob.get_by_role("button", name="Create version").click()
    expect(bob.get_by_text("Version 2 of tables created.")).to_be_visible()
    assert version.environment.versions.count() == 2
