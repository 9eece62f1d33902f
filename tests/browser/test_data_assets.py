"""In Chromium: upload a CSV with the progress bar, watch it become ready, open the preview and the
profile charts, change a column's type and see version 2."""

import re

import pytest
from playwright.sync_api import expect

from data.models import DataVersion
from tests.conftest import login, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.worker]

RECORD_PROGRESS = """
() => {
  sessionStorage.setItem("progress", "");
  const text = document.querySelector("[data-progress-text]");
  new MutationObserver(() => {
    sessionStorage.setItem("progress", sessionStorage.getItem("progress") + "|" + text.textContent);
  }).observe(text, {childList: true, characterData: true, subtree: true});
}
"""


@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
def test_upload_preview_profile_and_schema_edit(new_page, owner, workspace, agent, broker, tmp_path):
    rows = ["id,city,temperature,rainy,measured_at"]
    rows += [
        f"{i},{['Oslo', 'Lima', 'Pune'][i % 3]},{(i % 40) - 5}.5,{'yes' if i % 4 == 0 else 'no'},"
        f"2024-03-{1 + i % 28:02d} 12:00:00"
        for i in range(60_000)
    ]
    csv = tmp_path / "weather.csv"
    csv.write_text("\n".join(rows) + "\n")

    page = new_page()
    login(page, "alice")
    page.goto(f"/w/{workspace.pk}/data/upload/")
    page.set_input_files("input[type=file]", str(csv))
    expect(page.locator("input[name=name]")).to_have_value("weather")
    page.evaluate(RECORD_PROGRESS)
    page.get_by_role("button", name="Upload", exact=True).click()
    page.wait_for_url(re.compile(r"/data/uploads/\d+/$"))
    progress = page.evaluate("sessionStorage.getItem('progress')")
    assert "100% of" in progress, progress

    expect(page.get_by_test_id("ingest-ready")).to_be_visible(timeout=60_000)
    page.get_by_role("link", name="Open version 1").click()
    expect(page.get_by_test_id("column-table")).to_contain_text("temperature")

    page.get_by_role("link", name="Preview").click()
    expect(page.get_by_test_id("preview-table")).to_contain_text("Oslo")
    page.get_by_test_id("preview-next").click()
    expect(page.locator(".pagination").first).to_contain_text("Rows 51–100 of 60,000")

    page.get_by_role("link", name="Profile").click()
    expect(page.locator("[data-chart=chart-missing] .main-svg").first).to_be_visible()
    assert page.locator("[data-testid=profile-column] .main-svg").count() >= 5

    page.get_by_role("link", name="Schema").click()
    page.get_by_label("Type of id").select_option("categorical")
    page.get_by_role("button", name="Save as version 2").click()
    expect(page.get_by_test_id("ingest-ready")).to_be_visible(timeout=60_000)
    page.get_by_role("link", name="Open version 2").click()
    expect(page.locator("h1")).to_contain_text("version 2")
    v2 = wait_for(lambda: DataVersion.objects.filter(version=2).first(), message="version 2")
    assert {c["name"]: c["semantic_type"] for c in v2.schema["columns"]}["id"] == "categorical"
