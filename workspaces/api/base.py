"""API views under /api/v1/workspaces/{workspace_id}/: the workspace fetched and authorised once."""

from rest_framework.permissions import SAFE_METHODS

from studio.api.base import ApiView, ListApiView

from ..policy import Action
from ..selectors import workspace_get_for_user


class WorkspaceScopedMixin:
    """Views under /api/v1/workspaces/{workspace_id}/ fetch and authorise the workspace once.

    Reads need VIEW; changes need `write_action`, checked before the body is even parsed, so a
    Reader always gets 403 (the services check again).
    """

    write_action = Action.WRITE
    workspace = None

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        action = Action.VIEW if request.method in SAFE_METHODS else self.write_action
        self.workspace = workspace_get_for_user(
            user=request.user, workspace_id=kwargs.get("workspace_id"), action=action
        )


class WorkspaceApiView(WorkspaceScopedMixin, ApiView):
    pass


class WorkspaceListApiView(WorkspaceScopedMixin, ListApiView):
    pass
