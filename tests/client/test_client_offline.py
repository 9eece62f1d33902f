"""The client without a studio: job and environment files name the line and field of a mistake,
retries honour Retry-After (against a real local HTTP server that answers 429 then 200), errors
carry the studio's code and fields, the config file is 0600, and nothing imports Django."""

import http.server
import json
import os
import stat
import subprocess
import sys
import threading
import time

import pytest
from studio_client import Studio, StudioError
from studio_client.cli import Progress
from studio_client.http import MAX_RETRY_WAIT, retry_after_seconds
from studio_client.specs import SpecError, read_env_file, read_job_file

GOOD_JOB = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
type: command
display_name: "Größe → label (v1)"
experiment_name: cli tests
code: ./src
command: python train.py ${{inputs.train}} ${{inputs.c}} ${{outputs.model}}
environment: azureml:sklearn-cli@latest
compute: azureml:cpu
inputs:
  train:
    type: uri_file
    path: azureml:messy data (é):1
  c: 0.5
  solver: lbfgs
  tag: {type: string, value: "a:1"}
outputs:
  model:
    type: custom_model
  reports: {}
environment_variables:
  MODE: fast
  DEBUG: true
"""


def write(tmp_path, text, name="job.yml"):
    (tmp_path / "src").mkdir(exist_ok=True)
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_a_job_file_in_azure_mls_shape_is_read(tmp_path):
    job = read_job_file(write(tmp_path, GOOD_JOB))
    assert job.command.startswith("python train.py ${{inputs.train}}")
    assert job.environment == ("sklearn-cli", None)
    assert job.compute == "cpu"
    assert job.inputs == {
        "train": {"data": ("messy data (é)", 1)},
        "c": {"literal": {"value": 0.5}},
        "solver": {"literal": {"value": "lbfgs"}},
        "tag": {"literal": {"type": "string", "value": "a:1"}},
    }
    assert job.outputs == {"model": "model", "reports": "folder"}
    assert job.env == {"MODE": "fast", "DEBUG": "true"}
    assert job.display_name == "Größe → label (v1)" and job.experiment == "cli tests"
    assert job.code == str(tmp_path / "src")


@pytest.mark.parametrize(
    ("change", "line", "field", "words"),
    [
        (("command: python", "comand: python"), 6, "comand", "Did you mean 'command'"),
        (("type: command\n", "type: sweep\n"), 2, "type", "not served"),
        (("    type: uri_file", "    type: table"), 11, "inputs.train.type", "the type is one of"),
        (
            ("    path: azureml:messy data (é):1", "    path: azureml:messy data"),
            12,
            "inputs.train.path",
            "name:version",
        ),
        (
            ("environment: azureml:sklearn-cli@latest", "environment: sklearn-cli:newest"),
            7,
            "environment",
            "name:version",
        ),
        (("code: ./src", "code: ./missing folder"), 5, "code", "not a folder"),
        (("    type: custom_model", "    type: table"), 18, "outputs.model.type", "uri_folder"),
        (("  MODE: fast", "  MODE: [1, 2]"), 21, "environment_variables.MODE", "text or a number"),
    ],
)
def test_a_mistake_in_a_job_file_names_its_line_and_field(tmp_path, change, line, field, words):
    assert change[0] in GOOD_JOB
    with pytest.raises(SpecError) as caught:
        read_job_file(write(tmp_path, GOOD_JOB.replace(change[0], change[1])))
    assert (caught.value.line, caught.value.field) == (line, field), str(caught.value)
    assert words in caught.value.message
    assert str(caught.value).startswith(f"job.yml:{line}: {field}: ")


def test_a_job_file_without_a_command_or_not_yaml_is_refused_with_a_line(tmp_path):
    with pytest.raises(SpecError, match=r"job.yml:\d+: command: is required"):
        read_job_file(write(tmp_path, GOOD_JOB.replace("command: python", "# command: python")))
    with pytest.raises(SpecError) as caught:
        read_job_file(write(tmp_path, "type: command\ncommand: [unclosed\nenvironment: x@latest\n"))
    assert caught.value.line == 3 and "not valid YAML" in caught.value.message
    with pytest.raises(SpecError, match="mapping"):
        read_job_file(write(tmp_path, "- just\n- a list\n"))


def test_an_environment_file_takes_a_conda_files_pip_list_and_names_mistakes(tmp_path):
    (tmp_path / "conda env.yml").write_text(
        "name: x\ndependencies:\n  - python=3.12\n  - pip:\n    - scikit-learn\n    - 'pandas>=2'\n"
    )
    path = write(
        tmp_path,
        "name: sklearn-cli\nimage: studio/studio-sklearn:latest\nconda_file: conda env.yml\nrequirements:\n  - skops\n",
        "env.yml",
    )
    env = read_env_file(path)
    assert (env.name, env.base) == ("sklearn-cli", "studio-sklearn")
    assert env.requirements.splitlines() == ["skops", "scikit-learn", "pandas>=2"]
    with pytest.raises(SpecError) as caught:
        read_env_file(write(tmp_path, "name: e\nbase: python\nrequirments: [x]\n", "env.yml"))
    assert (caught.value.line, caught.value.field) == (3, "requirments")
    assert "requirements" in caught.value.message
    with pytest.raises(SpecError) as caught:
        read_env_file(write(tmp_path, "name: e\nbase: python\nrequirements: {a: 1}\n", "env.yml"))
    assert (caught.value.line, caught.value.field) == (3, "requirements")


class Script(http.server.BaseHTTPRequestHandler):
    """A real HTTP server answering from a list of (status, headers, body); records the requests."""

    answers: list = []
    seen: list = []

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        type(self).seen.append((self.command, self.path, dict(self.headers), body, time.monotonic()))
        status, headers, payload = type(self).answers.pop(0) if type(self).answers else (200, {}, {})
        data = json.dumps(payload).encode()
        self.send_response(status)
        for k, v in {"Content-Type": "application/json", "Content-Length": str(len(data)), **headers}.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    Script.answers, Script.seen = [], []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Script)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_429_and_503_are_retried_after_the_wait_retry_after_asks(server):
    Script.answers = [
        (429, {"Retry-After": "1"}, {"error": {"code": "throttled", "message": "Slow down.", "fields": {}}}),
        (503, {"Retry-After": "0.5"}, {}),
        (200, {}, {"id": 7, "username": "zoë", "email": "", "is_staff": False}),
    ]
    started = time.monotonic()
    me = Studio(server, "tok").me()
    assert me.username == "zoë" and me.id == 7
    times = [seen[-1] for seen in Script.seen]
    assert len(times) == 3
    assert times[1] - times[0] >= 0.95 and times[2] - times[1] >= 0.45
    assert time.monotonic() - started < 10
    assert Script.seen[0][2]["Authorization"] == "Bearer tok"


def test_retries_are_bounded_and_the_last_refusal_is_raised(server):
    Script.answers = [(429, {"Retry-After": "0"}, {"error": {"code": "throttled", "message": "Busy."}})] * 10
    with pytest.raises(StudioError) as caught:
        Studio(server, "tok").me()
    assert caught.value.status == 429 and caught.value.code == "throttled" and caught.value.message == "Busy."
    assert len(Script.seen) == 5  # one try and four retries, never forever


def test_a_long_retry_after_is_cut_and_a_date_is_understood():
    assert retry_after_seconds("86400", 1) == MAX_RETRY_WAIT
    assert retry_after_seconds("nonsense", 2) == 2
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", 2) == 0  # a date in the past
    assert retry_after_seconds(None, 3) == 3
    assert retry_after_seconds("nan", 1.5) == 1.5


def test_a_refusal_carries_the_studios_code_and_fields(server):
    Script.answers = [
        (200, {}, {"id": 3, "name": "Team", "role": "owner"}),
        (400, {}, {"error": {"code": "invalid", "message": "Check the fields.", "fields": {"name": ["Too long."]}}}),
    ]
    ws = Studio(server, "tok").workspace(3)
    with pytest.raises(StudioError) as caught:
        ws.endpoints.create("x" * 300)
    assert (caught.value.status, caught.value.code, caught.value.fields) == (400, "invalid", {"name": ["Too long."]})
    assert "name: Too long." in str(caught.value)
    Script.answers = [(502, {}, {})]
    with pytest.raises(StudioError) as caught:
        Studio(server, "tok").me()
    assert caught.value.status == 502


def test_lists_are_iterators_that_follow_the_pages(server):
    Script.answers = [
        (200, {}, {"count": 3, "next": f"{server}/api/v1/workspaces/?page=2", "results": [{"id": 1, "name": "a b"}]}),
        (200, {}, {"count": 3, "next": None, "results": [{"id": 2, "name": "ç"}, {"id": 3, "name": "Team"}]}),
    ]
    names = Studio(server, "tok").workspaces()
    assert next(names).name == "a b" and len(Script.seen) == 1
    assert [w.name for w in names] == ["ç", "Team"]


def test_a_next_link_to_another_host_is_followed_on_the_studios_own(server):
    """The token goes only to the studio the client was given, whatever host a page names."""
    Script.answers = [
        (200, {}, {"count": 2, "next": "http://elsewhere.invalid:9/api/v1/workspaces/?page=2", "results": [{"id": 1}]}),
        (200, {}, {"count": 2, "next": None, "results": [{"id": 2}]}),
    ]
    assert [w.id for w in Studio(server, "tok").workspaces()] == [1, 2]
    assert Script.seen[1][1] == "/api/v1/workspaces/?page=2" and Script.seen[1][2]["Authorization"] == "Bearer tok"


def test_a_folder_is_packed_without_following_links(tmp_path):
    import zipfile

    from studio_client.api import _zip_folder

    folder = tmp_path / "my model"
    (folder / "sub dir").mkdir(parents=True)
    (folder / "MLmodel").write_text("flavors: {}\n", encoding="utf-8")
    (folder / "sub dir" / "model.onnx").write_bytes(b"onnx")
    secret = tmp_path / "id_rsa"
    secret.write_text("private", encoding="utf-8")
    (folder / "creds").symlink_to(secret)
    (folder / "linked dir").symlink_to(tmp_path)
    packed = _zip_folder(str(folder))
    try:
        assert os.stat(packed).st_mode & 0o777 == 0o600
        assert sorted(zipfile.ZipFile(packed).namelist()) == ["MLmodel", "sub dir/model.onnx"]
    finally:
        os.unlink(packed)


def test_an_upload_is_streamed_with_a_content_length_and_reports_progress(server, tmp_path):
    path = tmp_path / "weird name ü.csv"
    path.write_bytes(b"a,b\n" + b"1,2\n" * 300_000)
    Script.answers = [(200, {}, {"id": 1, "name": "Team"}), (202, {}, {"id": 9, "status": "queued"})]
    seen = []
    ingest = (
        Studio(server, "tok")
        .workspace(1)
        .data.upload(str(path), "my data", wait=False, progress=lambda s, t: seen.append((s, t)))
    )
    assert ingest.id == 9 and ingest.status == "queued"
    method, route, headers, body, _ = Script.seen[-1]
    assert method == "POST" and route == "/api/v1/workspaces/1/data-assets/"
    assert headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert int(headers["Content-Length"]) == len(body) > path.stat().st_size
    assert b'name="name"\r\n\r\nmy data\r\n' in body and path.read_bytes() in body
    assert len(seen) > 1 and seen[-1][0] == seen[-1][1] == len(body)


def cli(*args, env=None, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "studio_client", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=60
    )


def test_the_cli_imports_no_django_and_logs_in_with_a_0600_file(server, tmp_path):
    Script.answers = [(200, {}, {"id": 1, "username": "zoë", "email": "", "is_staff": False})]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "STUDIO_"))}
    env["STUDIO_CONFIG"] = str(tmp_path / "cfg dir" / "config.json")
    done = cli("login", server, "--token", "sekret", "--json", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["user"] == "zoë"
    config = tmp_path / "cfg dir" / "config.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert json.loads(config.read_text()) == {"url": server, "token": "sekret"}
    check = "import sys, studio_client.cli; print(sorted(m for m in sys.modules if m.split('.')[0] == 'django'))"
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.stdout.strip() == "[]", done.stderr


def test_the_cli_exits_non_zero_with_the_studios_message_and_json_parses(server, tmp_path):
    Script.answers = [(401, {}, {"error": {"code": "not_authenticated", "message": "The API token is invalid."}})]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "STUDIO_"))}
    env["STUDIO_CONFIG"] = str(tmp_path / "config.json")
    done = cli("login", server, "--token", "wrong", "--json", env=env, cwd=tmp_path)
    assert done.returncode == 1
    assert "The API token is invalid." in done.stderr
    assert json.loads(done.stdout)["error"]["code"] == "not_authenticated"
    assert not (tmp_path / "config.json").exists()
    done = cli("job", "list", env=env, cwd=tmp_path)
    assert done.returncode == 2 and "studio login" in done.stderr
    job = write(tmp_path, GOOD_JOB.replace("outputs:", "outptus:"))
    env["STUDIO_URL"], env["STUDIO_TOKEN"], env["STUDIO_WORKSPACE"] = server, "t", "1"
    done = cli("job", "create", "-f", job, "--json", env=env, cwd=tmp_path)
    assert done.returncode == 2
    assert "job.yml:16: outptus: unknown field. Did you mean 'outputs'?" in done.stderr
    assert json.loads(done.stdout)["error"] | {"message": ""} == {
        "code": "invalid_file",
        "message": "",
        "file": "job.yml",
        "line": 16,
        "field": "outptus",
    }


def test_the_studios_refusal_of_a_job_file_points_at_the_fields_line(tmp_path):
    from studio_client.api import located_error
    from studio_client.specs import load_located

    doc = load_located(write(tmp_path, GOOD_JOB))
    refusal = StudioError("Some fields are invalid.", status=400, code="invalid", fields={"inputs": ["c: not finite"]})
    error = located_error(doc, refusal)
    assert (error.line, error.field, error.message) == (13, "inputs.c", "not finite")
    refusal = StudioError("Bad.", status=400, code="invalid", fields={"env": ["STUDIO_ names are the studio's"]})
    error = located_error(doc, refusal, {"env": "environment_variables"})
    assert (error.line, error.field) == (20, "environment_variables")
    conflict = StudioError("Taken.", status=409, code="conflict", fields={"inputs": ["x"]})
    assert located_error(doc, conflict) is conflict


def test_a_download_of_unknown_size_shows_bytes_so_far_then_its_real_size(capsys):
    bar = Progress("Downloading")
    bar(6, 0)  # a CSV made as it is sent: no Content-Length
    assert capsys.readouterr().err == "\rDownloading 6 B"
    bar(4096, 0)  # within 0.1 s: not redrawn
    bar(23_000, 23_000)  # the end, with the size now known
    err = capsys.readouterr().err
    assert err.endswith("100.0% 22.5 KB/22.5 KB\n"), repr(err)
    bar(30_000, 30_000)  # done: nothing more
    assert capsys.readouterr().err == ""

    empty = Progress("Downloading")
    empty(0, 0)
    assert capsys.readouterr().err.endswith("100.0% 0 B/0 B\n")
