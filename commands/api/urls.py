from django.urls import path

from . import views

urlpatterns = [
    path(
        "workspaces/<id:workspace_id>/jobs/<id:job_id>/outputs/<slug:output>/register/",
        views.CommandOutputRegisterApi.as_view(),
        name="api-command-output-register",
    ),
]
