"""Storing metric values: the history row of each, and each job's latest value per metric."""

from collections.abc import Sequence

from django.db import transaction

from .models import Job, LatestMetric, Metric


def _rank(metric) -> tuple:
    return (metric.step, metric.at, metric.value)


def metrics_save(metrics: Sequence[Metric]) -> None:
    """Insert the values and bring each job's LatestMetric rows up to date (one transaction).

    The jobs' rows are locked first, so two writers of one job cannot both keep a stale latest."""
    if not metrics:
        return
    newest: dict[tuple[int, str], Metric] = {}
    for metric in metrics:
        key = (metric.job_id, metric.name)
        if key not in newest or _rank(metric) > _rank(newest[key]):
            newest[key] = metric
    job_ids = sorted({job_id for job_id, _ in newest})
    with transaction.atomic():
        list(Job.objects.select_for_update().filter(pk__in=job_ids).values_list("pk", flat=True))
        Metric.objects.bulk_create(metrics)
        held = {
            (row.job_id, row.name): row
            for row in LatestMetric.objects.filter(job_id__in=job_ids, name__in={name for _, name in newest})
        }
        created, updated = [], []
        for key, metric in newest.items():
            row = held.get(key)
            if row is None:
                created.append(
                    LatestMetric(job_id=key[0], name=key[1], step=metric.step, value=metric.value, at=metric.at)
                )
            elif _rank(metric) > row.rank():
                row.step, row.value, row.at = metric.step, metric.value, metric.at
                updated.append(row)
        LatestMetric.objects.bulk_create(created)
        LatestMetric.objects.bulk_update(updated, ["step", "value", "at"])
