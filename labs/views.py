"""The notebook panel of a compute instance's page and its forms (thin over labs.services), and the
studio's side of JupyterLab: a link on the studio's origin that lands on the lab proxy's."""

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect
from django.http.request import split_domain_port
from django.shortcuts import redirect
from django.views.decorators.http import require_POST, require_safe

from compute.selectors import target_get
from compute.services import target_allows
from environments.selectors import environment_versions_for_picker
from workspaces.pages import page_workspace
from workspaces.policy import PersonalAction

from . import selectors, services
from .forms import LabEnvironmentForm, ScheduleForm
from .routes import lab_route


def instance_page_context(request, target, *, live: bool) -> dict:
    """The notebook panel on a compute instance's page (registered in compute.instance_addons): its
    state is refreshed with the page's live part; the environment and schedules only on load."""
    if target.kind != "instance":
        return {}
    context = {
        "lab": selectors.lab_summary(target=target, user=request.user),
        "instance_live_panels": ["labs/_lab_state.html"],
    }
    if live:
        return context
    can_change = target_allows(request.user, target, PersonalAction.CHANGE)
    versions = environment_versions_for_picker(workspace=target.workspace) if can_change else []
    context |= {
        "instance_panels": ["labs/_lab_settings.html"],
        "lab_can_change": can_change,
        "schedules": [
            (s, services.schedule_describe(s), services.schedule_days(s))
            for s in selectors.schedule_list(target=target)
        ],
        "environment_form": LabEnvironmentForm(
            versions=versions, initial={"environment_version": context["lab"]["environment_version"]}
        ),
        "schedule_form": ScheduleForm(),
    }
    return context


def _form_errors(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return " ".join(f"{field.replace('_', ' ')}: {' '.join(errs)}" for field, errs in exc.message_dict.items())
    return " ".join(exc.messages)


def _back(workspace, target):
    return redirect("compute-detail", workspace_id=workspace.pk, target_id=target.pk)


@require_POST
def lab_environment(request, workspace_id, target_id):
    workspace = page_workspace(request, workspace_id, write=True)
    target = target_get(workspace=workspace, target_id=target_id)
    versions = environment_versions_for_picker(workspace=workspace)
    form = LabEnvironmentForm(request.POST, versions=versions)
    if not form.is_valid():
        messages.error(request, "Choose an environment version of this workspace.")
        return _back(workspace, target)
    try:
        services.lab_environment_set(
            actor=request.user, target=target, environment_version_id=form.cleaned_data["environment_version"]
        )
    except ValidationError as exc:
        messages.error(request, _form_errors(exc))
    else:
        messages.success(request, "Notebook environment saved: it is used the next time the instance starts.")
    return _back(workspace, target)


@require_POST
def schedule_create(request, workspace_id, target_id):
    workspace = page_workspace(request, workspace_id, write=True)
    target = target_get(workspace=workspace, target_id=target_id)
    form = ScheduleForm(request.POST)
    if not form.is_valid():
        messages.error(request, _form_errors(ValidationError(form.errors)))
        return _back(workspace, target)
    try:
        schedule = services.schedule_create(actor=request.user, target=target, **form.cleaned_data)
    except ValidationError as exc:
        messages.error(request, _form_errors(exc))
    else:
        messages.success(request, f"Scheduled: {services.schedule_describe(schedule)}.")
    return _back(workspace, target)


@require_POST
def schedule_delete(request, workspace_id, target_id, schedule_id):
    workspace = page_workspace(request, workspace_id, write=True)
    target = target_get(workspace=workspace, target_id=target_id)
    schedule = selectors.schedule_get(target=target, schedule_id=schedule_id)
    services.schedule_delete(actor=request.user, schedule=schedule)
    messages.success(request, "Schedule deleted.")
    return _back(workspace, target)


@require_safe
def lab_redirect(request, workspace_id, target_id, rest=""):
    """The instance's owner goes to the lab proxy (which shows a "starting…" page until the lab is
    ready); anyone else gets 404, as from the proxy itself."""
    lab_route(workspace_id=workspace_id, target_id=target_id, user=request.user)
    return HttpResponseRedirect(lab_origin(request) + request.get_full_path())


def lab_origin(request) -> str:
    """STUDIO_LAB_URL, or the host name this request came to at the lab port (so the browser sends
    the same session cookie there: cookies ignore ports)."""
    if settings.STUDIO_LAB_URL:
        return settings.STUDIO_LAB_URL
    domain, _port = split_domain_port(request.get_host())
    return f"{request.scheme}://{domain}:{settings.STUDIO_LAB_PORT}"
