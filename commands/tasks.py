from celery import shared_task

from .code_services import code_staging_sweep
from .scratch import command_scratch_sweep


@shared_task(name="commands.tasks.remove_stale_scratch_task")
def remove_stale_scratch_task() -> None:
    """Sweep what killed processes left: code uploads' staging folders, command jobs' scratch."""
    code_staging_sweep()
    command_scratch_sweep()
