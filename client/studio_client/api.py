"""The Python API: `Studio(url, token).workspace("name or id").jobs.create(...)`.

Results are dataclasses (each keeps the studio's whole answer in `raw`); lists are iterators that
fetch a page at a time; a refusal raises StudioError with the studio's status, code and fields."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from . import specs
from .http import StudioError, Transport

FINISHED_JOB = ("completed", "failed", "canceled")
SKIPPED_CODE_PARTS = {"__pycache__", ".git", ".venv", ".ipynb_checkpoints", ".mypy_cache", ".pytest_cache"}
MAX_CODE_BYTES = 200 * 1024 * 1024


def _record(cls, body: dict):
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in body.items() if k in names and k != "raw"}, raw=body)


@dataclass
class Record:
    raw: dict = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        return self.raw


@dataclass
class User(Record):
    id: int = 0
    username: str = ""
    email: str = ""


@dataclass
class WorkspaceInfo(Record):
    id: int = 0
    name: str = ""
    description: str = ""
    role: str = ""


@dataclass
class DataAsset(Record):
    id: int = 0
    name: str = ""
    description: str = ""
    latest_version: int | None = None
    latest_rows: int | None = None
    latest_columns: int | None = None


@dataclass
class DataVersion(Record):
    id: int = 0
    version: int = 0
    rows: int | None = None
    columns: int | None = None
    source_name: str = ""
    asset: str = ""


@dataclass
class Ingest(Record):
    id: int = 0
    asset_name: str = ""
    status: str = ""
    error: Any = None
    version: Any = None


@dataclass
class Datastore(Record):
    id: int = 0
    name: str = ""
    kind: str = ""
    display: str = ""  # user@host:port/database: the connection URL itself is never shown again
    import_count: int = 0


@dataclass
class CodeSnapshot(Record):
    id: int = 0
    name: str = ""
    sha256: str = ""
    file_count: int | None = None


@dataclass
class Job(Record):
    id: int = 0
    display_name: str = ""
    kind: str = ""
    status: str = ""
    status_reason: str = ""
    experiment: str | None = None
    error: str | None = None
    result: Any = None
    created_at: str = ""
    finished_at: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_JOB


@dataclass
class LogLine(Record):
    seq: int = 0
    at: str = ""
    attempt: int = 0
    text: str = ""


@dataclass
class Artifact(Record):
    id: int = 0
    name: str = ""
    kind: str = ""
    size: int | None = None


@dataclass
class Environment(Record):
    id: int = 0
    name: str = ""
    latest_version: int | None = None
    latest_version_id: int | None = None
    latest_base: str = ""


@dataclass
class Model(Record):
    id: int = 0
    name: str = ""
    description: str = ""
    latest_version: int | None = None


@dataclass
class ModelVersion(Record):
    id: int = 0
    model: str = ""
    version: int = 0
    algorithm: str = ""
    target_column: str = ""
    signature: Any = None
    job: int | None = None
    onnx: bool = False


@dataclass
class Deployment(Record):
    id: int = 0
    name: str = ""
    status: str = ""
    status_reason: str = ""
    target: str = ""
    replicas: int = 0
    autoscale: dict | None = None  # min_replicas, max_replicas, target_in_flight, scale_in_seconds


@dataclass
class Endpoint(Record):
    id: int = 0
    name: str = ""
    scoring_url: str = ""
    traffic: Any = None
    primary_key: str | None = None  # only in the answer that created the endpoint
    secondary_key: str | None = None

    @property
    def deployments(self) -> list[Deployment]:
        return [_record(Deployment, d) for d in self.raw.get("deployments", [])]


def _pick(items: Iterator[dict], name: str, what: str, where: str = "in this workspace") -> dict:
    """The item named `name` (exactly, else the one whose name matches ignoring case)."""
    items = list(items)
    exact = [i for i in items if i.get("name") == name]
    if exact:
        return exact[0]
    folded = [i for i in items if str(i.get("name", "")).casefold() == name.casefold()]
    if len(folded) == 1:
        return folded[0]
    names = [str(i.get("name")) for i in items]
    known = (
        f" (there are: {', '.join(names[:10])}{', …' if len(names) > 10 else ''})" if names else " (there is none yet)"
    )
    raise StudioError(f"No {what} named '{name}' {where}{known}.", status=404, code="not_found")


def _ingest_failed(error) -> StudioError:
    """A failed ingest's error ({code, message, row, column}) as people read it: its message, and the
    data's own code (ragged_row, too_large…) with the column at fault in `fields`."""
    if not isinstance(error, dict):
        return StudioError(f"The ingest failed: {error}", status=400, code="ingest_failed")
    column = error.get("column")
    return StudioError(
        f"The ingest failed: {error.get('message') or error.get('code')}",
        status=400,
        code=error.get("code") or "ingest_failed",
        fields={column: [error.get("message", "")]} if column else None,
    )


