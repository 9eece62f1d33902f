from django.apps import AppConfig


class ComputeConfig(AppConfig):
    name = "compute"
    verbose_name = "Compute"

    def ready(self) -> None:
        from . import worker  # noqa: F401 - connects the node's Celery signal handlers
