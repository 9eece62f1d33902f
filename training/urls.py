from django.urls import path

from . import views

urlpatterns = [
    path("", views.job_list, name="job-list"),
    path("new/", views.job_submit, name="job-submit"),
    path("compare/", views.job_compare, name="job-compare"),
    path("<int:job_id>/", views.job_detail, name="job-detail"),
    path("<int:job_id>/log/", views.job_log, name="job-log"),
    path("<int:job_id>/delete/", views.job_delete, name="job-delete"),
    path("<int:job_id>/artifacts/<int:artifact_id>/", views.artifact_download, name="job-artifact"),
    path("<int:job_id>/<slug:action>/", views.job_action, name="job-action"),
]
