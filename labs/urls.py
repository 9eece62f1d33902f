"""Under /w/<workspace>/compute/ (compute/urls.py includes these before its `<action>` route)."""

from django.urls import path

from . import views

urlpatterns = [
    path("<id:target_id>/notebook/environment/", views.lab_environment, name="lab-environment"),
    path("<id:target_id>/schedules/", views.schedule_create, name="lab-schedule-create"),
    path("<id:target_id>/schedules/<id:schedule_id>/delete/", views.schedule_delete, name="lab-schedule-delete"),
    # JupyterLab: the owner is sent to the lab proxy's origin ("lab" is not an action).
    path("<id:target_id>/lab/", views.lab_redirect, name="lab-open"),
    path("<id:target_id>/lab/<path:rest>", views.lab_redirect, name="lab-open-path"),
]
