"""Code snapshot services: stored once per content, roles, quota, the viewer, hostile archives."""

import io
import os
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.http import Http404

from commands.code_services import (
    code_snapshot_create_from_archive,
    code_snapshot_create_from_files,
    code_snapshot_dir,
    code_snapshot_file,
    code_staging_sweep,
)
from commands.models import CodeSnapshot
from workspaces.selectors import workspace_storage_used
from workspaces.services import StorageQuotaExceeded

pytestmark = pytest.mark.django_db

FILES = {
    "train.py": b"import sys\nprint('training', sys.argv)\n",
    "my lib/\u00fcber caf\u00e9.py": "x = '\u65e5\u672c\u8a9e'\n".encode(),
    "weights.bin": bytes(range(256)) * 8,
}


def zip_of(path: Path, files=FILES, top="my project") -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(f"{top}/{name}", data)
    return path


def tgz_of(path: Path, files=FILES, top="my project") -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def folder_of(root: Path, files=FILES) -> list[tuple[str, Path]]:
    out = []
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
        out.append((f"{root.name}/{name}", root / name))
    return out


def leftovers(workspace) -> list[Path]:
    staging = code_snapshot_dir(CodeSnapshot(workspace=workspace, sha256="x")).parent / ".staging"
    return list(staging.iterdir()) if staging.exists() else []


def test_the_same_code_as_zip_tar_gz_and_folder_is_one_snapshot(contributor, workspace, tmp_path):
    first = code_snapshot_create_from_archive(
        actor=contributor, workspace=workspace, path=zip_of(tmp_path / "c.zip"), filename="my project.zip"
    )
    assert not first.already_stored
    again = code_snapshot_create_from_archive(
        actor=contributor, workspace=workspace, path=tgz_of(tmp_path / "c.tgz"), filename="other.tar.gz"
    )
    folder = code_snapshot_create_from_files(
        actor=contributor, workspace=workspace, name="", files=folder_of(tmp_path / "my project")
    )
    assert again.pk == folder.pk == first.pk and again.already_stored and folder.already_stored
    assert CodeSnapshot.objects.filter(workspace=workspace).count() == 1
    first.refresh_from_db()
    assert first.name == "my project" and first.file_count == 3 and first.size == sum(map(len, FILES.values()))
    assert [f["path"] for f in first.files] == sorted(FILES)
    stored = code_snapshot_dir(first)
    assert {p.relative_to(stored).as_posix(): p.read_bytes() for p in stored.rglob("*") if p.is_file()} == FILES
    assert workspace_storage_used(workspace=workspace) == first.size  # registered with the quota
    assert leftovers(workspace) == []


def test_different_code_is_another_snapshot_and_workspaces_do_not_share(
    contributor, outsider, workspace, other_workspace, tmp_path
):
    one = code_snapshot_create_from_archive(
        actor=contributor, workspace=workspace, path=zip_of(tmp_path / "a.zip"), filename="a.zip"
    )
    two = code_snapshot_create_from_archive(
        actor=contributor,
        workspace=workspace,
        path=zip_of(tmp_path / "b.zip", {**FILES, "train.py": b"print(2)\n"}),
        filename="b.zip",
    )
    theirs = code_snapshot_create_from_archive(
        actor=outsider, workspace=other_workspace, path=zip_of(tmp_path / "c.zip"), filename="c.zip"
    )
    assert len({one.pk, two.pk, theirs.pk}) == 3 and one.sha256 == theirs.sha256 != two.sha256
    assert not theirs.already_stored


def test_a_reader_cannot_upload_code_and_an_outsider_does_not_see_the_workspace(reader, outsider, workspace, tmp_path):
    with pytest.raises(PermissionDenied):
        code_snapshot_create_from_archive(
            actor=reader, workspace=workspace, path=zip_of(tmp_path / "a.zip"), filename="a.zip"
        )
    with pytest.raises(Http404):
        code_snapshot_create_from_files(actor=outsider, workspace=workspace, name="x", files=folder_of(tmp_path / "f"))
    assert not CodeSnapshot.objects.exists()


def test_a_hostile_archive_is_refused_naming_the_member_and_leaves_nothing(contributor, workspace, tmp_path):
    archive = tmp_path / "evil.tgz"
    with tarfile.open(archive, "w:gz") as tf:
        ok = tarfile.TarInfo("project/ok.py")
        ok.size = 2
        tf.addfile(ok, io.BytesIO(b"ok"))
        link = tarfile.TarInfo("project/id_rsa")
        link.type = tarfile.SYMTYPE
        link.linkname = "/root/.ssh/id_rsa"
        tf.addfile(link)
    with pytest.raises(ValidationError) as caught:
        code_snapshot_create_from_archive(actor=contributor, workspace=workspace, path=archive, filename="evil.tgz")
    assert "id_rsa" in caught.value.messages[0] and "symbolic link" in caught.value.messages[0]
    assert not CodeSnapshot.objects.exists() and leftovers(workspace) == []
    code_root = code_snapshot_dir(CodeSnapshot(workspace=workspace, sha256="x")).parent
    assert [p.name for p in code_root.iterdir()] == [".staging"]


