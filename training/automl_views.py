"""The Automated ML wizard, and the run page's leaderboard, guardrails, charts and importance."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from compute.jobs.models import JobStatus
from compute.jobs.selectors import job_get
from compute.selectors import job_targets
from data.selectors import data_version_get_by_id, data_versions_ready
from studio.charts import figure_data
from studio.forms_errors import add_service_errors
from studio.ids import parse_id
from training.models import TrainingJobKind
from workspaces.pages import render_page
from workspaces.policy import Action
from workspaces.selectors import workspace_get_for_user

from . import automl_services
from .automl_forms import METRIC_LABELS, AutoMLForm
from .automl_selectors import TaskSuggestion, automl_run_get, forecast_run_get, inferred_frequency, task_suggestion
from .charts import forecast_figures, result_figures
from .ml.columns import IMPUTE_STRATEGIES, SEMANTIC_TYPES
from .ml.tasks import FORECASTING, FORECASTING_PRIMARY_METRICS, REGRESSION, TASKS


def _overrides(request, version) -> dict:
    """Per-column featurization overrides posted by the wizard's column table."""
    out = {}
    for index, column in enumerate(version.schema.get("columns", []) if version else []):
        override = {}
        if request.POST.get(f"override_type_{index}"):
            override["type"] = request.POST[f"override_type_{index}"]
        if request.POST.get(f"override_impute_{index}"):
            override["impute"] = request.POST[f"override_impute_{index}"]
        if request.POST.get(f"override_exclude_{index}"):
            override["exclude"] = True
        if override:
            out[column["name"]] = override
    return out


