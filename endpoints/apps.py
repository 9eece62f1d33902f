from django.apps import AppConfig


class EndpointsConfig(AppConfig):
    name = "endpoints"
    verbose_name = "Endpoints"

    def ready(self) -> None:
        from . import jobs  # noqa: F401 - registers this app's job kinds with the job engine
