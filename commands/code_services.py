"""Code snapshots: a folder of code uploaded as an archive or as its files, stored once per content.

Both ways unpack into a staging folder next to the final place (the archive engine refuses every
hostile member), hash the manifest, and then either return the snapshot that already has that
content or move the folder into place and create the row. Whatever fails, the staging folder goes.
"""

import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.http import Http404

from commands.archive import ArchiveError, FileEntry, common_folder, extract, extract_files, manifest_hash
from commands.models import CodeSnapshot
from studio import objectstore
from studio.validation import model_validate
from workspaces.models import Workspace
from workspaces.policy import Action, require
from workspaces.services import activity_record, workspace_artifact_dir, workspace_storage_check

# An archive may expand to at most this many times its own size (a compression bomb otherwise).
CODE_MAX_RATIO = 100
# The viewer shows at most this much of a file.
VIEW_MAX_BYTES = 200 * 1024
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")


def code_root(workspace_id: int) -> Path:
    return workspace_artifact_dir(workspace_id) / "code"


def code_snapshot_dir(snapshot: CodeSnapshot) -> Path:
    """Where a snapshot's files live, computed from its row (R1)."""
    return code_root(snapshot.workspace_id) / snapshot.sha256


def _file_path(folder: Path, relative: str) -> Path:
    return folder.joinpath(*relative.split("/"))


def code_snapshot_local(snapshot: CodeSnapshot) -> Path:
    """The snapshot's folder on this host: with object storage, files this host lacks (or whose
    copy does not match the manifest's SHA-256) are fetched and checked first."""
    folder = code_snapshot_dir(snapshot)
    for entry in snapshot.files:
        objectstore.ensure_local(_file_path(folder, entry["path"]), sha256=entry["sha256"])
    return folder


def _staging(workspace: Workspace) -> Path:
    # On the same file system as the final place, so that taking it is one rename.
    path = code_root(workspace.pk) / ".staging" / uuid.uuid4().hex
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def code_staging_sweep(*, max_age_seconds: int | None = None) -> int:
    """Remove the staging folders a killed process left (each request removes its own on every
    way out), older than `max_age_seconds` (default STUDIO_UPLOAD_STALE_SECONDS: unpacking at most
    STUDIO_CODE_MAX_BYTES takes seconds). Returns how many. For a periodic task."""
    if max_age_seconds is None:
        max_age_seconds = settings.STUDIO_UPLOAD_STALE_SECONDS
    removed = 0
    for path in (settings.ARTIFACT_ROOT / "workspaces").glob("*/code/.staging/*"):
        try:
            if time.time() - path.stat().st_mtime > max_age_seconds:
                shutil.rmtree(path, ignore_errors=True)
                removed += 1
        except FileNotFoundError:  # its request finished meanwhile
            continue
    return removed


def default_code_name(filename: str) -> str:
    stem = Path(filename or "code").name
    for suffix in ARCHIVE_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    stem = "".join(c for c in stem if c.isprintable() and c not in "/\\").strip()
    return stem[:200] or "code"


def _clean_name(name: str) -> str:
    name = (name or "").strip() if isinstance(name, str) else ""
    model_validate(CodeSnapshot(name=name), fields=["name"])
    return name


def _limits() -> dict:
    return {"max_files": settings.STUDIO_CODE_MAX_FILES, "max_bytes": settings.STUDIO_CODE_MAX_BYTES}


def _store(*, actor, workspace: Workspace, name: str, staging: Path, entries: list[FileEntry]) -> CodeSnapshot:
    """Keep the unpacked folder as the snapshot of its content, or return the one that has it."""
    if not entries:
        raise ValidationError({"file": ["The upload holds no file (junk such as .git/ and __pycache__/ is skipped)."]})
    sha256 = manifest_hash(entries)
    existing = CodeSnapshot.objects.filter(workspace=workspace, sha256=sha256).first()
    if existing is not None:
        existing.already_stored = True
        return existing
    size = sum(e.size for e in entries)
    workspace_storage_check(workspace=workspace, adding=max(size, 1))
    snapshot = CodeSnapshot(
        workspace=workspace,
        sha256=sha256,
        name=name,
        size=size,
        file_count=len(entries),
        files=[e.to_json() for e in entries],
        created_by=actor,
    )
    final = code_snapshot_dir(snapshot)
    try:
        with transaction.atomic():
            snapshot.save()  # the unique constraint lets one of two identical uploads in
            # The row is ours, so whatever is at the final place is a leftover of a crash: replace it.
            shutil.rmtree(final, ignore_errors=True)
            staging.rename(final)
            for entry in entries:  # with object storage: before the snapshot exists for other hosts
                objectstore.publish(_file_path(final, entry.path), sha256=entry.sha256)
            activity_record(
                workspace=workspace,
                actor=actor,
                verb="uploaded",
                summary=f"{actor} uploaded code {name} ({len(entries)} files)",
            )
    except IntegrityError:
        existing = CodeSnapshot.objects.filter(workspace=workspace, sha256=sha256).first()
        if existing is None:
            raise
        existing.already_stored = True
        return existing
    except Exception:
        if not CodeSnapshot.objects.filter(workspace=workspace, sha256=sha256).exists():
            shutil.rmtree(final, ignore_errors=True)
        raise
    snapshot.already_stored = False
    return snapshot


