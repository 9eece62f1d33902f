from django import forms
from django.core.exceptions import ValidationError
from django.urls import reverse

from compute.jobs.diagnostic import DIAGNOSTIC
from data.selectors import data_versions_ready
from studio.forms import CheckedJSONField
from studio.forms_errors import add_service_errors
from training.models import TrainingJobKind

from .automl_selectors import task_suggestion
from .datasets import check_numeric_target, check_target, included_columns
from .kinds.train import check_hyperparameters, train_algorithms
from .ml.algorithms import get_algorithm
from .ml.tasks import CLASSIFICATION, REGRESSION, TASKS


class JobSubmitForm(forms.Form):
    """Fields every job has; a subclass per kind adds its own and builds the spec."""

    kind: str = ""
    target = forms.TypedChoiceField(coerce=int, label="Compute target")
    experiment_name = forms.CharField(max_length=100, required=False, label="Experiment", initial="Default")
    display_name = forms.CharField(max_length=200, required=False, label="Job name")
    time_limit_seconds = forms.IntegerField(
        min_value=1,
        required=False,
        label="Time limit (seconds)",
        help_text="Optional. The job fails if it runs longer.",
    )

    def __init__(self, *args, targets, workspace, **kwargs):
        super().__init__(*args, **kwargs)
        self.workspace = workspace
        self.fields["target"].choices = [(t.pk, f"{t.name} ({t.get_kind_display().lower()})") for t in targets]
        self.targets = {t.pk: t for t in targets}

    @classmethod
    def initial_from_job(cls, job) -> dict:
        """The form's initial values to clone `job` (then edit and submit)."""
        initial = {key: value for key, value in job.spec.items() if key in cls.base_fields}
        initial.update(
            target=job.target_id,
            experiment_name=job.experiment.name if job.experiment else "",
            display_name=f"{job.name} (clone)",
            time_limit_seconds=job.time_limit_seconds,
        )
        return initial

    def spec(self) -> dict:
        return {}

    # The page lays out these fields one by one; a train form groups its hyperparameters apart.
    hyperparameter_fields: list = []

    def plain_fields(self) -> list:
        return [f for f in self if f.name != "hyperparameters" and not f.name.startswith(HYPERPARAMETER_PREFIX)]


HYPERPARAMETER_PREFIX = "hp_"


def _hyperparameter_field(param, default) -> forms.Field:
    """A typed input for one of an algorithm's main hyperparameters; empty keeps the default."""
    if param.kind == "choice":
        choices = [("", f"default ({default})")] + [(c, c) for c in param.choices]
        return forms.ChoiceField(choices=choices, required=False, label=param.name)
    field_class = forms.IntegerField if param.kind == "int" else forms.FloatField
    return field_class(
        required=False,
        label=param.name,
        help_text=f"Default {default}; Automated ML searches {param.low:g} to {param.high:g}.",
        widget=forms.NumberInput(attrs={"placeholder": default, "step": "1" if param.kind == "int" else "any"}),
    )


class DiagnosticJobForm(JobSubmitForm):
    kind = DIAGNOSTIC
    sleep_seconds = forms.FloatField(
        min_value=0,
        max_value=3600,
        initial=0,
        required=False,
        help_text="Keep the node busy this long (to try cancel and scaling).",
    )

    def spec(self) -> dict:
        return {"sleep_seconds": self.cleaned_data.get("sleep_seconds") or 0}


