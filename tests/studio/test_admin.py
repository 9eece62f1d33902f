import pytest
from django.apps import apps
from django.contrib import admin

from compute.jobs.diagnostic import DIAGNOSTIC

pytestmark = pytest.mark.django_db

PROJECT_APPS = {
    "studio",
    "workspaces",
    "data",
    "compute",
    "environments",
    "training",
    "commands",
    "endpoints",
    "tracking",
    "labs",
}


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


# --- The admin console goes through the services ---------------------------------------------------
@pytest.fixture
def staff(make_user):
    return make_user("root", is_staff=True, is_superuser=True)


@pytest.fixture
def console(client, staff):
    client.force_login(staff)
    return client


def _errors(response) -> str:
    from django.contrib.messages import get_messages

    return " ".join(str(m) for m in get_messages(response.wsgi_request))


def test_traffic_saved_in_the_admin_must_add_up_and_reloads_serving(console, owner, workspace):
    from compute.models import TargetKind
    from compute.services import target_create
    from endpoints.models import Endpoint
    from endpoints.services import deployment_create, endpoint_create
    from tests.endpoints.conftest import register
    from workspaces.models import Activity

    version = register(workspace, owner)
    serving = target_create(actor=owner, workspace=workspace, kind=TargetKind.INFERENCE, name="serving").target
    endpoint = endpoint_create(actor=owner, workspace=workspace, name="churn").endpoint
    for name in ("blue", "green"):
        deployment_create(actor=owner, endpoint=endpoint, name=name, model_version=version, target=serving)
    endpoint.refresh_from_db()
    before = endpoint.config_version
    url = f"/admin/endpoints/endpoint/{endpoint.pk}/change/"
    form = {
        "description": "",
        "requests_per_minute": 6000,
        "mirror_deployment": "",
        "mirror_percent": 0,
        "deployments-TOTAL_FORMS": 0,
        "deployments-INITIAL_FORMS": 0,
    }

    response = console.post(url, {**form, "traffic": '{"blue": 60, "green": 60}'})
    endpoint.refresh_from_db()
    assert response.status_code == 302 and "must make 100" in _errors(response)
    assert endpoint.traffic != {"blue": 60, "green": 60}

    response = console.post(url, {**form, "traffic": '{"blue": 60, "green": 40}'})
    endpoint.refresh_from_db()
    assert response.status_code == 302
    assert endpoint.traffic == {"blue": 60, "green": 40}
    assert endpoint.config_version > before  # serving processes reload on the bumped version
    assert Activity.objects.filter(workspace=workspace, verb="endpoint_traffic", actor__username="root").exists()
    assert Endpoint.objects.filter(pk=endpoint.pk).exists()


def test_the_last_owner_cannot_be_removed_or_demoted_in_the_admin(console, owner, workspace):
    from workspaces.models import Membership, Role

    membership = Membership.objects.get(workspace=workspace, user=owner)
    response = console.post(f"/admin/workspaces/membership/{membership.pk}/change/", {"role": Role.READER})
    assert "last Owner" in _errors(response)
    response = console.post(f"/admin/workspaces/membership/{membership.pk}/delete/", {"post": "yes"})
    assert "last Owner" in _errors(response)
    membership.refresh_from_db()
    assert membership.role == Role.OWNER


def test_a_member_added_and_re_roled_in_the_admin_is_logged(console, workspace, make_user):
    from workspaces.models import Activity, Membership, Role

    newcomer = make_user("newcomer")
    response = console.post(
        "/admin/workspaces/membership/add/", {"user": newcomer.pk, "workspace": workspace.pk, "role": Role.READER}
    )
    assert response.status_code == 302, response.content[:2000]
    membership = Membership.objects.get(workspace=workspace, user=newcomer)
    assert membership.added_by.username == "root"
    console.post(f"/admin/workspaces/membership/{membership.pk}/change/", {"role": Role.CONTRIBUTOR})
    membership.refresh_from_db()
    assert membership.role == Role.CONTRIBUTOR
    verbs = set(Activity.objects.filter(workspace=workspace, actor__username="root").values_list("verb", flat=True))
    assert {"member_added", "member_role_changed"} <= verbs


def test_job_status_and_attempts_are_read_only_and_deleting_frees_its_files(
    console, owner, workspace, django_capture_on_commit_callbacks
):
    from compute.jobs import services
    from compute.jobs.models import Job, JobStatus
    from compute.models import TargetKind
    from compute.services import target_create

    target = target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu").target
    job = services.job_submit(actor=owner, workspace=workspace, kind=DIAGNOSTIC, target=target, spec={})
    url = f"/admin/compute/job/{job.pk}/"
    page = console.get(url + "change/").content.decode()
    assert 'name="status"' not in page and 'name="attempt"' not in page
    console.post(url + "change/", {"status": JobStatus.COMPLETED, "attempt": 7})
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and job.attempt == 0

    response = console.post(url + "delete/", {"post": "yes"})  # an active job: refused by job_delete
    assert "cancel it before deleting" in _errors(response) and Job.objects.filter(pk=job.pk).exists()

    services.job_cancel(actor=owner, job=job)
    folder = services.job_artifact_dir(job)
    folder.mkdir(parents=True)
    (folder / "model.skops").write_bytes(b"x" * 100)
    with django_capture_on_commit_callbacks(execute=True):
        console.post(url + "delete/", {"post": "yes"})
    assert not Job.objects.filter(pk=job.pk).exists()
    assert not folder.exists()


