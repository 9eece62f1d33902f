from drf_spectacular.authentication import SessionScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "studio.authentication.ApiTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A personal API token (Account → API tokens): `Authorization: Bearer stu_…`",
        }


class SessionBeforeBodyScheme(SessionScheme):
    """The upload route's session authentication: the same cookie, with the CSRF token in the
    X-CSRFToken header only (checked before the body is read)."""

    target_class = "studio.authentication.SessionAuthenticationBeforeBody"
    name = "cookieAuthCsrfHeader"

    def get_security_definition(self, auto_schema):
        return {
            **super().get_security_definition(auto_schema),
            "description": "The browser session; a POST sends its CSRF token in the X-CSRFToken header.",
        }
