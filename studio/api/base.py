"""Base classes for every API view: authentication, the error shape and workspace scoping.

Every API view inherits from `ApiView`, so that each one (a) carries DRF's permission policy and
(b) is exempt from the HTML login redirect (an API answers 401, it does not redirect).
"""

from django.contrib.auth.decorators import login_not_required
from rest_framework import generics, mixins
from rest_framework.permissions import SAFE_METHODS
from rest_framework.views import APIView

from workspaces.policy import Action
from workspaces.selectors import workspace_get_for_user


class _ApiMixin:
    @classmethod
    def as_view(cls, *args, **kwargs):
        return login_not_required(super().as_view(*args, **kwargs))


class ApiView(_ApiMixin, APIView):
    pass


class GenericApiView(_ApiMixin, generics.GenericAPIView):
    pass


class ListApiView(mixins.ListModelMixin, GenericApiView):
    """GET lists `get_queryset()` with `serializer_class`, paginated."""

    def get(self, request, *args, **kwargs):
        return self.list(request, *args, **kwargs)


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
