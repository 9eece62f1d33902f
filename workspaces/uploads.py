"""Uploads stream straight to a staging file under the artifact root, never whole into memory.

The size cap is enforced while streaming (Django has no total cap of its own): past it, the
upload stops and the partial file is removed. Files get generated names (R1); the name the user's
file had is kept only as text for display.
"""

import uuid
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopFutureHandlers, StopUpload


def staging_dir() -> Path:
    path = Path(settings.ARTIFACT_ROOT) / "staging"
    path.mkdir(parents=True, exist_ok=True)
    return path


class StagedUpload(UploadedFile):
    """An uploaded file already on disk at `path` (closed; read it from the path)."""

    def __init__(self, path: Path, name: str, size: int, content_type: str | None):
        super().__init__(file=None, name=name, content_type=content_type, size=size)
        self.path = path

    def temporary_file_path(self) -> str:
        return str(self.path)

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


class StagedUploadHandler(FileUploadHandler):
    """Writes each uploaded file to staging as it arrives, counting bytes against the cap."""

    chunk_size = 1024 * 1024

    def __init__(self, request=None, max_bytes: int | None = None):
        super().__init__(request)
        self.max_bytes = max_bytes or settings.STUDIO_UPLOAD_MAX_BYTES
        self.too_large = False

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        if content_length and content_length > self.max_bytes + 64 * 1024:
            self._refuse()

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        self.path = staging_dir() / f"{uuid.uuid4().hex}.part"
        self.fh = open(self.path, "wb")  # noqa: SIM115 - closed in file_complete/upload_interrupted
        self.size = 0
        raise StopFutureHandlers()

    def receive_data_chunk(self, raw_data, start):
        self.size += len(raw_data)
        if self.size > self.max_bytes:
            self.fh.close()
            self.path.unlink(missing_ok=True)
            self._refuse()
        self.fh.write(raw_data)
        return None

    def file_complete(self, file_size):
        self.fh.close()
        return StagedUpload(self.path, self.file_name or "upload", file_size, self.content_type)

    def upload_interrupted(self):
        if getattr(self, "fh", None) is not None:
            self.fh.close()
            self.path.unlink(missing_ok=True)

    def _refuse(self):
        self.too_large = True
        if self.request is not None:
            self.request.upload_too_large = True
        raise StopUpload(connection_reset=True)


def install_upload_handler(request) -> None:
    """Call before anything reads request.POST or request.FILES (so before CSRF checks)."""
    request.upload_too_large = False
    request.upload_handlers = [StagedUploadHandler(request)]


def too_large_message() -> str:
    limit = settings.STUDIO_UPLOAD_MAX_BYTES
    return f"The file is larger than the upload limit of {limit / 2**30:.1f} GiB ({limit:,} bytes)."


def remove_stale_staging(max_age_seconds: int = 24 * 3600) -> int:
    """Remove staging files left by uploads that never became ingests (a crash mid-request)."""
    import time

    removed = 0
    for path in staging_dir().glob("*.part"):
        if time.time() - path.stat().st_mtime > max_age_seconds:
            path.unlink(missing_ok=True)
            removed += 1
    return removed
