"""In Chromium: a Contributor submits a command job from the Jobs page (a folder of code chosen in
the upload box, an environment, the penguins as data input, a value, a folder output), watches it
complete on a real node, reads the command as resolved, the exit code, the protections, the inputs
and the output files, downloads an output file, then clones the job and runs it again; a command
naming an undeclared input is refused with the placeholder named."""

import os
import re

import pytest
from playwright.sync_api import expect

from compute.jobs.models import Job
from compute.models import TargetKind
from compute.services import target_create
from environments.services import environment_create
from tests.conftest import login

pytestmark = [pytest.mark.browser, pytest.mark.worker]

SHOTS = os.environ.get("STUDIO_TEST_SCREENSHOTS")  # a folder to keep screenshots in, when set

# The bare "python" environment has no pandas: the script reads the CSV the studio puts beside
# the input's Parquet file.
TRAIN_PY = """\
import csv, os, sys
from collections import Counter

data, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with open(os.path.splitext(data)[0] + ".csv", newline="", encoding="utf-8") as fh:
    rows = list(csv.DictReader(fh))
counts = Counter(row["species"] for row in rows)
os.makedirs(os.path.join(out, "tables"))
with open(os.path.join(out, "summary.txt"), "w", encoding="utf-8") as fh:
    fh.write(f"rows={len(rows)}\\n")
    for species, count in counts.most_common(n):
        fh.write(f"{species}={count}\\n")
with open(os.path.join(out, "tables", "islands.csv"), "w", encoding="utf-8") as fh:
    fh.write("island,rows\\n" + "".join(f"{k},{v}\\n" for k, v in sorted(Counter(r["island"] for r in rows).items())))
print("summarised", len(rows), "rows; top", n, "; key", os.environ.get("API_KEY"))
"""

FILES = {
    "src/train.py": TRAIN_PY,
    "READ ME \u00fcber.md": "# Penguins \u2014 summary\n",
    "src/__pycache__/train.cpython-311.pyc": "junk",
}


@pytest.fixture
def cluster(owner, workspace):
    return target_create(
        actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu", min_nodes=0, max_nodes=1
    ).target


@pytest.fixture
def environment(owner, workspace):
    return environment_create(actor=owner, workspace=workspace, name="plain-python", base="python", requirements="")


def code_folder(tmp_path):
    folder = tmp_path / "penguin summary"
    for name, text in FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def shot(page, name):
    if SHOTS:
        page.screenshot(path=f"{SHOTS}/{name}.png", full_page=True)


