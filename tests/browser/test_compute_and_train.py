"""In Chromium: create a cluster (min 0, max 2), submit a train job on a data asset, watch the node
start and the job go QUEUED → RUNNING → COMPLETED with its log and metrics live, then the node stop
after the idle timeout; the usage page shows the node time."""

import re

import pytest
from playwright.sync_api import expect

from compute.jobs.models import Job, JobEvent
from compute.models import ComputeTarget, Node, NodeStatus
from tests.conftest import login, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.worker]


@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
def test_cluster_train_job_live_and_scale_to_zero(new_page, owner, workspace, penguins, agent, broker):
    page = new_page()
    login(page, "alice")
    page.goto(f"/w/{workspace.pk}/compute/new/?kind=cluster")
    page.fill("input[name=name]", "cpu-cluster-2")
    page.fill("input[name=min_nodes]", "0")
    page.fill("input[name=max_nodes]", "2")
    page.fill("input[name=idle_seconds_before_scaledown]", "4")
    page.get_by_role("button", name="Create").click()
    page.wait_for_url(re.compile(r"/compute/\d+/$"))
    cluster = ComputeTarget.objects.get(name="cpu-cluster-2")
    expect(page.get_by_test_id("node-table")).to_have_count(0)  # scaled to zero: no nodes yet

    page.goto(f"/w/{workspace.pk}/jobs/new/?kind=train")
    page.select_option("select[name=target]", str(cluster.pk))
    first_select = page.locator("select[name=target_column]").element_handle()
    page.select_option("select[name=data_version_id]", str(penguins.pk))
    first_select.wait_for_element_state("hidden")  # replaced by the chosen data's columns (htmx)
    expect(page.locator("select[name=target_column] option[value=species]")).to_have_count(1)
    page.select_option("select[name=target_column]", "species")
    with page.expect_response(re.compile(r"algorithm=random_forest")):  # its typed hyperparameters
        page.select_option("select[name=algorithm]", "random_forest")
    expect(page.locator("input[name=hp_n_estimators]")).to_be_visible()
    page.fill("input[name=hp_n_estimators]", "60")
    page.locator("summary", has_text="Advanced").click()
    page.fill("textarea[name=hyperparameters]", '{"max_depth": 6}')
    page.get_by_role("button", name="Submit").click()
    page.wait_for_url(re.compile(r"/jobs/\d+/$"))
    job = Job.objects.get(kind="train")
    assert job.spec["hyperparameters"] == {"n_estimators": 60, "max_depth": 6}

    # Live: the status moves on without a reload, the log and the metrics appear.
    expect(page.get_by_test_id("job-status")).to_have_text("Completed", timeout=90_000)
    expect(page.get_by_test_id("job-log")).to_contain_text("Training Random forest")
    expect(page.get_by_test_id("job-log")).to_contain_text("Packaged model.skops")
    page.reload()
    expect(page.get_by_test_id("job-metrics")).to_contain_text("accuracy")
    expect(page.locator("[data-chart=result-confusion] .main-svg").first).to_be_visible()
    expect(page.locator("[data-chart=result-roc] .main-svg").first).to_be_visible()
    expect(page.get_by_test_id("job-artifacts")).to_contain_text("model.skops")
    statuses = list(JobEvent.objects.filter(job=job).values_list("status", flat=True))
    assert statuses == ["queued", "starting", "running", "completed"]

    # The node started for the job and stops after 4 idle seconds.
    page.goto(f"/w/{workspace.pk}/compute/{cluster.pk}/")
    node = Node.objects.get(target=cluster)
    expect(page.get_by_test_id("node-table")).to_contain_text(node.name)
    wait_for(
        lambda: Node.objects.filter(pk=node.pk, status=NodeStatus.STOPPED).exists(),
        timeout=60,
        message="the idle node to stop",
    )
    expect(page.get_by_test_id("node-status").first).to_have_text("Stopped", timeout=10_000)

    page.goto(f"/w/{workspace.pk}/compute/usage/")
    expect(page.get_by_test_id("usage-table")).to_contain_text("cpu-cluster-2")
    hours = float(page.get_by_test_id("month-hours").inner_text())
    assert hours > 0
