"""The web server as `manage.py studio` runs it (its gunicorn command line, portal.wsgi): scoring
requests are answered the short way (endpoints/scoring_route.py), with the security headers and
none of the pages' middleware, and the access log leaves out the answered ones (studio/weblog.py)
while it keeps refused scoring requests and pages."""

import http.client
import io
import json
import logging
import os
import signal
import subprocess
import time

import pytest
from django.test import RequestFactory

from endpoints import scoring_views, services
from portal.management.commands.studio import web_server_argv
from portal.wsgi import application
from tests.conftest import REPO, _database_url, wait_for
from tests.endpoints.conftest import register
from tests.endpoints.test_throttle_exact import free_port

ROW = {"tenure": 3, "charges": 80.5, "plan": "basic", "region": "north"}


@pytest.fixture
def web_server(studio_data_dir, transactional_db, tmp_path):
    """(address, access log path): the studio's web server on the test database."""
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "studio.settings",
        "DATABASE_URL": _database_url(),
        "STUDIO_DATA_DIR": str(studio_data_dir),
        "OMP_NUM_THREADS": "1",
    }
    log = tmp_path / "web.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            web_server_argv(f"127.0.0.1:{port}", workers=1), cwd=REPO, env=env, stdout=out, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                request(f"127.0.0.1:{port}", "GET", "/health/")
                break
            except OSError:
                assert time.monotonic() < deadline, "the web server did not answer"
                time.sleep(0.2)
        yield f"127.0.0.1:{port}", log
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def request(address, method, path, body=None, headers=None):
    host, port = address.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    return response.status, dict(response.getheaders()), response.read()


def test_scoring_is_answered_the_short_way_and_left_out_of_the_access_log(web_server, owner, workspace, inference):
    address, log = web_server
    created = services.endpoint_create(actor=owner, workspace=workspace, name="churn-api")
    services.deployment_create(
        actor=owner, endpoint=created.endpoint, name="blue", model_version=register(workspace, owner), target=inference
    )
    name = created.endpoint.name
    key = {"Authorization": f"Bearer {created.primary}", "Content-Type": "application/json"}

    status, headers, body = request(address, "POST", f"/score/{name}/", json.dumps([ROW, ROW]), key)
    assert status == 200, body
    assert len(json.loads(body)["predictions"]) == 2
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Content-Type-Options"] == "nosniff"  # SecurityMiddleware, around the short way
    assert not {"Content-Security-Policy", "X-Frame-Options", "Set-Cookie"} & set(headers)

    status, headers, body = request(address, "POST", f"/score/{name}/", b"[{", key)  # cut short
    assert status == 400 and json.loads(body)["error"]["code"] and headers["X-Content-Type-Options"] == "nosniff"
    status, _, body = request(address, "POST", f"/score/{name}/", json.dumps([ROW]), {"Authorization": "Bearer no"})
    assert status == 401 and json.loads(body)["error"]["code"]
    # Any other path: Django's handler and the whole chain (HTML pages are not rendered here: the
    # web server runs without collected static files, so the pages are left to the test client).
    status, headers, _ = request(address, "GET", "/health/")
    assert status == 200 and "X-Frame-Options" in headers

    # The access log is written after each answer, by the thread that answered: two answers in a
    # row may be logged in either order.
    def scoring_lines():
        lines = log.read_text().splitlines()
        scoring = [line for line in lines if f'"POST /score/{name}/ ' in line]
        health = [line for line in lines if '"GET /health/ ' in line]  # the fixture's and the test's
        return (scoring, lines) if len(scoring) >= 2 and len(health) >= 2 else None

    scoring, lines = wait_for(scoring_lines, message="the access log's lines")
    assert sorted(line.split('" ')[1].split()[0] for line in scoring) == ["400", "401"], lines


def test_an_error_in_the_short_way_is_answered_as_djangos_handler_answers_it(
    monkeypatch, caplog, transactional_db, owner, workspace, inference
):
    """The WSGI application itself, called as gunicorn calls it: a view that raises is Django's
    logged 500 (django.request), and the next request is answered as usual."""
    created = services.endpoint_create(actor=owner, workspace=workspace, name="churn-api")
    services.deployment_create(
        actor=owner, endpoint=created.endpoint, name="blue", model_version=register(workspace, owner), target=inference
    )
    body = json.dumps([ROW]).encode()
    headers = {"content_type": "application/json", "HTTP_AUTHORIZATION": f"Bearer {created.primary}"}
    environ = RequestFactory().post("/score/churn-api/", body, **headers).environ

    def call():
        answered = {}

        def start_response(status, response_headers):
            answered["status"], answered["headers"] = status, dict(response_headers)

        content = b"".join(application({**environ, "wsgi.input": io.BytesIO(body)}, start_response))
        return answered["status"], answered["headers"], content

    def broken(*args, **kwargs):
        raise RuntimeError("the scoring path broke")

    monkeypatch.setattr(scoring_views, "_dispatch", broken)
    with caplog.at_level(logging.ERROR, logger="django.request"):
        status, response_headers, _ = call()
    assert status.startswith("500 ") and response_headers["X-Content-Type-Options"] == "nosniff"
    assert any(r.exc_info and "the scoring path broke" in str(r.exc_info[1]) for r in caplog.records)

    monkeypatch.undo()
    status, _, content = call()
    assert status == "200 OK" and json.loads(content)["deployment"] == "blue"
