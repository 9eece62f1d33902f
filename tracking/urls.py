"""The MLflow tracking API of a workspace, under /w/<workspace_id>/mlflow/ (the tracking URI).

The client appends /api/2.0/mlflow/... (tracking, registry) and /api/2.0/mlflow-artifacts/...
(the artifact proxy). What the studio does not serve is a 404 ENDPOINT_NOT_FOUND in MLflow's shape.
"""

from django.urls import path, re_path

from . import artifact_views, base, views
from .mlflow_registry import registry_urlpatterns

API = "api/2.0/mlflow/"
ARTIFACTS = "api/2.0/mlflow-artifacts/artifacts"

urlpatterns = [
    path(f"{API}experiments/create", views.ExperimentCreateApi.as_view(), name="mlflow-experiment-create"),
    path(f"{API}experiments/get", views.ExperimentGetApi.as_view(), name="mlflow-experiment-get"),
    path(f"{API}experiments/get-by-name", views.ExperimentGetByNameApi.as_view(), name="mlflow-experiment-by-name"),
    path(f"{API}experiments/search", views.ExperimentSearchApi.as_view(), name="mlflow-experiment-search"),
    path(f"{API}experiments/list", views.ExperimentSearchApi.as_view(), name="mlflow-experiment-list"),
    path(f"{API}experiments/update", views.ExperimentUpdateApi.as_view(), name="mlflow-experiment-update"),
    path(f"{API}experiments/delete", views.ExperimentDeleteApi.as_view(), name="mlflow-experiment-delete"),
    path(f"{API}experiments/restore", views.ExperimentRestoreApi.as_view(), name="mlflow-experiment-restore"),
    path(f"{API}experiments/set-experiment-tag", views.ExperimentTagSetApi.as_view(), name="mlflow-experiment-tag-set"),
    path(
        f"{API}experiments/delete-experiment-tag",
        views.ExperimentTagDeleteApi.as_view(),
        name="mlflow-experiment-tag-delete",
    ),
    path(f"{API}runs/create", views.RunCreateApi.as_view(), name="mlflow-run-create"),
    path(f"{API}runs/get", views.RunGetApi.as_view(), name="mlflow-run-get"),
    path(f"{API}runs/update", views.RunUpdateApi.as_view(), name="mlflow-run-update"),
    path(f"{API}runs/delete", views.RunDeleteApi.as_view(), name="mlflow-run-delete"),
    path(f"{API}runs/restore", views.RunRestoreApi.as_view(), name="mlflow-run-restore"),
    path(f"{API}runs/search", views.RunSearchApi.as_view(), name="mlflow-run-search"),
    path(f"{API}runs/log-metric", views.LogMetricApi.as_view(), name="mlflow-log-metric"),
    path(f"{API}runs/log-parameter", views.LogParamApi.as_view(), name="mlflow-log-param"),
    path(f"{API}runs/log-batch", views.LogBatchApi.as_view(), name="mlflow-log-batch"),
    path(f"{API}runs/set-tag", views.SetTagApi.as_view(), name="mlflow-set-tag"),
    path(f"{API}runs/delete-tag", views.DeleteTagApi.as_view(), name="mlflow-delete-tag"),
    path(f"{API}logged-models/search", views.LoggedModelSearchApi.as_view(), name="mlflow-logged-model-search"),
    re_path(rf"^{API}logged-models(/.*)?$", base.LoggedModelsNotServedApi.as_view(), name="mlflow-logged-models"),
    path(f"{API}metrics/get-history", views.MetricHistoryApi.as_view(), name="mlflow-metric-history"),
    path(ARTIFACTS, artifact_views.ArtifactListApi.as_view(), name="mlflow-artifact-list"),
    path(f"{ARTIFACTS}/<path:path>", artifact_views.ArtifactFileApi.as_view(), name="mlflow-artifact-file"),
]

# The model registry's routes (tracking/mlflow_registry.py), before the catch-all.
urlpatterns += registry_urlpatterns

urlpatterns += [re_path(r"^.*$", base.EndpointNotFoundApi.as_view(), name="mlflow-endpoint-not-found")]
