from django import forms

from data.selectors import data_versions_ready
from training.forms import JobSubmitForm
from training.registry_selectors import model_versions_in_workspace

from .models import BATCH_SCORE
from .services import AUTOSCALE_FIELDS


class EndpointForm(forms.Form):
    name = forms.SlugField(max_length=63, help_text="Lower-case letters, digits and hyphens; part of the scoring URL.")
    description = forms.CharField(max_length=500, required=False)
    create_inference_cluster = forms.BooleanField(
        required=False, initial=True, label="Also create an inference cluster to deploy to"
    )
    inference_cluster = forms.CharField(
        max_length=63, required=False, initial="serving", label="Inference cluster name"
    )

    def __init__(self, *args, offer_inference_cluster: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        # Offered here, before the keys are shown once, so nothing later sends the user away from them.
        if not offer_inference_cluster:
            del self.fields["create_inference_cluster"]
            del self.fields["inference_cluster"]

    def clean(self):
        data = super().clean()
        if data.get("create_inference_cluster") and not data.get("inference_cluster", "").strip():
            self.add_error("inference_cluster", "Name the inference cluster, or untick the box above.")
        return data


class ScalingForm(forms.Form):
    """A deployment's replicas: a fixed count, or autoscaling between a minimum and a maximum."""

    replicas = forms.IntegerField(min_value=1, max_value=20, initial=1, help_text="Where autoscaling starts.")
    autoscale = forms.BooleanField(required=False, label="Autoscale on the load")
    min_replicas = forms.IntegerField(
        min_value=0, max_value=20, initial=1, required=False, help_text="0 scales to zero when idle."
    )
    max_replicas = forms.IntegerField(min_value=1, max_value=20, required=False)
    target_in_flight = forms.IntegerField(
        min_value=1, max_value=1000, initial=4, required=False, label="Target requests in flight per replica"
    )
    scale_in_seconds = forms.IntegerField(
        min_value=10, max_value=86400, initial=300, required=False, label="Scale in after (seconds below the target)"
    )

    def clean(self):
        data = super().clean()
        if data.get("autoscale") and not data.get("max_replicas"):
            self.add_error("max_replicas", "Give the most replicas to scale out to.")
        return data

    def autoscale_settings(self) -> dict | None:
        data = self.cleaned_data
        if not data.get("autoscale"):
            return None
        return {field: data[field] for field in AUTOSCALE_FIELDS if data.get(field) is not None}


class DeploymentForm(ScalingForm):
    name = forms.SlugField(max_length=63, initial="blue", help_text="e.g. blue, green, v2")
    model_version = forms.TypedChoiceField(coerce=int, label="Model version")
    target = forms.TypedChoiceField(coerce=int, label="Inference cluster")
    field_order = ["name", "model_version", "target"]

    def __init__(self, *args, versions, targets, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model_version"].choices = [(v.pk, str(v)) for v in versions]
        self.fields["target"].choices = [(t.pk, t.name) for t in targets]


class BatchScoreJobForm(JobSubmitForm):
    """Score a whole data version with a registered model; the predictions become a new version."""

    kind = BATCH_SCORE
    model_version_id = forms.TypedChoiceField(coerce=int, label="Model version")
    data_version_id = forms.TypedChoiceField(
        coerce=int,
        empty_value=None,
        required=False,
        label="Data to score",
        help_text="A forecasting model may forecast from its stored history: leave it empty.",
    )
    output_asset = forms.CharField(
        max_length=100,
        required=False,
        label="Save the predictions as",
        help_text="A data asset name; empty: the data's name with -scored. Each run adds a version.",
    )

    def __init__(self, *args, forecasting: bool | None = None, **kwargs):
        """``forecasting``: whether the model to run forecasts, when the page knows it (an endpoint's);
        a model that does not takes rows, so the data is then required and no stored history offered."""
        super().__init__(*args, **kwargs)
        self.fields["model_version_id"].choices = [
            (v.pk, str(v)) for v in model_versions_in_workspace(workspace=self.workspace)[:200]
        ]
        if not self.fields["model_version_id"].choices:
            self.fields["model_version_id"].help_text = "No model is registered yet: register a job's model first."
        versions = [
            (v.pk, f"{v.asset.name} v{v.version} ({v.rows:,} rows)")
            for v in data_versions_ready(workspace=self.workspace)[:200]
        ]
        data = self.fields["data_version_id"]
        if forecasting is False:
            data.required = True
            data.label, data.help_text = "Data to score", "Rows with the model's input columns."
            data.choices = [("", "Choose a data version…")] + versions
        else:
            data.choices = [("", "None: a forecasting model's stored history")] + versions

    def spec(self) -> dict:
        data = self.cleaned_data
        return {
            "model_version_id": data["model_version_id"],
            "data_version_id": data["data_version_id"],
            "output_asset": data.get("output_asset") or "",
        }
