from django.urls import path

from . import views

prefix = "workspaces/<int:workspace_id>/compute/"
urlpatterns = [
    path(prefix, views.TargetListApi.as_view(), name="api-compute-list"),
    path(prefix + "usage/", views.UsageApi.as_view(), name="api-compute-usage"),
    path(prefix + "<int:target_id>/", views.TargetDetailApi.as_view(), name="api-compute-detail"),
    path(prefix + "<int:target_id>/nodes/", views.TargetNodesApi.as_view(), name="api-compute-nodes"),
    path(prefix + "<int:target_id>/start/", views.InstanceStartApi.as_view(), name="api-compute-start"),
    path(prefix + "<int:target_id>/stop/", views.InstanceStopApi.as_view(), name="api-compute-stop"),
    path(prefix + "<int:target_id>/restart/", views.InstanceRestartApi.as_view(), name="api-compute-restart"),
    path(prefix + "<int:target_id>/join-token/", views.JoinTokenApi.as_view(), name="api-compute-join-token"),
]
