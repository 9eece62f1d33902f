"""The one way a stored file leaves the studio: a path under the artifact root, sent as an attachment.

Every download (data versions, job artifacts, model files) builds its path from rows (R1) and then
calls `file_attachment`, so the path-escape check is written once, for the UI and the API alike.
"""

from collections.abc import Iterable
from pathlib import Path

from django.conf import settings
from django.http import FileResponse, Http404, StreamingHttpResponse


def checked_file(path: Path, *, missing: str) -> Path:
    """The path if it is a file inside the artifact root; 404 otherwise (a symlink out counts as missing)."""
    if not path.resolve().is_relative_to(Path(settings.ARTIFACT_ROOT).resolve()) or not path.is_file():
        raise Http404(missing)
    return path


def file_attachment(path: Path, *, filename: str, missing: str = "The file is missing.") -> FileResponse:
    return FileResponse(open(checked_file(path, missing=missing), "rb"), as_attachment=True, filename=filename)  # noqa: SIM115


def csv_attachment(chunks: Iterable[str], *, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(chunks, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
