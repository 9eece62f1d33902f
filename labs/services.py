"""Changes to labs: an instance's lab environment, its start and stop schedules, and the applier
that fires them. Only the instance's owner changes these (compute.services.target_require)."""

import functools
import logging
import re
import zoneinfo
from datetime import datetime, time, timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import Http404
from django.utils import timezone

from compute.models import ComputeTarget, TargetKind
from compute.services import instance_start, instance_stop, target_require
from environments.models import EnvironmentVersion
from workspaces.policy import PersonalAction
from workspaces.services import activity_record

from .models import InstanceLab, InstanceSchedule, ScheduleAction

logger = logging.getLogger(__name__)

MAX_SCHEDULES_PER_INSTANCE = 10
WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
SCHEDULE_STOP_REASON = "stopped by its schedule"
# A schedule time the applier missed by more than this (the studio was down) is skipped, not caught
# up: starting an instance hours late is a surprise, and the next scheduled time comes anyway.
SCHEDULE_GRACE = timedelta(hours=1)
_TIME_OF_DAY = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def _require_instance(target: ComputeTarget) -> None:
    if target.kind != TargetKind.INSTANCE:
        raise ValidationError("Only compute instances have a notebook and schedules.", code="conflict")


def lab_for_target(*, target: ComputeTarget) -> InstanceLab:
    """The instance's lab row, made (stopped, default environment) the first time it is needed."""
    _require_instance(target)
    lab, _ = InstanceLab.objects.get_or_create(target=target)
    return lab


def lab_environment_set(*, actor, target: ComputeTarget, environment_version_id: int | None) -> InstanceLab:
    """Choose the environment the lab runs in (None: the studio's default). Only a version of the
    instance's own workspace; another workspace's is refused as not found. It takes effect the next
    time the lab starts (a running lab keeps its environment)."""
    target_require(actor, target, PersonalAction.CHANGE)
    _require_instance(target)
    version = None
    if environment_version_id is not None:
        version = (
            EnvironmentVersion.objects.filter(pk=environment_version_id, environment__workspace_id=target.workspace_id)
            .select_related("environment")
            .first()
        )
        if version is None:
            raise ValidationError(
                {
                    "environment_version": [
                        f"Environment version {environment_version_id} was not found in this workspace."
                    ]
                }
            )
    with transaction.atomic():
        lab = lab_for_target(target=target)
        lab.environment_version = version
        lab.save(update_fields=["environment_version", "updated_at"])
        label = str(version) if version else "the default environment"
        activity_record(
            workspace=target.workspace,
            actor=actor,
            verb="lab_environment_set",
            summary=f"{actor} chose {label} for the notebook of {target.name}",
        )
    return lab


@functools.cache
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _clean_schedule(*, action: str, time_of_day, weekdays, time_zone: str) -> tuple[time, str]:
    """Validate a schedule's fields; return the time of day and the weekdays as sorted digits."""
    errors: dict[str, list[str]] = {}
    if action not in ScheduleAction.values:
        errors["action"] = [f"Choose start or stop (not {action!r})."]
    parsed = time_of_day if isinstance(time_of_day, time) else None
    if parsed is None:
        match = _TIME_OF_DAY.match(str(time_of_day or "").strip())
        if match:
            parsed = time(int(match[1]), int(match[2]))
        else:
            errors["time_of_day"] = [f"Give a time as HH:MM, from 00:00 to 23:59 (not {str(time_of_day)!r})."]
    days = set()
    for day in weekdays or ():
        if str(day) not in "0123456" or len(str(day)) != 1:
            errors["weekdays"] = [f"Weekdays are numbers from 0 (Monday) to 6 (Sunday), not {day!r}."]
            break
        days.add(str(day))
    if not days and "weekdays" not in errors:
        errors["weekdays"] = ["Choose at least one weekday."]
    if time_zone not in _time_zones():
        errors["time_zone"] = [f"Unknown time zone {time_zone!r}: use an IANA name such as Europe/Paris or UTC."]
    if errors:
        raise ValidationError(errors)
    return parsed, "".join(sorted(days))


def schedule_create(*, actor, target: ComputeTarget, action: str, time_of_day, weekdays, time_zone: str):
    """Add a start or stop time to an instance (at most MAX_SCHEDULES_PER_INSTANCE). `weekdays` are
    digits or numbers, Monday = 0. A schedule made after today's time first fires on its next day."""
    target_require(actor, target, PersonalAction.CHANGE)
    _require_instance(target)
    parsed, days = _clean_schedule(action=action, time_of_day=time_of_day, weekdays=weekdays, time_zone=time_zone)
    with transaction.atomic():
        ComputeTarget.objects.select_for_update().filter(pk=target.pk).first()  # one count at a time
        if InstanceSchedule.objects.filter(target=target).count() >= MAX_SCHEDULES_PER_INSTANCE:
            raise ValidationError(
                f"An instance has at most {MAX_SCHEDULES_PER_INSTANCE} schedules: delete one first.", code="conflict"
            )
        schedule = InstanceSchedule(
            target=target, action=action, time_of_day=parsed, weekdays=days, time_zone=time_zone
        )
        schedule.full_clean()
        schedule.save()
        activity_record(
            workspace=target.workspace,
            actor=actor,
            verb="lab_schedule_created",
            summary=f"{actor} scheduled: {schedule_describe(schedule)}",
        )
    return schedule


