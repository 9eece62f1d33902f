from django import forms

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


SUBMIT_FORMS = {JobKind.DIAGNOSTIC: DiagnosticJobForm}
