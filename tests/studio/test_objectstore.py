"""Object storage against a real S3 API (moto's server): a file published from one data directory
is fetched into another, empty one and verified; a damaged local copy is fetched again; a missing
or damaged object is a clear error that leaves no file; large files travel in parts; without
STUDIO_STORAGE_URL nothing changes. And the data versions use it: a version ingested on one host is
read on a host that never had its file."""

import hashlib
import os

import pytest

from data import services as data_services
from data.dataio import read_page
from studio import objectstore
from studio.settings import ImproperlyConfiguredEnv, env_storage_url
from tests import s3server

s3_server = s3server.s3_server
s3_bucket = s3server.s3_bucket

PART = 5 * 1024 * 1024  # the smallest part S3 takes


@pytest.fixture
def object_storage(settings, s3_server, s3_bucket, tmp_path, monkeypatch):
    """Object storage on the test server, as STUDIO_STORAGE_URL would set it (a prefix in a new
    bucket, the key pair in the AWS_* variables); ARTIFACT_ROOT is host A's."""
    url = f"s3://{s3_bucket}/studio prefix?endpoint_url={s3_server.endpoint_url}&region={s3_server.region}"
    monkeypatch.setenv("STUDIO_STORAGE_URL", url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_access_key)
    settings.STUDIO_STORAGE_MULTIPART_BYTES = PART
    settings.ARTIFACT_ROOT = tmp_path / "host-a" / "artifacts"
    options = env_storage_url("STUDIO_STORAGE_URL")
    settings.STORAGES = settings.STORAGES | {
        "artifacts": {"BACKEND": "studio.objectstore_s3.ArtifactStorage", "OPTIONS": options}
    }
    return s3_bucket


