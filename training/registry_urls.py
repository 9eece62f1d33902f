from django.urls import path

from . import registry_views as views

urlpatterns = [
    path("", views.model_list, name="model-list"),
    path("<int:model_id>/", views.model_detail, name="model-detail"),
    path("<int:model_id>/compare/", views.model_compare, name="model-compare"),
    path("<int:model_id>/v/<int:version>/", views.model_version_detail, name="model-version"),
    path("<int:model_id>/v/<int:version>/alias/", views.model_version_alias, name="model-version-alias"),
    path("<int:model_id>/v/<int:version>/delete/", views.model_version_delete, name="model-version-delete"),
    path(
        "<int:model_id>/v/<int:version>/download.<slug:fmt>",
        views.model_version_download,
        name="model-version-download",
    ),
]
