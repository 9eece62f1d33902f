"""DRF authentication with a job's own token (`Authorization: Bearer sjt_…`), refused by default.

It is the first of the API's authentication classes, and every API view authenticates in DRF's
`initial()`, whatever its permission classes say. So the refusal lives here: a job's token
authenticates only on a view that declares `job_token_allowed = True` (the run API, and the MLflow
tracking API, which confines it to the job's own run); on any other view it is a 403, however that
view sets its permissions. Any other credential is left to the
next class, so personal tokens and sessions behave as they did.
"""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from .tokens import is_job_token_key, job_token_authenticate

INVALID_MESSAGE = "The job's token is invalid, expired or revoked."
RUN_API_ONLY_MESSAGE = "A job's token may only use the run API."


class JobTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        parts = authentication.get_authorization_header(request).decode("latin-1").split()
        if len(parts) != 2 or parts[0] not in (self.keyword, "Token") or not is_job_token_key(parts[1]):
            return None  # not a job's token: the personal-token and session classes decide
        token = job_token_authenticate(parts[1])
        user = token.job.submitted_by if token is not None else None
        if user is None or not user.is_active:
            raise exceptions.AuthenticationFailed(INVALID_MESSAGE)
        view = (getattr(request, "parser_context", None) or {}).get("view")
        if not getattr(view, "job_token_allowed", False):
            raise exceptions.PermissionDenied(RUN_API_ONLY_MESSAGE)
        return user, token

    def authenticate_header(self, request):
        return self.keyword


class JobTokenScheme(OpenApiAuthenticationExtension):
    """In the schema, the run API's operations (only those) name the job's token."""

    target_class = "compute.jobs.authentication.JobTokenAuthentication"
    name = "jobTokenAuth"

    def get_security_requirement(self, auto_schema):
        if getattr(auto_schema.view, "job_token_allowed", False):
            return {self.name: []}
        return None

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "A running job's own token, given to its code: `Authorization: Bearer sjt_…`. "
                "It works only on the run API (/api/v1/run/), for that job, until the job ends."
            ),
        }
