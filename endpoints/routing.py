"""The portal's side of the serving data plane: forward a scoring request to a replica.

Replicas are nodes of an inference cluster (compute.Node with a deployment id) that report their
address and heartbeat. Each portal process keeps:

* a directory of healthy replicas per deployment, read from the database at most every
  REPLICAS_TTL_SECONDS (one query for every deployment, never one per request);
* keep-alive HTTP connections per replica, reused request after request (`ReplicaConnection`);
* its own count of requests outstanding per replica: a request goes to the replica with the
  fewest (ties broken at random) — least outstanding requests.

A request that cannot be sent or whose connection is reset before an answer (a replica killed,
a keep-alive connection the replica closed) is sent once more, to another replica when there is
one; scoring is idempotent, so this costs a killed replica at most the requests it had in flight
(each retried once). A replica that refused a connection is left out for a few seconds, until the
directory no longer lists it.
"""

import http.client
import json
import random
import socket
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from compute.models import Node, NodeStatus
from studio.api.errors import error_body

from .admission import FORWARDED_HEADER, forwarding_proof
from .services import deployment_wake

REPLICAS_TTL_SECONDS = 1.0  # as the endpoint configuration: a new replica takes traffic within it
WAKE_EVERY_SECONDS = 1.0  # how often a process asks whether a replica is coming (and wakes one from zero)
WAITING_POLL_SECONDS = 0.1  # how often a request waiting for a replica looks for one
DOWN_SECONDS = 5.0  # a replica that refused a connection is not tried again for this long
MAX_ANSWER_HEAD_BYTES = 64 * 1024  # a replica's status line and headers are a few hundred bytes
# refused, reset, broken pipe, closed before or while answering
RETRYABLE = (ConnectionError, http.client.HTTPException)


class BadAnswer(http.client.HTTPException):
    """What came back is not an HTTP/1.1 answer with a Content-Length (not a replica's answer)."""


