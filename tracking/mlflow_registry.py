"""MLflow's model registry API (2.0) over the studio's registry, so that
`mlflow.register_model("runs:/<run_id>/model", "name")` works against `<studio>/w/<id>/mlflow`.

Served: registered-models create, get, search, update, delete, get-latest-versions; model-versions
create, get, search, delete, get-download-uri. Not served (ENDPOINT_NOT_FOUND): renames, tags,
stages and aliases through MLflow (aliases are set on the studio's model pages).

Decisions:
* A studio model exists once it has a version: `registered-models/create` checks the name and
  answers RESOURCE_ALREADY_EXISTS for a model the workspace has, but stores nothing; the first
  `model-versions/create` makes the model.
* Studio model names are 1–100 letters, digits, dots, hyphens or underscores: an MLflow name is
  spelled that way (`studio_model_name`: "my model-name" → "my-model-name") on every request, so the
  same MLflow name always finds the same model.
* `model-versions/create` takes a `source` of the run's logged files — `runs:/<run_id>/<path>` or
  `mlflow-artifacts:/runs/<run_id>/<path>` — and registers that MLflow model folder through
  `training.registry_imports.model_import` (ONNX flavour, or sklearn saved with skops). The version
  is READY when the call returns; pickle-based flavours are INVALID_PARAMETER_VALUE with the message
  that says how to save as skops or ONNX.
"""

import re

from django.db.models import Max
from django.urls import path
from rest_framework.response import Response

from compute.jobs.models import Artifact
from compute.jobs.recovery import job_artifact_dir
from modelformat.model_import import DiskFolder
from training import registry_imports, registry_services
from training.models import MODEL_NAME_PATTERN, ModelVersion, RegisteredModel

from . import selectors
from .base import TrackingApiView
from .errors import RESOURCE_ALREADY_EXISTS, MlflowError, invalid, not_found

SOURCE = re.compile(r"^(?:runs:/|mlflow-artifacts:/runs/)([^/]+)/(.+?)/?$")
MAX_RESULTS = 1000  # registered models per page (the client asks for 100)
MAX_VERSION_RESULTS = 10_000  # model versions per page (the client asks for 10,000)


def studio_model_name(name) -> str:
    """The studio's spelling of an MLflow model name (see the module docstring)."""
    if not isinstance(name, str) or not name.strip():
        raise invalid("Give the registered model's name (name).")
    spelled = re.sub(r"[^A-Za-z0-9_.\-]+", "-", name.strip()).strip("-.")[:100]
    if not re.match(MODEL_NAME_PATTERN, spelled):
        raise invalid(f"{name[:100]!r} cannot be a model name: use letters, digits, dots, hyphens or underscores.")
    return spelled


def _ms(moment) -> int:
    return int(moment.timestamp() * 1000)


def model_version_json(version: ModelVersion) -> dict:
    return {
        "name": version.model.name,
        "version": str(version.version),
        "creation_timestamp": _ms(version.created_at),
        "last_updated_timestamp": _ms(version.created_at),
        "current_stage": "None",
        "description": version.description,
        "source": version.lineage.get("source_uri", ""),
        "run_id": str(version.job_id) if version.job_id else "",
        "status": "READY",
        "status_message": "",
        "tags": [],
        "run_link": "",
        "aliases": [alias.name for alias in version.aliases.all()],
    }


def registered_model_json(model: RegisteredModel) -> dict:
    latest = model.versions.select_related("model").prefetch_related("aliases").order_by("-version").first()
    return {
        "name": model.name,
        "creation_timestamp": _ms(model.created_at),
        "last_updated_timestamp": _ms(model.updated_at),
        "description": model.description,
        "latest_versions": [model_version_json(latest)] if latest else [],
        "tags": [],
        "aliases": [
            {"alias": a.name, "version": str(a.version.version)} for a in model.aliases.select_related("version")
        ],
    }


class _View(TrackingApiView):
    def model(self, name) -> RegisteredModel:
        spelled = studio_model_name(name)
        model = RegisteredModel.objects.filter(workspace=self.access.workspace, name=spelled).first()
        if model is None:
            raise not_found(f"Registered model with name={name!r} not found.")
        return model

    def version(self, message) -> ModelVersion:
        model = self.model(message.get("name"))
        number = str(message.get("version") or "").strip()
        if not (number.isascii() and number.isdigit()) or len(number) > 9:
            raise invalid("Give the model version's number (version).")
        version = model.versions.select_related("model").prefetch_related("aliases").filter(version=int(number)).first()
        if version is None:
            raise not_found(f"Model version (name={message.get('name')!r}, version={number}) not found.")
        return version


