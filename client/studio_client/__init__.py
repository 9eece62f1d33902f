"""Python client of the ML studio: `Studio(url, token).workspace("name or id").jobs.create(...)`."""

__version__ = "0.1.0"

from .api import (  # noqa: E402 - after the version, which http reads
    Artifact,
    CodeSnapshot,
    DataAsset,
    DataVersion,
    Deployment,
    Endpoint,
    Environment,
    Ingest,
    Job,
    LogLine,
    Model,
    ModelVersion,
    Studio,
    User,
    WorkspaceClient,
    WorkspaceInfo,
)
from .http import StudioError  # noqa: E402
from .specs import SpecError  # noqa: E402

__all__ = [
    "Artifact",
    "CodeSnapshot",
    "DataAsset",
    "DataVersion",
    "Deployment",
    "Endpoint",
    "Environment",
    "Ingest",
    "Job",
    "LogLine",
    "Model",
    "ModelVersion",
    "SpecError",
    "Studio",
    "StudioError",
    "User",
    "WorkspaceClient",
    "WorkspaceInfo",
    "__version__",
]
