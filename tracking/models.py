"""MLflow tags of runs and experiments (a run is a job, an experiment is training's Experiment)."""

from django.core.validators import RegexValidator
from django.db import models

TAG_KEY_MAX = 250
TAG_VALUE_MAX = 8000
TAG_KEY_RULE = "Use 1–250 characters, with no control characters."
_key_validators = [RegexValidator(r"^[^\x00-\x1f\x7f]{1,250}\Z", TAG_KEY_RULE)]
_value_validators = [RegexValidator(r"^[^\x00]*\Z", "The value may not contain the NUL character.")]


class RunTag(models.Model):
    """A tag of a run (`mlflow.user`, `mlflow.source.name`, a user's own); one value per key."""

    job = models.ForeignKey("compute.Job", on_delete=models.CASCADE, related_name="tags")
    key = models.CharField(max_length=TAG_KEY_MAX, validators=_key_validators)
    value = models.CharField(max_length=TAG_VALUE_MAX, blank=True, validators=_value_validators)

    class Meta:
        ordering = ["job_id", "key"]
        constraints = [models.UniqueConstraint(fields=["job", "key"], name="run_tag_unique_key")]
        # On the key only: a value of up to 8,000 characters outgrows a PostgreSQL index entry.
        indexes = [models.Index(fields=["key"])]

    def __str__(self) -> str:
        return f"{self.key}={self.value[:50]}"


class ExperimentTag(models.Model):
    """A tag of an experiment; one value per key."""

    experiment = models.ForeignKey("training.Experiment", on_delete=models.CASCADE, related_name="tags")
    key = models.CharField(max_length=TAG_KEY_MAX, validators=_key_validators)
    value = models.CharField(max_length=TAG_VALUE_MAX, blank=True, validators=_value_validators)

    class Meta:
        ordering = ["experiment_id", "key"]
        constraints = [models.UniqueConstraint(fields=["experiment", "key"], name="experiment_tag_unique_key")]

    def __str__(self) -> str:
        return f"{self.key}={self.value[:50]}"
