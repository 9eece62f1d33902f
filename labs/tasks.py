from celery import shared_task

from .services import schedules_apply


@shared_task(name="labs.tasks.apply_schedules_task")
def apply_schedules_task() -> None:
    """Every minute (CELERY_BEAT_SCHEDULE): start and stop instances whose schedule time has come."""
    schedules_apply()
