"""MLflow's artifact proxy (`/api/2.0/mlflow-artifacts/artifacts/...`) over a run's files.

A run's artifact_uri is `mlflow-artifacts:/runs/<run_id>`, so the proxy's path `runs/<run_id>/<path>`
is the job's artifact "logged/<path>". Uploads stream to `job_artifact_store` (checked path, size
limit, quota, staged then renamed); downloads and lists go by the job's Artifact rows, never by a
path on disk that the client chose (R1).
"""

import tempfile

from django.conf import settings
from django.http import FileResponse
from rest_framework.response import Response

from compute.jobs.models import Artifact
from compute.jobs.recovery import job_artifact_dir
from compute.jobs.run_services import CHUNK_BYTES, RUN_ARTIFACT_PREFIX, ArtifactCutOff, ArtifactTooLarge
from studio.downloads import checked_file
from workspaces.services import StorageQuotaExceeded

from . import selectors, services
from .base import TrackingApiView
from .errors import RESOURCE_EXHAUSTED, MlflowError, invalid, not_found

LIST_MAX = 10_000


def _split(path: str) -> tuple[str, str]:
    """("<run_id>", "<path in the run>") of a proxy path `runs/<run_id>[/<path>]`."""
    parts = (path or "").strip("/").split("/", 2)
    if len(parts) < 2 or parts[0] != "runs" or not parts[1]:
        raise not_found(f"No artifacts at {str(path)[:200]!r}: the studio keeps artifacts under runs/<run_id>/.")
    return parts[1], parts[2] if len(parts) > 2 else ""


def _content_length(request) -> int:
    text = request.META.get("CONTENT_LENGTH")
    if not text:
        raise MlflowError("Send the file's size in the Content-Length header.", "BAD_REQUEST", status=411)
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise invalid("The Content-Length header is not a size in bytes.")
    return int(text)


def _chunked_body(request):
    """(a file holding the body, its size) for a chunked upload (the client sends an empty file so),
    read up to the size limit; only where the server decodes chunked bodies (gunicorn), else None."""
    meta = request.META
    if meta.get("CONTENT_LENGTH") or "chunked" not in meta.get("HTTP_TRANSFER_ENCODING", "").lower():
        return None
    if not meta.get("wsgi.input_terminated"):
        return None
    limit = settings.STUDIO_RUN_ARTIFACT_MAX_BYTES
    body = tempfile.SpooledTemporaryFile(max_size=CHUNK_BYTES)  # noqa: SIM115 - closed by the caller
    size = 0
    while chunk := meta["wsgi.input"].read(CHUNK_BYTES):
        size += len(chunk)
        if size > limit:
            body.close()
            raise MlflowError(f"The file is larger than the limit of {limit:,} bytes per artifact.", RESOURCE_EXHAUSTED)
        body.write(chunk)
    body.seek(0)
    return body, size


class ArtifactFileApi(TrackingApiView):
    def get(self, request, workspace_id, path):
        run_id, inner = _split(path)
        run = selectors.run_get(access=self.access, run_id=run_id)
        artifact = Artifact.objects.filter(job=run, name=RUN_ARTIFACT_PREFIX + inner).first() if inner else None
        if artifact is None:
            raise not_found(f"The run has no artifact {inner[:200]!r}.")
        file = checked_file(job_artifact_dir(run) / artifact.name, missing="The artifact's file is missing.")
        return FileResponse(open(file, "rb"), content_type="application/octet-stream")  # noqa: SIM115

    def put(self, request, workspace_id, path):
        run_id, inner = _split(path)
        run = selectors.run_get(access=self.access, run_id=run_id)
        chunked = _chunked_body(request)
        stream, size = chunked if chunked else (request.stream, _content_length(request))
        try:
            services.run_artifact_store(access=self.access, run=run, path=inner, stream=stream, size=size)
        except (ArtifactTooLarge, StorageQuotaExceeded) as exc:
            raise MlflowError(exc.messages[0], RESOURCE_EXHAUSTED, status=413) from None
        except ArtifactCutOff as exc:
            raise invalid(exc.messages[0]) from None
        finally:
            if chunked:
                stream.close()
        return Response({})


class ArtifactListApi(TrackingApiView):
    def get(self, request, workspace_id):
        run_id, inner = _split(request.query_params.get("path", ""))
        run = selectors.run_get(access=self.access, run_id=run_id)
        prefix = RUN_ARTIFACT_PREFIX + (inner.strip("/") + "/" if inner.strip("/") else "")
        files, folders = {}, set()
        rows = Artifact.objects.filter(job=run, name__startswith=prefix).order_by("name").values_list("name", "size")
        rows = list(rows[: LIST_MAX + 1])
        if len(rows) > LIST_MAX:
            raise invalid(f"The folder holds more than {LIST_MAX:,} files: list one of its folders.")
        for name, size in rows:
            if not name.startswith(prefix):  # SQLite's startswith ignores case; paths do not
                continue
            head, slash, _ = name[len(prefix) :].partition("/")
            if slash:
                folders.add(head)
            else:
                files[head] = size
        listing = [{"path": folder, "is_dir": True} for folder in sorted(folders)]
        listing += [{"path": name, "is_dir": False, "file_size": size} for name, size in sorted(files.items())]
        return Response({"files": listing})