class TrainJobForm(JobSubmitForm):
    kind = TrainingJobKind.TRAIN
    data_version_id = forms.TypedChoiceField(coerce=int, label="Data")
    target_column = forms.CharField(
        max_length=200, label="Target column", help_text="The column to predict.", widget=forms.Select
    )
    task = forms.ChoiceField(
        choices=list(TASKS.items()),
        initial=CLASSIFICATION,
        help_text="Classification predicts a class; regression predicts a number.",
    )
    algorithm = forms.ChoiceField(choices=[])
    hyperparameters = CheckedJSONField(
        required=False,
        initial=dict,
        label="Advanced: hyperparameters as JSON",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text='Optional JSON for any other parameter, e.g. {"max_depth": 8}. '
        "Checked against the estimator's own parameters.",
    )
    validation_method = forms.ChoiceField(
        choices=[("holdout", "Holdout"), ("cv", "k-fold cross-validation")], initial="holdout", label="Validation"
    )
    holdout_fraction = forms.FloatField(min_value=0.05, max_value=0.5, initial=0.2, required=False)
    n_folds = forms.IntegerField(min_value=2, max_value=20, initial=5, required=False, label="Folds")
    seed = forms.IntegerField(initial=0)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.is_bound and not self.data.get("task"):  # posted without a task, as before regression existed
            self.data = self.data.copy()
            self.data["task"] = CLASSIFICATION

        versions = list(data_versions_ready(workspace=self.workspace)[:200])
        self.fields["data_version_id"].choices = [
            (v.pk, f"{v.asset.name} v{v.version} ({v.rows:,} rows)") for v in versions
        ]
        self.versions = {v.pk: v for v in versions}
        self._target_column_choices(versions)
        self._choose_task()
        self.fields["algorithm"].choices = list(train_algorithms(self.task_value).items())
        self._add_hyperparameter_fields()

    def _chosen(self, name):
        return self.data.get(name) if self.is_bound else self.initial.get(name, self.fields[name].initial)

    def _chosen_version(self):
        try:
            return self.versions.get(int(self._chosen("data_version_id")))
        except (TypeError, ValueError):
            return None

    def _target_column_choices(self, versions) -> None:
        """The chosen data's columns (as the AutoML wizard lists them); changing the data reloads them."""
        version = self._chosen_version() or (versions[0] if versions else None)
        columns = included_columns(version) if version else []
        self.fields["target_column"].widget.attrs.pop("maxlength", None)  # a text input's attribute
        self.fields["target_column"].widget.choices = [("", "— choose the column to predict —")] + [
            (c["name"], f"{c['name']} ({c.get('semantic_type', '')})") for c in columns
        ]
        self.fields["data_version_id"].widget.attrs.update(
            {
                "hx-get": reverse("automl-columns", args=[self.workspace.pk]) + "?only=target",
                "hx-trigger": "change",
                "hx-sync": "this:replace",
                "hx-include": "#id_data_version_id, #id_target_column",
                "hx-target": "#id_target_column",
                "hx-swap": "outerHTML",
            }
        )

    def _choose_task(self) -> None:
        """The task: as chosen, else the one suggested for the chosen target column; changing the
        target or the task reloads the task, the algorithms and their hyperparameters."""
        version, target = self._chosen_version(), self._chosen("target_column")
        self.task_suggestion = task_suggestion(version, target) if version is not None and target else None
        chosen = self._chosen("task")
        if not self.is_bound and "task" not in self.initial and self.task_suggestion is not None:
            chosen = self.initial["task"] = self.task_suggestion.task
        self.task_value = chosen if chosen in TASKS else CLASSIFICATION
        reload = {
            "hx-get": "?kind=train",
            "hx-trigger": "change",
            "hx-sync": "closest form:replace",  # the newest of these reloads wins (a quick algorithm pick)
            "hx-select": "#task-fields",
            "hx-target": "#task-fields",
            "hx-swap": "outerHTML",
        }
        self.fields["task"].widget.attrs.update(
            reload | {"hx-include": "#id_data_version_id, #id_target_column, #id_task"}
        )
        self.fields["target_column"].widget.attrs.update(
            reload | {"hx-include": "#id_data_version_id, #id_target_column, #id_algorithm"}
        )

    def _add_hyperparameter_fields(self) -> None:
        """Typed inputs for the chosen algorithm's main hyperparameters; choosing another reloads them."""
        algorithms = train_algorithms(self.task_value)
        algorithm = self._chosen("algorithm")
        if algorithm not in algorithms:
            algorithm = next(iter(algorithms))
        self.hyperparameter_algorithm = algorithms[algorithm]
        known = get_algorithm(algorithm, self.task_value)
        defaults = known.defaults()
        for param in known.space:
            self.fields[HYPERPARAMETER_PREFIX + param.name] = _hyperparameter_field(param, defaults.get(param.name))
        self.fields["algorithm"].widget.attrs.update(
            {
                "hx-get": "?kind=train",
                "hx-trigger": "change",
                "hx-sync": "closest form:replace",
                "hx-include": "#id_algorithm, #id_task",
                "hx-select": "#hyperparameter-fields",
                "hx-target": "#hyperparameter-fields",
                "hx-swap": "outerHTML",
            }
        )

    @property
    def hyperparameter_fields(self) -> list:
        return [f for f in self if f.name.startswith(HYPERPARAMETER_PREFIX)]

    def clean(self):
        """Check the target column and the hyperparameters here too, so every error shows in one round."""
        data = super().clean()
        version = self.versions.get(data.get("data_version_id"))
        if version is not None and "target_column" in data:
            try:
                check_target(version, data["target_column"])
                if data.get("task") == REGRESSION:
                    check_numeric_target(version, data["target_column"])
            except ValidationError as exc:
                add_service_errors(self, exc)
        typed = {
            name.removeprefix(HYPERPARAMETER_PREFIX): value
            for name, value in data.items()
            if name.startswith(HYPERPARAMETER_PREFIX) and value not in (None, "")
        }
        raw = data.get("hyperparameters") or {}
        if isinstance(raw, dict) and set(raw) & set(typed):
            self.add_error(
                "hyperparameters", f"Set {', '.join(sorted(set(raw) & set(typed)))} in its field or here, not both."
            )
        elif data.get("algorithm") and "hyperparameters" in data:
            task = data.get("task") or CLASSIFICATION
            for name, value in typed.items():  # a typed value's error shows beside its own field
                try:
                    check_hyperparameters(data["algorithm"], {name: value}, task)
                except ValidationError as exc:
                    self.add_error(HYPERPARAMETER_PREFIX + name, exc.message_dict["hyperparameters"])
            if not any(self.has_error(HYPERPARAMETER_PREFIX + name) for name in typed):
                params = {**raw, **typed} if isinstance(raw, dict) else raw
                try:
                    data["hyperparameters"] = check_hyperparameters(data["algorithm"], params, task)
                except ValidationError as exc:
                    add_service_errors(self, exc)
        return data

    @classmethod
    def initial_from_job(cls, job) -> dict:
        initial = super().initial_from_job(job)
        validation = job.spec.get("validation", {})
        initial.update(
            validation_method=validation.get("method", "holdout"),
            holdout_fraction=validation.get("holdout_fraction", 0.2),
            n_folds=validation.get("n_folds", 5),
        )
        return initial

    def spec(self) -> dict:
        data = self.cleaned_data
        validation = {"method": data["validation_method"]}
        if data["validation_method"] == "holdout":
            validation["holdout_fraction"] = data.get("holdout_fraction") or 0.2
        else:
            validation["n_folds"] = data.get("n_folds") or 5
        return {
            "data_version_id": data["data_version_id"],
            "target_column": data["target_column"],
            "task": data["task"],
            "algorithm": data["algorithm"],
            "hyperparameters": data.get("hyperparameters") or {},
            "validation": validation,
            "seed": data["seed"],
        }


