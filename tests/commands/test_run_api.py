"""The run API (/api/v1/run/): a running job's own code records metrics, parameters and artifacts
for itself and reads its inputs, with the job's token, which no other API route accepts."""

import hashlib
import io
import json
import time

import pyarrow.parquet as pq
import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from compute.jobs.models import Artifact, Job, JobParam, JobStatus, JobToken, Metric
from compute.jobs.recovery import job_artifact_dir
from compute.jobs.run_services import STAGING_FOLDER
from compute.jobs.selectors import job_params
from compute.jobs.tokens import job_token_issue, job_tokens_revoke
from studio.services import token_create
from tests.routes import all_routes
from workspaces.models import Workspace

pytestmark = pytest.mark.django_db

RUN_ONLY = "A job's token may only use the run API."
INVALID = "The job's token is invalid, expired or revoked."


def command_job(workspace, user, spec=None, status=JobStatus.RUNNING) -> Job:
    return Job.objects.create(
        workspace=workspace, kind="command", status=status, spec=spec or {}, submitted_by=user, attempt=1
    )


def client_with(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


@pytest.fixture
def job(workspace, owner, penguins):
    spec = {"inputs": {"train": {"type": "data", "data_version_id": penguins.pk}, "odd": "not an input"}}
    return command_job(workspace, owner, spec)


@pytest.fixture
def run(job):
    """The job's code: a client holding the job's token."""
    return client_with(job_token_issue(job=job))


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.content[:400]
    return response.json()["error"]


# --- The job and its inputs ----------------------------------------------------------------------
def test_the_job_reads_itself_and_its_inputs(run, job, penguins):
    body = run.get("/api/v1/run/").json()
    assert body["id"] == job.pk and body["workspace_id"] == job.workspace_id
    assert body["kind"] == "command" and body["status"] == "running" and body["token_expires_at"]
    assert body["inputs"] == [
        {
            "name": "train",
            "type": "data",
            "data_version_id": penguins.pk,
            "asset": "penguins",
            "version": penguins.version,
            "rows": penguins.rows,
            "columns": penguins.columns,
            "url": "/api/v1/run/inputs/train/",
        }
    ]


def test_the_job_downloads_its_input_as_parquet_and_as_csv(run, penguins):
    response = run.get("/api/v1/run/inputs/train/")
    assert response.status_code == 200
    table = pq.read_table(io.BytesIO(b"".join(response.streaming_content)))
    assert table.num_rows == penguins.rows == 344 and "species" in table.column_names
    response = run.get("/api/v1/run/inputs/train/?format=csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode()
    assert text.splitlines()[0].startswith("species,") and len(text.splitlines()) == 345


@pytest.mark.parametrize("name", ["test", "odd", "..", "tr%C3%A4in"])
def test_an_input_the_spec_does_not_name_as_data_is_a_404(run, name):
    assert error_of(run.get(f"/api/v1/run/inputs/{name}/"), 404)["code"] == "not_found"


def test_a_bad_format_is_a_400(run):
    assert "format" in error_of(run.get("/api/v1/run/inputs/train/?format=xml"), 400)["fields"]


@pytest.mark.parametrize(
    "inputs",
    [None, "train", [], {"train": None}, {"train": {"type": "data", "data_version_id": "1"}}, {"train": {"type": "x"}}],
)
def test_a_spec_of_another_shape_lists_no_inputs(workspace, owner, inputs):
    run = client_with(job_token_issue(job=command_job(workspace, owner, {"inputs": inputs})))
    assert run.get("/api/v1/run/").json()["inputs"] == []
    assert run.get("/api/v1/run/inputs/train/").status_code == 404


def test_a_job_cannot_read_a_data_version_of_another_workspace(other_workspace, outsider, penguins):
    spec = {"inputs": {"train": {"type": "data", "data_version_id": penguins.pk}}}  # penguins: alice's workspace
    run = client_with(job_token_issue(job=command_job(other_workspace, outsider, spec)))
    assert run.get("/api/v1/run/").json()["inputs"][0]["asset"] is None
    assert "no longer exists" in error_of(run.get("/api/v1/run/inputs/train/"), 404)["message"]


# --- Metrics -------------------------------------------------------------------------------------
def test_metrics_are_recorded_in_a_batch(run, job):
    metrics = [
        {"key": "loss", "value": 0.5, "step": 0},
        {"key": "loss", "value": 0.25, "step": 1},
        {"key": "précision — val ✓", "value": 1},
    ]
    response = run.post("/api/v1/run/metrics/", {"metrics": metrics}, format="json")
    assert response.status_code == 201 and response.json() == {"recorded": 3}
    rows = sorted(Metric.objects.filter(job=job).values_list("name", "step", "value"))
    assert rows == [("loss", 0, 0.5), ("loss", 1, 0.25), ("précision — val ✓", 0, 1.0)]


def test_a_full_batch_of_1000_takes_a_few_queries(run, job, django_assert_max_num_queries):
    metrics = [{"key": f"m{i % 7}", "value": i / 3, "step": i} for i in range(1000)]
    with django_assert_max_num_queries(15):
        assert run.post("/api/v1/run/metrics/", {"metrics": metrics}, format="json").status_code == 201
    assert Metric.objects.filter(job=job).count() == 1000


@pytest.mark.parametrize(
    "metrics, where",
    [
        ([{"key": "loss", "value": 1}] * 1001, "1000"),
        ([], "metrics"),
        ([{"key": "x" * 101, "value": 1}], "Item 0: key"),
        ([{"key": "ok", "value": 1}, {"key": "", "value": 1}], "Item 1: key"),
        ([{"key": "tab\there", "value": 1}], "Item 0: key"),
        ([{"key": "loss", "value": 10**400}], "Item 0: value"),
        ([{"key": "loss", "value": "0.5"}], "Item 0: value"),
        ([{"key": "loss", "value": True}], "Item 0: value"),
        ([{"key": "loss", "value": None}], "Item 0: value"),
        ([{"key": "loss", "value": 1, "step": 2**31}], "Item 0: step"),
        ([{"key": "loss", "value": 1, "step": 1.5}], "Item 0: step"),
        ([{"key": "loss"}], "Item 0: value"),
        (["loss"], "metrics"),
        ({"key": "loss", "value": 1}, "metrics"),
    ],
)
def test_bad_metrics_are_refused_whole_and_named(run, job, metrics, where):
    error = error_of(run.post("/api/v1/run/metrics/", {"metrics": metrics}, format="json"), 400)
    assert "metrics" in error["fields"] and where in error["message"], error
    assert not Metric.objects.filter(job=job).exists()


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_numbers_that_are_not_finite_are_refused(run, job, value):
    body = '{"metrics": [{"key": "loss", "value": VALUE}]}'.replace("VALUE", value)
    assert run.post("/api/v1/run/metrics/", body, content_type="application/json").status_code == 400
    assert not Metric.objects.exists()


# --- Parameters ----------------------------------------------------------------------------------
def test_parameters_are_recorded_and_never_change(run, job):
    params = {"learning rate": "0.1", "模型": "gradient boosting", "empty": "", "seed": "42"}
    response = run.post("/api/v1/run/params/", {"params": params}, format="json")
    assert response.status_code == 200 and response.json() == {"recorded": 4}
    assert job_params(job) == dict(sorted(params.items()))
    # The same values again: nothing new, no error (a retried call is harmless).
    assert run.post("/api/v1/run/params/", {"params": {"seed": "42"}}, format="json").json() == {"recorded": 0}
    error = error_of(run.post("/api/v1/run/params/", {"params": {"seed": "7", "new": "x"}}, format="json"), 409)
    assert "'seed'" in error["message"] and "'42'" in error["message"]
    assert job_params(job)["seed"] == "42" and "new" not in job_params(job)


def test_a_job_keeps_at_most_100_parameters(run, job):
    first = {f"p{i:03}": str(i) for i in range(60)}
    assert run.post("/api/v1/run/params/", {"params": first}, format="json").json() == {"recorded": 60}
    more = {f"q{i:03}": str(i) for i in range(41)}
    error = error_of(run.post("/api/v1/run/params/", {"params": more}, format="json"), 409)
    assert "at most 100" in error["message"]
    assert JobParam.objects.filter(job=job).count() == 60
    assert run.post("/api/v1/run/params/", {"params": dict(list(more.items())[:40])}, format="json").status_code == 200
    assert JobParam.objects.filter(job=job).count() == 100


@pytest.mark.parametrize(
    "params",
    [
        {"lr": 0.1},
        {"lr": None},
        {"lr": ["a"]},
        {"x" * 251: "1"},
        {"": "1"},
        {"bad\nkey": "1"},
        {"lr": "v" * 501},
        {"lr": "nul\x00"},
        {},
        {f"k{i}": "v" for i in range(101)},
        ["lr", "0.1"],
    ],
)
def test_bad_parameters_are_refused(run, job, params):
    error = error_of(run.post("/api/v1/run/params/", {"params": params}, format="json"), 400)
    assert "params" in error["fields"], error
    assert not JobParam.objects.filter(job=job).exists()


# --- Artifacts -----------------------------------------------------------------------------------
def put(run, path: str, content: bytes, **extra):
    return run.generic("PUT", f"/api/v1/run/artifacts/{path}", content, "application/octet-stream", **extra)


def test_an_artifact_is_stored_under_the_job_with_its_size_and_hash(run, job):
    content = "loss,step\n0.5,0 — ü\n".encode() * 100
    response = put(run, "plots/loss curve ü.csv", content)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["name"] == "logged/plots/loss curve ü.csv" and body["kind"] == "logged"
    assert body["size"] == len(content) and body["sha256"] == hashlib.sha256(content).hexdigest()
    artifact = Artifact.objects.get(job=job)
    assert (job_artifact_dir(job) / artifact.name).read_bytes() == content
    assert not any((job_artifact_dir(job) / STAGING_FOLDER).iterdir())


def test_sending_a_path_again_replaces_the_file_and_its_row(run, job):
    put(run, "model.txt", b"first")
    response = put(run, "model.txt", b"second, longer")
    assert response.status_code == 201
    artifact = Artifact.objects.get(job=job)
    assert artifact.size == 14 and artifact.sha256 == hashlib.sha256(b"second, longer").hexdigest()
    assert (job_artifact_dir(job) / "logged" / "model.txt").read_bytes() == b"second, longer"


def test_an_empty_file_is_an_artifact(run, job):
    assert put(run, "empty", b"", CONTENT_LENGTH="0").status_code == 201
    assert Artifact.objects.get(job=job).size == 0


def test_a_file_over_the_limit_is_a_413_and_nothing_is_stored(run, job, settings):
    settings.STUDIO_RUN_ARTIFACT_MAX_BYTES = 1000
    assert put(run, "fits.bin", b"x" * 1000).status_code == 201
    error = error_of(put(run, "big.bin", b"x" * 1001), 413)
    assert error["code"] == "too_large" and "1,001 bytes" in error["message"] and "1,000 bytes" in error["message"]
    assert list(Artifact.objects.filter(job=job).values_list("name", flat=True)) == ["logged/fits.bin"]
    assert not (job_artifact_dir(job) / "logged" / "big.bin").exists()


def test_a_full_workspace_refuses_the_artifact(run, job):
    Workspace.objects.filter(pk=job.workspace_id).update(storage_quota_bytes=10)
    error = error_of(put(run, "a.bin", b"x" * 11), 413)
    assert error["code"] == "quota_exceeded" and "quota" in error["message"]
    assert not Artifact.objects.filter(job=job).exists()


def test_a_body_without_a_length_is_refused(run, job):
    error = error_of(put(run, "a.bin", b"abc", CONTENT_LENGTH=""), 411)
    assert "Content-Length" in error["message"]
    assert error_of(put(run, "a.bin", b"abc", CONTENT_LENGTH="-3"), 400)["code"] == "parse_error"
    assert not Artifact.objects.exists()


def test_a_body_shorter_than_its_length_stores_nothing(run, job):
    # The client announced 10 bytes and went away after 3 (the WSGI stream ends early).
    error = error_of(put(run, "a.bin", b"", CONTENT_LENGTH="10", **{"wsgi.input": io.BytesIO(b"abc")}), 400)
    assert "cut off" in error["message"]
    assert not Artifact.objects.exists() and not any((job_artifact_dir(job) / STAGING_FOLDER).iterdir())


@pytest.mark.parametrize(
    "path",
    [
        "../escape.txt",
        "a/../../escape.txt",
        "%2e%2e/escape.txt",
        "a//b.txt",
        "a/./b.txt",
        "dir/",
        "back\\slash.txt",
        "nul%00.txt",
        "tab%09.txt",
        "deep/" * 10 + "file",
        "x" * 194,
        "é" * 130,  # 260 bytes in one segment
    ],
)
def test_unsafe_paths_are_refused(run, job, path):
    error = error_of(put(run, path, b"data"), 400)
    assert "path" in error["fields"], error
    assert not Artifact.objects.exists()
    assert not (job_artifact_dir(job).parent / "escape.txt").exists()


def test_a_file_and_a_folder_cannot_share_a_path(run, job):
    assert put(run, "report", b"a file").status_code == 201
    assert "not a folder" in error_of(put(run, "report/part.txt", b"x"), 409)["message"]
    assert put(run, "charts/a.json", b"{}").status_code == 201
    assert "folder" in error_of(put(run, "charts", b"x"), 409)["message"]
    assert sorted(Artifact.objects.filter(job=job).values_list("name", flat=True)) == [
        "logged/charts/a.json",
        "logged/report",
    ]


# --- Only the job's own run, only with its token --------------------------------------------------
def test_a_token_writes_only_to_its_own_job(workspace, owner, job, run):
    other = command_job(workspace, owner)
    other_run = client_with(job_token_issue(job=other))
    run.post("/api/v1/run/metrics/", {"metrics": [{"key": "a", "value": 1}]}, format="json")
    other_run.post("/api/v1/run/params/", {"params": {"b": "2"}}, format="json")
    put(other_run, "b.txt", b"b")
    assert list(Metric.objects.values_list("job_id", flat=True)) == [job.pk]
    assert list(JobParam.objects.values_list("job_id", flat=True)) == [other.pk]
    assert list(Artifact.objects.values_list("job_id", flat=True)) == [other.pk]
    assert other_run.get("/api/v1/run/").json()["id"] == other.pk


def test_a_finished_job_s_token_is_a_401_everywhere_on_the_run_api(run, job):
    Job.objects.filter(pk=job.pk).update(status=JobStatus.COMPLETED, finished_at=timezone.now())
    for response in (
        run.get("/api/v1/run/"),
        run.post("/api/v1/run/metrics/", {"metrics": [{"key": "a", "value": 1}]}, format="json"),
        run.post("/api/v1/run/params/", {"params": {"a": "1"}}, format="json"),
        put(run, "a.txt", b"a"),
        run.get("/api/v1/run/inputs/train/"),
    ):
        assert error_of(response, 401)["message"] == INVALID
        assert response["WWW-Authenticate"] == "Bearer"
    assert not Metric.objects.exists() and not JobParam.objects.exists() and not Artifact.objects.exists()


def test_a_revoked_or_expired_token_is_a_401(run, job):
    assert run.get("/api/v1/run/").status_code == 200
    job_tokens_revoke(job=job)
    assert error_of(run.get("/api/v1/run/"), 401)["message"] == INVALID
    expired = client_with(job_token_issue(job=job))
    JobToken.objects.filter(revoked_at__isnull=True).update(expires_at=timezone.now())
    assert error_of(expired.get("/api/v1/run/"), 401)["message"] == INVALID


def test_the_run_api_takes_no_other_credentials(api, owner, job):
    assert error_of(api(owner).get("/api/v1/run/"), 401)["code"] == "not_authenticated"
    personal = client_with(token_create(user=owner, name="laptop").plaintext)
    assert personal.get("/api/v1/run/").status_code == 401
    assert api().post("/api/v1/run/metrics/", {"metrics": []}, format="json").status_code == 401


def test_a_job_s_token_has_a_rate_limit_of_its_own(run, api, owner, settings):
    settings.STUDIO_API_RATE_LIMIT = "3/hour"
    if 3600 - time.time() % 3600 < 10:  # a fixed window resets at its end: start well inside one
        time.sleep(3600 - time.time() % 3600 + 0.1)
    assert [run.get("/api/v1/run/").status_code for _ in range(3)] == [200, 200, 200]
    limited = run.post("/api/v1/run/metrics/", {"metrics": [{"key": "a", "value": 1}]}, format="json")
    assert error_of(limited, 429)["code"] == "throttled" and int(limited["Retry-After"]) >= 1
    assert api(owner).get("/api/v1/me/").status_code == 200  # the submitter's own budget is untouched
    assert not Metric.objects.exists()


def test_the_submitter_s_disabled_account_disables_the_token(run, owner):
    type(owner).objects.filter(pk=owner.pk).update(is_active=False)
    assert error_of(run.get("/api/v1/run/"), 401)["message"] == INVALID


# --- Deny by default: a job's token opens no other API route -------------------------------------
@pytest.mark.parametrize(
    "method, path",
    [
        ("get", "/api/v1/me/"),
        ("get", "/api/v1/workspaces/"),
        ("post", "/api/v1/tokens/"),
        ("get", "/api/v1/workspaces/{ws}/jobs/"),
        ("get", "/api/v1/workspaces/{ws}/data-assets/"),
        ("post", "/api/v1/workspaces/{ws}/data-assets/"),
        ("get", "/api/schema/"),
    ],
)
def test_a_job_token_is_refused_on_other_api_routes(run, job, method, path):
    response = getattr(run, method)(path.format(ws=job.workspace_id), {}, format="json")
    assert response.status_code == 403 and RUN_ONLY in response.content.decode()


def test_a_job_token_answers_no_2xx_on_any_api_route_but_the_run_api(run, job, owner):
    """Walk the URLconf: every API route, every method, ids filled with the job's workspace and 1."""
    ids = {"workspace_id": job.workspace_id}
    before = {model: model.objects.count() for model in (Workspace, Job, Artifact, JobToken)}
    refused = 0
    for route in all_routes():
        if not route.pattern.startswith("api/") or route.pattern.startswith("api/v1/run/"):
            continue
        url = route.url({name: ids.get(name, 1) for name in route.params})
        for method in {*route.methods(), "GET"}:
            response = run.generic(method, url, json.dumps({"name": "x"}), "application/json")
            assert not 200 <= response.status_code < 400, (method, route.pattern, response.status_code)
            assert response.status_code == 403, (method, route.pattern, response.status_code, response.content[:200])
            if not response["Content-Type"].startswith("text/html"):  # the docs page is a page
                assert RUN_ONLY in response.content.decode()  # JSON, or YAML from the schema's renderer
            refused += 1
    assert refused >= 60
    assert before == {model: model.objects.count() for model in before}
    assert run.get("/api/v1/run/").status_code == 200  # the token itself still works where it may


def test_personal_tokens_and_sessions_work_as_before(api, owner, workspace):
    assert api(owner).get("/api/v1/me/").status_code == 200
    personal = client_with(token_create(user=owner, name="laptop").plaintext)
    assert personal.get(f"/api/v1/workspaces/{workspace.pk}/jobs/").status_code == 200
    bad = client_with("stu_abcdef123456_" + "x" * 43)
    assert error_of(bad.get("/api/v1/me/"), 401)["message"] == "The API token is invalid, expired or revoked."
    assert api().get("/api/v1/me/")["WWW-Authenticate"] == "Bearer"


# --- The schema documents the run API with the job's token ---------------------------------------
def test_the_schema_documents_the_run_api_with_the_job_token_only(api, owner):
    schema = json.loads(api(owner).get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").content)
    assert schema["components"]["securitySchemes"]["jobTokenAuth"]["scheme"] == "bearer"
    run_operations = {
        ("get", "/api/v1/run/"),
        ("post", "/api/v1/run/metrics/"),
        ("post", "/api/v1/run/params/"),
        ("put", "/api/v1/run/artifacts/{path}"),
        ("get", "/api/v1/run/inputs/{name}/"),
    }
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            names = {name for requirement in operation.get("security", []) for name in requirement}
            if (method, path) in run_operations:
                assert names == {"jobTokenAuth"}, (method, path)
            else:
                assert "jobTokenAuth" not in names, (method, path)
    assert run_operations <= {(m, p) for p, item in schema["paths"].items() for m in item}
