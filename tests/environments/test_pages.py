"""Environment pages: list (and its empty state), create, detail with lock and builds, new version,
lock download, delete with confirmation, the bases page."""

import pytest

from compute.jobs.models import Job
from compute.models import TargetKind
from compute.services import target_create
from environments import services
from environments.bases import bases
from environments.models import BuildState, Environment, EnvironmentBuild

pytestmark = pytest.mark.django_db


def _page(client, user, url, status=200):
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == status, (url, response.status_code)
    return response.content.decode()


def _environment(owner, workspace, name="tables", requirements="tabulate==0.9.0"):
    return services.environment_create(
        actor=owner, workspace=workspace, name=name, base="python", requirements=requirements
    ).environment


def test_an_empty_list_invites_a_writer_to_create_one(client, owner, reader, workspace):
    html = _page(client, owner, f"/w/{workspace.pk}/environments/")
    assert 'data-testid="environments-empty"' in html and "Create an environment" in html
    assert ">Environments</a>" in html  # in the workspace's navigation
    assert "Create an environment" not in _page(client, reader, f"/w/{workspace.pk}/environments/")


def test_the_list_shows_name_latest_version_and_base(client, owner, reader, workspace, django_assert_max_num_queries):
    for i in range(5):
        environment = _environment(owner, workspace, name=f"env-{i}")
    services.environment_version_create(actor=owner, environment=environment, base="studio-sklearn", requirements="")
    client.force_login(reader)
    with django_assert_max_num_queries(10):
        html = client.get(f"/w/{workspace.pk}/environments/").content.decode()
    assert "env-0" in html and "env-4" in html and "v2" in html and "studio-sklearn" in html
    searched = _page(client, reader, f"/w/{workspace.pk}/environments/?q=env-3")
    assert "env-3" in searched and "env-1" not in searched


def test_creating_through_the_form(client, contributor, workspace):
    url = f"/w/{workspace.pk}/environments/new/"
    form = _page(client, contributor, url)
    # The base select shows each base, and the page lists their pinned packages and versions.
    pins = bases()["studio-sklearn"].pinned()
    assert 'value="studio-sklearn"' in form and f"<td>{pins['scikit-learn']}</td>" in form
    response = client.post(
        url,
        {"name": "my.env_1", "base": "python", "requirements": "tabulate\r\nsix>=1.16 # why not", "description": ""},
    )
    environment = Environment.objects.get(name="my.env_1")
    assert response.status_code == 302 and response["Location"].endswith(f"/environments/{environment.pk}/")
    assert environment.versions.get().requirements == "tabulate\nsix>=1.16 # why not"


def test_a_bad_requirement_is_shown_beside_the_field(client, owner, workspace):
    client.force_login(owner)
    response = client.post(
        f"/w/{workspace.pk}/environments/new/",
        {"name": "env", "base": "python", "requirements": "six\n-e .\n<script>alert(1)</script>"},
    )
    html = response.content.decode()
    assert response.status_code == 200 and "Line 2" in html and "pip options" in html
    assert "<script>alert(1)" not in html  # escaped
    assert not Environment.objects.exists()


def test_a_reader_cannot_open_the_forms(client, reader, owner, workspace):
    environment = _environment(owner, workspace)
    _page(client, reader, f"/w/{workspace.pk}/environments/new/", status=403)
    _page(client, reader, f"/w/{workspace.pk}/environments/{environment.pk}/versions/new/", status=403)
    _page(client, reader, f"/w/{workspace.pk}/environments/{environment.pk}/delete/", status=403)


