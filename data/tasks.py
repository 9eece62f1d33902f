from celery import shared_task

from data.services import upload_slots_sweep
from data.uploads import remove_stale_staging


# The name kept from when data lived in workspaces/ (the beat schedule and queued messages use it).
@shared_task(name="workspaces.tasks.remove_stale_staging_task")
def remove_stale_staging_task() -> None:
    """Sweep what uploads killed mid-request left: staging files and upload slots."""
    remove_stale_staging()
    upload_slots_sweep()
