"""A real HTTP server on 127.0.0.1 for the import tests, and a throwaway PostgreSQL schema."""

import datetime
import http.server
import ipaddress
import os
import secrets
import ssl
import threading

import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CSV = (
    "city,temperature,rain\n" + "".join(f"city{i % 7},{10 + i % 15}.5,{'yes' if i % 3 else 'no'}\n" for i in range(60))
).encode()
BIG_BYTES = 300_000  # over the import limit the tests set (100,000)
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the http.server API
        path = self.path.split("?", 1)[0]
        if path in ("/data.csv", "/table"):
            self._send(200, CSV, "text/csv; charset=utf-8")
        elif path == "/big.csv":
            self._send(200, b"a,b\n" + b"1,2\n" * (BIG_BYTES // 4), "text/csv")
        elif path == "/big-unannounced.csv":
            # No Content-Length: the cap must hold while streaming.
            self.send_response(200)
            self.send_header("Content-Type", "text/csv")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"a,b\n" + b"1,2\n" * (BIG_BYTES // 4))
        elif path.startswith("/hop/"):
            left = int(path.rsplit("/", 1)[1])
            self._redirect(f"/hop/{left - 1}" if left > 0 else "/data.csv")
        elif path == "/to-ftp":
            self._redirect("ftp://127.0.0.1/data.csv")
        else:
            self._send(404, b"not here", "text/plain")

    def _send(self, status, body, content_type):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location):
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def http_files():
    """The base URL of a local server: /data.csv, /table (no extension), /big.csv, /big-unannounced.csv,
    /hop/<n> (n+1 redirects to /data.csv), /to-ftp."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def _self_signed(folder) -> tuple[str, str]:
    """A certificate for 127.0.0.1 that no system trust store knows."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


@pytest.fixture
def https_files(tmp_path):
    """(base URL, certificate file) of the same server over TLS, with a self-signed certificate."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert_path, key_path = _self_signed(tmp_path)
    context.load_cert_chain(cert_path, key_path)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_port}", cert_path
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def postgres_reachable() -> bool:
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


@pytest.fixture
def pg_schema():
    """A throwaway schema with a table `sales` (40 rows) and a sequence, in the machine's PostgreSQL;
    skipped when PostgreSQL is not reachable, but failed under CI, where it must be."""
    if not postgres_reachable():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_URL} (CI must have it)")
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_URL}")
    schema = f"studio_import_{secrets.token_hex(4)}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
        connection.execute(
            f"CREATE TABLE {schema}.sales (id int PRIMARY KEY, region text, amount numeric(10, 2), sold_on date)"
        )
        connection.execute(
            f"INSERT INTO {schema}.sales SELECT i, (ARRAY['north', 'south', 'east'])[1 + i % 3], i * 1.25, "  # noqa: S608 - our own generated name
            "DATE '2024-01-01' + i FROM generate_series(1, 40) AS i"
        )
        connection.execute(f"CREATE SEQUENCE {schema}.counter")
    yield schema
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(f"DROP SCHEMA {schema} CASCADE")
