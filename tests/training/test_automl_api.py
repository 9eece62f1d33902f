"""Starting Automated ML through the API: validation of every setting, before anything runs."""

import re

import pytest

from compute.jobs.models import Job
from compute.models import TargetKind
from compute.services import target_create
from data.models import DataAsset, DataVersion
from training.models import TrainingJobKind

pytestmark = pytest.mark.django_db

SCHEMA = {
    "version": 1,
    "columns": [
        {"name": "age", "semantic_type": "numeric", "physical_type": "double", "excluded": False},
        {"name": "plan", "semantic_type": "categorical", "physical_type": "string", "excluded": False},
        {"name": "churn", "semantic_type": "categorical", "physical_type": "string", "excluded": False},
    ],
}


@pytest.fixture
def setup(owner, workspace):
    asset = DataAsset.objects.create(workspace=workspace, name="customers")
    version = DataVersion.objects.create(asset=asset, version=1, rows=100, columns=3, schema=SCHEMA)
    cluster = target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu").target
    return version, cluster


def start(client, workspace, payload):
    return client.post(f"/api/v1/workspaces/{workspace.pk}/automl/", payload, format="json")


def test_a_run_is_queued_with_its_settings_and_the_schema_types(api, contributor, workspace, setup):
    version, cluster = setup
    response = start(
        api(contributor),
        workspace,
        {
            "data_version": version.pk,
            "target_column": "churn",
            "target": cluster.pk,
            "settings": {"timeout_s": 120, "primary_metric": "accuracy"},
        },
    )
    assert response.status_code == 201, response.content
    job = Job.objects.get(pk=response.json()["id"])
    assert job.kind == TrainingJobKind.AUTOML and job.data_version == version
    assert job.spec["automl"]["primary_metric"] == "accuracy" and job.spec["automl"]["timeout_s"] == 120
    assert job.spec["automl"]["column_types"] == {"age": "numeric", "plan": "categorical"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"target_column": "nope"}, "target_column"),
        ({"data_version": 999999}, None),
        ({"target": 999999}, "target"),
        ({"settings": {"primary_metric": "r2"}}, "settings"),
        ({"settings": {"allowed_algorithms": ["quantum_forest"]}}, "automl"),
        ({"settings": {"column_overrides": {"ghost": {"exclude": True}}}}, "automl"),
        ({"test_fraction": 0.9}, "test_fraction"),
        ({"register_as": "bad name!"}, "register_as"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(api, owner, workspace, setup, change, field):
    version, cluster = setup
    payload = {"data_version": version.pk, "target_column": "churn", "target": cluster.pk} | change
    response = start(api(owner), workspace, payload)
    assert response.status_code in (400, 404), response.content
    if field:
        assert field in response.json()["error"]["fields"], response.json()
    assert not Job.objects.exists()


def test_a_reader_cannot_start_a_run(api, reader, workspace, setup):
    version, cluster = setup
    response = start(
        api(reader), workspace, {"data_version": version.pk, "target_column": "churn", "target": cluster.pk}
    )
    assert response.status_code == 403


def test_the_wizard_page_and_its_column_fragment(client, owner, workspace, setup):
    version, _ = setup
    version.profile = {
        "column_profiles": [
            {"name": "churn", "top_values": [{"value": "no", "count": 70}, {"value": "yes", "count": 30}]}
        ]
    }
    version.save()
    client.force_login(owner)
    assert client.get(f"/w/{workspace.pk}/jobs/automl/new/").status_code == 200
    fragment = client.get(f"/w/{workspace.pk}/jobs/automl/columns/?data_version_id={version.pk}&target_column=churn")
    html = fragment.content.decode()
    assert "70.0%" in html and "30.0%" in html and "override_type_" in html


@pytest.mark.parametrize(
    ("automl", "expected"),
    [({}, 10.0), ({"infer_limit_ms": 25}, 25.0), ({"infer_limit_ms": None}, None)],
)
def test_the_inference_time_limit_defaults_to_10_ms_and_null_means_best_accuracy(
    api, owner, workspace, setup, automl, expected
):
    version, cluster = setup
    payload = {"data_version": version.pk, "target_column": "churn", "target": cluster.pk, "settings": automl}
    response = start(api(owner), workspace, payload)
    assert response.status_code == 201, response.content
    assert Job.objects.get(pk=response.json()["id"]).spec["automl"]["infer_limit_ms"] == expected


def test_a_limit_that_is_not_positive_is_refused_naming_the_field(api, owner, workspace, setup):
    version, cluster = setup
    payload = {"data_version": version.pk, "target_column": "churn", "target": cluster.pk}
    response = start(api(owner), workspace, payload | {"settings": {"infer_limit_ms": 0}})
    assert response.status_code == 400 and "settings" in response.json()["error"]["fields"], response.content
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    ("fields", "expected"), [({"infer_limit_ms": "4"}, 4.0), ({"best_accuracy_regardless_of_speed": "on"}, None)]
)
def test_the_wizard_sets_the_limit_or_best_accuracy_regardless_of_speed(
    client, owner, workspace, setup, fields, expected
):
    version, cluster = setup
    client.force_login(owner)
    page = client.get(f"/w/{workspace.pk}/jobs/automl/new/").content.decode()
    assert 'name="infer_limit_ms"' in page and 'name="best_accuracy_regardless_of_speed"' in page
    form = {
        "data_version_id": version.pk,
        "target_column": "churn",
        "primary_metric": "auc_weighted",
        "validation": "auto",
        "test_fraction": 0.2,
        "timeout_minutes": 5,
        "trial_timeout_s": 120,
        "max_trials": 10,
        "max_concurrent_trials": 1,
        "target": cluster.pk,
        "seed": 0,
    } | fields
    response = client.post(f"/w/{workspace.pk}/jobs/automl/new/", form)
    assert response.status_code == 302, response.content.decode()[-2000:]
    job = Job.objects.get(kind=TrainingJobKind.AUTOML)
    assert job.spec["automl"]["infer_limit_ms"] == expected
    clone = client.get(f"/w/{workspace.pk}/jobs/automl/new/?clone={job.pk}").content.decode()
    if expected is None:
        assert re.search(r'name="best_accuracy_regardless_of_speed"[^>]*checked', clone)
    else:
        assert 'name="infer_limit_ms" value="4.0"' in clone
