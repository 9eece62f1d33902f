"""In Chromium: run Automated ML on a small data asset, watch the leaderboard fill, open the best
model's charts, register it and see its lineage; deploy it to a new endpoint, score from the Test
tab and with the curl snippet, split traffic 90/10 with a second version, and see both
deployments' requests and latency on the Monitoring tab."""

import json
import re
import subprocess
import urllib.request

import pytest
from playwright.sync_api import expect

from compute.jobs.models import Job, JobStatus
from compute.models import Node, NodeStatus, TargetKind
from compute.services import target_create
from endpoints import serving
from tests.conftest import login, wait_for
from training.models import ModelVersion, TrainingJobKind
from training.registry_services import model_register

pytestmark = [pytest.mark.browser, pytest.mark.worker]


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_automl_register_deploy_test_split_and_monitor(
    new_page,
    owner,
    workspace,
    penguins,
    agent,
    broker,
    reconciler,
    settings,
):
    settings.STUDIO_MONITOR_FLUSH_SECONDS = 0
    cluster = target_create(
        actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu", min_nodes=2, max_nodes=2
    ).target
    target_create(actor=owner, workspace=workspace, kind=TargetKind.INFERENCE, name="serving")
    wait_for(
        lambda: Node.objects.filter(target=cluster, status=NodeStatus.IDLE).count() == 2,
        timeout=60,
        message="two warm nodes",
    )

    page = new_page()
    login(page, "alice")
    page.goto(f"/w/{workspace.pk}/jobs/automl/new/")
    with page.expect_response(lambda response: "/automl/columns/" in response.url):
        page.select_option("#id_data_version_id", str(penguins.pk))
    # The page's first load also asks for the columns: let every column request land before choosing.
    page.wait_for_load_state("networkidle")
    page.locator("#automl-columns select#id_target_column").select_option("species")
    expect(page.get_by_test_id("class-balance")).to_contain_text("Adelie", timeout=15_000)
    page.fill("#id_timeout_minutes", "1.5")
    page.fill("#id_max_trials", "6")
    page.fill("#id_max_concurrent_trials", "2")
    page.fill("#id_early_stop_trials", "")
    page.select_option("#id_target", str(cluster.pk))
    page.get_by_test_id("start-automl").click()
    page.wait_for_url(re.compile(r"/jobs/\d+/$"))
    run = Job.objects.get(kind=TrainingJobKind.AUTOML)
    # The leaderboard fills while the run goes on, then the run completes with its charts.
    expect(page.get_by_test_id("leaderboard").locator("tbody tr a").first).to_be_visible(timeout=60_000)
    expect(page.get_by_test_id("job-status")).to_have_text("Completed", timeout=150_000)
    page.reload()
    expect(page.get_by_test_id("best-metrics")).to_contain_text("auc_weighted")
    expect(page.locator("[data-chart=automl-confusion] .main-svg").first).to_be_visible()
    expect(page.locator("[data-chart=automl-importance] .main-svg").first).to_be_visible()
    assert page.get_by_test_id("leaderboard").locator("tbody tr").count() == 6

    form = page.get_by_test_id("register-form")
    form.get_by_label("Model name").fill("penguin-model")
    form.get_by_role("button", name="Register the best model").click()
    page.wait_for_url(re.compile(r"/models/\d+/v/1/$"))
    lineage = page.get_by_test_id("model-lineage")
    expect(lineage).to_contain_text("Ensemble and final model")
    expect(lineage).to_contain_text("penguins:1")
    expect(lineage).to_contain_text("scikit-learn")

    # Deploy the best model to a new endpoint.
    page.get_by_role("link", name="Deploy…").click()
    page.fill("input[name=name]", "penguins-api")
    page.get_by_role("button", name="Create endpoint").click()
    page.wait_for_url(re.compile(r"/endpoints/\d+/"))
    key = page.get_by_test_id("primary-key").inner_text().strip()
    page.get_by_test_id("keys-copied").click()
    page.get_by_test_id("deploy").click()
    expect(page.get_by_test_id("deployment-table")).to_contain_text("penguin-model:1")

    page.get_by_role("link", name="Test").click()
    page.get_by_test_id("test-score").click()
    expect(page.get_by_test_id("test-response")).to_contain_text("predictions")

    page.get_by_role("link", name="Consume").click()
    curl = page.get_by_test_id("curl-snippet").inner_text().replace("$KEY", key)
    output = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=30).stdout
    assert json.loads(output)["predictions"][0] in ("Adelie", "Chinstrap", "Gentoo"), output

    # A second version (the best trial's own model) as "green", and a 90/10 split.
    best_trial = Job.objects.filter(parent=run, kind=TrainingJobKind.AUTOML_TRIAL, status=JobStatus.COMPLETED).first()
    model_register(actor=owner, job=best_trial, name="penguin-model")
    v2 = ModelVersion.objects.get(model__name="penguin-model", version=2)
    page.get_by_role("link", name="Details").click()
    page.fill("input[name=name]", "green")
    page.select_option("select[name=model_version]", str(v2.pk))
    page.get_by_test_id("deploy").click()
    expect(page.get_by_test_id("deployment-table")).to_contain_text("penguin-model:2")
    page.get_by_label("Traffic to blue").fill("90")
    page.get_by_label("Traffic to green").fill("10")
    page.get_by_test_id("save-traffic").click()
    expect(page.get_by_text("Traffic updated")).to_be_visible()

    url = re.search(r"(http\S+/score/penguins-api/)", curl).group(1)
    serving.configs.clear()
    body = json.dumps(
        [
            {
                "island": "Biscoe",
                "bill_length_mm": 45.0,
                "bill_depth_mm": 15.0,
                "flipper_length_mm": 215.0,
                "body_mass_g": 5000.0,
                "sex": "female",
                "year": 2008,
            }
        ]
    ).encode()
    served = []
    for _ in range(80):
        request = urllib.request.Request(
            url, data=body, headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request) as response:
            served.append(json.load(response)["deployment"])
    assert {"blue", "green"} <= set(served)
    serving.monitor.flush()
    page.get_by_role("link", name="Monitoring").click()
    rows = page.get_by_test_id("monitoring-row")
    expect(rows).to_have_count(2)
    expect(page.get_by_test_id("monitoring-table")).to_contain_text("blue")
    expect(page.get_by_test_id("monitoring-table")).to_contain_text("green")
    expect(rows.first.locator("td").nth(6)).to_contain_text("ms")
    expect(page.locator("[data-chart=mon-latency] .main-svg").first).to_be_visible()
