"""Uploads: admitted before a byte of the body is read, then streamed to a staging file (R9).

Before the body is touched, the view has authenticated the user, checked CSRF on the header
token, membership and role; `upload_admitted` then checks the size announced by Content-Length,
the workspace's storage quota and the user's concurrent uploads. Only then is the body parsed,
straight to a staging file under the artifact root, never whole into memory. The size cap is
enforced while streaming (Django has no total cap of its own). Whatever happens next (a refusal,
an interrupted body, an error), every staged file the service did not take is removed, and a
periodic sweep removes what a killed process left. Files get generated names (R1); the name the
user's file had is kept only as text for display.
"""

import hashlib
import queue
import threading
import time
import uuid
from contextlib import contextmanager, suppress
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, SkipFile, StopFutureHandlers, StopUpload
from django.http import UnreadablePostError
from django.http.multipartparser import MultiPartParserError

from data.dataio.arriving import mark_written
from data.services import (
    TooManyUploads,
    ingest_receive_refuse,
    ingest_receive_start,
    ingest_upload_path,
    upload_slot_acquire,
    upload_slot_release,
    upload_slot_touch,
)
from workspaces.services import StorageQuotaExceeded, workspace_storage_check

# Room for the multipart framing and the form's other fields around the file itself.
MULTIPART_ALLOWANCE = 64 * 1024
# An upload in progress marks its slot as alive this often.
SLOT_TOUCH_SECONDS = 30
# Chunks (1 MiB each) received and not yet written: the memory an upload may hold.
_CHUNKS_AHEAD = 8
# How fast a node parses an upload, on the slow side: a large upload's ingest starts once the rest
# of the upload should take no longer than parsing the whole file, so it ends about with the
# upload, without holding a node while a slow link trickles in.
PARSE_BYTES_PER_SECOND = 50e6
_RATE_AFTER_BYTES = 4 << 20  # received before the link's speed is judged (or a quarter of the file)


