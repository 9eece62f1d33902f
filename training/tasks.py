from celery import shared_task

from . import runner, services


@shared_task(acks_late=True, reject_on_worker_lost=True)
def run_job_task(job_id: int) -> None:
    """Run one job. The message carries only the id; everything else is read from the database."""
    runner.run_job(job_id)


@shared_task
def reconcile_task() -> None:
    services.jobs_reconcile()
