from django.urls import path

from . import automl_views as automl
from . import experiment_views as experiments
from . import registry_views as registry
from . import views

prefix = "workspaces/<id:workspace_id>/"
job = prefix + "jobs/<id:job_id>/"
urlpatterns = [
    path(prefix + "jobs/", views.JobListApi.as_view(), name="api-job-list"),
    path(prefix + "experiments/", views.ExperimentListApi.as_view(), name="api-experiment-list"),
    path(
        prefix + "experiments/<id:experiment_id>/runs/",
        experiments.ExperimentRunsApi.as_view(),
        name="api-experiment-runs",
    ),
    path(job, views.JobDetailApi.as_view(), name="api-job-detail"),
    path(job + "cancel/", views.JobCancelApi.as_view(), name="api-job-cancel"),
    path(job + "retry/", views.JobRetryApi.as_view(), name="api-job-retry"),
    path(job + "events/", views.JobEventsApi.as_view(), name="api-job-events"),
    path(job + "log/", views.JobLogApi.as_view(), name="api-job-log"),
    path(job + "metrics/", views.JobMetricsApi.as_view(), name="api-job-metrics"),
    path(job + "artifacts/", views.JobArtifactsApi.as_view(), name="api-job-artifacts"),
    path(
        job + "artifacts/<id:artifact_id>/download/",
        views.JobArtifactDownloadApi.as_view(),
        name="api-job-artifact-download",
    ),
    path(job + "register/", registry.JobRegisterApi.as_view(), name="api-job-register"),
    path(prefix + "automl/", automl.AutoMLStartApi.as_view(), name="api-automl-start"),
    path(prefix + "automl/<id:job_id>/", automl.AutoMLRunApi.as_view(), name="api-automl-run"),
    path(prefix + "models/", registry.ModelListApi.as_view(), name="api-model-list"),
    path(prefix + "models/upload/", registry.ModelUploadApi.as_view(), name="api-model-upload"),
    path(prefix + "models/<id:model_id>/versions/", registry.ModelVersionListApi.as_view(), name="api-model-versions"),
    path(
        prefix + "models/<id:model_id>/versions/<id:version>/",
        registry.ModelVersionDetailApi.as_view(),
        name="api-model-version",
    ),
    path(
        prefix + "models/<id:model_id>/versions/<id:version>/alias/",
        registry.ModelVersionAliasApi.as_view(),
        name="api-model-alias",
    ),
    path(
        prefix + "models/<id:model_id>/versions/<id:version>/download/",
        registry.ModelVersionDownloadApi.as_view(),
        name="api-model-download",
    ),
]