@require_http_methods(["GET", "POST"])
def automl_new(request, workspace_id):
    workspace = workspace_get_for_user(user=request.user, workspace_id=workspace_id, action=Action.WRITE)
    versions = list(data_versions_ready(workspace=workspace)[:200])
    targets = [t for t in job_targets(workspace=workspace, user=request.user)]
    initial = {}
    clone_of = _automl_run(workspace, request.GET.get("clone"))
    if clone_of is not None:
        initial = AutoMLForm.initial_from_job(clone_of)
    if request.GET.get("data"):
        initial["data_version_id"] = request.GET["data"]
    # Choosing a task reloads the task's fields with the chosen data and target (htmx).
    initial |= {key: request.GET[key] for key in ("task", "data_version_id", "target_column") if request.GET.get(key)}
    chosen = request.POST or initial
    suggestion = _suggestion(versions, chosen.get("data_version_id"), chosen.get("target_column"))
    if suggestion is not None and "task" not in initial:
        initial["task"] = suggestion.task
    form = AutoMLForm(
        request.POST or None,
        versions=versions,
        targets=targets,
        initial=initial,
        mape=suggestion is None or not suggestion.may_have_zeros,
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        version = form.versions.get(data["data_version_id"])
        overrides = _overrides(request, version)
        overrides.pop(data["target_column"], None)
        try:
            job = automl_services.automl_submit(
                actor=request.user,
                workspace=workspace,
                target=form.targets.get(data["target"]),
                data_version=version,
                target_column=data["target_column"],
                task=data["task"],
                settings=form.settings(overrides),
                test_fraction=data["test_fraction"],
                seed=data["seed"],
                validation_data_version=form.versions.get(data.get("validation_data_version_id")),
                experiment_name=data.get("experiment_name"),
                display_name=data.get("display_name") or "",
                register_as=data.get("register_as") or "",
            )
        except ValidationError as exc:
            add_service_errors(form, _on_wizard_fields(exc))
        else:
            messages.success(request, f"Automated ML run {job.name} submitted to {job.target.name}.")
            return redirect("job-detail", workspace_id=workspace.pk, job_id=job.pk)
    return render_page(
        request,
        "training/automl_new.html",
        workspace,
        form=form,
        **_frequency_preview(form),
        suggestion=suggestion,
        clone_of=clone_of,
        no_targets=not targets,
        no_data=not versions,
    )


def _frequency_preview(form) -> dict:
    """The frequency inferred from a forecasting form's chosen time column (shown again after errors)."""
    chosen = form.data if form.is_bound else form.initial
    version = form.versions.get(parse_id(chosen.get("data_version_id")))
    time_column = chosen.get("time_column")
    if form.task_value != FORECASTING or version is None or not time_column:
        return {}
    inferred, error = inferred_frequency(version, time_column)
    return {"inferred": inferred, "inferred_error": error}


# The service names the spec's settings; the wizard asks for some of them under other names.
WIZARD_FIELDS = {"timeout_s": "timeout_minutes", "algorithms": "allowed_algorithms"}


def _on_wizard_fields(exc: ValidationError) -> ValidationError:
    if not hasattr(exc, "error_dict"):
        return exc
    return ValidationError({WIZARD_FIELDS.get(field, field): errors for field, errors in exc.message_dict.items()})


def _suggestion(versions, version_id, target_column) -> TaskSuggestion | None:
    """The task suggested for the chosen data's target column, if both are chosen."""
    version = next((v for v in versions if str(v.pk) == str(version_id)), None)
    return task_suggestion(version, target_column) if version is not None and target_column else None


def _automl_run(workspace, job_id):
    """The Automated ML run a wizard clones (None without an id; 404 for another kind of job)."""
    if not job_id:
        return None
    source = job_get(workspace=workspace, job_id=job_id)
    if source.kind != TrainingJobKind.AUTOML:
        raise Http404("Not an Automated ML run.")
    return source


def automl_columns(request, workspace_id):
    """htmx: the chosen data's target choices (with class balance) and per-column overrides;
    with ?only=target, just the target select (the Train form)."""
    workspace = workspace_get_for_user(user=request.user, workspace_id=workspace_id, action=Action.VIEW)
    chosen = request.GET.get("data_version_id", "")
    # No data chosen (a workspace without data has none to choose): an empty select, not a 404.
    version = data_version_get_by_id(workspace=workspace, version_id=chosen) if chosen else None
    schema, profile = (version.schema, version.profile) if version else ({}, {})
    columns = [c for c in schema.get("columns", []) if not c.get("excluded")]
    target = request.GET.get("target_column", "")
    if request.GET.get("only") == "target":  # the Train form's target select, for the chosen data
        return render(
            request,
            "training/_target_column_select.html",
            {"columns": columns, "target": target, "workspace": workspace},
        )
    profiles = {c["name"]: c for c in profile.get("column_profiles", [])}
    balance = profiles.get(target, {}).get("top_values", []) if target else []
    clone_of = _automl_run(workspace, request.GET.get("clone"))
    overrides = clone_of.spec.get("automl", {}).get("column_overrides", {}) if clone_of else {}
    total = sum(v["count"] for v in balance) or 1
    # A newly chosen target: its suggested task, with the metrics and algorithms of that task.
    suggestion = task_suggestion(version, target) if version and target else None
    task_form = None
    if suggestion is not None and request.headers.get("HX-Trigger") == "id_target_column":
        task_form = AutoMLForm(
            initial={"task": suggestion.task}, versions=[], targets=[], mape=not suggestion.may_have_zeros
        )
    return render(
        request,
        "training/_automl_columns.html",
        {
            "workspace": workspace,
            "version": version,
            "columns": list(enumerate(columns)),
            "target": target,
            "balance": [(v["value"], v["count"], v["count"] / total) for v in balance],
            "distinct": profiles.get(target, {}).get("distinct"),
            "types": SEMANTIC_TYPES,
            "overrides": overrides,
            "imputes": IMPUTE_STRATEGIES,
            "task_form": task_form,
            "suggestion": suggestion,
            "target_profile": profiles.get(target, {}),
        },
    )


def automl_frequency(request, workspace_id):
    """htmx: the frequency inferred from the chosen time column of the chosen data."""
    workspace = workspace_get_for_user(user=request.user, workspace_id=workspace_id, action=Action.VIEW)
    chosen, time_column = request.GET.get("data_version_id", ""), request.GET.get("time_column", "")
    inferred, error = None, ""
    if chosen and time_column:
        version = data_version_get_by_id(workspace=workspace, version_id=chosen)
        inferred, error = inferred_frequency(version, time_column)
    return render(request, "training/_automl_frequency.html", {"inferred": inferred, "inferred_error": error})


def automl_context(job) -> dict:
    """What the run page shows: the run's read model, with the final model's charts as figures."""
    if job.spec.get("task") == FORECASTING:
        return forecast_context(job)
    run = automl_run_get(job=job)
    context = {
        "task": run.task,
        "task_label": TASKS[run.task],
        "metric_label": METRIC_LABELS.get(run.metric, run.metric),
        "guardrails": run.guardrails,
        "leaderboard": run.leaderboard,
        "metric": run.metric,
        "infer_limit_ms": run.infer_limit_ms,
        "setup": run.setup,
        "final": run.final,
        "first_trial_s": run.first_trial_s,
        "n_trials": run.n_trials,
        "trials_done": run.trials_done,
    }
    if run.final is not None and run.final.status == JobStatus.COMPLETED:
        # a regression's metrics by their labels (R², MAE...); a classification's as they were named
        context["final_metrics"] = (
            [(METRIC_LABELS[name], value) for name, value in run.final_metrics]
            if run.task == REGRESSION
            else run.final_metrics
        )
        charts, importance = run.final_charts, run.final_importance
        context["charts"] = result_figures(charts, full=True) if charts is not None else []
        context["importance_chart"] = _importance_figure(importance) if importance is not None else None
    return context


def _importance_figure(rows: list[dict]) -> dict:
    import plotly.graph_objects as go  # deferred: plotly takes ~0.5 s to import; only chart pages use it

    rows = rows[:20][::-1]
    fig = go.Figure(
        go.Bar(
            x=[r["importance"] for r in rows],
            y=[r["feature"] for r in rows],
            orientation="h",
            error_x={"type": "data", "array": [r["std"] for r in rows]},
            marker_color="#3451d1",
        )
    )
    fig.update_layout(
        xaxis_title="drop in the primary metric when shuffled", height=max(260, 22 * len(rows)), margin={"l": 140}
    )
    return figure_data(fig)


def forecast_context(job) -> dict:
    """A forecasting run's page: guardrails, leaderboard, backtest metrics and forecast-vs-actual charts."""
    run = forecast_run_get(job=job)
    return {
        "task": FORECASTING,
        "task_label": TASKS[FORECASTING],
        "metric": run.metric,
        "metric_label": METRIC_LABELS.get(run.metric, run.metric),
        "forecast": run,
        # "missing_timestamps" -> "Missing timestamps"
        "guardrails": [{**g, "label": str(g.get("name", "")).replace("_", " ").capitalize()} for g in run.guardrails],
        # the leaderboard's metric columns besides the primary one (MASE, sMAPE, RMSE)
        "leaderboard_columns": [(m, METRIC_LABELS[m]) for m in ("mase", "smape", "rmse") if m != run.metric],
        "forecast_metrics": [
            (METRIC_LABELS[name], run.metrics.get(name)) for name in FORECASTING_PRIMARY_METRICS if name in run.metrics
        ],
        "forecast_charts": forecast_figures(run.windows, target=job.spec.get("target_column") or "value")
        if run.windows
        else [],
        "series_label": ", ".join(run.settings.get("series_columns") or []),
    }
