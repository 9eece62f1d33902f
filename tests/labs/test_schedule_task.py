"""The applier as it runs in production: celery beat's message taken by a real worker, which stops
the instance whose schedule time has just passed."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from compute import services as compute_services
from compute.models import ComputeTarget, TargetKind
from labs.models import InstanceSchedule
from labs.services import schedule_create
from labs.tasks import apply_schedules_task
from tests.conftest import wait_for

pytestmark = [pytest.mark.worker]


def test_a_worker_fires_a_due_schedule(start_worker, contributor, workspace):
    box = compute_services.target_create(
        actor=contributor, workspace=workspace, kind=TargetKind.INSTANCE, name="box"
    ).target
    a_minute_ago = (timezone.now() - timedelta(minutes=1)).astimezone(UTC)
    schedule = schedule_create(
        actor=contributor,
        target=box,
        action="stop",
        time_of_day=a_minute_ago.strftime("%H:%M"),
        weekdays="0123456",
        time_zone="UTC",
    )
    InstanceSchedule.objects.filter(pk=schedule.pk).update(created_at=datetime(2026, 1, 1, tzinfo=UTC))
    start_worker()
    apply_schedules_task.delay()
    wait_for(
        lambda: not ComputeTarget.objects.get(pk=box.pk).instance_running, timeout=60, message="the schedule to stop it"
    )
    assert InstanceSchedule.objects.get(pk=schedule.pk).last_fired_at is not None
