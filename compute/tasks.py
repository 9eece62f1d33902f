"""Celery finds an app's tasks in `<app>.tasks`: the job engine's live in compute/jobs/."""

from .jobs.tasks import reconcile_task, run_job_task  # noqa: F401
