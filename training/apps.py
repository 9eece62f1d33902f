from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"
    verbose_name = "Training"

    def ready(self) -> None:
        from compute.jobs.kinds import register
        from data.services import DATA_VERSION_REFERENCES
        from workspaces.usage import stored_register

        from .models import ModelVersion, TrainingJobKind
        from .registry_selectors import models_trained_on

        # Each job kind's handler by its dotted path: its module, and the ML stack it imports
        # (scikit-learn, LightGBM, statsmodels), load when a job of that kind first needs them.
        for kind, handler in (
            (TrainingJobKind.TRAIN, "training.kinds.train.TrainJob"),
            (TrainingJobKind.AUTOML, "training.kinds.automl.AutoMLJob"),
            (TrainingJobKind.AUTOML_TRIAL, "training.kinds.automl.AutoMLTrialJob"),
            (TrainingJobKind.AUTOML_FINAL, "training.kinds.automl.AutoMLFinalJob"),
        ):
            register(kind, kind.label, handler)
        DATA_VERSION_REFERENCES.register(models_trained_on)
        stored_register(ModelVersion.objects.all, workspace_field="model__workspace", size_field="file_size")