def _page(rows, message, *, limit: int = MAX_RESULTS) -> tuple[list, str | None]:
    limit = selectors.max_results(message.get("max_results"), default=100, limit=limit)
    offset = selectors.page_offset(message.get("page_token"))
    page = list(rows[offset : offset + limit + 1])
    token = selectors.page_token(offset + limit) if len(page) > limit else None
    return page[:limit], token


_NAME_CLAUSE = re.compile(r"""^\s*name\s*(=|LIKE|ILIKE)\s*'([^']*)'\s*$""", re.IGNORECASE)
_RUN_CLAUSE = re.compile(r"""^\s*run_id\s*=\s*'([^']*)'\s*$""", re.IGNORECASE)
# MLflow 3 clients add this clause to every registry search: no studio model is a prompt.
_NOT_A_PROMPT = re.compile(r"""^\s*tags?\.`?mlflow\.prompt\.is_prompt`?\s*!=\s*'true'\s*$""", re.IGNORECASE)


def _registry_filter(rows, filter_string, *, name_field: str, runs: bool = False):
    """MLflow's registry filters as clients write them: clauses joined by AND, each name = '…',
    name LIKE '%…%' (ILIKE too) or, for versions, run_id = '…'."""
    if not filter_string:
        return rows
    for clause in re.split(r"\s+AND\s+", str(filter_string), flags=re.IGNORECASE):
        if _NOT_A_PROMPT.match(clause):
            continue
        run = _RUN_CLAUSE.match(clause) if runs else None
        name = _NAME_CLAUSE.match(clause)
        if run is not None:
            pk = run.group(1)
            rows = rows.filter(job_id=int(pk)) if pk.isascii() and pk.isdigit() and len(pk) < 19 else rows.none()
        elif name is not None:
            operator, value = name.group(1).upper(), name.group(2)
            if operator == "=":
                rows = rows.filter(**{name_field: studio_model_name(value)})
                continue
            lookup = "icontains" if operator == "ILIKE" else "contains"
            for part in re.sub(r"[^A-Za-z0-9_.\-%]+", "-", value).split("%"):
                if part:
                    rows = rows.filter(**{f"{name_field}__{lookup}": part})
        else:
            words = "name = '...', name LIKE '%...%'" + (" or run_id = '...'" if runs else "")
            raise invalid(f"Unsupported filter {clause[:100]!r}: use {words}.")
    return rows


# --- Registered models ----------------------------------------------------------------------------
class RegisteredModelCreateApi(_View):
    def post(self, request, workspace_id):
        self.access.require_unscoped()
        message = self.message()
        name = studio_model_name(message.get("name"))
        existing = RegisteredModel.objects.filter(workspace=self.access.workspace, name=name).first()
        if existing is not None:
            raise MlflowError(f"Registered Model (name={name}) already exists.", RESOURCE_ALREADY_EXISTS)
        # Stored with its first version (module docstring): the answer describes the model to be.
        body = {"name": name, "description": message.get("description") or "", "latest_versions": [], "tags": []}
        return Response({"registered_model": body})


class RegisteredModelGetApi(_View):
    def get(self, request, workspace_id):
        return Response({"registered_model": registered_model_json(self.model(self.message().get("name")))})


class RegisteredModelSearchApi(_View):
    reads = True

    def get(self, request, workspace_id):
        message = self.message()
        rows = RegisteredModel.objects.filter(workspace=self.access.workspace).annotate(last=Max("versions__version"))
        rows = _registry_filter(rows.filter(last__isnull=False), message.get("filter"), name_field="name")
        rows = rows.order_by("name")
        models, token = _page(rows, message)
        body = {"registered_models": [registered_model_json(m) for m in models]}
        if token:
            body["next_page_token"] = token
        return Response(body)


class RegisteredModelUpdateApi(_View):
    def patch(self, request, workspace_id):
        self.access.require_unscoped()
        message = self.message()
        model = registry_services.model_update(
            actor=request.user, model=self.model(message.get("name")), description=message.get("description") or ""
        )
        return Response({"registered_model": registered_model_json(model)})


class RegisteredModelDeleteApi(_View):
    def delete(self, request, workspace_id):
        self.access.require_unscoped()
        model = self.model(self.message().get("name"))
        for version in list(model.versions.select_related("model")):
            registry_services.model_version_delete(actor=request.user, version=version)
        return Response({})


