from celery import shared_task

from . import services


@shared_task
def worker_canary_task(check_id: int | None = None) -> None:
    """Prove that a worker consumes messages (not merely that it is connected)."""
    services.worker_check_complete(check_id=check_id)
