"""The API keeps its contract: one JSON error body for every error under /api/, the status code
the schema documents for each kind of refusal, and a schema that describes what the code answers."""

import json

import pytest

from compute.models import TargetKind
from compute.services import target_create
from data.services import data_version_from_file
from workspaces.models import Membership

pytestmark = pytest.mark.django_db


def assert_error_body(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    error = json.loads(response.content)["error"]
    assert error["code"] == code and error["message"] and isinstance(error["fields"], dict)
    return error


# --- 404 and 405 that Django answers before any API view runs ---------------------------------------
@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/no-such-thing/",
        "/api/v1/workspaces/{ws}/no-such-thing/",
        "/api/nope",
        "/api/v1/workspaces/" + "9" * 19 + "/",  # too long for the id converter: no route matches
        "/api/v1/workspaces/{ws}/jobs/" + "9" * 40 + "/",
        "/api/v1/workspaces/-1/",
    ],
)
def test_unknown_api_routes_answer_the_json_error_body(api, owner, workspace, path):
    assert_error_body(api(owner).get(path.format(ws=workspace.pk)), 404, "not_found")


def test_an_unknown_api_route_is_json_for_anonymous_callers_too(api):
    assert_error_body(api().post("/api/v1/no-such-thing/", {}), 404, "not_found")


def test_a_405_is_json_too_and_pages_keep_their_html_404(api, client, owner):
    response = api(owner).delete("/api/v1/me/")
    assert_error_body(response, 405, "method_not_allowed")
    assert "GET" in response["Allow"]
    client.force_login(owner)
    page = client.get("/no-such-page/")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html") and b"Not found" in page.content
    assert_error_body(client.get("/api/v1/no-such-page/"), 404, "not_found")  # the same session, under /api/


# --- Request limits the schema documents are enforced -----------------------------------------------
@pytest.mark.parametrize("query", ["page_size=abc", "page_size=0", "page_size=501", "page_size=5&page_size=6"])
def test_a_page_size_outside_the_documented_range_is_a_400(api, owner, workspace, query):
    error = assert_error_body(api(owner).get(f"/api/v1/workspaces/?{query}"), 400, "invalid")
    assert "page_size" in error["fields"]


def test_an_empty_id_filter_is_a_400_not_the_unfiltered_list(api, owner, workspace):
    error = assert_error_body(api(owner).get(f"/api/v1/workspaces/{workspace.pk}/jobs/?target="), 400, "invalid")
    assert "target" in error["fields"]


def test_a_page_that_is_not_a_whole_number_is_a_400(api, owner, workspace):
    error = assert_error_body(api(owner).get("/api/v1/workspaces/?page=last"), 400, "invalid")
    assert "page" in error["fields"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": "Team 2", "description": 0}, "description"),  # a number for a string
        ({"name": 2024}, "name"),
    ],
)
def test_a_json_value_of_the_wrong_type_is_refused_not_converted(api, owner, body, field):
    error = assert_error_body(api(owner).post("/api/v1/workspaces/", body, format="json"), 400, "invalid")
    assert field in error["fields"]


@pytest.mark.parametrize("value", ["2", 2.0])
def test_an_integer_field_takes_only_a_json_integer(api, owner, workspace, value):
    body = {"kind": "cluster", "name": "cpu", "max_nodes": value}
    response = api(owner).post(f"/api/v1/workspaces/{workspace.pk}/compute/", body, format="json")
    assert "max_nodes" in assert_error_body(response, 400, "invalid")["fields"]


def test_a_form_encoded_body_is_a_415_on_json_operations(api, owner):
    response = api(owner).post("/api/v1/workspaces/", {"name": "Team 2"}, format="multipart")
    assert_error_body(response, 415, "unsupported_media_type")


@pytest.fixture
def version_url(owner, workspace, tmp_path):
    source = tmp_path / "small.csv"
    source.write_text("a,b\n1,x\n2,y\n3,x\n")
    version = data_version_from_file(actor=owner, workspace=workspace, path=source, name="small")
    return f"/api/v1/workspaces/{workspace.pk}/data-assets/{version.asset_id}/versions/{version.version}/"


@pytest.mark.parametrize(
    "query, parameter",
    [
        ("preview/?limit=abc", "limit"),
        ("preview/?limit=5&limit=6", "limit"),
        ("download/?format=x&format=csv", "format"),
    ],
)
def test_query_parameters_outside_their_documented_values_are_a_400(api, owner, version_url, query, parameter):
    error = assert_error_body(api(owner).get(version_url + query), 400, "invalid")
    assert parameter in error["fields"]


def test_a_csv_download_has_a_media_type_the_schema_documents(api, owner, version_url, schema):
    response = api(owner).get(version_url + "download/")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    path = "/api/v1/workspaces/{workspace_id}/data-assets/{asset_id}/versions/{version}/download/"
    assert "text/csv" in schema["paths"][path]["get"]["responses"]["200"]["content"]


