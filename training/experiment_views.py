"""Experiment pages: the list, an experiment's run table (chosen metric and parameter columns,
sortable, live while a run is active) and the compare view of a few of its runs."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import QueryDict
from django.shortcuts import redirect
from django.views.decorators.http import require_http_methods

from studio.forms_errors import add_service_errors
from workspaces.pages import page_workspace, render_page

from . import experiment_selectors as selectors
from .charts import metric_history_chart
from .experiment_services import experiment_create
from .forms import ExperimentForm

DEFAULT_METRIC_COLUMNS = 4


@require_http_methods(["GET", "POST"])
def experiment_list(request, workspace_id):
    workspace = page_workspace(request, workspace_id)
    form = ExperimentForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            experiment = experiment_create(actor=request.user, workspace=workspace, **form.cleaned_data)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Experiment {experiment.name} created.")
            return redirect("experiment-detail", workspace_id=workspace.pk, experiment_id=experiment.pk)
    experiments = selectors.experiment_list_with_runs(workspace=workspace)
    page = Paginator(experiments, 50).get_page(request.GET.get("page"))
    return render_page(request, "training/experiment_list.html", workspace, page=page, form=form)


def experiment_detail(request, workspace_id, experiment_id):
    workspace = page_workspace(request, workspace_id)
    experiment = selectors.experiment_get(workspace=workspace, experiment_id=experiment_id)
    trials = request.GET.get("trials") == "1"
    try:
        sort = selectors.run_sort_parse(request.GET.get("sort"))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        sort = selectors.run_sort_parse(selectors.DEFAULT_SORT)
    metric_choices, param_choices = selectors.run_columns(experiment=experiment, trials=trials)
    if "cols" in request.GET:  # the column picker was used: exactly what it asks for
        metrics = selectors.run_columns_chosen(request.GET.getlist("metrics"), metric_choices)
        params = selectors.run_columns_chosen(request.GET.getlist("params"), param_choices)
    else:
        metrics, params = metric_choices[:DEFAULT_METRIC_COLUMNS], []
    runs = selectors.experiment_runs(experiment=experiment, sort=sort, trials=trials)
    page = Paginator(runs, selectors.RUNS_PER_PAGE).get_page(request.GET.get("page"))
    page.object_list = selectors.runs_attach_values(page.object_list, metrics=metrics, params=params)
    state = _table_query(trials=trials, metrics=metrics, params=params, sort=sort.value)
    context = {
        "experiment": experiment,
        "page": page,
        "sort": sort,
        "trials": trials,
        "metrics": metrics,
        "params": params,
        "metric_choices": metric_choices,
        "param_choices": param_choices,
        "query": state.urlencode(),
        "headers": _headers(state, sort, metrics, params),
        "any_active": any(job.is_active for job in page.object_list),
    }
    template = "training/_experiment_runs.html" if request.htmx else "training/experiment_detail.html"
    return render_page(request, template, workspace, **context)


def experiment_compare(request, workspace_id, experiment_id):
    workspace = page_workspace(request, workspace_id)
    experiment = selectors.experiment_get(workspace=workspace, experiment_id=experiment_id)
    ids = request.GET.getlist("ids")
    if len(ids) < 2:
        messages.error(request, "Pick at least two runs to compare.")
        return redirect("experiment-detail", workspace_id=workspace.pk, experiment_id=experiment.pk)
    try:
        runs = selectors.compare_runs(experiment=experiment, ids=ids)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("experiment-detail", workspace_id=workspace.pk, experiment_id=experiment.pk)
    x = "time" if request.GET.get("x") == "time" else "step"
    comparison = selectors.run_comparison(runs=runs)
    names = {run.pk: f"{run.name} #{run.pk}" for run in runs}
    colours = {run.pk: index for index, run in enumerate(runs)}
    charts = [
        (name, metric_history_chart(name=name, histories=per_run, labels=names, colours=colours, x=x))
        for name, per_run in comparison.histories.items()
    ]
    query = QueryDict(mutable=True)
    query.setlist("ids", [str(run.pk) for run in runs])
    context = {
        "experiment": experiment,
        "comparison": comparison,
        "runs": runs,
        "charts": charts,
        "x": x,
        "ids_query": query.urlencode(),
        "any_active": comparison.any_active,
    }
    if request.htmx:
        response = render_page(request, "training/_experiment_compare.html", workspace, **context)
        if not comparison.any_active:
            response.status_code = 286  # htmx stops polling once every run has finished
        return response
    return render_page(request, "training/experiment_compare.html", workspace, **context)


def _table_query(*, trials: bool, metrics: list[str], params: list[str], sort: str) -> QueryDict:
    """The run table's state as a query string: its columns, sort and the trials toggle."""
    query = QueryDict(mutable=True)
    query["cols"] = "1"
    query.setlist("metrics", metrics)
    query.setlist("params", params)
    if trials:
        query["trials"] = "1"
    query["sort"] = sort
    return query


def _headers(state: QueryDict, sort, metrics: list[str], params: list[str]) -> list[dict]:
    """Each column's header: its label, the link that sorts by it, and its arrow if sorted by it."""
    columns = [("Run", "name", False), ("Status", "status", False), ("Kind", "kind", False)]
    columns += [("Created", "created", False), ("Duration", "duration", True)]
    columns += [(name, selectors.METRIC_PREFIX + name, True) for name in metrics]
    columns += [(key, selectors.PARAM_PREFIX + key, False) for key in params]
    headers = []
    for label, column, numeric in columns:
        query = state.copy()
        query["sort"] = sort.toggled(column)
        arrow = ("▼" if sort.descending else "▲") if column == sort.column else ""
        kind = "metric" if column.startswith(selectors.METRIC_PREFIX) else ""
        kind = "param" if column.startswith(selectors.PARAM_PREFIX) else kind
        headers.append(
            {"label": label, "href": "?" + query.urlencode(), "arrow": arrow, "numeric": numeric, "kind": kind}
        )
    return headers