def write(path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def move_to_host_b(settings, tmp_path, relative: str):
    """The same file's path on another host, whose data directory starts empty."""
    settings.ARTIFACT_ROOT = tmp_path / "host-b" / "artifacts"
    return settings.ARTIFACT_ROOT / relative


def test_a_published_file_is_fetched_into_an_empty_data_dir_and_verified(object_storage, s3_server, settings, tmp_path):
    body = os.urandom(2 * PART + 12345)  # three parts each way
    sha = hashlib.sha256(body).hexdigest()
    relative = "workspaces/7/models/3/model.skops"
    objectstore.publish(write(settings.ARTIFACT_ROOT / relative, body), sha256=sha)

    stored = s3_server.client().head_object(Bucket=object_storage, Key=f"studio prefix/{relative}")
    assert stored["Metadata"] == {"sha256": sha} and stored["ETag"].endswith('-3"')  # uploaded in 3 parts

    there = move_to_host_b(settings, tmp_path, relative)
    assert not there.exists()
    assert objectstore.ensure_local(there, sha256=sha) == there and there.read_bytes() == body
    assert not [p for p in there.parent.iterdir() if p.name != "model.skops"]  # no partial file left
    # Without a checksum from the caller, the published one is the reference.
    there.unlink()
    assert objectstore.ensure_local(there).read_bytes() == body


def test_a_damaged_local_copy_is_fetched_again(object_storage, settings, tmp_path):
    body = b"city,rain\nS\xc3\xa3o Paulo,\n" * 1000
    sha = hashlib.sha256(body).hexdigest()
    relative = "workspaces/1/data/5.parquet"
    objectstore.publish(write(settings.ARTIFACT_ROOT / relative, body))  # hashed by publish
    there = move_to_host_b(settings, tmp_path, relative)
    objectstore.ensure_local(there, sha256=sha)

    write(there, body[:-1] + b"X")  # same size, one byte off
    assert objectstore.ensure_local(there, sha256=sha).read_bytes() == body
    write(there, b"truncated")
    assert objectstore.ensure_local(there).read_bytes() == body  # checked against the published SHA-256


def test_a_missing_or_damaged_object_is_a_clear_error_and_leaves_no_file(object_storage, s3_server, settings, tmp_path):
    absent = settings.ARTIFACT_ROOT / "workspaces/1/data/404.parquet"
    with pytest.raises(objectstore.ObjectMissing) as caught:
        objectstore.ensure_local(absent, sha256="0" * 64)
    assert "workspaces/1/data/404.parquet" in str(caught.value) and object_storage in str(caught.value)
    assert not absent.exists()

    relative = "workspaces/1/jobs/9/outputs/report.csv"
    objectstore.publish(write(settings.ARTIFACT_ROOT / relative, b"a,b\n1,2\n"))
    s3_server.client().put_object(  # the stored body changes behind the studio's back
        Bucket=object_storage,
        Key=f"studio prefix/{relative}",
        Body=b"a,b\n6,6\n",
        Metadata={"sha256": hashlib.sha256(b"a,b\n1,2\n").hexdigest()},
    )
    there = move_to_host_b(settings, tmp_path, relative)
    with pytest.raises(objectstore.ObjectCorrupt) as caught:
        objectstore.ensure_local(there)
    assert "does not match its checksum" in str(caught.value)
    assert not there.exists() and not list(there.parent.iterdir())

    objectstore.discard(settings.ARTIFACT_ROOT / relative)
    with pytest.raises(objectstore.ObjectMissing):
        objectstore.ensure_local(there)
    with pytest.raises(ValueError, match="not under the artifact root"):
        objectstore.publish(write(tmp_path / "elsewhere.txt", b"x"))


def test_without_object_storage_the_local_directory_is_the_only_copy(settings, tmp_path):
    assert "artifacts" not in settings.STORAGES and not objectstore.enabled()
    path = write(settings.ARTIFACT_ROOT / "workspaces/1/data/1.parquet", b"local")
    objectstore.publish(path)
    assert objectstore.ensure_local(path, sha256="0" * 64) == path  # no store to compare with
    assert objectstore.ensure_local(tmp_path / "nowhere") == tmp_path / "nowhere"


def test_the_storage_url_is_checked_when_the_studio_starts(monkeypatch):
    monkeypatch.setenv("X_URL", "s3://my-bucket/team/artifacts?endpoint_url=http://minio:9000&region=eu-west-1")
    assert env_storage_url("X_URL") == {
        "bucket_name": "my-bucket",
        "location": "team/artifacts",
        "endpoint_url": "http://minio:9000",
        "region_name": "eu-west-1",
    }
    monkeypatch.setenv("X_URL", "s3://my-bucket")
    assert env_storage_url("X_URL")["location"] == "" and env_storage_url("X_URL")["endpoint_url"] is None
    monkeypatch.setenv("X_URL", "")
    assert env_storage_url("X_URL") is None
    for bad in ("gs://bucket", "s3:///prefix", "s3://b?endpoint=http://x", "s3://b?endpoint_url=ftp://x"):
        monkeypatch.setenv("X_URL", bad)
        with pytest.raises(ImproperlyConfiguredEnv):
            env_storage_url("X_URL")


@pytest.mark.django_db
def test_a_data_version_made_on_one_host_is_read_on_another(
    object_storage, s3_server, api, owner, workspace, settings, tmp_path, django_capture_on_commit_callbacks
):
    rows = "".join(f"Köln {i},{'' if i % 7 == 0 else i * 0.5},2024-01-{1 + i % 28:02d}\n" for i in range(120))
    csv = write(tmp_path / "rain fall.csv", ("city,mm,day\n" + rows).encode())
    version = data_services.data_version_from_file(actor=owner, workspace=workspace, path=csv, name="rain fall")
    relative = data_services.data_version_location(version).relative_to(settings.ARTIFACT_ROOT).as_posix()

    move_to_host_b(settings, tmp_path, relative)
    assert not data_services.data_version_location(version).exists()
    path = data_services.data_version_path(version)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == version.parquet_sha256
    assert read_page(path, 0, 5).total_rows == 120

    # A file lost everywhere is a 404 that says so on a page or in the API, never a 500.
    s3_server.client().delete_object(Bucket=object_storage, Key=f"studio prefix/{relative}")
    move_to_host_b(settings, tmp_path / "d", relative)
    base = f"/api/v1/workspaces/{workspace.pk}/data-assets/{version.asset_id}/versions/{version.version}"
    for url in (f"{base}/download/?format=parquet", f"{base}/preview/"):
        response = api(owner).get(url)
        assert response.status_code == 404 and "missing" in response.content.decode(), (url, response.content)
    objectstore.publish(write(data_services.data_version_location(version), path.read_bytes()))

    with django_capture_on_commit_callbacks(execute=True):
        data_services.data_version_delete(actor=owner, version=version)
    assert not (settings.ARTIFACT_ROOT / relative).exists()
    with pytest.raises(objectstore.ObjectMissing):  # gone from object storage too
        objectstore.ensure_local(move_to_host_b(settings, tmp_path / "c", relative))


def test_a_store_that_cannot_be_reached_or_lacks_its_bucket_is_a_clear_error(object_storage, settings, tmp_path):
    relative = "workspaces/7/data/9.parquet"
    path = write(settings.ARTIFACT_ROOT / relative, b"PAR1 data")
    artifacts = settings.STORAGES["artifacts"]
    missing_bucket = {**artifacts["OPTIONS"], "bucket_name": "no-such-bucket"}
    settings.STORAGES = settings.STORAGES | {"artifacts": {**artifacts, "OPTIONS": missing_bucket}}
    with pytest.raises(objectstore.ObjectStoreError) as caught:
        objectstore.publish(path)
    assert str(caught.value).startswith(
        f"Could not publish {relative} to s3://no-such-bucket/studio prefix/{relative}: "
    )
    assert "NoSuchBucket" in str(caught.value)

    closed = {**artifacts["OPTIONS"], "endpoint_url": "http://127.0.0.1:9"}  # the discard port: nobody listens
    settings.STORAGES = settings.STORAGES | {"artifacts": {**artifacts, "OPTIONS": closed}}
    there = move_to_host_b(settings, tmp_path, relative)
    with pytest.raises(objectstore.ObjectStoreError) as caught:
        objectstore.ensure_local(there, sha256="0" * 64)
    assert str(caught.value).startswith(
        f"Could not reach object storage for s3://{object_storage}/studio prefix/{relative}: "
    )
    assert not there.exists()
