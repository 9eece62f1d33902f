"""Endpoint pages: list, create, details (deployments, traffic, keys), Test, Consume, Monitoring,
the per-endpoint OpenAPI document."""

import json
import pprint
import shlex
import time

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import JsonResponse
from django.shortcuts import redirect
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from compute.models import ComputeTarget, TargetKind
from compute.selectors import job_targets
from data.selectors import data_version_newest_of_asset
from studio.api.errors import error_body
from studio.charts import figure_data
from studio.forms_errors import add_service_errors
from studio.ids import parse_id
from training.ml.tasks import FORECASTING
from training.registry_selectors import (
    model_version_get_by_id,
    model_version_json_file,
    model_versions_in_workspace,
)
from workspaces.pages import page_workspace, render_page
from workspaces.policy import Action
from workspaces.selectors import workspace_get_for_user

from . import selectors, services, serving
from .forecast_samples import forecast_examples
from .forms import BatchScoreJobForm, DeploymentForm, EndpointForm, ScalingForm
from .openapi import endpoint_openapi


def _inference_targets(workspace):
    return ComputeTarget.objects.filter(workspace=workspace, kind=TargetKind.INFERENCE).order_by("name")


@require_http_methods(["GET", "POST"])
def endpoint_list(request, workspace_id):
    workspace = page_workspace(request, workspace_id)
    form = EndpointForm(request.POST or None, offer_inference_cluster=not _inference_targets(workspace).exists())
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        cluster_name = data.pop("inference_cluster", "").strip()
        if not data.pop("create_inference_cluster", False):
            cluster_name = ""
        try:
            if cluster_name:
                created = services.endpoint_create_with_cluster(
                    actor=request.user, workspace=workspace, cluster_name=cluster_name, **data
                )
            else:
                created = services.endpoint_create(actor=request.user, workspace=workspace, **data)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            request.session[f"endpoint-keys-{created.endpoint.pk}"] = [created.primary, created.secondary]
            deploy = request.POST.get("deploy")
            url = reverse("endpoint-detail", args=[workspace.pk, created.endpoint.pk])
            return redirect(url + (f"?deploy={deploy}" if deploy else ""))
    endpoints = list(selectors.endpoint_list(workspace=workspace))
    health = {h.endpoint.pk: h for h in selectors.endpoints_health(endpoints=endpoints)}
    return render_page(
        request,
        "endpoints/list.html",
        workspace,
        form=form,
        endpoints=endpoints,
        health=health,
        deploy=request.GET.get("deploy", ""),
    )