def _split_ref(ref: str | tuple, what: str) -> tuple[str, int | None]:
    if isinstance(ref, tuple):
        return ref
    parsed = specs.asset_ref(ref)
    if parsed is not None:
        return parsed
    if ref and ":" not in ref and "@" not in ref:
        return ref, None  # the latest
    raise StudioError(f"Give the {what} as name, name:version or name@latest.", status=400, code="invalid")


class Resource:
    def __init__(self, ws: WorkspaceClient):
        self.ws = ws
        self.t = ws.transport
        self.base = f"workspaces/{ws.id}/"


class DataApi(Resource):
    def list(self) -> Iterator[DataAsset]:
        return (_record(DataAsset, a) for a in self.t.pages(self.base + "data-assets/"))

    def get(self, name: str) -> DataAsset:
        if str(name).isdigit():
            try:
                return _record(DataAsset, self.t.get(self.base + f"data-assets/{name}/"))
            except StudioError as exc:
                if exc.status != 404:
                    raise
        return _record(DataAsset, _pick(self.t.pages(self.base + "data-assets/"), name, "data asset"))

    def versions(self, name: str) -> Iterator[DataVersion]:
        asset = self.get(name)
        return (
            _record(DataVersion, {**v, "asset": asset.name})
            for v in self.t.pages(self.base + f"data-assets/{asset.id}/versions/")
        )

    def version(self, ref: str | tuple) -> DataVersion:
        """`name:3`, `name@latest` or `name` (the latest)."""
        name, number = _split_ref(ref, "data asset")
        asset = self.get(name)
        number = number or asset.latest_version
        if not number:
            raise StudioError(f"The data asset '{asset.name}' has no version yet.", status=404, code="not_found")
        body = self.t.get(self.base + f"data-assets/{asset.id}/versions/{number}/")
        return _record(DataVersion, {**body, "asset": asset.name})

    def upload(
        self, path: str, name: str = "", *, description: str = "", tags: str = "", wait: bool = True, progress=None
    ) -> Ingest:
        """Uploads a file (streamed) as a new data asset or its next version; waits for the ingest."""
        if not os.path.isfile(path):
            raise StudioError(f"'{path}' is not a file.", status=400, code="invalid", fields={"file": ["Not a file."]})
        body = self.t.upload(
            self.base + "data-assets/",
            path,
            fields={"name": name, "description": description, "tags": tags},
            progress=progress,
        )
        ingest = _record(Ingest, body)
        return self.wait_ingest(ingest.id) if wait else ingest

    def import_url(
        self, url: str, name: str = "", *, description: str = "", tags: str = "", wait: bool = True
    ) -> Ingest:
        """Imports the file at an http(s) URL (downloaded by the studio) as a data asset or its next version."""
        body = self.t.post(
            self.base + "data-imports/url/", {"url": url, "name": name, "description": description, "tags": tags}
        )
        ingest = _record(Ingest, body)
        return self.wait_ingest(ingest.id) if wait else ingest

    def import_query(
        self, datastore: str, query: str, name: str, *, description: str = "", tags: str = "", wait: bool = True
    ) -> Ingest:
        """Imports the rows of a SELECT query on a datastore (run read-only) as a data asset or its next version."""
        payload = {"datastore": datastore, "query": query, "name": name, "description": description, "tags": tags}
        ingest = _record(Ingest, self.t.post(self.base + "data-imports/query/", payload))
        return self.wait_ingest(ingest.id) if wait else ingest

    def import_s3(
        self, datastore: str, key: str, name: str = "", *, description: str = "", tags: str = "", wait: bool = True
    ) -> Ingest:
        """Imports an object of an S3 datastore (or the CSV parts under a prefix ending in /) as a data
        asset or its next version."""
        payload = {"datastore": datastore, "key": key, "name": name, "description": description, "tags": tags}
        ingest = _record(Ingest, self.t.post(self.base + "data-imports/s3/", payload))
        return self.wait_ingest(ingest.id) if wait else ingest

    def ingest_version(self, ingest: Ingest) -> DataVersion:
        """The version a ready ingest made (by its ids: an asset's name may look like an id)."""
        made = ingest.version or {}
        body = self.t.get(self.base + f"data-assets/{made['asset_id']}/versions/{made['version']}/")
        return _record(DataVersion, {**body, "asset": ingest.asset_name})

    def wait_ingest(self, ingest_id: int, timeout: float = 1800) -> Ingest:
        deadline = time.monotonic() + timeout
        delay = 0.2
        while True:
            ingest = _record(Ingest, self.t.get(self.base + f"ingests/{ingest_id}/"))
            if ingest.status in ("ready", "failed"):
                if ingest.status == "failed":
                    raise _ingest_failed(ingest.error)
                return ingest
            if time.monotonic() > deadline:
                raise StudioError(f"The ingest {ingest_id} is still {ingest.status}.", code="timeout")
            time.sleep(delay)
            delay = min(delay * 1.5, 2.0)

    def download(self, ref: str, destination: str, *, progress=None) -> str:
        version = self.version(ref)
        asset = self.get(version.asset)
        destination = os.path.abspath(destination)
        if os.path.isdir(destination):
            destination = os.path.join(destination, version.source_name or f"{asset.name}-v{version.version}")
        self.t.download(
            self.base + f"data-assets/{asset.id}/versions/{version.version}/download/", destination, progress=progress
        )
        return destination


