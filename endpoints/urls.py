from django.urls import path

from . import views

urlpatterns = [
    path("", views.endpoint_list, name="endpoint-list"),
    path("alerts/", views.alerts, name="endpoint-alerts"),
    path("<int:endpoint_id>/", views.endpoint_detail, name="endpoint-detail"),
    path("<int:endpoint_id>/test/", views.endpoint_test, name="endpoint-test"),
    path("<int:endpoint_id>/openapi.json", views.endpoint_openapi_view, name="endpoint-openapi"),
    path("<int:endpoint_id>/deployments/", views.deployment_create, name="deployment-create"),
    path(
        "<int:endpoint_id>/deployments/<int:deployment_id>/delete/", views.deployment_delete, name="deployment-delete"
    ),
    path("<int:endpoint_id>/traffic/", views.traffic_update, name="endpoint-traffic"),
    path("<int:endpoint_id>/keys/", views.key_regenerate, name="endpoint-keys"),
    path("<int:endpoint_id>/delete/", views.endpoint_delete, name="endpoint-delete"),
]