def endpoint_detail(request, workspace_id, endpoint_id):
    workspace = page_workspace(request, workspace_id)
    endpoint = selectors.endpoint_get(workspace=workspace, endpoint_id=endpoint_id)
    scoring_url = request.build_absolute_uri(reverse("score", args=[endpoint.name]))
    keys = request.session.pop(f"endpoint-keys-{endpoint.pk}", None)
    if keys:
        # Keys are shown once: this page offers one way on, after the user has copied them.
        deploy = parse_id(request.GET.get("deploy"))
        continue_url = reverse("endpoint-detail", args=[workspace.pk, endpoint.pk])
        continue_url += f"?deploy={deploy}" if deploy else ""
        return render_page(
            request,
            "endpoints/keys.html",
            workspace,
            endpoint=endpoint,
            keys=keys,
            scoring_url=scoring_url,
            continue_url=continue_url,
        )
    tab = request.GET.get("tab", "details")
    deployments = list(endpoint.deployments.all())
    context = {
        "endpoint": endpoint,
        "deployments": deployments,
        "tab": tab,
        "scoring_url": scoring_url,
    }
    if tab == "details":
        live = [d for d in deployments if endpoint.traffic.get(d.name, 0) > 0]
        live_version = max(live, key=lambda d: endpoint.traffic[d.name]).model_version if live else None
        initial_version = request.GET.get("deploy")
        form = DeploymentForm(
            versions=model_versions_in_workspace(workspace=workspace),
            targets=_inference_targets(workspace),
            initial={
                "model_version": parse_id(initial_version),
                "name": "blue" if not deployments else "green",
            },
        )
        context.update(
            deploy_form=form,
            has_inference=_inference_targets(workspace).exists(),
            traffic=[(d, endpoint.traffic.get(d.name, 0)) for d in deployments],
            live_version=live_version,
            batch_form=_batch_score_form(request, workspace, live_version) if live_version else None,
        )
    elif tab in ("test", "consume") and deployments:
        deployment = next((d for d in deployments if endpoint.traffic.get(d.name)), deployments[0])
        reference = model_version_json_file(version=deployment.model_version, name="reference_profile.json")
        signature = deployment.model_version.signature
        if signature.get("task") == "forecasting":
            # a forecasting model takes a body, not rows: {} (the stored history) or a series' history
            examples = forecast_examples(signature, reference)
            context.update(
                forecasting=True,
                forecast=signature.get("forecast") or {},
                curl_body=_curl_body(examples["stored"]),
                stored_json=json.dumps(examples["stored"], indent=2, ensure_ascii=False),
                history_json=json.dumps(examples["history"], indent=2, ensure_ascii=False),
                history_python=_python_literal(examples["history"]),
                test_deployment=deployment,
            )
        else:
            sample = serving.sample_row(signature, reference)
            rows = json.loads(json.dumps([sample], default=str))  # as a client sends them (times as text)
            context.update(
                sample=sample,
                curl_body=_curl_body(rows),
                sample_python=_python_literal(rows),
                signature_columns=signature.get("columns", []),
                test_deployment=deployment,
            )
    elif tab == "monitoring":
        range_name = request.GET.get("range", "hour")
        data = selectors.monitoring(endpoint=endpoint, range_name=range_name)
        context.update(
            range_name=range_name,
            monitoring=data,
            charts=_monitoring_charts(data),
            health=selectors.endpoint_health(endpoint=endpoint),
        )
    if request.htmx and tab == "monitoring":
        return render_page(request, "endpoints/_monitoring.html", workspace, **context)
    return render_page(request, "endpoints/detail.html", workspace, **context)


def _curl_body(body) -> str:
    """A request body as one shell word for curl's -d: a value with a quote in it ("O'Brien") stays whole."""
    return shlex.quote(json.dumps(body, ensure_ascii=False))


def _python_literal(value) -> str:
    """A JSON body as Python source (None, True, not null, true), for the Python snippet."""
    return pprint.pformat(value, indent=2, width=100, sort_dicts=False)


def _batch_score_form(request, workspace, model_version):
    """The Jobs page's batch scoring form, preset to the model the endpoint serves (it posts there)."""
    targets = list(job_targets(workspace=workspace, user=request.user))
    forecasting = model_version.task == FORECASTING
    initial = {"model_version_id": model_version.pk}
    if not forecasting and model_version.data_version_id:
        # New rows usually come as new versions of the data the model learnt from: its newest, to start with.
        newest = data_version_newest_of_asset(workspace=workspace, version_id=model_version.data_version_id)
        initial["data_version_id"] = newest.pk if newest else None
    return BatchScoreJobForm(targets=targets, workspace=workspace, initial=initial, forecasting=forecasting)


def _monitoring_charts(data) -> dict:
    import plotly.graph_objects as go  # deferred: plotly takes ~0.5 s to import; only chart pages use it

    charts = {}
    if not data.series:
        return charts
    x = [t.isoformat() for t in data.times]
    fig = go.Figure()
    for name, s in data.series.items():
        fig.add_trace(go.Bar(x=x, y=s["ok"], name=f"{name} 2xx"))
        if any(s["4xx"]):
            fig.add_trace(go.Bar(x=x, y=s["4xx"], name=f"{name} 4xx"))
        if any(s["5xx"]):
            fig.add_trace(go.Bar(x=x, y=s["5xx"], name=f"{name} 5xx"))
    fig.update_layout(barmode="stack", yaxis_title="requests")
    charts["requests"] = figure_data(fig)
    fig = go.Figure()
    for name, s in data.series.items():
        for label in ("p50", "p90", "p95", "p99"):
            # Markers too: a minute with traffic between two empty ones is a point, not a line.
            fig.add_trace(go.Scatter(x=x, y=s[label], mode="lines+markers", name=f"{name} {label}", connectgaps=False))
    fig.update_layout(yaxis_title="latency (ms, bucket upper edge)", yaxis_type="log")
    charts["latency"] = figure_data(fig)
    fig = go.Figure([go.Bar(x=x, y=s["rows"], name=name) for name, s in data.series.items()])
    fig.update_layout(barmode="stack", yaxis_title="rows scored")
    charts["rows"] = figure_data(fig)
    predicted = [(name, st.predicted) for name, st in data.deployments.items() if st.predicted]
    if predicted:
        fig = go.Figure([go.Bar(x=list(p.keys()), y=list(p.values()), name=name) for name, p in predicted])
        fig.update_layout(barmode="group", yaxis_title="rows predicted")
        charts["predicted"] = figure_data(fig)
    for name, st in data.deployments.items():
        if st.prediction_drift and st.prediction_drift["observed"]:
            charts.setdefault("prediction_bins", {})[name] = _prediction_bins_chart(go, st.prediction_drift)
    return charts