class DatastoreApi(Resource):
    def list(self) -> Iterator[Datastore]:
        return (_record(Datastore, d) for d in self.t.pages(self.base + "datastores/"))

    def get(self, name: str) -> Datastore:
        found = _pick(self.t.pages(self.base + "datastores/"), name, "datastore")
        return _record(Datastore, self.t.get(self.base + f"datastores/{found['id']}/"))

    def create(self, name: str, url: str, *, description: str = "") -> Datastore:
        """Saves a PostgreSQL connection URL (sealed by the studio, never shown again)."""
        body = self.t.post(self.base + "datastores/", {"name": name, "url": url, "description": description})
        return _record(Datastore, body)

    def create_s3(
        self,
        name: str,
        bucket: str,
        access_key_id: str,
        secret_access_key: str,
        *,
        region: str = "",
        endpoint_url: str = "",
        description: str = "",
    ) -> Datastore:
        """Saves an S3 bucket (AWS, or MinIO and the like at `endpoint_url`) with a key pair (sealed by
        the studio, the secret never shown again)."""
        payload = {
            "name": name,
            "kind": "s3",
            "bucket": bucket,
            "region": region,
            "endpoint_url": endpoint_url,
            "access_key_id": access_key_id,
            "secret_access_key": secret_access_key,
            "description": description,
        }
        return _record(Datastore, self.t.post(self.base + "datastores/", payload))

    def delete(self, name: str) -> None:
        found = _pick(self.t.pages(self.base + "datastores/"), name, "datastore")
        self.t.request("DELETE", self.base + f"datastores/{found['id']}/")


class CodeApi(Resource):
    def upload(self, folder: str, name: str = "") -> CodeSnapshot:
        """Packs a folder (without caches and .git) and uploads it as a code snapshot."""
        total = 0
        files = []
        for full, relative in _folder_files(folder, skipped=SKIPPED_CODE_PARTS):
            if relative.endswith(".pyc"):
                continue
            total += os.path.getsize(full)
            if total > MAX_CODE_BYTES:
                raise StudioError(f"The code folder is over {MAX_CODE_BYTES} bytes.", code="too_large")
            files.append((full, relative))
        tmp = _zip_files(files)
        try:
            body = self.t.upload(
                self.base + "code/",
                tmp,
                filename="code.zip",
                fields={"name": name or os.path.basename(os.path.abspath(folder))},
            )
        finally:
            os.unlink(tmp)
        return _record(CodeSnapshot, body)


