"""Training's job kinds, registered with the job engine when Django starts."""

from compute.jobs.kinds import register

from .kinds.automl import AutoMLFinalJob, AutoMLJob, AutoMLTrialJob
from .kinds.train import TrainJob
from .models import TrainingJobKind

register(TrainingJobKind.TRAIN, TrainingJobKind.TRAIN.label, TrainJob())
register(TrainingJobKind.AUTOML, TrainingJobKind.AUTOML.label, AutoMLJob())
register(TrainingJobKind.AUTOML_TRIAL, TrainingJobKind.AUTOML_TRIAL.label, AutoMLTrialJob())
register(TrainingJobKind.AUTOML_FINAL, TrainingJobKind.AUTOML_FINAL.label, AutoMLFinalJob())
