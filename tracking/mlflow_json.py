"""Experiments and runs in MLflow's JSON (the REST API 2.0 messages the client parses)."""

from compute.jobs.models import Job
from training.models import Experiment

from .selectors import RUN_NAME_TAG, STATUS_TO_MLFLOW, USER_TAG, RunData


def ms(moment) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def artifact_uri(run_id) -> str:
    return f"mlflow-artifacts:/runs/{run_id}"


def experiment_json(experiment: Experiment, tags=None) -> dict:
    if tags is None:
        tags = [(tag.key, tag.value) for tag in experiment.tags.all()]
    created = ms(experiment.created_at)
    return {
        "experiment_id": str(experiment.pk),
        "name": experiment.name,
        "artifact_location": f"mlflow-artifacts:/experiments/{experiment.pk}",
        "lifecycle_stage": "deleted" if experiment.deleted_at else "active",
        "creation_time": created,
        "last_update_time": ms(experiment.deleted_at) or created,
        "tags": [{"key": key, "value": value} for key, value in tags],
    }


def run_name(run: Job) -> str:
    return run.display_name or run.name


def run_info_json(run: Job) -> dict:
    started = run.started_at or run.created_at
    return {
        "run_id": str(run.pk),
        "run_uuid": str(run.pk),
        "run_name": run_name(run),
        "experiment_id": str(run.experiment_id or ""),
        "user_id": run.submitted_by.username if run.submitted_by else "",
        "status": STATUS_TO_MLFLOW.get(run.status, "RUNNING"),
        "start_time": ms(started),
        "end_time": ms(run.finished_at),
        "artifact_uri": artifact_uri(run.pk),
        "lifecycle_stage": "deleted" if run.deleted_at else "active",
    }


def run_json(run: Job, data: RunData) -> dict:
    tags = dict(data.tags.get(run.pk, []))
    tags[RUN_NAME_TAG] = run_name(run)
    if USER_TAG not in tags and run.submitted_by:
        tags[USER_TAG] = run.submitted_by.username
    return {
        "info": run_info_json(run),
        "data": {
            "metrics": [
                {"key": name, "value": value, "timestamp": ms(at), "step": step}
                for name, value, step, at in data.metrics.get(run.pk, [])
            ],
            "params": [{"key": key, "value": value} for key, value in data.params.get(run.pk, [])],
            "tags": [{"key": key, "value": value} for key, value in sorted(tags.items())],
        },
        "inputs": {},
    }
