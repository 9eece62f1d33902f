from django.urls import path

from . import views

urlpatterns = [
    path(
        "jobs/<id:job_id>/outputs/<slug:output>/register/",
        views.command_output_register,
        name="command-output-register",
    ),
]
