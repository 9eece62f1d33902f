"""Fetch the data an import names into a staging file: an HTTP(S) URL, or a datastore's query.

Both run in the ingest job on a node, then the staged file goes through the same parse, profile
and version path as an upload. Every refusal is a DataError with a stable code and a message for
the user, which the job saves on the ingest.

URLs: http and https only; the host name is resolved here and the connection goes to the address
that was checked (a second resolution could answer otherwise: DNS rebinding), with TLS still
verified against the host name; private, loopback, link-local, multicast and reserved addresses
are refused unless settings allow them; at most MAX_REDIRECTS redirects, each checked the same
way; the body streams to disk under a size cap and a time limit.

Queries: one SELECT (or WITH) statement, run in a read-only transaction with a statement timeout,
read through a server-side cursor in batches and written to CSV; past the row cap the import fails.

S3 objects: one key, or a prefix ending in "/" whose data files (CSV/TSV parts, header repeated or
not) are joined in name order; the endpoint's host is checked like a URL's; the body streams to
disk under the same size cap and time limit as a URL's.
"""

import csv
import hashlib
import ipaddress
import re
import socket
import time
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urljoin, urlsplit

import psycopg
import urllib3
from django.conf import settings
from psycopg.conninfo import conninfo_to_dict

from data.dataio import DataError

MAX_REDIRECTS = 5
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
CHUNK_BYTES = 1024 * 1024
FETCH_BATCH_ROWS = 5000
USER_AGENT = "Studio data import"
CONTENT_TYPE_SUFFIXES = {
    "text/csv": ".csv",
    "application/csv": ".csv",
    "text/tab-separated-values": ".tsv",
    "text/plain": ".txt",
    "application/vnd.apache.parquet": ".parquet",
    "application/x-parquet": ".parquet",
    "application/gzip": ".csv.gz",
    "application/x-gzip": ".csv.gz",
}
KNOWN_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".gz", ".parquet", ".pq")
POSTGRES_SCHEMES = ("postgresql", "postgres")


@dataclass
class Fetched:
    """What was staged: the file name to show, its size and SHA-256."""

    name: str
    size: int
    sha256: str


# --- URLs ---------------------------------------------------------------------------------------
def check_url(url: str) -> str:
    """The URL stripped, or a DataError for a scheme other than http/https or a URL without a host."""
    url = (url or "").strip()
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise DataError("Only http:// and https:// URLs can be imported.", code="bad_scheme")
    if not parts.hostname:
        raise DataError("The URL has no host name.", code="bad_url")
    if parts.username or parts.password:
        raise DataError("Put no user name or password in the URL.", code="bad_url")
    try:
        parts.port  # noqa: B018 - raises for a port out of range
    except ValueError:
        raise DataError("The URL's port is not a number from 1 to 65535.", code="bad_url") from None
    return url


def _address_allowed(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if settings.STUDIO_IMPORT_ALLOW_PRIVATE:
        return True
    if any(ip in ipaddress.ip_network(net, strict=False) for net in settings.STUDIO_IMPORT_ALLOWED_NETWORKS):
        return True
    return ip.is_global and not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified
    )


def _resolve(host: str, port: int) -> str:
    """The address to connect to; refused when any address of the host is not allowed."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise DataError(f"The host name {host} could not be resolved.", code="unresolved_host") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    refused = [a for a in addresses if not _address_allowed(a)]
    if refused:
        raise DataError(
            f"{host} resolves to {refused[0]}, a private, loopback, link-local, multicast or reserved address: "
            "imports from the studio's own network are refused unless STUDIO_IMPORT_ALLOW_PRIVATE or "
            "STUDIO_IMPORT_ALLOWED_NETWORKS allows it.",
            code="private_address",
        )
    return addresses[0]


def _pool(url: str, timeout: urllib3.Timeout) -> tuple[urllib3.HTTPConnectionPool, str]:
    """A connection pool to the checked address of the URL's host, and the Host header to send."""
    parts = urlsplit(url)
    try:
        host = parts.hostname.encode("idna").decode("ascii")  # an international name, as DNS knows it
    except UnicodeError:
        raise DataError(f"The host name {parts.hostname} is not a valid name.", code="bad_url") from None
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    address = _resolve(host, port)
    host_header = host if parts.port is None else f"{host}:{parts.port}"
    if parts.scheme.lower() == "https":
        pool = urllib3.HTTPSConnectionPool(
            address,
            port,
            timeout=timeout,
            retries=False,
            maxsize=1,
            cert_reqs="CERT_REQUIRED",
            server_hostname=host,  # SNI and certificate checked against the name, not the address
            assert_hostname=host,
        )
    else:
        pool = urllib3.HTTPConnectionPool(address, port, timeout=timeout, retries=False, maxsize=1)
    return pool, host_header


