"""The external run job kind: an MLflow run started from outside the studio (a laptop, CI).

It has no compute: the tracking API creates it RUNNING and detached (no node, no heartbeat), so
the engine's reconciler never re-queues or fails it, and the client ends it with runs/update.
No worker ever runs it."""

from django.core.exceptions import ValidationError

from compute.jobs.kinds import CleanSpec, JobHandler
from compute.jobs.runner import JobError

EXTERNAL = "external"


class ExternalRunJob(JobHandler):
    submittable = False
    checks_storage_quota = False
    clone_hint = "they are started by the MLflow client, not by the studio."
    client_runs_it = "MLflow client"

    def validate(self, *, workspace, spec) -> CleanSpec:
        raise ValidationError("An external run is started by the MLflow client; it cannot be submitted or retried.")

    def run(self, ctx) -> dict:
        raise JobError("An external run has no compute: nothing runs it on a node.")

    def on_detached(self, *, job_id: int) -> None:
        """Nothing drives an external run but its client (no children): the reconciler's nudge is a no-op."""
