from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from .. import selectors, services
from .base import ApiView, ListApiView
from .serializers import MeOut, TokenCreatedOut, TokenIn, TokenOut, WorkerCheckOut


class MeApi(ApiView):
    @extend_schema(responses=MeOut, summary="The signed-in user")
    def get(self, request):
        return Response(MeOut(request.user).data)


@extend_schema(summary="List your API tokens")
class TokenListApi(ListApiView):
    serializer_class = TokenOut

    def get_queryset(self):
        return selectors.token_list(user=self.request.user)

    @extend_schema(request=TokenIn, responses={201: TokenCreatedOut}, summary="Create an API token (shown once)")
    def post(self, request):
        data = TokenIn(data=request.data)
        data.is_valid(raise_exception=True)
        issued = services.token_create(user=request.user, **data.validated_data)
        body = TokenOut(issued.token).data | {"token": issued.plaintext}
        return Response(body, status=status.HTTP_201_CREATED)


class TokenDetailApi(ApiView):
    @extend_schema(responses=TokenOut, summary="One API token")
    def get(self, request, token_id):
        return Response(TokenOut(selectors.token_get(user=request.user, token_id=token_id)).data)

    @extend_schema(responses={204: None}, summary="Revoke an API token")
    def delete(self, request, token_id):
        services.token_revoke(user=request.user, token=selectors.token_get(user=request.user, token_id=token_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class WorkerCheckListApi(ApiView):
    @extend_schema(request=None, responses={202: WorkerCheckOut}, summary="Send a canary task to the workers")
    def post(self, request):
        check = services.worker_check_request(user=request.user)
        return Response(WorkerCheckOut(check).data, status=status.HTTP_202_ACCEPTED)


class WorkerCheckDetailApi(ApiView):
    @extend_schema(
        responses=WorkerCheckOut, summary="A canary task's result (completed_at is set once a worker ran it)"
    )
    def get(self, request, check_id):
        return Response(WorkerCheckOut(selectors.worker_check_get(user=request.user, check_id=check_id)).data)
