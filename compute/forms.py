from django import forms

from .models import NODE_SIZES, Priority, TargetKind

SIZE_CHOICES = [(key, size.label + f" — ${size.price_per_hour}/node-hour") for key, size in NODE_SIZES.items()]


class TargetCreateForm(forms.Form):
    kind = forms.ChoiceField(choices=TargetKind.choices, widget=forms.HiddenInput)
    name = forms.CharField(max_length=64, help_text="Letters, digits and hyphens, e.g. cpu-cluster.")
    description = forms.CharField(max_length=500, required=False)
    size = forms.ChoiceField(choices=SIZE_CHOICES, initial="small", label="Node size")
    priority = forms.ChoiceField(
        choices=Priority.choices, initial=Priority.DEDICATED, help_text="Low priority costs 80% less."
    )
    min_nodes = forms.IntegerField(
        min_value=0,
        max_value=100,
        initial=0,
        label="Minimum nodes",
        help_text="0 lets the cluster scale to zero (it costs nothing while unused).",
    )
    max_nodes = forms.IntegerField(min_value=1, max_value=100, initial=2, label="Maximum nodes")
    idle_seconds_before_scaledown = forms.IntegerField(min_value=0, initial=120, label="Idle seconds before scale down")
    idle_shutdown_minutes = forms.IntegerField(
        min_value=1,
        required=False,
        label="Shut down after idle minutes",
        help_text="Optional: stop the instance when idle this long.",
    )

    # Which fields each kind shows.
    FIELDS = {
        TargetKind.CLUSTER: [
            "name",
            "description",
            "size",
            "priority",
            "min_nodes",
            "max_nodes",
            "idle_seconds_before_scaledown",
        ],
        TargetKind.INSTANCE: ["name", "description", "size", "idle_shutdown_minutes"],
        TargetKind.INFERENCE: ["name", "description", "size", "min_nodes", "max_nodes"],
        TargetKind.ATTACHED: ["name", "description", "max_nodes"],
    }

    def __init__(self, *args, kind: str, **kwargs):
        super().__init__(*args, **kwargs)
        keep = set(self.FIELDS[kind]) | {"kind"}
        for name in list(self.fields):
            if name not in keep:
                del self.fields[name]
        self.fields["kind"].initial = kind
        if kind == TargetKind.ATTACHED:
            self.fields["max_nodes"].help_text = "How many machines may join."


class TargetEditForm(forms.Form):
    description = forms.CharField(max_length=500, required=False)
    priority = forms.ChoiceField(choices=Priority.choices)
    min_nodes = forms.IntegerField(min_value=0, max_value=100, label="Minimum nodes")
    max_nodes = forms.IntegerField(min_value=1, max_value=100, label="Maximum nodes")
    idle_seconds_before_scaledown = forms.IntegerField(min_value=0, label="Idle seconds before scale down")
    idle_shutdown_minutes = forms.IntegerField(min_value=1, required=False, label="Shut down after idle minutes")

    FIELDS = {
        TargetKind.CLUSTER: ["description", "priority", "min_nodes", "max_nodes", "idle_seconds_before_scaledown"],
        TargetKind.INSTANCE: ["description", "idle_shutdown_minutes"],
        TargetKind.INFERENCE: ["description", "min_nodes", "max_nodes"],
        TargetKind.ATTACHED: ["description", "max_nodes"],
    }

    def __init__(self, *args, kind: str, **kwargs):
        super().__init__(*args, **kwargs)
        for name in list(self.fields):
            if name not in self.FIELDS[kind]:
                del self.fields[name]
