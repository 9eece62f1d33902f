"""Storing metric values: the history row of each, and each job's latest value per metric."""

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from django.db import connection, transaction
from django.utils import timezone

from .models import Job, LatestMetric, Metric


class MetricRow(NamedTuple):
    """One value to store: what a Metric row holds, without a model instance per value (a batch
    of a thousand is inserted as plain rows)."""

    job_id: int
    name: str
    step: int
    value: float
    at: datetime


def _rank(metric) -> tuple:
    return (metric.step, metric.at, metric.value)


def _insert(rows: Sequence[MetricRow]) -> None:
    """Insert the history rows with one executemany: Django's bulk_create prepares each field of
    each instance in Python, several times slower than the database's own insert."""
    quote = connection.ops.quote_name
    columns = ", ".join(quote(Metric._meta.get_field(name).column) for name in MetricRow._fields)
    # Table and column names come from the model, never from a request; the values are parameters.
    sql = f"INSERT INTO {quote(Metric._meta.db_table)} ({columns}) VALUES (%s, %s, %s, %s, %s)"  # noqa: S608
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.executemany(sql, [(r.job_id, r.name, r.step, r.value, adapt(r.at)) for r in rows])


def metrics_save(metrics: Sequence) -> None:
    """Insert the values (MetricRow or unsaved Metric) and bring each job's LatestMetric rows up
    to date, in one transaction.

    The jobs' rows are locked first, so two writers of one job cannot both keep a stale latest."""
    if not metrics:
        return
    now = timezone.now()
    rows = [MetricRow(m.job_id, m.name, int(m.step), float(m.value), m.at or now) for m in metrics]
    newest: dict[tuple[int, str], MetricRow] = {}
    for row in rows:
        key = (row.job_id, row.name)
        if key not in newest or _rank(row) > _rank(newest[key]):
            newest[key] = row
    job_ids = sorted({job_id for job_id, _ in newest})
    with transaction.atomic():
        list(Job.objects.select_for_update().filter(pk__in=job_ids).values_list("pk", flat=True))
        _insert(rows)
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
