from django.urls import path

from . import views as data_views

urlpatterns = [
    path("workspaces/<id:workspace_id>/data-assets/", data_views.AssetListApi.as_view(), name="api-data-list"),
    path(
        "workspaces/<id:workspace_id>/data-assets/<id:asset_id>/",
        data_views.AssetDetailApi.as_view(),
        name="api-data-detail",
    ),
    path(
        "workspaces/<id:workspace_id>/data-assets/<id:asset_id>/versions/",
        data_views.VersionListApi.as_view(),
        name="api-data-versions",
    ),
    path(
        "workspaces/<id:workspace_id>/data-assets/<id:asset_id>/versions/<id:version>/",
        data_views.VersionDetailApi.as_view(),
        name="api-data-version",
    ),
    path(
        "workspaces/<id:workspace_id>/data-assets/<id:asset_id>/versions/<id:version>/preview/",
        data_views.VersionPreviewApi.as_view(),
        name="api-data-preview",
    ),
    path(
        "workspaces/<id:workspace_id>/data-assets/<id:asset_id>/versions/<id:version>/schema/",
        data_views.VersionSchemaApi.as_view(),
        name="api-data-schema",
    ),
    path(
        "workspaces/<id:workspace_id>/data-assets/<id:asset_id>/versions/<id:version>/download/",
        data_views.VersionDownloadApi.as_view(),
        name="api-data-download",
    ),
    path("workspaces/<id:workspace_id>/ingests/", data_views.IngestListApi.as_view(), name="api-ingest-list"),
    path(
        "workspaces/<id:workspace_id>/ingests/<id:ingest_id>/",
        data_views.IngestDetailApi.as_view(),
        name="api-ingest-detail",
    ),
    path("workspaces/<id:workspace_id>/data-imports/url/", data_views.ImportUrlApi.as_view(), name="api-import-url"),
    path(
        "workspaces/<id:workspace_id>/data-imports/query/",
        data_views.ImportQueryApi.as_view(),
        name="api-import-query",
    ),
    path("workspaces/<id:workspace_id>/data-imports/s3/", data_views.ImportS3Api.as_view(), name="api-import-s3"),
    path("workspaces/<id:workspace_id>/datastores/", data_views.DatastoreListApi.as_view(), name="api-datastore-list"),
    path(
        "workspaces/<id:workspace_id>/datastores/<id:datastore_id>/",
        data_views.DatastoreDetailApi.as_view(),
        name="api-datastore-detail",
    ),
]
