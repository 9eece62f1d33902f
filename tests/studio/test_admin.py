import pytest
from django.apps import apps
from django.contrib import admin

pytestmark = pytest.mark.django_db

PROJECT_APPS = {"studio", "workspaces", "compute", "training", "endpoints"}


def test_every_model_of_the_studio_is_in_the_admin():
    for model in apps.get_models():
        if model._meta.app_label in PROJECT_APPS:
            assert admin.site.is_registered(model), f"{model.__name__} is not in the admin console"


def test_every_changelist_loads_with_search_and_filters_for_staff(client, make_user, workspace):
    staff = make_user("root", is_staff=True, is_superuser=True)
    client.force_login(staff)
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label not in PROJECT_APPS:
            continue
        url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        assert client.get(url).status_code == 200, url
        if model_admin.search_fields:
            assert client.get(url + "?q=team").status_code == 200, url
        assert model_admin.list_display != ("__str__",), f"{url} has no list columns"


def test_non_staff_cannot_use_the_admin(client, owner):
    client.force_login(owner)
    response = client.get("/admin/workspaces/workspace/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
