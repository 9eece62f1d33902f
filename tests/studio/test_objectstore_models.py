"""Model versions through object storage (moto's server): a model registered on one host is
served from another host's empty data directory, its files fetched and checked against the
version's SHA-256s; deleting the version removes the published copies too."""

import hashlib

import pytest

from tests import s3server
from tests.studio import test_objectstore
from tests.training import model_files as mf
from training.registry_imports import model_import
from training.registry_services import model_version_delete, model_version_dir, model_version_location

pytestmark = pytest.mark.django_db

s3_server = s3server.s3_server
s3_bucket = s3server.s3_bucket
object_storage = test_objectstore.object_storage


def test_a_model_registered_on_one_host_is_read_on_another(
    object_storage, s3_server, owner, workspace, settings, tmp_path, django_capture_on_commit_callbacks
):
    frame = mf.messy_frame()
    path = tmp_path / "churn model.onnx"
    path.write_bytes(mf.onnx_bytes(mf.fitted_pipeline(frame), frame))
    version = model_import(actor=owner, workspace=workspace, name="churn", path=path, filename="churn model.onnx")
    made_here = model_version_location(version)
    names = sorted(p.name for p in made_here.iterdir())
    assert "model.onnx" in names and "signature.json" in names

    settings.ARTIFACT_ROOT = tmp_path / "host-b" / "artifacts"  # another host: nothing local
    assert not model_version_location(version).exists()
    folder = model_version_dir(version)
    assert sorted(p.name for p in folder.iterdir()) == names
    assert hashlib.sha256((folder / "model.onnx").read_bytes()).hexdigest() == version.onnx_sha256
    assert (folder / "signature.json").read_bytes() == (made_here / "signature.json").read_bytes()

    with django_capture_on_commit_callbacks(execute=True):
        model_version_delete(actor=owner, version=version)
    listed = s3_server.client().list_objects_v2(Bucket=object_storage, Prefix="studio prefix/")
    assert [o["Key"] for o in listed.get("Contents", []) if "/models/" in o["Key"]] == []
