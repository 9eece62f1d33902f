"""Endpoint rules live on the model (validators, max_length) and the services call full_clean():
a description too long is refused with a message, never cut to fit."""

import pytest
from django.core.exceptions import ValidationError

from endpoints import services
from endpoints.models import Endpoint

pytestmark = pytest.mark.django_db

TOO_LONG = "x" * 501


@pytest.fixture
def endpoint(owner, workspace):
    return services.endpoint_create(actor=owner, workspace=workspace, name="churn-api", description="first").endpoint


def test_the_service_refuses_a_description_over_500_characters(owner, endpoint):
    with pytest.raises(ValidationError) as caught:
        services.endpoint_update(actor=owner, endpoint=endpoint, description=TOO_LONG)
    assert "description" in caught.value.message_dict
    endpoint.refresh_from_db()
    assert endpoint.description == "first"
    services.endpoint_update(actor=owner, endpoint=endpoint, description="x" * 500)
    endpoint.refresh_from_db()
    assert endpoint.description == "x" * 500


def test_creating_with_a_description_over_500_characters_is_refused(owner, workspace):
    with pytest.raises(ValidationError) as caught:
        services.endpoint_create(actor=owner, workspace=workspace, name="other", description=TOO_LONG)
    assert "description" in caught.value.message_dict
    assert not Endpoint.objects.filter(name="other").exists()


@pytest.mark.parametrize("name", ["a", "-abc", "Upper", "has_underscore", "x" * 64])
def test_names_outside_the_rule_are_refused_on_the_name(owner, workspace, name):
    with pytest.raises(ValidationError) as caught:
        services.endpoint_create(actor=owner, workspace=workspace, name=name)
    assert list(caught.value.message_dict) == ["name"]


def test_the_api_answers_a_400_naming_the_description(api, owner, workspace, endpoint):
    response = api(owner).patch(
        f"/api/v1/workspaces/{workspace.pk}/endpoints/{endpoint.pk}/", {"description": TOO_LONG}, format="json"
    )
    assert response.status_code == 400
    assert "description" in response.json()["error"]["fields"]
    endpoint.refresh_from_db()
    assert endpoint.description == "first"


def test_the_admin_form_shows_the_error_and_keeps_the_description(client, make_user, endpoint):
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    response = client.post(
        f"/admin/endpoints/endpoint/{endpoint.pk}/change/",
        {
            "description": TOO_LONG,
            "requests_per_minute": 6000,
            "traffic": "{}",
            "mirror_deployment": "",
            "mirror_percent": 0,
            "deployments-TOTAL_FORMS": 0,
            "deployments-INITIAL_FORMS": 0,
        },
    )
    assert response.status_code == 200  # the form again, with its error
    assert "at most 500 characters" in response.content.decode()
    endpoint.refresh_from_db()
    assert endpoint.description == "first"
