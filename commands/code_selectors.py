"""Read queries for code snapshots, scoped to one workspace (the caller fetched and authorised it)."""

from django.db.models import QuerySet
from django.http import Http404

from commands.models import CodeSnapshot
from workspaces.models import Workspace


def code_snapshot_list(*, workspace: Workspace) -> QuerySet[CodeSnapshot]:
    """Newest first, without the manifests (a list never shows them; one may hold thousands of files)."""
    return CodeSnapshot.objects.filter(workspace=workspace).select_related("created_by").defer("files")


def code_snapshot_get(*, workspace: Workspace, snapshot_id) -> CodeSnapshot:
    try:
        return CodeSnapshot.objects.select_related("created_by").get(workspace=workspace, pk=int(snapshot_id))
    except (CodeSnapshot.DoesNotExist, TypeError, ValueError, OverflowError):
        raise Http404("Code snapshot not found.") from None
