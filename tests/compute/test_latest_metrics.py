"""Each job's latest value per metric is kept as values arrive, ranked as MLflow ranks them."""

from datetime import timedelta

import pytest
from django.utils import timezone

from compute.jobs.metrics import metrics_save
from compute.jobs.models import Job, LatestMetric, Metric

pytestmark = pytest.mark.django_db


def latest(job) -> dict:
    return {row.name: (row.step, row.value) for row in LatestMetric.objects.filter(job=job)}


def test_highest_step_then_latest_time_then_largest_value_wins(workspace):
    job = Job.objects.create(workspace=workspace, kind="train")
    now = timezone.now()
    metrics_save(
        [
            Metric(job=job, name="loss", step=2, value=0.5, at=now),
            Metric(job=job, name="loss", step=1, value=0.1, at=now + timedelta(seconds=5)),
            Metric(job=job, name="r² score", step=0, value=0.7, at=now),
        ]
    )
    assert latest(job) == {"loss": (2, 0.5), "r² score": (0, 0.7)}
    # An older step sent later does not replace the latest; a later time at the same step does.
    metrics_save([Metric(job=job, name="loss", step=1, value=9.0, at=now + timedelta(seconds=60))])
    assert latest(job)["loss"] == (2, 0.5)
    metrics_save([Metric(job=job, name="loss", step=2, value=0.4, at=now + timedelta(seconds=1))])
    assert latest(job)["loss"] == (2, 0.4)
    assert Metric.objects.filter(job=job).count() == 5


def test_jobs_keep_their_own_latest(workspace):
    first, second = (Job.objects.create(workspace=workspace, kind="train") for _ in range(2))
    metrics_save([Metric(job=first, name="acc", value=0.9), Metric(job=second, name="acc", value=0.3)])
    assert latest(first) == {"acc": (0, 0.9)} and latest(second) == {"acc": (0, 0.3)}
