"""In Chromium, on real workers: messy daily sales of two stores uploaded → the Automated ML wizard →
Forecasting, with its time column, series, horizon, the frequency inferred from the data and a
known-ahead feature → the run completes → its page shows the frequency "(inferred)", the
guardrails, the leaderboard and a forecast-vs-actual chart per backtest window with the series
picker → registered, the model version says what it forecasts → deployed, the Test tab forecasts
from the stored history and from a history given in the body, shown as a table; the Consume tab's
curl and Python snippets run as they are."""

import ast
import json
import os
import re
import subprocess
import sys

import pytest
from playwright.sync_api import expect

from compute.jobs.models import Job
from compute.models import Node, NodeStatus, TargetKind
from compute.services import target_create
from data.models import DataVersion
from endpoints import serving
from tests.conftest import htmx_settled, login, wait_for
from tests.ml.forecast_data import messy_sales
from training.models import TrainingJobKind

pytestmark = [pytest.mark.browser, pytest.mark.worker]


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_forecasting_from_the_wizard_to_the_result_page(
    new_page, owner, workspace, agent, broker, reconciler, tmp_path
):
    source = tmp_path / "store sales (daily).csv"
    messy_sales(periods=90).to_csv(source, index=False)
    cluster = target_create(
        actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu", min_nodes=1, max_nodes=1
    ).target
    target_create(actor=owner, workspace=workspace, kind=TargetKind.INFERENCE, name="serving")
    wait_for(
        lambda: Node.objects.filter(target=cluster, status=NodeStatus.IDLE).exists(), timeout=60, message="a warm node"
    )

    page = new_page()
    login(page, "alice")
    # uploaded as a user does: the file, its ingest, its version
    page.goto(f"/w/{workspace.pk}/data/upload/")
    page.set_input_files("input[type=file]", str(source))
    page.fill("input[name=name]", "store sales")
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(page.get_by_test_id("ingest-ready")).to_be_visible(timeout=60_000)
    sales = DataVersion.objects.get(asset__name="store sales", version=1)
    assert [c["semantic_type"] for c in sales.schema["columns"]][:1] == ["datetime"], sales.schema

    page.goto(f"/w/{workspace.pk}/jobs/automl/new/")
    with page.expect_response(lambda response: "/automl/columns/" in response.url):
        page.select_option("#id_data_version_id", str(sales.pk))
    page.wait_for_load_state("networkidle")
    page.locator("#automl-columns select#id_target_column").select_option("Units Sold")
    expect(page.locator("#id_task")).to_have_value("regression")  # the suggestion for a numeric target
    htmx_settled(page, "#id_task")
    with page.expect_response(lambda response: "task=forecasting" in response.url):
        page.select_option("#id_task", "forecasting")
    settings = page.get_by_test_id("forecast-settings")
    expect(settings).to_be_visible()
    expect(page.locator("#id_primary_metric option", has_text="MASE")).to_have_count(1)
    htmx_settled(page, "#id_task")
    # the time column chosen: the frequency the data has, inferred before the run
    with page.expect_response(lambda response: "/automl/frequency/" in response.url):
        page.select_option("#id_time_column", "Date")
    expect(page.get_by_test_id("inferred-frequency")).to_contain_text("Inferred from the data: D")
    settings.get_by_label("Store ID").first.check()
    page.locator("input[name=known_ahead][value='Promo?']").check()
    page.fill("#id_horizon", "7")
    page.fill("#id_backtest_windows", "2")
    page.select_option("#id_primary_metric", "mase")
    for algorithm in ("seasonal_naive", "ets"):
        page.locator(f"#automl-algorithms input[name=allowed_algorithms][value={algorithm}]").check()
    page.fill("#id_timeout_minutes", "2")
    page.select_option("#id_target", str(cluster.pk))
    page.get_by_test_id("start-automl").click()
    page.wait_for_url(re.compile(r"/jobs/\d+/$"))
    run = Job.objects.get(kind=TrainingJobKind.AUTOML)
    assert run.spec["task"] == "forecasting" and run.spec["automl"]["series_columns"] == ["Store ID"]
    assert run.spec["automl"]["algorithms"] == ["seasonal_naive", "ets"]

    expect(page.get_by_test_id("job-status")).to_have_text("Completed", timeout=180_000)
    page.reload()
    expect(page.get_by_test_id("task-badge")).to_have_text("Forecasting")
    expect(page.get_by_test_id("forecast-frequency")).to_have_text("D (inferred)")
    expect(page.get_by_test_id("forecast-series-count")).to_contain_text("2")
    expect(page.get_by_test_id("guardrails")).to_contain_text("Missing timestamps")
    leaderboard = page.get_by_test_id("leaderboard")
    expect(leaderboard).to_contain_text("Seasonal naive")
    expect(leaderboard.locator("tbody tr").first.locator("td").nth(3)).to_have_text(re.compile(r"\d\.\d{4}"))
    expect(page.get_by_test_id("best-metrics")).to_contain_text("MASE")
    # one chart per backtest window, drawn; the series picker (plotly's menu) switches the series
    charts = page.get_by_test_id("forecast-charts")
    expect(charts.locator("[data-chart] .main-svg").first).to_be_visible()
    expect(charts.locator("[data-chart]")).to_have_count(2)
    first = charts.locator("[data-chart=forecast-backtest-1]")
    expect(first.locator(".updatemenu-header-group")).to_contain_text("Store ID = A-1")
    first.locator(".updatemenu-header-group").click()
    first.locator(".updatemenu-dropdown-button", has_text="Store ID = B 2").click()
    expect(first.locator(".updatemenu-header-group")).to_contain_text("Store ID = B 2")

    form = page.get_by_test_id("register-form")
    form.get_by_label("Model name").fill("sales-forecast")
    form.get_by_role("button", name="Register the best model").click()
    page.wait_for_url(re.compile(r"/models/\d+/v/1/$"))
    expect(page.get_by_test_id("model-task")).to_have_text(
        "Forecasting · forecasts Units Sold 7 steps ahead (D), per Store ID; known ahead: Promo?"
    )

    # Deployed: the Test tab forecasts the 7 days after the history, with intervals, as a table.
    page.get_by_role("link", name="Deploy…").click()
    page.fill("input[name=name]", "sales-api")
    page.get_by_role("button", name="Create endpoint").click()
    page.wait_for_url(re.compile(r"/endpoints/\d+/"))
    key = page.get_by_test_id("primary-key").inner_text().strip()
    page.get_by_test_id("keys-copied").click()
    page.get_by_test_id("deploy").click()
    expect(page.get_by_test_id("deployment-table")).to_contain_text("sales-forecast:1")
    page.get_by_role("link", name="Test").click()
    body = json.loads(page.get_by_test_id("forecast-body").input_value())
    assert len(body["future"]) == 7 and body["series"] == [{"Store ID": "A-1"}], body
    page.get_by_test_id("test-score").click()
    table = page.get_by_test_id("forecast-table")
    expect(table.locator("tbody tr")).to_have_count(7, timeout=30_000)
    expect(table.locator("thead")).to_contain_text("Store ID")
    expect(table.locator("thead")).to_contain_text("upper")
    expect(table.locator("tbody tr").first).to_contain_text("A-1")
    answer = json.loads(page.get_by_test_id("test-response").inner_text())
    first = answer["forecasts"][0]
    assert answer["horizon"] == 7 and answer["frequency"] == "D"
    assert first["lower"] <= first["forecast"] <= first["upper"], first
    # the example with a history: the series given (its own recent days) is forecast
    page.get_by_role("button", name="Use the example with a history").click()
    page.get_by_test_id("test-score").click()
    expect(page.get_by_test_id("test-response")).to_contain_text('"forecasts"', timeout=30_000)
    expect(table.locator("tbody tr")).to_have_count(7)

    # The Consume tab's snippets run as they are, with the key: curl (the stored history), Python (a history)
    page.get_by_role("link", name="Consume").click()
    curl = page.get_by_test_id("curl-snippet").inner_text().replace("$KEY", key)
    output = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=60).stdout
    assert len(json.loads(output)["forecasts"]) == 7, output
    python = page.get_by_test_id("python-snippet").inner_text()
    done = subprocess.run(
        [sys.executable, "-c", python], capture_output=True, text=True, timeout=60, env={**os.environ, "KEY": key}
    )
    assert done.returncode == 0, done.stderr
    rows = [ast.literal_eval(line) for line in done.stdout.splitlines()]
    assert len(rows) == 7 and all({"forecast", "lower", "upper", "Date", "Store ID"} <= set(r) for r in rows), rows
    serving.monitor.flush()  # the requests' counts written now, not at exit (when the test database is gone)
