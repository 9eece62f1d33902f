from django.apps import AppConfig


class ComputeConfig(AppConfig):
    name = "compute"
    verbose_name = "Compute"

    def ready(self) -> None:
        from . import worker  # noqa: F401 - connects the node's Celery signal handlers
        from .jobs import diagnostic  # noqa: F401 - registers the built-in node check kind