def _folder_files(folder: str, *, skipped=()) -> Iterator[tuple[str, str]]:
    """(path, path relative to the folder) of the folder's regular files: a link is never followed
    (it could lead out of the folder, to a key or a device), nor is anything but a plain file read."""
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in skipped and not os.path.islink(os.path.join(root, d)))
        for name in sorted(names):
            full = os.path.join(root, name)
            if not os.path.islink(full) and os.path.isfile(full):
                yield full, os.path.relpath(full, folder)


def _zip_files(files) -> str:
    """A new private temporary .zip (mode 0600) of (path, name) pairs; the caller deletes it."""
    descriptor, tmp = tempfile.mkstemp(suffix=".zip")
    with os.fdopen(descriptor, "wb") as out, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for full, relative in files:
            archive.write(full, relative)
    return tmp


class ComputeApi(Resource):
    def list(self) -> Iterator[dict]:
        return self.t.pages(self.base + "compute/")

    def get(self, name: str) -> dict:
        return _pick(self.list(), name, "compute target")

    def create(self, name: str, *, kind: str = "cluster", size: str | None = None, **settings) -> dict:
        """A compute cluster, inference cluster or attached machine (`kind`); `settings` are the API's
        (min_nodes, max_nodes, idle_seconds_before_scaledown, priority, description). An attached
        machine's answer carries its join token, shown once."""
        payload = {"name": name, "kind": kind, **({"size": size} if size else {}), **settings}
        return self.t.post(self.base + "compute/", {k: v for k, v in payload.items() if v is not None})

    def default(self) -> dict:
        targets = [t for t in self.list() if t.get("is_default") and t.get("kind") == "cluster"]
        targets = targets or [t for t in self.list() if t.get("kind") == "cluster"]
        if not targets:
            raise StudioError("This workspace has no compute cluster; name one with `compute:`.", code="not_found")
        return targets[0]


class EnvironmentApi(Resource):
    def list(self) -> Iterator[Environment]:
        return (_record(Environment, e) for e in self.t.pages(self.base + "environments/"))

    def get(self, name: str) -> Environment:
        return _record(Environment, _pick(self.t.pages(self.base + "environments/"), name, "environment"))

    def version_id(self, ref: str | tuple) -> int:
        name, number = _split_ref(ref, "environment")
        env = self.get(name)
        if number is None:
            return env.latest_version_id
        body = self.t.get(self.base + f"environments/{env.id}/versions/{number}/")
        return body["id"]

    def create(self, name: str, base: str, requirements: str = "", description: str = "") -> Environment:
        """Creates the environment, or a new version of it when the name exists."""
        try:
            existing = self.get(name)
        except StudioError as exc:
            if exc.status != 404:
                raise
            body = self.t.post(
                self.base + "environments/",
                {"name": name, "base": base, "requirements": requirements, "description": description},
            )
            return _record(Environment, body)
        self.t.post(self.base + f"environments/{existing.id}/versions/", {"base": base, "requirements": requirements})
        return self.get(name)

    def create_from_file(self, path: str) -> Environment:
        env = specs.read_env_file(path)
        try:
            return self.create(env.name, env.base, env.requirements, env.description)
        except StudioError as exc:
            raise located_error(env.doc, exc, {"base": "base" if "base" in env.doc.data else "image"}) from None


def located_error(doc: specs.Located, exc: StudioError, aliases: dict | None = None) -> Exception:
    """The studio's refusal of a file's content, pointed at the field's line when it is known."""
    if exc.status != 400:
        return exc
    aliases = aliases or {}
    for name, messages in exc.fields.items():
        key = aliases.get(name, name)
        if key in doc.data or key in doc.lines:
            text = "; ".join(map(str, messages))
            inner = text.split(":", 1)[0].strip()  # "lr: give a number" is about inputs.lr
            if f"{key}.{inner}" in doc.lines:
                key, text = f"{key}.{inner}", text.split(":", 1)[1].strip()
            return specs.SpecError(doc.source, doc.line(key), key, text)
        if name in aliases:  # a field the file should have had
            return specs.SpecError(doc.source, None, key, "; ".join(map(str, messages)))
    return exc


