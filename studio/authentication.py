"""DRF authentication with personal API tokens sent as `Authorization: Bearer <token>`; the sign-in address."""

from rest_framework import authentication, exceptions
from rest_framework.settings import api_settings

from . import services
from .credentials import credential_limit
from .csrf import csrf_refusal, csrf_refusal_message


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
        credential_limit(token.user, token.workspace_id)  # a lab's token reaches its workspace only
        return token.user, token

    def authenticate_header(self, request):
        return self.keyword


class SessionAuthenticationBeforeBody(authentication.SessionAuthentication):
    """Session authentication whose CSRF check takes the token from the X-CSRFToken header only,
    so an upload's body is not parsed, and so not stored, before the request is authorised (R9)."""

    def enforce_csrf(self, request):
        reason = csrf_refusal(request._request)
        if reason:
            raise exceptions.PermissionDenied(csrf_refusal_message(reason))


def authentication_before_body() -> list:
    """The API's authentication classes, with session authentication swapped for the one that
    checks CSRF on the header only: for views that must not read the body before authorising."""
    return [
        SessionAuthenticationBeforeBody if cls is authentication.SessionAuthentication else cls
        for cls in api_settings.DEFAULT_AUTHENTICATION_CLASSES
    ]


def client_address(request) -> str | None:
    """The address of the connection, for counting sign-in failures per address (django-axes).

    Not X-Forwarded-For: without a proxy configured to set it, any client could forge it.
    """
    return request.META.get("REMOTE_ADDR")
