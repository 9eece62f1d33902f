from django.urls import path

from . import views

urlpatterns = [
    path("", views.endpoint_list, name="endpoint-list"),
    path("alerts/", views.alerts, name="endpoint-alerts"),
    path("<id:endpoint_id>/", views.endpoint_detail, name="endpoint-detail"),
    path("<id:endpoint_id>/test/", views.endpoint_test, name="endpoint-test"),
    path("<id:endpoint_id>/openapi.json", views.endpoint_openapi_view, name="endpoint-openapi"),
    path("<id:endpoint_id>/deployments/", views.deployment_create, name="deployment-create"),
    path("<id:endpoint_id>/deployments/<id:deployment_id>/delete/", views.deployment_delete, name="deployment-delete"),
    path("<id:endpoint_id>/deployments/<id:deployment_id>/scale/", views.deployment_scale, name="deployment-scale"),
    path("<id:endpoint_id>/traffic/", views.traffic_update, name="endpoint-traffic"),
    path("<id:endpoint_id>/keys/", views.key_regenerate, name="endpoint-keys"),
    path("<id:endpoint_id>/delete/", views.endpoint_delete, name="endpoint-delete"),
]
