"""The endpoint pages in a real browser: Deploy shows it is working, and the Remove button fits at 1400 px."""

import re

import pytest
from playwright.sync_api import expect

from endpoints.models import Deployment
from tests.conftest import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_create_copy_keys_deploy_with_progress_and_remove_fits(new_page, owner, workspace, model_version, tmp_path):
    page = new_page()
    page.set_viewport_size({"width": 1400, "height": 900})
    login(page, "alice")
    page.goto(f"/w/{workspace.pk}/endpoints/?deploy={model_version.pk}")
    page.fill("input[name=name]", "churn-web")
    expect(page.locator("input[name=create_inference_cluster]")).to_be_checked()
    page.get_by_role("button", name="Create endpoint").click()
    expect(page.get_by_test_id("primary-key")).to_contain_text("sk_")
    # The workspace menu still shows, but leaving by it asks first; staying keeps the keys on screen.
    dialogs = []
    page.once("dialog", lambda dialog: (dialogs.append(dialog.type), dialog.dismiss()))
    page.locator("aside.sidebar").get_by_role("link", name="Endpoints").click()
    for _ in range(200):
        if dialogs:
            break
        page.wait_for_timeout(50)
    assert dialogs == ["beforeunload"]
    assert re.search(r"/endpoints/\d+/\?deploy=", page.url), page.url
    expect(page.get_by_test_id("primary-key")).to_contain_text("sk_")
    page.get_by_test_id("keys-copied").click()
    page.wait_for_url(re.compile(rf"/endpoints/\d+/\?deploy={model_version.pk}$"))

    # Hold the deploy request, as a slow model load would, to see the page say it is working.
    held = []
    page.route("**/deployments/", lambda route: held.append(route))
    page.get_by_test_id("deploy").click()
    expect(page.get_by_test_id("deploy-progress")).to_be_visible()
    expect(page.get_by_test_id("deploy")).to_be_disabled()
    for _ in range(200):
        if held:
            break
        page.wait_for_timeout(50)
    held[0].continue_()
    expect(page.get_by_test_id("deployment-table")).to_contain_text("churn:1", timeout=30_000)
    expect(page.get_by_text("Deployed churn:1")).to_be_visible()
    expect(page.get_by_test_id("deploy-progress")).to_be_hidden()

    remove = page.get_by_test_id("delete-blue")
    card = page.get_by_test_id("deployments-card")
    page.screenshot(path=str(tmp_path / "endpoint-1400.png"), full_page=True)
    box, card_box = remove.bounding_box(), card.bounding_box()
    assert box["x"] + box["width"] <= card_box["x"] + card_box["width"], (box, card_box)
    assert box["x"] + box["width"] <= 1400
    remove.click()
    expect(page.get_by_text("Deployment blue removed.")).to_be_visible()
    assert not Deployment.objects.filter(name="blue").exists()
