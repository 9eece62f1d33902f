"""Base classes for every API view: authentication and the error shape (workspace scoping:
`workspaces/api/base.py`).

Every API view inherits from `ApiView`, so that each one (a) carries DRF's permission policy and
(b) is exempt from the HTML login redirect (an API answers 401, it does not redirect).
"""

from django.contrib.auth.decorators import login_not_required
from rest_framework import generics, mixins
from rest_framework.views import APIView


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
