"""The HTTP of the serving hop, on real sockets: the replica reads requests without the e-mail
parser (and refuses what it cannot read unambiguously), and the portal's keep-alive connection
reads a replica's answers and fails the way the retry rules expect."""

import http.client
import json
import socket
import threading

import pytest
from django.core.cache import cache
from django.db import connections

from endpoints import routing, services
from endpoints.replica import ReplicaServer

ROW = {"tenure": 3, "charges": 80.5, "plan": "basic plan (old)", "region": None}


@pytest.fixture
def replica(transactional_db, owner, workspace, model_version, inference):
    created = services.endpoint_create(actor=owner, workspace=workspace, name="churn-api")
    services.deployment_create(
        actor=owner, endpoint=created.endpoint, name="blue", model_version=model_version, target=inference
    )
    cache.clear()
    server = ReplicaServer(("127.0.0.1", 0), endpoint_name="churn-api", deployment_name="blue", node_id=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], created.primary
    server.shutdown()
    server.server_close()
    connections.close_all()


def exchange(port: int, raw: bytes) -> bytes:
    """Send raw bytes, read until the replica closes or answers a whole JSON body."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(raw)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
            head, _, body = received.partition(b"\r\n\r\n")
            length = [
                int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
            ]
            if length and len(body) >= length[0]:
                break
        return received


def request(key: str, body: bytes, *extra: bytes) -> bytes:
    lines = [b"POST /score/churn-api/ HTTP/1.1", b"Host: replica", f"Authorization: Bearer {key}".encode(), *extra]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def test_header_names_are_read_in_any_case_and_the_answer_keeps_the_connection(replica):
    port, key = replica
    body = json.dumps([ROW]).encode()
    raw = request(key, body, f"content-length: {len(body)}".encode(), b"x-studio-deployment: blue")
    answer = exchange(port, raw)
    assert answer.startswith(b"HTTP/1.1 200 ") and b"Connection: close" not in answer
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["deployment"] == "blue"


@pytest.mark.parametrize(
    ("extra", "status"),
    [
        ((b"Content-Length: 2", b"Content-Length: 40"), b"400"),  # which one is the body's?
        ((b"Transfer-Encoding: chunked",), b"501"),
        ((b"Content-Length: 2", b" folded: value"), b"400"),
        ((b"Content-Length : 2",), b"400"),
        ((b"no colon here",), b"400"),
    ],
)
def test_requests_that_cannot_be_read_unambiguously_are_refused_and_the_connection_closed(replica, extra, status):
    port, key = replica
    answer = exchange(port, request(key, b"[]", *extra))
    assert answer.split(b" ")[1] == status and b"Connection: close" in answer


def test_too_many_header_lines_are_refused(replica):
    port, key = replica
    extra = [f"X-Filler-{i}: {i}".encode() for i in range(101)]
    assert exchange(port, request(key, b"[]", b"Content-Length: 2", *extra)).split(b" ")[1] == b"431"


def test_a_client_that_expects_100_continue_is_told_to_send_its_body_at_once(replica):
    """curl asks so before a body over 1 KB and waits a second for the answer: the interim answer
    must leave at once, not wait in the buffer for the final one."""
    port, key = replica
    body = json.dumps([ROW] * 20).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        head = request(key, b"", f"Content-Length: {len(body)}".encode(), b"Expect: 100-continue")
        sock.sendall(head)
        assert sock.recv(1024).startswith(b"HTTP/1.1 100 Continue")  # before any body was sent
        sock.sendall(body)
        received = b""
        while b'"deployment"' not in received:
            received += sock.recv(65536)
    assert b" 200 OK" in received and json.loads(received.partition(b"\r\n\r\n")[2])["predictions"]


def test_the_portals_connection_reads_answers_and_keeps_the_connection(replica):
    port, key = replica
    connection = routing.ReplicaConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    for _ in range(3):  # one connection, kept alive
        status, body, closes = connection.exchange("/score/churn-api/", json.dumps([ROW] * 50).encode(), headers)
        assert status == 200 and len(json.loads(body)["predictions"]) == 50 and not closes
    status, body, closes = connection.exchange("/score/churn-api/", b"[", headers)
    assert status == 400 and json.loads(body)["error"]["code"] == "parse_error"
    with pytest.raises(ValueError, match="line break"):  # no header smuggled into the replica's request
        connection.exchange("/score/churn-api/", b"[]", {"Authorization": f"Bearer {key}\r\nX-Studio-Mirrored: 1"})
    connection.close()


class OneAnswerServer:
    """A socket that answers every request with the same bytes, then closes."""

    def __init__(self, answer: bytes):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, args=(answer,), daemon=True).start()

    def _serve(self, answer):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with client:
                client.recv(65536)
                for start in range(0, len(answer), 7):  # in small pieces, as a slow network would
                    client.sendall(answer[start : start + 7])


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{}", http.client.RemoteDisconnected),  # killed mid-answer
        (b"", http.client.RemoteDisconnected),  # killed before answering
        (b"SSH-2.0-OpenSSH\r\n\r\n", routing.BadAnswer),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", routing.BadAnswer),
    ],
)
def test_an_answer_cut_short_is_retryable_and_anything_else_is_a_bad_answer(answer, error):
    server = OneAnswerServer(answer)
    connection = routing.ReplicaConnection("127.0.0.1", server.port, timeout=10)
    with pytest.raises(error) as raised:
        connection.exchange("/score/x/", b"[]", {})
    assert isinstance(raised.value, routing.RETRYABLE)
    server.listener.close()


def test_an_answer_in_pieces_is_read_whole_and_a_closing_replica_says_so():
    server = OneAnswerServer(
        b'HTTP/1.1 503 Service Unavailable\r\nContent-Length: 12\r\nConnection: close\r\n\r\n{"a": "b c"}'
    )
    connection = routing.ReplicaConnection("127.0.0.1", server.port, timeout=10)
    assert connection.exchange("/score/x/", b"[]", {}) == (503, b'{"a": "b c"}', True)
    server.listener.close()