def _file_name(url: str, content_type: str) -> str:
    name = unquote(PurePosixPath(urlsplit(url).path).name)[:200] or "download"
    if name.lower().endswith(KNOWN_SUFFIXES):
        return name
    return name + CONTENT_TYPE_SUFFIXES.get(content_type.split(";")[0].strip().lower(), "")


def fetch_url(url: str, destination: Path, *, progress=None) -> Fetched:
    """Download `url` to `destination` (streamed, never whole in memory). Raises DataError."""
    max_bytes = settings.STUDIO_IMPORT_MAX_BYTES
    deadline = time.monotonic() + settings.STUDIO_IMPORT_TIMEOUT_SECONDS
    timeout = urllib3.Timeout(
        connect=settings.STUDIO_IMPORT_CONNECT_TIMEOUT, read=settings.STUDIO_IMPORT_CONNECT_TIMEOUT * 3
    )
    current = check_url(url)
    for hop in range(MAX_REDIRECTS + 1):
        pool, host_header = _pool(current, timeout)
        parts = urlsplit(current)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")  # urllib3 percent-encodes
        try:
            response = pool.urlopen(
                "GET",
                target,
                headers={"Host": host_header, "User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
                redirect=False,
                preload_content=False,
                assert_same_host=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            pool.close()
            raise DataError(f"Could not download {current}: {_reason(exc)}", code="download_failed") from None
        try:
            if response.status in REDIRECT_STATUSES:
                location = response.headers.get("Location")
                if not location:
                    raise DataError(f"{current} redirects without saying where.", code="download_failed")
                if hop == MAX_REDIRECTS:
                    raise DataError(
                        f"{url} redirects more than {MAX_REDIRECTS} times; give the final URL.",
                        code="too_many_redirects",
                    )
                current = check_url(urljoin(current, location))
                continue
            if response.status != 200:
                raise DataError(
                    f"{current} answered HTTP {response.status} {response.reason or ''}".rstrip() + ".",
                    code="download_failed",
                )
            announced = response.headers.get("Content-Length")
            if announced and announced.isdigit() and int(announced) > max_bytes:
                raise DataError(_too_large(max_bytes), code="too_large")
            size, sha256 = _stream(response, destination, max_bytes, deadline, progress)
            return Fetched(_file_name(current, response.headers.get("Content-Type", "")), size, sha256)
        finally:
            response.release_conn()
            pool.close()
    raise AssertionError("unreachable")  # the loop returns or raises


def _stream(response, destination: Path, max_bytes: int, deadline: float, progress) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    try:
        with destination.open("wb") as fh:
            for chunk in response.stream(CHUNK_BYTES, decode_content=False):
                size += len(chunk)
                if size > max_bytes:
                    raise DataError(_too_large(max_bytes), code="too_large")
                if time.monotonic() > deadline:
                    raise DataError(
                        f"The download took longer than {settings.STUDIO_IMPORT_TIMEOUT_SECONDS:g} s.",
                        code="timeout",
                    )
                fh.write(chunk)
                digest.update(chunk)
                if progress:
                    progress(0, size)
    except urllib3.exceptions.HTTPError as exc:
        destination.unlink(missing_ok=True)
        raise DataError(f"The download broke off: {_reason(exc)}", code="download_failed") from None
    except DataError:
        destination.unlink(missing_ok=True)
        raise
    return size, digest.hexdigest()


def _too_large(max_bytes: int) -> str:
    return f"The file is larger than the import limit of {max_bytes:,} bytes (STUDIO_IMPORT_MAX_BYTES)."


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None) or exc
    return str(reason).split(": ", 1)[-1][:300]


# --- Datastores (PostgreSQL) --------------------------------------------------------------------
def check_connection_url(url: str) -> str:
    """A display form of a PostgreSQL connection URL without its password (user@host:port/database);
    a DataError when it is not one."""
    url = (url or "").strip()
    if urlsplit(url).scheme.lower() not in POSTGRES_SCHEMES:
        raise DataError("Give a postgresql://user:password@host:port/database URL.", code="bad_url")
    try:
        parts = conninfo_to_dict(url)
    except (psycopg.ProgrammingError, UnicodeDecodeError):
        raise DataError("This is not a valid PostgreSQL connection URL.", code="bad_url") from None
    host = parts.get("host") or "localhost"
    port = parts.get("port") or "5432"
    user = f"{parts['user']}@" if parts.get("user") else ""
    return f"{user}{host}:{port}/{parts.get('dbname') or ''}"[:300]


_SQL_SKIPPED = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/", re.S)


def check_query(query: str) -> str:
    """The query without a trailing semicolon: a single SELECT or WITH statement, else a DataError.
    (The read-only transaction is what keeps a query from writing; this catches mistakes early.)"""
    query = (query or "").strip().rstrip(";").strip()
    if not query:
        raise DataError("Give a SELECT query.", code="bad_query")
    bare = _SQL_SKIPPED.sub(" ", query)
    if ";" in bare:
        raise DataError("Give one statement only (a single SELECT or WITH query).", code="bad_query")
    words = bare.split()
    if not words or words[0].lower() not in ("select", "with"):
        raise DataError("Only a SELECT (or WITH … SELECT) query can be imported.", code="bad_query")
    return query


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return value


def fetch_query(connection_url: str, query: str, destination: Path, *, progress=None) -> Fetched:
    """Run `query` read-only and write its rows as CSV to `destination`. Raises DataError."""
    query = check_query(query)
    max_rows = settings.STUDIO_IMPORT_MAX_ROWS
    timeout_ms = int(settings.STUDIO_IMPORT_STATEMENT_TIMEOUT_MS)
    options = f"-c default_transaction_read_only=on -c statement_timeout={timeout_ms}"
    digest = hashlib.sha256()
    rows = 0
    try:
        with (
            psycopg.connect(
                connection_url,
                connect_timeout=max(1, int(settings.STUDIO_IMPORT_CONNECT_TIMEOUT)),
                options=options,
                application_name="studio data import",
            ) as connection,
            destination.open("w", newline="", encoding="utf-8") as fh,
        ):
            connection.read_only = True
            with connection.transaction(), connection.cursor(name="studio_import") as cursor:
                cursor.itersize = FETCH_BATCH_ROWS
                cursor.execute(query)
                writer = csv.writer(fh)
                writer.writerow([column.name for column in cursor.description or []])
                while batch := cursor.fetchmany(FETCH_BATCH_ROWS):
                    rows += len(batch)
                    if rows > max_rows:
                        raise DataError(
                            f"The query returns more than {max_rows:,} rows (STUDIO_IMPORT_MAX_ROWS): "
                            "narrow it with WHERE or LIMIT.",
                            code="too_many_rows",
                        )
                    writer.writerows([_cell(v) for v in row] for row in batch)
                    if progress:
                        progress(rows, fh.tell())
    except psycopg.errors.QueryCanceled:
        destination.unlink(missing_ok=True)
        raise DataError(
            f"The query ran longer than the statement timeout of {timeout_ms / 1000:g} s "
            "(STUDIO_IMPORT_STATEMENT_TIMEOUT_MS).",
            code="statement_timeout",
        ) from None
    except psycopg.errors.ReadOnlySqlTransaction:
        destination.unlink(missing_ok=True)
        raise DataError("The query tried to write: imports run read-only.", code="read_only") from None
    except psycopg.OperationalError as exc:
        destination.unlink(missing_ok=True)
        raise DataError(f"Could not connect to the datastore: {_first_line(exc)}", code="connection_failed") from None
    except psycopg.Error as exc:
        destination.unlink(missing_ok=True)
        raise DataError(f"The query failed: {_first_line(exc)}", code="query_failed") from None
    except DataError:
        destination.unlink(missing_ok=True)
        raise
    with destination.open("rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            digest.update(chunk)
    return Fetched("query.csv", destination.stat().st_size, digest.hexdigest())


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or ["unknown error"])[0][:300]


# --- Datastores (S3) ----------------------------------------------------------------------------
S3_DENIED_CODES = ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "403")
S3_MAX_PARTS = 1000
S3_JOINABLE_SUFFIXES = (".csv", ".tsv", ".txt")


