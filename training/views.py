"""Job pages: list, submit, detail with live status and log, cancel/retry/clone/delete, compare."""

import json

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from compute.jobs import kinds, services
from compute.jobs import selectors as job_selectors
from compute.jobs.models import JobStatus
from compute.selectors import job_targets
from data.selectors import data_version_get_by_id
from studio.charts import line_chart
from studio.forms_errors import add_service_errors
from training.models import TrainingJobKind
from workspaces.pages import page_workspace, render_page

from . import downloads, selectors
from .automl_forms import REGRESSION_METRIC_LABELS
from .automl_views import automl_context
from .charts import result_figures
from .ml.tasks import REGRESSION, TASKS
from .submit_forms import SUBMIT_FORMS, submit_form_class


def job_list(request, workspace_id):
    workspace = page_workspace(request, workspace_id)
    filters = {key: request.GET.get(key, "") for key in job_selectors.JOB_FILTERS}
    if not filters["parent"] and not filters["kind"]:
        filters["parent"] = "none"  # trials are listed under their run, unless their kind is asked for
    page = Paginator(job_selectors.job_list(workspace=workspace, filters=filters), 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    template = "training/_job_table.html" if request.htmx else "training/job_list.html"
    return render_page(
        request,
        template,
        workspace,
        page=page,
        filters=filters,
        query=query.urlencode(),
        statuses=JobStatus.choices,
        kinds=kinds.CHOICES,
        experiments=selectors.experiment_list(workspace=workspace),
        any_active=any(job.is_active for job in page.object_list),
    )


@require_http_methods(["GET", "POST"])
def job_submit(request, workspace_id):
    workspace = page_workspace(request, workspace_id, write=True)
    clone_of = request.GET.get("clone")
    source = job_selectors.job_get(workspace=workspace, job_id=clone_of) if clone_of else None
    if source is not None and source.kind not in SUBMIT_FORMS:
        clone_url = job_clone_url(workspace, source)
        if clone_url:
            return redirect(clone_url)  # a kind with its own form (Automated ML: the wizard)
        reason = kinds.handler_for(source.kind).clone_hint
        messages.error(request, f"{source.get_kind_display()} jobs cannot be cloned: {reason}")
        return redirect("job-detail", workspace_id=workspace.pk, job_id=source.pk)
    kind = request.POST.get("kind") or request.GET.get("kind") or (source.kind if source else TrainingJobKind.TRAIN)
    form_class = submit_form_class(kind)
    if form_class is None:
        raise Http404("Unknown job kind.")
    targets = list(job_targets(workspace=workspace, user=request.user))
    if source and source.kind == kind:
        initial = form_class.initial_from_job(source)
    else:  # a link may preselect fields (the model page's "Batch score…": ?model_version_id=)
        initial = {key: value for key, value in request.GET.items() if key in form_class.base_fields}
    form = form_class(request.POST or None, targets=targets, workspace=workspace, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            job = services.job_submit(
                actor=request.user,
                workspace=workspace,
                kind=form.kind,
                target=form.targets.get(data["target"]),
                spec=form.spec(),
                experiment_name=data.get("experiment_name"),
                display_name=data.get("display_name"),
                time_limit_seconds=data.get("time_limit_seconds"),
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"{job.name} submitted to {job.target.name}.")
            return redirect("job-detail", workspace_id=workspace.pk, job_id=job.pk)
    return render_page(
        request,
        "training/job_submit.html",
        workspace,
        form=form,
        kind=kind,
        kind_label=kinds.kind_label(kind),
        kinds=[(k, kinds.kind_label(k)) for k in SUBMIT_FORMS],
        no_targets=not targets,
    )


def job_clone_url(workspace, job) -> str | None:
    """Where "Clone and edit" opens for this job's kind, or None for kinds no form submits."""
    if job.kind == TrainingJobKind.AUTOML:
        return reverse("automl-new", args=[workspace.pk]) + f"?clone={job.pk}"
    if job.kind in SUBMIT_FORMS and not job.parent_id:
        return reverse("job-submit", args=[workspace.pk]) + f"?clone={job.pk}"
    return None


def _metric_charts(job) -> list[tuple[str, dict]]:
    series = job_selectors.job_metrics(jobs=[job]).get(job.pk, {})
    charts = []
    for name, points in series.items():
        if len(points) > 1:
            steps, values = zip(*points, strict=True)
            charts.append((name, line_chart(series={name: (list(steps), list(values))}, x_title="step", y_title=name)))
    return charts


def _result_charts(job) -> list:
    """The charts a train job saved (charts.json): a classification's confusion matrix and ROC
    curve, a regression's predicted vs actual and residuals."""
    artifact = job_selectors.job_artifacts(job=job).filter(name="charts.json").first()
    if artifact is None:
        return []
    chart = job_selectors.job_json_artifact(job=job, name=artifact.name)
    if chart is None:
        return []

    return result_figures(chart)


def _regression_metrics(job) -> list[tuple[str, float | None]]:
    """A regression job's six metrics with their labels: a train job's on validation, a final
    model's on the test split, a trial's on its validation folds."""
    result = job.result or {}
    metrics = result.get("metrics") or result.get("test_metrics") or (result.get("trial_result") or {}).get("metrics")
    if not metrics:
        return []
    return [(label, metrics.get(name)) for name, label in REGRESSION_METRIC_LABELS.items()]


def job_detail(request, workspace_id, job_id):
    workspace = page_workspace(request, workspace_id)
    job = job_selectors.job_get(workspace=workspace, job_id=job_id)
    task = selectors.job_task(job)
    completed = job.status == JobStatus.COMPLETED
    context = {
        "result_charts": _result_charts(job) if completed else [],
        "task": task,
        "task_label": TASKS.get(task, ""),
        "regression_metrics": _regression_metrics(job) if completed and task == REGRESSION else [],
        "job": job,
        "events": job_selectors.job_events(job=job),
        "artifacts": job_selectors.job_artifacts(job=job),
        "metric_charts": _metric_charts(job),
        "params": job_selectors.job_params(job),  # what the job's code logged (MLflow's log_param)
        "last_values": {
            name: points[-1][1] for name, points in job_selectors.job_metrics(jobs=[job]).get(job.pk, {}).items()
        },
        "spec_json": json.dumps(job.public_spec, indent=2, sort_keys=True),
        "result_json": json.dumps(job.result, indent=2, sort_keys=True),
        "clone_url": job_clone_url(workspace, job),
    }
    if job.result.get("output_data_version_id"):  # a batch scoring job's predictions
        context["output_version"] = _output_version(workspace, job.result["output_data_version_id"])
    if job.kind == TrainingJobKind.AUTOML:
        context.update(automl_context(job))
    handler = kinds.handler_for(job.kind)
    if handler.page_template:  # a kind's own sections (a command job's code, inputs, outputs)
        context.update(handler.page_context(job), kind_template=handler.page_template)
    if request.htmx and request.GET.get("part") == "live":
        response = render_page(request, "training/_job_live.html", workspace, live=True, **context)
        if not job.is_active:
            response.status_code = 286  # htmx stops polling; the swap replaces the actions (no Cancel)
        return response
    return render_page(request, "training/job_detail.html", workspace, **context)


def _output_version(workspace, version_id):
    """The data version a batch scoring job wrote, or None once it was deleted."""
    try:
        return data_version_get_by_id(workspace=workspace, version_id=version_id)
    except Http404:
        return None


def job_log(request, workspace_id, job_id):
    """New log lines after `after`, and a poller for more while the job is active (htmx)."""
    workspace = page_workspace(request, workspace_id)
    job = job_selectors.job_get(workspace=workspace, job_id=job_id)
    try:
        after = max(0, int(request.GET.get("after", 0)))
    except ValueError:
        after = 0
    lines = job_selectors.job_log(job=job, after=after)
    last = lines[-1].seq if lines else after
    return render_page(request, "training/_job_log.html", workspace, job=job, lines=lines, last=last)


@require_POST
def job_action(request, workspace_id, job_id, action):
    workspace = page_workspace(request, workspace_id, write=True)
    job = job_selectors.job_get(workspace=workspace, job_id=job_id)
    actions = {"cancel": (services.job_cancel, "Cancel requested for"), "retry": (services.job_retry, "Retrying")}
    if action not in actions:
        raise Http404()
    service, verb = actions[action]
    try:
        service(actor=request.user, job=job)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{verb} {job.name}.")
    return redirect("job-detail", workspace_id=workspace.pk, job_id=job.pk)


@require_http_methods(["GET", "POST"])
def job_delete(request, workspace_id, job_id):
    workspace = page_workspace(request, workspace_id, write=True)
    job = job_selectors.job_get(workspace=workspace, job_id=job_id)
    if request.method == "POST":
        try:
            freed = services.job_delete(actor=request.user, job=job)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect("job-detail", workspace_id=workspace.pk, job_id=job.pk)
        messages.success(request, f"{job.name} deleted; {freed:,} bytes of artifacts freed.")
        return redirect("job-list", workspace_id=workspace.pk)
    return render_page(request, "training/job_delete.html", workspace, job=job)


def artifact_download(request, workspace_id, job_id, artifact_id):
    """Files leave only through this permission-checked view; the path comes from the rows (R1)."""
    workspace = page_workspace(request, workspace_id)
    job = job_selectors.job_get(workspace=workspace, job_id=job_id)
    artifact = job_selectors.artifact_get(job=job, artifact_id=artifact_id)
    return downloads.artifact_download(job, artifact)


def job_compare(request, workspace_id):
    workspace = page_workspace(request, workspace_id)
    ids = request.GET.getlist("ids")
    if len(ids) < 2:
        messages.error(request, "Pick at least two jobs to compare.")
        return redirect("job-list", workspace_id=workspace.pk)
    jobs = selectors.jobs_for_compare(workspace=workspace, ids=ids)
    param_keys = sorted({key for job in jobs for key in _flat(job.public_spec)})
    params = [(key, [_flat(job.public_spec).get(key, "") for job in jobs]) for key in param_keys]
    metric_keys = sorted({key for job in jobs for key, value in job.result.items() if isinstance(value, (int, float))})
    results = [(key, [job.result.get(key, "") for job in jobs]) for key in metric_keys]
    series = job_selectors.job_metrics(jobs=jobs)
    names = sorted({name for per_job in series.values() for name in per_job})
    charts = []
    for name in names:
        lines = {}
        for job in jobs:
            points = series.get(job.pk, {}).get(name)
            if points:
                steps, values = zip(*points, strict=True)
                lines[job.name] = (list(steps), list(values))
        charts.append((name, line_chart(series=lines, x_title="step", y_title=name)))
    return render_page(
        request, "training/job_compare.html", workspace, jobs=jobs, params=params, results=results, charts=charts
    )


def _flat(spec: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in spec.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value if not isinstance(value, list) else ", ".join(map(str, value))
    return out
