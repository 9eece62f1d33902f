"""The endpoint pages' flow: an inference cluster is offered before the one-time keys are shown,
the keys page leads nowhere but on to the endpoint, and Deploy shows it is working."""

import re

import pytest

from compute.models import ComputeTarget, TargetKind
from endpoints.models import Endpoint

pytestmark = pytest.mark.django_db


def _main(html: str) -> str:
    """The page's own content (the topbar and the workspace sidebar are the same on every page)."""
    return html[html.index('<main id="main">') : html.index("</main>")]


def test_the_create_page_offers_an_inference_cluster_when_the_workspace_has_none(client, owner, workspace):
    client.force_login(owner)
    html = client.get(f"/w/{workspace.pk}/endpoints/").content.decode()
    assert 'name="inference_cluster"' in html


def test_the_create_page_offers_no_cluster_when_one_exists(client, owner, workspace, inference):
    client.force_login(owner)
    html = client.get(f"/w/{workspace.pk}/endpoints/").content.decode()
    assert 'name="inference_cluster"' not in html


def test_creating_an_endpoint_creates_the_inference_cluster_inline(client, owner, workspace):
    client.force_login(owner)
    response = client.post(
        f"/w/{workspace.pk}/endpoints/",
        {"name": "churn-web", "create_inference_cluster": "on", "inference_cluster": "serving"},
    )
    assert response.status_code == 302, response.content.decode()
    endpoint = Endpoint.objects.get(name="churn-web")
    cluster = ComputeTarget.objects.get(workspace=workspace, name="serving")
    assert cluster.kind == TargetKind.INFERENCE
    # After the keys are confirmed, Deploy is ready: no detour to the compute pages.
    client.get(response.url)
    details = client.get(f"/w/{workspace.pk}/endpoints/{endpoint.pk}/").content.decode()
    assert "no inference cluster" not in details
    assert re.search(r'<button[^>]*data-testid="deploy"(?![^>]*disabled)[^>]*>', details)


def test_leaving_the_cluster_box_unticked_creates_no_cluster(client, owner, workspace):
    client.force_login(owner)
    response = client.post(f"/w/{workspace.pk}/endpoints/", {"name": "churn-web", "inference_cluster": "serving"})
    assert response.status_code == 302
    assert not ComputeTarget.objects.filter(workspace=workspace).exists()


def test_a_refused_endpoint_leaves_no_cluster_behind(client, owner, workspace):
    client.force_login(owner)
    first = {"name": "taken", "create_inference_cluster": "on", "inference_cluster": "serving"}
    client.post(f"/w/{workspace.pk}/endpoints/", first)
    ComputeTarget.objects.all().delete()
    again = client.post(f"/w/{workspace.pk}/endpoints/", {**first, "inference_cluster": "other"})
    assert again.status_code == 200
    assert "is taken" in again.content.decode()
    assert not ComputeTarget.objects.filter(workspace=workspace).exists()


def test_a_bad_cluster_name_is_shown_beside_the_cluster_field(client, owner, workspace):
    client.force_login(owner)
    response = client.post(
        f"/w/{workspace.pk}/endpoints/",
        {"name": "churn-web", "create_inference_cluster": "on", "inference_cluster": ""},
    )
    assert response.status_code == 200
    assert not Endpoint.objects.exists() and not ComputeTarget.objects.exists()
    assert "inference cluster" in response.content.decode().lower()


def test_the_keys_page_has_nothing_that_leads_away(client, owner, workspace):
    client.force_login(owner)
    response = client.post(f"/w/{workspace.pk}/endpoints/?", {"name": "churn-web", "deploy": "7"})
    endpoint = Endpoint.objects.get(name="churn-web")
    html = client.get(response.url).content.decode()
    main = _main(html)
    assert f"sk_{endpoint.key1_prefix}_" in main
    # No inference cluster yet, but no "create one" link here: that offer came on the create page.
    links = re.findall(r'href="([^"]*)"', main)
    assert links == [f"/w/{workspace.pk}/endpoints/{endpoint.pk}/?deploy=7"], links
    assert "formaction" not in main and "<form" not in main
    # Continuing shows the endpoint page, with the model to deploy still chosen and the keys gone.
    details = client.get(links[0]).content.decode()
    assert f"sk_{endpoint.key1_prefix}_" not in details and 'data-testid="deploy"' in details


def test_regenerated_keys_get_the_same_confirm_step(client, owner, workspace, inference):
    client.force_login(owner)
    client.post(f"/w/{workspace.pk}/endpoints/", {"name": "churn-web"})
    endpoint = Endpoint.objects.get(name="churn-web")
    client.get(f"/w/{workspace.pk}/endpoints/{endpoint.pk}/")
    client.post(f"/w/{workspace.pk}/endpoints/{endpoint.pk}/keys/", {"which": "primary"})
    main = _main(client.get(f"/w/{workspace.pk}/endpoints/{endpoint.pk}/").content.decode())
    assert 'data-testid="endpoint-keys"' in main
    assert re.findall(r'href="([^"]*)"', main) == [f"/w/{workspace.pk}/endpoints/{endpoint.pk}/"]


def test_the_deploy_button_says_it_is_working(client, owner, workspace, inference):
    client.force_login(owner)
    client.post(f"/w/{workspace.pk}/endpoints/", {"name": "churn-web"})
    endpoint = Endpoint.objects.get(name="churn-web")
    client.get(f"/w/{workspace.pk}/endpoints/{endpoint.pk}/")
    html = client.get(f"/w/{workspace.pk}/endpoints/{endpoint.pk}/").content.decode()
    form = re.search(r'<form[^>]*data-testid="deploy-form"[^>]*>', html).group(0)
    assert "hx-post" in form and "hx-disabled-elt" in form and "hx-indicator" in form
    assert "Deploying…" in html