class ExperimentForm(forms.Form):
    """A new experiment: a name (any text) and an optional description (checked by the service)."""

    name = forms.CharField(max_length=100, label="Name")
    description = forms.CharField(max_length=500, required=False, label="Description")


class ModelUploadForm(forms.Form):
    """Register a model from a file: the file, its name, and where its signature comes from."""

    file = forms.FileField(help_text="A .skops file, an .onnx file, or an MLflow model folder as .zip or .tar.gz.")
    name = forms.CharField(max_length=100, label="Model name", help_text="An existing name makes its next version.")
    data_version = forms.TypedChoiceField(
        coerce=int,
        required=False,
        empty_value=None,
        label="Data version for the signature",
        help_text="The columns and types the model takes, read from the data it was trained on.",
    )
    target_column = forms.CharField(
        max_length=200, required=False, help_text="Left out of the signature (the column the model predicts)."
    )
    signature = forms.CharField(
        required=False,
        max_length=200_000,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": '[{"name": "age", "type": "numeric"}]'}),
        help_text="Or give the inputs as JSON: a list of {name, type} (numeric, integer, boolean, categorical, "
        "text, identifier, datetime). Without either, an MLflow signature or the model's own inputs are used.",
    )
    description = forms.CharField(max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, workspace, **kwargs):
        super().__init__(*args, **kwargs)
        versions = list(data_versions_ready(workspace=workspace)[:200])
        self.fields["data_version"].choices = [("", "—")] + [
            (v.pk, f"{v.asset.name} v{v.version} ({v.rows:,} rows)") for v in versions
        ]
        self.versions = {v.pk: v for v in versions}