class JobApi(Resource):
    def list(
        self, *, status: str | None = None, kind: str | None = None, parent: int | str | None = None
    ) -> Iterator[Job]:
        """Jobs newest first; `parent`: a run's id for its child jobs (trials), "none" for top-level jobs only."""
        return (_record(Job, j) for j in self.t.pages(self.base + "jobs/", status=status, kind=kind, parent=parent))

    def get(self, job_id: int) -> Job:
        return _record(Job, self.t.get(self.base + f"jobs/{int(job_id)}/"))

    def submit(self, payload: dict) -> Job:
        return _record(Job, self.t.post(self.base + "jobs/", payload))

    def create(
        self,
        command: str,
        *,
        environment: str,
        code: str | None = None,
        inputs: dict | None = None,
        outputs: dict | None = None,
        compute: str | None = None,
        env: dict | None = None,
        secret_env: dict | None = None,
        experiment: str = "",
        display_name: str = "",
        time_limit_seconds: int | None = None,
    ) -> Job:
        """A command job. `inputs` values are literals or {"data": "name:version"}; `outputs` map a
        name to "folder" or "model"; `code` is a local folder, packed and uploaded."""
        spec: dict[str, Any] = {
            "command": command,
            "environment_version_id": self.ws.environments.version_id(environment),
        }
        if code:
            spec["code_snapshot_id"] = self.ws.code.upload(code).id
        spec["inputs"] = {}
        for name, value in (inputs or {}).items():
            if isinstance(value, dict) and "data" in value:
                spec["inputs"][name] = {"type": "data", "data_version_id": self.ws.data.version(value["data"]).id}
            elif isinstance(value, dict) and "literal" in value:
                spec["inputs"][name] = value["literal"]
            else:
                spec["inputs"][name] = value
        spec["outputs"] = {name: {"type": kind} for name, kind in (outputs or {}).items()}
        if env:
            spec["env"] = env
        if secret_env:
            spec["secret_env"] = secret_env
        target = self.ws.compute.get(compute) if compute else self.ws.compute.default()
        payload: dict[str, Any] = {"kind": "command", "target": target["id"], "spec": spec}
        if experiment:
            payload["experiment"] = experiment
        if display_name:
            payload["display_name"] = display_name
        if time_limit_seconds:
            payload["time_limit_seconds"] = time_limit_seconds
        return self.submit(payload)

    def create_from_file(self, path: str) -> Job:
        """A command job from a YAML file in Azure ML's shape; mistakes name the line and field."""
        job = specs.read_job_file(path)
        doc = job.doc
        try:
            environment = self.ws.environments.version_id(job.environment)
        except StudioError as exc:
            raise doc.error("environment", exc.message) from None
        inputs = {}
        for name, value in job.inputs.items():
            if "data" in value:
                try:
                    version = self.ws.data.version(value["data"])
                except StudioError as exc:
                    raise doc.error(f"inputs.{name}", exc.message) from None
                inputs[name] = {"type": "data", "data_version_id": version.id}
            else:
                inputs[name] = value["literal"]
        try:
            target = self.ws.compute.get(job.compute) if job.compute else self.ws.compute.default()
        except StudioError as exc:
            raise doc.error("compute", exc.message) from None
        spec: dict[str, Any] = {
            "command": job.command,
            "environment_version_id": environment,
            "inputs": inputs,
            "outputs": {name: {"type": kind} for name, kind in job.outputs.items()},
        }
        if job.env:
            spec["env"] = job.env
        if job.secret_env:
            spec["secret_env"] = job.secret_env
        if job.code:
            try:
                spec["code_snapshot_id"] = self.ws.code.upload(job.code).id
            except StudioError as exc:
                raise doc.error("code", str(exc)) from None
        payload: dict[str, Any] = {"kind": "command", "target": target["id"], "spec": spec}
        if job.experiment:
            payload["experiment"] = job.experiment
        if job.display_name:
            payload["display_name"] = job.display_name
        if job.time_limit_seconds:
            payload["time_limit_seconds"] = job.time_limit_seconds
        try:
            return self.submit(payload)
        except StudioError as exc:
            raise located_error(
                doc,
                exc,
                {
                    "env": "environment_variables",
                    "secret_env": "secret_environment_variables",
                    "experiment": "experiment_name",
                    "target": "compute",
                    "spec": "command",
                    "environment_version_id": "environment",
                    "code_snapshot_id": "code",
                },
            ) from None

    def logs(self, job_id: int, after: int = 0) -> tuple[list[LogLine], int, bool]:
        """(lines after `after`, the last sequence number, whether more may come)."""
        body = self.t.get(self.base + f"jobs/{int(job_id)}/log/", after=after)
        return [_record(LogLine, line) for line in body["lines"]], body["last"], body["active"]

    def follow(self, job_id: int, *, poll: float = 1.0, timeout: float | None = None) -> Iterator[LogLine]:
        """Every log line as it is written, until the job finishes."""
        after = 0
        deadline = time.monotonic() + timeout if timeout else None
        while True:
            lines, after, active = self.logs(job_id, after)
            yield from lines
            if not active and not lines:
                lines, after, _ = self.logs(job_id, after)  # the lines written as it finished
                yield from lines
                return
            if deadline and time.monotonic() > deadline:
                raise StudioError(f"Job {job_id} is still running.", code="timeout")
            if not lines:
                time.sleep(poll)

    def wait(self, job_id: int, *, timeout: float = 3600, poll: float = 1.0) -> Job:
        deadline = time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            if job.finished:
                return job
            if time.monotonic() > deadline:
                raise StudioError(f"Job {job_id} is still {job.status}.", code="timeout")
            time.sleep(poll)

    def cancel(self, job_id: int) -> Job:
        return _record(Job, self.t.post(self.base + f"jobs/{int(job_id)}/cancel/"))

    def artifacts(self, job_id: int) -> Iterator[Artifact]:
        return (_record(Artifact, a) for a in self.t.pages(self.base + f"jobs/{int(job_id)}/artifacts/"))

    def download(self, job_id: int, destination: str, *, prefix: str = "", progress=None) -> list[str]:
        """Downloads the job's files (those whose name starts with `prefix`) under `destination`."""
        written = []
        root = os.path.realpath(destination)
        for artifact in self.artifacts(job_id):
            if not artifact.name.startswith(prefix):
                continue
            target = os.path.realpath(os.path.join(root, artifact.name))
            if not target.startswith(root + os.sep):
                continue  # a name that would leave the folder
            os.makedirs(os.path.dirname(target), exist_ok=True)
            self.t.download(
                self.base + f"jobs/{int(job_id)}/artifacts/{artifact.id}/download/", target, progress=progress
            )
            written.append(target)
        return written