class ReplicaConnection:
    """A keep-alive HTTP/1.1 connection to a replica, for the one exchange the portal has with it:
    POST a body, read a status and a body of Content-Length bytes (a replica always sends one).

    http.client spent ~0.5 ms of CPU a request here, most of it parsing the answer's headers with
    the e-mail parser, against ~0.14 ms for this (bench/serving.py's machine of 2026-12-05, the
    portal's whole share being ~2.1 ms): its generality (chunked bodies, 1xx answers, header
    folding) is for servers that are not ours. Errors are the socket's (refused, reset, timed
    out) or http.client's kinds, so the retry rules are the same: a connection closed before the
    whole answer is http.client.RemoteDisconnected, anything malformed is BadAnswer.
    """

    def __init__(self, host: str, port: int, *, timeout: float):
        self.host, self.port, self.timeout = host, port, timeout
        self.sock: socket.socket | None = None

    def exchange(self, path: str, body: bytes, headers: dict) -> tuple[int, bytes, bool]:
        """(status, body, whether the replica closes the connection after it)."""
        if self.sock is None:
            self.sock = socket.create_connection((self.host.strip("[]"), self.port), timeout=self.timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        lines = [f"POST {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if any("\r" in line or "\n" in line for line in lines):  # as http.client refuses: no header smuggled in
            raise ValueError("a header line holds a line break")
        self.sock.sendall("\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body)
        received = bytearray()
        while (end := received.find(b"\r\n\r\n")) < 0:
            if len(received) > MAX_ANSWER_HEAD_BYTES:
                raise BadAnswer(f"no end of headers in the first {MAX_ANSWER_HEAD_BYTES:,} bytes")
            received += self._recv()
        head, data = bytes(received[:end]).split(b"\r\n"), received[end + 4 :]
        version, _, rest = head[0].partition(b" ")
        status = rest[:3]
        if version not in (b"HTTP/1.1", b"HTTP/1.0") or not status.isdigit():
            raise BadAnswer(f"not an HTTP answer: {head[0][:80]!r}")
        fields = {}
        for line in head[1:]:
            name, _, value = line.partition(b":")
            fields[name.strip().lower()] = value.strip()
        declared = fields.get(b"content-length", b"")
        if not declared.isdigit():
            raise BadAnswer("the answer has no Content-Length")
        length = int(declared)
        while len(data) < length:
            data += self._recv()
        # more than the answer (nothing a replica sends) leaves the connection in an unknown state
        closes = version == b"HTTP/1.0" or fields.get(b"connection", b"").lower() == b"close" or len(data) > length
        return int(status), bytes(data[:length]), closes

    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise http.client.RemoteDisconnected("the replica closed the connection before its whole answer")
        return chunk

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    replica: str
    retried: bool


class ReplicaDirectory:
    """Healthy replica addresses by deployment id: live, ready, heartbeating within the timeout."""

    def __init__(self, ttl: float = REPLICAS_TTL_SECONDS):
        self.ttl = ttl
        self._by_deployment: dict[int, tuple[str, ...]] = {}
        self._read_at = float("-inf")
        self._lock = threading.Lock()
        self.coming: dict[int, tuple[float, bool]] = {}  # deployment id -> (checked when, a replica on its way)

    def addresses(self, deployment_id: int, *, max_age: float | None = None) -> tuple[str, ...]:
        max_age = self.ttl if max_age is None else max_age
        if time.monotonic() - self._read_at >= max_age:
            with self._lock:
                if time.monotonic() - self._read_at >= max_age:
                    self._by_deployment = self._read()
                    self._read_at = time.monotonic()
        return self._by_deployment.get(deployment_id, ())

    def _read(self) -> dict[int, tuple[str, ...]]:
        fresh = timezone.now() - timedelta(seconds=settings.STUDIO_HEARTBEAT_TIMEOUT)
        rows = (
            Node.objects.filter(deployment_id__isnull=False, status__in=[NodeStatus.IDLE, NodeStatus.BUSY])
            .filter(Q(last_heartbeat_at__gte=fresh))
            .exclude(address="")
            .values_list("deployment_id", "address")
        )
        found: dict[int, list[str]] = {}
        for deployment_id, address in rows:
            found.setdefault(deployment_id, []).append(address)
        return {k: tuple(sorted(v)) for k, v in found.items()}

    def clear(self) -> None:
        with self._lock:
            self._by_deployment, self._read_at, self.coming = {}, float("-inf"), {}


class ReplicaPool:
    """Keep-alive connections and outstanding-request counts per replica address."""

    def __init__(self):
        self._lock = threading.Lock()
        self._idle: dict[str, list[ReplicaConnection]] = {}
        self.outstanding: dict[str, int] = {}
        self._down_until: dict[str, float] = {}

    def choose(self, addresses: tuple[str, ...], *, avoid: str | None = None) -> str | None:
        now = time.monotonic()
        with self._lock:
            usable = [a for a in addresses if self._down_until.get(a, 0) <= now and a != avoid]
            if not usable and avoid in addresses and self._down_until.get(avoid, 0) <= now:
                usable = [avoid]  # the only replica: once more on a fresh connection
            if not usable:
                return None
            fewest = min(self.outstanding.get(a, 0) for a in usable)
            chosen = random.choice([a for a in usable if self.outstanding.get(a, 0) == fewest])
            self.outstanding[chosen] = self.outstanding.get(chosen, 0) + 1
            return chosen

    def done(self, address: str) -> None:
        with self._lock:
            self.outstanding[address] = max(0, self.outstanding.get(address, 0) - 1)

    def mark_down(self, address: str) -> None:
        with self._lock:
            self._down_until[address] = time.monotonic() + DOWN_SECONDS
            for connection in self._idle.pop(address, []):
                connection.close()

    def connection(self, address: str, *, fresh: bool) -> ReplicaConnection:
        """An idle keep-alive connection to `address`, or a new one when `fresh` or none is idle."""
        if not fresh:
            with self._lock:
                idle = self._idle.get(address)
                if idle:
                    return idle.pop()
        host, port = address.rsplit(":", 1)
        return ReplicaConnection(host, int(port), timeout=settings.STUDIO_REPLICA_TIMEOUT_SECONDS)

    def give_back(self, address: str, connection: ReplicaConnection) -> None:
        with self._lock:
            self._idle.setdefault(address, []).append(connection)

    def close_all(self) -> None:
        with self._lock:
            for connections in self._idle.values():
                for connection in connections:
                    connection.close()
            self._idle.clear()
            self.outstanding.clear()
            self._down_until.clear()


directory = ReplicaDirectory()
pool = ReplicaPool()


def replica_coming(deployment_id: int) -> bool:
    """No replica of the deployment is ready: wake it if it scaled to zero, and say whether a
    replica is on its way (woken, or wanted and starting). Asked of the database at most once a
    second per deployment and process, never per request (the in-process fallback stays as fast)."""
    now = time.monotonic()
    checked_at, coming = directory.coming.get(deployment_id, (float("-inf"), False))
    if now - checked_at < WAKE_EVERY_SECONDS:
        return coming
    coming = (
        deployment_wake(deployment_id=deployment_id)
        or Node.objects.filter(deployment_id=deployment_id, status__in=NodeStatus.live()).exists()
    )
    directory.coming[deployment_id] = (now, coming)
    return coming


def wait_for_replica(deployment_id: int, *, timeout: float) -> bool:
    """Hold a request until a replica of the deployment is ready (a cold start), at most `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if directory.addresses(deployment_id, max_age=WAITING_POLL_SECONDS):
            return True
        time.sleep(WAITING_POLL_SECONDS)
    return False


def forward(
    *, endpoint_name: str, deployment_id: int, deployment_name: str, body: bytes, authorization: str, mirrored=False
) -> Answer | None:
    """Score on a replica of the deployment: its answer, or None when it has no healthy replica
    (none started yet, or every one failed)."""
    addresses = directory.addresses(deployment_id)
    headers = {
        "Content-Type": "application/json",
        "Authorization": authorization,
        "X-Studio-Deployment": deployment_name,
        FORWARDED_HEADER: forwarding_proof(),
    }
    if mirrored:
        headers["X-Studio-Mirrored"] = "1"
    failed = None
    for attempt in range(2):
        address = pool.choose(addresses, avoid=failed)
        if address is None:
            return None
        try:
            status, answer = _send(address, f"/score/{endpoint_name}/", body, headers, fresh=failed is not None)
        except RETRYABLE as exc:
            if isinstance(exc, ConnectionRefusedError):
                pool.mark_down(address)
            failed = address
            continue
        except OSError as exc:  # a timeout: the replica may still be scoring it, so it is not sent again
            message = f"The replica {address} did not answer in time ({type(exc).__name__})."
            return Answer(504, json.dumps(error_body("replica_timeout", message)).encode(), address, attempt > 0)
        finally:
            pool.done(address)
        return Answer(status, answer, address, retried=attempt > 0)
    return None


def _send(address: str, path: str, body: bytes, headers: dict, *, fresh: bool) -> tuple[int, bytes]:
    connection = pool.connection(address, fresh=fresh)
    try:
        status, data, closes = connection.exchange(path, body, headers)
    except (OSError, http.client.HTTPException):  # reset, refused, timed out: this connection is done for
        connection.close()
        raise
    if closes:
        connection.close()
    else:
        pool.give_back(address, connection)
    return status, data
