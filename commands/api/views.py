"""Command job API beyond POST /jobs (kind "command"): registering a model output."""

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from compute.jobs.selectors import job_get
from training.api.registry_views import ModelVersionOut, RegisterIn
from workspaces.api.base import WorkspaceApiView

from .. import services


class CommandOutputRegisterApi(WorkspaceApiView):
    @extend_schema(
        request=RegisterIn,
        responses={201: ModelVersionOut},
        summary="Register the skops model a command job wrote into one of its model outputs",
    )
    def post(self, request, workspace_id, job_id, output):
        job = job_get(workspace=self.workspace, job_id=job_id)
        data = RegisterIn(data=request.data)
        data.is_valid(raise_exception=True)
        version = services.command_model_register(actor=request.user, job=job, output=output, **data.validated_data)
        return Response(ModelVersionOut(version).data, status=status.HTTP_201_CREATED)
