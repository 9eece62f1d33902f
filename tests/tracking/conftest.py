"""The real `mlflow` client in the test process, against a live studio server."""

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from studio.services import token_create


def _reset_mlflow() -> None:
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)
    # The fluent API caches the active experiment id between calls.
    mlflow.tracking.fluent._active_experiment_id = None


@pytest.fixture
def mlflow_as(live_server, monkeypatch):
    """mlflow_as(user, workspace) -> an MlflowClient of that user's on that workspace's tracking URI
    (the environment variables are set too, for the fluent API and the artifact repository)."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    _reset_mlflow()

    def client_for(user, workspace, *, key: str | None = None) -> MlflowClient:
        uri = f"{live_server.url}/w/{workspace.pk}/mlflow"
        key = key or token_create(user=user, name=f"mlflow {user.username}").plaintext
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", key)
        mlflow.set_tracking_uri(uri)
        return MlflowClient(tracking_uri=uri)

    yield client_for
    _reset_mlflow()
