from django import forms

from studio.forms import CheckedJSONField

from .models import JobKind


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


class DiagnosticJobForm(JobSubmitForm):
    kind = JobKind.DIAGNOSTIC
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
    kind = JobKind.TRAIN
    data_version_id = forms.TypedChoiceField(coerce=int, label="Data")
    target_column = forms.CharField(max_length=200, label="Target column", help_text="The column to predict.")
    algorithm = forms.ChoiceField(choices=[])
    hyperparameters = CheckedJSONField(
        required=False,
        initial=dict,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text='Optional JSON, e.g. {"n_estimators": 300, "max_depth": 8}. '
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
        from workspaces.data_selectors import data_versions_ready

        from .kinds.train import TRAIN_ALGORITHMS

        versions = list(data_versions_ready(workspace=self.workspace)[:200])
        self.fields["data_version_id"].choices = [
            (v.pk, f"{v.asset.name} v{v.version} ({v.rows:,} rows)") for v in versions
        ]
        self.fields["algorithm"].choices = list(TRAIN_ALGORITHMS.items())
        self.column_names = sorted({c["name"] for v in versions for c in v.schema.get("columns", [])})
        self.fields["target_column"].widget.attrs["list"] = "column-names"

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
            "algorithm": data["algorithm"],
            "hyperparameters": data.get("hyperparameters") or {},
            "validation": validation,
            "seed": data["seed"],
        }


class BatchScoreJobForm(JobSubmitForm):
    """Score a whole data version with a registered model; the predictions become a new version."""

    kind = JobKind.BATCH_SCORE
    model_version_id = forms.TypedChoiceField(coerce=int, label="Model version")
    data_version_id = forms.TypedChoiceField(coerce=int, label="Data to score")
    output_asset = forms.CharField(
        max_length=100,
        required=False,
        label="Save the predictions as",
        help_text="A data asset name; empty: the data's name with -scored. Each run adds a version.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from workspaces.data_selectors import data_versions_ready

        from .registry_selectors import model_versions_in_workspace

        self.fields["model_version_id"].choices = [
            (v.pk, str(v)) for v in model_versions_in_workspace(workspace=self.workspace)[:200]
        ]
        if not self.fields["model_version_id"].choices:
            self.fields["model_version_id"].help_text = "No model is registered yet: register a job's model first."
        self.fields["data_version_id"].choices = [
            (v.pk, f"{v.asset.name} v{v.version} ({v.rows:,} rows)")
            for v in data_versions_ready(workspace=self.workspace)[:200]
        ]

    def spec(self) -> dict:
        data = self.cleaned_data
        return {
            "model_version_id": data["model_version_id"],
            "data_version_id": data["data_version_id"],
            "output_asset": data.get("output_asset") or "",
        }


SUBMIT_FORMS = {
    JobKind.TRAIN: TrainJobForm,
    JobKind.DIAGNOSTIC: DiagnosticJobForm,
    JobKind.BATCH_SCORE: BatchScoreJobForm,
}
