"""The sweep of command jobs' scratch folders, apart from the services: the Celery worker of every
node imports this app's tasks when it starts, and the services import pandas and the model loaders."""

import shutil
import time
from pathlib import Path

from django.conf import settings

from compute.jobs.models import Job, JobStatus


def command_scratch_sweep(*, min_age_seconds: float = 60) -> int:
    """Remove the scratch folders of command jobs that are no longer on a node (a node that died,
    or whose process the watchdog ended, could not remove its own). Returns how many."""
    root = Path(settings.DATA_DIR) / "scratch"
    folders = {}
    for path in root.glob("job-*-*"):
        try:
            if time.time() - path.stat().st_mtime > min_age_seconds:
                folders[path] = int(path.name.split("-")[1])
        except (FileNotFoundError, ValueError):
            continue
    active = set(
        Job.objects.filter(pk__in=set(folders.values()), status__in=JobStatus.on_node()).values_list("pk", flat=True)
    )
    for path, job_id in folders.items():
        if job_id not in active:
            shutil.rmtree(path, ignore_errors=True)
    return sum(1 for job_id in folders.values() if job_id not in active)
