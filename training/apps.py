from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"
    verbose_name = "Training"

    def ready(self) -> None:
        from . import jobs  # noqa: F401 - registers this app's job kinds with the job engine
