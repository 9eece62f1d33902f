"""Experiments through the MLflow client are the studio's experiments."""

import mlflow
import pytest
from mlflow.entities import ViewType
from mlflow.exceptions import MlflowException

from training.models import Experiment

pytestmark = pytest.mark.django_db(transaction=True)


def error_code(call) -> str:
    with pytest.raises(MlflowException) as raised:
        call()
    return raised.value.error_code


def test_experiments_create_get_rename_tag_delete_restore(mlflow_as, owner, workspace):
    client = mlflow_as(owner, workspace)
    experiment_id = client.create_experiment("Q3 churn — “quotes” & ünïcode", tags={"owner team": "ops ✓"})
    experiment = Experiment.objects.get(pk=int(experiment_id))
    assert experiment.workspace == workspace and experiment.created_by == owner
    fetched = client.get_experiment(experiment_id)
    assert fetched.name == "Q3 churn — “quotes” & ünïcode" and fetched.tags == {"owner team": "ops ✓"}
    assert fetched.lifecycle_stage == "active"
    assert client.get_experiment_by_name("Q3 churn — “quotes” & ünïcode").experiment_id == experiment_id
    assert client.get_experiment_by_name("nothing by this name") is None
    client.rename_experiment(experiment_id, "renamed")
    client.set_experiment_tag(experiment_id, "stage", "2")
    client.delete_experiment_tag(experiment_id, "owner team")
    assert client.get_experiment(experiment_id).tags == {"stage": "2"}
    assert error_code(lambda: client.create_experiment("renamed")) == "RESOURCE_ALREADY_EXISTS"
    client.delete_experiment(experiment_id)
    assert client.get_experiment(experiment_id).lifecycle_stage == "deleted"
    assert experiment_id not in [e.experiment_id for e in client.search_experiments()]
    deleted = client.search_experiments(view_type=ViewType.DELETED_ONLY)
    assert [e.experiment_id for e in deleted] == [experiment_id]
    assert error_code(lambda: client.create_run(experiment_id)) == "INVALID_PARAMETER_VALUE"
    client.restore_experiment(experiment_id)
    assert client.get_experiment(experiment_id).lifecycle_stage == "active"


def test_search_experiments_by_name_and_tag_with_pages(mlflow_as, owner, workspace):
    client = mlflow_as(owner, workspace)
    for name in ["alpha one", "alpha two", "beta", "Gamma % odd_name"]:
        client.create_experiment(name, tags={"kind": "a" if name.startswith("alpha") else "b"})

    def names(**kwargs):
        return [e.name for e in client.search_experiments(**kwargs)]

    assert names(filter_string="name LIKE 'alpha%'", order_by=["name DESC"]) == ["alpha two", "alpha one"]
    assert names(filter_string="tags.kind = 'b'", order_by=["name"]) == ["Gamma % odd_name", "beta"]
    assert names(filter_string="name ILIKE 'gamma%'") == ["Gamma % odd_name"]
    first = client.search_experiments(max_results=2, order_by=["name"])
    assert len(first) == 2 and first.token
    assert error_code(lambda: client.search_experiments(filter_string="name ~ 'x'")) == "INVALID_PARAMETER_VALUE"


def test_the_default_experiment_is_the_workspace_s_default(mlflow_as, owner, workspace):
    mlflow_as(owner, workspace)
    with mlflow.start_run() as run:  # no experiment set: the client asks for experiment "0"
        mlflow.log_metric("m", 1)
    experiment = Experiment.objects.get(workspace=workspace, name="Default")
    assert run.info.experiment_id == str(experiment.pk)
