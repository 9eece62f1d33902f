from django.core.exceptions import ValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response

from compute.jobs import selectors as job_selectors
from compute.jobs import services
from compute.models import ComputeTarget
from studio.api.inputs import query_values
from workspaces.api.base import WorkspaceApiView, WorkspaceListApiView

from .. import selectors
from ..downloads import artifact_download
from ..experiment_services import experiment_create
from .serializers import (
    ArtifactOut,
    ExperimentIn,
    ExperimentOut,
    JobEventOut,
    JobFilterIn,
    JobIn,
    JobOut,
    LogOut,
    MetricSeriesOut,
)


class JobListApi(WorkspaceListApiView):
    serializer_class = JobOut

    def get_queryset(self):
        values = query_values(JobFilterIn, self.request)
        filters = {key: values.get(key, "") for key in job_selectors.JOB_FILTERS}
        return job_selectors.job_list(workspace=self.workspace, filters=filters)

    @extend_schema(parameters=[JobFilterIn], summary="List jobs, newest first")
    def get(self, request, workspace_id):
        return self.list(request)

    @extend_schema(request=JobIn, responses={201: JobOut}, summary="Submit a job to a compute target")
    def post(self, request, workspace_id):
        data = JobIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        target = ComputeTarget.objects.filter(workspace=self.workspace, pk=values["target"]).first()
        if target is None:
            raise ValidationError(
                {
                    "target": ValidationError(
                        f"This workspace has no compute target with id {values['target']}.", code="not_found"
                    )
                }
            )
        job = services.job_submit(
            actor=request.user,
            workspace=self.workspace,
            kind=values["kind"],
            target=target,
            spec=values["spec"],
            experiment_name=values.get("experiment"),
            display_name=values.get("display_name", ""),
            time_limit_seconds=values.get("time_limit_seconds"),
        )
        return Response(
            JobOut(job_selectors.job_get(workspace=self.workspace, job_id=job.pk)).data, status=status.HTTP_201_CREATED
        )


class JobDetailApi(WorkspaceApiView):
    @extend_schema(responses=JobOut, summary="One job")
    def get(self, request, workspace_id, job_id):
        return Response(JobOut(job_selectors.job_get(workspace=self.workspace, job_id=job_id)).data)

    @extend_schema(responses={200: OpenApiTypes.OBJECT}, summary="Delete a finished job; reports the bytes freed")
    def delete(self, request, workspace_id, job_id):
        freed = services.job_delete(
            actor=request.user, job=job_selectors.job_get(workspace=self.workspace, job_id=job_id)
        )
        return Response({"deleted": True, "bytes_freed": freed})


class JobCancelApi(WorkspaceApiView):
    @extend_schema(request=None, responses=JobOut, summary="Cancel a job (a running one stops within seconds)")
    def post(self, request, workspace_id, job_id):
        job = services.job_cancel(
            actor=request.user, job=job_selectors.job_get(workspace=self.workspace, job_id=job_id)
        )
        return Response(JobOut(job_selectors.job_get(workspace=self.workspace, job_id=job.pk)).data)


class JobRetryApi(WorkspaceApiView):
    @extend_schema(request=None, responses=JobOut, summary="Retry a failed or canceled job (a new attempt)")
    def post(self, request, workspace_id, job_id):
        job = services.job_retry(actor=request.user, job=job_selectors.job_get(workspace=self.workspace, job_id=job_id))
        return Response(JobOut(job_selectors.job_get(workspace=self.workspace, job_id=job.pk)).data)


class JobEventsApi(WorkspaceListApiView):
    serializer_class = JobEventOut

    def get_queryset(self):
        return job_selectors.job_events(
            job=job_selectors.job_get(workspace=self.workspace, job_id=self.kwargs["job_id"])
        )

    @extend_schema(summary="A job's status history with the reason for each change")
    def get(self, request, workspace_id, job_id):
        return self.list(request)


class JobLogApi(WorkspaceApiView):
    @extend_schema(
        parameters=[OpenApiParameter("after", int, description="Return lines after this sequence number")],
        responses=LogOut,
        summary="A job's log lines (poll with `after` to stream)",
    )
    def get(self, request, workspace_id, job_id):
        job = job_selectors.job_get(workspace=self.workspace, job_id=job_id)
        try:
            after = max(0, int(request.query_params.get("after", 0)))
        except ValueError:
            raise ValidationError({"after": ["Give a whole number."]}) from None
        lines = job_selectors.job_log(job=job, after=after)
        return Response(
            LogOut({"lines": lines, "last": lines[-1].seq if lines else after, "active": job.is_active}).data
        )


class JobMetricsApi(WorkspaceApiView):
    @extend_schema(responses=MetricSeriesOut(many=True), summary="A job's metrics by step")
    def get(self, request, workspace_id, job_id):
        job = job_selectors.job_get(workspace=self.workspace, job_id=job_id)
        series = job_selectors.job_metrics(jobs=[job]).get(job.pk, {})
        body = [
            {"name": name, "points": [{"step": s, "value": v} for s, v in points]} for name, points in series.items()
        ]
        return Response(MetricSeriesOut(body, many=True).data)


class JobArtifactsApi(WorkspaceListApiView):
    serializer_class = ArtifactOut

    def get_queryset(self):
        return job_selectors.job_artifacts(
            job=job_selectors.job_get(workspace=self.workspace, job_id=self.kwargs["job_id"])
        )

    @extend_schema(summary="Files a job wrote")
    def get(self, request, workspace_id, job_id):
        return self.list(request)


class JobArtifactDownloadApi(WorkspaceApiView):
    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY}, summary="Download an artifact")
    def get(self, request, workspace_id, job_id, artifact_id):
        job = job_selectors.job_get(workspace=self.workspace, job_id=job_id)
        artifact = job_selectors.artifact_get(job=job, artifact_id=artifact_id)
        return artifact_download(job, artifact)


class ExperimentListApi(WorkspaceListApiView):
    serializer_class = ExperimentOut

    def get_queryset(self):
        return selectors.experiment_list(workspace=self.workspace)

    @extend_schema(summary="Experiments (groups of jobs)")
    def get(self, request, workspace_id):
        return self.list(request)

    @extend_schema(request=ExperimentIn, responses={201: ExperimentOut}, summary="Create an experiment")
    def post(self, request, workspace_id):
        data = ExperimentIn(data=request.data)
        data.is_valid(raise_exception=True)
        experiment = experiment_create(actor=request.user, workspace=self.workspace, **data.validated_data)
        return Response(ExperimentOut(experiment).data, status=status.HTTP_201_CREATED)
