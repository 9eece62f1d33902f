"""A compute target's description too long is refused with a message on the field, never cut."""

import pytest
from django.core.exceptions import ValidationError

from compute.models import ComputeTarget, TargetKind
from compute.services import target_create, target_update

pytestmark = pytest.mark.django_db


def test_a_description_over_500_characters_is_refused_on_create_and_update(owner, workspace):
    with pytest.raises(ValidationError) as caught:
        target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu", description="x" * 501)
    assert list(caught.value.message_dict) == ["description"]
    assert not ComputeTarget.objects.filter(name="cpu").exists()
    target = target_create(
        actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu", description="x" * 500
    ).target
    with pytest.raises(ValidationError) as caught:
        target_update(actor=owner, target=target, description="y" * 501)
    assert "description" in caught.value.message_dict
    target.refresh_from_db()
    assert target.description == "x" * 500


def test_the_api_answers_a_400_naming_the_description(api, owner, workspace):
    response = api(owner).post(
        f"/api/v1/workspaces/{workspace.pk}/compute/",
        {"kind": "cluster", "name": "cpu", "description": "x" * 501},
        format="json",
    )
    assert response.status_code == 400 and "description" in response.json()["error"]["fields"]


def test_the_api_says_what_a_target_name_may_be(api, owner, workspace):
    response = api(owner).post(
        f"/api/v1/workspaces/{workspace.pk}/compute/", {"kind": "cluster", "name": "GPU pool!"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["fields"]["name"] == [
        "Use 2–64 letters, digits or hyphens, starting with a letter (e.g. cpu-cluster)."
    ]
    assert not ComputeTarget.objects.filter(workspace=workspace).exists()