class AutoMLApi(Resource):
    def create(
        self,
        data: str,
        target_column: str,
        *,
        compute: str | None = None,
        task: str | None = None,
        settings: dict | None = None,
        register_as: str = "",
        experiment: str = "",
        display_name: str = "",
        test_fraction: float | None = None,
    ) -> Job:
        """Starts a run; `task` is "classification" (the studio's default), "regression" or
        "forecasting" — then `settings` holds time_column and horizon (required), series_columns,
        frequency, known_ahead, gap, backtest_windows, season_length, primary_metric, timeout_s."""
        version = self.ws.data.version(data)
        target = self.ws.compute.get(compute) if compute else self.ws.compute.default()
        payload: dict[str, Any] = {
            "data_version": version.id,
            "target_column": target_column,
            "target": target["id"],
            "settings": settings or {},
        }
        for key, value in (
            ("task", task),
            ("register_as", register_as),
            ("experiment", experiment),
            ("display_name", display_name),
            ("test_fraction", test_fraction),
        ):
            if value not in (None, ""):
                payload[key] = value
        return _record(Job, self.t.post(self.base + "automl/", payload))

    def get(self, job_id: int) -> dict:
        return self.t.get(self.base + f"automl/{int(job_id)}/")


class ModelApi(Resource):
    def list(self) -> Iterator[Model]:
        return (_record(Model, m) for m in self.t.pages(self.base + "models/"))

    def get(self, name: str) -> Model:
        return _record(Model, _pick(self.t.pages(self.base + "models/"), name, "model"))

    def versions(self, name: str) -> Iterator[ModelVersion]:
        model = self.get(name)
        return (_record(ModelVersion, v) for v in self.t.pages(self.base + f"models/{model.id}/versions/"))

    def version(self, ref: str | tuple) -> ModelVersion:
        name, number = _split_ref(ref, "model")
        model = self.get(name)
        number = number or model.latest_version
        return _record(ModelVersion, self.t.get(self.base + f"models/{model.id}/versions/{number}/"))

    def register_output(
        self, job_id: int, output: str, name: str, *, description: str = "", tags=None, aliases=None
    ) -> ModelVersion:
        """Registers a command job's model output."""
        payload = {"name": name, "description": description, "tags": tags or [], "aliases": aliases or []}
        path = self.base + f"jobs/{int(job_id)}/outputs/{output}/register/"
        return _record(ModelVersion, self.t.post(path, payload))

    def register_job(self, job_id: int, name: str, *, description: str = "") -> ModelVersion:
        """Registers the model of a training or AutoML job."""
        body = self.t.post(self.base + f"jobs/{int(job_id)}/register/", {"name": name, "description": description})
        return _record(ModelVersion, body)

    def register_file(
        self,
        path: str,
        name: str,
        *,
        description: str = "",
        data: str | None = None,
        signature: list | None = None,
        target_column: str = "",
        progress=None,
    ) -> ModelVersion:
        """Registers a model file made elsewhere (skops, ONNX, or a zipped MLflow model folder)."""
        fields: dict[str, Any] = {"name": name, "description": description, "target_column": target_column}
        if data:
            fields["data_version"] = self.ws.data.version(data).id
        if signature is not None:
            fields["signature"] = json.dumps(signature)
        packed = _zip_folder(path) if os.path.isdir(path) else None
        try:
            body = self.t.upload(self.base + "models/upload/", packed or path, fields=fields, progress=progress)
        finally:
            if packed:
                os.unlink(packed)
        return _record(ModelVersion, body)

    def download(self, ref: str, destination: str, *, progress=None) -> str:
        version = self.version(ref)
        model = self.get(version.model or _split_ref(ref, "model")[0])
        destination = os.path.abspath(destination)
        if os.path.isdir(destination):
            destination = os.path.join(destination, f"{model.name}-v{version.version}")
        self.t.download(
            self.base + f"models/{model.id}/versions/{version.version}/download/", destination, progress=progress
        )
        return destination


