from django.urls import path

from . import views

prefix = "workspaces/<id:workspace_id>/compute/"
urlpatterns = [
    path(prefix, views.TargetListApi.as_view(), name="api-compute-list"),
    path(prefix + "usage/", views.UsageApi.as_view(), name="api-compute-usage"),
    path(prefix + "quota/", views.QuotaApi.as_view(), name="api-compute-quota"),
    path(prefix + "<id:target_id>/", views.TargetDetailApi.as_view(), name="api-compute-detail"),
    path(prefix + "<id:target_id>/nodes/", views.TargetNodesApi.as_view(), name="api-compute-nodes"),
    path(prefix + "<id:target_id>/start/", views.InstanceStartApi.as_view(), name="api-compute-start"),
    path(prefix + "<id:target_id>/stop/", views.InstanceStopApi.as_view(), name="api-compute-stop"),
    path(prefix + "<id:target_id>/restart/", views.InstanceRestartApi.as_view(), name="api-compute-restart"),
    path(prefix + "<id:target_id>/join-token/", views.JoinTokenApi.as_view(), name="api-compute-join-token"),
]