def test_limits_from_settings_and_the_storage_quota_refuse_code(contributor, workspace, tmp_path, settings):
    settings.STUDIO_CODE_MAX_FILES = 2
    with pytest.raises(ValidationError, match="More than 2 files"):
        code_snapshot_create_from_archive(
            actor=contributor, workspace=workspace, path=zip_of(tmp_path / "a.zip"), filename="a.zip"
        )
    settings.STUDIO_CODE_MAX_FILES = 10
    workspace.storage_quota_bytes = 100
    workspace.save()
    with pytest.raises(StorageQuotaExceeded):
        code_snapshot_create_from_files(
            actor=contributor, workspace=workspace, name="x", files=folder_of(tmp_path / "f")
        )
    assert not CodeSnapshot.objects.exists() and leftovers(workspace) == []


def test_an_empty_upload_and_a_bad_name_are_refused(contributor, workspace, tmp_path):
    with pytest.raises(ValidationError, match="no file"):
        code_snapshot_create_from_files(
            actor=contributor,
            workspace=workspace,
            name="x",
            files=[(".git/HEAD", tmp_path / "h")],
        )
    with pytest.raises(ValidationError):
        code_snapshot_create_from_files(
            actor=contributor, workspace=workspace, name="bad\x07name", files=folder_of(tmp_path / "f")
        )
    assert not CodeSnapshot.objects.exists()


def test_the_viewer_shows_text_says_binary_and_knows_only_manifest_paths(contributor, workspace, tmp_path):
    big = ("# é\n" * 60_000).encode()  # 300 KB of text with two-byte characters at the cut
    snapshot = code_snapshot_create_from_archive(
        actor=contributor,
        workspace=workspace,
        path=zip_of(tmp_path / "a.zip", {**FILES, "big.py": big}),
        filename="a.zip",
    )
    text, size = code_snapshot_file(snapshot=snapshot, path="my lib/\u00fcber caf\u00e9.py")
    assert text == FILES["my lib/\u00fcber caf\u00e9.py"].decode() and size == len(
        FILES["my lib/\u00fcber caf\u00e9.py"]
    )
    assert code_snapshot_file(snapshot=snapshot, path="weights.bin") == (None, len(FILES["weights.bin"]))
    text, size = code_snapshot_file(snapshot=snapshot, path="big.py")
    assert size == len(big) and 190_000 < len(text.encode()) <= 200 * 1024 and big.decode().startswith(text)
    for path in ("nope.py", "../a.zip", "/etc/passwd", "my lib", ""):
        with pytest.raises(Http404):
            code_snapshot_file(snapshot=snapshot, path=path)


def test_a_leftover_folder_from_a_crash_is_replaced_and_stale_staging_is_swept(contributor, workspace, tmp_path):
    archive = zip_of(tmp_path / "a.zip")
    first = code_snapshot_create_from_archive(actor=contributor, workspace=workspace, path=archive, filename="a.zip")
    folder = code_snapshot_dir(first)
    CodeSnapshot.objects.all().delete()  # the row is gone, a half-written folder stays (a crash)
    (folder / "train.py").write_bytes(b"half")
    (folder / "stray.py").write_bytes(b"x")
    again = code_snapshot_create_from_archive(actor=contributor, workspace=workspace, path=archive, filename="a.zip")
    assert code_snapshot_dir(again) == folder and not (folder / "stray.py").exists()
    assert (folder / "train.py").read_bytes() == FILES["train.py"]

    staging = folder.parent / ".staging"
    old, fresh = staging / "old", staging / "fresh"
    for path in (old, fresh):
        (path / "sub").mkdir(parents=True)
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    assert code_staging_sweep(max_age_seconds=600) == 1
    assert not old.exists() and fresh.exists()


def test_files_in_memory_and_on_disk_make_one_folder(contributor, workspace, tmp_path):
    (tmp_path / "b.py").write_bytes(b"b")
    files = [("proj/a.py", SimpleUploadedFile("a.py", b"a")), ("proj/sub/b.py", tmp_path / "b.py")]
    snapshot = code_snapshot_create_from_files(actor=contributor, workspace=workspace, name="", files=files)
    assert snapshot.name == "proj" and [f["path"] for f in snapshot.files] == ["a.py", "sub/b.py"]
    assert (code_snapshot_dir(snapshot) / "a.py").read_bytes() == b"a"


@pytest.mark.django_db(transaction=True)
def test_identical_uploads_racing_make_one_snapshot(contributor, workspace, tmp_path):
    """Six requests (threads with their own database connections) upload the same code at once."""
    archive = zip_of(tmp_path / "a.zip")
    barrier = threading.Barrier(6)
    outcomes: list[tuple[int, bool]] = []
    errors: list[BaseException] = []

    def race():
        barrier.wait()
        try:
            snapshot = code_snapshot_create_from_archive(
                actor=contributor, workspace=workspace, path=archive, filename="a.zip"
            )
            outcomes.append((snapshot.pk, snapshot.already_stored))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=race) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == [] and len(outcomes) == 6
    snapshot = CodeSnapshot.objects.get(workspace=workspace)
    assert {pk for pk, _ in outcomes} == {snapshot.pk}
    assert sorted(stored for _, stored in outcomes) == [False] + [True] * 5
    folder = code_snapshot_dir(snapshot)
    assert {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()} == FILES
    assert leftovers(workspace) == []
