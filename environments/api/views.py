from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from studio.api.base import ListApiView
from workspaces.api.base import WorkspaceApiView, WorkspaceListApiView

from .. import selectors, services
from ..bases import bases
from .serializers import (
    BaseOut,
    EnvironmentIn,
    EnvironmentOut,
    EnvironmentVersionDetailOut,
    EnvironmentVersionIn,
    EnvironmentVersionOut,
)


class BaseListApi(ListApiView):
    serializer_class = BaseOut

    def get_queryset(self):
        return list(bases().values())

    @extend_schema(summary="The curated bases an environment starts from, with their pinned packages")
    def get(self, request):
        return self.list(request)


class EnvironmentListApi(WorkspaceListApiView):
    serializer_class = EnvironmentOut

    def get_queryset(self):
        return selectors.environment_list(workspace=self.workspace)

    @extend_schema(summary="List environments with their latest version")
    def get(self, request, workspace_id):
        return self.list(request)

    @extend_schema(
        request=EnvironmentIn,
        responses={201: EnvironmentOut},
        summary="Create an environment (its version 1); a bad requirement line is a 400 naming the line",
    )
    def post(self, request, workspace_id):
        data = EnvironmentIn(data=request.data)
        data.is_valid(raise_exception=True)
        version = services.environment_create(actor=request.user, workspace=self.workspace, **data.validated_data)
        environment = selectors.environment_get(workspace=self.workspace, environment_id=version.environment_id)
        return Response(EnvironmentOut(environment).data, status=status.HTTP_201_CREATED)


class EnvironmentDetailApi(WorkspaceApiView):
    @extend_schema(responses=EnvironmentOut, summary="One environment")
    def get(self, request, workspace_id, environment_id):
        environment = selectors.environment_get(workspace=self.workspace, environment_id=environment_id)
        return Response(EnvironmentOut(environment).data)

    @extend_schema(responses={204: None}, summary="Delete an environment (refused while a job names a version)")
    def delete(self, request, workspace_id, environment_id):
        environment = selectors.environment_get(workspace=self.workspace, environment_id=environment_id)
        services.environment_delete(actor=request.user, environment=environment)
        return Response(status=status.HTTP_204_NO_CONTENT)


class VersionListApi(WorkspaceListApiView):
    serializer_class = EnvironmentVersionOut

    def get_queryset(self):
        environment = selectors.environment_get(workspace=self.workspace, environment_id=self.kwargs["environment_id"])
        return selectors.environment_version_list(environment=environment)

    @extend_schema(summary="An environment's versions, newest first")
    def get(self, request, workspace_id, environment_id):
        return self.list(request)

    @extend_schema(
        request=EnvironmentVersionIn,
        responses={201: EnvironmentVersionDetailOut, 200: EnvironmentVersionDetailOut},
        summary="Make the next version (200 with the latest one when the specification is identical to it)",
    )
    def post(self, request, workspace_id, environment_id):
        environment = selectors.environment_get(workspace=self.workspace, environment_id=environment_id)
        data = EnvironmentVersionIn(data=request.data)
        data.is_valid(raise_exception=True)
        version = services.environment_version_create(
            actor=request.user, environment=environment, **data.validated_data
        )
        made = version.pk != environment.latest_version_id
        version = selectors.environment_version_get(environment=environment, version=version.version)
        return Response(
            EnvironmentVersionDetailOut(version).data, status=status.HTTP_201_CREATED if made else status.HTTP_200_OK
        )


class VersionDetailApi(WorkspaceApiView):
    @extend_schema(
        responses=EnvironmentVersionDetailOut, summary="One version with its lock file and its build on each host"
    )
    def get(self, request, workspace_id, environment_id, version):
        environment = selectors.environment_get(workspace=self.workspace, environment_id=environment_id)
        return Response(
            EnvironmentVersionDetailOut(
                selectors.environment_version_get(environment=environment, version=version)
            ).data
        )
