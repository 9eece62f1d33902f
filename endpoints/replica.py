"""A serving replica: one deployment's model behind a small HTTP server, on an inference cluster's node.

The local agent starts it (`manage.py serve_replica --node N`) for a node the endpoint services
requested. It loads only its own deployment's model (warmed with a sample row before it says it is
ready), binds STUDIO_REPLICA_BIND on a free port, reports the address it answers on and then
heartbeats with its in-flight requests. It stops when its node is asked to leave (or on SIGTERM),
after answering what it is scoring.

It answers POST /score/<endpoint>/ exactly as the portal would (endpoints/admission.py, then
serving.score_request): the endpoint's key is always checked; the per-key limit only for requests
that do not carry the portal's forwarding proof (the portal counted those). Monitoring is recorded
here, in this process's buffer, flushed in batches under its own source (host:pid). GET /health
says whether it serves.
"""

import json
import logging
import math
import os
import signal
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.db import connection, connections

from compute.models import Node, NodeStatus
from compute.services import node_mark_stopped, replica_heartbeat, replica_mark_ready
from studio.api.errors import error_body
from studio.db import close_broken_connections

from . import serving
from .admission import FORWARDED_HEADER, admit, is_forwarded
from .models import Deployment

log = logging.getLogger("studio.replica")

MAX_HEADER_LINE = 65536  # bytes, and at most MAX_HEADERS header lines: http.client's limits
MAX_HEADERS = 100
_date_header = (0, "")  # (the second, the Date header's text for it)


class RequestHeaders(dict):
    """A request's headers by lower-cased name; `get` takes a name in any case, as the base
    class's message does (the first of a repeated header)."""

    def get(self, name: str, default=None):
        return super().get(name.lower(), default)


class ReplicaServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, *, endpoint_name: str, deployment_name: str, node_id: int, cores: int = 1):
        super().__init__(address, ReplicaHandler)
        self.endpoint_name = endpoint_name
        self.deployment_name = deployment_name
        self.node_id = node_id
        # Requests are read, parsed, validated and answered on their own threads, but their models
        # run at most `cores` at a time. Python runs under one lock (the GIL): sixteen threads in
        # models at once hand it to one another each time one lets go (a numpy call, a Cython
        # filter), and a forecasting model served 93 requests/s at 16 connections against 143 at
        # one. A waiting request is validated already: the model runs it as soon as it is free (a
        # 100-row request to a tree ensemble spent a tenth of its turn parsing and validating).
        self.scoring = threading.BoundedSemaphore(max(1, cores))
        self._in_flight = 0
        self._lock = threading.Lock()
        # Request-seconds scored since the last load reading: over the seconds between readings,
        # the average number of requests in flight (what the autoscaler aims at per replica).
        self._busy = 0.0
        self._changed_at = self._read_at = time.monotonic()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def _account(self, now: float) -> None:
        self._busy += self._in_flight * (now - self._changed_at)
        self._changed_at = now

    def begin(self) -> None:
        with self._lock:
            self._account(time.monotonic())
            self._in_flight += 1

    def end(self) -> None:
        with self._lock:
            self._account(time.monotonic())
            self._in_flight -= 1

    def load(self) -> int:
        """The average requests in flight since the last reading, rounded up (any work counts as 1)."""
        with self._lock:
            now = time.monotonic()
            self._account(now)
            average = self._busy / max(now - self._read_at, 1e-3)
            self._busy, self._read_at = 0.0, now
        return math.ceil(round(average, 3))


class ReplicaHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the portal reuses its connections
    # The answer is buffered and sent in one write when the handler returns (the base class flushes
    # it): a head and a body sent apart cost the portal a second wake-up for every request. Bodies
    # beyond the buffer still go in two writes, and without TCP_NODELAY the second would wait for
    # the client's delayed ACK (40 ms a request on Linux).
    wbufsize = -1
    disable_nagle_algorithm = True
    timeout = 300  # an idle keep-alive connection is closed after this long
    server: ReplicaServer

    def handle(self) -> None:
        try:
            super().handle()
        finally:
            connections.close_all()  # this connection's thread ends here; so do its database connections

    def parse_request(self) -> bool:
        """The request line and headers, read without the e-mail parser the base class uses (~0.1 ms
        of the replica's ~1.8 ms a request on bench/serving.py's machine of 2026-12-05). HTTP/1.0
        and 1.1 with a Content-Length body; a chunked body, a repeated Content-Length or a malformed
        line is refused (on failure the error is sent here, as the base class does)."""
        self.command, self.request_version, self.close_connection = None, "HTTP/1.0", True
        self.requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        words = self.requestline.split()
        if len(words) != 3 or words[2] not in ("HTTP/1.0", "HTTP/1.1"):
            self.send_error(HTTPStatus.BAD_REQUEST, "Send an HTTP/1.1 request line: POST /score/<endpoint>/ HTTP/1.1.")
            return False
        self.command, self.path, self.request_version = words
        headers = RequestHeaders()
        while (line := self.rfile.readline(MAX_HEADER_LINE + 1)) not in (b"\r\n", b"\n", b""):
            if len(line) > MAX_HEADER_LINE or len(headers) >= MAX_HEADERS:
                self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Too many or too long header lines.")
                return False
            name, colon, value = str(line, "iso-8859-1").partition(":")
            key = name.lower()
            if not colon or not name or name != name.strip():  # obsolete line folding, a space before the colon
                self.send_error(HTTPStatus.BAD_REQUEST, f"A malformed header line: {line[:80]!r}.")
                return False
            if key == "content-length" and key in headers:
                self.send_error(HTTPStatus.BAD_REQUEST, "Send one Content-Length header.")
                return False
            headers.setdefault(key, value.strip())
        if "transfer-encoding" in headers:
            self.send_error(HTTPStatus.NOT_IMPLEMENTED, "Send the body with a Content-Length (not chunked).")
            return False
        self.headers = headers
        connection = headers.get("connection", "").lower()
        keep_alive = self.request_version == "HTTP/1.1" or connection == "keep-alive"
        self.close_connection = connection == "close" or not keep_alive
        if headers.get("expect", "").lower() == "100-continue" and self.request_version == "HTTP/1.1":
            # curl asks before sending a body over 1 KB, and waits a second for the answer: sent now,
            # not left in the buffer the answer is written to (wbufsize)
            sent = self.handle_expect_100()
            self.wfile.flush()
            return sent
        return True

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The Date header, formatted once a second: the base class formats it for every answer
        (~3 % of a replica's time on a one-row request)."""
        if timestamp is not None:
            return super().date_time_string(timestamp)
        global _date_header
        second, text = _date_header
        now = int(time.time())
        if now != second:
            text = super().date_time_string(now)
            _date_header = (now, text)  # one tuple: a thread reads the old second or the new, whole
        return text

    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's name
        log.debug("%s " + format, self.address_string(), *args)

    def _answer(self, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if urlsplit(self.path).path != "/health":
            self._answer(404, error_body("not_found", "This replica answers POST /score/<endpoint>/ and GET /health."))
            return
        server = self.server
        self._answer(
            200,
            {
                "endpoint": server.endpoint_name,
                "deployment": server.deployment_name,
                "node": server.node_id,
                "in_flight": server.in_flight,
            },
        )

    def do_POST(self) -> None:
        started = time.perf_counter()
        url = urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            self._answer(400, error_body("bad_request", "Send a Content-Length header with the body's size."))
            return
        if len(parts) != 2 or parts[0] != "score":
            self.close_connection = True
            self._answer(404, error_body("not_found", "This replica answers POST /score/<endpoint>/ and GET /health."))
            return
        forwarded = is_forwarded(self.headers.get(FORWARDED_HEADER))
        runtime, refusal = admit(
            parts[1],
            method="POST",
            query_keys=parse_qs(url.query) if url.query else {},  # a scoring URL has no query
            authorization=self.headers.get("Authorization", ""),
            content_length=length,
            started=started,
            count_against_limit=not forwarded,
        )
        if refusal is not None:
            if refusal.status == 413 or length > settings.STUDIO_SCORING_MAX_BODY_BYTES:
                self.close_connection = True  # the body is not read: the connection cannot be reused
            else:
                self.rfile.read(length)  # read and dropped, so the keep-alive connection stays usable
            self._answer(refusal.status, refusal.body, refusal.headers)
            return
        body = self.rfile.read(length)
        if runtime.name != self.server.endpoint_name:
            message = f"This replica serves {self.server.endpoint_name}, not {runtime.name}."
            self._answer(404, error_body("not_served_here", message))
            return
        pinned = self.headers.get("X-Studio-Deployment") or self.server.deployment_name
        if pinned != self.server.deployment_name:
            message = f"This replica serves the deployment {self.server.deployment_name}, not {pinned}."
            self._answer(404, error_body("not_served_here", message, {"X-Studio-Deployment": [message]}))
            return
        self.server.begin()
        try:
            outcome = serving.score_request(
                runtime,
                body=body,
                started=started,
                pinned=pinned,
                mirrored=forwarded and self.headers.get("X-Studio-Mirrored") == "1",
                model_slot=self.server.scoring,
            )
            status, answer = outcome.status, outcome.body
        except Exception:  # noqa: BLE001 - recorded as a 500 by score_request; the replica keeps serving
            log.exception("scoring failed on %s", self.server.deployment_name)
            status, answer = 500, error_body("server_error", "The model failed on this request.")
        finally:
            self.server.end()
        self._answer(status, answer)


def wait_for_node() -> int | None:
    """A standby replica: import what loading and scoring a model takes, then wait for the agent to
    name the node to serve (and the log to write to). None when the agent closed the pipe."""
    serving.preload()
    connection.close()  # no connection held while waiting (it may be hours)
    log.info("standby replica ready (pid %s)", os.getpid())
    line = sys.stdin.readline()
    if not line.strip():
        return None
    node_id, _, log_path = line.strip().partition("\t")
    if log_path:
        with open(log_path, "ab") as out:  # from here on this process is that node's replica
            os.dup2(out.fileno(), sys.stdout.fileno())
            os.dup2(out.fileno(), sys.stderr.fileno())
    return int(node_id)


def _advertised_host(bind: str) -> str:
    if settings.STUDIO_REPLICA_ADVERTISE:
        return settings.STUDIO_REPLICA_ADVERTISE
    return socket.getfqdn() if bind in ("0.0.0.0", "::", "") else bind  # noqa: S104 - a choice of the operator


def serve(*, node_id: int, bind: str, port: int = 0) -> int:
    """Run the replica of this node until its node leaves or SIGTERM: the exit code."""
    node = Node.objects.select_related("target").filter(pk=node_id).first()
    if node is None or node.deployment_id is None:
        log.error("node-%s is not a serving replica", node_id)
        return 2
    deployment = Deployment.objects.select_related("endpoint", "model_version").filter(pk=node.deployment_id).first()
    if deployment is None:
        log.error("node-%s: deployment %s is gone", node_id, node.deployment_id)
        return 2
    backend, error = serving.warm_up(deployment.model_version)  # only this deployment's model
    if error:
        log.error("node-%s could not load %s: %s", node_id, deployment.model_version, error)
        # Recorded here, where the cause is known (the agent would only see the exit code); the
        # agent then waits ever longer before the deployment's next replica (replica_retry_in).
        node_mark_stopped(node_id=node_id, reason=f"could not load {deployment.model_version}: {error}", lost=True)
        return 3
    server = ReplicaServer(
        (bind, port),
        endpoint_name=deployment.endpoint.name,
        deployment_name=deployment.name,
        node_id=node_id,
        cores=min(node.target.node_size.cores, os.cpu_count() or 1),
    )
    address = f"{_advertised_host(bind)}:{server.server_address[1]}"
    stop = threading.Event()

    def _on_term(*_):
        stop.set()

    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, _on_term)
    # The agent claimed the node (STARTING) before starting this process; one asked to leave since is not served.
    deadline = time.monotonic() + 30
    hostname = settings.STUDIO_HOSTNAME
    while not replica_mark_ready(node_id=node_id, address=address, hostname=hostname, pid=os.getpid()):
        status = Node.objects.filter(pk=node_id).values_list("status", flat=True).first()
        if status != NodeStatus.REQUESTED or time.monotonic() > deadline or stop.is_set():
            log.error("node-%s is %s: not serving", node_id, status)
            server.server_close()
            return 0
        time.sleep(0.1)
    threading.Thread(target=server.serve_forever, name="replica-http", daemon=True).start()
    log.info("node-%s serves %s (%s) on %s", node_id, deployment, backend, address)
    while not stop.wait(settings.STUDIO_HEARTBEAT_SECONDS):
        try:
            close_broken_connections()
            status = replica_heartbeat(node_id=node_id, in_flight=server.load())
        except Exception:  # noqa: BLE001 - a busy database: try again at the next beat (the reaper decides)
            log.exception("node-%s could not heartbeat", node_id)
            continue
        if status not in (NodeStatus.IDLE, NodeStatus.BUSY):
            log.info("node-%s is %s: stopping", node_id, status)
            break
    server.shutdown()  # no new request; those being answered finish (their threads are not joined)
    deadline = time.monotonic() + 10
    while server.in_flight and time.monotonic() < deadline:
        time.sleep(0.05)
    server.server_close()
    serving.monitor.flush()
    return 0
