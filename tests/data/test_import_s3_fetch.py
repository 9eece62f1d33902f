"""The S3 fetcher against a real S3 API (moto's server with IAM authentication): an object or a
prefix's parts stream to disk; a wrong key pair, a missing bucket or key, an oversized object and
a private endpoint each refuse with their own code and a clear message, and leave no file."""

import hashlib

import pytest

from data.connectors import S3Location, check_endpoint_url, check_object_key, fetch_s3
from data.dataio import DataError
from tests import s3server

s3_server = s3server.s3_server
s3_bucket = s3server.s3_bucket

CSV = b"city,temperature,rain\n" + b"".join(
    f"S\xc3\xa3o Paulo {i},{20 + i % 7}.5,{'' if i % 5 == 0 else 'yes'}\n".encode() for i in range(200)
)


@pytest.fixture
def allow_loopback(settings):
    settings.STUDIO_IMPORT_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    settings.STUDIO_IMPORT_MAX_BYTES = 100_000


def location(server, bucket, **changes) -> S3Location:
    values = {
        "bucket": bucket,
        "region": server.region,
        "endpoint_url": server.endpoint_url,
        "access_key_id": server.access_key_id,
        "secret_access_key": server.secret_access_key,
    }
    return S3Location(**(values | changes))


def refused(code, *args) -> str:
    with pytest.raises(DataError) as caught:
        fetch_s3(*args)
    assert caught.value.code == code, caught.value
    return caught.value.message


def test_an_object_streams_to_disk_with_its_name_size_and_digest(s3_server, s3_bucket, allow_loopback, tmp_path):
    key = "exports/2024 Q4/weather (final).csv"
    s3_server.client().put_object(Bucket=s3_bucket, Key=key, Body=CSV)
    fetched = fetch_s3(location(s3_server, s3_bucket), key, tmp_path / "out")
    assert (fetched.name, fetched.size) == ("weather (final).csv", len(CSV))
    assert (tmp_path / "out").read_bytes() == CSV and fetched.sha256 == hashlib.sha256(CSV).hexdigest()


def test_a_prefix_joins_its_csv_parts_in_name_order_with_one_header(s3_server, s3_bucket, allow_loopback, tmp_path):
    client = s3_server.client()
    client.put_object(Bucket=s3_bucket, Key="out/part-0001.csv", Body=b"a,b\n3,4")  # no final newline
    client.put_object(Bucket=s3_bucket, Key="out/part-0000.csv", Body=b"a,b\n1,2\n")
    client.put_object(Bucket=s3_bucket, Key="out/part-0002.csv", Body=b"5,6\n")  # a part without the header
    client.put_object(Bucket=s3_bucket, Key="out/_SUCCESS", Body=b"")
    fetched = fetch_s3(location(s3_server, s3_bucket), "out/", tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == b"a,b\n1,2\n3,4\n5,6\n"
    assert fetched.name == "out.csv" and fetched.size == 16

    client.put_object(Bucket=s3_bucket, Key="mixed/a.csv", Body=b"a\n1\n")
    client.put_object(Bucket=s3_bucket, Key="mixed/b.parquet", Body=b"PAR1")
    assert "one file" in refused("bad_prefix", location(s3_server, s3_bucket), "mixed/", tmp_path / "x")


def test_refusals_name_the_cause_and_leave_no_file(s3_server, s3_bucket, allow_loopback, settings, tmp_path):
    s3_server.client().put_object(Bucket=s3_bucket, Key="data.csv", Body=CSV)
    out = tmp_path / "out"
    wrong_secret = location(s3_server, s3_bucket, secret_access_key="not-the-secret")
    message = refused("access_denied", wrong_secret, "data.csv", out)
    assert "access key" in message and "not-the-secret" not in message
    refused("access_denied", location(s3_server, s3_bucket, access_key_id="AKIANOSUCHKEY0000000"), "data.csv", out)
    assert "no object" in refused("no_such_key", location(s3_server, s3_bucket), "missing.csv", out)
    refused("no_such_key", location(s3_server, s3_bucket), "empty-prefix/", out)
    message = refused("no_such_bucket", location(s3_server, "no-such-bucket-here"), "data.csv", out)
    assert "no-such-bucket-here" in message
    settings.STUDIO_IMPORT_MAX_BYTES = 1000
    assert "1,000 bytes" in refused("too_large", location(s3_server, s3_bucket), "data.csv", out)
    settings.STUDIO_IMPORT_ALLOWED_NETWORKS = []
    assert "STUDIO_IMPORT_ALLOW_PRIVATE" in refused("private_address", location(s3_server, s3_bucket), "data.csv", out)
    closed = location(s3_server, s3_bucket, endpoint_url="http://127.0.0.1:1")
    settings.STUDIO_IMPORT_ALLOW_PRIVATE = True
    assert "127.0.0.1:1" in refused("connection_failed", closed, "data.csv", out)
    assert not out.exists()


def test_keys_and_endpoints_are_checked_before_any_request():
    assert check_object_key("  a/b c.csv ") == "a/b c.csv"
    for bad in ("", "/abs/key.csv", "line\nbreak.csv", "x" * 1025):
        with pytest.raises(DataError):
            check_object_key(bad)
    assert check_endpoint_url("http://minio.internal:9000/") == "http://minio.internal:9000"
    assert check_endpoint_url("") == ""
    for bad in ("ftp://minio:9000", "http://minio:9000/bucket", "http://user:pw@minio:9000"):
        with pytest.raises(DataError):
            check_endpoint_url(bad)