def test_workspace_edits_and_deletion_go_through_the_services(
    console, owner, workspace, django_capture_on_commit_callbacks
):
    from workspaces.models import Activity, Workspace
    from workspaces.services import workspace_artifact_dir

    url = f"/admin/workspaces/workspace/{workspace.pk}/"
    form = {"name": "renamed", "description": "", "storage_quota_bytes": ""}
    form.update({"memberships-TOTAL_FORMS": 0, "memberships-INITIAL_FORMS": 0})
    response = console.post(url + "change/", form)
    assert response.status_code == 302, response.content[:3000]
    assert Activity.objects.filter(workspace=workspace, verb="updated", actor__username="root").exists()
    folder = workspace_artifact_dir(workspace.pk)
    folder.mkdir(parents=True)
    with django_capture_on_commit_callbacks(execute=True):
        console.post(url + "delete/", {"post": "yes"})
    assert not Workspace.objects.filter(pk=workspace.pk).exists() and not folder.exists()


def test_compute_target_settings_are_checked_by_the_service(console, staff, owner, workspace):
    from compute.models import TargetKind
    from compute.services import compute_quota_set, target_create

    target = target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu").target
    compute_quota_set(actor=staff, workspace=workspace, max_nodes=2, max_cores=None)
    form = {
        "description": "",
        "priority": target.priority,
        "min_nodes": 3,
        "max_nodes": 5,
        "idle_seconds_before_scaledown": 120,
        "idle_shutdown_minutes": "",
        "nodes-TOTAL_FORMS": 0,
        "nodes-INITIAL_FORMS": 0,
    }
    response = console.post(f"/admin/compute/computetarget/{target.pk}/change/", form)
    assert "Not saved" in _errors(response) and "quota" in _errors(response)
    target.refresh_from_db()
    assert target.min_nodes != 3


def test_records_the_studio_writes_itself_are_read_only(console):
    for path in [
        "workspaces/activity",
        "data/ingest",
        "compute/jobevent",
        "compute/joblogline",
        "compute/metric",
        "compute/artifact",
        "training/experiment",
        "compute/node",
        "compute/nodesession",
        "compute/servingsession",
        "endpoints/monitoringbucket",
        "studio/workercheck",
    ]:
        assert console.get(f"/admin/{path}/add/").status_code == 403, path


@pytest.fixture
def deployed(owner, workspace):
    """A registered model version deployed as endpoint churn/blue, taking all the traffic."""
    from compute.models import TargetKind
    from compute.services import target_create
    from endpoints.services import deployment_create, endpoint_create
    from tests.endpoints.conftest import register

    version = register(workspace, owner)
    serving = target_create(actor=owner, workspace=workspace, kind=TargetKind.INFERENCE, name="serving").target
    endpoint = endpoint_create(actor=owner, workspace=workspace, name="churn").endpoint
    return deployment_create(actor=owner, endpoint=endpoint, name="blue", model_version=version, target=serving)


def test_deployment_replicas_go_through_the_service_and_reload_serving(console, deployed):
    endpoint = deployed.endpoint
    endpoint.refresh_from_db()
    before = endpoint.config_version
    url = f"/admin/endpoints/deployment/{deployed.pk}/"
    form = {"replicas": 1, "min_replicas": "", "max_replicas": "", "target_in_flight": 4, "scale_in_seconds": 300}
    console.post(url + "change/", form | {"replicas": 99})
    deployed.refresh_from_db()
    assert deployed.replicas == 1  # 99 is past the service's cap: refused
    console.post(url + "change/", form | {"replicas": 2})
    deployed.refresh_from_db()
    endpoint.refresh_from_db()
    assert deployed.replicas == 2 and endpoint.config_version > before
    console.post(url + "change/", form | {"min_replicas": 0, "max_replicas": 30})  # past the cap: refused
    deployed.refresh_from_db()
    assert not deployed.autoscales
    console.post(url + "change/", form | {"replicas": 2, "min_replicas": 0, "max_replicas": 3, "target_in_flight": 2})
    deployed.refresh_from_db()
    assert (deployed.min_replicas, deployed.max_replicas, deployed.target_in_flight) == (0, 3, 2)
    assert deployed.replicas == 2  # where autoscaling starts
    assert console.get("/admin/endpoints/deployment/add/").status_code == 403  # deployed in the studio


