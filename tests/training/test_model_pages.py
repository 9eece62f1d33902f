"""A registered model's page: its versions, and a pair of them to compare once there are two."""

import pytest

from training.models import ModelVersion, RegisteredModel

pytestmark = pytest.mark.django_db


def add_version(model, number, owner):
    return ModelVersion.objects.create(
        model=model,
        version=number,
        algorithm="lightgbm",
        signature={"columns": []},
        classes=["no", "yes"],
        metrics={"accuracy": 0.9 + number / 100, "auc_weighted": 0.8},
        sha256="0" * 64,
        created_by=owner,
    )


def test_compare_is_offered_once_a_model_has_two_versions(client, owner, workspace):
    model = RegisteredModel.objects.create(workspace=workspace, name="churn (é)")
    add_version(model, 1, owner)
    client.force_login(owner)
    url = f"/w/{workspace.pk}/models/{model.pk}/"

    page = client.get(url).content.decode()
    assert f'href="/w/{workspace.pk}/models/{model.pk}/v/1/"' in page and "0.9100" in page
    assert 'name="a"' not in page and "<th>A</th>" not in page and "Compare A and B" not in page

    add_version(model, 2, owner)
    page = client.get(url).content.decode()
    assert page.count('name="a"') == page.count('name="b"') == 2 and "Compare A and B" in page
    assert 'name="a" value="1" checked' in page and 'name="b" value="2" checked' in page
