"""data_version_from_file: the in-process ingest that scripts and tests use, on the same records."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from data.models import DataVersion, Ingest, IngestStatus
from data.services import data_version_from_file, data_version_path
from studio.hashing import sha256_file

pytestmark = pytest.mark.django_db


def test_a_file_becomes_a_version_with_its_real_checksum(owner, workspace, tmp_path):
    source = tmp_path / "small.csv"
    source.write_text("a,b\n1,x\n2,y\n3,x\n")
    version = data_version_from_file(actor=owner, workspace=workspace, path=source, name="small")
    assert (version.asset.name, version.version, version.rows) == ("small", 1, 3)
    assert version.parquet_sha256 == sha256_file(data_version_path(version))
    assert Ingest.objects.get(version=version).status == IngestStatus.READY


def test_a_bad_file_fails_its_ingest_and_leaves_no_version(owner, workspace, tmp_path):
    source = tmp_path / "bad.csv"
    source.write_text("a,b\n1,2\n3,4,5,6\n")
    with pytest.raises(ValidationError):
        data_version_from_file(actor=owner, workspace=workspace, path=source, name="bad")
    assert not DataVersion.objects.filter(asset__workspace=workspace).exists()
    assert Ingest.objects.get(asset_name="bad").status == IngestStatus.FAILED


def test_a_reader_cannot_add_data(reader, workspace, tmp_path):
    source = tmp_path / "small.csv"
    source.write_text("a\n1\n")
    with pytest.raises(PermissionDenied):
        data_version_from_file(actor=reader, workspace=workspace, path=source, name="small")
