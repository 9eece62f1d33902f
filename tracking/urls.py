"""The MLflow tracking API of a workspace, under /w/<workspace_id>/mlflow/ (the tracking URI).

The client appends /api/2.0/mlflow/... (tracking, registry) and /api/2.0/mlflow-artifacts/...
(the artifact proxy). What the studio does not serve is a 404 ENDPOINT_NOT_FOUND in MLflow's shape.
"""

from django.urls import re_path

from . import base

urlpatterns = []

# The model registry's routes (tracking/mlflow_registry.py) are added here, before the catch-all.

urlpatterns += [re_path(r"^.*$", base.EndpointNotFoundApi.as_view(), name="mlflow-endpoint-not-found")]
