from django.urls import path

from . import registry_views as views

urlpatterns = [
    path("", views.model_list, name="model-list"),
    path("upload/", views.model_upload, name="model-upload"),
    path("<id:model_id>/", views.model_detail, name="model-detail"),
    path("<id:model_id>/compare/", views.model_compare, name="model-compare"),
    path("<id:model_id>/v/<id:version>/", views.model_version_detail, name="model-version"),
    path("<id:model_id>/v/<id:version>/alias/", views.model_version_alias, name="model-version-alias"),
    path("<id:model_id>/v/<id:version>/delete/", views.model_version_delete, name="model-version-delete"),
    path(
        "<id:model_id>/v/<id:version>/download.<slug:fmt>",
        views.model_version_download,
        name="model-version-download",
    ),
]
