"""Environment pages: list, create, detail (versions, lock file, builds per host), new version,
delete, and the curated bases. Thin views over environments.services and environments.selectors."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from studio.forms_errors import add_service_errors
from workspaces.pages import page_workspace, render_page

from . import selectors, services
from .bases import bases
from .downloads import lock_file_response
from .forms import EnvironmentForm, VersionForm


def environment_list(request, workspace_id):
    workspace = page_workspace(request, workspace_id)
    q = request.GET.get("q", "")
    page = Paginator(selectors.environment_list(workspace=workspace, q=q), 50).get_page(request.GET.get("page"))
    return render_page(request, "environments/list.html", workspace, page=page, q=q)


def base_list(request, workspace_id):
    workspace = page_workspace(request, workspace_id)
    return render_page(request, "environments/bases.html", workspace, bases=bases().values())


@require_http_methods(["GET", "POST"])
def environment_create(request, workspace_id):
    workspace = page_workspace(request, workspace_id, write=True)
    form = EnvironmentForm(request.POST or None, initial={"base": "studio-sklearn"})
    if request.method == "POST" and form.is_valid():
        try:
            version = services.environment_create(actor=request.user, workspace=workspace, **form.cleaned_data)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(
                request, f"Environment {version.environment.name} created; a node builds it for its first job."
            )
            return redirect("environment-detail", workspace_id=workspace.pk, environment_id=version.environment_id)
    return render_page(request, "environments/create.html", workspace, form=form, bases=bases().values())


def environment_detail(request, workspace_id, environment_id):
    workspace = page_workspace(request, workspace_id)
    environment = selectors.environment_get(workspace=workspace, environment_id=environment_id)
    versions = list(selectors.environment_version_list(environment=environment))
    shown = versions[0] if versions else None
    if request.GET.get("v"):
        shown = next((v for v in versions if str(v.version) == request.GET["v"]), None)
        if shown is None:
            raise Http404("Environment version not found.")
    return render_page(
        request,
        "environments/detail.html",
        workspace,
        environment=environment,
        versions=versions,
        shown=shown,
        base=bases().get(shown.base) if shown else None,
    )


@require_http_methods(["GET", "POST"])
def version_create(request, workspace_id, environment_id):
    workspace = page_workspace(request, workspace_id, write=True)
    environment = selectors.environment_get(workspace=workspace, environment_id=environment_id)
    latest = environment.versions.order_by("-version").first()
    initial = {"base": latest.base, "requirements": latest.requirements} if latest else {}
    form = VersionForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            version = services.environment_version_create(
                actor=request.user, environment=environment, **form.cleaned_data
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            if latest is not None and version.pk == latest.pk:
                messages.info(request, f"Nothing changed: version {version.version} already has this specification.")
            else:
                messages.success(request, f"Version {version.version} of {environment.name} created.")
            url = reverse("environment-detail", args=[workspace.pk, environment.pk])
            return redirect(f"{url}?v={version.version}")
    return render_page(
        request,
        "environments/version_create.html",
        workspace,
        environment=environment,
        form=form,
        latest=latest,
        bases=bases().values(),
    )


def lock_download(request, workspace_id, environment_id, version):
    workspace = page_workspace(request, workspace_id)
    environment = selectors.environment_get(workspace=workspace, environment_id=environment_id)
    found = selectors.environment_version_get(environment=environment, version=version)
    if not found.lock:
        raise Http404("This version has no lock file yet: a node writes it when it first builds the version.")
    return lock_file_response(found)


@require_http_methods(["GET", "POST"])
def environment_delete(request, workspace_id, environment_id):
    workspace = page_workspace(request, workspace_id, write=True)
    environment = selectors.environment_get(workspace=workspace, environment_id=environment_id)
    if request.method == "POST":
        try:
            services.environment_delete(actor=request.user, environment=environment)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect("environment-detail", workspace_id=workspace.pk, environment_id=environment.pk)
        messages.success(request, f"Environment {environment.name} deleted.")
        return redirect("environment-list", workspace_id=workspace.pk)
    jobs = services.environment_jobs(environment=environment)
    return render_page(request, "environments/delete.html", workspace, environment=environment, jobs=jobs)