def ingest_starts_now(*, received: int, expected: int, elapsed: float) -> bool:
    """Whether an upload that has `received` of `expected` bytes in `elapsed` seconds should be
    ingested from now on, as the rest arrives."""
    if received <= 0 or received < min(_RATE_AFTER_BYTES, expected // 4):
        return False
    rest_seconds = (expected - received) * elapsed / received
    return rest_seconds <= expected / PARSE_BYTES_PER_SECOND


def staging_dir() -> Path:
    path = Path(settings.ARTIFACT_ROOT) / "staging"
    path.mkdir(parents=True, exist_ok=True)
    return path


class StagedUpload(UploadedFile):
    """An uploaded file already on disk at `path` (closed; read it from the path)."""

    def __init__(self, path: Path, name: str, size: int, content_type: str | None, sha256: str = "", ingest=None):
        super().__init__(file=None, name=name, content_type=content_type, size=size)
        self.path = path
        self.sha256 = sha256  # of the bytes received, computed while streaming
        self.ingest = ingest  # the Ingest that read it as it arrived (data_upload accepts or refuses it)

    def temporary_file_path(self) -> str:
        return str(self.path)

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


class _ChunkWriter(threading.Thread):
    """Writes and hashes an upload's chunks on a thread of its own: file writes and hashlib let go
    of the GIL, so the request's thread parses the next chunk meanwhile."""

    def __init__(self, fh, *, hashed: bool) -> None:
        super().__init__(name="upload-writer", daemon=True)
        self.fh = fh
        self.digest = hashlib.sha256() if hashed else None
        self.error: Exception | None = None
        self._chunks: queue.Queue = queue.Queue(maxsize=_CHUNKS_AHEAD)
        self._finished = False
        self.start()

    def run(self) -> None:
        while (chunk := self._chunks.get()) is not None:
            if self.error is None:
                try:
                    self.fh.write(chunk)
                    if self.digest is not None:
                        self.digest.update(chunk)
                except Exception as exc:  # noqa: BLE001 - a full disk, say: raised on the request's thread
                    self.error = exc  # (with the next chunk, or at the end); the thread goes on taking chunks

    def put(self, chunk: bytes) -> None:
        if self.error is not None:
            raise self.error
        self._chunks.put(chunk)

    def finish(self) -> str:
        """Wait for every chunk to be written; the SHA-256 of them all ("" when not hashed)."""
        if not self._finished:
            self._finished = True
            self._chunks.put(None)
            self.join()
        if self.error is not None:
            raise self.error
        return self.digest.hexdigest() if self.digest is not None else ""


class StagedUploadHandler(FileUploadHandler):
    """Writes each uploaded file to staging as it arrives, counting bytes against the cap, and
    remembers every file it made so that `discard_all()` can remove what nobody took."""

    chunk_size = 1024 * 1024

    field_names = frozenset({"file"})  # the form's parts that are files to stage; others are skipped
    hashed = True  # the SHA-256 of the bytes received (uploads are deduplicated and verified by it)
    staged_class = StagedUpload

    def __init__(self, request=None, max_bytes: int | None = None, slot=None, receive_into=None):
        super().__init__(request)
        self.max_bytes = max_bytes or settings.STUDIO_UPLOAD_MAX_BYTES
        self.too_large = False
        self.slot = slot
        # receive_into(file name, staged path, expected size) -> the Ingest that reads the file as
        # the rest arrives (its file moved to the ingest's path), or None: the upload stays staged.
        self.receive_into = receive_into
        self.receiving = None
        self.receiving_path: Path | None = None
        self.staged: list[Path] = []
        self.fh = None
        self.touched = time.monotonic()
        self.expected = _content_length(request) if request is not None else 0  # admitted already
        self.first_chunk: tuple[int, float] | None = None  # bytes received with it, and when

    def new_file(self, field_name, *args, **kwargs):
        if field_name not in self.field_names:
            raise SkipFile()  # only the form's file fields are ever used: other parts are not stored
        super().new_file(field_name, *args, **kwargs)
        self.path = staging_dir() / f"{uuid.uuid4().hex}.part"
        self.staged.append(self.path)
        self.fh = open(self.path, "wb")  # noqa: SIM115 - closed in file_complete/upload_interrupted/discard_all
        self.size = 0
        self.writer = _ChunkWriter(self.fh, hashed=self.hashed)
        raise StopFutureHandlers()

    def receive_data_chunk(self, raw_data, start):
        self.size += len(raw_data)
        if self.size > self.max_bytes:
            self._close()
            self.path.unlink(missing_ok=True)
            self._refuse()
        self.writer.put(raw_data)
        if self.receive_into is not None and len(self.staged) == 1:  # the form's first file only
            self._maybe_ingest_as_it_arrives()
        if self.slot is not None and time.monotonic() - self.touched > SLOT_TOUCH_SECONDS:
            upload_slot_touch(slot=self.slot)
            self.touched = time.monotonic()
        return None

    def _maybe_ingest_as_it_arrives(self) -> None:
        now = time.monotonic()
        if self.first_chunk is None:
            # The first chunk may have waited in socket buffers: the link's speed is judged after it.
            self.first_chunk = (self.size, now)
            return
        first_bytes, first_at = self.first_chunk
        if not ingest_starts_now(
            received=self.size - first_bytes, expected=self.expected - first_bytes, elapsed=now - first_at
        ):
            return
        receive_into, self.receive_into = self.receive_into, None  # asked once
        # The writer keeps writing to the same file: moved, it is the ingest's upload.
        self.receiving = receive_into(self.file_name or "upload", self.path, self.expected)
        if self.receiving is not None:
            self.path = self.receiving_path = ingest_upload_path(self.receiving)
            self.staged[0] = self.path

    def file_complete(self, file_size):
        sha256 = self.writer.finish()
        self._close()
        if self.receiving is not None and self.path == self.receiving_path:
            # Every byte is in: its reader can finish; the service's checks decide whether it is kept.
            mark_written(self.path, size=file_size, stale_seconds=settings.STUDIO_UPLOAD_STALE_SECONDS)
            return StagedUpload(
                self.path, self.file_name or "upload", file_size, self.content_type, sha256, ingest=self.receiving
            )
        return self.staged_class(self.path, self.file_name or "upload", file_size, self.content_type, sha256=sha256)

    def upload_interrupted(self):
        if self.fh is not None:
            self._close()
            self.path.unlink(missing_ok=True)

    def discard_all(self) -> None:
        """Remove every file this upload staged that is still in staging (the service moves the
        one it accepts away first); refuse the ingest reading it as it arrived unless the service
        accepted it."""
        self._close()
        if self.receiving is not None:
            message = "The upload was cut off or refused before the whole file was accepted; nothing was stored."
            ingest_receive_refuse(ingest=self.receiving, message=message)
        for path in self.staged:
            if path != self.receiving_path:
                path.unlink(missing_ok=True)

    def _close(self):
        if self.fh is not None:
            with suppress(Exception):  # the file is removed: what it failed to write is moot
                self.writer.finish()
            self.fh.close()
            self.fh = None

    def _refuse(self):
        self.too_large = True
        if self.request is not None:
            self.request.upload_too_large = True
        raise StopUpload(connection_reset=True)


class UploadRefused(Exception):
    """An upload answered without storing it: the HTTP status, a stable code and a message."""

    def __init__(self, message: str, *, status: int, code: str):
        super().__init__(message)
        self.message, self.status, self.code = message, status, code


def _content_length(request) -> int:
    try:
        return max(0, int(request.META.get("CONTENT_LENGTH") or 0))
    except ValueError:
        raise UploadRefused("The Content-Length header is not a number.", status=400, code="invalid") from None


def upload_slot_admit(request, *, workspace, max_bytes: int, framing: int, too_large: str):
    """The checks every upload passes before its body is read: the size Content-Length announces
    (`framing` bytes allowed for the multipart envelope), the workspace's storage quota and the
    user's concurrent uploads. Returns the upload slot taken; raises UploadRefused."""
    announced = _content_length(request)
    if announced > max_bytes + framing:
        raise UploadRefused(too_large, status=413, code="too_large")
    try:
        workspace_storage_check(workspace=workspace, adding=max(announced - framing, 1))
        return upload_slot_acquire(user=request.user)
    except StorageQuotaExceeded as exc:
        raise UploadRefused(exc.messages[0], status=413, code="quota_exceeded") from None
    except TooManyUploads as exc:
        raise UploadRefused(exc.messages[0], status=429, code="too_many_uploads") from None


@contextmanager
def upload_admitted(request, *, workspace):
    """Admit an upload before its body is read, then let the caller parse it (request.POST or
    request.data) through the staging handler. Call it only after authentication, CSRF (on the
    header), membership and role are checked. Raises UploadRefused.

    Past the `with`, whatever happened, the user's upload slot is freed and every staged file the
    service did not take is removed.
    """
    slot = upload_slot_admit(
        request,
        workspace=workspace,
        max_bytes=settings.STUDIO_UPLOAD_MAX_BYTES,
        framing=MULTIPART_ALLOWANCE,
        too_large=too_large_message(),
    )

    def receive_into(file_name: str, staged: Path, expected_size: int):
        return ingest_receive_start(
            actor=request.user, workspace=workspace, file_name=file_name, staged=staged, expected_size=expected_size
        )

    handler = StagedUploadHandler(request, slot=slot, receive_into=receive_into)
    request.upload_too_large = False
    request.upload_handlers = [handler]
    try:
        yield handler
    except (UnreadablePostError, MultiPartParserError):
        # The client went away or sent a broken body: nothing to answer but a 400 (never a 5xx).
        message = "The upload was cut off or malformed before the whole file arrived; nothing was stored."
        raise UploadRefused(message, status=400, code="interrupted") from None
    finally:
        try:
            handler.discard_all()
        finally:
            upload_slot_release(slot=slot)


def too_large_message() -> str:
    limit = settings.STUDIO_UPLOAD_MAX_BYTES
    return f"The file is larger than the upload limit of {limit / 2**30:.1f} GiB ({limit:,} bytes)."


def remove_stale_staging(max_age_seconds: int | None = None) -> int:
    """Remove staging files that received no byte for `max_age_seconds` (default
    STUDIO_UPLOAD_STALE_SECONDS): left by a process killed mid-upload. A live upload writes to its
    file all the time, so its modification time stays fresh. Returns how many were removed."""
    if max_age_seconds is None:
        max_age_seconds = settings.STUDIO_UPLOAD_STALE_SECONDS
    removed = 0
    for path in staging_dir().glob("*.part"):
        try:
            if time.time() - path.stat().st_mtime > max_age_seconds:
                path.unlink()
                removed += 1
        except FileNotFoundError:  # its request finished meanwhile
            continue
    return removed