def test_the_detail_shows_versions_lock_and_builds_per_host(client, owner, reader, workspace):
    environment = _environment(owner, workspace)
    version = environment.versions.get()
    version.lock = "tabulate==0.9.0\n"
    version.save()
    EnvironmentBuild.objects.create(
        version=version,
        host="node-1",
        state=BuildState.READY,
        size_bytes=5 * 2**20,
        seconds=2.5,
        log_tail="Installed 1",
    )
    EnvironmentBuild.objects.create(
        version=version, host="node-2", state=BuildState.FAILED, log_tail="error: <b>no network</b>"
    )
    html = _page(client, reader, f"/w/{workspace.pk}/environments/{environment.pk}/")
    assert "tabulate==0.9.0" in html and "node-1" in html and "5.0\xa0MB" in html and "2.5 s" in html
    assert "Failed" in html and "&lt;b&gt;no network&lt;/b&gt;" in html
    assert f"/environments/{environment.pk}/v/1/lock.txt" in html
    _page(client, reader, f"/w/{workspace.pk}/environments/{environment.pk}/?v=9", status=404)

    client.force_login(reader)
    download = client.get(f"/w/{workspace.pk}/environments/{environment.pk}/v/1/lock.txt")
    assert download.status_code == 200 and download.content == b"tabulate==0.9.0\n"
    assert 'filename="tables-v1-requirements.lock.txt"' in download["Content-Disposition"]


def test_a_version_without_a_lock_says_so_and_has_no_download(client, owner, workspace):
    environment = _environment(owner, workspace)
    html = _page(client, owner, f"/w/{workspace.pk}/environments/{environment.pk}/")
    assert "Not resolved yet" in html and "No node has built this version yet" in html
    _page(client, owner, f"/w/{workspace.pk}/environments/{environment.pk}/v/1/lock.txt", status=404)


def test_the_new_version_form_starts_from_the_latest(client, owner, workspace):
    environment = _environment(owner, workspace, requirements="tabulate==0.9.0")
    url = f"/w/{workspace.pk}/environments/{environment.pk}/versions/new/"
    assert "tabulate==0.9.0</textarea>" in _page(client, owner, url)
    response = client.post(url, {"base": "python", "requirements": "tabulate==0.9.0\nsix"})
    assert response.status_code == 302 and response["Location"].endswith("?v=2")
    assert environment.versions.count() == 2
    same = client.post(url, {"base": "python", "requirements": "six\ntabulate==0.9.0"}, follow=True)
    assert "Nothing changed" in same.content.decode() and environment.versions.count() == 2


def test_delete_asks_for_confirmation_and_is_refused_while_a_job_names_it(client, owner, workspace):
    environment = _environment(owner, workspace)
    target = target_create(actor=owner, workspace=workspace, kind=TargetKind.INSTANCE, name="mine").target
    job = Job.objects.create(
        workspace=workspace,
        kind="command",
        target=target,
        spec={"environment_version_id": environment.versions.get().pk},
    )
    url = f"/w/{workspace.pk}/environments/{environment.pk}/delete/"
    assert 'data-testid="delete-blocked"' in _page(client, owner, url)
    refused = client.post(url, follow=True)
    assert f"#{job.pk}" in refused.content.decode() and Environment.objects.exists()
    job.delete()
    confirm = _page(client, owner, url)
    assert "Delete tables?" in confirm and 'type="submit"' in confirm
    assert Environment.objects.exists()  # a GET deletes nothing
    response = client.post(url)
    assert response.status_code == 302 and not Environment.objects.exists()


def test_the_bases_page_lists_each_base_with_its_versions(client, reader, workspace):
    html = _page(client, reader, f"/w/{workspace.pk}/environments/bases/")
    for base in bases().values():
        assert f'data-testid="base-{base.key}"' in html
        for name, version in base.pinned().items():
            assert f"<td>{name}</td><td>{version}</td>" in html


def test_another_workspaces_environment_is_404_on_every_page(client, owner, workspace, outsider, other_workspace):
    theirs = _environment(outsider, other_workspace)
    for tail in ("", "versions/new/", "delete/", "v/1/lock.txt"):
        _page(client, owner, f"/w/{workspace.pk}/environments/{theirs.pk}/{tail}", status=404)
    _page(client, outsider, f"/w/{workspace.pk}/environments/", status=404)