@dataclass
class S3Location:
    """Where an S3 datastore's objects are, and the key pair to read them with."""

    bucket: str
    region: str
    endpoint_url: str
    access_key_id: str
    secret_access_key: str


def check_object_key(key: str) -> str:
    """An S3 key or prefix (ending in "/"): no leading slash, 1–1024 characters, no control characters."""
    key = (key or "").strip() if isinstance(key, str) else ""
    if not key:
        raise DataError("Give the key of the object to import (or a prefix ending in /).", code="bad_key")
    if key.startswith("/"):
        raise DataError("An S3 key does not start with /: give it as it appears in the bucket.", code="bad_key")
    if len(key.encode()) > 1024 or any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise DataError("An S3 key has at most 1,024 bytes and no control characters.", code="bad_key")
    return key


def check_endpoint_url(url: str) -> str:
    """An S3-compatible endpoint (MinIO and the like) as http(s)://host[:port], or "" for AWS."""
    url = (url or "").strip().rstrip("/") if isinstance(url, str) else ""
    if not url:
        return ""
    url = check_url(url)
    parts = urlsplit(url)
    if parts.path or parts.query or parts.fragment:
        raise DataError("Give the endpoint as http(s)://host[:port], with no path.", code="bad_url")
    return url


def _s3_client(location: S3Location):
    import boto3  # deferred: boto3 (~24 MB) only in a process that imports from S3
    import botocore.config  # deferred: with boto3

    if location.endpoint_url:
        parts = urlsplit(location.endpoint_url)
        _resolve(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))  # R6, as for a URL
    return boto3.session.Session().client(
        "s3",
        endpoint_url=location.endpoint_url or None,
        region_name=location.region or "us-east-1",
        aws_access_key_id=location.access_key_id,
        aws_secret_access_key=location.secret_access_key,
        config=botocore.config.Config(
            connect_timeout=settings.STUDIO_IMPORT_CONNECT_TIMEOUT,
            read_timeout=settings.STUDIO_IMPORT_CONNECT_TIMEOUT * 3,
            retries={"max_attempts": 2, "mode": "standard"},
            s3={"addressing_style": "path"} if location.endpoint_url else None,
        ),
    )


