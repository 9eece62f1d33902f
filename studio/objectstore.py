"""Object storage for finished files: publish on the host that made a file, fetch on a host that lacks it.

Every file keeps its path under settings.ARTIFACT_ROOT (R1): the local directory is each host's
working copy, and with no STUDIO_STORAGE_URL it is the only copy (then `publish`, `ensure_local`
and `discard` do nothing). With it, the "artifacts" storage (django-storages' S3 backend, on AWS
S3, MinIO or another S3-compatible store) holds a copy of each published file under the same
relative key, with its SHA-256 in the object's metadata.

- `publish(path, sha256=...)` uploads a finished file (streamed; in parts above
  STUDIO_STORAGE_MULTIPART_BYTES).
- `ensure_local(path, sha256=...)` returns the path once the local file is there and matches the
  checksum (the one the caller recorded, else the one published): a missing or corrupted file is
  downloaded (streamed, in ranged parts) to a temporary name, verified, then moved into place, so a
  reader never sees half a file. A process remembers what it verified (size and modification time),
  so a file is hashed once per process, not on every use.
- `publish_folder` and `ensure_local_folder` do the same for every file of a folder (a model
  version's files).
- `discard(path)` removes the published copy of a deleted file.

Files are immutable once published (a data version's Parquet, a model version's files, a finished
job's outputs): a changed file is a new key, never a new body under an old one.
"""

import os
import secrets
import threading
from collections import OrderedDict
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import storages

from studio.hashing import sha256_file
from studio.storage_errors import ObjectCorrupt, ObjectMissing, ObjectStoreError  # noqa: F401 - ObjectStoreError: raised through the backend, named from here too

VERIFIED_ENTRIES = 10_000


# --- What this process hashed: path -> (size, mtime_ns, sha256, matches the store) ----------------
_verified: OrderedDict[str, tuple[int, int, str, bool]] = OrderedDict()
_verified_lock = threading.Lock()


def _remember(path: Path, sha256: str, *, matches_store: bool = False) -> None:
    stat = path.stat()
    with _verified_lock:
        _verified[str(path)] = (stat.st_size, stat.st_mtime_ns, sha256, matches_store)
        _verified.move_to_end(str(path))
        while len(_verified) > VERIFIED_ENTRIES:
            _verified.popitem(last=False)


def _verified_unchanged(path: Path) -> bool:
    stat = path.stat()
    with _verified_lock:
        known = _verified.get(str(path))
    return bool(known) and known[:2] == (stat.st_size, stat.st_mtime_ns) and known[3]


def _local_sha256(path: Path) -> str:
    """The file's SHA-256, hashed only when it changed since this process last hashed it."""
    stat = path.stat()
    with _verified_lock:
        known = _verified.get(str(path))
    if known and known[:2] == (stat.st_size, stat.st_mtime_ns):
        return known[2]
    sha256 = sha256_file(path)
    _remember(path, sha256)
    return sha256


# --- The API --------------------------------------------------------------------------------------
def enabled() -> bool:
    return "artifacts" in settings.STORAGES


def _storage():
    """The "artifacts" storage: objectstore_s3.ArtifactStorage, which Django imports on first use."""
    return storages["artifacts"]


def key_for(path: Path) -> str:
    """The object's key: the path relative to the artifact root (never a path outside it, R1)."""
    try:
        return Path(path).resolve().relative_to(Path(settings.ARTIFACT_ROOT).resolve()).as_posix()
    except ValueError:
        raise ValueError(f"{path} is not under the artifact root") from None


def publish(path: Path, *, sha256: str = "") -> None:
    """Upload a finished file to object storage with its SHA-256 (hashed here when not given)."""
    if not enabled():
        return
    path = Path(path)
    sha256 = sha256 or _local_sha256(path)
    storage = _storage()
    key = key_for(path)
    with storage.failing_as(f"Could not publish {key} to {storage.describe(key)}"), path.open("rb") as fh:
        content = File(fh, name=key)
        content.sha256 = sha256
        storage.save(key, content)
    _remember(path, sha256, matches_store=True)


def ensure_local(path: Path, *, sha256: str = "") -> Path:
    """The path, once this host has the file and it matches `sha256` (else the published checksum).
    Raises ObjectMissing when no copy exists, ObjectCorrupt when the fetched copy does not match."""
    path = Path(path)
    if not enabled():
        return path
    if sha256 and path.is_file() and _local_sha256(path) == sha256:
        return path
    if not sha256 and path.is_file() and _verified_unchanged(path):
        return path  # checked against the store earlier in this process, unchanged since
    storage = _storage()
    key = key_for(path)
    where = storage.describe(key)
    published = storage.published_sha256(key)
    if published is None:
        if path.is_file() and not sha256:
            return path  # made here and not published (yet): nothing to compare with
        raise ObjectMissing(f"{key} is not on this host nor in object storage ({where}).")
    expected = sha256 or published
    if path.is_file() and expected and _local_sha256(path) == expected:
        _remember(path, expected, matches_store=True)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}.fetching")
    try:
        with storage.failing_as(f"Could not download {where}"), partial.open("wb") as fh:
            # ranged GETs, written as they come
            storage.object_for(key).download_fileobj(fh, Config=storage.transfer_config)
        got = sha256_file(partial)
        if expected and got != expected:
            raise ObjectCorrupt(f"{where} does not match its checksum (SHA-256 {got}, expected {expected}).")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    _remember(path, got, matches_store=True)
    return path


_folders_ready: set[str] = set()


def ensure_local_folder(folder: Path, *, sha256s: dict[str, str] | None = None) -> Path:
    """The folder, once this host has every file published under it (checked against `sha256s`
    by file name where given, else the published checksums). A folder is immutable once published,
    so a process checks it once. Raises ObjectMissing when neither this host nor the store has it."""
    folder = Path(folder)
    if not enabled() or str(folder) in _folders_ready:
        return folder
    storage = _storage()
    key = key_for(folder)
    with storage.failing_as(f"Could not list {storage.describe(key)}/"):
        _, names = storage.listdir(key)
    if not names:
        if folder.is_dir() and any(folder.iterdir()):
            return folder  # made here and not published: nothing to compare with
        raise ObjectMissing(f"{key}/ is not on this host nor in object storage ({storage.describe(key)}/).")
    for name in names:
        ensure_local(folder / name, sha256=(sha256s or {}).get(name, ""))
    _folders_ready.add(str(folder))
    return folder


def publish_folder(folder: Path, *, sha256s: dict[str, str] | None = None) -> None:
    """Publish every file of a finished folder (not its subfolders)."""
    if not enabled():
        return
    for path in sorted(Path(folder).iterdir()):
        if path.is_file():
            publish(path, sha256=(sha256s or {}).get(path.name, ""))


def discard(path: Path) -> None:
    """Remove the published copy of a deleted file (a missing one is no error)."""
    if not enabled():
        return
    key, storage = key_for(path), _storage()
    with storage.failing_as(f"Could not delete {key} from object storage"):
        storage.delete(key)


def discard_folder(folder: Path) -> None:
    """Remove the published copies of every file of a deleted folder."""
    if not enabled():
        return
    key, storage = key_for(folder), _storage()
    with storage.failing_as(f"Could not delete {key}/ from object storage"):
        _, names = storage.listdir(key)
        for name in names:
            storage.delete(f"{key}/{name}")
    _folders_ready.discard(str(folder))
