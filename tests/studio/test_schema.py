import json

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_schema_is_valid_and_documents_the_error_shape(api, owner):
    response = api(owner).get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    assert "Error" in schema["components"]["schemas"]
    members = schema["paths"]["/api/v1/workspaces/{workspace_id}/members/"]["post"]["responses"]
    assert members["403"]["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/Error"
    assert "bearerAuth" in schema["components"]["securitySchemes"]


def test_schema_generates_without_warnings(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"))


def test_schema_needs_credentials(api):
    assert api().get("/api/schema/").status_code == 401


def test_swagger_ui_is_served_offline(client, owner):
    client.force_login(owner)
    html = client.get("/api/docs/").content.decode()
    assert "swagger-ui" in html and "cdn" not in html.lower()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