def schedule_update(*, actor, schedule: InstanceSchedule, **changes) -> InstanceSchedule:
    """Change a schedule's action, time, weekdays, time zone or `enabled`."""
    target = schedule.target
    target_require(actor, target, PersonalAction.CHANGE)
    fields = {
        "action": changes.get("action", schedule.action),
        "time_of_day": changes.get("time_of_day", schedule.time_of_day),
        "weekdays": changes.get("weekdays", schedule.weekdays),
        "time_zone": changes.get("time_zone", schedule.time_zone),
    }
    parsed, days = _clean_schedule(**fields)
    schedule.action, schedule.time_of_day, schedule.weekdays = fields["action"], parsed, days
    schedule.time_zone = fields["time_zone"]
    if "enabled" in changes:
        schedule.enabled = bool(changes["enabled"])
    schedule.last_fired_at = timezone.now()  # a time moved to just before now does not fire at once
    schedule.full_clean()
    schedule.save()
    return schedule


def schedule_delete(*, actor, schedule: InstanceSchedule) -> None:
    """Remove a schedule: its owner, or a workspace Owner (who may stop the instance anyway, so may
    also stop a schedule from starting it again; the admin console acts as one)."""
    target = schedule.target
    target_require(actor, target, PersonalAction.USE)
    with transaction.atomic():
        summary = schedule_describe(schedule)
        schedule.delete()
        activity_record(
            workspace=target.workspace,
            actor=actor,
            verb="lab_schedule_deleted",
            summary=f"{actor} removed the schedule: {summary}",
        )


def schedule_days(schedule: InstanceSchedule) -> str:
    return ", ".join(WEEKDAY_NAMES[int(d)] for d in schedule.weekdays)


def schedule_describe(schedule: InstanceSchedule) -> str:
    when = f"{schedule.time_of_day:%H:%M} {schedule.time_zone} on {schedule_days(schedule)}"
    return f"{schedule.get_action_display().lower()} {schedule.target.name} at {when}"


def schedule_last_due(schedule: InstanceSchedule, now: datetime) -> datetime | None:
    """The latest time at or before `now` that the schedule names (its wall-clock time on one of its
    weekdays, in its time zone), or None. A wall-clock time skipped by a DST change is read with the
    offset before the change (02:30 on the spring-forward night fires at 03:30 summer time)."""
    zone = zoneinfo.ZoneInfo(schedule.time_zone)
    local_today = now.astimezone(zone).date()
    for back in range(8):
        day = local_today - timedelta(days=back)
        if str(day.weekday()) not in schedule.weekdays:
            continue
        due = datetime.combine(day, schedule.time_of_day, tzinfo=zone)
        if due <= now:
            return due
    return None


def schedules_apply(*, now: datetime | None = None) -> int:
    """Start or stop instances whose schedule time has passed since the schedule last fired (or was
    made), at most SCHEDULE_GRACE ago: each fires at most once per scheduled time, acting as the
    instance's owner.
    Claims each firing by compare-and-set on last_fired_at, so two appliers never both act. Returns
    how many schedules fired."""
    now = now or timezone.now()
    fired = 0
    schedules = InstanceSchedule.objects.filter(enabled=True, target__kind=TargetKind.INSTANCE).select_related(
        "target__workspace", "target__owner"
    )
    for schedule in schedules:
        due = schedule_last_due(schedule, now)
        since = schedule.last_fired_at or schedule.created_at
        if due is None or due <= since or now - due > SCHEDULE_GRACE:
            continue
        claimed = InstanceSchedule.objects.filter(pk=schedule.pk, last_fired_at=schedule.last_fired_at).update(
            last_fired_at=now
        )
        if not claimed:
            continue
        fired += 1
        _schedule_fire(schedule)
    return fired


def _schedule_fire(schedule: InstanceSchedule) -> None:
    target, owner = schedule.target, schedule.target.owner
    if owner is None or not owner.is_active:
        logger.info("schedule %s skipped: %s has no active owner", schedule.pk, target.name)
        return
    try:
        if schedule.action == ScheduleAction.START and not target.instance_running:
            instance_start(actor=owner, target=target)
        elif schedule.action == ScheduleAction.STOP and target.instance_running:
            instance_stop(actor=owner, target=target, reason=SCHEDULE_STOP_REASON)
    except (PermissionDenied, Http404, ValidationError) as exc:
        # The owner left the workspace or lost the right to write: the schedule does nothing.
        logger.info("schedule %s skipped: %s", schedule.pk, exc)
