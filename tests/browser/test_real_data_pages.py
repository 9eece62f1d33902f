"""In Chromium: column names read exactly as written in the preview, and a live job page that
drops Cancel (and offers Clone and edit) once the job has ended, without a reload."""

import pytest
from playwright.sync_api import expect

from compute.jobs.diagnostic import DIAGNOSTIC
from compute.jobs.services import job_submit
from compute.models import TargetKind
from compute.services import target_create
from data.services import data_version_from_file
from tests.conftest import login

pytestmark = [pytest.mark.browser]

NAMES = ["mean radius", "Churn", "od280/od315", "customerID", "tenure"]


def test_preview_and_profile_show_column_names_as_written(new_page, owner, workspace, tmp_path):
    source = tmp_path / "names.csv"
    source.write_text(",".join(NAMES) + "\n" + "".join(f"{i}.5,yes,{i},c{i},{i}\n" for i in range(20)))
    version = data_version_from_file(actor=owner, workspace=workspace, path=source, name="names")
    page = new_page()
    login(page, "alice")
    page.goto(f"/w/{workspace.pk}/data/{version.asset_id}/v/{version.version}/?tab=preview")
    headers = page.get_by_test_id("preview-table").locator("thead th")
    # inner_text is the rendered text: CSS text-transform would change it.
    assert [headers.nth(i + 1).inner_text() for i in range(len(NAMES))] == NAMES


@pytest.mark.worker
@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
def test_a_live_job_page_drops_cancel_when_the_job_ends(new_page, owner, workspace, agent, broker):
    cluster = target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu").target
    job = job_submit(actor=owner, workspace=workspace, kind=DIAGNOSTIC, target=cluster, spec={"sleep_seconds": 1})
    page = new_page()
    login(page, "alice")
    page.goto(f"/w/{workspace.pk}/jobs/{job.pk}/")
    expect(page.get_by_test_id("cancel-job")).to_be_visible()
    expect(page.get_by_test_id("job-status")).to_have_text("Completed", timeout=60_000)
    expect(page.get_by_test_id("cancel-job")).to_have_count(0, timeout=5_000)
    expect(page.get_by_role("link", name="Clone and edit")).to_be_visible()