def _s3_error(exc: Exception, location: S3Location, key: str) -> DataError:
    """A DataError that says what went wrong in the user's terms (never the secret key)."""
    import botocore.exceptions  # deferred: loaded by the client that raised `exc`

    if isinstance(exc, botocore.exceptions.ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in S3_DENIED_CODES:
            return DataError(
                f"S3 refused the datastore's access key for s3://{location.bucket}/{key} ({code}): "
                "check the key pair and that it may read this bucket.",
                code="access_denied",
            )
        if code in ("NoSuchBucket",):
            return DataError(f"The bucket {location.bucket} does not exist.", code="no_such_bucket")
        if code in ("NoSuchKey", "404", "NotFound"):
            return DataError(f"There is no object s3://{location.bucket}/{key}.", code="no_such_key")
        return DataError(f"S3 answered {code or 'an error'} for s3://{location.bucket}/{key}.", code="s3_failed")
    if isinstance(exc, botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError):
        return DataError("The datastore has no complete access key pair.", code="access_denied")
    where = location.endpoint_url or f"S3 in {location.region or 'us-east-1'}"
    return DataError(f"Could not reach {where}: {_first_line(exc)}", code="connection_failed")


def _s3_objects(client, location: S3Location, key: str) -> list[tuple[str, int]]:
    """(key, size) of what to import: the one object (its size told by its GET: a HEAD's 404 could
    not say whether the bucket or the key is missing), or the data files under a prefix in name order."""
    if not key.endswith("/"):
        return [(key, 0)]
    objects = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=location.bucket, Prefix=key):
        for item in page.get("Contents", []):
            name = PurePosixPath(item["Key"]).name
            if item["Key"].endswith("/") or not name or name.startswith(("_", ".")):
                continue  # folder markers, _SUCCESS and hidden files written by Spark and friends
            objects.append((item["Key"], int(item.get("Size") or 0)))
            if len(objects) > S3_MAX_PARTS:
                raise DataError(f"The prefix holds more than {S3_MAX_PARTS} files.", code="too_many_files")
    if not objects:
        raise DataError(f"There is no object under s3://{location.bucket}/{key}.", code="no_such_key")
    if len(objects) > 1 and not all(k.lower().endswith(S3_JOINABLE_SUFFIXES) for k, _ in objects):
        raise DataError(
            "Only uncompressed CSV/TSV parts (.csv, .tsv, .txt) under a prefix can be joined; "
            "give the key of one file instead.",
            code="bad_prefix",
        )
    return sorted(objects)