# --- Well-formed requests that cannot be done: 404 for an id that names nothing, 409 for a state ----
def test_adding_a_user_who_does_not_exist_is_a_404_naming_the_field(api, owner, workspace):
    body = {"username": "nobody-here", "role": "reader"}
    response = api(owner).post(f"/api/v1/workspaces/{workspace.pk}/members/", body, format="json")
    assert "username" in assert_error_body(response, 404, "not_found")["fields"]


def test_a_job_on_a_target_that_does_not_exist_is_a_404_naming_target(api, owner, workspace):
    body = {"kind": "diagnostic", "target": 999999, "spec": {}}
    response = api(owner).post(f"/api/v1/workspaces/{workspace.pk}/jobs/", body, format="json")
    assert "target" in assert_error_body(response, 404, "not_found")["fields"]


def test_removing_the_last_owner_is_a_409_conflict(api, owner, workspace):
    mine = Membership.objects.get(workspace=workspace, user=owner)
    response = api(owner).delete(f"/api/v1/workspaces/{workspace.pk}/members/{mine.pk}/")
    assert_error_body(response, 409, "conflict")


def test_a_second_target_with_the_same_name_is_a_409_conflict(api, owner, workspace):
    target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu")
    body = {"kind": "cluster", "name": "cpu"}
    response = api(owner).post(f"/api/v1/workspaces/{workspace.pk}/compute/", body, format="json")
    assert "name" in assert_error_body(response, 409, "conflict")["fields"]


def test_stopping_a_cluster_by_hand_is_a_409_conflict(api, owner, workspace):
    cluster = target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu").target
    response = api(owner).post(f"/api/v1/workspaces/{workspace.pk}/compute/{cluster.pk}/stop/")
    assert_error_body(response, 409, "conflict")


# --- The schema says all of it ------------------------------------------------------------------------
@pytest.fixture
def schema(api, owner):
    response = api(owner).get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    return json.loads(response.content)


def _operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if isinstance(operation, dict) and "responses" in operation:
                yield path, method, operation


def test_every_operation_documents_the_errors_it_can_answer(schema):
    error_ref = {"$ref": "#/components/schemas/Error"}
    for path, method, operation in _operations(schema):
        expected = {"400", "401", "403", "404", "406", "413", "429"}
        if method in ("post", "put", "patch", "delete"):
            expected |= {"409", "415"}
        responses = operation["responses"]
        assert expected <= set(responses), (method, path, expected - set(responses))
        for status in expected:
            assert responses[status]["content"]["application/json"]["schema"] == error_ref, (method, path, status)
        assert "Retry-After" in responses["429"]["headers"], (method, path)


def test_the_schema_says_which_output_fields_can_be_null(schema):
    target = schema["components"]["schemas"]["TargetOut"]["properties"]
    assert target["owner"]["nullable"] is True  # a cluster has no owner
    job = schema["components"]["schemas"]["Job"]["properties"] if "Job" in schema["components"]["schemas"] else None
    job = job or schema["components"]["schemas"]["JobOut"]["properties"]
    assert job["node"]["nullable"] is True  # a queued job has no node yet


def test_the_schema_documents_limits_of_requests(schema):
    components = schema["components"]["schemas"]
    assert components["TargetInRequest"]["properties"]["name"]["pattern"] == "^[A-Za-z][A-Za-z0-9-]{1,63}$"
    assert components["EndpointInRequest"]["properties"]["name"]["pattern"] == "^[a-z][a-z0-9-]{1,62}$"
    page_size = next(p for p in schema["paths"]["/api/v1/workspaces/"]["get"]["parameters"] if p["name"] == "page_size")
    assert page_size["schema"] == {"type": "integer", "minimum": 1, "maximum": 500}
    job_filters = {
        p["name"]: p for p in schema["paths"]["/api/v1/workspaces/{workspace_id}/jobs/"]["get"]["parameters"]
    }
    assert "enum" in job_filters["status"]["schema"]
    target_in = components["TargetInRequest"]["properties"]
    assert target_in["idle_shutdown_minutes"]["maximum"] == 7 * 24 * 60
    assert target_in["description"]["oneOf"][0]["pattern"] == "^[^\\x00]*$"  # DRF refuses NUL in text
    assert "role" in components["MemberUpdateInRequest"]["required"]  # PATCH bodies as the code reads them


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_every_request_serializer_refuses_wrong_json_types():
    """An `…In` serializer added later gets the strict types too (or the fuzz run finds it out)."""
    from rest_framework import serializers

    from studio.api.inputs import InputSerializer, QueryInputSerializer

    assert len(list(_subclasses(InputSerializer))) >= 15
    multipart_only = {  # form fields are all text
        "workspaces.api.data_serializers.UploadIn",
        "training.api.registry_views.ModelUploadIn",
    }
    lax = [
        f"{cls.__module__}.{cls.__name__}"
        for cls in _subclasses(serializers.Serializer)
        if cls.__name__.endswith("In")
        and cls.__module__.split(".")[0] in ("studio", "workspaces", "compute", "training", "endpoints")
        and not issubclass(cls, (InputSerializer, QueryInputSerializer))
    ]
    assert set(lax) <= multipart_only, set(lax) - multipart_only
