"""Reads of experiments, the grouping of runs (the jobs themselves: compute/jobs/selectors.py)."""

from django.db.models import QuerySet
from django.http import Http404

from compute.jobs.models import Job
from compute.jobs.selectors import job_list
from studio.ids import parse_id
from workspaces.models import Workspace

from .ml.tasks import CLASSIFICATION
from .models import Experiment, TrainingJobKind


def experiment_list(*, workspace: Workspace) -> QuerySet[Experiment]:
    return Experiment.objects.filter(workspace=workspace, deleted_at__isnull=True).order_by("name")


def jobs_for_compare(*, workspace: Workspace, ids) -> list[Job]:
    clean = [job_id for job_id in map(parse_id, ids) if job_id is not None][:10]
    jobs = list(job_list(workspace=workspace).filter(pk__in=clean))
    if len(jobs) != len(set(clean)):
        raise Http404("Job not found.")
    return jobs


def job_task(job: Job) -> str | None:
    """The task a training job trains for (None for other kinds): its spec's, a trial's from its
    trial spec, a final model's from its run; specs written before regression are classifications."""
    if job.kind in (TrainingJobKind.TRAIN, TrainingJobKind.AUTOML):
        return job.spec.get("task") or CLASSIFICATION
    if job.kind == TrainingJobKind.AUTOML_TRIAL:
        return (job.spec.get("trial") or {}).get("task") or CLASSIFICATION
    if job.kind == TrainingJobKind.AUTOML_FINAL:
        if job.spec.get("task"):
            return job.spec["task"]
        # a final job submitted before it kept its task: its run's (one query)
        return (job.parent.spec.get("task") if job.parent_id else None) or CLASSIFICATION
    return None
