from django.apps import AppConfig


class TrackingConfig(AppConfig):
    name = "tracking"
    verbose_name = "MLflow tracking"

    def ready(self) -> None:
        from . import jobs  # noqa: F401 - registers the external run job kind with the job engine
