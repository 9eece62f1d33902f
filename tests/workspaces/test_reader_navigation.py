"""A Reader's navigation shows what they may do: no link on a workspace page leads them to a
403, and a 403 they reach anyway (a typed URL) keeps the workspace's sidebar."""

import re

import pytest

from compute.jobs.diagnostic import DIAGNOSTIC

pytestmark = pytest.mark.django_db


def links(html: str) -> set[str]:
    return {href for href in re.findall(r'href="(/w/[^"#?]*)', html)}


@pytest.fixture
def populated(workspace, owner, penguins):
    """Data, a job, compute, a registered model and an endpoint with a deployment."""
    from compute.jobs.services import job_submit
    from compute.models import TargetKind
    from compute.services import target_create
    from endpoints.services import deployment_create, endpoint_create
    from tests.endpoints.conftest import register

    cluster = target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu").target
    job_submit(actor=owner, workspace=workspace, kind=DIAGNOSTIC, target=cluster, spec={})
    version = register(workspace, owner)
    serving = target_create(actor=owner, workspace=workspace, kind=TargetKind.INFERENCE, name="serving").target
    endpoint = endpoint_create(actor=owner, workspace=workspace, name="churn").endpoint
    deployment_create(actor=owner, endpoint=endpoint, name="blue", model_version=version, target=serving)
    return workspace


def test_no_link_a_reader_sees_leads_to_a_403(client, reader, populated):
    workspace = populated
    client.force_login(reader)
    seen, queue, forbidden = set(), [f"/w/{workspace.pk}/"], []
    while queue:
        url = queue.pop()
        if url in seen:
            continue
        seen.add(url)
        response = client.get(url)
        if response.status_code == 403:
            forbidden.append(url)
        elif response.status_code == 200 and "text/html" in response.get("Content-Type", ""):
            queue.extend(links(response.content.decode()) - seen)
    assert len(seen) >= 15
    assert forbidden == [], f"links that give a Reader 403: {forbidden}"


def test_the_sidebar_shows_a_reader_what_they_may_do(client, reader, owner, workspace):
    client.force_login(reader)
    sidebar = client.get(f"/w/{workspace.pk}/").content.decode().split('class="sidebar"')[1].split("</aside>")[0]
    assert f"/w/{workspace.pk}/jobs/automl/new/" not in sidebar


def test_a_403_keeps_the_workspace_sidebar(client, reader, workspace):
    client.force_login(reader)
    response = client.get(f"/w/{workspace.pk}/delete/")
    assert response.status_code == 403
    html = response.content.decode()
    assert 'class="sidebar"' in html and f'href="/w/{workspace.pk}/data/"' in html
    assert "Reader" in html


def test_a_403_tells_an_outsider_nothing(client, outsider, workspace):
    client.force_login(outsider)
    assert client.get(f"/w/{workspace.pk}/delete/").status_code == 404
