from django.urls import path

from . import data_views as views

urlpatterns = [
    path("", views.data_list, name="data-list"),
    path("upload/", views.data_upload, name="data-upload"),
    path("uploads/<int:ingest_id>/", views.ingest_detail, name="data-ingest"),
    path("<int:asset_id>/", views.asset_detail, name="data-asset"),
    path("<int:asset_id>/delete/", views.asset_delete, name="data-asset-delete"),
    path("<int:asset_id>/v/<int:version>/", views.version_detail, name="data-version"),
    path("<int:asset_id>/v/<int:version>/schema/", views.version_schema_edit, name="data-version-schema"),
    path("<int:asset_id>/v/<int:version>/delete/", views.version_delete, name="data-version-delete"),
    path("<int:asset_id>/v/<int:version>/download.<slug:fmt>", views.version_download, name="data-version-download"),
]
