from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"
    verbose_name = "Training"

    def ready(self) -> None:
        from data.services import DATA_VERSION_REFERENCES
        from workspaces.usage import stored_register

        from . import jobs  # noqa: F401 - registers this app's job kinds with the job engine
        from .models import ModelVersion
        from .registry_selectors import models_trained_on

        DATA_VERSION_REFERENCES.register(models_trained_on)
        stored_register(ModelVersion.objects.all, workspace_field="model__workspace", size_field="file_size")
