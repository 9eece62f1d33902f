"""The base of every view of the MLflow tracking API: authentication, the workspace fetched and
authorised once, a job's token confined to its own run, and MLflow's error shape.

A request names its workspace in the URL (`/w/<workspace_id>/mlflow/...`). It authenticates with
a personal API token (or a session) or with a running job's own token (`sjt_…`). A job's token
acts as the job's submitter, only in the job's workspace, and only on that job's run (and reads
that run's experiment): `TrackingAccess.job` is set, and the run and experiment helpers refuse
everything else.
"""

import math
from dataclasses import dataclass

from rest_framework import exceptions
from rest_framework.permissions import SAFE_METHODS

from compute.jobs.models import Job, JobToken
from studio.api.base import ApiView
from workspaces.models import Workspace
from workspaces.policy import Action
from workspaces.selectors import workspace_get_for_user

from .errors import MlflowError, as_mlflow_error, invalid, mlflow_error_response, not_found, permission_denied

JOB_TOKEN_SCOPE_MESSAGE = "A job's token may only use its own run."  # noqa: S105 - a message, not a secret


@dataclass
class TrackingAccess:
    """Who calls, in which workspace; `job` is set when the caller is a job's own token."""

    user: object
    workspace: Workspace
    action: str
    job: Job | None = None

    @property
    def writes(self) -> bool:
        return self.action == Action.WRITE

    def require_unscoped(self) -> None:
        """Refuse a job's token: the operation is not about its own run."""
        if self.job is not None:
            raise permission_denied(JOB_TOKEN_SCOPE_MESSAGE)


def tracking_access(request, workspace_id, action: str) -> TrackingAccess:
    """Fetch-and-authorise the workspace for the request's caller (Http404 for a non-member,
    PermissionDenied for a role without `action`)."""
    token = request.auth
    if isinstance(token, JobToken):
        if str(token.job.workspace_id) != str(workspace_id):
            raise not_found("Workspace not found.")
        workspace = workspace_get_for_user(user=request.user, workspace_id=workspace_id, action=Action.VIEW)
        return TrackingAccess(user=request.user, workspace=workspace, action=action, job=token.job)
    workspace = workspace_get_for_user(user=request.user, workspace_id=workspace_id, action=action)
    return TrackingAccess(user=request.user, workspace=workspace, action=action)


def _holds_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False


# (A comment, not a docstring: these views are not in the studio's OpenAPI schema, MLflow's
# protocol is documented by MLflow.) `reads`: a POST that only reads (MLflow searches by POST).
class TrackingApiView(ApiView):
    job_token_allowed = True
    schema = None
    reads = False
    access: TrackingAccess | None = None

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        action = Action.VIEW if request.method in SAFE_METHODS or self.reads else Action.WRITE
        self.access = tracking_access(request, kwargs.get("workspace_id"), action)

    def message(self) -> dict:
        """The request's message: the JSON body of a POST, the query of a GET. No text in it may
        hold NUL (PostgreSQL cannot store or compare it)."""
        if self.request.method == "GET":
            data = {key: self.request.query_params.get(key) for key in self.request.query_params}
        else:
            data = self.request.data
            if not isinstance(data, dict):
                raise invalid("The body must be a JSON object.")
        if _holds_nul(data):
            raise invalid("The request may not contain the NUL character.")
        return data

    def handle_exception(self, exc):
        error = as_mlflow_error(exc)
        if error is None:
            return super().handle_exception(exc)
        headers = {}
        if error.status == 401:
            header = self.get_authenticate_header(self.request)
            if header:
                headers["WWW-Authenticate"] = header
            else:
                error = MlflowError(error.message, error.code, status=403)
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            headers["Retry-After"] = str(math.ceil(exc.wait))
        response = mlflow_error_response(error, headers=headers)
        response.exception = True
        return response


# MLflow 3's log_model goes through its logged-models API, which the studio does not serve.
LOGGED_MODEL_ADVICE = (
    "The studio does not serve MLflow's logged models, which mlflow.<flavour>.log_model uses: save the "
    "model folder instead (mlflow.onnx.save_model(onnx_model, 'model')), log it with "
    "mlflow.log_artifacts('model', 'model') and register runs:/<run_id>/model."
)


class EndpointNotFoundApi(TrackingApiView):
    """Any path of the tracking URI that the studio does not serve (traces, logged models…)."""

    def initial(self, request, *args, **kwargs):
        super(TrackingApiView, self).initial(request, *args, **kwargs)  # authenticated, no workspace check

    def _refuse(self, request, *args, **kwargs):
        raise MlflowError(self.message(request), "ENDPOINT_NOT_FOUND")

    def message(self, request) -> str:
        return f"The studio does not serve {request.path}."

    get = post = put = patch = delete = _refuse


class LoggedModelsNotServedApi(EndpointNotFoundApi):
    """MLflow 3's logged-models API (beyond an empty search), which a client's log_model calls first."""

    def message(self, request) -> str:
        return LOGGED_MODEL_ADVICE
