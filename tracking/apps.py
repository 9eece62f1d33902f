from django.apps import AppConfig


class TrackingConfig(AppConfig):
    name = "tracking"
    verbose_name = "MLflow tracking"

    def ready(self) -> None:
        from compute.jobs.kinds import register

        from .jobs import EXTERNAL

        register(EXTERNAL, "External run", "tracking.jobs.ExternalRunJob")
