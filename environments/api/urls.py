from django.urls import path

from . import views

prefix = "workspaces/<id:workspace_id>/environments/"
urlpatterns = [
    path("environment-bases/", views.BaseListApi.as_view(), name="api-environment-bases"),
    path(prefix, views.EnvironmentListApi.as_view(), name="api-environment-list"),
    path(prefix + "<id:environment_id>/", views.EnvironmentDetailApi.as_view(), name="api-environment-detail"),
    path(prefix + "<id:environment_id>/versions/", views.VersionListApi.as_view(), name="api-environment-versions"),
    path(
        prefix + "<id:environment_id>/versions/<id:version>/",
        views.VersionDetailApi.as_view(),
        name="api-environment-version",
    ),
]
