"""Schemathesis against the project's own OpenAPI schema, with all of its checks: the API keeps its contract.

Every operation gets generated requests, valid and schema-breaking (wrong types, missing fields,
odd ids, huge numbers, extra headers), as an authenticated Owner of a real workspace, through the
WSGI app. Each answer must be one the schema documents (status code, content type, body, headers);
schema-breaking requests must be refused; schema-valid ones must not be refused as invalid; no 5xx.
"""

import json
import os

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from studio.services import token_create

pytestmark = [pytest.mark.django_db]

# Cases per operation and phase. Derandomized so that CI runs the same cases every time;
# STUDIO_FUZZ_EXAMPLES=200 digs deeper.
EXAMPLES = int(os.environ.get("STUDIO_FUZZ_EXAMPLES", "5"))

# The schema says what a well-formed request is; a few rules of a valid one it cannot express.
CONTENT_NOT_IN_SCHEMA = {
    # A data upload must be CSV or Parquet: a valid multipart body with a PNG in it is rightly refused;
    # and a multipart field is text, so a "wrong-typed" null or number arrives as the valid text "null".
    ("POST", "/api/v1/workspaces/{workspace_id}/data-assets/"): [positive_data_acceptance, negative_data_rejection],
    # Code must be an archive (or a folder's files with either `file` or `files`, not both nor neither).
    ("POST", "/api/v1/workspaces/{workspace_id}/code/"): [positive_data_acceptance, negative_data_rejection],
    # A model must be a skops, ONNX or MLflow model file that fits its signature; multipart fields are text.
    ("POST", "/api/v1/workspaces/{workspace_id}/models/upload/"): [positive_data_acceptance, negative_data_rejection],
    # A time zone must be an IANA name (a list of ~600, not a pattern); an environment version must be
    # one of the workspace's own.
    ("POST", "/api/v1/workspaces/{workspace_id}/compute/{target_id}/schedules/"): [positive_data_acceptance],
    ("PUT", "/api/v1/workspaces/{workspace_id}/compute/{target_id}/lab/environment/"): [positive_data_acceptance],
    # An expiry must be in the future: "later than now" is not something a schema can say.
    ("POST", "/api/v1/tokens/"): [positive_data_acceptance],
    # min_nodes ≤ max_nodes is a rule between two fields, which OpenAPI 3.0 cannot express.
    ("POST", "/api/v1/workspaces/{workspace_id}/compute/"): [positive_data_acceptance],
    ("PATCH", "/api/v1/workspaces/{workspace_id}/compute/{target_id}/"): [positive_data_acceptance],
    # Which fields a datastore needs depends on its kind (url for postgresql; bucket and a key pair for s3).
    ("POST", "/api/v1/workspaces/{workspace_id}/datastores/"): [positive_data_acceptance],
    # Requirements are text whose every line must be a PEP 508 requirement: a grammar, not a pattern.
    ("POST", "/api/v1/workspaces/{workspace_id}/environments/"): [positive_data_acceptance],
    ("POST", "/api/v1/workspaces/{workspace_id}/environments/{environment_id}/versions/"): [positive_data_acceptance],
}


def _schema():
    from drf_spectacular.generators import SchemaGenerator

    generated = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(json.dumps(generated, default=str))


# The test sends the Owner's token itself, so Schemathesis must not generate (or break) that header.
schema = schemathesis.openapi.from_dict(
    _schema(), config=SchemathesisConfig.from_dict({"generation": {"with-security-parameters": False}})
)
schema.app = WSGIHandler()


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    """As Django's test client does: a request must not close the test's database connection."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def bearer(owner, workspace):
    return {"Authorization": f"Bearer {token_create(user=owner, name='fuzz').plaintext}"}


@schema.parametrize()
@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_keeps_its_contract(case, bearer, workspace):
    path_is_broken_on_purpose = case.meta is not None and case.meta.is_negative_at(ParameterLocation.PATH)
    if "workspace_id" in (case.path_parameters or {}) and not path_is_broken_on_purpose:
        case.path_parameters["workspace_id"] = workspace.pk  # most cases then reach the view's own checks
    excluded = CONTENT_NOT_IN_SCHEMA.get((case.method.upper(), case.path), [])
    case.call_and_validate(headers=bearer, excluded_checks=excluded)
