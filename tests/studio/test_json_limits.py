"""Every API route parses JSON through the checked parser: too deep or invalid Unicode is a 400
with the project's error body, before anything reaches a service or the database (R10)."""

import pytest

from studio.json_limits import JsonLimitError, json_depth, json_loads_checked
from workspaces.models import Workspace

pytestmark = pytest.mark.django_db


def post_raw(api, user, body: bytes | str):
    return api(user).post("/api/v1/workspaces/", body, content_type="application/json")


def test_json_nested_950_levels_is_a_400_naming_the_limit(api, owner):
    response = post_raw(api, owner, '{"name": "deep", "description": ' + "[" * 950 + "]" * 950 + "}")
    assert response.status_code == 400, response.content
    message = "The JSON is nested more than 64 levels deep (the limit)."
    assert response.json() == {"error": {"code": "too_deep", "message": message, "fields": {}}}


@pytest.mark.parametrize(
    "body",
    ['{"name": "bad \\ud800 name"}', b'{"name": "bad \xed\xa0\x80 name"}', b'{"name": "bad \xff name"}'],
    ids=["escaped-lone-surrogate", "raw-surrogate-bytes", "raw-invalid-byte"],
)
def test_invalid_unicode_is_a_400_and_stores_nothing(api, owner, body):
    response = post_raw(api, owner, body)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "invalid_unicode"
    assert not Workspace.objects.filter(name__startswith="bad").exists()


def test_a_surrogate_pair_and_brackets_in_strings_are_fine(api, owner):
    response = post_raw(api, owner, '{"name": "ok \\ud83d\\ude00", "description": "' + "[{" * 200 + '"}')
    assert response.status_code == 201, response.content
    assert Workspace.objects.get(pk=response.json()["id"]).name == "ok \U0001f600"


def test_a_json_body_over_the_size_limit_is_a_413_and_stores_nothing(api, owner, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = post_raw(api, owner, '{"name": "big", "description": "' + "x" * 2000 + '"}')
    assert response.status_code == 413, response.content
    assert response.json()["error"]["code"] == "too_large"
    assert not Workspace.objects.filter(name="big").exists()


def test_the_api_limit_follows_the_setting(api, owner, settings):
    settings.STUDIO_JSON_MAX_DEPTH = 1
    response = post_raw(api, owner, '{"name": "two", "description": []}')
    assert response.status_code == 400 and response.json()["error"]["code"] == "too_deep"


@pytest.mark.parametrize(
    ("raw", "depth"),
    [
        (b"1", 0),
        (b"[]", 1),
        (b'[1, {"a": [2]}]', 3),
        (b'{"a": "[[[{{{"}', 1),
        (b'{"a": "\\"[[[", "b": "\\\\"}', 1),  # an escaped quote does not end the string
        (b'["[", "]", [[]]]', 3),
        (b"[" * 5000, 5000),  # not even valid JSON: still measured, never parsed
    ],
)
def test_json_depth_counts_only_brackets_outside_strings(raw, depth):
    assert json_depth(raw) == depth


def test_checked_loads_refuses_before_the_parser_recurses():
    with pytest.raises(JsonLimitError) as refused:
        json_loads_checked(b"[" * 100_000, max_depth=64)
    assert refused.value.code == "too_deep"
    assert json_loads_checked("\ufeff".encode() + b"[1]") == [1]  # a UTF-8 byte order mark is allowed
    assert json_loads_checked("[1]".encode("utf-16")) == [1]  # JSON's other encodings too


@pytest.mark.parametrize(
    ("hyperparameters", "words"),
    [("[" * 950 + "]" * 950, "more than 64 levels"), ('{"max_depth": "\\ud800"}', "lone surrogate")],
    ids=["950-deep", "escaped-lone-surrogate"],
)
def test_the_train_form_refuses_them_as_a_form_error(client, owner, workspace, hyperparameters, words):
    from compute.jobs.models import Job
    from compute.models import TargetKind
    from compute.services import target_create

    target = target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu").target
    client.force_login(owner)
    form = {"kind": "train", "target": target.pk, "hyperparameters": hyperparameters, "algorithm": "random_forest"}
    response = client.post(f"/w/{workspace.pk}/jobs/new/", form)
    assert response.status_code == 200 and words in response.content.decode()
    assert not Job.objects.exists()
