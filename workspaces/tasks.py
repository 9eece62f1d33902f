from celery import shared_task

from .data_services import upload_slots_sweep
from .uploads import remove_stale_staging


@shared_task
def remove_stale_staging_task() -> None:
    """Sweep what uploads killed mid-request left: staging files and upload slots."""
    remove_stale_staging()
    upload_slots_sweep()
