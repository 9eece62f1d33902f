from django.urls import path

from . import views

urlpatterns = [
    path("", views.environment_list, name="environment-list"),
    path("new/", views.environment_create, name="environment-create"),
    path("bases/", views.base_list, name="environment-bases"),
    path("<id:environment_id>/", views.environment_detail, name="environment-detail"),
    path("<id:environment_id>/versions/new/", views.version_create, name="environment-version-create"),
    path("<id:environment_id>/v/<id:version>/lock.txt", views.lock_download, name="environment-lock"),
    path("<id:environment_id>/delete/", views.environment_delete, name="environment-delete"),
]
