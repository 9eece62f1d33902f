"""Registering models made elsewhere: skops (allow-list), ONNX, MLflow folders; pickles refused."""

import io
import json
import pickle
import zipfile

import pytest
import skops.io as sio
from sklearn.ensemble import AdaBoostClassifier

from data.services import data_version_from_file
from data.uploads import staging_dir
from modelformat.modelio import save_model
from tests.training import model_files as mf
from training.models import ModelVersion
from training.registry_services import model_version_dir

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The messy frame, a pipeline fitted on it and its files (built once for the module)."""
    tmp = tmp_path_factory.mktemp("models")
    frame = mf.messy_frame()
    pipeline = mf.fitted_pipeline(frame)
    skops_path = tmp / "pipe.skops"
    save_model(pipeline, skops_path)
    forbidden = tmp / "ada.skops"
    sio.dump(AdaBoostClassifier(n_estimators=3).fit(frame[["n visits"]], frame[mf.TARGET]), forbidden)
    return {
        "frame": frame,
        "pipeline": pipeline,
        "skops": skops_path.read_bytes(),
        "forbidden": forbidden.read_bytes(),
        "onnx": mf.onnx_bytes(pipeline, frame),
        "mlflow_zip": mf.zipped(mf.mlflow_onnx_folder(pipeline, frame, tmp / "mlflow-onnx")),
        "mlflow_tar": mf.tarred(tmp / "mlflow-onnx"),
        "mlflow_pickle_zip": mf.zipped(mf.mlflow_pickle_folder(pipeline, tmp / "mlflow-pickle")),
    }


@pytest.fixture
def messy(workspace, owner, tmp_path):
    """The messy frame as a data version of the workspace (made by the real ingest)."""
    path = tmp_path / "messy customers.csv"
    mf.messy_frame().to_csv(path, index=False)
    return data_version_from_file(actor=owner, workspace=workspace, path=path, name="messy customers")


def url(workspace) -> str:
    return f"/api/v1/workspaces/{workspace.pk}/models/upload/"


def upload(name: str, data: bytes):
    f = io.BytesIO(data)
    f.name = name
    return f


def post(api, user, workspace, name, data, **fields):
    parts = {"file": upload(name, data), "name": fields.pop("model_name", "churn-model"), **fields}
    return api(user).post(url(workspace), parts, format="multipart")


def field_error(response, field) -> str:
    """The message of the error body's field (the studio's one error shape)."""
    return " ".join(response.json()["error"]["fields"].get(field, []))


def test_an_onnx_file_registers_with_the_data_versions_signature(api, contributor, workspace, messy, built):
    response = post(
        api, contributor, workspace, "my model.onnx", built["onnx"], data_version=messy.pk, target_column=mf.TARGET
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["model"] == "churn-model" and body["version"] == 1 and body["onnx"] is True
    assert body["classes"] == ["no", "yes"] and body["target_column"] == mf.TARGET
    columns = {c["name"]: c for c in body["signature"]["columns"]}
    assert set(columns) == {"customer id", "mean radius (mm)", "plan type", "n visits"}
    assert columns["customer id"]["required"] is False  # the model does not read it
    assert columns["plan type"]["required"] is True
    version = ModelVersion.objects.get(pk=body["id"])
    assert version.onnx_only and version.data_version == messy and version.lineage["source"] == "upload"
    folder = model_version_dir(version)
    assert sorted(p.name for p in folder.iterdir()) == ["model.onnx", "reference_profile.json", "signature.json"]
    assert list(staging_dir().glob("*.part")) == []


def test_an_onnx_file_without_a_data_version_takes_its_inputs_as_columns(api, contributor, workspace, built):
    response = post(api, contributor, workspace, "model.onnx", built["onnx"])
    assert response.status_code == 201, response.json()
    names = [c["name"] for c in response.json()["signature"]["columns"]]
    assert names == ["mean_radius__mm_", "plan_type", "n_visits"]  # as skl2onnx spelled them


def test_a_given_signature_is_checked_against_the_onnx_inputs(api, contributor, workspace, built):
    good = [
        {"name": "mean radius (mm)", "type": "numeric"},
        {"name": "plan type", "type": "categorical"},
        {"name": "n visits", "type": "integer"},
    ]
    response = post(api, contributor, workspace, "m.onnx", built["onnx"], signature=json.dumps(good))
    assert response.status_code == 201, response.json()

    missing = json.dumps(good[:2])
    response = post(api, contributor, workspace, "m.onnx", built["onnx"], signature=missing)
    assert response.status_code == 400
    assert "n_visits" in field_error(response, "signature")

    wrong_type = json.dumps([good[0], {"name": "plan type", "type": "numeric"}, good[2]])
    response = post(api, contributor, workspace, "m.onnx", built["onnx"], signature=wrong_type)
    assert response.status_code == 400 and "as text" in field_error(response, "signature")

    response = post(api, contributor, workspace, "m.onnx", built["onnx"], signature="[{name: oops")
    assert response.status_code == 400 and "not valid JSON" in field_error(response, "signature")
    assert ModelVersion.objects.count() == 1


def test_a_skops_file_registers_and_keeps_its_pipeline(api, contributor, workspace, messy, built):
    response = post(
        api, contributor, workspace, "pipe.skops", built["skops"], data_version=messy.pk, target_column=mf.TARGET
    )
    assert response.status_code == 201, response.json()
    version = ModelVersion.objects.get(pk=response.json()["id"])
    assert version.algorithm == "Pipeline" and not version.onnx_sha256 and not version.onnx_only
    assert (model_version_dir(version) / "model.skops").read_bytes() == built["skops"]


def test_a_skops_file_under_another_name_is_still_read_as_skops(api, contributor, workspace, built):
    response = post(api, contributor, workspace, "pipeline.zip", built["skops"], signature=json.dumps(COLUMNS))
    assert response.status_code == 201, response.json()
    assert response.json()["algorithm"] == "Pipeline"


COLUMNS = [
    {"name": "mean radius (mm)", "type": "numeric"},
    {"name": "plan type", "type": "categorical"},
    {"name": "n visits", "type": "integer"},
]


def test_a_skops_file_with_a_type_outside_the_allow_list_is_refused(api, contributor, workspace, built):
    response = post(api, contributor, workspace, "ada.skops", built["forbidden"])
    assert response.status_code == 400
    assert "AdaBoostClassifier" in field_error(response, "file")
    assert ModelVersion.objects.count() == 0


@pytest.mark.parametrize("name", ["model.pkl", "model.joblib", "model.bin"])
def test_a_pickle_is_refused_with_how_to_save_as_skops_or_onnx(api, contributor, workspace, name):
    response = post(api, contributor, workspace, name, pickle.dumps({"not": "a model"}))
    assert response.status_code == 400
    message = field_error(response, "file")
    assert "skops.io.dump" in message and "ONNX" in message


def test_an_mlflow_onnx_folder_registers_from_a_zip_or_a_tar_gz(api, contributor, workspace, built):
    response = post(api, contributor, workspace, "mlflow model.zip", built["mlflow_zip"], target_column=mf.TARGET)
    assert response.status_code == 201, response.json()
    columns = {c["name"]: c["type"] for c in response.json()["signature"]["columns"]}
    assert columns == {"mean radius (mm)": "numeric", "plan type": "categorical", "n visits": "integer"}
    response = post(api, contributor, workspace, "model.tar.gz", built["mlflow_tar"])
    assert response.status_code == 201, response.json()
    assert response.json()["version"] == 2


def test_an_mlflow_pickle_flavour_is_refused_with_the_message(api, contributor, workspace, built):
    response = post(api, contributor, workspace, "model.zip", built["mlflow_pickle_zip"])
    assert response.status_code == 400
    message = field_error(response, "file")
    assert "pickle" in message and "skops.io.dump" in message and "mlflow.onnx.save_model" in message


@pytest.mark.parametrize(
    ("name", "data", "words"),
    [
        ("broken.onnx", b"\x08\x07garbage that is not protobuf" * 3, "not an ONNX model"),
        ("empty.onnx", b"", "empty"),
        ("other.zip", None, "no MLmodel"),
        ("damaged.tar.gz", b"\x1f\x8b\x08\x00garbage", "archive"),
    ],
)
def test_hostile_or_broken_files_get_a_clear_400(api, contributor, workspace, name, data, words):
    if data is None:
        raw = io.BytesIO()
        with zipfile.ZipFile(raw, "w") as archive:
            archive.writestr("../../etc/passwd", "x")
            archive.writestr("readme.txt", "no model here")
        data = raw.getvalue()
    response = post(api, contributor, workspace, name, data)
    assert response.status_code == 400, response.json()
    assert words in field_error(response, "file")


def test_an_mlmodel_pointing_outside_its_folder_is_refused(api, contributor, workspace):
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w") as archive:
        archive.writestr("MLmodel", "flavors:\n  onnx:\n    data: ../../secret.onnx\n")
    response = post(api, contributor, workspace, "model.zip", raw.getvalue())
    assert response.status_code == 400 and "outside the model folder" in field_error(response, "file")


def test_a_model_name_with_spaces_is_refused_by_field(api, contributor, workspace, built):
    response = post(api, contributor, workspace, "m.onnx", built["onnx"], model_name="my model ü")
    assert response.status_code == 400 and field_error(response, "name")


def test_another_workspaces_data_version_is_not_found(api, outsider, other_workspace, messy, built):
    response = post(api, outsider, other_workspace, "m.onnx", built["onnx"], data_version=messy.pk)
    assert response.status_code == 404
    assert ModelVersion.objects.count() == 0


def test_an_unknown_target_column_is_named(api, contributor, workspace, messy, built):
    response = post(api, contributor, workspace, "m.onnx", built["onnx"], data_version=messy.pk, target_column="nope")
    assert response.status_code == 400 and "nope" in field_error(response, "target_column")


def test_a_reader_cannot_register_and_nothing_is_staged(api, reader, outsider, workspace, built):
    assert post(api, reader, workspace, "m.onnx", built["onnx"]).status_code == 403
    assert post(api, outsider, workspace, "m.onnx", built["onnx"]).status_code == 404
    assert ModelVersion.objects.count() == 0 and list(staging_dir().glob("*.part")) == []


def test_a_file_past_the_limit_is_refused_with_413(api, contributor, workspace, built, settings):
    settings.STUDIO_MODEL_UPLOAD_MAX_BYTES = 1000
    response = post(api, contributor, workspace, "m.onnx", built["onnx"])
    assert response.status_code == 413
    assert ModelVersion.objects.count() == 0 and list(staging_dir().glob("*.part")) == []


def test_the_service_refuses_a_model_past_the_workspaces_storage_quota(contributor, workspace, built, tmp_path):
    from django.core.exceptions import ValidationError

    from training.registry_imports import model_import

    path = tmp_path / "model.onnx"
    path.write_bytes(built["onnx"])
    workspace.storage_quota_bytes = 10  # set by staff in the admin
    workspace.save(update_fields=["storage_quota_bytes"])
    with pytest.raises(ValidationError) as refused:
        model_import(actor=contributor, workspace=workspace, name="too-big", path=path, filename="model.onnx")
    assert "quota" in " ".join(refused.value.message_dict["file"])
    assert ModelVersion.objects.count() == 0


def test_the_service_checks_the_role_itself(reader, workspace, built, tmp_path):
    from django.core.exceptions import PermissionDenied

    from training.registry_imports import model_import

    path = tmp_path / "model.onnx"
    path.write_bytes(built["onnx"])
    with pytest.raises(PermissionDenied):
        model_import(actor=reader, workspace=workspace, name="nope", path=path, filename="model.onnx")


def test_a_tar_gz_whose_member_claims_more_than_it_may_unpack_is_refused_unread(tmp_path):
    """A member announcing terabytes is refused from its header: the walk never decompresses it."""
    import gzip
    import tarfile

    from modelformat.model_import import MAX_UNPACKED_BYTES, ArchiveFolder, ImportRefused

    path = tmp_path / "bomb model.tar.gz"
    info = tarfile.TarInfo("model/MLmodel")
    info.size = MAX_UNPACKED_BYTES + 1
    with gzip.open(path, "wb") as archive:
        archive.write(info.tobuf(format=tarfile.PAX_FORMAT))  # the header alone: no body follows
    with pytest.raises(ImportRefused, match="unpacks to more than"):
        ArchiveFolder(path)