class LatestVersionsApi(_View):
    reads = True

    def post(self, request, workspace_id):
        model = self.model(self.message().get("name"))
        latest = model.versions.select_related("model").prefetch_related("aliases").order_by("-version").first()
        return Response({"model_versions": [model_version_json(latest)] if latest else []})

    get = post


# --- Model versions -------------------------------------------------------------------------------
class ModelVersionCreateApi(_View):
    def post(self, request, workspace_id):
        self.access.require_unscoped()  # the registry is the workspace's, not the job's own run
        message = self.message()
        name = studio_model_name(message.get("name"))
        source = message.get("source")
        match = SOURCE.match(source) if isinstance(source, str) else None
        if match is None:
            raise invalid(
                f"Unsupported source {str(source)[:200]!r}: register a run's logged model, "
                "runs:/<run_id>/<path> or mlflow-artifacts:/runs/<run_id>/<path>."
            )
        run_id, folder_path = match.groups()
        if message.get("run_id") not in (None, "", run_id):
            raise invalid(f"The source names run {run_id}, not run_id {str(message['run_id'])[:50]}.")
        run = selectors.run_get(access=self.access, run_id=run_id)
        prefix = f"logged/{folder_path.strip('/')}/"
        names = Artifact.objects.filter(job=run, name__startswith=prefix).values_list("name", flat=True)
        folder = DiskFolder(job_artifact_dir(run) / prefix, [n[len(prefix) :] for n in names])
        if not folder.names():
            raise not_found(f"Run {run_id} has no logged files under {folder_path!r}.")
        version = registry_imports.model_import(
            actor=request.user,
            workspace=self.access.workspace,
            name=name,
            folder=folder,
            description=message.get("description") or "",
            job=run,
            lineage={"source_uri": source[:500], "run_id": run_id},
        )
        version = ModelVersion.objects.select_related("model").prefetch_related("aliases").get(pk=version.pk)
        return Response({"model_version": model_version_json(version)})


class ModelVersionGetApi(_View):
    def get(self, request, workspace_id):
        return Response({"model_version": model_version_json(self.version(self.message()))})


class ModelVersionSearchApi(_View):
    reads = True

    def get(self, request, workspace_id):
        message = self.message()
        rows = ModelVersion.objects.filter(model__workspace=self.access.workspace).select_related("model")
        rows = _registry_filter(rows, message.get("filter"), name_field="model__name", runs=True)
        versions, token = _page(
            rows.prefetch_related("aliases").order_by("model__name", "-version"), message, limit=MAX_VERSION_RESULTS
        )
        body = {"model_versions": [model_version_json(v) for v in versions]}
        if token:
            body["next_page_token"] = token
        return Response(body)


class ModelVersionDeleteApi(_View):
    def delete(self, request, workspace_id):
        self.access.require_unscoped()
        registry_services.model_version_delete(actor=request.user, version=self.version(self.message()))
        return Response({})


class ModelVersionDownloadUriApi(_View):
    def get(self, request, workspace_id):
        version = self.version(self.message())
        return Response({"artifact_uri": version.lineage.get("source_uri", "")})


API = "api/2.0/mlflow/"
registry_urlpatterns = [
    path(f"{API}registered-models/create", RegisteredModelCreateApi.as_view(), name="mlflow-model-create"),
    path(f"{API}registered-models/get", RegisteredModelGetApi.as_view(), name="mlflow-model-get"),
    path(f"{API}registered-models/search", RegisteredModelSearchApi.as_view(), name="mlflow-model-search"),
    path(f"{API}registered-models/update", RegisteredModelUpdateApi.as_view(), name="mlflow-model-update"),
    path(f"{API}registered-models/delete", RegisteredModelDeleteApi.as_view(), name="mlflow-model-delete"),
    path(
        f"{API}registered-models/get-latest-versions", LatestVersionsApi.as_view(), name="mlflow-model-latest-versions"
    ),
    path(f"{API}model-versions/create", ModelVersionCreateApi.as_view(), name="mlflow-version-create"),
    path(f"{API}model-versions/get", ModelVersionGetApi.as_view(), name="mlflow-version-get"),
    path(f"{API}model-versions/search", ModelVersionSearchApi.as_view(), name="mlflow-version-search"),
    path(f"{API}model-versions/delete", ModelVersionDeleteApi.as_view(), name="mlflow-version-delete"),
    path(
        f"{API}model-versions/get-download-uri",
        ModelVersionDownloadUriApi.as_view(),
        name="mlflow-version-download-uri",
    ),
]
