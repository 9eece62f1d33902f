"""DRF authentication with personal API tokens sent as `Authorization: Bearer <token>`; the sign-in address."""

from rest_framework import authentication, exceptions

from . import services


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        parts = header.split()
        if parts[0] not in (self.keyword, "Token"):
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Send the token as 'Authorization: Bearer <token>'.")
        token = services.token_authenticate(parts[1])
        if token is None:
            raise exceptions.AuthenticationFailed("The API token is invalid, expired or revoked.")
        return token.user, token

    def authenticate_header(self, request):
        return self.keyword


def client_address(request) -> str | None:
    """The address of the connection, for counting sign-in failures per address (django-axes).

    Not X-Forwarded-For: without a proxy configured to set it, any client could forge it.
    """
    return request.META.get("REMOTE_ADDR")
