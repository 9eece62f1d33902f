from django import forms

from .models import ScheduleAction
from .services import WEEKDAY_NAMES


class LabEnvironmentForm(forms.Form):
    environment_version = forms.TypedChoiceField(coerce=int, empty_value=None, required=False)

    def __init__(self, *args, versions=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["environment_version"].choices = [("", "The studio's default (JupyterLab and MLflow)")] + [
            (v.pk, str(v)) for v in versions
        ]


class ScheduleForm(forms.Form):
    action = forms.ChoiceField(choices=ScheduleAction.choices)
    time_of_day = forms.CharField(max_length=10, help_text="HH:MM, 24-hour clock")
    weekdays = forms.MultipleChoiceField(
        choices=[(str(i), name) for i, name in enumerate(WEEKDAY_NAMES)],
        widget=forms.CheckboxSelectMultiple,
        required=False,  # the service says "Choose at least one weekday."
    )
    time_zone = forms.CharField(max_length=64, initial="UTC")
