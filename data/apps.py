from django.apps import AppConfig


class DataConfig(AppConfig):
    name = "data"
    verbose_name = "Data"

    def ready(self) -> None:
        from . import jobs  # noqa: F401 - registers the ingest job kind with the job engine
