"""In Chromium: an upload past the workspace's storage quota is refused with the reason shown on
the upload page, and the workspace page shows the storage used and the quota."""

import pytest
from playwright.sync_api import expect

from data.models import Ingest
from tests.conftest import login

pytestmark = [pytest.mark.browser]


def test_an_upload_past_the_quota_says_why_and_the_workspace_page_shows_usage(new_page, owner, workspace, tmp_path):
    workspace.storage_quota_bytes = 1000
    workspace.save()
    csv = tmp_path / "big.csv"
    csv.write_text("a,b\n" + "1,2\n" * 20_000)

    page = new_page()
    login(page, "alice")
    page.goto(f"/w/{workspace.pk}/data/upload/")
    page.set_input_files("input[type=file]", str(csv))
    page.get_by_role("button", name="Upload", exact=True).click()
    error = page.locator("[data-upload-error]")
    expect(error).to_be_visible()
    expect(error).to_contain_text("storage quota")
    assert not Ingest.objects.exists()

    page.goto(f"/w/{workspace.pk}/")
    expect(page.get_by_test_id("storage")).to_contain_text("0 bytes of 1000 bytes used")
