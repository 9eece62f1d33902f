"""Reads of labs: an instance's lab as the page and the API show it, and its schedules."""

from django.db.models import QuerySet
from django.http import Http404

from compute.models import ComputeTarget

from .models import InstanceLab, InstanceSchedule, LabState


def lab_path(target: ComputeTarget) -> str:
    """The studio path of an instance's JupyterLab: the studio checks the owner there and redirects to
    the lab proxy's origin (labs.proxy)."""
    return f"/w/{target.workspace_id}/compute/{target.pk}/lab/"


def lab_get(*, target: ComputeTarget) -> InstanceLab:
    """The instance's lab, or an unsaved stopped one when it never ran (reads make no row)."""
    lab = InstanceLab.objects.filter(target=target).select_related("environment_version__environment").first()
    return lab or InstanceLab(target=target, state=LabState.STOPPED)


def lab_summary(*, target: ComputeTarget, user) -> dict:
    """What the page and the API show of an instance's lab. The link is only for the instance's
    owner, and only while the lab is ready: nobody else may enter it (the proxy checks again)."""
    lab = lab_get(target=target)
    version = lab.environment_version
    ready = lab.state == LabState.READY
    return {
        "state": lab.state,
        "state_label": lab.get_state_display(),
        "reason": lab.reason,
        # The log names the owner's files and notebooks: theirs to read.
        "log_tail": lab.log_tail if lab.state == LabState.FAILED and user.pk == target.owner_id else "",
        "url": lab_path(target) if ready and user.pk == target.owner_id else None,
        "environment_version": version.pk if version else None,
        "environment": str(version) if version else "the studio's default (JupyterLab and MLflow)",
        "ready_at": lab.ready_at,
    }


def schedule_list(*, target: ComputeTarget) -> QuerySet[InstanceSchedule]:
    return InstanceSchedule.objects.filter(target=target).order_by("time_of_day", "pk")


def schedule_get(*, target: ComputeTarget, schedule_id) -> InstanceSchedule:
    try:
        return InstanceSchedule.objects.select_related("target__workspace").get(pk=int(schedule_id), target=target)
    except (InstanceSchedule.DoesNotExist, TypeError, ValueError, OverflowError):
        raise Http404("Schedule not found.") from None
