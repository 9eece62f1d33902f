"""MLflow's artifact proxy (`/api/2.0/mlflow-artifacts/artifacts/...`) over a run's files.

A run's artifact_uri is `mlflow-artifacts:/runs/<run_id>`, so the proxy's path `runs/<run_id>/<path>`
is the job's artifact "logged/<path>". Uploads stream to `job_artifact_store` (checked path, size
limit, quota, staged then renamed); downloads and lists go by the job's Artifact rows, never by a
path on disk that the client chose (R1).
"""

from django.http import FileResponse
from rest_framework.response import Response

from compute.jobs.models import Artifact
from compute.jobs.recovery import job_artifact_dir
from compute.jobs.run_services import RUN_ARTIFACT_PREFIX, ArtifactCutOff, ArtifactTooLarge
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
        size = _content_length(request)
        try:
            services.run_artifact_store(access=self.access, run=run, path=inner, stream=request.stream, size=size)
        except (ArtifactTooLarge, StorageQuotaExceeded) as exc:
            raise MlflowError(exc.messages[0], RESOURCE_EXHAUSTED, status=413) from None
        except ArtifactCutOff as exc:
            raise invalid(exc.messages[0]) from None
        return Response({})


class ArtifactListApi(TrackingApiView):
    def get(self, request, workspace_id):
        run_id, inner = _split(request.query_params.get("path", ""))
        run = selectors.run_get(access=self.access, run_id=run_id)
        prefix = RUN_ARTIFACT_PREFIX + (inner.strip("/") + "/" if inner.strip("/") else "")
        files, folders = {}, set()
        rows = Artifact.objects.filter(job=run, name__startswith=prefix).order_by("name").values_list("name", "size")
        for name, size in rows[:LIST_MAX]:
            head, slash, _ = name[len(prefix) :].partition("/")
            if slash:
                folders.add(head)
            else:
                files[head] = size
        listing = [{"path": folder, "is_dir": True} for folder in sorted(folders)]
        listing += [{"path": name, "is_dir": False, "file_size": size} for name, size in sorted(files.items())]
        return Response({"files": listing})