def _prediction_bins_chart(go, drift: dict) -> dict:
    """A regression's served predictions beside its training target, share per bin."""
    edges = drift["edges"]
    labels = (
        [f"≤ {edges[0]:,.4g}"]
        + [f"{low:,.4g} – {high:,.4g}" for low, high in zip(edges, edges[1:], strict=False)]
        + [f"> {edges[-1]:,.4g}" if edges else "all", "missing"]
    )
    fig = go.Figure(
        [
            go.Bar(x=labels, y=drift["expected"], name="training target"),
            go.Bar(x=labels, y=drift["observed"], name="served predictions"),
        ]
    )
    fig.update_layout(barmode="group", yaxis_title="share of rows", yaxis_tickformat=".0%")
    return figure_data(fig)


@require_POST
def endpoint_test(request, workspace_id, endpoint_id):
    """Score a payload from the Test tab as the signed-in user (no key; nothing is recorded)."""
    # Testing changes nothing, so a Reader may test too.
    workspace = workspace_get_for_user(user=request.user, workspace_id=workspace_id, action=Action.VIEW)
    endpoint = selectors.endpoint_get(workspace=workspace, endpoint_id=endpoint_id)
    runtime = serving.configs.get(endpoint.name)
    if runtime is None:
        return JsonResponse(error_body("no_deployment", "No deployment takes traffic yet."), status=503)
    started = time.perf_counter()
    outcome = serving.score_request(
        runtime,
        body=request.POST.get("payload") or "",
        started=started,
        pinned=request.POST.get("deployment") or None,
        pinned_field="deployment",
        record=False,
    )
    if outcome.status != 200:
        return JsonResponse(outcome.body, status=outcome.status)
    return JsonResponse({**outcome.body, "milliseconds": round((time.perf_counter() - started) * 1000, 2)})


def endpoint_openapi_view(request, workspace_id, endpoint_id):
    workspace = page_workspace(request, workspace_id)
    endpoint = selectors.endpoint_get(workspace=workspace, endpoint_id=endpoint_id)
    url = request.build_absolute_uri(reverse("score", args=[endpoint.name]))
    return JsonResponse(endpoint_openapi(endpoint, url), json_dumps_params={"indent": 2})


