"""The job kinds the studio runs, and what each must provide.

Workers run only the studio's own code (R7): a job's kind picks a handler from this table and
its spec is validated at submit time and read back from the database by the worker.
"""

from dataclasses import dataclass
from functools import cache
from importlib import import_module

from django.core.exceptions import ValidationError

from .models import JobKind

HANDLERS = {
    JobKind.DIAGNOSTIC: "training.kinds.diagnostic.DiagnosticJob",
    JobKind.INGEST: "workspaces.ingest_job.IngestJob",
    JobKind.TRAIN: "training.kinds.train.TrainJob",
    JobKind.BATCH_SCORE: "endpoints.batch_job.BatchScoreJob",
    JobKind.AUTOML: "training.kinds.automl.AutoMLJob",
    JobKind.AUTOML_TRIAL: "training.kinds.automl.AutoMLTrialJob",
    JobKind.AUTOML_FINAL: "training.kinds.automl.AutoMLFinalJob",
}


@dataclass(frozen=True)
class CleanSpec:
    spec: dict
    data_version: object | None = None  # a workspaces.DataVersion the job reads


class JobHandler:
    """Base of every job kind."""

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


@cache
def handler_for(kind: str) -> JobHandler:
    path = HANDLERS.get(kind)
    if path is None:
        raise ValidationError({"kind": [f"Unknown job kind {kind!r}."]})
    module, _, name = path.rpartition(".")
    return getattr(import_module(module), name)()


def job_references(job) -> list[str]:
    return handler_for(job.kind).references(job)