def fetch_s3(location: S3Location, key: str, destination: Path, *, progress=None) -> Fetched:
    """Download the object `key` (or the parts under a prefix, joined) to `destination`, streamed
    under the import size cap and time limit. Raises DataError."""
    from botocore.exceptions import BotoCoreError, ClientError  # deferred: boto3 only for S3 imports

    key = check_object_key(key)
    max_bytes = settings.STUDIO_IMPORT_MAX_BYTES
    deadline = time.monotonic() + settings.STUDIO_IMPORT_TIMEOUT_SECONDS
    digest = hashlib.sha256()
    size = 0
    try:
        client = _s3_client(location)
        objects = _s3_objects(client, location, key)
        if sum(object_size for _, object_size in objects) > max_bytes:
            raise DataError(_too_large(max_bytes), code="too_large")
        header, last = None, b"\n"
        with destination.open("wb") as fh:
            for index, (object_key, _) in enumerate(objects):
                response = client.get_object(Bucket=location.bucket, Key=object_key)
                if size + int(response.get("ContentLength") or 0) > max_bytes:
                    response["Body"].close()
                    raise DataError(_too_large(max_bytes), code="too_large")
                body = response["Body"]
                first = True
                for chunk in body.iter_chunks(CHUNK_BYTES):
                    if first and len(objects) > 1:
                        chunk, header = _join_part(chunk, header, index)
                        first = False
                    size += len(chunk)
                    if size > max_bytes:
                        raise DataError(_too_large(max_bytes), code="too_large")
                    if time.monotonic() > deadline:
                        raise DataError(
                            f"The download took longer than {settings.STUDIO_IMPORT_TIMEOUT_SECONDS:g} s.",
                            code="timeout",
                        )
                    fh.write(chunk)
                    digest.update(chunk)
                    last = chunk[-1:] or last
                    if progress:
                        progress(0, size)
                if len(objects) > 1 and last != b"\n":  # a part without a final newline
                    fh.write(b"\n")
                    digest.update(b"\n")
                    size, last = size + 1, b"\n"
    except DataError:
        destination.unlink(missing_ok=True)
        raise
    except (BotoCoreError, ClientError) as exc:
        destination.unlink(missing_ok=True)
        raise _s3_error(exc, location, key) from None
    name = PurePosixPath(objects[0][0]).name[:200] if len(objects) == 1 else PurePosixPath(key).name + ".csv"
    return Fetched(name or "object", size, digest.hexdigest())


def _join_part(chunk: bytes, header: bytes | None, index: int) -> tuple[bytes, bytes | None]:
    """The first chunk of part `index`: the first part's first line is the header; a later part
    that repeats it has it dropped."""
    line, newline, rest = chunk.partition(b"\n")
    if index == 0:
        return chunk, line + newline
    if header is not None and line + newline == header:
        return rest, header
    return chunk, header