@require_POST
def deployment_create(request, workspace_id, endpoint_id):
    workspace = page_workspace(request, workspace_id, write=True)
    endpoint = selectors.endpoint_get(workspace=workspace, endpoint_id=endpoint_id)
    form = DeploymentForm(
        request.POST, versions=model_versions_in_workspace(workspace=workspace), targets=_inference_targets(workspace)
    )
    if not form.is_valid():
        messages.error(request, "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
    else:
        data = form.cleaned_data
        try:
            deployment = services.deployment_create(
                actor=request.user,
                endpoint=endpoint,
                name=data["name"],
                model_version=model_version_get_by_id(workspace=workspace, version_id=data["model_version"]),
                target=ComputeTarget.objects.get(pk=data["target"], workspace=workspace),
                replicas=data["replicas"],
                autoscale=form.autoscale_settings(),
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(
                request, f"Deployed {deployment.model_version} as {deployment.name}: {deployment.status_reason}."
            )
    return redirect("endpoint-detail", workspace_id=workspace.pk, endpoint_id=endpoint.pk)


@require_POST
def deployment_scale(request, workspace_id, endpoint_id, deployment_id):
    workspace = page_workspace(request, workspace_id, write=True)
    endpoint = selectors.endpoint_get(workspace=workspace, endpoint_id=endpoint_id)
    deployment = selectors.deployment_get(endpoint=endpoint, deployment_id=deployment_id)
    form = ScalingForm(request.POST)
    if not form.is_valid():
        messages.error(request, "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
        return redirect("endpoint-detail", workspace_id=workspace.pk, endpoint_id=endpoint.pk)
    autoscale = form.autoscale_settings()
    try:
        deployment = services.deployment_update(
            actor=request.user,
            deployment=deployment,
            replicas=None if autoscale else form.cleaned_data["replicas"],
            autoscale=autoscale,
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        scaling = (
            f"autoscales between {deployment.min_replicas} and {deployment.max_replicas} replicas"
            if deployment.autoscales
            else f"has {deployment.replicas} replica{pluralize(deployment.replicas)}"
        )
        messages.success(request, f"{deployment.name} {scaling}.")
    return redirect("endpoint-detail", workspace_id=workspace.pk, endpoint_id=endpoint.pk)


@require_POST
def deployment_delete(request, workspace_id, endpoint_id, deployment_id):
    workspace = page_workspace(request, workspace_id, write=True)
    endpoint = selectors.endpoint_get(workspace=workspace, endpoint_id=endpoint_id)
    deployment = selectors.deployment_get(endpoint=endpoint, deployment_id=deployment_id)
    try:
        services.deployment_delete(actor=request.user, deployment=deployment)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Deployment {deployment.name} removed.")
    return redirect("endpoint-detail", workspace_id=workspace.pk, endpoint_id=endpoint.pk)


@require_POST
def traffic_update(request, workspace_id, endpoint_id):
    workspace = page_workspace(request, workspace_id, write=True)
    endpoint = selectors.endpoint_get(workspace=workspace, endpoint_id=endpoint_id)
    try:
        traffic = {d.name: int(request.POST.get(f"traffic_{d.pk}") or 0) for d in endpoint.deployments.all()}
        mirror_percent = int(request.POST.get("mirror_percent") or 0)
    except ValueError:
        messages.error(request, "Give whole percents.")
        return redirect(reverse("endpoint-detail", args=[workspace.pk, endpoint.pk]))
    try:
        services.traffic_set(
            actor=request.user,
            endpoint=endpoint,
            traffic=traffic,
            mirror_deployment=request.POST.get("mirror_deployment", ""),
            mirror_percent=mirror_percent,
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, "Traffic updated; it applies within a second.")
    return redirect("endpoint-detail", workspace_id=workspace.pk, endpoint_id=endpoint.pk)


@require_POST
def key_regenerate(request, workspace_id, endpoint_id):
    workspace = page_workspace(request, workspace_id, write=True)
    endpoint = selectors.endpoint_get(workspace=workspace, endpoint_id=endpoint_id)
    which = request.POST.get("which", "")
    try:
        keys = services.key_regenerate(actor=request.user, endpoint=endpoint, which=which)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        request.session[f"endpoint-keys-{endpoint.pk}"] = [keys.primary, keys.secondary]
        messages.success(request, f"New {which} key made; the old one stops working within a second.")
    return redirect("endpoint-detail", workspace_id=workspace.pk, endpoint_id=endpoint.pk)


@require_http_methods(["GET", "POST"])
def endpoint_delete(request, workspace_id, endpoint_id):
    workspace = page_workspace(request, workspace_id, write=True)
    endpoint = selectors.endpoint_get(workspace=workspace, endpoint_id=endpoint_id)
    if request.method == "POST":
        services.endpoint_delete(actor=request.user, endpoint=endpoint)
        messages.success(request, f"Endpoint {endpoint.name} deleted; its URL no longer answers.")
        return redirect("endpoint-list", workspace_id=workspace.pk)
    return render_page(request, "endpoints/delete.html", workspace, endpoint=endpoint)


def alerts(request, workspace_id):
    workspace = page_workspace(request, workspace_id)
    return render_page(
        request, "endpoints/alerts.html", workspace, alerts=selectors.alerts_for_workspace(workspace=workspace)
    )