def _zip_folder(folder: str) -> str:
    return _zip_files(_folder_files(folder))


class EndpointApi(Resource):
    def list(self) -> Iterator[Endpoint]:
        return (_record(Endpoint, e) for e in self.t.pages(self.base + "endpoints/"))

    def get(self, name: str) -> Endpoint:
        return _record(Endpoint, _pick(self.t.pages(self.base + "endpoints/"), name, "endpoint"))

    def create(self, name: str, *, description: str = "", requests_per_minute: int | None = None) -> Endpoint:
        """Creates an endpoint; its keys are in the answer (`primary_key`), shown only this once."""
        payload: dict[str, Any] = {"name": name, "description": description}
        if requests_per_minute:
            payload["requests_per_minute"] = requests_per_minute
        return _record(Endpoint, self.t.post(self.base + "endpoints/", payload))

    def deploy(
        self,
        endpoint: str,
        name: str,
        model: str,
        *,
        compute: str,
        replicas: int | None = None,
        autoscale: dict | None = None,
    ) -> Deployment:
        """Deploys a model version; `autoscale` ({"min_replicas": 0, "max_replicas": 4, ...}) makes
        its replicas follow the load."""
        found = self.get(endpoint)
        version = self.ws.models.version(model)
        target = self.ws.compute.get(compute)
        payload: dict[str, Any] = {"name": name, "model_version": version.id, "target": target["id"]}
        if replicas:
            payload["replicas"] = replicas
        if autoscale:
            payload["autoscale"] = autoscale
        return _record(Deployment, self.t.post(self.base + f"endpoints/{found.id}/deployments/", payload))

    def scale(self, endpoint: str, deployment: str, *, replicas: int | None = None, autoscale: Any = ...) -> Deployment:
        """Sets a deployment's replicas, or its autoscaling (a dict of settings; None turns it off)."""
        found = self.get(endpoint)
        chosen = _pick(iter(found.raw.get("deployments") or []), deployment, "deployment")
        payload: dict[str, Any] = {}
        if replicas is not None:
            payload["replicas"] = replicas
        if autoscale is not ...:
            payload["autoscale"] = autoscale
        url = self.base + f"endpoints/{found.id}/deployments/{chosen['id']}/"
        return _record(Deployment, self.t.request("PATCH", url, json=payload))

    def traffic(self, endpoint: str, traffic: dict[str, int], *, mirror: str = "", mirror_percent=None) -> Endpoint:
        found = self.get(endpoint)
        payload: dict[str, Any] = {"traffic": traffic}
        if mirror:
            payload["mirror_deployment"] = mirror
        if mirror_percent is not None:
            payload["mirror_percent"] = mirror_percent
        return _record(Endpoint, self.t.request("PUT", self.base + f"endpoints/{found.id}/traffic/", json=payload))

    def monitoring(self, endpoint: str, *, range: str = "hour") -> dict:
        """Requests, errors, latency, input drift and (a regression's) prediction drift per deployment."""
        found = self.get(endpoint)
        return self.t.get(self.base + f"endpoints/{found.id}/monitoring/", range=range)

    def regenerate_key(self, endpoint: str, which: str = "primary") -> dict:
        found = self.get(endpoint)
        return self.t.post(self.base + f"endpoints/{found.id}/keys/", {"which": which})

    def invoke(self, endpoint: str, rows: Any, *, key: str, deployment: str | None = None) -> Any:
        """Scores rows (a list of records, or {"data": ...}) with an endpoint key."""
        headers = {"Authorization": f"Bearer {key}"}
        if deployment:
            headers["X-Studio-Deployment"] = deployment
        response = self.t.send(
            "POST", f"/score/{endpoint}/", json=rows, headers=headers, auth=_NoSessionAuth(headers["Authorization"])
        )
        return response.json()

    def forecast(
        self,
        endpoint: str,
        *,
        key: str,
        history: list[dict] | None = None,
        future: list[dict] | None = None,
        origin: str | None = None,
        series: list[dict] | None = None,
        level: float | None = None,
        deployment: str | None = None,
    ) -> dict:
        """Asks a forecasting endpoint for the horizon's forecasts: from the stored history (nothing
        given, or cut at `origin`, for `series`), or from each series' recent `history` rows (with
        the known-ahead values of the horizon in `future`). Returns {"forecasts": [...], ...}."""
        body: dict[str, Any] = {}
        for name, value in (("history", history), ("future", future), ("origin", origin), ("series", series)):
            if value is not None:
                body[name] = value
        if level is not None:
            body["level"] = level
        return self.invoke(endpoint, body, key=key, deployment=deployment)


