"""Downloading a job's artifact or a model version's file: one helper each, for the pages and the API."""

from django.http import FileResponse, Http404

from compute.jobs.models import Artifact, Job
from compute.jobs.recovery import job_artifact_dir
from studio import objectstore
from studio.downloads import file_attachment

from .models import ModelVersion
from .registry_services import model_version_dir

# The files of a registered version a user may download, by the format named in the URL.
MODEL_VERSION_FILES = {"skops": "model.skops", "onnx": "model.onnx", "signature": "signature.json"}


def artifact_download(job: Job, artifact: Artifact) -> FileResponse:
    """Files leave only through the permission-checked callers; the path comes from the rows (R1)."""
    path = job_artifact_dir(job) / artifact.name
    try:
        objectstore.ensure_local(path, sha256=artifact.sha256)  # the job may have run on another host
    except objectstore.ObjectMissing:
        pass  # file_attachment answers that it is missing
    return file_attachment(path, filename=artifact.name, missing="The artifact's file is missing.")


def model_version_download(model_version: ModelVersion, *, fmt: str) -> FileResponse:
    if (
        fmt not in MODEL_VERSION_FILES
        or (fmt == "onnx" and not model_version.onnx_sha256)
        or (fmt == "skops" and model_version.onnx_only)
    ):
        raise Http404("No such file for this version.")
    file_name = MODEL_VERSION_FILES[fmt]
    suffix = file_name.split(".", 1)[1]
    return file_attachment(
        model_version_dir(model_version) / file_name,
        filename=f"{model_version.model.name}-v{model_version.version}.{suffix}",
    )
