"""Experiments (the grouping of runs) and the model registry."""

from django.conf import settings
from django.db import models

from studio.validation import description_field, name_field

MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"
MODEL_NAME_MESSAGE = "Use 1–100 letters, digits, dots, hyphens or underscores, e.g. churn-model."
ALIAS_PATTERN = r"^[a-z][a-z0-9_-]{0,49}$"
ALIAS_MESSAGE = "Aliases are short lower-case words, e.g. champion, staging."


class Experiment(models.Model):
    """A named group of jobs in a workspace, for comparing runs."""

    workspace = models.ForeignKey("workspaces.Workspace", on_delete=models.CASCADE, related_name="experiments")
    name = models.CharField(max_length=100)
    description = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # An experiment deleted through the MLflow API: hidden from MLflow's lists, restorable, its runs kept.
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="experiment_unique_name")]

    def __str__(self) -> str:
        return self.name


class TrainingJobKind(models.TextChoices):
    """Training's job kinds (registered with the job engine in `apps.py`)."""

    TRAIN = "train", "Train"
    AUTOML = "automl", "Automated ML"
    AUTOML_TRIAL = "automl_trial", "Automated ML trial"
    AUTOML_FINAL = "automl_final", "Automated ML ensemble"


class RegisteredModel(models.Model):
    """A named model in a workspace's registry; its versions are immutable."""

    workspace = models.ForeignKey("workspaces.Workspace", on_delete=models.CASCADE, related_name="models")
    name = name_field(max_length=100, pattern=MODEL_NAME_PATTERN, message=MODEL_NAME_MESSAGE)
    description = description_field()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="registered_model_unique_name")]

    def __str__(self) -> str:
        return self.name


class ModelVersion(models.Model):
    """One registered version: the skops file (and an ONNX twin where it converts), its input
    signature, class labels, metrics and lineage (job, data version, library versions)."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    description = description_field()
    tags = models.JSONField(default=list, blank=True)
    job = models.ForeignKey(
        "compute.Job", null=True, blank=True, on_delete=models.PROTECT, related_name="model_versions"
    )
    data_version = models.ForeignKey(
        "data.DataVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="model_versions"
    )
    algorithm = models.CharField(max_length=100, blank=True)
    # training.ml.tasks: "classification" (classes listed) or "regression" (numeric predictions, no classes)
    task = models.CharField(max_length=20, default="classification")
    target_column = models.CharField(max_length=200, blank=True)
    signature = models.JSONField(default=dict)  # {"columns": [{"name", "type", "categories"?}], ...}
    classes = models.JSONField(default=list)
    metrics = models.JSONField(default=dict)
    lineage = models.JSONField(default=dict)  # library versions, code, search settings
    file_size = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64)
    onnx_sha256 = models.CharField(max_length=64, blank=True)
    onnx_max_abs_diff = models.FloatField(null=True, blank=True)
    # median 1-row predict_proba of the skops model, measured by the job that made it (ms)
    scoring_latency_ms = models.FloatField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model_id", "-version"]
        constraints = [models.UniqueConstraint(fields=["model", "version"], name="model_version_unique_number")]

    def __str__(self) -> str:
        return f"{self.model.name}:{self.version}"

    @property
    def onnx_only(self) -> bool:
        """A model registered from an ONNX file: no model.skops; `sha256` is the ONNX file's."""
        return bool(self.onnx_sha256) and self.sha256 == self.onnx_sha256


class ModelAlias(models.Model):
    """A movable name for one version of a model, e.g. `champion`."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="aliases")
    name = models.CharField(max_length=50)  # ALIAS_PATTERN, checked by the registry services on a list of aliases
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="aliases")

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["model", "name"], name="model_alias_unique_name")]

    def __str__(self) -> str:
        return f"{self.model.name}@{self.name}"