def test_a_deployed_model_version_is_not_deleted_from_the_admin(console, deployed):
    from training.models import ModelVersion

    version = deployed.model_version
    response = console.post(f"/admin/training/modelversion/{version.pk}/delete/", {"post": "yes"})
    assert response.status_code in (200, 302)  # refused: by the database's protection or the service
    assert ModelVersion.objects.filter(pk=version.pk).exists()
    page = console.get(f"/admin/training/modelversion/{version.pk}/change/").content.decode()
    assert 'name="sha256"' not in page  # versions are immutable


def test_model_aliases_and_descriptions_go_through_the_registry_services(console, owner, workspace):
    from tests.endpoints.conftest import register
    from training.models import ModelAlias
    from workspaces.models import Activity

    version = register(workspace, owner)
    response = console.post("/admin/training/modelalias/add/", {"name": "champion", "version": version.pk})
    assert response.status_code == 302, response.content[:2000]
    alias = ModelAlias.objects.get(name="champion")
    assert alias.model == version.model
    assert Activity.objects.filter(workspace=workspace, verb="model_alias", actor__username="root").exists()
    bad = console.post("/admin/training/modelalias/add/", {"name": "Not An Alias!", "version": version.pk})
    assert "lower-case" in _errors(bad) and ModelAlias.objects.count() == 1
    console.post(f"/admin/training/modelalias/{alias.pk}/delete/", {"post": "yes"})
    assert not ModelAlias.objects.exists()
    console.post(
        f"/admin/training/registeredmodel/{version.model.pk}/change/",
        {"description": "x" * 2001, "versions-TOTAL_FORMS": 0, "versions-INITIAL_FORMS": 0},
    )
    version.model.refresh_from_db()
    assert version.model.description != "x" * 2001


def test_data_versions_are_deleted_through_the_service_that_checks_references_and_frees_files(
    console, penguins, django_capture_on_commit_callbacks
):
    from data.models import DataVersion
    from data.services import data_version_path
    from workspaces.models import Activity

    path = data_version_path(penguins)
    assert path.exists()
    page = console.get(f"/admin/data/dataversion/{penguins.pk}/change/").content.decode()
    assert 'name="rows"' not in page  # versions never change
    with django_capture_on_commit_callbacks(execute=True):
        console.post(f"/admin/data/dataversion/{penguins.pk}/delete/", {"post": "yes"})
    assert not DataVersion.objects.filter(pk=penguins.pk).exists() and not path.exists()
    assert Activity.objects.filter(verb="data_version_deleted", actor__username="root").exists()


def test_data_asset_description_goes_through_the_service(console, penguins):
    asset = penguins.asset
    console.post(f"/admin/data/dataasset/{asset.pk}/change/", {"description": "Palmer penguins"})
    asset.refresh_from_db()
    assert asset.description == "Palmer penguins"
    assert console.get("/admin/data/dataasset/add/").status_code == 403  # data arrives by upload


def test_api_tokens_are_revoked_through_the_service_never_edited(console, owner):
    from studio.models import ApiToken
    from studio.services import token_create

    issued = token_create(user=owner, name="ci")
    token = ApiToken.objects.get(user=owner)
    page = console.get(f"/admin/studio/apitoken/{token.pk}/change/").content.decode()
    assert 'name="revoked_at"' not in page and 'name="expires_at"' not in page
    console.post("/admin/studio/apitoken/", {"action": "revoke_tokens", "_selected_action": [token.pk]})
    token.refresh_from_db()
    assert token.revoked_at is not None
    from studio.services import token_authenticate

    assert token_authenticate(issued.plaintext) is None


def test_the_last_owner_of_a_workspace_is_not_deleted_from_the_users_admin(
    console, owner, outsider, workspace, other_workspace
):
    from django.contrib.auth import get_user_model

    User = get_user_model()
    response = console.post(f"/admin/auth/user/{owner.pk}/delete/", {"post": "yes"})
    assert "last Owner of Team" in _errors(response) and User.objects.filter(pk=owner.pk).exists()
    bulk = console.post(
        "/admin/auth/user/", {"action": "delete_selected", "_selected_action": [owner.pk], "post": "yes"}
    )
    assert "last Owner of Team" in _errors(bulk) and User.objects.filter(pk=owner.pk).exists()
    console.post(f"/admin/auth/user/{outsider.pk}/delete/", {"post": "yes"})  # the last Owner of Elsewhere
    assert User.objects.filter(pk=outsider.pk).exists()
    reader = User.objects.get(username="carol")
    console.post(f"/admin/auth/user/{reader.pk}/delete/", {"post": "yes"})
    assert not User.objects.filter(pk=reader.pk).exists()
