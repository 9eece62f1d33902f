"""Compute pages: thin views over compute.services and compute.selectors."""

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect
from django.views.decorators.http import require_http_methods, require_POST

from studio.charts import bar_chart
from studio.forms_errors import add_service_errors
from workspaces.pages import page_workspace, render_page
from workspaces.policy import PersonalAction

from . import instance_addons, selectors, services
from .forms import TargetCreateForm, TargetEditForm
from .jobs.selectors import job_list
from .models import TargetKind


def target_list(request, workspace_id):
    workspace = page_workspace(request, workspace_id)
    targets = selectors.target_list(workspace=workspace)
    template = "compute/_target_table.html" if request.htmx else "compute/list.html"
    quota = selectors.quota_use(workspace=workspace)
    return render_page(request, template, workspace, targets=targets, kinds=TargetKind.choices, quota=quota)


@require_http_methods(["GET", "POST"])
def target_create(request, workspace_id):
    workspace = page_workspace(request, workspace_id, write=True)
    kind = request.POST.get("kind") or request.GET.get("kind")
    if kind not in TargetKind.values:
        return render_page(request, "compute/choose_kind.html", workspace, kinds=TargetKind.choices)
    form = TargetCreateForm(request.POST or None, kind=kind)
    if request.method == "POST" and form.is_valid():
        try:
            created = services.target_create(actor=request.user, workspace=workspace, **form.cleaned_data)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            if created.join_token:
                request.session[f"join-token-{created.target.pk}"] = created.join_token
            messages.success(request, f"{created.target.get_kind_display()} {created.target.name} created.")
            return redirect("compute-detail", workspace_id=workspace.pk, target_id=created.target.pk)
    return render_page(request, "compute/create.html", workspace, form=form, kind=TargetKind(kind))


def target_detail(request, workspace_id, target_id):
    workspace = page_workspace(request, workspace_id)
    target = selectors.target_get(workspace=workspace, target_id=target_id)
    context = {
        "target": target,
        "nodes": selectors.node_list(target=target),
        "queued": job_list(workspace=workspace, filters={"target": target.pk, "status": "queued"})[:20],
        "recent": job_list(workspace=workspace, filters={"target": target.pk})[:10],
        "quota": selectors.quota_use(workspace=workspace),
    }
    if target.kind == TargetKind.INFERENCE:
        context["served"] = selectors.served_deployments(target=target)
    if target.kind == TargetKind.INSTANCE:  # the notebook panel (labs), and what else apps above add
        context |= instance_addons.page_context(request, target, live=bool(request.htmx))
    if request.htmx:
        return render_page(request, "compute/_target_live.html", workspace, **context)
    # Show only the buttons the user may press (a compute instance is its owner's).
    for action in PersonalAction.ALL:
        context[f"can_{action}"] = services.target_allows(request.user, target, action)
    # A join token is shown once, right after it was made.
    context["join_token"] = request.session.pop(f"join-token-{target.pk}", None)
    context["join_command"] = _join_command(target, context["join_token"])
    return render_page(request, "compute/detail.html", workspace, **context)


def _join_command(target, token):
    shown = token or "<the join token>"
    database = "$DATABASE_URL"
    return (
        f"cd studio && STUDIO_JOIN_TOKEN={shown} DATABASE_URL={database} CELERY_BROKER_URL=$CELERY_BROKER_URL "
        f"STUDIO_DATA_DIR=/shared/studio-data .venv/bin/python manage.py compute_node --target {target.pk}"
    )


@require_http_methods(["GET", "POST"])
def target_edit(request, workspace_id, target_id):
    workspace = page_workspace(request, workspace_id, write=True)
    target = selectors.target_get(workspace=workspace, target_id=target_id)
    services.target_require(request.user, target, PersonalAction.CHANGE)
    initial = {f: getattr(target, f) for f in TargetEditForm.FIELDS[target.kind]}
    form = TargetEditForm(request.POST or None, initial=initial, kind=target.kind)
    if request.method == "POST" and form.is_valid():
        try:
            services.target_update(actor=request.user, target=target, **form.cleaned_data)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"{target.name} updated.")
            return redirect("compute-detail", workspace_id=workspace.pk, target_id=target.pk)
    return render_page(request, "compute/edit.html", workspace, form=form, target=target)


@require_http_methods(["GET", "POST"])
def target_delete(request, workspace_id, target_id):
    workspace = page_workspace(request, workspace_id, write=True)
    target = selectors.target_get(workspace=workspace, target_id=target_id)
    services.target_require(request.user, target, PersonalAction.DELETE)
    if request.method == "POST":
        try:
            services.target_delete(actor=request.user, target=target)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect("compute-detail", workspace_id=workspace.pk, target_id=target.pk)
        messages.success(request, f"{target.name} deleted; its nodes are stopping.")
        return redirect("compute-list", workspace_id=workspace.pk)
    return render_page(request, "compute/delete.html", workspace, target=target)


@require_POST
def target_action(request, workspace_id, target_id, action):
    workspace = page_workspace(request, workspace_id, write=True)
    target = selectors.target_get(workspace=workspace, target_id=target_id)
    actions = {
        "start": (services.instance_start, "starting"),
        "stop": (services.instance_stop, "stopping"),
        "restart": (services.instance_restart, "restarting"),
    }
    if action == "join-token":
        request.session[f"join-token-{target.pk}"] = services.join_token_regenerate(actor=request.user, target=target)
        messages.success(request, "A new join token was made; the old one no longer works.")
        return redirect("compute-detail", workspace_id=workspace.pk, target_id=target.pk)
    if action not in actions:
        raise Http404()
    service, verb = actions[action]
    try:
        service(actor=request.user, target=target)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{target.name} is {verb}.")
    return redirect("compute-detail", workspace_id=workspace.pk, target_id=target.pk)


def usage(request, workspace_id):
    workspace = page_workspace(request, workspace_id)
    data = selectors.usage(workspace=workspace, days=30)
    x = [d.isoformat() for d in data.days]
    hours_chart = bar_chart(x=x, series=data.hours, y_title="node-hours") if data.targets else None
    cost_chart = bar_chart(x=x, series=data.cost, y_title="cost ($)") if data.targets else None
    rows = [
        (name, data.kinds.get(name, ""), data.month_hours.get(name, 0), data.month_cost.get(name, 0))
        for name in data.targets
    ]
    return render_page(
        request,
        "compute/usage.html",
        workspace,
        usage=data,
        rows=rows,
        instance_owners=data.instances_by_owner(),
        hours_chart=hours_chart,
        cost_chart=cost_chart,
        currency=getattr(settings, "STUDIO_CURRENCY", "$"),
    )
