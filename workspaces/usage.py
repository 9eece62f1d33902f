"""What a workspace holds, counted by the apps that hold it. Each app registers its counts and the
bytes it stores when Django starts (its `AppConfig.ready`), so the workspace list and the storage
quota sum them in one query without the tenancy layer importing any app above it."""

from collections.abc import Callable
from dataclasses import dataclass

from django.db.models import Model, QuerySet


@dataclass(frozen=True)
class Count:
    name: str  # the annotation on each workspace, e.g. "job_count"
    model: type[Model]
    workspace_field: str = "workspace"


@dataclass(frozen=True)
class Stored:
    rows: Callable[[], QuerySet]  # the rows holding files (called per query: querysets are lazy)
    workspace_field: str  # the path from a row to its workspace, e.g. "job__workspace"
    size_field: str  # the bytes recorded when the file was written


COUNTS: list[Count] = []
STORED: list[Stored] = []


def count_register(name: str, model: type[Model], workspace_field: str = "workspace") -> None:
    if all(c.name != name for c in COUNTS):
        COUNTS.append(Count(name, model, workspace_field))


def stored_register(rows: Callable[[], QuerySet], *, workspace_field: str, size_field: str) -> None:
    entry = Stored(rows, workspace_field, size_field)
    if all((s.workspace_field, s.size_field) != (workspace_field, size_field) for s in STORED):
        STORED.append(entry)