def code_snapshot_create_from_archive(
    *, actor, workspace: Workspace, path: Path, filename: str, name: str = ""
) -> CodeSnapshot:
    """A snapshot from a .zip, .tar.gz/.tgz or .tar archive at `path` (the caller's file: it is
    read, not taken), named `name` or after `filename`. Returns the workspace's existing snapshot when one
    has the same files (its `already_stored` is then True). Contributors; raises ValidationError
    on a refused archive (naming the member), StorageQuotaExceeded past the quota."""
    require(actor, workspace, Action.WRITE)
    name = _clean_name(name or default_code_name(filename))
    staging = _staging(workspace)
    try:
        try:
            entries = extract(Path(path), staging, max_ratio=CODE_MAX_RATIO, **_limits())
        except ArchiveError as exc:
            raise ValidationError({"file": [exc.message]}) from None
        return _store(actor=actor, workspace=workspace, name=name, staging=staging, entries=entries)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _opener(source: Path | UploadedFile) -> Callable[[], BinaryIO]:
    if isinstance(source, (str, Path)):
        return lambda: open(source, "rb")  # noqa: SIM115 - the engine closes it
    if hasattr(source, "temporary_file_path"):
        return lambda: open(source.temporary_file_path(), "rb")  # noqa: SIM115 - the engine closes it

    def reopen():
        source.seek(0)
        return _Unclosed(source)

    return reopen


class _Unclosed:
    """An in-memory upload read by the engine, left open for Django to close."""

    def __init__(self, file):
        self.file = file

    def read(self, size=-1):
        return self.file.read(size)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def code_snapshot_create_from_files(
    *, actor, workspace: Workspace, name: str, files: list[tuple[str, Path | UploadedFile]]
) -> CodeSnapshot:
    """A snapshot from a folder's files, each with its path relative to the folder (the same
    path rules as an archive's members). `name` defaults to the folder's name. Otherwise as
    `code_snapshot_create_from_archive`."""
    require(actor, workspace, Action.WRITE)
    if not files:
        raise ValidationError({"files": ["Send at least one file."]})
    name = _clean_name(name or default_code_name(common_folder(p for p, _ in files) or "code"))
    staging = _staging(workspace)
    try:
        try:
            entries = extract_files([(p, _opener(f)) for p, f in files], staging, **_limits())
        except ArchiveError as exc:
            raise ValidationError({"files": [exc.message]}) from None
        return _store(actor=actor, workspace=workspace, name=name, staging=staging, entries=entries)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def code_snapshot_entry(*, snapshot: CodeSnapshot, path: str) -> dict:
    """The manifest's entry for `path`, or 404: only the snapshot's own files are ever read (R1)."""
    for entry in snapshot.files:
        if entry["path"] == path:
            return entry
    raise Http404("No such file in this code snapshot.")


def code_snapshot_file_path(*, snapshot: CodeSnapshot, path: str) -> Path:
    """The file on this host (fetched from object storage where it is missing)."""
    entry = code_snapshot_entry(snapshot=snapshot, path=path)
    return objectstore.ensure_local(_file_path(code_snapshot_dir(snapshot), entry["path"]), sha256=entry["sha256"])


def code_snapshot_file(*, snapshot: CodeSnapshot, path: str) -> tuple[str | None, int]:
    """For the viewer: the file's text (its first VIEW_MAX_BYTES) or None when it is binary, and
    its full size. 404 for a path that is not in the snapshot's manifest."""
    file_path = code_snapshot_file_path(snapshot=snapshot, path=path)
    entry = code_snapshot_entry(snapshot=snapshot, path=path)
    with open(file_path, "rb") as fh:
        head = fh.read(VIEW_MAX_BYTES)
    if b"\0" in head[:8192]:
        return None, entry["size"]
    for cut in range(4):  # a multi-byte character may straddle the cut
        try:
            return head[: len(head) - cut].decode("utf-8"), entry["size"]
        except UnicodeDecodeError:
            if len(head) < entry["size"] and cut < 3:
                continue
            break
    return None, entry["size"]
