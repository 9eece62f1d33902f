from django.urls import path

from data import views

urlpatterns = [
    path("", views.data_list, name="data-list"),
    path("upload/", views.data_upload, name="data-upload"),
    path("uploads/<id:ingest_id>/", views.ingest_detail, name="data-ingest"),
    path("import/", views.data_import, name="data-import"),
    path("datastores/", views.datastore_list, name="data-datastores"),
    path("datastores/<id:datastore_id>/delete/", views.datastore_delete, name="data-datastore-delete"),
    path("<id:asset_id>/", views.asset_detail, name="data-asset"),
    path("<id:asset_id>/delete/", views.asset_delete, name="data-asset-delete"),
    path("<id:asset_id>/v/<id:version>/", views.version_detail, name="data-version"),
    path("<id:asset_id>/v/<id:version>/schema/", views.version_schema_edit, name="data-version-schema"),
    path("<id:asset_id>/v/<id:version>/delete/", views.version_delete, name="data-version-delete"),
    path("<id:asset_id>/v/<id:version>/download.<slug:fmt>", views.version_download, name="data-version-download"),
]
