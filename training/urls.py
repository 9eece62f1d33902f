from django.urls import path

from . import automl_views, registry_views, views

urlpatterns = [
    path("", views.job_list, name="job-list"),
    path("new/", views.job_submit, name="job-submit"),
    path("automl/new/", automl_views.automl_new, name="automl-new"),
    path("automl/columns/", automl_views.automl_columns, name="automl-columns"),
    path("automl/frequency/", automl_views.automl_frequency, name="automl-frequency"),
    path("compare/", views.job_compare, name="job-compare"),
    path("<id:job_id>/", views.job_detail, name="job-detail"),
    path("<id:job_id>/log/", views.job_log, name="job-log"),
    path("<id:job_id>/delete/", views.job_delete, name="job-delete"),
    path("<id:job_id>/register/", registry_views.job_register, name="job-register"),
    path("<id:job_id>/artifacts/<id:artifact_id>/", views.artifact_download, name="job-artifact"),
    path("<id:job_id>/<slug:action>/", views.job_action, name="job-action"),
]
