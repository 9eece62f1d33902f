"""Start and stop schedules of compute instances: who may make them, what input is refused, and when
the applier fires them (their own time zone's wall clock and weekdays, DST days, once per time)."""

from datetime import UTC, datetime, time, timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404

from compute.models import ComputeTarget, Node, NodeStatus
from labs import services
from labs.models import InstanceSchedule
from workspaces.models import Membership

pytestmark = pytest.mark.django_db


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


LONG_AGO = datetime(2026, 1, 1, tzinfo=UTC)


def make(target, actor, *, action="start", at="08:00", weekdays="0123456", zone="UTC", made=LONG_AGO):
    schedule = services.schedule_create(
        actor=actor, target=target, action=action, time_of_day=at, weekdays=weekdays, time_zone=zone
    )
    InstanceSchedule.objects.filter(pk=schedule.pk).update(created_at=made)  # made long before `now`
    schedule.refresh_from_db()
    return schedule


def running(target) -> bool:
    target.refresh_from_db()
    return target.instance_running


# --- Who ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("who", "outcome"),
    [
        ("contributor", "ok"),
        ("owner", PermissionDenied),
        ("dave", PermissionDenied),
        ("reader", PermissionDenied),
        ("outsider", Http404),
    ],
)
def test_only_the_instances_owner_makes_its_schedules(people, bobs, who, outcome):
    if outcome == "ok":
        make(bobs, people[who])
        assert InstanceSchedule.objects.filter(target=bobs).count() == 1
        return
    with pytest.raises(outcome):
        make(bobs, people[who])
    assert not InstanceSchedule.objects.filter(target=bobs).exists()


def test_the_owner_or_a_workspace_owner_deletes_a_schedule_but_no_other_member(people, bobs):
    first, second = make(bobs, people["contributor"]), make(bobs, people["contributor"], action="stop")
    for who in ("dave", "reader"):
        with pytest.raises(PermissionDenied):
            services.schedule_delete(actor=people[who], schedule=first)
    services.schedule_delete(actor=people["owner"], schedule=first)
    services.schedule_delete(actor=people["contributor"], schedule=second)
    assert not InstanceSchedule.objects.filter(target=bobs).exists()


def test_a_cluster_has_no_schedules(people, workspace):
    from compute.services import target_create

    cluster = target_create(actor=people["contributor"], workspace=workspace, kind="cluster", name="shared").target
    with pytest.raises(ValidationError, match="Only compute instances"):
        make(cluster, people["contributor"])


# --- Bad input -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"zone": "Mars/Olympus_Mons"}, "time_zone", "Unknown time zone 'Mars/Olympus_Mons'"),
        ({"zone": "../../etc/passwd"}, "time_zone", "Unknown time zone"),
        ({"weekdays": ""}, "weekdays", "Choose at least one weekday."),
        ({"weekdays": [7]}, "weekdays", "from 0 (Monday) to 6 (Sunday), not 7"),
        ({"at": "25:00"}, "time_of_day", "HH:MM, from 00:00 to 23:59 (not '25:00')"),
        ({"at": "8 in the morning"}, "time_of_day", "HH:MM"),
        ({"action": "reboot"}, "action", "Choose start or stop"),
    ],
)
def test_bad_schedules_are_refused_naming_the_field(contributor, bobs, fields, field, message):
    with pytest.raises(ValidationError) as caught:
        make(bobs, contributor, **fields)
    assert message in " ".join(caught.value.message_dict[field])
    assert not InstanceSchedule.objects.exists()


def test_an_instance_has_at_most_ten_schedules(contributor, bobs):
    for minute in range(10):
        make(bobs, contributor, at=f"08:{minute:02d}")
    with pytest.raises(ValidationError, match="at most 10 schedules"):
        make(bobs, contributor, at="09:00")
    assert InstanceSchedule.objects.filter(target=bobs).count() == 10


def test_weekdays_are_kept_sorted_without_repeats(contributor, bobs):
    assert make(bobs, contributor, weekdays=[4, 0, 4, 2]).weekdays == "024"


# --- Firing ---------------------------------------------------------------------------------------------
def test_a_monday_start_in_paris_fires_on_monday_paris_time_and_only_once(contributor, bobs):
    bobs.instance_running = False
    bobs.save(update_fields=["instance_running"])
    make(bobs, contributor, action="start", at="08:00", weekdays="0", zone="Europe/Paris")
    # Monday 30 November 2026, 08:00 in Paris is 07:00 UTC (winter time).
    assert services.schedules_apply(now=utc(2026, 11, 30, 6, 59)) == 0 and not running(bobs)
    assert services.schedules_apply(now=utc(2026, 11, 30, 7, 0, 30)) == 1 and running(bobs)
    ComputeTarget.objects.filter(pk=bobs.pk).update(instance_running=False)
    assert services.schedules_apply(now=utc(2026, 11, 30, 7, 5)) == 0, "fired twice the same day"
    assert services.schedules_apply(now=utc(2026, 12, 1, 7, 1)) == 0, "a Tuesday"
    assert not running(bobs)
    assert services.schedules_apply(now=utc(2026, 12, 7, 7, 1)) == 1 and running(bobs)


