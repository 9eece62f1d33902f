"""Model registry pages: list, versions, version detail (metrics, lineage, signature), compare,
download, aliases, delete; registering a job's model."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from compute.jobs.selectors import job_get
from data.uploads import UploadRefused
from studio.csrf import csrf_refusal, csrf_refusal_message
from studio.forms_errors import add_service_errors
from workspaces.pages import page_workspace, render_page

from . import downloads, registry_imports
from . import registry_selectors as selectors
from . import registry_services as services
from .forms import ModelUploadForm
from .model_uploads import model_upload_admitted, too_large_message


def model_list(request, workspace_id):
    workspace = page_workspace(request, workspace_id)
    q = request.GET.get("q", "")
    return render_page(
        request, "training/models/list.html", workspace, models=selectors.model_list(workspace=workspace, q=q), q=q
    )


def model_detail(request, workspace_id, model_id):
    workspace = page_workspace(request, workspace_id)
    model = selectors.model_get(workspace=workspace, model_id=model_id)
    return render_page(
        request,
        "training/models/detail.html",
        workspace,
        model=model,
        versions=selectors.model_version_list(model=model),
    )


def _onnx_report(version) -> dict:
    return selectors.model_version_json_file(version=version, name="onnx_report.json") or {}


def model_version_detail(request, workspace_id, model_id, version):
    workspace = page_workspace(request, workspace_id)
    model = selectors.model_get(workspace=workspace, model_id=model_id)
    model_version = selectors.model_version_get(model=model, version=version)
    metrics = sorted((k, v) for k, v in model_version.metrics.items() if isinstance(v, (int, float)))
    deployments = model_version.deployments.select_related("endpoint")
    return render_page(
        request,
        "training/models/version.html",
        workspace,
        model=model,
        version=model_version,
        metrics=metrics,
        onnx=_onnx_report(model_version),
        deployments=deployments,
    )


def model_compare(request, workspace_id, model_id):
    workspace = page_workspace(request, workspace_id)
    model = selectors.model_get(workspace=workspace, model_id=model_id)
    a = selectors.model_version_get(model=model, version=request.GET.get("a"))
    b = selectors.model_version_get(model=model, version=request.GET.get("b"))
    names = sorted({k for v in (a, b) for k, value in v.metrics.items() if isinstance(value, (int, float))})
    rows = [(k, a.metrics.get(k), b.metrics.get(k)) for k in names]
    columns_a = {c["name"]: c["type"] for c in a.signature.get("columns", [])}
    columns_b = {c["name"]: c["type"] for c in b.signature.get("columns", [])}
    signature = [(n, columns_a.get(n, "—"), columns_b.get(n, "—")) for n in sorted(set(columns_a) | set(columns_b))]
    return render_page(
        request, "training/models/compare.html", workspace, model=model, a=a, b=b, rows=rows, signature=signature
    )


def model_version_download(request, workspace_id, model_id, version, fmt):
    workspace = page_workspace(request, workspace_id)
    model = selectors.model_get(workspace=workspace, model_id=model_id)
    model_version = selectors.model_version_get(model=model, version=version)
    return downloads.model_version_download(model_version, fmt=fmt)


@require_POST
def model_version_alias(request, workspace_id, model_id, version):
    workspace = page_workspace(request, workspace_id, write=True)
    model = selectors.model_get(workspace=workspace, model_id=model_id)
    model_version = selectors.model_version_get(model=model, version=version)
    try:
        if request.POST.get("remove"):
            services.model_alias_remove(actor=request.user, model=model, alias=request.POST["remove"])
        else:
            services.model_alias_set(actor=request.user, version=model_version, alias=request.POST.get("alias", ""))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("model-version", workspace_id=workspace.pk, model_id=model.pk, version=model_version.version)


@require_http_methods(["GET", "POST"])
def model_version_delete(request, workspace_id, model_id, version):
    workspace = page_workspace(request, workspace_id, write=True)
    model = selectors.model_get(workspace=workspace, model_id=model_id)
    model_version = selectors.model_version_get(model=model, version=version)
    if request.method == "POST":
        try:
            freed = services.model_version_delete(actor=request.user, version=model_version)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect(
                "model-version", workspace_id=workspace.pk, model_id=model.pk, version=model_version.version
            )
        messages.success(request, f"{model_version} deleted; {freed:,} bytes freed.")
        return redirect("model-list", workspace_id=workspace.pk)
    return render_page(request, "training/models/delete.html", workspace, model=model, version=model_version)


@require_POST
def job_register(request, workspace_id, job_id):
    """Register a job's model (a train job, an Automated ML trial or its final model)."""
    workspace = page_workspace(request, workspace_id, write=True)
    job = job_get(workspace=workspace, job_id=job_id)
    try:
        version = services.model_register(
            actor=request.user,
            job=services.registration_source(job),
            name=request.POST.get("name", ""),
            description=request.POST.get("description", ""),
            aliases=request.POST.get("aliases", ""),
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("job-detail", workspace_id=workspace.pk, job_id=job.pk)
    messages.success(request, f"Registered {version}.")
    return redirect("model-version", workspace_id=workspace.pk, model_id=version.model_id, version=version.version)


@csrf_exempt  # checked below on the X-CSRFToken header, before the body is read (R9)
@require_http_methods(["GET", "POST"])
def model_upload(request, workspace_id):
    """Register a model from a file. The page's script sends the form with its CSRF token in a
    header and gets JSON: the new version's URL (201), or the errors by field."""
    if request.method == "POST":
        reason = csrf_refusal(request)
        if reason:
            return JsonResponse({"errors": {"file": [csrf_refusal_message(reason)]}}, status=403)
    workspace = page_workspace(request, workspace_id, write=True)
    if request.method == "GET":
        form = ModelUploadForm(workspace=workspace)
        return render_page(request, "training/models/upload.html", workspace, form=form)
    try:
        with model_upload_admitted(request, workspace=workspace):
            return _model_upload_post(request, workspace)
    except UploadRefused as exc:
        return JsonResponse({"errors": {"file": [exc.message]}}, status=exc.status)


def _model_upload_post(request, workspace):
    form = ModelUploadForm(request.POST, request.FILES, workspace=workspace)  # streams the file to staging
    if request.upload_too_large:
        return JsonResponse({"errors": {"file": [too_large_message()]}}, status=413)
    if form.is_valid():
        values = form.cleaned_data
        try:
            version = registry_imports.model_import(
                actor=request.user,
                workspace=workspace,
                name=values["name"],
                path=values["file"].path,
                filename=values["file"].name or "",
                description=values["description"],
                data_version=form.versions.get(values["data_version"]),
                signature=values["signature"] or None,
                target_column=values["target_column"],
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Registered {version}.")
            url = reverse("model-version", args=[workspace.pk, version.model_id, version.version])
            return JsonResponse({"url": url, "version": version.version}, status=201)
    return JsonResponse({"errors": {k: [str(m) for m in v] for k, v in form.errors.items()}}, status=400)
