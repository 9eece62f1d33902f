from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from studio.api.base import ListApiView
from workspaces.api.base import WorkspaceApiView, WorkspaceListApiView

from .. import selectors, services
from ..policy import Action
from .serializers import ActivityOut, MemberIn, MemberOut, MemberUpdateIn, WorkspaceIn, WorkspaceOut, WorkspaceUpdateIn


def _workspace_out(request, workspace_id):
    workspace = selectors.workspace_get_for_user(user=request.user, workspace_id=workspace_id, with_storage=True)
    return WorkspaceOut(workspace).data


class WorkspaceListApi(ListApiView):
    serializer_class = WorkspaceOut

    def get_queryset(self):
        return selectors.workspace_list_for_user(user=self.request.user, with_storage=True).select_related("created_by")

    @extend_schema(summary="List your workspaces")
    def get(self, request):
        return self.list(request)

    @extend_schema(
        request=WorkspaceIn, responses={201: WorkspaceOut}, summary="Create a workspace (you become its Owner)"
    )
    def post(self, request):
        data = WorkspaceIn(data=request.data)
        data.is_valid(raise_exception=True)
        workspace = services.workspace_create(actor=request.user, **data.validated_data)
        return Response(_workspace_out(request, workspace.pk), status=status.HTTP_201_CREATED)


class WorkspaceDetailApi(WorkspaceApiView):
    write_action = Action.ADMINISTER

    @extend_schema(responses=WorkspaceOut, summary="One workspace")
    def get(self, request, workspace_id):
        return Response(_workspace_out(request, workspace_id))

    @extend_schema(request=WorkspaceUpdateIn, responses=WorkspaceOut, summary="Rename or describe a workspace (Owners)")
    def patch(self, request, workspace_id):
        data = WorkspaceUpdateIn(data=request.data)
        data.is_valid(raise_exception=True)
        services.workspace_update(actor=request.user, workspace=self.workspace, **data.validated_data)
        return Response(_workspace_out(request, workspace_id))

    @extend_schema(responses={204: None}, summary="Delete a workspace and everything in it (Owners)")
    def delete(self, request, workspace_id):
        services.workspace_delete(actor=request.user, workspace=self.workspace)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MemberListApi(WorkspaceListApiView):
    write_action = Action.ADMINISTER
    serializer_class = MemberOut

    def get_queryset(self):
        return selectors.member_list(workspace=self.workspace)

    @extend_schema(summary="List the members of a workspace")
    def get(self, request, workspace_id):
        return self.list(request)

    @extend_schema(request=MemberIn, responses={201: MemberOut}, summary="Add a member by username (Owners)")
    def post(self, request, workspace_id):
        data = MemberIn(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.member_add(actor=request.user, workspace=self.workspace, **data.validated_data)
        return Response(MemberOut(membership).data, status=status.HTTP_201_CREATED)


class MemberDetailApi(WorkspaceApiView):
    write_action = Action.ADMINISTER

    def initial(self, request, *args, **kwargs):
        # Leaving (removing yourself) needs only membership; the service enforces the rest.
        if request.method == "DELETE":
            self.write_action = Action.VIEW
        super().initial(request, *args, **kwargs)

    @extend_schema(responses=MemberOut, summary="One member")
    def get(self, request, workspace_id, member_id):
        return Response(MemberOut(selectors.member_get(workspace=self.workspace, member_id=member_id)).data)

    @extend_schema(request=MemberUpdateIn, responses=MemberOut, summary="Change a member's role (Owners)")
    def patch(self, request, workspace_id, member_id):
        membership = selectors.member_get(workspace=self.workspace, member_id=member_id)
        data = MemberUpdateIn(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.member_change_role(
            actor=request.user, workspace=self.workspace, membership=membership, **data.validated_data
        )
        return Response(MemberOut(membership).data)

    @extend_schema(responses={204: None}, summary="Remove a member (Owners), or leave (yourself)")
    def delete(self, request, workspace_id, member_id):
        membership = selectors.member_get(workspace=self.workspace, member_id=member_id)
        services.member_remove(actor=request.user, workspace=self.workspace, membership=membership)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(summary="A workspace's recent activity, newest first")
class ActivityListApi(WorkspaceListApiView):
    serializer_class = ActivityOut

    def get_queryset(self):
        return selectors.activity_list_for_workspace(workspace=self.workspace)
