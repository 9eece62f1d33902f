"""One download of a snapshot's file, for the page and the API alike."""

from django.http import FileResponse

from commands.code_services import code_snapshot_file_path
from commands.models import CodeSnapshot


def code_file_download(*, snapshot: CodeSnapshot, path: str) -> FileResponse:
    """The file as an attachment, always application/octet-stream: user code is never served as a
    page the browser would render (R8). 404 for a path not in the snapshot's manifest."""
    file_path = code_snapshot_file_path(snapshot=snapshot, path=path)
    response = FileResponse(
        open(file_path, "rb"),  # noqa: SIM115 - FileResponse closes it
        as_attachment=True,
        filename=path.rsplit("/", 1)[-1],
        content_type="application/octet-stream",
    )
    response["X-Content-Type-Options"] = "nosniff"
    return response
