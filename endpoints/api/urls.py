from django.urls import path

from . import views

prefix = "workspaces/<id:workspace_id>/endpoints/"
one = prefix + "<id:endpoint_id>/"
urlpatterns = [
    path(prefix, views.EndpointListApi.as_view(), name="api-endpoint-list"),
    path(one, views.EndpointDetailApi.as_view(), name="api-endpoint-detail"),
    path(one + "keys/", views.EndpointKeysApi.as_view(), name="api-endpoint-keys"),
    path(one + "deployments/", views.DeploymentListApi.as_view(), name="api-deployment-list"),
    path(one + "deployments/<id:deployment_id>/", views.DeploymentDetailApi.as_view(), name="api-deployment-detail"),
    path(one + "traffic/", views.TrafficApi.as_view(), name="api-endpoint-traffic"),
    path(one + "monitoring/", views.MonitoringApi.as_view(), name="api-endpoint-monitoring"),
    path(one + "openapi/", views.EndpointOpenApiApi.as_view(), name="api-endpoint-openapi"),
]
