"""The run API's routes, under /api/v1/ (a job's own token only: see run_views)."""

from django.urls import path

from . import run_views

urlpatterns = [
    path("run/", run_views.RunApi.as_view(), name="api-run"),
    path("run/metrics/", run_views.RunMetricsApi.as_view(), name="api-run-metrics"),
    path("run/params/", run_views.RunParamsApi.as_view(), name="api-run-params"),
    path("run/artifacts/<path:path>", run_views.RunArtifactApi.as_view(), name="api-run-artifact"),
    path("run/inputs/<str:name>/", run_views.RunInputApi.as_view(), name="api-run-input"),
]
