"""MLflow's model registry API: the real client's register_model makes a studio model version."""

import mlflow
import mlflow.sklearn
import pytest
from mlflow.exceptions import MlflowException
from sklearn.dummy import DummyClassifier

from tests.training import model_files as mf
from training.models import ModelVersion, RegisteredModel

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mlflow-models")
    frame = mf.messy_frame()
    pipeline = mf.fitted_pipeline(frame)
    return {
        "onnx": mf.mlflow_onnx_folder(pipeline, frame, tmp / "onnx model"),
        "pickle": mf.mlflow_pickle_folder(pipeline, tmp / "pickle model"),
    }


def test_register_model_from_a_runs_logged_onnx_folder(mlflow_as, contributor, workspace, folders):
    client = mlflow_as(contributor, workspace)
    mlflow.set_experiment("imports — ü")
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(folders["onnx"]), "model")
    registered = mlflow.register_model(f"runs:/{run.info.run_id}/model", "my model-name")
    assert registered.name == "my-model-name" and registered.version == "1" and registered.status == "READY"

    version = ModelVersion.objects.get(model__workspace=workspace, model__name="my-model-name", version=1)
    assert version.onnx_only and version.job_id == int(run.info.run_id)
    assert version.classes == ["no", "yes"] and version.created_by == contributor
    assert {c["name"] for c in version.signature["columns"]} == {"mean radius (mm)", "plan type", "n visits"}
    assert version.lineage["source"] == "mlflow"

    again = mlflow.register_model(f"runs:/{run.info.run_id}/model", "my model-name")  # the name exists
    assert again.version == "2"
    fetched = client.get_model_version("my model-name", "2")
    assert fetched.run_id == run.info.run_id and fetched.source.endswith(f"runs/{run.info.run_id}/model")
    assert client.get_registered_model("my-model-name").latest_versions[0].version == "2"
    assert [m.name for m in client.search_registered_models(filter_string="name LIKE '%model%'")] == ["my-model-name"]
    assert len(client.search_model_versions(f"run_id = '{run.info.run_id}'")) == 2
    client.update_registered_model("my model-name", description="from a laptop ✓")
    assert RegisteredModel.objects.get(workspace=workspace, name="my-model-name").description == "from a laptop ✓"


def test_a_pickle_flavour_is_refused_with_how_to_save_as_skops_or_onnx(mlflow_as, contributor, workspace, folders):
    mlflow_as(contributor, workspace)
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(folders["pickle"]), "model")
    with pytest.raises(MlflowException) as refused:
        mlflow.register_model(f"runs:/{run.info.run_id}/model", "pickled")
    assert refused.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "skops.io.dump" in refused.value.message and "mlflow.onnx.save_model" in refused.value.message
    assert not ModelVersion.objects.exists()


def test_log_model_is_refused_with_how_to_log_the_folder_instead(mlflow_as, contributor, workspace, folders):
    """MLflow 3's log_model creates a logged model first; the studio answers with what works."""
    mlflow_as(contributor, workspace)
    with mlflow.start_run() as run, pytest.raises(MlflowException) as refused:
        mlflow.sklearn.log_model(DummyClassifier().fit([[0], [1]], ["no", "yes"]), name="model")
    assert refused.value.error_code == "ENDPOINT_NOT_FOUND"
    assert "mlflow.log_artifacts('model', 'model')" in refused.value.message
    # ...which does: the folder logged as the advice says registers.
    with mlflow.start_run(run_id=run.info.run_id):
        mlflow.log_artifacts(str(folders["onnx"]), "model")
    assert mlflow.register_model(f"runs:/{run.info.run_id}/model", "advised").version == "1"


def test_unknown_models_runs_and_another_workspaces_run_are_not_found(
    mlflow_as, contributor, outsider, workspace, other_workspace, folders
):
    mlflow_as(outsider, other_workspace)
    with mlflow.start_run() as foreign:
        mlflow.log_artifacts(str(folders["onnx"]), "model")
    client = mlflow_as(contributor, workspace)
    with pytest.raises(MlflowException) as missing:
        client.get_registered_model("never registered")
    assert missing.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as foreign_run:
        client.create_model_version("stolen", f"runs:/{foreign.info.run_id}/model", foreign.info.run_id)
    assert foreign_run.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as elsewhere:
        client.create_model_version("s3", "s3://bucket/model", None)
    assert elsewhere.value.error_code == "INVALID_PARAMETER_VALUE"
    assert not ModelVersion.objects.exists()


def test_a_reader_cannot_register(mlflow_as, owner, reader, workspace, folders):
    mlflow_as(owner, workspace)
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(folders["onnx"]), "model")
    client = mlflow_as(reader, workspace)
    with pytest.raises(MlflowException) as refused:
        client.create_model_version("read-only", f"runs:/{run.info.run_id}/model", run.info.run_id)
    assert refused.value.error_code == "PERMISSION_DENIED"
