"""The run API, /api/v1/run/: what a running job's own code may do, with the job's own token.

There is no job id in these URLs: the job is the token's, so a job can only read and write
itself. Only a job's token authenticates here (a personal token or a session gets 401), and a
job's token authenticates nowhere else (`compute.jobs.authentication`).
"""

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException, NotFound, ParseError
from rest_framework.response import Response

from compute.jobs.authentication import JobTokenAuthentication, JobTokenScheme
from compute.jobs.run_services import (
    ArtifactCutOff,
    ArtifactTooLarge,
    MetricValue,
    job_artifact_store,
    job_metrics_log,
    job_params_log,
)
from compute.jobs.selectors import job_data_inputs
from data.downloads import data_version_download
from data.selectors import data_versions_ready
from studio.api.base import ApiView
from studio.api.errors import ErrorSerializer
from studio.api.inputs import query_values
from studio.api.schema import StudioAutoSchema
from workspaces.services import StorageQuotaExceeded

from .run_serializers import (
    RecordedOut,
    RunArtifactOut,
    RunInputQueryIn,
    RunMetricsIn,
    RunOut,
    RunParamsIn,
)


class Refused(APIException):
    def __init__(self, message: str, *, status_code: int, code: str):
        super().__init__(message, code)
        self.status_code = status_code


class RunApiSchema(StudioAutoSchema):
    """The run API's operations name the job's token only (the schema's global personal token
    would be refused here)."""

    def get_auth(self):
        return [requirement for requirement in super().get_auth() if JobTokenScheme.name in requirement]


# Authenticated by the job's own token only; `self.job` is the token's job. (A comment, not a
# docstring: drf-spectacular would give it to every operation as its description.)
class RunApiView(ApiView):
    authentication_classes = [JobTokenAuthentication]
    schema = RunApiSchema()
    job_token_allowed = True
    job = None

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.job = request.auth.job


def _inputs(job) -> list[dict]:
    wanted = job_data_inputs(job)
    versions = {v.pk: v for v in data_versions_ready(workspace=job.workspace).filter(pk__in=set(wanted.values()))}
    summary = []
    for name, version_id in sorted(wanted.items()):
        version = versions.get(version_id)
        summary.append(
            {
                "name": name,
                "type": "data",
                "data_version_id": version_id,
                "asset": version.asset.name if version else None,
                "version": version.version if version else None,
                "rows": version.rows if version else None,
                "columns": version.columns if version else None,
                "url": reverse("api-run-input", kwargs={"name": name}),
            }
        )
    return summary


class RunApi(RunApiView):
    @extend_schema(responses=RunOut, summary="The job this token belongs to, with its inputs")
    def get(self, request):
        job = self.job
        body = {
            "id": job.pk,
            "workspace_id": job.workspace_id,
            "kind": job.kind,
            "name": job.name,
            "status": job.status,
            "attempt": job.attempt,
            "time_limit_seconds": job.time_limit_seconds,
            "inputs": _inputs(job),
            "token_expires_at": request.auth.expires_at,
        }
        return Response(RunOut(body).data)


class RunMetricsApi(RunApiView):
    @extend_schema(
        request=RunMetricsIn,
        responses={201: RecordedOut},
        summary="Record a batch of metric values (up to 1,000 per call)",
    )
    def post(self, request):
        data = RunMetricsIn(data=request.data)
        data.is_valid(raise_exception=True)
        metrics = [MetricValue(**item) for item in data.validated_data["metrics"]]
        recorded = job_metrics_log(job=self.job, metrics=metrics)
        return Response(RecordedOut({"recorded": recorded}).data, status=status.HTTP_201_CREATED)


class RunParamsApi(RunApiView):
    @extend_schema(request=RunParamsIn, responses=RecordedOut, summary="Record the job's parameters")
    def post(self, request):
        data = RunParamsIn(data=request.data)
        data.is_valid(raise_exception=True)
        recorded = job_params_log(job=self.job, params=data.validated_data["params"])
        return Response(RecordedOut({"recorded": recorded}).data)


def _content_length(request) -> int:
    text = request.META.get("CONTENT_LENGTH")
    if not text:
        # Without it Django reads an empty body (a chunked upload would be stored as an empty file).
        raise Refused("Send the file's size in the Content-Length header.", status_code=411, code="length_required")
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise ParseError("The Content-Length header is not a size in bytes.")
    return int(text)


class RunArtifactApi(RunApiView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "path",
                str,
                OpenApiParameter.PATH,
                description="Where the file goes among the job's artifacts, e.g. `plots/loss.png`: "
                "names separated by `/`, no `.` or `..`, no control characters or backslashes.",
            )
        ],
        request={"application/octet-stream": OpenApiTypes.BINARY},
        responses={201: RunArtifactOut, 411: ErrorSerializer},
        summary="Store a file as the job's artifact logged/<path> (replaces one sent before)",
    )
    def put(self, request, path):
        size = _content_length(request)
        try:
            artifact = job_artifact_store(job=self.job, path=path, stream=request.stream, size=size)
        except ArtifactTooLarge as exc:
            raise Refused(exc.messages[0], status_code=413, code="too_large") from None
        except StorageQuotaExceeded as exc:
            raise Refused(exc.messages[0], status_code=413, code="quota_exceeded") from None
        except ArtifactCutOff as exc:
            raise ParseError(exc.messages[0], code="interrupted") from None
        return Response(RunArtifactOut(artifact).data, status=status.HTTP_201_CREATED)


class RunInputApi(RunApiView):
    @extend_schema(
        parameters=[
            RunInputQueryIn,
            OpenApiParameter("name", str, OpenApiParameter.PATH, description="The input's name in the job's spec."),
        ],
        responses={
            (200, "application/octet-stream"): OpenApiTypes.BINARY,
            (200, "text/csv"): OpenApiTypes.BINARY,
        },
        summary="Download one of the job's data inputs as Parquet (the default) or CSV",
    )
    def get(self, request, name):
        fmt = query_values(RunInputQueryIn, request)["format"]
        version_id = job_data_inputs(self.job).get(name)
        if version_id is None:
            raise NotFound(f"The job has no data input named {name[:200]!r}.")
        version = data_versions_ready(workspace=self.job.workspace).filter(pk=version_id).first()
        if version is None:
            raise NotFound(f"The data version of the input {name[:200]!r} no longer exists.")
        return data_version_download(version, fmt=fmt)
