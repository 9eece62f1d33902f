from django import forms


class EndpointForm(forms.Form):
    name = forms.SlugField(max_length=63, help_text="Lower-case letters, digits and hyphens; part of the scoring URL.")
    description = forms.CharField(max_length=500, required=False)


class DeploymentForm(forms.Form):
    name = forms.SlugField(max_length=63, initial="blue", help_text="e.g. blue, green, v2")
    model_version = forms.TypedChoiceField(coerce=int, label="Model version")
    target = forms.TypedChoiceField(coerce=int, label="Inference cluster")
    replicas = forms.IntegerField(min_value=1, max_value=20, initial=1)

    def __init__(self, *args, versions, targets, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model_version"].choices = [(v.pk, str(v)) for v in versions]
        self.fields["target"].choices = [(t.pk, t.name) for t in targets]
