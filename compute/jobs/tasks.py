from celery import shared_task

from . import runner, services

# Task names kept from when the engine lived in training/: messages queued before an upgrade
# still find their task.


@shared_task(name="training.tasks.run_job_task", acks_late=True, reject_on_worker_lost=True)
def run_job_task(job_id: int) -> None:
    """Run one job. The message carries only the id; everything else is read from the database."""
    runner.run_job(job_id)


@shared_task(name="training.tasks.reconcile_task")
def reconcile_task() -> None:
    services.jobs_reconcile()
