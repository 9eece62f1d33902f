"""Read queries for the model registry, scoped to one workspace."""

import json

from django.db.models import OuterRef, Prefetch, Q, QuerySet, Subquery
from django.http import Http404

from .models import ModelAlias, ModelVersion, RegisteredModel
from .registry_services import model_version_dir


def _latest(field: str):
    return Subquery(ModelVersion.objects.filter(model=OuterRef("pk")).order_by("-version").values(field)[:1])


def model_list(*, workspace, q: str = "") -> QuerySet[RegisteredModel]:
    models = (
        RegisteredModel.objects.filter(workspace=workspace)
        .annotate(
            latest_version=_latest("version"),
            latest_algorithm=_latest("algorithm"),
            latest_created_at=_latest("created_at"),
        )
        .prefetch_related(Prefetch("aliases", queryset=ModelAlias.objects.select_related("version")))
        .order_by("-updated_at", "name")
    )
    if q:
        models = models.filter(name__icontains=q.strip())
    return models


def model_get(*, workspace, model_id) -> RegisteredModel:
    try:
        return model_list(workspace=workspace).get(pk=int(model_id))
    except (RegisteredModel.DoesNotExist, TypeError, ValueError, OverflowError):
        raise Http404("Model not found.") from None


def model_version_list(*, model: RegisteredModel) -> QuerySet[ModelVersion]:
    return (
        model.versions.select_related("job", "data_version", "data_version__asset", "created_by")
        .prefetch_related("aliases")
        .order_by("-version")
    )


def model_version_get(*, model: RegisteredModel, version) -> ModelVersion:
    try:
        return model_version_list(model=model).select_related("model").get(version=int(version))
    except (ModelVersion.DoesNotExist, TypeError, ValueError, OverflowError):
        raise Http404("Model version not found.") from None


def model_version_get_by_id(*, workspace, version_id) -> ModelVersion:
    try:
        return ModelVersion.objects.select_related("model").get(pk=int(version_id), model__workspace=workspace)
    except (ModelVersion.DoesNotExist, TypeError, ValueError, OverflowError):
        raise Http404("Model version not found.") from None


def model_versions_in_workspace(*, workspace) -> QuerySet[ModelVersion]:
    return (
        ModelVersion.objects.filter(model__workspace=workspace)
        .select_related("model")
        .order_by("model__name", "-version")
    )


def models_registered_from(job) -> list[str]:
    """What keeps a job from being deleted: model versions registered from it or its children."""
    versions = list(ModelVersion.objects.filter(Q(job=job) | Q(job__parent=job)).select_related("model")[:5])
    if not versions:
        return []
    return ["the registered model" + ("s " if len(versions) > 1 else " ") + ", ".join(map(str, versions))]


def models_trained_on(data_versions) -> list[str]:
    """What keeps data versions from being deleted, for the data app: models trained on them."""
    versions = list(ModelVersion.objects.filter(data_version__in=data_versions).select_related("model")[:6])
    if not versions:
        return []
    return ["model" + ("s " if len(versions) > 1 else " ") + ", ".join(str(m) for m in versions[:5])]


def model_version_json_file(*, version: ModelVersion, name: str):
    """A JSON file registered with the version (signature, ONNX report, reference profile), parsed;
    None when missing or unreadable."""
    try:
        return json.loads((model_version_dir(version) / name).read_text())
    except (OSError, ValueError):
        return None
