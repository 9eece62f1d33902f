from django.urls import path

from . import code_views

prefix = "workspaces/<id:workspace_id>/code/"
urlpatterns = [
    path(prefix, code_views.CodeSnapshotListApi.as_view(), name="api-code-list"),
    path(prefix + "<id:snapshot_id>/", code_views.CodeSnapshotDetailApi.as_view(), name="api-code-detail"),
    path(prefix + "<id:snapshot_id>/files/", code_views.CodeFileApi.as_view(), name="api-code-file"),
    path(
        prefix + "<id:snapshot_id>/files/download/",
        code_views.CodeFileDownloadApi.as_view(),
        name="api-code-file-download",
    ),
]
