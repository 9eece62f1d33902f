"""The fetchers of URL and query imports, against a real local HTTP server and the machine's
PostgreSQL: every limit refuses with its own code and a message, and leaves no partial file."""

import csv

import pytest

from data.connectors import check_connection_url, check_query, fetch_query, fetch_url
from data.dataio import DataError
from tests.data import import_helpers
from tests.data.import_helpers import CSV, POSTGRES_URL

http_files = import_helpers.http_files
https_files = import_helpers.https_files
pg_schema = import_helpers.pg_schema


@pytest.fixture
def allow_loopback(settings):
    settings.STUDIO_IMPORT_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    settings.STUDIO_IMPORT_MAX_BYTES = 100_000


def refused(code, call, *args, **kwargs) -> str:
    with pytest.raises(DataError) as caught:
        call(*args, **kwargs)
    assert caught.value.code == code, caught.value
    return caught.value.message


def test_a_url_is_streamed_to_disk_with_its_name_size_and_digest(http_files, allow_loopback, tmp_path):
    fetched = fetch_url(f"{http_files}/data.csv?x=1", tmp_path / "a")
    assert (fetched.name, fetched.size) == ("data.csv", len(CSV)) and (tmp_path / "a").read_bytes() == CSV
    assert len(fetched.sha256) == 64
    assert fetch_url(f"{http_files}/table", tmp_path / "b").name == "table.csv"  # from the Content-Type
    assert fetch_url(f"{http_files}/hop/4", tmp_path / "c").size == len(CSV)  # 5 redirects: the cap


def test_url_limits_refuse_with_a_clear_error_and_leave_no_file(http_files, allow_loopback, settings, tmp_path):
    out = tmp_path / "out"
    assert "more than 5 times" in refused("too_many_redirects", fetch_url, f"{http_files}/hop/5", out)
    assert "100,000 bytes" in refused("too_large", fetch_url, f"{http_files}/big.csv", out)
    refused("too_large", fetch_url, f"{http_files}/big-unannounced.csv", out)
    assert not out.exists()
    assert "http:// and https://" in refused("bad_scheme", fetch_url, "ftp://127.0.0.1/data.csv", out)
    refused("bad_scheme", fetch_url, "file:///etc/passwd", out)
    refused("bad_scheme", fetch_url, f"{http_files}/to-ftp", out)  # each redirect is checked again
    assert "HTTP 404" in refused("download_failed", fetch_url, f"{http_files}/missing.csv", out)
    assert "HTTP 404" in refused("download_failed", fetch_url, f"{http_files}/über data.csv?q=ä b", out)
    refused("bad_url", fetch_url, "http://user:pw@127.0.0.1/x.csv", out)

    # 127.0.0.2 is loopback too, outside the allowed network; localhost also resolves to ::1.
    message = refused("private_address", fetch_url, f"http://127.0.0.2:{http_files.rsplit(':', 1)[1]}/data.csv", out)
    assert "STUDIO_IMPORT_ALLOW_PRIVATE" in message
    settings.STUDIO_IMPORT_ALLOWED_NETWORKS = []
    for url in (f"{http_files}/data.csv", "http://10.1.2.3/x.csv", "http://169.254.169.254/latest/meta-data/"):
        refused("private_address", fetch_url, url, out)
    settings.STUDIO_IMPORT_ALLOW_PRIVATE = True
    assert fetch_url(f"{http_files}/data.csv", out).size == len(CSV)


def test_queries_are_single_selects():
    assert check_query("  SELECT 1 ;  ") == "SELECT 1"
    assert check_query("with t as (select 1) select * from t") == "with t as (select 1) select * from t"
    assert check_query("select ';' as semicolon -- a; comment") == "select ';' as semicolon -- a; comment"
    for bad in ("", "delete from sales", "select 1; drop table sales", "/* select */ update x set y = 1"):
        refused("bad_query", check_query, bad)
    assert check_connection_url("postgresql://bob:secret@db.example:6543/sales") == "bob@db.example:6543/sales"
    refused("bad_url", check_connection_url, "mysql://bob@db/sales")
    refused("bad_url", check_connection_url, "postgres://%e7%ef@db/sales")  # not UTF-8 once decoded


def test_a_query_streams_rows_read_only_within_its_timeout_and_row_cap(pg_schema, settings, tmp_path):
    out = tmp_path / "rows.csv"
    fetched = fetch_query(POSTGRES_URL, f"SELECT * FROM {pg_schema}.sales ORDER BY id", out)  # noqa: S608
    with out.open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["id", "region", "amount", "sold_on"] and len(rows) == 41
    assert rows[1] == ["1", "south", "1.25", "2024-01-02"] and fetched.size == out.stat().st_size

    message = refused("read_only", fetch_query, POSTGRES_URL, f"SELECT nextval('{pg_schema}.counter')", out)
    assert "read-only" in message and not out.exists()
    refused("bad_query", fetch_query, POSTGRES_URL, f"DELETE FROM {pg_schema}.sales", out)  # noqa: S608
    settings.STUDIO_IMPORT_STATEMENT_TIMEOUT_MS = 300
    assert "0.3 s" in refused("statement_timeout", fetch_query, POSTGRES_URL, "SELECT pg_sleep(5)", out)
    settings.STUDIO_IMPORT_MAX_ROWS = 39
    assert "39 rows" in refused("too_many_rows", fetch_query, POSTGRES_URL, f"SELECT * FROM {pg_schema}.sales", out)  # noqa: S608
    refused("connection_failed", fetch_query, "postgresql://postgres@127.0.0.1:1/postgres", "SELECT 1", out)
    refused("query_failed", fetch_query, POSTGRES_URL, "SELECT * FROM no_such_table_here", out)
    assert fetch_query(POSTGRES_URL, f"SELECT count(*) FROM {pg_schema}.sales", out).size > 0  # noqa: S608


def test_https_certificates_are_verified(https_files, allow_loopback, tmp_path, monkeypatch):
    base, certificate = https_files
    message = refused("download_failed", fetch_url, f"{base}/data.csv", tmp_path / "out")
    assert "certificate" in message.lower(), message
    assert not (tmp_path / "out").exists()
    monkeypatch.setenv("SSL_CERT_FILE", certificate)  # now a trusted certificate for 127.0.0.1
    assert fetch_url(f"{base}/data.csv", tmp_path / "out").size == len(CSV)
