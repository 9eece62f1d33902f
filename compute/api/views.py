from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from workspaces.api.base import WorkspaceApiView, WorkspaceListApiView

from .. import selectors, services
from .serializers import (
    JoinTokenOut,
    NodeOut,
    QuotaOut,
    TargetCreatedOut,
    TargetDetailOut,
    TargetIn,
    TargetOut,
    TargetUpdateIn,
    UsageOut,
)


class TargetListApi(WorkspaceListApiView):
    serializer_class = TargetOut

    def get_queryset(self):
        return selectors.target_list(workspace=self.workspace)

    @extend_schema(summary="List compute targets with their nodes and queues")
    def get(self, request, workspace_id):
        return self.list(request)

    @extend_schema(request=TargetIn, responses={201: TargetCreatedOut}, summary="Create a compute target")
    def post(self, request, workspace_id):
        data = TargetIn(data=request.data)
        data.is_valid(raise_exception=True)
        created = services.target_create(actor=request.user, workspace=self.workspace, **data.validated_data)
        target = selectors.target_get(workspace=self.workspace, target_id=created.target.pk)
        body = TargetOut(target).data | {"join_token": created.join_token}
        return Response(body, status=status.HTTP_201_CREATED)


class TargetDetailApi(WorkspaceApiView):
    @extend_schema(responses=TargetDetailOut, summary="One compute target (an instance with its notebook)")
    def get(self, request, workspace_id, target_id):
        target = selectors.target_get(workspace=self.workspace, target_id=target_id)
        return Response(TargetDetailOut(target, context={"request": request}).data)

    @extend_schema(request=TargetUpdateIn, responses=TargetOut, summary="Change a target's scale settings")
    def patch(self, request, workspace_id, target_id):
        target = selectors.target_get(workspace=self.workspace, target_id=target_id)
        data = TargetUpdateIn(data=request.data)
        data.is_valid(raise_exception=True)
        services.target_update(actor=request.user, target=target, **data.validated_data)
        return Response(TargetOut(selectors.target_get(workspace=self.workspace, target_id=target_id)).data)

    @extend_schema(responses={204: None}, summary="Delete a target (refused while jobs run on it)")
    def delete(self, request, workspace_id, target_id):
        target = selectors.target_get(workspace=self.workspace, target_id=target_id)
        services.target_delete(actor=request.user, target=target)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TargetNodesApi(WorkspaceListApiView):
    serializer_class = NodeOut

    def get_queryset(self):
        target = selectors.target_get(workspace=self.workspace, target_id=self.kwargs["target_id"])
        return target.nodes.order_by("-requested_at")

    @extend_schema(summary="A target's nodes, newest first")
    def get(self, request, workspace_id, target_id):
        return self.list(request)


def _instance_view(service, summary):
    class InstanceActionApi(WorkspaceApiView):
        @extend_schema(request=None, responses=TargetOut, summary=summary)
        def post(self, request, workspace_id, target_id):
            target = selectors.target_get(workspace=self.workspace, target_id=target_id)
            service(actor=request.user, target=target)
            return Response(TargetOut(selectors.target_get(workspace=self.workspace, target_id=target_id)).data)

    InstanceActionApi.__name__ = f"Instance{service.__name__.title().replace('_', '')}Api"
    return InstanceActionApi


InstanceStartApi = _instance_view(services.instance_start, "Start a compute instance")
InstanceStopApi = _instance_view(services.instance_stop, "Stop a compute instance")
InstanceRestartApi = _instance_view(services.instance_restart, "Restart a compute instance")


class JoinTokenApi(WorkspaceApiView):
    @extend_schema(request=None, responses={201: JoinTokenOut}, summary="Make a new join token (attached compute)")
    def post(self, request, workspace_id, target_id):
        target = selectors.target_get(workspace=self.workspace, target_id=target_id)
        token = services.join_token_regenerate(actor=request.user, target=target)
        return Response({"join_token": token}, status=status.HTTP_201_CREATED)


class UsageApi(WorkspaceApiView):
    @extend_schema(responses=UsageOut, summary="Node-hours and cost per target per day (30 days) and this month")
    def get(self, request, workspace_id):
        usage = selectors.usage(workspace=self.workspace, days=30)
        rows = [
            {
                "target": name,
                "days": usage.days,
                "node_hours": usage.hours.get(name, [0.0] * len(usage.days)),
                "cost": usage.cost.get(name, [0.0] * len(usage.days)),
                "month_node_hours": usage.month_hours.get(name, 0.0),
                "month_cost": usage.month_cost.get(name, 0),
            }
            for name in usage.targets
        ]
        return Response(
            UsageOut(
                {"month_node_hours": usage.month_total_hours, "month_cost": usage.month_total_cost, "targets": rows}
            ).data
        )


class QuotaApi(WorkspaceApiView):
    @extend_schema(responses=QuotaOut, summary="The workspace's compute quota and the nodes and cores in use")
    def get(self, request, workspace_id):
        return Response(QuotaOut(selectors.quota_use(workspace=self.workspace)).data)
