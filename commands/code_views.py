"""Code pages: the workspace's snapshots with an upload box, one snapshot's files and a file's text."""

from django.core.paginator import Paginator

from commands import code_selectors, code_services
from commands.code_downloads import code_file_download
from workspaces.pages import page_workspace, render_page


def code_list(request, workspace_id):
    workspace = page_workspace(request, workspace_id)
    page = Paginator(code_selectors.code_snapshot_list(workspace=workspace), 50).get_page(request.GET.get("page"))
    return render_page(request, "commands/code_list.html", workspace, page=page)


def code_detail(request, workspace_id, snapshot_id):
    """The snapshot's files; `?path=` shows one of them (404 for a path not in the snapshot)."""
    workspace = page_workspace(request, workspace_id)
    snapshot = code_selectors.code_snapshot_get(workspace=workspace, snapshot_id=snapshot_id)
    path = request.GET.get("path")
    shown = None
    if path is not None:
        text, size = code_services.code_snapshot_file(snapshot=snapshot, path=path)
        shown = {
            "path": path,
            "size": size,
            "text": text,
            "truncated": text is not None and len(text.encode()) < size,
            "limit": code_services.VIEW_MAX_BYTES,
        }
    return render_page(request, "commands/code_detail.html", workspace, snapshot=snapshot, shown=shown)


def code_file_download_page(request, workspace_id, snapshot_id):
    workspace = page_workspace(request, workspace_id)
    snapshot = code_selectors.code_snapshot_get(workspace=workspace, snapshot_id=snapshot_id)
    return code_file_download(snapshot=snapshot, path=request.GET.get("path", ""))