def test_monday_in_tokyo_is_still_sunday_in_utc(contributor, bobs):
    ComputeTarget.objects.filter(pk=bobs.pk).update(instance_running=False)
    make(bobs, contributor, action="start", at="07:00", weekdays="0", zone="Asia/Tokyo")
    # Monday 07:00 in Tokyo = Sunday 29 November 22:00 UTC.
    assert services.schedules_apply(now=utc(2026, 11, 29, 21, 59)) == 0
    assert services.schedules_apply(now=utc(2026, 11, 29, 22, 1)) == 1 and running(bobs)


def test_a_weekday_evening_stop_in_new_york(contributor, bobs):
    node = Node.objects.create(target=bobs, status=NodeStatus.IDLE)
    make(bobs, contributor, action="stop", at="18:00", weekdays="01234", zone="America/New_York")
    # Saturday 5 December 2026 23:30 UTC is Saturday 18:30 in New York: not a weekday.
    assert services.schedules_apply(now=utc(2026, 12, 5, 23, 30)) == 0 and running(bobs)
    # Friday 4 December 18:00 EST = 23:00 UTC; the applier runs at 23:00:40.
    schedule = InstanceSchedule.objects.get()
    InstanceSchedule.objects.filter(pk=schedule.pk).update(created_at=utc(2026, 12, 1))
    assert services.schedules_apply(now=utc(2026, 12, 4, 22, 59)) == 0 and running(bobs)
    assert services.schedules_apply(now=utc(2026, 12, 4, 23, 0, 40)) == 1 and not running(bobs)
    node.refresh_from_db()
    assert node.status == NodeStatus.LEAVING and node.reason == "stopped by its schedule"


def test_a_time_skipped_by_the_spring_dst_change_fires_once_an_hour_later(contributor, bobs):
    # Paris, Sunday 29 March 2026: 02:00 CET jumps to 03:00 CEST, so 02:30 never happens.
    ComputeTarget.objects.filter(pk=bobs.pk).update(instance_running=False)
    make(bobs, contributor, action="start", at="02:30", weekdays="6", zone="Europe/Paris", made=utc(2026, 3, 1))
    assert services.schedules_apply(now=utc(2026, 3, 29, 1, 29)) == 0  # 03:29 CEST
    assert services.schedules_apply(now=utc(2026, 3, 29, 1, 30, 5)) == 1 and running(bobs)
    assert services.schedules_apply(now=utc(2026, 3, 29, 6, 0)) == 0


def test_a_time_repeated_by_the_autumn_dst_change_fires_once(contributor, bobs):
    # Paris, Sunday 25 October 2026: 02:30 happens twice (00:30 UTC in summer time, 01:30 UTC after).
    make(bobs, contributor, action="stop", at="02:30", weekdays="6", zone="Europe/Paris", made=utc(2026, 10, 1))
    assert services.schedules_apply(now=utc(2026, 10, 25, 0, 31)) == 1 and not running(bobs)
    ComputeTarget.objects.filter(pk=bobs.pk).update(instance_running=True)
    assert services.schedules_apply(now=utc(2026, 10, 25, 1, 31)) == 0 and running(bobs)


def test_a_schedule_made_after_todays_time_waits_for_the_next_day(contributor, bobs):
    made = utc(2026, 12, 2, 10, 0)
    make(bobs, contributor, action="stop", at="09:00", zone="UTC", made=made)
    assert services.schedules_apply(now=made + timedelta(minutes=1)) == 0 and running(bobs)
    assert services.schedules_apply(now=utc(2026, 12, 3, 9, 0, 30)) == 1 and not running(bobs)


def test_a_disabled_schedule_does_not_fire(contributor, bobs):
    schedule = make(bobs, contributor, action="stop", at="09:00")
    services.schedule_update(actor=contributor, schedule=schedule, enabled=False)
    assert services.schedules_apply(now=utc(2026, 12, 3, 9, 1)) == 0 and running(bobs)


def test_a_schedule_whose_owner_left_the_workspace_does_nothing_once(contributor, bobs, workspace):
    make(bobs, contributor, action="stop", at="09:00")
    Membership.objects.filter(workspace=workspace, user=contributor).delete()
    assert services.schedules_apply(now=utc(2026, 12, 3, 9, 1)) == 1  # claimed, then refused by the policy
    assert running(bobs)
    assert services.schedules_apply(now=utc(2026, 12, 3, 9, 2)) == 0


def test_schedule_times_are_stored_as_given(contributor, bobs):
    assert make(bobs, contributor, at="7:05").time_of_day == time(7, 5)


def test_the_applier_runs_every_minute_from_celery_beat(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["instance-schedules"]
    assert entry == {"task": "labs.tasks.apply_schedules_task", "schedule": 60.0}
    from labs.tasks import apply_schedules_task

    assert apply_schedules_task.name == entry["task"]


def test_a_time_missed_by_more_than_an_hour_is_skipped_not_caught_up(contributor, bobs):
    ComputeTarget.objects.filter(pk=bobs.pk).update(instance_running=False)
    make(bobs, contributor, action="start", at="08:00", zone="UTC")
    assert services.schedules_apply(now=utc(2026, 12, 3, 9, 1)) == 0 and not running(bobs)
    assert services.schedules_apply(now=utc(2026, 12, 3, 8, 59)) == 1 and running(bobs)
