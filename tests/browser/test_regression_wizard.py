"""In Chromium: the Automated ML wizard suggests a regression for a numeric target and says why,
swaps in the regression metrics and algorithms, follows a task chosen by hand, and starts a
regression run whose page carries the task."""

import re

import pytest
from playwright.sync_api import expect

from compute.jobs.models import Job
from compute.models import TargetKind
from compute.services import target_create
from data.services import data_version_from_file
from tests.conftest import htmx_settled, login
from tests.training.regression_data import TARGET, write_houses
from training.models import TrainingJobKind

pytestmark = [pytest.mark.browser]


def test_the_wizard_suggests_regression_for_a_numeric_target(new_page, owner, workspace, tmp_path):
    source = tmp_path / "houses.csv"
    write_houses(source, rows=60)
    houses = data_version_from_file(actor=owner, workspace=workspace, path=source, name="houses (2024)")
    cluster = target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu").target

    page = new_page()
    login(page, "alice")
    page.goto(f"/w/{workspace.pk}/jobs/automl/new/")
    with page.expect_response(lambda response: "/automl/columns/" in response.url):
        page.select_option("#id_data_version_id", str(houses.pk))
    page.wait_for_load_state("networkidle")
    page.locator("#automl-columns select#id_target_column").select_option(TARGET)

    suggestion = page.get_by_test_id("task-suggestion")
    expect(suggestion).to_contain_text("Suggested: Regression")
    expect(suggestion).to_contain_text(f"{TARGET} is")
    expect(page.locator("#id_task")).to_have_value("regression")
    metrics = page.locator("#id_primary_metric option")
    expect(metrics).to_contain_text(["Normalised RMSE", "RMSE", "MAE", "R²", "Spearman correlation", "MAPE"])
    expect(page.locator("#automl-algorithms")).to_contain_text("Support vector regression (SVR)")

    # A task chosen by hand brings its own metrics and algorithms, and back again.
    # (each swap awaited: a second choice made while the first's answer is on its way would be undone by it)
    # (each swap awaited, and htmx done with the new fields before the next choice: a select swapped
    # in but not yet processed by htmx would take the choice without asking the server)
    htmx_settled(page, "#id_task")
    with page.expect_response(lambda response: "task=classification" in response.url):
        page.select_option("#id_task", "classification")
    expect(page.locator("#id_primary_metric option", has_text="AUC weighted")).to_have_count(1)
    expect(page.locator("#automl-algorithms")).to_contain_text("Logistic regression")
    htmx_settled(page, "#id_task")
    with page.expect_response(lambda response: "task=regression" in response.url):
        page.select_option("#id_task", "regression")
    expect(page.locator("#id_primary_metric option", has_text="R²")).to_have_count(1)
    page.select_option("#id_primary_metric", "r2")
    page.locator("#automl-algorithms").get_by_label("Ridge").first.check()

    page.select_option("#id_target", str(cluster.pk))
    page.get_by_test_id("start-automl").click()
    page.wait_for_url(re.compile(r"/jobs/\d+/$"))
    expect(page.get_by_test_id("job-task")).to_have_text("Regression")
    expect(page.get_by_test_id("task-badge")).to_have_text("Regression")
    run = Job.objects.get(kind=TrainingJobKind.AUTOML)
    assert run.spec["task"] == "regression" and run.spec["automl"]["primary_metric"] == "r2"
    assert run.spec["automl"]["allowed_algorithms"] == ["ridge"]