@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
def test_a_folder_of_code_runs_on_a_data_version_its_output_downloads_and_a_clone_runs_again(
    new_page, contributor, workspace, cluster, environment, penguins, agent, broker, tmp_path
):
    page = new_page()
    login(page, "bob")
    page.goto(f"/w/{workspace.pk}/jobs/")
    page.get_by_role("link", name="+ Submit a job").click()
    page.get_by_role("link", name="Command").click()
    expect(page.get_by_test_id("command-code")).to_be_visible()
    expect(page.locator("[data-code-upload][data-ready]")).to_have_count(1)  # its script has set it up

    page.get_by_test_id("code-folder").set_input_files(str(code_folder(tmp_path)))
    expect(page.get_by_test_id("code-summary")).to_contain_text("2 files", timeout=20_000)

    page.get_by_label("Environment", exact=True).select_option(label=f"plain-python:{environment.version}")
    page.get_by_label("Data input 1: data version").select_option(str(penguins.pk))
    page.get_by_label("Values").fill("n=3")
    page.get_by_label("Model outputs").fill("")
    page.get_by_label("Other outputs").fill("report")
    page.get_by_text("Variables, secrets and network").click()
    page.get_by_label("Secret variables").fill("API_KEY=s3cret v\u00e4lue")
    # The help lists what the command may refer to, as declared so far.
    help_ = page.get_by_test_id("command-placeholders")
    for placeholder in ("${{inputs.train}}", "${{inputs.n}}", "${{outputs.report}}"):
        expect(help_).to_contain_text(placeholder)
    expect(help_).not_to_contain_text("${{outputs.model}}")
    page.get_by_label("Command").fill("python src/train.py ${{inputs.train}} ${{inputs.n}}")
    page.get_by_label("Command").press("End")
    help_.get_by_role("button", name="${{outputs.report}}").click()  # inserted at the cursor
    expect(page.get_by_label("Command")).to_have_value(
        "python src/train.py ${{inputs.train}} ${{inputs.n}} ${{outputs.report}}"
    )
    expect(page.get_by_test_id("command-unknown")).to_be_hidden()
    page.get_by_label("Compute target").select_option(str(cluster.pk))
    page.get_by_label("Time limit (seconds)").fill("600")
    page.get_by_label("Job name").fill("penguin summary \u00e9t\u00e9")
    shot(page, "command-submit")
    page.get_by_role("button", name="Submit").click()
    page.wait_for_url(re.compile(r"/jobs/\d+/$"))
    job = Job.objects.get(kind="command")
    assert job.spec["inputs"] == {
        "train": {"type": "data", "data_version_id": penguins.pk},
        "n": {"type": "integer", "value": 3},
    }
    assert job.spec["outputs"] == {"report": {"type": "folder"}}
    assert job.time_limit_seconds == 600 and job.target == cluster
    assert "s3cret" not in str(job.spec)

    # The page polls: Completed without a reload, then the command's own sections.
    expect(page.get_by_test_id("job-status")).to_have_text("Completed", timeout=180_000)
    expect(page.get_by_test_id("job-log")).to_contain_text("summarised 344 rows; top 3 ; key ***")
    expect(page.get_by_test_id("job-log")).not_to_contain_text("s3cret")
    resolved = page.get_by_test_id("command-resolved")
    expect(resolved).to_contain_text("python src/train.py /job/inputs/train/train.parquet 3 /job/outputs/report")
    expect(page.get_by_test_id("command-exit-code")).to_have_text("0")
    expect(page.get_by_test_id("job-time-limit")).to_have_text("600 s")
    expect(page.get_by_test_id("command-environment")).to_contain_text("plain-python")
    expect(page.get_by_test_id("command-code-link")).to_contain_text("penguin summary")
    protections = page.get_by_test_id("command-protections")
    expect(protections.locator("li").first).to_be_visible()
    expect(protections).to_contain_text("network")
    inputs = page.get_by_test_id("command-inputs")
    expect(inputs).to_contain_text("train")
    expect(inputs.get_by_role("link", name=re.compile("penguins"))).to_be_visible()
    expect(inputs).to_contain_text("3")
    outputs = page.get_by_test_id("command-output-report")
    expect(outputs).to_contain_text("summary.txt")
    expect(outputs).to_contain_text("tables/islands.csv")
    shot(page, "command-job")

    with page.expect_download() as download_info:
        outputs.get_by_role("link", name="summary.txt").click()
    download = download_info.value
    assert download.suggested_filename.endswith("summary.txt")
    text = open(download.path(), encoding="utf-8").read()
    assert text.splitlines()[0] == "rows=344"
    assert len(text.splitlines()) == 4  # rows, then the 3 species
    assert "Adelie=152" in text

    # Clone and edit: everything but the secret's value comes back.
    page.get_by_role("link", name="Clone and edit").click()
    expect(page.get_by_label("Command")).to_have_value(
        "python src/train.py ${{inputs.train}} ${{inputs.n}} ${{outputs.report}}"
    )
    expect(page.get_by_label("Data input 1: name")).to_have_value("train")
    expect(page.get_by_label("Data input 1: data version")).to_have_value(str(penguins.pk))
    expect(page.get_by_label("Values")).to_have_value("n=3")
    expect(page.get_by_label("Other outputs")).to_have_value("report")
    expect(page.get_by_label("Model outputs")).to_have_value("")
    expect(page.get_by_label("Secret variables")).to_have_value("API_KEY=")
    expect(page.get_by_label("Job name")).to_have_value("penguin summary \u00e9t\u00e9 (clone)")
    expect(page.get_by_test_id("code-summary")).to_contain_text("2 files")  # the same code, shown
    shot(page, "command-clone")
    page.get_by_label("Values").fill("n=1")
    page.get_by_label("Secret variables").fill("API_KEY=another")
    page.get_by_role("button", name="Submit").click()
    page.wait_for_url(re.compile(rf"/jobs/(?!{job.pk}/)\d+/$"))
    expect(page.get_by_test_id("job-status")).to_have_text("Completed", timeout=180_000)
    expect(page.get_by_test_id("command-resolved")).to_contain_text(
        "/job/inputs/train/train.parquet 1 /job/outputs/report"
    )
    second = Job.objects.exclude(pk=job.pk).get(kind="command")
    assert second.spec["code_snapshot_id"] == job.spec["code_snapshot_id"]
    assert second.spec["inputs"]["n"] == {"type": "integer", "value": 1}


def test_an_undeclared_placeholder_is_named_and_the_form_keeps_what_was_typed(
    new_page, contributor, workspace, cluster, environment, penguins, tmp_path
):
    page = new_page()
    login(page, "bob")
    page.goto(f"/w/{workspace.pk}/jobs/new/?kind=command")
    expect(page.locator("[data-code-upload][data-ready]")).to_have_count(1)  # its script has set it up
    page.get_by_test_id("code-folder").set_input_files(str(code_folder(tmp_path)))
    expect(page.get_by_test_id("code-summary")).to_contain_text("2 files", timeout=20_000)
    page.get_by_label("Data input 1: data version").select_option(str(penguins.pk))
    page.get_by_label("Command").fill("python src/train.py ${{inputs.train}} ${{inputs.trian}} ${{outputs.model}}")
    # Said as it is typed, and by the server on submit.
    expect(page.get_by_test_id("command-unknown")).to_have_text("Not declared above: ${{inputs.trian}}")
    page.get_by_role("button", name="Submit").click()
    error = page.get_by_role("alert").filter(has_text="${{inputs.trian}}")
    expect(error).to_be_visible()
    expect(error).not_to_contain_text("outputs.model")  # declared (the default model output)
    shot(page, "command-error")
    assert not Job.objects.exists()
    expect(page.get_by_label("Command")).to_have_value(
        "python src/train.py ${{inputs.train}} ${{inputs.trian}} ${{outputs.model}}"
    )
    expect(page.get_by_test_id("code-summary")).to_contain_text("2 files")  # the code is still chosen

    # A malformed one is named too.
    page.get_by_label("Command").fill("python x.py ${{input.train}}")
    page.get_by_role("button", name="Submit").click()
    expect(page.get_by_role("alert").filter(has_text="${{input.train}}")).to_be_visible()
