"""In Chromium: open an experiment from the navigation, pick a metric column, sort by it, watch a
running run's metric arrive without a reload, select two runs and compare their histories."""

import re

import pytest
from playwright.sync_api import expect

from compute.jobs.metrics import metrics_save
from compute.jobs.models import JobStatus, Metric
from tests.conftest import login
from tests.training.test_experiment_pages import LOSS, LR, make_run
from training.models import Experiment

pytestmark = [pytest.mark.browser]


def test_pick_a_metric_column_sort_and_compare_two_runs(new_page, reader, workspace, transactional_db):
    experiment = Experiment.objects.create(workspace=workspace, name="Churn — été 2026")
    make_run(experiment, "slow learner", metrics={LOSS: [0.9, 0.7, 0.6], "acc": 0.6}, params={LR: "0.001"})
    make_run(experiment, "fast learner", metrics={LOSS: [0.8, 0.3, 0.2], "acc": 0.9}, params={LR: "0.1"})
    live = make_run(experiment, "still running", status=JobStatus.RUNNING, metrics={"acc": 0.1})

    carol = new_page()  # a Reader: viewing is enough
    login(carol, "carol")
    carol.goto(f"/w/{workspace.pk}/jobs/")
    carol.get_by_role("navigation").get_by_role("link", name="Experiments").click()
    carol.get_by_role("link", name="Churn — été 2026").click()
    table = carol.get_by_test_id("run-table")
    expect(table).to_be_visible()

    # pick only the loss and the learning rate as columns
    picker = carol.get_by_test_id("column-picker")
    if not picker.locator("details").get_attribute("open"):
        picker.locator("summary").click()
    picker.get_by_label("acc").uncheck()
    picker.get_by_label(LOSS).check()
    picker.get_by_label(LR).check()
    picker.get_by_role("button", name="Apply").click()
    expect(table.locator("thead")).to_contain_text(LOSS)
    expect(table.locator("thead")).to_contain_text(LR)
    expect(table.locator("thead")).not_to_contain_text("acc")
    assert "cols=1" in carol.url

    # sort by the loss, lowest first: a click sorts descending, the next ascending
    table.get_by_role("link", name=LOSS).click()
    expect(carol.get_by_test_id("run-table").locator("tbody tr").first).to_contain_text("slow learner")
    carol.get_by_test_id("run-table").get_by_role("link", name=LOSS).click()
    rows = carol.get_by_test_id("run-table").locator("tbody tr")
    expect(rows.nth(0)).to_contain_text("fast learner")
    expect(rows.nth(1)).to_contain_text("slow learner")
    expect(rows.nth(2)).to_contain_text("still running")  # no loss yet: last
    assert re.search(r"sort=metrics\.val", carol.url)

    # the running run logs its first loss: it appears without a reload
    metrics_save([Metric(job=live, name=LOSS, step=0, value=0.05)])
    expect(carol.get_by_test_id("run-table").locator("tbody tr").first).to_contain_text("0.0500", timeout=20000)

    # compare the two finished runs
    carol.get_by_label("Compare fast learner").check()
    carol.get_by_label("Compare slow learner").check()
    carol.get_by_test_id("compare-runs").click()
    expect(carol.get_by_role("heading", name="Compare 2 runs")).to_be_visible()
    chart = carol.get_by_test_id("metric-chart").filter(has_text=LOSS)
    expect(chart.locator(".main-svg").first).to_be_visible()
    expect(chart.locator(".scatterlayer .trace")).to_have_count(2)
    expect(carol.locator("tr.differs")).to_contain_text(LR)
    carol.get_by_test_id("x-axis").get_by_role("link", name="Time").click()
    expect(carol.get_by_test_id("metric-chart").first.locator(".main-svg").first).to_be_visible()
    assert "x=time" in carol.url


def test_the_job_list_keeps_its_table_while_it_polls(new_page, reader, workspace, transactional_db):
    """The live list's poll swaps in the table's fragment (it once emptied the table every 3 s)."""
    experiment = Experiment.objects.create(workspace=workspace, name="polled")
    make_run(experiment, "still running", status=JobStatus.RUNNING)
    carol = new_page()
    login(carol, "carol")
    carol.goto(f"/w/{workspace.pk}/jobs/")
    expect(carol.get_by_test_id("job-table")).to_contain_text("still running")
    with carol.expect_response(
        lambda response: "/jobs/" in response.url and response.request.headers.get("hx-request")
    ):
        pass  # one poll answered
    carol.wait_for_timeout(300)
    expect(carol.get_by_test_id("job-table")).to_contain_text("still running", timeout=100)
