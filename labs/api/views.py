from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from compute.api.serializers import InstanceLabOut
from compute.selectors import target_get
from workspaces.api.base import WorkspaceApiView, WorkspaceListApiView

from .. import selectors, services
from .serializers import LabEnvironmentIn, ScheduleIn, ScheduleOut


class LabEnvironmentApi(WorkspaceApiView):
    @extend_schema(
        request=LabEnvironmentIn,
        responses=InstanceLabOut,
        summary="Choose the environment of an instance's notebook (used at its next start; owner only)",
    )
    def put(self, request, workspace_id, target_id):
        target = target_get(workspace=self.workspace, target_id=target_id)
        data = LabEnvironmentIn(data=request.data)
        data.is_valid(raise_exception=True)
        services.lab_environment_set(
            actor=request.user, target=target, environment_version_id=data.validated_data["environment_version"]
        )
        return Response(InstanceLabOut(selectors.lab_summary(target=target, user=request.user)).data)


class ScheduleListApi(WorkspaceListApiView):
    serializer_class = ScheduleOut

    def get_queryset(self):
        target = target_get(workspace=self.workspace, target_id=self.kwargs["target_id"])
        return selectors.schedule_list(target=target).select_related("target")

    @extend_schema(summary="An instance's start and stop schedules")
    def get(self, request, workspace_id, target_id):
        return self.list(request)

    @extend_schema(
        request=ScheduleIn,
        responses={201: ScheduleOut},
        summary="Add a start or stop schedule (owner only; 10 at most)",
    )
    def post(self, request, workspace_id, target_id):
        target = target_get(workspace=self.workspace, target_id=target_id)
        data = ScheduleIn(data=request.data)
        data.is_valid(raise_exception=True)
        schedule = services.schedule_create(actor=request.user, target=target, **data.validated_data)
        return Response(ScheduleOut(schedule).data, status=status.HTTP_201_CREATED)


class ScheduleDetailApi(WorkspaceApiView):
    @extend_schema(responses=ScheduleOut, summary="One schedule of an instance")
    def get(self, request, workspace_id, target_id, schedule_id):
        target = target_get(workspace=self.workspace, target_id=target_id)
        return Response(ScheduleOut(selectors.schedule_get(target=target, schedule_id=schedule_id)).data)

    @extend_schema(responses={204: None}, summary="Delete a schedule (owner only)")
    def delete(self, request, workspace_id, target_id, schedule_id):
        target = target_get(workspace=self.workspace, target_id=target_id)
        schedule = selectors.schedule_get(target=target, schedule_id=schedule_id)
        services.schedule_delete(actor=request.user, schedule=schedule)
        return Response(status=status.HTTP_204_NO_CONTENT)
