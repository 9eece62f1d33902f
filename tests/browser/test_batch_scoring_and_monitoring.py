"""In Chromium: batch score a data version from an endpoint's page on a real node and open the
predictions it made; the Monitoring tab draws a minute of traffic as a point with a fine latency."""

import pytest
from playwright.sync_api import expect

from compute.models import TargetKind
from compute.services import target_create
from data.services import data_version_from_file
from endpoints import services as endpoint_services
from endpoints import serving
from tests.conftest import login
from tests.endpoints.conftest import churn_frame, register

pytestmark = [pytest.mark.browser, pytest.mark.worker]


@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
def test_batch_scoring_from_the_endpoint_page_and_a_point_on_the_latency_chart(
    new_page, owner, workspace, agent, broker, tmp_path
):
    X, y = churn_frame(150, seed=5)
    source = tmp_path / "customers.csv"
    X.assign(churn=y).to_csv(source, index=False)
    data = data_version_from_file(actor=owner, workspace=workspace, path=source, name="customers")
    cluster = target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu").target
    inference = target_create(actor=owner, workspace=workspace, kind=TargetKind.INFERENCE, name="serving").target
    version = register(workspace, owner)
    endpoint = endpoint_services.endpoint_create(actor=owner, workspace=workspace, name="churn-api").endpoint
    endpoint_services.deployment_create(
        actor=owner, endpoint=endpoint, name="blue", model_version=version, target=inference
    )

    page = new_page()
    login(page, "alice")
    page.goto(f"/w/{workspace.pk}/endpoints/{endpoint.pk}/")
    form = page.get_by_test_id("batch-score-form")
    form.locator("select[name=data_version_id]").select_option(str(data.pk))
    form.locator("select[name=target]").select_option(str(cluster.pk))
    form.locator("input[name=output_asset]").fill("customer predictions")
    form.get_by_role("button", name="Score").click()
    expect(page.get_by_test_id("job-status")).to_have_text("Completed", timeout=120_000)
    output = page.get_by_test_id("batch-output")
    expect(output).to_contain_text("150 rows scored")
    output.get_by_role("link").click()
    expect(page.locator("h1")).to_contain_text("customer predictions")
    expect(page.locator("body")).to_contain_text("probability_yes")

    runtime = serving.configs.get(endpoint.name).deployments["blue"]
    serving.monitor.record(endpoint_id=endpoint.pk, deployment=runtime, status=200, latency_ms=1.1, rows=1)
    serving.monitor.flush()
    page.goto(f"/w/{workspace.pk}/endpoints/{endpoint.pk}/?tab=monitoring")
    expect(page.get_by_test_id("monitoring-row").first).to_contain_text("≤1.2 ms")
    points = page.locator("[data-chart=mon-latency] .scatterlayer .point")
    expect(points.first).to_be_visible()
