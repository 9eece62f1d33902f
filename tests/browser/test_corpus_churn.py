"""In Chromium: the churn-like corpus file (a date column, charges written "1,234.50", free-text
notes, yes/no labels) uploaded through the pages, trained, registered, deployed, and scored on the
endpoint's Test tab, which answers with "yes"/"no" as the file wrote them."""

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from compute.models import TargetKind
from compute.services import default_cluster_for, target_create, target_update
from tests.conftest import htmx_settled, login
from training.models import ModelVersion

pytestmark = [pytest.mark.browser, pytest.mark.worker]

CHURN = Path(__file__).resolve().parent.parent / "data" / "corpus" / "churn.csv"


@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
def test_the_churn_file_goes_from_upload_to_a_yes_no_prediction_in_the_browser(
    new_page, owner, workspace, agent, broker, reconciler
):
    # Ingest runs on the workspace's default cluster: keep one node warm there for every job.
    cluster = target_update(actor=owner, target=default_cluster_for(workspace), min_nodes=1, max_nodes=2)
    target_create(actor=owner, workspace=workspace, kind=TargetKind.INFERENCE, name="serving")
    page = new_page()
    login(page, "alice")

    page.goto(f"/w/{workspace.pk}/data/upload/")
    page.set_input_files("input[type=file]", str(CHURN))
    expect(page.locator("input[name=name]")).to_have_value("churn")
    page.get_by_role("button", name="Upload", exact=True).click()
    page.wait_for_url(re.compile(r"/data/uploads/\d+/$"))
    expect(page.get_by_test_id("ingest-ready")).to_be_visible(timeout=90_000)
    page.get_by_role("link", name="Open version 1").click()
    columns = page.get_by_test_id("column-table")
    for name in ("customer id", "signup date", "monthly charges", "notes", "churned"):
        expect(columns).to_contain_text(name)

    page.goto(f"/w/{workspace.pk}/jobs/new/?kind=train")
    page.select_option("select[name=target]", str(cluster.pk))
    first_select = page.locator("select[name=target_column]").element_handle()
    version_option = page.locator("select[name=data_version_id] option", has_text="churn").first
    page.select_option("select[name=data_version_id]", version_option.get_attribute("value"))
    first_select.wait_for_element_state("hidden")  # replaced by the chosen data's columns (htmx)
    htmx_settled(page, "#id_target_column")
    page.select_option("select[name=target_column]", "churned")  # reloads the task and its algorithms
    htmx_settled(page, "#id_algorithm")
    if page.locator("select[name=algorithm]").input_value() != "logistic_regression":
        with page.expect_response(re.compile(r"algorithm=logistic_regression")):
            page.select_option("select[name=algorithm]", "logistic_regression")
    page.get_by_role("button", name="Submit").click()
    page.wait_for_url(re.compile(r"/jobs/\d+/$"))
    expect(page.get_by_test_id("job-status")).to_have_text("Completed", timeout=120_000)

    page.reload()
    page.get_by_label("Model name").fill("churn-model")
    page.get_by_role("button", name="Register", exact=True).click()
    page.wait_for_url(re.compile(r"/models/\d+/v/1/$"))
    assert ModelVersion.objects.get(model__name="churn-model").classes == ["no", "yes"]

    page.get_by_role("link", name="Deploy…").click()
    page.fill("input[name=name]", "churn-api")
    page.get_by_role("button", name="Create endpoint").click()
    page.wait_for_url(re.compile(r"/endpoints/\d+/"))
    page.get_by_test_id("keys-copied").click()
    page.get_by_test_id("deploy").click()
    expect(page.get_by_test_id("deployment-table")).to_contain_text("churn-model:1", timeout=30_000)

    page.get_by_role("link", name="Test").click()
    expect(page.get_by_label(re.compile(r"^signup date"))).to_have_value(re.compile(r"^\d{4}-\d\d-\d\d"))
    page.get_by_test_id("test-score").click()
    response = page.get_by_test_id("test-response")
    expect(response).to_contain_text("predictions")
    answer = json.loads(response.inner_text())
    assert answer["predictions"][0] in ("yes", "no"), answer
    assert set(answer["probabilities"][0]) == {"no", "yes"}, answer
