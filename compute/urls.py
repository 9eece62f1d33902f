from django.urls import include, path

from . import views

urlpatterns = [
    path("", views.target_list, name="compute-list"),
    path("new/", views.target_create, name="compute-create"),
    path("usage/", views.usage, name="compute-usage"),
    path("<id:target_id>/", views.target_detail, name="compute-detail"),
    path("<id:target_id>/edit/", views.target_edit, name="compute-edit"),
    path("<id:target_id>/delete/", views.target_delete, name="compute-delete"),
    path("<id:target_id>/", include("labs.urls")),  # before <slug:action>: "lab" is not an action
    path("<id:target_id>/<slug:action>/", views.target_action, name="compute-action"),
]
