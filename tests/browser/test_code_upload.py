"""In Chromium: a folder chosen in the code upload box (packed into a tar by the page) becomes a
snapshot whose files the snapshot page lists and shows; the same folder again is stored once; an
archive goes through the same box; a hostile archive is refused with the member named."""

import io
import zipfile

import pytest
from playwright.sync_api import expect

from commands.models import CodeSnapshot
from tests.conftest import login

pytestmark = [pytest.mark.browser]

FILES = {
    "train.py": "import sys\nprint('<b>training</b>', sys.argv)\n",
    "my lib/caf\u00e9 \u00fcber.py": "X = '\u65e5\u672c\u8a9e'\n",
    "__pycache__/train.cpython-311.pyc": "junk",
    ".git/HEAD": "ref: refs/heads/main\n",
}


def test_a_chosen_folder_becomes_a_snapshot_with_its_files_shown(new_page, contributor, workspace, tmp_path):
    folder = tmp_path / "my project"
    for name, text in FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    (folder / "weights.bin").write_bytes(b"\0\1\2\3" * 100)

    page = new_page()
    login(page, "bob")
    page.goto(f"/w/{workspace.pk}/code/")
    expect(page.locator("[data-code-upload][data-ready]")).to_have_count(1)  # its script has set it up
    page.get_by_test_id("code-folder").set_input_files(str(folder))
    size = len(FILES["train.py"].encode()) + len(FILES["my lib/caf\u00e9 \u00fcber.py"].encode()) + 400
    expect(page.get_by_test_id("code-summary")).to_have_text(f"3 files, {size} B (stored once)", timeout=20000)
    snapshot = CodeSnapshot.objects.get(workspace=workspace)
    assert snapshot.name == "my project"
    assert [f["path"] for f in snapshot.files] == ["my lib/caf\u00e9 \u00fcber.py", "train.py", "weights.bin"]
    assert page.locator("input[name=code_snapshot_id]").input_value() == str(snapshot.pk)

    # The same folder again: the same snapshot, said so.
    page.get_by_test_id("code-folder").set_input_files(str(folder))
    expect(page.get_by_test_id("code-result")).to_contain_text("already here")
    assert CodeSnapshot.objects.filter(workspace=workspace).count() == 1

    page.get_by_test_id("code-open").click()
    files = page.get_by_test_id("code-files")
    expect(files).to_contain_text("my lib/caf\u00e9 \u00fcber.py")
    expect(files).not_to_contain_text(".git")
    page.get_by_role("link", name="train.py").click()
    expect(page.get_by_test_id("code-text")).to_have_text(FILES["train.py"].rstrip("\n"))
    page.get_by_role("link", name="weights.bin").click()
    expect(page.get_by_test_id("code-binary")).to_contain_text("binary file")


def test_an_archive_goes_through_the_same_box_and_a_hostile_one_is_refused(new_page, contributor, workspace, tmp_path):
    good = tmp_path / "tool kit.zip"
    with zipfile.ZipFile(good, "w") as zf:
        zf.writestr("tool kit/run.py", "print(1)\n")
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w") as zf:
        zf.writestr("../../escape.py", "print('out')\n")
    evil = tmp_path / "evil.zip"
    evil.write_bytes(raw.getvalue())

    page = new_page()
    login(page, "bob")
    page.goto(f"/w/{workspace.pk}/code/")
    expect(page.locator("[data-code-upload][data-ready]")).to_have_count(1)  # its script has set it up
    page.get_by_test_id("code-archive").set_input_files(str(evil))
    expect(page.get_by_test_id("code-error")).to_contain_text("../../escape.py")
    assert not CodeSnapshot.objects.exists()
    page.get_by_test_id("code-archive").set_input_files(str(good))
    expect(page.get_by_test_id("code-summary")).to_have_text("1 file, 9 B (stored once)")
    assert CodeSnapshot.objects.get(workspace=workspace).name == "tool kit"


def test_files_dropped_on_the_zone_are_uploaded_as_a_folder(new_page, contributor, workspace):
    page = new_page()
    login(page, "bob")
    page.goto(f"/w/{workspace.pk}/code/")
    # A drop as a page script makes it: files without a folder entry (the fallback path).
    page.get_by_test_id("code-upload").locator("[data-code-dropzone]").evaluate(
        """zone => {
            const data = new DataTransfer();
            data.items.add(new File(["print('a')\\n"], "a b.py"));
            data.items.add(new File(["X = 1\\n"], "conf.py"));
            zone.dispatchEvent(new DragEvent("drop", { dataTransfer: data, bubbles: true, cancelable: true }));
        }"""
    )
    expect(page.get_by_test_id("code-summary")).to_contain_text("2 files")
    assert [f["path"] for f in CodeSnapshot.objects.get(workspace=workspace).files] == ["a b.py", "conf.py"]
