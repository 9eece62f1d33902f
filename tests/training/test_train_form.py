"""The Train form: a target select from the chosen data's columns, every error in one round, and
typed hyperparameter fields per algorithm (the raw JSON kept as an advanced option)."""

import html

import pytest

from compute.jobs.models import Job
from compute.models import TargetKind
from compute.services import target_create
from data.models import DataAsset, DataVersion
from training.models import TrainingJobKind

pytestmark = pytest.mark.django_db


def schema(*names):
    return {
        "version": 1,
        "columns": [
            {"name": n, "semantic_type": "categorical", "physical_type": "string", "excluded": False} for n in names
        ],
    }


@pytest.fixture
def cluster(owner, workspace):
    return target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu").target


@pytest.fixture
def versions(workspace):
    first = DataAsset.objects.create(workspace=workspace, name="customers")
    second = DataAsset.objects.create(workspace=workspace, name="flowers")
    return (
        DataVersion.objects.create(
            asset=first, version=1, rows=10, columns=2, schema=schema("Monthly Spend", "Churn?")
        ),
        DataVersion.objects.create(asset=second, version=1, rows=10, columns=2, schema=schema("petal width", "kind")),
    )


def post(client, workspace, cluster, version, **fields):
    data = {
        "kind": "train",
        "target": cluster.pk,
        "data_version_id": version.pk,
        "target_column": "Churn?",
        "algorithm": "random_forest",
        "hyperparameters": "{}",
        "validation_method": "holdout",
        "holdout_fraction": "0.2",
        "seed": "0",
    }
    data.update(fields)
    return client.post(f"/w/{workspace.pk}/jobs/new/", data)


def test_the_target_is_a_select_of_the_chosen_datas_columns_as_written(client, owner, workspace, versions):
    customers, flowers = versions
    client.force_login(owner)
    page = html.unescape(
        client.get(f"/w/{workspace.pk}/jobs/new/?kind=train&data_version_id={flowers.pk}").content.decode()
    )
    assert '<select name="target_column"' in page
    assert '<option value="petal width">' in page and "Monthly Spend" not in page.split('name="target_column"')[1]
    # choosing other data reloads the select through the AutoML wizard's columns view
    part = html.unescape(
        client.get(
            f"/w/{workspace.pk}/jobs/automl/columns/",
            {"data_version_id": customers.pk, "only": "target", "target_column": "Churn?"},
        ).content.decode()
    )
    assert part.lstrip().startswith('<select name="target_column" id="id_target_column" required')
    assert '<option value="Monthly Spend">' in part and '<option value="Churn?" selected>' in part
    assert "petal width" not in part and "override_type" not in part


def test_several_problems_show_together_in_one_round(client, owner, workspace, cluster, versions):
    client.force_login(owner)
    response = post(
        client,
        workspace,
        cluster,
        versions[0],
        target_column="no such column",
        hp_n_estimators="0",
        hp_max_features="not a number",
        n_folds="1",
        time_limit_seconds="0",
    )
    assert response.status_code == 200
    page = html.unescape(response.content.decode())
    assert "has no column 'no such column'" in page
    assert "Enter a number." in page  # hp_max_features
    # sklearn's own constraint, beside the typed field
    n_estimators = page.split('name="hp_n_estimators"')[1].split('class="field')[0]
    assert "range [1, inf)" in n_estimators
    assert page.count('role="alert"') >= 4
    assert not Job.objects.exists()


def test_a_typed_hyperparameter_reaches_the_job_spec_with_the_advanced_json(
    client, owner, workspace, cluster, versions
):
    client.force_login(owner)
    page = html.unescape(client.get(f"/w/{workspace.pk}/jobs/new/?kind=train&algorithm=knn").content.decode())
    assert "Hyperparameters of k-nearest neighbours" in page
    assert 'name="hp_n_neighbors"' in page and "Default 25" in page and 'name="hp_n_estimators"' not in page
    response = post(client, workspace, cluster, versions[0], hp_n_estimators="60", hyperparameters='{"max_depth": 6}')
    assert response.status_code == 302, html.unescape(response.content.decode())
    job = Job.objects.get(kind=TrainingJobKind.TRAIN)
    assert job.spec["hyperparameters"] == {"n_estimators": 60, "max_depth": 6}
    assert job.spec["target_column"] == "Churn?"


def test_a_parameter_set_twice_or_unknown_is_refused_beside_the_json(client, owner, workspace, cluster, versions):
    client.force_login(owner)
    twice = post(client, workspace, cluster, versions[0], hp_n_estimators="60", hyperparameters='{"n_estimators": 5}')
    assert "Set n_estimators in its field or here, not both." in html.unescape(twice.content.decode())
    unknown = post(client, workspace, cluster, versions[0], hyperparameters='{"depth": 6}')
    assert "has no parameter 'depth'" in html.unescape(unknown.content.decode())
    assert not Job.objects.exists()


def test_the_api_names_every_bad_field_of_a_train_spec_at_once(api, owner, workspace, cluster, versions):
    spec = {
        "data_version_id": versions[0].pk,
        "target_column": "nope",
        "algorithm": "random_forest",
        "hyperparameters": {"n_estimators": 0},
        "validation": {"method": "cv", "n_folds": 1},
        "seed": "x",
    }
    response = api(owner).post(
        f"/api/v1/workspaces/{workspace.pk}/jobs/",
        {"kind": "train", "target": cluster.pk, "spec": spec},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert {"target_column", "hyperparameters", "validation", "seed"} <= set(response.json()["error"]["fields"])
    assert not Job.objects.exists()
