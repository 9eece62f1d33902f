"""The job kinds the studio runs, and what each must provide.

Workers run only the studio's own code (R7): a job's kind picks a handler from this table and
its spec is validated at submit time and read back from the database by the worker. The engine
knows no kind itself: each app registers its kinds when Django starts (`AppConfig.ready`), each
handler by the dotted path of its class ("data.jobs.IngestJob"). The class is imported when the
handler is first needed (on a node: by the first job of the kind it runs): a kind's module imports
what its work needs (pandas, scikit-learn, LightGBM: seconds), and a node must claim its first job
without paying for every kind.
"""

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.utils.module_loading import import_string


@dataclass(frozen=True)
class CleanSpec:
    spec: dict
    data_version: object | None = None  # a data.DataVersion the job reads


class JobHandler:
    """Base of every job kind."""

    # An ingest's upload was admitted against the storage quota before its job was submitted.
    checks_storage_quota = True
    # Kinds a user may submit through POST /jobs (the others are made by their own services).
    submittable = False
    # Why "Clone and edit" is not offered for jobs of this kind (when no form submits them).
    clone_hint = "no form submits them."
    # The client that runs jobs of this kind itself ("MLflow client"), when no node of a compute
    # target does: pages then name it instead of a compute, a node, attempts and a time limit.
    client_runs_it = ""

    def validate(self, *, workspace, spec) -> CleanSpec:
        """Check a submitted spec (types, ids in this workspace); raise ValidationError."""
        raise NotImplementedError

    def run(self, ctx) -> dict:
        """Do the work on a node; return the job's result summary (JSON)."""
        raise NotImplementedError

    def on_detached(self, *, job_id: int) -> None:
        """Called after run() returned Detach and the node was freed."""

    def on_finished(self, *, job_id: int, status: str) -> None:
        """Called once the job reached COMPLETED, FAILED or CANCELED (after commit)."""

    def references(self, job) -> list[str]:
        """Things that refer to this job and keep it from being deleted."""
        return []

    # A template the job page includes for this kind (its own sections), with page_context(job).
    page_template = ""

    def page_context(self, job) -> dict:
        return {}

    def public_spec(self, spec: dict) -> dict:
        """The spec as pages and the API show it (a kind hides what must not be echoed)."""
        return spec


class _UnimportableKind(JobHandler):
    """Stands in for a kind whose module fails to import: its jobs fail with the error (on a node,
    as the job runs), its hooks do nothing, and the next use tries the import again."""

    def __init__(self, error: ImportError):
        self.error = error

    def validate(self, *, workspace, spec) -> CleanSpec:
        raise self.error

    def run(self, ctx) -> dict:
        raise self.error


# kind -> the dotted path of its handler's class, and the handler once it was first needed.
_PATHS: dict[str, str] = {}
_HANDLERS: dict[str, JobHandler] = {}
_LABELS: dict[str, str] = {}
# (value, label) of every registered kind, filled as apps register: read by the API's schema.
CHOICES: list[tuple[str, str]] = []


def register(kind: str, label: str, handler_path: str) -> None:
    """Register `kind`, run by the JobHandler subclass at `handler_path` ("data.jobs.IngestJob")."""
    if _PATHS.get(kind, handler_path) != handler_path:
        raise RuntimeError(f"job kind {kind!r} is registered twice")
    if kind not in _PATHS:
        CHOICES.append((kind, label))
    _PATHS[kind] = handler_path
    _LABELS[kind] = label


def handler_for(kind: str) -> JobHandler:
    handler = _HANDLERS.get(kind)
    if handler is None:
        path = _PATHS.get(kind)
        if path is None:
            raise ValidationError({"kind": [f"Unknown job kind {kind!r}."]})
        try:
            handler_class = import_string(path)
        except ImportError as exc:
            return _UnimportableKind(exc)
        # Two threads may both build it: handlers hold no state, either one will do.
        handler = _HANDLERS.setdefault(kind, handler_class())
    return handler


def kind_label(kind: str) -> str:
    return _LABELS.get(kind, kind)


def submittable_kinds() -> list[str]:
    return [kind for kind in _PATHS if handler_for(kind).submittable]


def client_runs_it(kind: str) -> str:
    return handler_for(kind).client_runs_it if kind in _PATHS else ""


def public_spec(kind: str, spec: dict) -> dict:
    return handler_for(kind).public_spec(spec) if kind in _PATHS else spec


def job_references(job) -> list[str]:
    return handler_for(job.kind).references(job)
