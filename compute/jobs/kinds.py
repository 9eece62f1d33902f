"""The job kinds the studio runs, and what each must provide.

Workers run only the studio's own code (R7): a job's kind picks a handler from this table and
its spec is validated at submit time and read back from the database by the worker. The engine
knows no kind itself: each app registers its kinds from its own `jobs.py` when Django starts
(`AppConfig.ready`).
"""

from dataclasses import dataclass

from django.core.exceptions import ValidationError


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


_HANDLERS: dict[str, JobHandler] = {}
_LABELS: dict[str, str] = {}
# (value, label) of every registered kind, filled as apps register: read by the API's schema.
CHOICES: list[tuple[str, str]] = []


def register(kind: str, label: str, handler: JobHandler) -> None:
    if kind in _HANDLERS and type(_HANDLERS[kind]) is not type(handler):
        raise RuntimeError(f"job kind {kind!r} is registered twice")
    if kind not in _HANDLERS:
        CHOICES.append((kind, label))
    _HANDLERS[kind] = handler
    _LABELS[kind] = label


def handler_for(kind: str) -> JobHandler:
    handler = _HANDLERS.get(kind)
    if handler is None:
        raise ValidationError({"kind": [f"Unknown job kind {kind!r}."]})
    return handler


def kind_label(kind: str) -> str:
    return _LABELS.get(kind, kind)


def submittable_kinds() -> list[str]:
    return [kind for kind, handler in _HANDLERS.items() if handler.submittable]


def public_spec(kind: str, spec: dict) -> dict:
    handler = _HANDLERS.get(kind)
    return handler.public_spec(spec) if handler is not None else spec


def job_references(job) -> list[str]:
    return handler_for(job.kind).references(job)
