"""Data pages: asset list, upload (with a progress bar), imports from a URL or a datastore's query,
datastores, ingest status, versions with preview, profile charts and the schema editor, downloads."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.csrf import csrf_failure
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from data import selectors, services
from data.dataio import SEMANTIC_TYPES, Schema, read_page
from data.downloads import data_version_download, data_version_file
from data.forms import (
    DataImportQueryForm,
    DataImportS3Form,
    DataImportUrlForm,
    DatastoreForm,
    DatastoreS3Form,
    DataUploadForm,
)
from data.models import DatastoreKind
from data.uploads import UploadRefused, too_large_message, upload_admitted
from studio.charts import figure_data
from studio.csrf import csrf_refusal, csrf_refusal_message
from studio.forms_errors import add_service_errors
from workspaces.pages import page_workspace, render_page
from workspaces.services import StorageQuotaExceeded

PREVIEW_ROWS = 50


def data_list(request, workspace_id):
    workspace = page_workspace(request, workspace_id)
    q, sort = request.GET.get("q", ""), request.GET.get("sort", "-updated")
    page = Paginator(selectors.data_asset_list(workspace=workspace, q=q, sort=sort), 50).get_page(
        request.GET.get("page")
    )
    ingests = list(selectors.ingest_list(workspace=workspace)[:8])
    template = "workspaces/data/_ingests.html" if request.htmx else "workspaces/data/list.html"
    return render_page(
        request,
        template,
        workspace,
        page=page,
        q=q,
        sort=sort,
        ingests=ingests,
        any_ingest_active=any(i.status in ("queued", "running") for i in ingests),
    )


@csrf_exempt  # checked below on the X-CSRFToken header, before the body is read (R9)
@require_http_methods(["GET", "POST"])
def data_upload(request, workspace_id):
    wants_json = request.headers.get("Accept", "").startswith("application/json")
    if request.method == "POST":
        reason = csrf_refusal(request)
        if reason:
            if wants_json:
                return JsonResponse({"errors": {"file": [csrf_refusal_message(reason)]}}, status=403)
            return csrf_failure(request, reason=reason)
    workspace = page_workspace(request, workspace_id, write=True)
    if request.method == "GET":
        form = DataUploadForm(initial={"name": request.GET.get("name", "")})
        return _upload_page(request, workspace, form)
    try:
        with upload_admitted(request, workspace=workspace):
            return _data_upload_post(request, workspace, wants_json)
    except UploadRefused as exc:
        return _upload_error(request, workspace, {"file": [exc.message]}, wants_json, status=exc.status)


def _data_upload_post(request, workspace, wants_json):
    form = DataUploadForm(request.POST, request.FILES)  # parsing streams the file to staging
    if request.upload_too_large:
        return _upload_error(request, workspace, {"file": [too_large_message()]}, wants_json, status=413)
    if form.is_valid():
        try:
            ingest = services.data_upload(
                actor=request.user,
                workspace=workspace,
                upload=form.cleaned_data["file"],
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
                tags=form.cleaned_data["tags"],
                allow_identical=form.cleaned_data["allow_identical"],
            )
        except StorageQuotaExceeded as exc:
            return _upload_error(request, workspace, {"file": exc.messages}, wants_json, status=413)
        except services.IdenticalUpload as exc:
            same_as = _same_as(workspace, exc)
            if wants_json:
                return JsonResponse({"errors": {"file": exc.messages}, "same_as": same_as}, status=409)
            add_service_errors(form, exc)
            return _upload_page(request, workspace, form, status=409, same_as=same_as)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            url = reverse("data-ingest", args=[workspace.pk, ingest.pk])
            if wants_json:
                return JsonResponse({"ingest": ingest.pk, "url": url}, status=202)
            return redirect(url)
    if wants_json:
        return JsonResponse({"errors": {k: [str(m) for m in v] for k, v in form.errors.items()}}, status=400)
    return _upload_page(request, workspace, form)


def _same_as(workspace, identical) -> dict:
    """Where the identical data already is: the version, or the ingest still making it."""
    if identical.version is not None:
        version = identical.version
        url = reverse("data-version", args=[workspace.pk, version.asset_id, version.version])
        return {"version": version.version, "asset": version.asset_id, "url": url, "label": f"v{version.version}"}
    url = reverse("data-ingest", args=[workspace.pk, identical.ingest.pk])
    return {"ingest": identical.ingest.pk, "url": url, "label": f"upload #{identical.ingest.pk}"}


def _upload_page(request, workspace, form, status=200, same_as=None):
    assets = selectors.data_asset_list(workspace=workspace, sort="name").values_list("name", flat=True)
    response = render_page(
        request, "workspaces/data/upload.html", workspace, form=form, asset_names=list(assets), same_as=same_as
    )
    response.status_code = status
    return response


def _upload_error(request, workspace, errors, wants_json, status):
    if wants_json:
        return JsonResponse({"errors": errors}, status=status)
    form = DataUploadForm()
    for messages_ in errors.values():
        form.add_error(None, messages_)
    return _upload_page(request, workspace, form, status=status)


@require_http_methods(["GET", "POST"])
def data_import(request, workspace_id):
    """Import from a URL, a datastore's query or an S3 datastore's object: each form submits an ingest job."""
    workspace = page_workspace(request, workspace_id, write=True)
    stores = selectors.datastore_list(workspace=workspace)
    query_names = [d.name for d in stores if d.kind == DatastoreKind.POSTGRESQL]
    s3_names = [d.name for d in stores if d.kind == DatastoreKind.S3]
    source = request.POST.get("source") if request.method == "POST" else request.GET.get("source", "url")
    posted = request.POST if request.method == "POST" else None
    initial = {"datastore": request.GET.get("datastore", "")}
    forms = {
        "url": DataImportUrlForm(posted if source == "url" else None),
        "query": DataImportQueryForm(
            posted if source == "query" else None, datastore_names=query_names, initial=initial
        ),
        "s3": DataImportS3Form(posted if source == "s3" else None, datastore_names=s3_names, initial=initial),
    }
    source = source if source in forms else "url"
    form = forms[source]
    if request.method == "POST" and form.is_valid():
        values = form.cleaned_data
        common = {
            "actor": request.user,
            "workspace": workspace,
            "name": values["name"],
            "description": values["description"],
            "tags": values["tags"],
        }
        try:
            if source == "url":
                ingest = services.data_import_url(url=values["url"], **common)
            elif source == "query":
                datastore = stores.get(name=values["datastore"])
                ingest = services.data_import_query(datastore=datastore, query=values["query"], **common)
            else:
                datastore = stores.get(name=values["datastore"])
                ingest = services.data_import_s3(datastore=datastore, key=values["key"], **common)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            return redirect("data-ingest", workspace_id=workspace.pk, ingest_id=ingest.pk)
    assets = selectors.data_asset_list(workspace=workspace, sort="name").values_list("name", flat=True)
    response = render_page(
        request,
        "workspaces/data/import.html",
        workspace,
        url_form=forms["url"],
        query_form=forms["query"],
        s3_form=forms["s3"],
        source=source,
        datastore_names=query_names,
        s3_datastore_names=s3_names,
        asset_names=list(assets),
    )
    if request.method == "POST":
        response.status_code = 400
    return response


@require_http_methods(["GET", "POST"])
def datastore_list(request, workspace_id):
    """Datastores, what was imported from each, and forms to add one (PostgreSQL or S3)."""
    workspace = page_workspace(request, workspace_id)
    kind = request.POST.get("kind") if request.method == "POST" else None
    form = DatastoreForm(request.POST if kind != DatastoreKind.S3 and request.method == "POST" else None)
    s3_form = DatastoreS3Form(request.POST if kind == DatastoreKind.S3 else None)
    posted = s3_form if kind == DatastoreKind.S3 else form
    if request.method == "POST" and posted.is_valid():
        create = services.datastore_create_s3 if posted is s3_form else services.datastore_create
        try:
            datastore = create(actor=request.user, workspace=workspace, **posted.cleaned_data)
        except ValidationError as exc:
            add_service_errors(posted, exc)
        else:
            messages.success(request, f"Datastore {datastore.name} saved ({datastore.display}).")
            return redirect("data-datastores", workspace_id=workspace.pk)
    datastores = [
        (datastore, list(selectors.datastore_imports(datastore=datastore)[:20]))
        for datastore in selectors.datastore_list(workspace=workspace)
    ]
    response = render_page(
        request,
        "workspaces/data/datastores.html",
        workspace,
        form=form,
        s3_form=s3_form,
        datastores=datastores,
        url_imports=list(selectors.url_imports(workspace=workspace)[:20]),
    )
    if request.method == "POST":
        response.status_code = 400
    return response


@require_http_methods(["GET", "POST"])
def datastore_delete(request, workspace_id, datastore_id):
    workspace = page_workspace(request, workspace_id, write=True)
    datastore = selectors.datastore_get(workspace=workspace, datastore_id=datastore_id)
    if request.method == "POST":
        services.datastore_delete(actor=request.user, datastore=datastore)
        messages.success(request, f"Datastore {datastore.name} deleted; the versions imported from it stay.")
        return redirect("data-datastores", workspace_id=workspace.pk)
    return render_page(request, "workspaces/data/datastore_delete.html", workspace, datastore=datastore)


def ingest_detail(request, workspace_id, ingest_id):
    workspace = page_workspace(request, workspace_id)
    ingest = selectors.ingest_get(workspace=workspace, ingest_id=ingest_id)
    template = "workspaces/data/_ingest_status.html" if request.htmx else "workspaces/data/ingest.html"
    return render_page(request, template, workspace, ingest=ingest)


def asset_detail(request, workspace_id, asset_id):
    workspace = page_workspace(request, workspace_id)
    asset = selectors.data_asset_get(workspace=workspace, asset_id=asset_id)
    versions = selectors.data_version_list(asset=asset)
    return render_page(request, "workspaces/data/asset.html", workspace, asset=asset, versions=versions)


@require_http_methods(["GET", "POST"])
def asset_delete(request, workspace_id, asset_id):
    workspace = page_workspace(request, workspace_id, write=True)
    asset = selectors.data_asset_get(workspace=workspace, asset_id=asset_id)
    if request.method == "POST":
        try:
            freed = services.data_asset_delete(actor=request.user, asset=asset)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect("data-asset", workspace_id=workspace.pk, asset_id=asset.pk)
        messages.success(request, f"{asset.name} deleted; {freed:,} bytes freed.")
        return redirect("data-list", workspace_id=workspace.pk)
    return render_page(request, "workspaces/data/delete.html", workspace, asset=asset, version=None)


def _version(request, workspace_id, asset_id, version, write=False):
    workspace = page_workspace(request, workspace_id, write=write)
    asset = selectors.data_asset_get(workspace=workspace, asset_id=asset_id)
    return workspace, asset, selectors.data_version_get(asset=asset, version=version)


def _profile_charts(profile: dict) -> dict:
    """Plotly figures: one per column (histogram or top values) and missing values per column."""
    import plotly.graph_objects as go  # deferred: plotly takes ~0.5 s to import; only chart pages use it

    charts = {}
    columns = profile.get("column_profiles", [])
    if columns:
        fig = go.Figure(
            [
                go.Bar(
                    x=[c["name"] for c in columns],
                    y=[c.get("missing_pct") or 0 for c in columns],
                    marker_color="#c77d00",
                )
            ]
        )
        fig.update_layout(yaxis_title="% missing", yaxis_range=[0, 100])
        charts["missing"] = figure_data(fig)
    for index, column in enumerate(columns):
        histogram = column.get("histogram")
        if histogram and histogram.get("counts"):
            edges = histogram["edges"]
            fig = go.Figure([go.Bar(x=edges[:-1], y=histogram["counts"], marker_color="#3451d1")])
            fig.update_layout(bargap=0.02, height=220, margin={"l": 40, "r": 10, "t": 10, "b": 40})
            charts[f"col{index}"] = figure_data(fig)
        elif column.get("top_values"):
            top = column["top_values"]
            fig = go.Figure(
                [
                    go.Bar(
                        y=[str(v["value"]) for v in top][::-1],
                        x=[v["count"] for v in top][::-1],
                        orientation="h",
                        marker_color="#1f9d55",
                    )
                ]
            )
            fig.update_layout(height=220, margin={"l": 100, "r": 10, "t": 10, "b": 30})
            charts[f"col{index}"] = figure_data(fig)
    return charts


def version_detail(request, workspace_id, asset_id, version):
    workspace, asset, data_version = _version(request, workspace_id, asset_id, version)
    tab = request.GET.get("tab", "overview")
    context = {"asset": asset, "version": data_version, "tab": tab, "semantic_types": SEMANTIC_TYPES}
    schema = Schema.from_json(data_version.schema)
    context["columns"] = schema.columns
    if tab == "preview":
        context.update(_preview(data_version, schema, request.GET.get("page")))
    elif tab == "profile":
        charts = _profile_charts(data_version.profile)
        context["missing_chart"] = charts.get("missing")
        context["profile_columns"] = [
            (f"chart-col{i}", column, charts.get(f"col{i}"))
            for i, column in enumerate(data_version.profile.get("column_profiles", []))
        ]
    template = "workspaces/data/_preview.html" if request.htmx and tab == "preview" else "workspaces/data/version.html"
    return render_page(request, template, workspace, **context)


def _preview(version, schema, page_number):
    path = data_version_file(version)
    pages = max(1, -(-version.rows // PREVIEW_ROWS))
    try:
        number = min(max(1, int(page_number or 1)), pages)
    except ValueError:
        number = 1
    page = read_page(path, (number - 1) * PREVIEW_ROWS, PREVIEW_ROWS, schema=schema)
    first = (number - 1) * PREVIEW_ROWS + 1
    return {
        "preview": page,
        "page_number": number,
        "pages": pages,
        "first_row": first,
        "last_row": first + len(page.rows) - 1,
    }


@require_http_methods(["POST"])
def version_schema_edit(request, workspace_id, asset_id, version):
    workspace, asset, data_version = _version(request, workspace_id, asset_id, version, write=True)
    schema = Schema.from_json(data_version.schema)
    types, exclude = {}, []
    for index, column in enumerate(schema.columns):
        chosen = request.POST.get(f"type_{index}")
        if chosen and chosen != column.semantic_type:
            types[column.name] = chosen
        if request.POST.get(f"exclude_{index}") and not column.excluded:
            exclude.append(column.name)
    try:
        ingest = services.data_schema_edit(actor=request.user, version=data_version, types=types, exclude=exclude)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect(reverse("data-version", args=[workspace.pk, asset.pk, data_version.version]) + "?tab=schema")
    messages.success(request, "Making a new version with the edited schema…")
    return redirect("data-ingest", workspace_id=workspace.pk, ingest_id=ingest.pk)


def version_download(request, workspace_id, asset_id, version, fmt):
    _, _, data_version = _version(request, workspace_id, asset_id, version)
    return data_version_download(data_version, fmt=fmt)


@require_http_methods(["GET", "POST"])
def version_delete(request, workspace_id, asset_id, version):
    workspace, asset, data_version = _version(request, workspace_id, asset_id, version, write=True)
    if request.method == "POST":
        try:
            freed = services.data_version_delete(actor=request.user, version=data_version)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect("data-version", workspace_id=workspace.pk, asset_id=asset.pk, version=data_version.version)
        messages.success(request, f"{asset.name} version {data_version.version} deleted; {freed:,} bytes freed.")
        return redirect("data-asset", workspace_id=workspace.pk, asset_id=asset.pk)
    return render_page(request, "workspaces/data/delete.html", workspace, asset=asset, version=data_version)