class _NoSessionAuth:
    """Sends the endpoint key rather than the user's token."""

    def __init__(self, value: str):
        self.value = value

    def __call__(self, request):
        request.headers["Authorization"] = self.value
        return request


class WorkspaceClient:
    def __init__(self, transport: Transport, info: WorkspaceInfo):
        self.transport = transport
        self.info = info
        self.id = info.id
        self.name = info.name
        self.data = DataApi(self)
        self.datastores = DatastoreApi(self)
        self.code = CodeApi(self)
        self.compute = ComputeApi(self)
        self.environments = EnvironmentApi(self)
        self.jobs = JobApi(self)
        self.automl = AutoMLApi(self)
        self.models = ModelApi(self)
        self.endpoints = EndpointApi(self)

    def __repr__(self) -> str:
        return f"<Workspace {self.id} {self.name!r}>"


class Studio:
    """A studio, reached with a personal API token: `Studio(url, token).workspace("name or id")`."""

    def __init__(self, url: str, token: str | None, *, timeout: float = 60.0, sleep: Callable = time.sleep):
        self.transport = Transport(url, token, timeout=timeout, sleep=sleep)
        self.url = self.transport.url

    def me(self) -> User:
        return _record(User, self.transport.get("me/"))

    def workspaces(self) -> Iterator[WorkspaceInfo]:
        return (_record(WorkspaceInfo, w) for w in self.transport.pages("workspaces/"))

    def workspace(self, name_or_id: str | int) -> WorkspaceClient:
        text = str(name_or_id).strip()
        if text.isdigit():
            try:
                return WorkspaceClient(
                    self.transport, _record(WorkspaceInfo, self.transport.get(f"workspaces/{text}/"))
                )
            except StudioError as exc:
                if exc.status != 404:
                    raise
        picked = _pick((w.raw for w in self.workspaces()), text, "workspace", "that you are a member of")
        return WorkspaceClient(self.transport, _record(WorkspaceInfo, picked))
