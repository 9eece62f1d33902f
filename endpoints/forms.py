from django import forms


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


class DeploymentForm(forms.Form):
    name = forms.SlugField(max_length=63, initial="blue", help_text="e.g. blue, green, v2")
    model_version = forms.TypedChoiceField(coerce=int, label="Model version")
    target = forms.TypedChoiceField(coerce=int, label="Inference cluster")
    replicas = forms.IntegerField(min_value=1, max_value=20, initial=1)

    def __init__(self, *args, versions, targets, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model_version"].choices = [(v.pk, str(v)) for v in versions]
        self.fields["target"].choices = [(t.pk, t.name) for t in targets]
