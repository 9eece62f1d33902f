from django.apps import AppConfig


class EndpointsConfig(AppConfig):
    name = "endpoints"
    verbose_name = "Endpoints"

    def ready(self) -> None:
        from training.registry_services import MODEL_VERSION_REFERENCES

        from . import jobs  # noqa: F401 - registers this app's job kinds with the job engine
        from .selectors import deployments_of

        MODEL_VERSION_REFERENCES.register(deployments_of)
